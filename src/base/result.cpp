#include "base/result.h"

namespace magpie {

const char* errc_name(Errc code) {
    switch (code) {
        case Errc::invalid_argument: return "invalid argument";
        case Errc::not_found: return "not found";
        case Errc::already_exists: return "already exists";
        case Errc::limit_exceeded: return "limit exceeded";
        case Errc::permission_denied: return "permission denied";
        case Errc::auth_failed: return "authentication failed";
        case Errc::io_error: return "i/o error";
        case Errc::corrupt: return "corrupt";
        case Errc::unavailable: return "unavailable";
        case Errc::conflict: return "conflict";
        case Errc::internal: return "internal error";
    }
    return "unknown";
}

}  // namespace magpie
