// server::RecipientCache: what RCPT resolved, kept across connections while the directory version stays.
#include <gtest/gtest.h>

#include "server/recipient_cache.h"

namespace magpie::server {
namespace {

RecipientMemo local(std::int64_t account_id, std::uint64_t version, std::int64_t inbox_id = 7) {
    RecipientMemo memo;
    memo.recipient = store::RecipientResult{store::RecipientStatus::local, account_id, "bob@example.test"};
    memo.inbox_id = inbox_id;
    memo.vacation = false;
    memo.directory_version = version;
    return memo;
}

TEST(RecipientCache, KeepsALocalRecipientForItsLifetimeByExactAddress) {
    RecipientCache cache({.ttl_seconds = 60, .max_entries = 10});
    cache.remember("bob@example.test", local(1, 5), 1000);
    auto kept = cache.find("bob@example.test", 1059);
    ASSERT_TRUE(kept);
    EXPECT_EQ(kept->recipient.account_id, 1);
    EXPECT_EQ(kept->inbox_id, 7);
    EXPECT_EQ(kept->directory_version, 5u);
    EXPECT_FALSE(cache.find("Bob@example.test", 1001));  // as the client spelled it: another entry
    EXPECT_FALSE(cache.find("bob@example.test", 1060));   // expired, and gone
    EXPECT_EQ(cache.size(), 0u);
}

TEST(RecipientCache, NeverKeepsUnknownRemoteOrInboxlessRecipients) {
    RecipientCache cache;
    RecipientMemo unknown;
    unknown.recipient = store::RecipientResult{store::RecipientStatus::unknown_user, 0, {}};
    cache.remember("nobody@example.test", unknown, 0);
    RecipientMemo remote;
    remote.recipient = store::RecipientResult{store::RecipientStatus::not_local_domain, 0, {}};
    cache.remember("x@elsewhere.test", remote, 0);
    cache.remember("noinbox@example.test", local(2, 1, 0), 0);
    EXPECT_EQ(cache.size(), 0u);
}

TEST(RecipientCache, ANewerDirectoryVersionMakesEveryOlderMemoStale) {
    RecipientCache cache;
    cache.remember("a@example.test", local(1, 5), 0);
    cache.remember("b@example.test", local(2, 5), 0);
    cache.saw_version(5);  // the same: nothing changes
    EXPECT_TRUE(cache.find("a@example.test", 1));
    cache.saw_version(6);
    EXPECT_FALSE(cache.find("a@example.test", 1));
    EXPECT_FALSE(cache.find("b@example.test", 1));
    // A memo made at an older version than the newest seen (a look-up that raced a change) is not kept.
    cache.remember("c@example.test", local(3, 5), 0);
    EXPECT_FALSE(cache.find("c@example.test", 1));
    // One made at a newer version retires the others.
    cache.remember("d@example.test", local(4, 6), 0);
    cache.remember("e@example.test", local(5, 7), 0);
    EXPECT_FALSE(cache.find("d@example.test", 1));
    EXPECT_TRUE(cache.find("e@example.test", 1));
}

TEST(RecipientCache, IsBoundedAndCanBeTurnedOff) {
    RecipientCache cache({.ttl_seconds = 60, .max_entries = 2});
    cache.remember("a@example.test", local(1, 1), 0);
    cache.remember("b@example.test", local(2, 1), 0);
    cache.remember("a@example.test", local(1, 1), 0);  // already kept: no room needed
    EXPECT_EQ(cache.size(), 2u);
    cache.remember("c@example.test", local(3, 1), 0);  // full: starts again
    EXPECT_EQ(cache.size(), 1u);
    EXPECT_TRUE(cache.find("c@example.test", 1));
    cache.reset({.ttl_seconds = 0, .max_entries = 2});
    EXPECT_EQ(cache.size(), 0u);
    cache.remember("a@example.test", local(1, 1), 0);
    EXPECT_FALSE(cache.find("a@example.test", 1));
}

}  // namespace
}  // namespace magpie::server
