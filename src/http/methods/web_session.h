// The webmail's sign-in sessions, kept by the store so that they survive a restart of magpied (and are
// shared by every node of a PostgreSQL cluster). A session is a row of the API tokens table (store.h
// ApiToken), which already holds what a session needs durably: the owner, a SHA-256 key, the creation time
// and an absolute expiry; no schema step of its own. Its name, "webmail:<tag>:<password tag>", says what it
// is in `magpie token list` (and `magpie token revoke` signs that session out).
//
// - The cookie carries 32 random bytes (64 hex characters); the store keeps the SHA-256 of a domain-separated
//   string made from it ("magpie webmail session", NUL, the id). A NUL cannot travel in an HTTP header, so
//   no Bearer token can ever match a session's row, and a session cannot be used without its CSRF check.
// - The CSRF token is derived from the id (SHA-256 of "magpie webmail csrf", NUL, the id): nothing else to
//   keep, and a restart does not change it, so an open page keeps working.
// - The password tag is 8 octets of the SHA-256 of the account's password hash at sign-in: after a password
//   change the tags differ and the session is revoked on its next use (`magpie user passwd` signs the user
//   out of the webmail everywhere, without that command knowing about sessions).
// - Idle expiry is kept in memory (a write per request would cost a commit): after a restart a session's
//   idle time starts again from its first use, while the absolute lifetime is the store's and holds.
//
// Every call that takes a Store blocks on it: run it on the store executor. Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/result.h"
#include "store/store.h"

namespace magpie::http {

struct WebSessionLimits {
    std::uint32_t idle_seconds = 8 * 3600;         // unused this long: gone
    std::uint32_t lifetime_seconds = 7 * 86400;    // signed in this long: gone, whatever the use
    std::size_t max_sessions = 10000;              // idle clocks kept in memory; the oldest go first
    // Sessions one account may hold at once; signing in beyond it ends the account's oldest session. A bound
    // on the rows one password can make (the limit of the store table, not of memory).
    std::size_t max_sessions_per_account = 100;
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
    struct Found {
        WebSession session;
        store::Account account;  // as the store has it now
    };
    // Starts a session for `account` (just authenticated). Removes the account's expired sessions and, at
    // limits.max_sessions_per_account, its oldest. Durable when it returns. Store errors pass through.
    Result<Created> create(store::Store& store, const store::Account& account, std::int64_t now,
                           const WebSessionLimits& limits);
    // The live session of cookie value `id` with its account (touched: its idle time starts again).
    // auth_failed when unknown, expired (its row is removed) or its password changed (revoked);
    // permission_denied for a disabled account; other store errors pass through.
    Result<Found> find(store::Store& store, std::string_view id, std::int64_t now, const WebSessionLimits& limits);
    // Ends the session of `id` (sign-out). Unknown ids are fine: the result is the same.
    Result<void> destroy(store::Store& store, std::string_view id);
    std::size_t idle_clocks();

private:
    // Starts the idle period of session `name` again; false (and forgotten) when it had already run out.
    bool touch(const std::string& name, std::int64_t now, const WebSessionLimits& limits);

    std::mutex mutex_;
    std::unordered_map<std::string, std::int64_t> used_at_;  // by token name: last use, Unix seconds
};

// The CSRF token check: equal length and bytes, in time that depends only on the length.
bool csrf_token_matches(const WebSession& session, std::string_view presented);

}  // namespace magpie::http
