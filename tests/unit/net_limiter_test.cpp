// net: ConnectionLimiter, the total and per-address connection limits, and slots that move to another key
// (IMAP after login: the account and the address); a reverse proxy's connections bounded by the total only.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "net/limiter.h"

namespace magpie::net {
namespace {

TEST(ConnectionLimiter, AdmitsUpToTheTotalAndThePerAddressLimits) {
    auto limiter = std::make_shared<ConnectionLimiter>(3, 2);
    auto a1 = limiter->try_acquire("192.0.2.1");
    auto a2 = limiter->try_acquire("192.0.2.1");
    ASSERT_TRUE(a1 && a2);
    EXPECT_FALSE(limiter->try_acquire("192.0.2.1"));  // the address's limit
    auto b1 = limiter->try_acquire("192.0.2.2");
    ASSERT_TRUE(b1);
    EXPECT_FALSE(limiter->try_acquire("192.0.2.3"));  // the total
    EXPECT_EQ(limiter->active(), 3u);
    a1.reset();
    EXPECT_TRUE(limiter->try_acquire("192.0.2.1"));  // a freed place is taken again
}

TEST(ConnectionLimiter, AReverseProxysConnectionsCountTowardTheTotalOnly) {
    auto limiter = std::make_shared<ConnectionLimiter>(4, 1);
    limiter->set_proxies({*parse_ip_network("10.0.0.0/8")});
    auto p1 = limiter->try_acquire("10.1.1.1");
    auto p2 = limiter->try_acquire("10.1.1.1");
    auto p3 = limiter->try_acquire("10.1.1.1");
    ASSERT_TRUE(p1 && p2 && p3);  // past the per-address 1
    auto other = limiter->try_acquire("192.0.2.1");
    ASSERT_TRUE(other);
    EXPECT_FALSE(limiter->try_acquire("10.1.1.1"));  // the total
    other.reset();
    EXPECT_TRUE(limiter->try_acquire("10.1.1.1"));
    limiter->set_proxies({});  // a reload that names no proxy: its address is bounded again
    p1.reset();
    EXPECT_FALSE(limiter->try_acquire("10.1.1.1"));
    EXPECT_TRUE(limiter->try_acquire("192.0.2.1"));
}

TEST(ConnectionLimiter, AMovedSlotNoLongerCountsForItsAddress) {
    auto limiter = std::make_shared<ConnectionLimiter>(10, 1);
    auto first = limiter->try_acquire("192.0.2.1");
    ASSERT_TRUE(first);
    EXPECT_FALSE(limiter->try_acquire("192.0.2.1"));
    EXPECT_FALSE(first->moved());
    ASSERT_TRUE(first->move_to("7|192.0.2.1", 2));    // logged in as account 7
    EXPECT_TRUE(first->moved());
    auto second = limiter->try_acquire("192.0.2.1");  // the address has room again
    ASSERT_TRUE(second);
    ASSERT_TRUE(second->move_to("7|192.0.2.1", 2));
    auto third = limiter->try_acquire("192.0.2.1");
    ASSERT_TRUE(third);
    EXPECT_FALSE(third->move_to("7|192.0.2.1", 2));  // the account has its two from this address
    EXPECT_TRUE(third->move_to("8|192.0.2.1", 2));   // another account has not
    EXPECT_EQ(limiter->active(), 3u);                // the total counts every slot wherever it is
}

TEST(ConnectionLimiter, ARefusedMoveLeavesTheSlotWhereItWas) {
    auto limiter = std::make_shared<ConnectionLimiter>(10, 1);
    auto held = limiter->try_acquire("192.0.2.1");
    ASSERT_TRUE(held && held->move_to("7|192.0.2.1", 1));
    auto refused = limiter->try_acquire("192.0.2.1");
    ASSERT_TRUE(refused);
    EXPECT_FALSE(refused->move_to("7|192.0.2.1", 1));
    EXPECT_FALSE(refused->moved());
    EXPECT_FALSE(limiter->try_acquire("192.0.2.1"));  // still counted for its address
    refused.reset();
    EXPECT_TRUE(limiter->try_acquire("192.0.2.1"));  // and released from it
    held.reset();
    auto again = limiter->try_acquire("192.0.2.9");
    ASSERT_TRUE(again);
    EXPECT_TRUE(again->move_to("7|192.0.2.1", 1));  // the moved slot's end released the account's place
}

TEST(ConnectionLimiter, MovingToTheKeyItHoldsIsANoOp) {
    auto limiter = std::make_shared<ConnectionLimiter>(10, 1);
    auto slot = limiter->try_acquire("192.0.2.1");
    ASSERT_TRUE(slot);
    EXPECT_TRUE(slot->move_to("192.0.2.1", 1));
    EXPECT_FALSE(slot->moved());
    EXPECT_FALSE(limiter->try_acquire("192.0.2.1"));
}

}  // namespace
}  // namespace magpie::net
