// A short-lived memory of successful password verifications, so that a client logging in again with the password
// it used a moment ago (phones and pollers reconnect all day) does not pay argon2id's ~90 ms again (issue 17).
// What is kept is a keyed BLAKE2b digest (a random per-process key) of the account's stored hash and the password,
// never the password. A password change stores a new hash, so old entries can no longer match; a wrong password
// never matches, so it always pays the full verification. Entries expire after `ttl_seconds`; at most
// `max_entries` are kept (the oldest go first). Thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string_view>
#include <unordered_map>

namespace magpie::auth {

struct VerifiedCacheOptions {
    std::uint32_t ttl_seconds = 300;  // 0 turns the cache off
    std::size_t max_entries = 10000;
};

class VerifiedCache {
public:
    explicit VerifiedCache(VerifiedCacheOptions options = {});

    // True when this password was verified against this stored hash less than ttl_seconds before `now`
    // (Unix seconds).
    bool contains(std::string_view password_hash, std::string_view password, std::int64_t now);
    // Records a successful verification at `now`.
    void remember(std::string_view password_hash, std::string_view password, std::int64_t now);

    std::size_t size() const;

private:
    using Digest = std::array<unsigned char, 32>;
    struct DigestHash {
        std::size_t operator()(const Digest& d) const noexcept;
    };
    Digest digest(std::string_view password_hash, std::string_view password) const;

    VerifiedCacheOptions options_;
    std::array<unsigned char, 32> key_{};
    mutable std::mutex mutex_;
    std::unordered_map<Digest, std::int64_t, DigestHash> expires_at_;
    std::deque<Digest> order_;  // insertion order, for eviction
};

}  // namespace magpie::auth
