#include "auth/throttle.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <iterator>

#include "base/strings.h"

namespace magpie::auth {
namespace {

// Account names are compared case-insensitively (users log in with their address, in any case), and a key
// is cut to a bound so that a long bogus name cannot make one entry large. SASL bounds identities anyway.
constexpr std::size_t kMaxKeyOctets = 320;

std::string user_key(std::string_view user) {
    return to_lower(user.substr(0, kMaxKeyOctets));
}

// Keys in the shared counters: one table for both kinds, told apart by a prefix.
std::string shared_user_key(const std::string& key) {
    return "u:" + key;
}
std::string shared_network_key(const std::string& key) {
    return "n:" + key;
}

}  // namespace

LoginThrottle::LoginThrottle(ThrottleLimits limits, store::SharedLoginCounters* shared)
    : limits_(limits), shared_(shared) {}

std::string LoginThrottle::network_key(std::string_view client_ip) const {
    std::string text(client_ip.substr(0, kMaxKeyOctets));
    std::array<unsigned char, 16> v6{};
    if (inet_pton(AF_INET6, text.c_str(), v6.data()) != 1) return text;
    // An IPv4-mapped address (::ffff:192.0.2.1) is the IPv4 client it names.
    static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char out[INET6_ADDRSTRLEN] = {};
    if (std::memcmp(v6.data(), kMapped, sizeof kMapped) == 0) {
        inet_ntop(AF_INET, v6.data() + 12, out, sizeof out);
        return out;
    }
    unsigned bits = std::min(limits_.ipv6_prefix_bits, 128u);
    for (unsigned i = 0; i < 16; ++i) {
        unsigned keep = bits > i * 8 ? std::min(bits - i * 8, 8u) : 0;
        v6[i] &= static_cast<unsigned char>(0xff00u >> keep);
    }
    inet_ntop(AF_INET6, v6.data(), out, sizeof out);
    return std::string(out) + "/" + std::to_string(bits);
}

std::int64_t LoginThrottle::remaining(const Table& table, const std::string& key, std::int64_t now) {
    auto it = table.entries.find(key);
    if (it == table.entries.end() || it->second.counts.locked_until <= now) return 0;
    return it->second.counts.locked_until - now;
}

ThrottleVerdict LoginThrottle::check(std::string_view user, std::string_view client_ip, std::int64_t now) {
    std::string ukey = user_key(user);
    std::string nkey = network_key(client_ip);
    std::int64_t wait = 0;
    if (shared_ != nullptr) {
        auto locked = shared_->locked_until({shared_user_key(ukey), shared_network_key(nkey)});
        if (locked) wait = std::max<std::int64_t>(*locked - now, 0);
    }
    std::lock_guard lock(mutex_);
    // The memory tables hold what was counted while the shared counters could not be reached.
    wait = std::max({wait, remaining(users_, ukey, now), remaining(ips_, nkey, now)});
    return wait > 0 ? ThrottleVerdict{false, wait} : ThrottleVerdict{};
}

void LoginThrottle::count_failure(store::LoginFailureEntry& entry, std::uint32_t max_failures,
                                  std::int64_t now) const {
    // Attempts refused during a lockout never reach a password check; if a caller records one anyway it
    // must not lengthen the lockout.
    if (entry.locked_until > now) return;
    // A quiet window after the last failure (or after the lockout ended) forgives everything.
    if (now - std::max(entry.last_failure, entry.locked_until) >= limits_.window_seconds) {
        entry.failures = 0;
        entry.lockouts = 0;
        entry.window_start = now;
    } else if (now - entry.window_start >= limits_.window_seconds) {
        entry.failures = 0;
        entry.window_start = now;
    }
    entry.last_failure = now;
    if (++entry.failures < max_failures) return;
    std::int64_t lockout = std::max<std::int64_t>(limits_.first_lockout_seconds, 1);
    for (std::uint32_t i = 1; i <= entry.lockouts && lockout < limits_.max_lockout_seconds; ++i) lockout *= 2;
    entry.locked_until = now + std::min(lockout, limits_.max_lockout_seconds);
    ++entry.lockouts;
    entry.failures = 0;
    entry.window_start = now;
}

bool LoginThrottle::fail_shared(const std::string& key, std::uint32_t max_failures, std::int64_t now) {
    // An entry is forgotten once neither its window nor its longest lockout can matter any more.
    const std::int64_t stale_before = now - limits_.window_seconds - limits_.max_lockout_seconds;
    auto done = shared_->update(key, now, stale_before, [&](store::LoginFailureEntry& entry) {
        count_failure(entry, max_failures, now);
    });
    return static_cast<bool>(done);
}

void LoginThrottle::fail(Table& table, std::size_t capacity, std::uint32_t max_failures,
                         const std::string& key, std::int64_t now) {
    auto it = table.entries.find(key);
    if (it == table.entries.end()) {
        if (capacity == 0) return;
        // Evicting the stalest entry may forget a lockout; under a flood of distinct keys that is the
        // price of bounded memory, and the per-network table still holds the flooding client.
        while (table.entries.size() >= capacity) {
            table.entries.erase(table.by_age.front());
            table.by_age.pop_front();
        }
        table.by_age.push_back(key);
        it = table.entries.emplace(key, Entry{}).first;
        it->second.counts.window_start = now;
        it->second.age = std::prev(table.by_age.end());
    } else {
        table.by_age.splice(table.by_age.end(), table.by_age, it->second.age);
    }
    count_failure(it->second.counts, max_failures, now);
}

void LoginThrottle::record_failure(std::string_view user, std::string_view client_ip, std::int64_t now) {
    std::string ukey = user_key(user);
    std::string nkey = network_key(client_ip);
    const bool user_shared =
        shared_ != nullptr && fail_shared(shared_user_key(ukey), limits_.max_user_failures, now);
    const bool network_shared =
        shared_ != nullptr && fail_shared(shared_network_key(nkey), limits_.max_ip_failures, now);
    std::lock_guard lock(mutex_);
    if (!user_shared) fail(users_, limits_.max_tracked_users, limits_.max_user_failures, ukey, now);
    if (!network_shared) fail(ips_, limits_.max_tracked_ips, limits_.max_ip_failures, nkey, now);
}

void LoginThrottle::record_success(std::string_view user, std::string_view /*client_ip*/,
                                   std::int64_t /*now*/) {
    std::string ukey = user_key(user);
    if (shared_ != nullptr) (void)shared_->erase(shared_user_key(ukey));  // unreachable: it lapses on its own
    std::lock_guard lock(mutex_);
    auto it = users_.entries.find(ukey);
    if (it == users_.entries.end()) return;
    users_.by_age.erase(it->second.age);
    users_.entries.erase(it);
}

std::size_t LoginThrottle::tracked_users() const {
    std::lock_guard lock(mutex_);
    return users_.entries.size();
}

std::size_t LoginThrottle::tracked_ips() const {
    std::lock_guard lock(mutex_);
    return ips_.entries.size();
}

}  // namespace magpie::auth
