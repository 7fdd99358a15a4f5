#include "store/blob.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "base/file.h"
#include "base/strings.h"

namespace magpie::store {
namespace {

constexpr std::string_view kTemporaryPrefix = ".tmp-";

// SHA-256 fetched from OpenSSL's provider once: EVP_sha256() makes every digest look the algorithm up again
// (OpenSSL 3's implicit fetch: a lock and a search of the method store per message hashed).
const EVP_MD* sha256() {
    static EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return fetched != nullptr ? fetched : EVP_sha256();
}

Error errno_error(std::string_view what, const std::filesystem::path& path, int error_number) {
    Errc code = error_number == ENOENT ? Errc::not_found : Errc::io_error;
    return make_error(code, fmt::format("{} {}: {}", what, path.string(), std::strerror(error_number)));
}

// A flock on <data_dir>/blobs.lock (beside blobs/, which holds blobs only), released when the returned
// descriptor closes.
Result<std::unique_ptr<UniqueFd>> lock_blobs(const std::filesystem::path& root, int operation) {
    std::filesystem::path path = root.parent_path() / "blobs.lock";
    auto fd = std::make_unique<UniqueFd>(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640));
    if (fd->get() < 0) return errno_error("open", path, errno);
    while (::flock(fd->get(), operation) != 0) {
        if (errno != EINTR) return errno_error("flock", path, errno);
    }
    return fd;
}

Result<bool> make_directory(const std::filesystem::path& dir) {
    if (::mkdir(dir.c_str(), 0750) == 0) return true;
    if (errno == EEXIST) return false;
    return errno_error("mkdir", dir, errno);
}

// pread on an open blob file: the descriptor keeps the file readable for as long as the reader lives.
class FileBlobReader final : public BlobReader {
public:
    // Takes ownership of `fd` (an open descriptor of `path`).
    FileBlobReader(std::filesystem::path path, int fd) : path_(std::move(path)), fd_(fd) {}

    Result<void> load_size() {
        struct stat info {};
        if (::fstat(fd_.get(), &info) != 0) return errno_error("stat", path_, errno);
        size_ = static_cast<std::uint64_t>(info.st_size);
        return {};
    }

    std::uint64_t size() const override { return size_; }

    Result<std::string> read(std::uint64_t offset, std::size_t length) override {
        if (offset >= size_) return std::string();
        std::string out(static_cast<std::size_t>(std::min<std::uint64_t>(length, size_ - offset)), '\0');
        std::size_t done = 0;
        while (done < out.size()) {
            ssize_t n = ::pread(fd_.get(), out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
            if (n < 0) {
                if (errno == EINTR) continue;
                return errno_error("read", path_, errno);
            }
            if (n == 0) return make_error(Errc::corrupt, fmt::format("{} is shorter than {} bytes", path_.string(), size_));
            done += static_cast<std::size_t>(n);
        }
        return out;
    }

private:
    std::filesystem::path path_;
    UniqueFd fd_;
    std::uint64_t size_ = 0;
};

// The octets of a spool in a file: appended as they arrive, mapped read-only for parse-once.
class MappedSpool : public BlobSpool {
public:
    MappedSpool(std::filesystem::path path, int fd) : path_(std::move(path)), fd_(fd) {}
    ~MappedSpool() override { unmap(); }

    Result<void> append(std::string_view octets) override {
        if (path_.empty()) return make_error(Errc::invalid_argument, "the spool was persisted already");
        if (int error = write_all(fd_.get(), octets); error != 0) return errno_error("write", path_, error);
        size_ += octets.size();
        return {};
    }

    std::uint64_t size() const override { return size_; }

    Result<std::string_view> map() override {
        unmap();
        if (size_ == 0) return std::string_view();
        void* address = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd_.get(), 0);
        if (address == MAP_FAILED) return errno_error("mmap", path_, errno);
        mapping_ = static_cast<const char*>(address);
        return std::string_view(mapping_, size_);
    }

