// When the outgoing queue tries a deferred recipient again, and when it gives up (RFC 5321 4.5.4.1: retry
// after at least 30 minutes, give up after 4 to 5 days). The first retry comes sooner (greylisting servers
// accept a second try after a few minutes); later ones grow to a ceiling. Pure functions of the times given:
// the scheduler passes in the clock.
#pragma once

#include <cstdint>
#include <vector>

#include "base/result.h"

namespace magpie::delivery {

struct RetryPolicy {
    // Seconds to wait after the 1st, 2nd, ... failed attempt; the last value repeats.
    std::vector<std::uint32_t> intervals{300, 1800, 3600, 7200, 14400};
    std::uint32_t lifetime = 5 * 86400;            // seconds a recipient may stay queued, then it fails
    std::uint32_t delay_notice_after = 4 * 3600;   // seconds queued before one "delayed" DSN; 0 = never
};

// invalid_argument for an empty or zero interval list or a zero lifetime.
Result<void> validate(const RetryPolicy& policy);

struct RetryDecision {
    bool give_up = false;                // the lifetime is over: fail the recipient, report to the sender
    std::int64_t next_attempt_at = 0;    // Unix seconds, when !give_up
};

// After the `failed_attempts`-th temporary failure (1 for the first) of a recipient queued at `queued_at`.
// The last attempt falls on the end of the lifetime itself, never after it.
RetryDecision after_temporary_failure(const RetryPolicy& policy, std::int64_t queued_at,
                                      std::uint32_t failed_attempts, std::int64_t now);

// Whether a recipient still queued should now get its one delay notice (RFC 3464 "delayed").
bool delay_notice_due(const RetryPolicy& policy, std::int64_t queued_at, bool notice_sent, std::int64_t now);

}  // namespace magpie::delivery
