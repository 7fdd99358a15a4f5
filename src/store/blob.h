// Content-addressed blobs: a blob id is the lower-case hex SHA-256 of the bytes, and a large blob lives in
// <data_dir>/blobs/<first 2 hex>/<other 62 hex>, written to a temporary file, fsynced, renamed into place
// and its directory fsynced, so a file under its final name is always complete and durable.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "base/result.h"

namespace magpie::store {

// Lower-case hex SHA-256 of `content` (64 characters).
std::string blob_id_of(std::string_view content);

// True for exactly 64 lower-case hex digits; anything else must never reach a file path.
bool is_valid_blob_id(std::string_view blob_id);

// The large-blob files under one data directory.
class BlobFiles {
public:
    explicit BlobFiles(std::filesystem::path data_dir);

    // Creates blobs/ and its 256 fan-out directories (durably) when they are missing.
    Result<void> create_layout() const;

    std::filesystem::path root() const { return root_; }
    std::filesystem::path path_of(std::string_view blob_id) const;  // id must be valid

    // Writes the blob durably unless a file of that name and size is already there (immutable: same name,
    // same bytes). Returns true when a file was written.
    Result<bool> write(std::string_view blob_id, std::string_view content) const;

    // Reads a whole blob file; not_found when absent. `max_bytes` bounds what is read into memory.
    Result<std::string> read(std::string_view blob_id, std::uint64_t max_bytes) const;

    // Size and SHA-256 of a blob file, streamed (memory stays bounded whatever the file's size).
    struct Digest {
        std::uint64_t size = 0;
        std::string sha256_hex;
    };
    Result<Digest> digest(std::string_view blob_id) const;

    // True for the name of a temporary file left by a crash between write and rename (garbage).
    static bool is_temporary(std::string_view file_name);

private:
    std::filesystem::path root_;
};

}  // namespace magpie::store
