// LoginThrottle: counts failed logins per account and per client network and refuses further attempts for
// a while once too many fail, so that password guessing is slow. Sans-clock: every call takes the current
// time (Unix seconds) from the caller. Memory is bounded: each table is capped and evicts its stalest entry.
// Given the store's shared counters (PostgreSQL: several nodes on one store), it counts there instead, so
// that guesses spread over the nodes add up as on one node; each call is then a store round trip (call it
// off the network threads), and while the store cannot answer it counts in memory as before.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "store/shared_login_counters.h"

namespace magpie::auth {

struct ThrottleLimits {
    // Failures within window_seconds that trigger a lockout. Per account the bound is low (guessing one
    // password); per client network it is higher, because many users may share a NAT address.
    std::uint32_t max_user_failures = 5;
    std::uint32_t max_ip_failures = 20;
    // Failures are counted in windows this long, each starting at the first failure after the last one
    // ended (or after a lockout); a quiet period this long since the last failure or lockout also resets
    // the lockout doubling.
    std::int64_t window_seconds = 600;
    // The first lockout lasts this long and each further one doubles, up to max_lockout_seconds. Kept short
    // per account so that an attacker cannot lock a real user out for long.
    std::int64_t first_lockout_seconds = 30;
    std::int64_t max_lockout_seconds = 3600;
    // Entries kept per table; past this, the least recently touched entry is evicted.
    std::size_t max_tracked_users = 100000;
    std::size_t max_tracked_ips = 100000;
    // IPv6 clients are counted per prefix of this many bits (one customer usually holds a whole /64).
    unsigned ipv6_prefix_bits = 64;
};

// The answer to "may this login be attempted now?".
struct ThrottleVerdict {
    bool allowed = true;
    std::int64_t retry_after_seconds = 0;  // when refused: how long until an attempt is allowed again
};

// Thread-safe: one instance is shared by every listener (SMTP submission, IMAP, HTTP).
class LoginThrottle {
public:
    // `shared` (may be null: in memory only) must outlive the throttle.
    explicit LoginThrottle(ThrottleLimits limits = {}, store::SharedLoginCounters* shared = nullptr);

    // Checks both the account and the client network; refused if either is locked out.
    ThrottleVerdict check(std::string_view user, std::string_view client_ip, std::int64_t now);

    // A failed attempt counts against both the account and the client network.
    void record_failure(std::string_view user, std::string_view client_ip, std::int64_t now);

    // A success clears the account's failures but not the network's: one valid login must not reset the
    // count of an address that is guessing other accounts' passwords.
    void record_success(std::string_view user, std::string_view client_ip, std::int64_t now);

    std::size_t tracked_users() const;
    std::size_t tracked_ips() const;

    // The key an address is counted under: IPv4 as is, IPv6 truncated to ipv6_prefix_bits, anything
    // unparsable as the literal string. Public for tests and logs.
    std::string network_key(std::string_view client_ip) const;

private:
    struct Entry {
        store::LoginFailureEntry counts;
        std::list<std::string>::iterator age;  // position in Table::by_age
    };
    // A map plus a recency list: the front of by_age is the least recently touched key.
    struct Table {
        std::unordered_map<std::string, Entry> entries;
        std::list<std::string> by_age;
    };

    static std::int64_t remaining(const Table& table, const std::string& key, std::int64_t now);
    void fail(Table& table, std::size_t capacity, std::uint32_t max_failures, const std::string& key,
              std::int64_t now);
    // One failure applied to an entry: the counting rule, the same in memory and in the store.
    void count_failure(store::LoginFailureEntry& entry, std::uint32_t max_failures, std::int64_t now) const;
    bool fail_shared(const std::string& key, std::uint32_t max_failures, std::int64_t now);

    ThrottleLimits limits_;
    store::SharedLoginCounters* shared_;
    mutable std::mutex mutex_;
    Table users_;
    Table ips_;
};

}  // namespace magpie::auth
