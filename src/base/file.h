// Files written so that a crash or power cut leaves either the old content or all of the new under a name,
// never an empty or partial file (ARCHITECTURE.md, "durable before acknowledged"): the one home of the file
// descriptor guard, the directory fsync and the durable small-file write that the store's blobs, the demo's
// certificate and the DKIM keys all use.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string_view>

#include "base/result.h"

namespace magpie {

// Owns a file descriptor and closes it on every path out of a scope.
class UniqueFd {
public:
    explicit UniqueFd(int fd = -1) : fd_(fd) {}
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() { close(); }
    int get() const { return fd_; }
    // Closes now and returns close()'s result, which for a written file can be the first sign of a failed write.
    int close();

private:
    int fd_;
};

// Writes all of `bytes` to `fd`, retrying short writes and EINTR. Returns 0, or the errno of the failed write.
int write_all(int fd, std::string_view bytes);

// fsync of a directory, so that entries created or renamed in it survive a crash. io_error names the step.
Result<void> fsync_directory(const std::filesystem::path& dir);

// Writes `content` to a temporary file beside `path` (created with `mode`, so a key is never readable by others,
// even briefly), fsyncs it, renames it over `path` and fsyncs the directory. io_error naming the file and the
// failed step; the temporary file is removed on failure.
Result<void> write_file_durably(const std::filesystem::path& path, std::string_view content, mode_t mode);

}  // namespace magpie
