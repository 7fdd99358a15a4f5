#include <gtest/gtest.h>

#include <string>

#include "auth/throttle.h"

namespace magpie::auth {
namespace {

constexpr std::int64_t kT0 = 1'800'000'000;

ThrottleLimits small_limits() {
    ThrottleLimits limits;
    limits.max_user_failures = 3;
    limits.max_ip_failures = 5;
    limits.window_seconds = 600;
    limits.first_lockout_seconds = 30;
    limits.max_lockout_seconds = 100;
    return limits;
}

void fail_times(LoginThrottle& throttle, int times, std::string_view user, std::string_view ip,
                std::int64_t now) {
    for (int i = 0; i < times; ++i) throttle.record_failure(user, ip, now);
}

TEST(LoginThrottle, LocksAccountOutAfterThresholdUntilRetryAfter) {
    LoginThrottle throttle(small_limits());
    fail_times(throttle, 2, "user@example.test", "192.0.2.1", kT0);
    EXPECT_TRUE(throttle.check("user@example.test", "192.0.2.1", kT0 + 1).allowed);
    throttle.record_failure("user@example.test", "192.0.2.1", kT0 + 2);
    auto verdict = throttle.check("user@example.test", "192.0.2.1", kT0 + 2);
    EXPECT_FALSE(verdict.allowed);
    EXPECT_EQ(verdict.retry_after_seconds, 30);
    // The account is locked from any address, other accounts are not.
    EXPECT_FALSE(throttle.check("user@example.test", "198.51.100.7", kT0 + 10).allowed);
    EXPECT_EQ(throttle.check("user@example.test", "198.51.100.7", kT0 + 10).retry_after_seconds, 22);
    EXPECT_TRUE(throttle.check("other@example.test", "192.0.2.1", kT0 + 10).allowed);
    EXPECT_FALSE(throttle.check("user@example.test", "192.0.2.1", kT0 + 31).allowed);
    EXPECT_TRUE(throttle.check("user@example.test", "192.0.2.1", kT0 + 32).allowed);
}

TEST(LoginThrottle, RepeatedLockoutsDoubleUpToTheCap) {
    LoginThrottle throttle(small_limits());
    std::int64_t now = kT0;
    for (std::int64_t expected : {30, 60, 100, 100}) {
        fail_times(throttle, 3, "user", "192.0.2.1", now);
        auto verdict = throttle.check("user", "192.0.2.2", now);
        ASSERT_FALSE(verdict.allowed);
        EXPECT_EQ(verdict.retry_after_seconds, expected);
        now += verdict.retry_after_seconds;
        EXPECT_TRUE(throttle.check("user", "192.0.2.2", now).allowed);
    }
}

TEST(LoginThrottle, FailuresInsideLockoutDoNotExtendIt) {
    LoginThrottle throttle(small_limits());
    fail_times(throttle, 3, "user", "192.0.2.1", kT0);
    fail_times(throttle, 3, "user", "192.0.2.1", kT0 + 10);
    EXPECT_EQ(throttle.check("user", "192.0.2.2", kT0 + 10).retry_after_seconds, 20);
}

TEST(LoginThrottle, FailuresOlderThanWindowAreForgotten) {
    LoginThrottle throttle(small_limits());
    for (int i = 0; i < 10; ++i) {
        throttle.record_failure("user", "192.0.2.1", kT0 + i * 601);
        EXPECT_TRUE(throttle.check("user", "192.0.2.1", kT0 + i * 601).allowed) << i;
    }
}

TEST(LoginThrottle, WindowRestartsFailureCount) {
    LoginThrottle throttle(small_limits());
    fail_times(throttle, 2, "user", "192.0.2.1", kT0);
    throttle.record_failure("user", "192.0.2.1", kT0 + 500);
    EXPECT_FALSE(throttle.check("user", "192.0.2.1", kT0 + 500).allowed);
    LoginThrottle other(small_limits());
    other.record_failure("user", "192.0.2.1", kT0);
    other.record_failure("user", "192.0.2.1", kT0 + 400);
    other.record_failure("user", "192.0.2.1", kT0 + 700);  // window of kT0 over: count restarts at 1
    EXPECT_TRUE(other.check("user", "192.0.2.1", kT0 + 700).allowed);
}

TEST(LoginThrottle, QuietWindowResetsDoubling) {
    LoginThrottle throttle(small_limits());
    fail_times(throttle, 3, "user", "192.0.2.1", kT0);
    fail_times(throttle, 3, "user", "192.0.2.1", kT0 + 30);
    EXPECT_EQ(throttle.check("user", "192.0.2.1", kT0 + 30).retry_after_seconds, 60);
    std::int64_t later = kT0 + 90 + 600;
    fail_times(throttle, 3, "user", "192.0.2.1", later);
    EXPECT_EQ(throttle.check("user", "192.0.2.1", later).retry_after_seconds, 30);
}

TEST(LoginThrottle, AddressGuessingManyAccountsIsLockedOut) {
    LoginThrottle throttle(small_limits());
    for (int i = 0; i < 5; ++i) throttle.record_failure("user" + std::to_string(i), "203.0.113.9", kT0);
    EXPECT_FALSE(throttle.check("fresh", "203.0.113.9", kT0).allowed);
    EXPECT_TRUE(throttle.check("fresh", "203.0.113.10", kT0).allowed);
}

TEST(LoginThrottle, SuccessClearsAccountButNotAddress) {
    LoginThrottle throttle(small_limits());
    fail_times(throttle, 2, "user", "203.0.113.9", kT0);
    fail_times(throttle, 2, "other", "203.0.113.9", kT0);
    throttle.record_success("user", "203.0.113.9", kT0);
    // The account starts over: two more failures do not lock it...
    fail_times(throttle, 2, "user", "198.51.100.1", kT0);
    EXPECT_TRUE(throttle.check("user", "198.51.100.1", kT0).allowed);
    // ...but the address kept its four failures, and a fifth locks it.
    throttle.record_failure("third", "203.0.113.9", kT0);
    EXPECT_FALSE(throttle.check("anyone", "203.0.113.9", kT0).allowed);
}

TEST(LoginThrottle, AccountNamesAreCaseInsensitive) {
    LoginThrottle throttle(small_limits());
    throttle.record_failure("User@Example.TEST", "192.0.2.1", kT0);
    throttle.record_failure("user@example.test", "192.0.2.2", kT0);
    throttle.record_failure("USER@EXAMPLE.TEST", "192.0.2.3", kT0);
    EXPECT_FALSE(throttle.check("user@example.test", "192.0.2.4", kT0).allowed);
}

TEST(LoginThrottle, CountsIpv6PerPrefix) {
    LoginThrottle throttle(small_limits());
    EXPECT_EQ(throttle.network_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
    EXPECT_EQ(throttle.network_key("2001:db8:1:2:bbbb::7"), "2001:db8:1:2::/64");
    EXPECT_EQ(throttle.network_key("::ffff:192.0.2.1"), "192.0.2.1");
    EXPECT_EQ(throttle.network_key("192.0.2.1"), "192.0.2.1");
    EXPECT_EQ(throttle.network_key("not an address"), "not an address");
    for (int i = 0; i < 5; ++i) {
        throttle.record_failure("u" + std::to_string(i), "2001:db8:1:2::" + std::to_string(i + 1), kT0);
    }
    EXPECT_FALSE(throttle.check("x", "2001:db8:1:2::ffff", kT0).allowed);
    EXPECT_TRUE(throttle.check("x", "2001:db8:1:3::1", kT0).allowed);
}

TEST(LoginThrottle, TablesStayWithinCapEvictingStalest) {
    ThrottleLimits limits = small_limits();
    limits.max_tracked_users = 3;
    limits.max_tracked_ips = 2;
    LoginThrottle throttle(limits);
    fail_times(throttle, 3, "victim", "192.0.2.1", kT0);
    EXPECT_FALSE(throttle.check("victim", "192.0.2.99", kT0).allowed);
    for (int i = 0; i < 10; ++i) {
        throttle.record_failure("u" + std::to_string(i), "198.51.100." + std::to_string(i), kT0 + 1);
    }
    EXPECT_EQ(throttle.tracked_users(), 3u);
    EXPECT_EQ(throttle.tracked_ips(), 2u);
    EXPECT_TRUE(throttle.check("victim", "192.0.2.99", kT0 + 1).allowed);  // evicted: the price of the bound
}

TEST(LoginThrottle, RecentlyTouchedEntrySurvivesEviction) {
    ThrottleLimits limits = small_limits();
    limits.max_tracked_users = 2;
    LoginThrottle throttle(limits);
    throttle.record_failure("a", "192.0.2.1", kT0);
    throttle.record_failure("b", "192.0.2.2", kT0);
    throttle.record_failure("a", "192.0.2.3", kT0 + 1);  // "a" is now the most recent
    throttle.record_failure("c", "192.0.2.4", kT0 + 2);  // evicts "b"
    throttle.record_failure("a", "192.0.2.5", kT0 + 3);  // third failure of "a": locked
    EXPECT_FALSE(throttle.check("a", "192.0.2.6", kT0 + 3).allowed);
}

}  // namespace
}  // namespace magpie::auth
