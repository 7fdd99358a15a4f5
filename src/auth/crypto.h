// The few cryptographic primitives the auth module shares between its parts (OpenSSL for SHA-256 and HMAC,
// libsodium for randomness and constant-time comparison). Internal to src/auth.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace magpie::auth {

// Initializes libsodium once per process (thread-safe); throws if the system has no entropy source.
void ensure_sodium();

std::string sha256(std::string_view data);
std::string hmac_sha256(std::string_view key, std::string_view data);
std::string random_bytes(std::size_t count);

// Equal length and equal bytes, in time that depends only on the length.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace magpie::auth
