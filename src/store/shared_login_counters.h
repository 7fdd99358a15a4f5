// Failed-login counters kept in the store (auth::LoginThrottle), so that every node of a shared store counts
// the same failures and a guesser spreading tries over N nodes gets one node's budget, not N times it.
// Only a store several nodes share has them (PostgreSQL); the embedded store's one node counts in memory.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace magpie::store {

class Store;

// One entry per key (the throttle's "u:<account>" or "n:<client network>"); times are Unix seconds.
struct LoginFailureEntry {
    std::uint32_t failures = 0;
    std::int64_t window_start = 0;
    std::uint32_t lockouts = 0;  // consecutive lockouts, for the doubling
    std::int64_t locked_until = 0;
    std::int64_t last_failure = 0;
};

// Thread-safe; each call is a round trip to the store (call it off the network threads).
class SharedLoginCounters {
public:
    virtual ~SharedLoginCounters() = default;
    // The latest locked_until among `keys` (0 when none is locked or known).
    virtual Result<std::int64_t> locked_until(const std::vector<std::string>& keys) = 0;
    // Runs `change` on the key's entry (a zero one when absent) under a lock every node respects, and keeps
    // what it leaves. Entries untouched since `stale_before` are forgotten on the way (a bounded number per
    // call), so the counters stay as small as the recent failures.
    virtual Result<void> update(std::string_view key, std::int64_t now, std::int64_t stale_before,
                                const std::function<void(LoginFailureEntry&)>& change) = 0;
    virtual Result<void> erase(std::string_view key) = 0;
};

// The counters every node of `store` shares, owned by the store; nullptr when it serves one node (the
// embedded store) or is open read-only.
SharedLoginCounters* shared_login_counters(Store& store);

}  // namespace magpie::store
