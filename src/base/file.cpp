#include "base/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace magpie {
namespace {

Error io_error(std::string_view step, const std::filesystem::path& path, int error) {
    return make_error(Errc::io_error,
                      fmt::format("cannot {} {}: {}", step, path.string(), std::strerror(error)));
}

}  // namespace

int UniqueFd::close() {
    int result = fd_ >= 0 ? ::close(fd_) : 0;
    fd_ = -1;
    return result;
}

int write_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
        ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return 0;
}

Result<void> fsync_directory(const std::filesystem::path& dir) {
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0) return io_error("open directory", dir, errno);
    if (::fsync(fd.get()) != 0) return io_error("fsync directory", dir, errno);
    return {};
}

Result<void> write_file_durably(const std::filesystem::path& path, std::string_view content, mode_t mode) {
    static std::atomic<unsigned> counter{0};
    std::filesystem::path directory =
        path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
    std::filesystem::path temp =
        directory / fmt::format(".{}.tmp-{}-{}", path.filename().string(), ::getpid(), counter.fetch_add(1));
    UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
    if (fd.get() < 0) return io_error("create", temp, errno);
    auto fail = [&](std::string_view step, int error) {
        ::unlink(temp.c_str());
        return io_error(step, path, error);
    };
    // The umask may have narrowed `mode` at creation; a certificate must still be readable as asked.
    if (::fchmod(fd.get(), mode) != 0) return fail("chmod", errno);
    if (int error = write_all(fd.get(), content); error != 0) return fail("write", error);
    if (::fsync(fd.get()) != 0) return fail("fsync", errno);
    if (fd.close() != 0) return fail("close", errno);
    if (::rename(temp.c_str(), path.c_str()) != 0) return fail("rename into", errno);
    return fsync_directory(directory);
}

}  // namespace magpie
