// Content-addressed blobs: a blob id is the lower-case hex SHA-256 of the bytes. BlobStorage is where large
// blobs live; BlobFiles keeps each in <data_dir>/blobs/<first 2 hex>/<other 62 hex>, written to a temporary
// file, fsynced, renamed into place and its directory fsynced, so a file under its final name is always
// complete and durable.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"

namespace magpie::store {

// Lower-case hex SHA-256 of `content` (64 characters).
std::string blob_id_of(std::string_view content);

// True for exactly 64 lower-case hex digits; anything else must never reach a file path.
bool is_valid_blob_id(std::string_view blob_id);

// One stored blob opened for reading by ranges, so a large message is served in slices and never held whole
// (IMAP FETCH streams its literals through one). Not thread-safe; one reader per user.
class BlobReader {
public:
    virtual ~BlobReader() = default;
    virtual std::uint64_t size() const = 0;
    // The octets [offset, offset + length) clipped to the blob's end: fewer than `length` only there, and
    // empty for an offset at or past the end. io_error when the bytes cannot be read.
    virtual Result<std::string> read(std::uint64_t offset, std::size_t length) = 0;
};

// A blob already in memory (small blobs stored inline in the database, or a backend without ranged reads).
class MemoryBlobReader final : public BlobReader {
public:
    explicit MemoryBlobReader(std::string content) : content_(std::move(content)) {}
    std::uint64_t size() const override { return content_.size(); }
    Result<std::string> read(std::uint64_t offset, std::size_t length) override;

private:
    std::string content_;
};

// A large message arriving in pieces (an IMAP APPEND literal), written to a temporary file beside the blobs
// as it comes, so it is never held whole in memory. A delivery carries it (Delivery::spooled) and the store
// makes it a blob with persist() before the transaction that references it commits. Dropped unpersisted,
// its file is removed (and one a crash left behind is garbage for `magpie gc`). One user at a time.
class BlobSpool {
public:
    virtual ~BlobSpool() = default;
    // Appends octets (a page-cache write, no fsync). io_error, e.g. a full disk: the spool is then unusable.
    virtual Result<void> append(std::string_view octets) = 0;
    virtual std::uint64_t size() const = 0;
    // The octets appended so far, mapped read-only until unmap() (or the spool's end): parse-once reads them
    // from the page cache, not from the heap.
    virtual Result<std::string_view> map() = 0;
    virtual void unmap() = 0;
    // Fsyncs the file, names it by its SHA-256 (read back in slices) and renames it into place with its
    // directory fsynced, or drops it when that blob is stored already. Returns the blob id and whether a
    // file was written. Durable when it returns; the spool is empty after.
    struct Persisted {
        std::string blob_id;
        bool written = false;
    };
    virtual Result<Persisted> persist() = 0;
};

// A spool in `dir` that has no name (unlinked when made: a crash leaves nothing behind), for a store that keeps
// its blobs elsewhere and copies the mapped octets into them at commit (PostgreSQL's chunks). Its persist()
// answers Errc::unavailable. io_error when the file cannot be made.
Result<std::unique_ptr<BlobSpool>> open_anonymous_spool(const std::filesystem::path& dir);

// Where a backend keeps the bytes of large blobs: files today (BlobFiles), its database or an object store
// tomorrow. Blobs are immutable and content-addressed; a write is durable when it returns.
class BlobStorage {
public:
    virtual ~BlobStorage() = default;

    // Stores the blob durably unless it is already there (same id, same bytes); a blob found there counts
    // as freshly written for the collector's grace period. Returns true when bytes were written.
    virtual Result<bool> write(std::string_view blob_id, std::string_view content) const = 0;
    // Reads a whole blob; not_found when absent. `max_bytes` bounds what is read into memory.
    virtual Result<std::string> read(std::string_view blob_id, std::uint64_t max_bytes) const = 0;
    // Opens a blob for ranged reads (memory stays bounded by what each read asks); not_found when absent.
    // The blob is immutable, so a reader stays valid while it is open (a file stays readable even if the
    // collector unlinks it meanwhile).
    virtual Result<std::unique_ptr<BlobReader>> open(std::string_view blob_id) const = 0;

    // Size and SHA-256 of a stored blob, streamed (memory stays bounded whatever its size).
    struct Digest {
        std::uint64_t size = 0;
        std::string sha256_hex;
    };
    virtual Result<Digest> digest(std::string_view blob_id) const = 0;

    // Removes what was last written before `cutoff` (Unix seconds) and is not `wanted` (asked per blob id;
    // leftovers that are no blob at all go without asking). Writers are held off while it looks and removes,
    // so a blob being written or reused for a delivery is never removed: its time is then fresh.
    struct Swept {
        std::size_t removed = 0;
        std::uint64_t bytes = 0;
    };
    virtual Result<Swept> sweep(std::int64_t cutoff,
                                const std::function<Result<bool>(std::string_view blob_id)>& wanted) const = 0;

    // A spool for a large blob arriving in pieces; Errc::unavailable where the storage has none.
    virtual Result<std::unique_ptr<BlobSpool>> spool() const;
};

// The large-blob files under one data directory. Writers take a shared lock on <data_dir>/blobs.lock and the
// sweep an exclusive one (flock), so the collector of `magpie gc` is safe beside a running magpied too.
class BlobFiles final : public BlobStorage {
public:
    explicit BlobFiles(std::filesystem::path data_dir);

    // Creates blobs/ and its 256 fan-out directories (durably) when they are missing.
    Result<void> create_layout() const;

    std::filesystem::path root() const { return root_; }
    std::filesystem::path path_of(std::string_view blob_id) const;  // id must be valid

    // Writes the blob durably unless a file of that name and size is already there (immutable: same name,
    // same bytes), whose modification time is then refreshed. Returns true when a file was written.
    Result<bool> write(std::string_view blob_id, std::string_view content) const override;
    Result<std::string> read(std::string_view blob_id, std::uint64_t max_bytes) const override;
    Result<std::unique_ptr<BlobReader>> open(std::string_view blob_id) const override;
    Result<Digest> digest(std::string_view blob_id) const override;
    Result<Swept> sweep(std::int64_t cutoff,
                        const std::function<Result<bool>(std::string_view blob_id)>& wanted) const override;
    // A temporary file under blobs/00/, named as an interrupted write's leftovers are (garbage after a crash).
    Result<std::unique_ptr<BlobSpool>> spool() const override;

    // True for the name of a temporary file left by a crash between write and rename (garbage).
    static bool is_temporary(std::string_view file_name);

private:
    std::filesystem::path root_;
};

}  // namespace magpie::store