    void unmap() override {
        if (mapping_ != nullptr) ::munmap(const_cast<char*>(mapping_), size_);
        mapping_ = nullptr;
    }

protected:
    std::filesystem::path path_;
    UniqueFd fd_;
    std::uint64_t size_ = 0;
    const char* mapping_ = nullptr;
};

// A spool without a name (unlinked as soon as it is made, so a crash leaves nothing): for a store that keeps
// blobs elsewhere and copies the mapped octets into them when the delivery commits (PostgreSQL's chunks).
class AnonymousSpool final : public MappedSpool {
public:
    using MappedSpool::MappedSpool;
    Result<Persisted> persist() override {
        return make_error(Errc::unavailable, "an anonymous spool is read by its store, not persisted as a file");
    }
};

// A spool file: appended to as the octets arrive, then hashed, fsynced and renamed into place by persist().
class SpoolFile final : public MappedSpool {
public:
    SpoolFile(const BlobFiles& files, std::filesystem::path path, int fd)
        : MappedSpool(std::move(path), fd), files_(files) {}
    ~SpoolFile() override {
        unmap();
        if (!path_.empty()) ::unlink(path_.c_str());
    }

    Result<Persisted> persist() override {
        if (path_.empty()) return make_error(Errc::invalid_argument, "the spool was persisted already");
        unmap();
        auto id = digest();
        if (!id) return id.error();
        if (::fsync(fd_.get()) != 0) return errno_error("fsync", path_, errno);
        Persisted persisted;
        persisted.blob_id = std::move(*id);
        const std::filesystem::path final_path = files_.path_of(persisted.blob_id);
        auto lock = lock_blobs(files_.root(), LOCK_SH);  // the collector's sweep waits meanwhile
        if (!lock) return lock.error();
        struct stat existing {};
        if (::stat(final_path.c_str(), &existing) == 0 && static_cast<std::uint64_t>(existing.st_size) == size_) {
            // Stored already (immutable, content-addressed): keep that file, fresh for the collector, and
            // make sure its directory entry is durable before a row relies on it (as BlobFiles::write does).
            if (::utimensat(AT_FDCWD, final_path.c_str(), nullptr, 0) != 0) return errno_error("touch", final_path, errno);
            MAGPIE_TRY(fsync_directory(final_path.parent_path()));
            return persisted;
        }
        if (::rename(path_.c_str(), final_path.c_str()) != 0) return errno_error("rename", path_, errno);
        const std::filesystem::path spool_dir = path_.parent_path();
        path_.clear();
        MAGPIE_TRY(fsync_directory(final_path.parent_path()));
        if (spool_dir != final_path.parent_path()) MAGPIE_TRY(fsync_directory(spool_dir));
        persisted.written = true;
        return persisted;
    }

private:
    // SHA-256 of the file, read back in slices from the page cache: memory stays bounded.
    Result<std::string> digest() {
        std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(), EVP_MD_CTX_free);
        if (!context || EVP_DigestInit_ex(context.get(), sha256(), nullptr) != 1) {
            return make_error(Errc::internal, "SHA-256 unavailable in OpenSSL");
        }
        std::vector<char> buffer(256 * 1024);
        std::uint64_t offset = 0;
        while (offset < size_) {
            ssize_t n = ::pread(fd_.get(), buffer.data(), buffer.size(), static_cast<off_t>(offset));
            if (n < 0) {
                if (errno == EINTR) continue;
                return errno_error("read", path_, errno);
            }
            if (n == 0) return make_error(Errc::corrupt, fmt::format("{} shrank below {} bytes", path_.string(), size_));
            EVP_DigestUpdate(context.get(), buffer.data(), static_cast<std::size_t>(n));
            offset += static_cast<std::uint64_t>(n);
        }
        unsigned char out[EVP_MAX_MD_SIZE];
        unsigned int length = 0;
        if (EVP_DigestFinal_ex(context.get(), out, &length) != 1) return make_error(Errc::internal, "SHA-256 failed");
        return to_hex(std::string_view(reinterpret_cast<const char*>(out), length));
    }

    const BlobFiles& files_;  // path_ is empty once renamed into place
};

}  // namespace

Result<std::unique_ptr<BlobSpool>> BlobStorage::spool() const {
    return make_error(Errc::unavailable, "this blob storage has no spool");
}

Result<std::unique_ptr<BlobSpool>> BlobFiles::spool() const {
    static std::atomic<std::uint64_t> counter{0};
    // In a fan-out directory, named like an interrupted write's leftovers: a spool a crash abandoned is
    // collected as garbage, and the rename into place stays within one file system.
    std::filesystem::path path =
        root_ / "00" / fmt::format("{}spool-{}-{}", kTemporaryPrefix, ::getpid(), counter.fetch_add(1));
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) return errno_error("create", path, errno);
    return std::unique_ptr<BlobSpool>(std::make_unique<SpoolFile>(*this, std::move(path), fd));
}

