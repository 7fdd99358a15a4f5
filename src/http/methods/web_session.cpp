#include "http/methods/web_session.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <stdexcept>

#include "base/strings.h"
#include "http/methods/api_token.h"

namespace magpie::http {
namespace {

std::string random_hex(std::size_t octets) {
    unsigned char random[32];
    if (octets > sizeof random) octets = sizeof random;
    // Resource exhaustion, not an expected failure: without entropy no secret can be made at all.
    if (RAND_bytes(random, static_cast<int>(octets)) != 1) throw std::runtime_error("no randomness for a session");
    return to_hex(std::string_view(reinterpret_cast<const char*>(random), octets));
}

}  // namespace

bool WebSessions::expired(const Entry& entry, std::int64_t now, const WebSessionLimits& limits) const {
    return now - entry.used_at >= limits.idle_seconds || now - entry.created_at >= limits.lifetime_seconds;
}

void WebSessions::drop_expired(std::int64_t now, const WebSessionLimits& limits) {
    std::erase_if(sessions_, [&](const auto& item) { return expired(item.second, now, limits); });
}

WebSessions::Created WebSessions::create(std::int64_t account_id, std::string address, std::int64_t now,
                                         const WebSessionLimits& limits) {
    Created created;
    created.id = random_hex(32);
    created.session = WebSession{account_id, std::move(address), random_hex(32)};
    std::lock_guard lock(mutex_);
    drop_expired(now, limits);
    while (!sessions_.empty() && sessions_.size() >= limits.max_sessions) {
        auto oldest = sessions_.begin();
        for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
            if (it->second.used_at < oldest->second.used_at) oldest = it;
        }
        sessions_.erase(oldest);
    }
    sessions_[hash_api_token(created.id)] = Entry{created.session, now, now};
    return created;
}

std::optional<WebSession> WebSessions::find(std::string_view id, std::int64_t now, const WebSessionLimits& limits) {
    if (id.size() != 64) return std::nullopt;
    const std::string key = hash_api_token(id);
    std::lock_guard lock(mutex_);
    auto it = sessions_.find(key);
    if (it == sessions_.end()) return std::nullopt;
    if (expired(it->second, now, limits)) {
        sessions_.erase(it);
        return std::nullopt;
    }
    it->second.used_at = now;
    return it->second.session;
}

void WebSessions::destroy(std::string_view id) {
    const std::string key = hash_api_token(id);
    std::lock_guard lock(mutex_);
    sessions_.erase(key);
}

std::size_t WebSessions::size() {
    std::lock_guard lock(mutex_);
    return sessions_.size();
}

bool csrf_token_matches(const WebSession& session, std::string_view presented) {
    return presented.size() == session.csrf_token.size() && !presented.empty() &&
           CRYPTO_memcmp(presented.data(), session.csrf_token.data(), presented.size()) == 0;
}

}  // namespace magpie::http
