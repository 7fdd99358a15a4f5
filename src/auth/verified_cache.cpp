#include "auth/verified_cache.h"

#include <cstring>

#include <sodium.h>

namespace magpie::auth {

VerifiedCache::VerifiedCache(VerifiedCacheOptions options) : options_(options) {
    if (sodium_init() < 0) throw std::runtime_error("libsodium cannot be initialised");
    randombytes_buf(key_.data(), key_.size());
}

std::size_t VerifiedCache::DigestHash::operator()(const Digest& d) const noexcept {
    std::size_t h;
    std::memcpy(&h, d.data(), sizeof h);  // already a keyed hash: any 8 of its bytes are uniform
    return h;
}

VerifiedCache::Digest VerifiedCache::digest(std::string_view password_hash, std::string_view password) const {
    // Length-prefixed, so no (hash, password) pair can collide with another by moving the boundary.
    std::uint64_t hash_length = password_hash.size();
    crypto_generichash_state state;
    crypto_generichash_init(&state, key_.data(), key_.size(), 32);
    crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(&hash_length), sizeof hash_length);
    crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(password_hash.data()),
                              password_hash.size());
    crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(password.data()), password.size());
    Digest out;
    crypto_generichash_final(&state, out.data(), out.size());
    return out;
}

bool VerifiedCache::contains(std::string_view password_hash, std::string_view password, std::int64_t now) {
    if (options_.ttl_seconds == 0 || password_hash.empty()) return false;
    Digest key = digest(password_hash, password);
    std::lock_guard lock(mutex_);
    auto it = expires_at_.find(key);
    return it != expires_at_.end() && now < it->second;
}

void VerifiedCache::remember(std::string_view password_hash, std::string_view password, std::int64_t now) {
    if (options_.ttl_seconds == 0 || options_.max_entries == 0 || password_hash.empty()) return;
    Digest key = digest(password_hash, password);
    std::lock_guard lock(mutex_);
    auto [it, inserted] = expires_at_.insert_or_assign(key, now + options_.ttl_seconds);
    if (!inserted) return;  // refreshed in place; its place in the eviction order stays
    order_.push_back(key);
    while (expires_at_.size() > options_.max_entries || (!order_.empty() && !expires_at_.contains(order_.front()))) {
        expires_at_.erase(order_.front());
        order_.pop_front();
    }
}

std::size_t VerifiedCache::size() const {
    std::lock_guard lock(mutex_);
    return expires_at_.size();
}

}  // namespace magpie::auth
