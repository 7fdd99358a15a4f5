// API tokens for HTTP Bearer authentication: made here (32 random bytes, shown once as "magpie_" + hex),
// kept by the store as their SHA-256 only, checked here against the store and the login throttle.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "auth/throttle.h"
#include "base/result.h"
#include "store/store.h"

namespace magpie::http {

struct NewApiToken {
    std::string token;  // give this to the user once; never stored
    std::string hash;   // raw SHA-256 of `token`, for Store::add_api_token
};

NewApiToken make_api_token();
std::string hash_api_token(std::string_view token);

// The account a Bearer token belongs to. auth_failed for an unknown or expired token (counted in the
// throttle against the client's network), limit_exceeded while the network is locked out,
// permission_denied for a disabled account. Blocks on the store: call it off the network threads.
Result<store::Account> authenticate_token(store::Store& store, auth::LoginThrottle& throttle, std::string_view token,
                                          std::string_view client_ip, std::int64_t now);

}  // namespace magpie::http
