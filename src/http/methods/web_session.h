// The webmail's sign-in sessions: kept in this process's memory only (a restart signs everyone out, which
// is the documented price of keeping no credentials on disk), bounded in number, each with an idle expiry
// and an absolute lifetime. A session is found by the random id in its HttpOnly cookie; it holds its own
// CSRF token, which the app sends back in a header on every POST (the cookie alone never authorises a
// change). The table keys sessions by the SHA-256 of their ids, so timing of the lookup reveals nothing
// about a live id. Thread-safe; the caller passes the clock.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace magpie::http {

struct WebSessionLimits {
    std::uint32_t idle_seconds = 8 * 3600;         // unused this long: gone
    std::uint32_t lifetime_seconds = 7 * 86400;    // signed in this long: gone, whatever the use
    std::size_t max_sessions = 10000;              // in the table; the least recently used goes first
};

struct WebSession {
    std::int64_t account_id = 0;
    std::string address;     // the account's address, looked up again on each request (disabled, deleted)
    std::string csrf_token;  // 64 hex characters
};

class WebSessions {
public:
    struct Created {
        std::string id;  // 64 hex characters, for the cookie; never stored
        WebSession session;
    };
    // Starts a session; drops expired ones, then the least recently used while the table is full.
    Created create(std::int64_t account_id, std::string address, std::int64_t now, const WebSessionLimits& limits);
    // The live session of `id` (touched: its idle time starts again), or nullopt when unknown or expired.
    std::optional<WebSession> find(std::string_view id, std::int64_t now, const WebSessionLimits& limits);
    void destroy(std::string_view id);
    std::size_t size();

private:
    struct Entry {
        WebSession session;
        std::int64_t created_at = 0;
        std::int64_t used_at = 0;
    };
    void drop_expired(std::int64_t now, const WebSessionLimits& limits);
    bool expired(const Entry& entry, std::int64_t now, const WebSessionLimits& limits) const;

    std::mutex mutex_;
    std::map<std::string, Entry> sessions_;  // by SHA-256 of the id
};

// The CSRF token check: equal length and bytes, in time that depends only on the length.
bool csrf_token_matches(const WebSession& session, std::string_view presented);

}  // namespace magpie::http
