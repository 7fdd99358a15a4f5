#include "net/keepalive.h"

#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace magpie::net {
namespace {

Result<void> set_int(int fd, int level, int name, int value, const char* what) {
    if (::setsockopt(fd, level, name, &value, sizeof value) != 0) {
        return make_error(Errc::io_error, fmt::format("setsockopt {}: {}", what, std::strerror(errno)));
    }
    return {};
}

}  // namespace

Result<void> enable_keepalive(int fd, const KeepAlive& options) {
    MAGPIE_TRY(set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE"));
    MAGPIE_TRY(
        set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, static_cast<int>(options.idle.count()), "TCP_KEEPIDLE"));
    MAGPIE_TRY(
        set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, static_cast<int>(options.interval.count()), "TCP_KEEPINTVL"));
    MAGPIE_TRY(set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, options.probes, "TCP_KEEPCNT"));
    return {};
}

}  // namespace magpie::net
