// The spool of a large IMAP APPEND on PostgreSQL (Store::open_spool): an unnamed temporary file (O_TMPFILE
// in the system's temporary directory, $TMPDIR or /tmp), appended to as the literal arrives and mapped
// read-only when the committer writes it into blob_chunks a chunk at a time. The message is never held whole
// in memory, and a crash leaves nothing behind: the file has no name and vanishes with its descriptor.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include <fmt/format.h>

#include "store/blob.h"
#include "store/postgres/postgres_store.h"

namespace magpie::store::postgres {
namespace {

Error spool_error(const char* what, const std::string& where, int error) {
    return make_error(Errc::io_error, fmt::format("{} {}: {}", what, where, std::strerror(error)));
}

class TemporarySpool final : public BlobSpool {
public:
    TemporarySpool(std::string where, int fd) : where_(std::move(where)), fd_(fd) {}
    ~TemporarySpool() override {
        unmap();
        ::close(fd_);
    }

    Result<void> append(std::string_view octets) override {
        while (!octets.empty()) {
            ssize_t n = ::write(fd_, octets.data(), octets.size());
            if (n < 0) {
                if (errno == EINTR) continue;
                return spool_error("write", where_, errno);
            }
            octets.remove_prefix(static_cast<std::size_t>(n));
            size_ += static_cast<std::uint64_t>(n);
        }
        return {};
    }

    std::uint64_t size() const override { return size_; }

    Result<std::string_view> map() override {
        unmap();
        if (size_ == 0) return std::string_view();
        void* address = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd_, 0);
        if (address == MAP_FAILED) return spool_error("mmap", where_, errno);
        mapping_ = static_cast<const char*>(address);
        return std::string_view(mapping_, size_);
    }

    void unmap() override {
        if (mapping_ != nullptr) ::munmap(const_cast<char*>(mapping_), size_);
        mapping_ = nullptr;
    }

    // PostgreSQL stores the mapped bytes in the delivery's own transaction (durable when it commits);
    // there is no file to put into place.
    Result<Persisted> persist() override {
        return make_error(Errc::internal, "a PostgreSQL spool is stored by its delivery, not persisted");
    }

private:
    std::string where_;
    int fd_;
    std::uint64_t size_ = 0;
    const char* mapping_ = nullptr;
};

}  // namespace

Result<std::unique_ptr<BlobSpool>> PostgresStore::open_spool() {
    if (options_.read_only) return make_error(Errc::permission_denied, "the store is open read-only");
    std::error_code ec;
    std::filesystem::path dir = std::filesystem::temp_directory_path(ec);
    if (ec) dir = "/tmp";
    int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        // A file system without O_TMPFILE: a named file, unlinked at once.
        std::string name = (dir / "magpie-spool-XXXXXX").string();
        fd = ::mkostemp(name.data(), O_CLOEXEC);
        if (fd >= 0) ::unlink(name.c_str());
    }
    if (fd < 0) return spool_error("create a spool in", dir.string(), errno);
    return std::unique_ptr<BlobSpool>(std::make_unique<TemporarySpool>(dir.string(), fd));
}

}  // namespace magpie::store::postgres
