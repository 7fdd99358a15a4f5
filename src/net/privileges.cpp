#include "net/privileges.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace magpie::net {

Result<void> drop_privileges(const std::string& user, const std::filesystem::path& data_dir) {
    if (user.empty() || ::geteuid() != 0) return {};
    std::vector<char> buffer(16384);
    passwd entry{};
    passwd* found = nullptr;
    if (::getpwnam_r(user.c_str(), &entry, buffer.data(), buffer.size(), &found) != 0 || !found) {
        return make_error(Errc::not_found, fmt::format("no such user '{}' to run as", user));
    }
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(data_dir, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
        if (::lchown(it->path().c_str(), found->pw_uid, found->pw_gid) != 0) {
            return make_error(Errc::io_error, fmt::format("chown {}: {}", it->path().string(), std::strerror(errno)));
        }
    }
    if (::chown(data_dir.c_str(), found->pw_uid, found->pw_gid) != 0) {
        return make_error(Errc::io_error, fmt::format("chown {}: {}", data_dir.string(), std::strerror(errno)));
    }
    if (::initgroups(found->pw_name, found->pw_gid) != 0 || ::setgid(found->pw_gid) != 0 ||
        ::setuid(found->pw_uid) != 0) {
        return make_error(Errc::permission_denied, fmt::format("cannot switch to user '{}': {}", user, std::strerror(errno)));
    }
    if (::setuid(0) == 0) return make_error(Errc::permission_denied, "could regain root after dropping it");
    return {};
}

}  // namespace magpie::net
