#include "imap/session/literal_stream.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "imap/writer.h"

namespace magpie::imap {
namespace {

bool decodes(mail::TransferEncoding encoding) {
    return encoding == mail::TransferEncoding::base64 || encoding == mail::TransferEncoding::quoted_printable;
}

// Reads `length` octets at `offset` and insists on all of them: a blob shorter than its structure says is
// corrupt, and a literal's announced size must be kept.
Result<std::string> read_exactly(store::BlobReader& reader, std::uint64_t offset, std::size_t length) {
    auto bytes = reader.read(offset, length);
    if (!bytes) return bytes.error();
    if (bytes->size() != length)
        return make_error(Errc::corrupt,
                          fmt::format("blob holds {} octets at {}, not {}", bytes->size(), offset, length));
    return bytes;
}

}  // namespace

Result<LiteralStream::Measure> LiteralStream::measure(store::BlobReader& reader,
                                                      const std::vector<mail::ByteRange>& ranges,
                                                      mail::TransferEncoding encoding, std::uint64_t skip,
                                                      std::uint64_t length, std::size_t slice_octets) {
    Measure measure;
    std::optional<mail::TransferDecoder> decoder;
    if (decodes(encoding)) decoder.emplace(encoding);
    std::string decoded;
    auto account = [&](std::string_view octets) {
        // The window [skip, skip + length) of the decoded stream, intersected with these octets.
        const std::uint64_t begin = measure.size, end = measure.size + octets.size();
        const std::uint64_t from = std::max(begin, skip), to = std::min(end, skip + length);
        if (from < to && std::memchr(octets.data() + (from - begin), 0, to - from) != nullptr)
            measure.nul = true;
        measure.size = end;
    };
    for (std::size_t r = 0; r < ranges.size(); ++r) {
        for (std::uint64_t at = 0; at < ranges[r].length;) {
            const std::size_t n =
                static_cast<std::size_t>(std::min<std::uint64_t>(slice_octets, ranges[r].length - at));
            auto bytes = read_exactly(reader, ranges[r].offset + at, n);
            if (!bytes) return bytes.error();
            at += n;
            if (!decoder) {
                account(*bytes);
                continue;
            }
            decoded.clear();
            decoder->feed(*bytes, r + 1 == ranges.size() && at == ranges[r].length, decoded);
            account(decoded);
        }
    }
    return measure;
}

LiteralStream::LiteralStream(Source source, std::size_t slice_octets)
    : source_(std::move(source)),
      slice_octets_(std::max<std::size_t>(slice_octets, 1)),
      remaining_(source_.length) {
    if (decodes(source_.encoding)) decoder_.emplace(source_.encoding);
}

bool LiteralStream::advance() {
    pending_.clear();
    pending_at_ = 0;
    // Skip ranges that are empty or read to their end.
    while (range_ < source_.ranges.size() && range_offset_ >= source_.ranges[range_].length) {
        ++range_;
        range_offset_ = 0;
    }
    if (range_ < source_.ranges.size()) {
        const mail::ByteRange& range = source_.ranges[range_];
        const std::uint64_t n = std::min<std::uint64_t>(slice_octets_, range.length - range_offset_);
        wanted_ = mail::ByteRange{range.offset + range_offset_, n};
        return true;
    }
    if (trailer_sent_) return false;
    trailer_sent_ = true;
    pending_ = source_.trailer;
    drop_skipped();
    return true;
}

Result<void> LiteralStream::supply(std::string octets) {
    if (!wanted_) return make_error(Errc::internal, "blob octets supplied that the literal did not ask for");
    const mail::ByteRange asked = *std::exchange(wanted_, std::nullopt);
    // A blob shorter than its structure says is corrupt, and a literal's announced size must be kept.
    if (octets.size() != asked.length)
        return make_error(Errc::corrupt, fmt::format("blob holds {} octets at {}, not {}", octets.size(),
                                                     asked.offset, asked.length));
    range_offset_ += asked.length;
    const bool last =
        range_ + 1 == source_.ranges.size() && range_offset_ == source_.ranges[range_].length;
    if (decoder_)
        decoder_->feed(octets, last, pending_);
    else
        pending_ = std::move(octets);
    drop_skipped();
    return {};
}

void LiteralStream::drop_skipped() {
    if (source_.skip == 0) return;
    const std::size_t dropped = static_cast<std::size_t>(std::min<std::uint64_t>(source_.skip, pending_.size()));
    pending_at_ = dropped;
    source_.skip -= dropped;
}

Result<bool> LiteralStream::write_some(std::string& out, std::size_t budget) {
    std::size_t written = 0;
    while (remaining_ > 0 && written < budget) {
        if (pending_at_ >= pending_.size()) {
            if (wanted_) return false;  // the session reads them (ReadBlobRange) and supplies them
            if (!advance())
                return make_error(Errc::corrupt,
                                  fmt::format("the blob ended {} octets before the literal", remaining_));
            continue;
        }
        const std::size_t n = static_cast<std::size_t>(
            std::min<std::uint64_t>({pending_.size() - pending_at_, remaining_, budget - written}));
        append_literal_octets(out, std::string_view(pending_).substr(pending_at_, n), source_.literal8);
        pending_at_ += n;
        remaining_ -= n;
        written += n;
    }
    if (remaining_ == 0) {
        pending_.clear();
        pending_.shrink_to_fit();
        source_.reader.reset();  // the file descriptor goes as soon as the literal is out
    }
    return remaining_ == 0;
}

}  // namespace magpie::imap
