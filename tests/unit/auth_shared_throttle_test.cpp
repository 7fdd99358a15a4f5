// The login throttle on counters shared through a PostgreSQL store (issue 16): two nodes, each with its own
// store and throttle on one database, count one guesser's failures together.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "auth/throttle.h"
#include "store/postgres/postgres.h"
#include "store/shared_login_counters.h"
#include "store/store.h"
#include "store_postgres_support.h"

namespace magpie::auth {
namespace {

using store::PostgresServer;

constexpr std::int64_t kT0 = 1'800'000'000;

ThrottleLimits limits(std::uint32_t user_failures) {
    ThrottleLimits limits;
    limits.max_user_failures = user_failures;
    limits.max_ip_failures = 1000;
    limits.window_seconds = 600;
    limits.first_lockout_seconds = 30;
    limits.max_lockout_seconds = 100;
    return limits;
}

class SharedThrottleTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto& server = PostgresServer::instance();
        if (server.dsn().empty()) GTEST_SKIP() << "no PostgreSQL: " << server.why_not();
        dsn_ = server.create_database();
        node1_ = open_node();
        node2_ = open_node();
        ASSERT_TRUE(node1_ && node2_);
        ASSERT_NE(store::shared_login_counters(*node1_), nullptr);
    }
    void TearDown() override {
        node1_.reset();
        node2_.reset();
        if (!dsn_.empty()) PostgresServer::instance().drop_database(dsn_);
    }
    std::unique_ptr<store::Store> open_node() {
        store::PostgresOptions options;
        options.dsn = dsn_;
        auto opened = store::open_postgres_store(options);
        EXPECT_TRUE(opened) << opened.error().message;
        return opened ? std::move(*opened) : nullptr;
    }

    std::string dsn_;
    std::unique_ptr<store::Store> node1_, node2_;
};

TEST_F(SharedThrottleTest, FailuresAlternatingBetweenNodesLockTheAccountOutOnBoth) {
    LoginThrottle a(limits(5), store::shared_login_counters(*node1_));
    LoginThrottle b(limits(5), store::shared_login_counters(*node2_));
    for (int i = 0; i < 4; ++i)
        (i % 2 == 0 ? a : b).record_failure("alice@example.test", "192.0.2.1", kT0 + i);
    EXPECT_TRUE(a.check("alice@example.test", "192.0.2.9", kT0 + 5).allowed);
    b.record_failure("Alice@Example.TEST", "192.0.2.1", kT0 + 5);  // the fifth, on the other node
    for (LoginThrottle* throttle : {&a, &b}) {
        ThrottleVerdict verdict = throttle->check("alice@example.test", "192.0.2.9", kT0 + 6);
        EXPECT_FALSE(verdict.allowed);
        EXPECT_EQ(verdict.retry_after_seconds, 29);
    }
    EXPECT_TRUE(a.check("alice@example.test", "192.0.2.9", kT0 + 35).allowed);  // the lockout ended
    // Nothing was counted in memory: the shared counters answered every call.
    EXPECT_EQ(a.tracked_users() + b.tracked_users(), 0u);
}

TEST_F(SharedThrottleTest, ASuccessOnOneNodeClearsTheAccountOnTheOther) {
    LoginThrottle a(limits(3), store::shared_login_counters(*node1_));
    LoginThrottle b(limits(3), store::shared_login_counters(*node2_));
    a.record_failure("bob@example.test", "192.0.2.1", kT0);
    a.record_failure("bob@example.test", "192.0.2.1", kT0);
    b.record_success("bob@example.test", "192.0.2.1", kT0 + 1);
    a.record_failure("bob@example.test", "192.0.2.1", kT0 + 2);
    b.record_failure("bob@example.test", "192.0.2.1", kT0 + 2);
    EXPECT_TRUE(a.check("bob@example.test", "192.0.2.1", kT0 + 3).allowed);
}

TEST_F(SharedThrottleTest, ConcurrentFailuresOnTwoNodesAreEachCounted) {
    // 2 x 20 failures at once against a limit of 40: a lost update (both nodes reading one count and
    // writing count + 1) leaves the account unlocked.
    LoginThrottle a(limits(40), store::shared_login_counters(*node1_));
    LoginThrottle b(limits(40), store::shared_login_counters(*node2_));
    auto fail = [](LoginThrottle& throttle) {
        for (int i = 0; i < 20; ++i) throttle.record_failure("carol@example.test", "192.0.2.1", kT0);
    };
    std::thread one([&] { fail(a); });
    std::thread two([&] { fail(b); });
    one.join();
    two.join();
    EXPECT_FALSE(a.check("carol@example.test", "192.0.2.1", kT0 + 1).allowed);
}

TEST_F(SharedThrottleTest, StaleEntriesAreForgottenAsNewFailuresArrive) {
    LoginThrottle a(limits(5), store::shared_login_counters(*node1_));
    for (int i = 0; i < 10; ++i) a.record_failure(fmt::format("user{}@example.test", i), "192.0.2.1", kT0);
    auto admin = store::postgres::Connection::open(dsn_, "");
    ASSERT_TRUE(admin);
    auto count = [&] { return (*admin)->exec("SELECT count(*) FROM login_failures")->int64(0, 0); };
    EXPECT_EQ(count(), 11);  // ten accounts and the one network
    // Long after window + longest lockout, one new failure sweeps the old rows away.
    a.record_failure("late@example.test", "192.0.2.2", kT0 + 10'000);
    EXPECT_EQ(count(), 2);
}

TEST(SharedThrottle, TheEmbeddedStoreHasNoSharedCountersSoTheThrottleCountsInMemory) {
    auto dir = std::filesystem::temp_directory_path() / fmt::format("magpie-throttle-{}", ::getpid());
    store::SqliteOptions options;
    options.data_dir = dir;
    auto opened = store::open_sqlite_store(options);
    ASSERT_TRUE(opened) << opened.error().message;
    EXPECT_EQ(store::shared_login_counters(**opened), nullptr);
    opened->reset();
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace magpie::auth
