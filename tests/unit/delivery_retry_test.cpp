#include "delivery/retry.h"

#include <gtest/gtest.h>

namespace magpie::delivery {
namespace {

constexpr std::int64_t kQueued = 1'800'000'000;

TEST(RetryPolicy, FirstRetryAfterFiveMinutesThenGrowsToFourHours) {
    RetryPolicy policy;
    std::int64_t now = kQueued;
    std::vector<std::int64_t> waits;
    for (std::uint32_t attempt = 1; attempt <= 7; ++attempt) {
        auto decision = after_temporary_failure(policy, kQueued, attempt, now);
        ASSERT_FALSE(decision.give_up);
        waits.push_back(decision.next_attempt_at - now);
        now = decision.next_attempt_at;
    }
    EXPECT_EQ(waits, (std::vector<std::int64_t>{300, 1800, 3600, 7200, 14400, 14400, 14400}));
}

TEST(RetryPolicy, GivesUpOnceTheLifetimeIsOver) {
    RetryPolicy policy;
    auto decision = after_temporary_failure(policy, kQueued, 30, kQueued + policy.lifetime);
    EXPECT_TRUE(decision.give_up);
}

TEST(RetryPolicy, LastAttemptFallsOnTheEndOfTheLifetime) {
    RetryPolicy policy;
    const std::int64_t now = kQueued + policy.lifetime - 60;
    auto decision = after_temporary_failure(policy, kQueued, 20, now);
    ASSERT_FALSE(decision.give_up);
    EXPECT_EQ(decision.next_attempt_at, kQueued + policy.lifetime);
}

TEST(RetryPolicy, ShortScheduleForTests) {
    RetryPolicy policy{.intervals = {1, 2}, .lifetime = 10, .delay_notice_after = 0};
    EXPECT_EQ(after_temporary_failure(policy, kQueued, 1, kQueued).next_attempt_at, kQueued + 1);
    EXPECT_EQ(after_temporary_failure(policy, kQueued, 5, kQueued + 3).next_attempt_at, kQueued + 5);
    EXPECT_TRUE(after_temporary_failure(policy, kQueued, 6, kQueued + 10).give_up);
}

TEST(RetryPolicy, OneDelayNoticeAfterItsTimeAndNeverWhenOff) {
    RetryPolicy policy;
    EXPECT_FALSE(delay_notice_due(policy, kQueued, false, kQueued + 3600));
    EXPECT_TRUE(delay_notice_due(policy, kQueued, false, kQueued + 4 * 3600));
    EXPECT_FALSE(delay_notice_due(policy, kQueued, true, kQueued + 5 * 3600));
    policy.delay_notice_after = 0;
    EXPECT_FALSE(delay_notice_due(policy, kQueued, false, kQueued + 5 * 3600));
}

TEST(RetryPolicy, RejectsEmptyOrZeroIntervalsAndZeroLifetime) {
    EXPECT_FALSE(validate(RetryPolicy{.intervals = {}}));
    EXPECT_FALSE(validate(RetryPolicy{.intervals = {300, 0}}));
    EXPECT_FALSE(validate(RetryPolicy{.lifetime = 0}));
    EXPECT_TRUE(validate(RetryPolicy{}));
}

}  // namespace
}  // namespace magpie::delivery
