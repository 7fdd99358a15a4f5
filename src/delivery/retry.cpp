#include "delivery/retry.h"

#include <algorithm>

namespace magpie::delivery {

Result<void> validate(const RetryPolicy& policy) {
    if (policy.intervals.empty()) return make_error(Errc::invalid_argument, "retry intervals are empty");
    if (std::ranges::find(policy.intervals, 0u) != policy.intervals.end()) {
        return make_error(Errc::invalid_argument, "a retry interval is zero");
    }
    if (policy.lifetime == 0) return make_error(Errc::invalid_argument, "the queue lifetime is zero");
    return {};
}

RetryDecision after_temporary_failure(const RetryPolicy& policy, std::int64_t queued_at,
                                      std::uint32_t failed_attempts, std::int64_t now) {
    const std::int64_t expires_at = queued_at + policy.lifetime;
    if (now >= expires_at) return {.give_up = true};
    std::size_t index = failed_attempts == 0 ? 0 : failed_attempts - 1;
    index = std::min(index, policy.intervals.size() - 1);
    return {.give_up = false, .next_attempt_at = std::min<std::int64_t>(now + policy.intervals[index], expires_at)};
}

bool delay_notice_due(const RetryPolicy& policy, std::int64_t queued_at, bool notice_sent, std::int64_t now) {
    return policy.delay_notice_after != 0 && !notice_sent && now >= queued_at + policy.delay_notice_after &&
           now < queued_at + policy.lifetime;
}

}  // namespace magpie::delivery