Result<std::unique_ptr<BlobSpool>> open_anonymous_spool(const std::filesystem::path& dir) {
    std::string pattern = (dir / "magpie-spool-XXXXXX").string();
    int fd = ::mkostemp(pattern.data(), O_CLOEXEC);
    if (fd < 0) return errno_error("create", pattern, errno);
    ::unlink(pattern.c_str());  // nameless from here: the descriptor keeps it until the spool ends
    return std::unique_ptr<BlobSpool>(std::make_unique<AnonymousSpool>(std::move(pattern), fd));
}

Result<std::string> MemoryBlobReader::read(std::uint64_t offset, std::size_t length) {
    if (offset >= content_.size()) return std::string();
    return content_.substr(static_cast<std::size_t>(offset), length);
}

std::string blob_id_of(std::string_view content) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_Digest(content.data(), content.size(), digest, &length, sha256(), nullptr) != 1) {
        // Only an OpenSSL that cannot run SHA-256 gets here: a broken installation, not an input error.
        throw std::runtime_error("SHA-256 unavailable in OpenSSL");
    }
    return to_hex(std::string_view(reinterpret_cast<const char*>(digest), length));
}

bool is_valid_blob_id(std::string_view blob_id) {
    if (blob_id.size() != 64) return false;
    for (char c : blob_id) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

BlobFiles::BlobFiles(std::filesystem::path data_dir) : root_(std::move(data_dir) / "blobs") {}

std::filesystem::path BlobFiles::path_of(std::string_view blob_id) const {
    return root_ / std::string(blob_id.substr(0, 2)) / std::string(blob_id.substr(2));
}

bool BlobFiles::is_temporary(std::string_view file_name) { return file_name.starts_with(kTemporaryPrefix); }

Result<void> BlobFiles::create_layout() const {
    auto created_root = make_directory(root_);
    if (!created_root) return created_root.error();
    bool created_any = false;
    for (int i = 0; i < 256; ++i) {
        auto created = make_directory(root_ / fmt::format("{:02x}", i));
        if (!created) return created.error();
        created_any = created_any || *created;
    }
    // New directory entries are durable only once their parent directory is fsynced.
    if (created_any) MAGPIE_TRY(fsync_directory(root_));
    if (*created_root) MAGPIE_TRY(fsync_directory(root_.parent_path()));
    return {};
}

Result<bool> BlobFiles::write(std::string_view blob_id, std::string_view content) const {
    if (!is_valid_blob_id(blob_id)) return make_error(Errc::invalid_argument, "invalid blob id");
    std::filesystem::path final_path = path_of(blob_id);
    auto lock = lock_blobs(root_, LOCK_SH);  // the collector's sweep waits while a blob is written or reused
    if (!lock) return lock.error();
    struct stat existing {};
    if (::stat(final_path.c_str(), &existing) == 0 && static_cast<std::uint64_t>(existing.st_size) == content.size()) {
        // Content-addressed: the same name already holds the same bytes, fsynced before its rename. Its
        // directory entry may still be waiting for the writer's directory fsync, so fsync it here too
        // before the caller commits a row that relies on it. A fresh time keeps the collector off it
        // until the delivery that reuses it has committed.
        if (::utimensat(AT_FDCWD, final_path.c_str(), nullptr, 0) != 0) return errno_error("touch", final_path, errno);
        MAGPIE_TRY(fsync_directory(final_path.parent_path()));
        return false;
    }

    static std::atomic<std::uint64_t> counter{0};
    std::filesystem::path temp_path =
        final_path.parent_path() /
        fmt::format("{}{}-{}-{}", kTemporaryPrefix, blob_id.substr(2, 16), ::getpid(), counter.fetch_add(1));
    UniqueFd fd(::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640));
    if (fd.get() < 0) return errno_error("create", temp_path, errno);

    auto fail = [&](std::string_view what, int error_number) -> Result<bool> {
        ::unlink(temp_path.c_str());
        return errno_error(what, temp_path, error_number);
    };
    if (int error = write_all(fd.get(), content); error != 0) return fail("write", error);
    if (::fsync(fd.get()) != 0) return fail("fsync", errno);
    if (fd.close() != 0) return fail("close", errno);
    if (::rename(temp_path.c_str(), final_path.c_str()) != 0) return fail("rename", errno);
    MAGPIE_TRY(fsync_directory(final_path.parent_path()));
    return true;
}

