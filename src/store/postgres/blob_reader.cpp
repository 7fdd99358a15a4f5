// Ranged reads of a blob on PostgreSQL (Store::open_blob): the chunks' lengths are read once, then each
// read() fetches only the chunks its range covers, so FETCH of a section or SEARCH over a large message
// holds a few chunks at a time, never the whole message.
#include <algorithm>
#include <functional>
#include <vector>

#include <fmt/format.h>

#include "store/blob.h"
#include "store/postgres/postgres_store.h"
#include "store/postgres/rows.h"

namespace magpie::store::postgres {
namespace {

class ChunkedBlobReader final : public BlobReader {
public:
    // fetch(first, last): the data of chunks first..last, in order, concatenated.
    using Fetch = std::function<Result<std::string>(std::int64_t, std::int64_t)>;
    ChunkedBlobReader(std::vector<std::uint64_t> starts, std::uint64_t size, Fetch fetch)
        : starts_(std::move(starts)), size_(size), fetch_(std::move(fetch)) {}

    std::uint64_t size() const override { return size_; }

    Result<std::string> read(std::uint64_t offset, std::size_t length) override {
        if (offset >= size_ || length == 0 || starts_.empty()) return std::string();
        const std::uint64_t end = std::min<std::uint64_t>(size_, offset + length);
        // The chunk holding `offset` and the one holding the last octet wanted.
        auto chunk_of = [&](std::uint64_t at) {
            return static_cast<std::int64_t>(std::upper_bound(starts_.begin(), starts_.end(), at) - starts_.begin()) - 1;
        };
        const std::int64_t first = chunk_of(offset), last = chunk_of(end - 1);
        auto data = fetch_(first, last);
        if (!data) return data.error();
        const std::uint64_t expected = (static_cast<std::size_t>(last + 1) < starts_.size() ? starts_[last + 1] : size_) -
                                       starts_[first];
        if (data->size() != expected)
            return make_error(Errc::corrupt, fmt::format("blob chunks {}..{} are {} bytes, expected {}", first, last,
                                                         data->size(), expected));
        return data->substr(offset - starts_[first], end - offset);
    }

private:
    std::vector<std::uint64_t> starts_;  // offset of each chunk, by seq
    std::uint64_t size_;
    Fetch fetch_;
};

}  // namespace

Result<std::unique_ptr<BlobReader>> PostgresStore::open_blob(std::string_view blob_id) {
    if (!is_valid_blob_id(blob_id)) return make_error(Errc::invalid_argument, "invalid blob id");
    const std::string id(blob_id);
    auto starts = read<std::vector<std::uint64_t>>([&](Connection& db) -> Result<std::vector<std::uint64_t>> {
        auto head = db.exec("SELECT size FROM blobs WHERE id = $1", Params().add(id));
        if (!head) return head.error();
        if (head->empty()) return make_error(Errc::not_found, fmt::format("no blob {}", id));
        const auto size = static_cast<std::uint64_t>(head->int64(0, 0));
        auto rows = db.exec("SELECT seq, length(data) FROM blob_chunks WHERE blob_id = $1 ORDER BY seq",
                            Params().add(id));
        if (!rows) return rows.error();
        std::vector<std::uint64_t> offsets;
        std::uint64_t at = 0;
        for (int i = 0; i < rows->size(); ++i) {
            if (rows->int64(i, 0) != i) return make_error(Errc::corrupt, fmt::format("blob {} lacks chunk {}", id, i));
            offsets.push_back(at);
            at += static_cast<std::uint64_t>(rows->int64(i, 1));
        }
        if (at != size)
            return make_error(Errc::corrupt, fmt::format("blob {} is {} bytes, expected {}", id, at, size));
        offsets.push_back(size);  // the end, popped below
        return offsets;
    });
    if (!starts) return starts.error();
    const std::uint64_t size = starts->back();
    starts->pop_back();
    auto fetch = [this, id](std::int64_t first, std::int64_t last) -> Result<std::string> {
        return read<std::string>([&](Connection& db) -> Result<std::string> {
            auto rows = db.exec("SELECT data FROM blob_chunks WHERE blob_id = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq",
                                Params().add(id).add(first).add(last), /*binary_results=*/true);
            if (!rows) return rows.error();
            std::string data;
            for (int i = 0; i < rows->size(); ++i) data += rows->raw(i, 0);
            return data;
        });
    };
    return std::unique_ptr<BlobReader>(std::make_unique<ChunkedBlobReader>(std::move(*starts), size, std::move(fetch)));
}

}  // namespace magpie::store::postgres