Result<std::string> BlobFiles::read(std::string_view blob_id, std::uint64_t max_bytes) const {
    if (!is_valid_blob_id(blob_id)) return make_error(Errc::invalid_argument, "invalid blob id");
    std::filesystem::path path = path_of(blob_id);
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return errno_error("open", path, errno);
    struct stat info {};
    if (::fstat(fd.get(), &info) != 0) return errno_error("stat", path, errno);
    auto size = static_cast<std::uint64_t>(info.st_size);
    if (size > max_bytes) {
        return make_error(Errc::limit_exceeded, fmt::format("blob {} is {} bytes, above {}", blob_id, size, max_bytes));
    }
    std::string content(size, '\0');
    std::size_t done = 0;
    while (done < content.size()) {
        ssize_t n = ::read(fd.get(), content.data() + done, content.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno_error("read", path, errno);
        }
        if (n == 0) break;  // shrank under us: report what is there, the caller checks the size
        done += static_cast<std::size_t>(n);
    }
    content.resize(done);
    return content;
}

Result<std::unique_ptr<BlobReader>> BlobFiles::open(std::string_view blob_id) const {
    if (!is_valid_blob_id(blob_id)) return make_error(Errc::invalid_argument, "invalid blob id");
    std::filesystem::path path = path_of(blob_id);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno_error("open", path, errno);
    auto reader = std::make_unique<FileBlobReader>(std::move(path), fd);
    MAGPIE_TRY(reader->load_size());
    return std::unique_ptr<BlobReader>(std::move(reader));
}

Result<BlobFiles::Digest> BlobFiles::digest(std::string_view blob_id) const {
    if (!is_valid_blob_id(blob_id)) return make_error(Errc::invalid_argument, "invalid blob id");
    std::filesystem::path path = path_of(blob_id);
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return errno_error("open", path, errno);
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    if (!context || EVP_DigestInit_ex(context.get(), sha256(), nullptr) != 1) {
        throw std::runtime_error("SHA-256 unavailable in OpenSSL");
    }
    Digest digest;
    std::string buffer(64 * 1024, '\0');
    for (;;) {
        ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno_error("read", path, errno);
        }
        if (n == 0) break;
        EVP_DigestUpdate(context.get(), buffer.data(), static_cast<std::size_t>(n));
        digest.size += static_cast<std::uint64_t>(n);
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_DigestFinal_ex(context.get(), md, &length);
    digest.sha256_hex = to_hex(std::string_view(reinterpret_cast<const char*>(md), length));
    return digest;
}

Result<BlobStorage::Swept> BlobFiles::sweep(std::int64_t cutoff,
                                            const std::function<Result<bool>(std::string_view)>& wanted) const {
    auto lock = lock_blobs(root_, LOCK_EX);
    if (!lock) return lock.error();
    Swept swept;
    std::error_code error;
    for (const auto& dir : std::filesystem::directory_iterator(root_, error)) {
        if (!dir.is_directory(error)) continue;  // strays at the top are not blobs
        const std::string prefix = dir.path().filename().string();
        std::vector<std::filesystem::path> doomed;
        for (const auto& entry : std::filesystem::directory_iterator(dir.path(), error)) {
            struct stat info {};
            if (::lstat(entry.path().c_str(), &info) != 0 || info.st_mtime >= cutoff) continue;
            const std::string name = entry.path().filename().string();
            const std::string id = prefix + name;
            if (!is_temporary(name) && is_valid_blob_id(id)) {
                auto keep = wanted(id);
                if (!keep) return keep.error();
                if (*keep) continue;
            }
            doomed.push_back(entry.path());
            swept.bytes += static_cast<std::uint64_t>(info.st_size);
        }
        if (error) return make_error(Errc::io_error, fmt::format("list {}: {}", dir.path().string(), error.message()));
        for (const auto& path : doomed) {
            if (::unlink(path.c_str()) != 0 && errno != ENOENT) return errno_error("unlink", path, errno);
            ++swept.removed;
        }
        if (!doomed.empty()) MAGPIE_TRY(fsync_directory(dir.path()));
    }
    if (error) return make_error(Errc::io_error, fmt::format("list {}: {}", root_.string(), error.message()));
    return swept;
}

}  // namespace magpie::store
