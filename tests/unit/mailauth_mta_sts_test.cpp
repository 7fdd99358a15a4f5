// MTA-STS (RFC 8461) without a network: the TXT record, the policy file, MX matching and the cache entry.
#include <gtest/gtest.h>

#include "mailauth/mta_sts.h"

namespace magpie::mailauth {
namespace {

TEST(MtaSts, RecordGivesItsIdAndRejectsOtherVersions) {
    auto id = parse_sts_record("v=STSv1; id=20261129T01;");
    ASSERT_TRUE(id) << id.error().message;
    EXPECT_EQ(*id, "20261129T01");
    EXPECT_EQ(*parse_sts_record("v=STSv1;id=abc;ext=x"), "abc");
    EXPECT_FALSE(parse_sts_record("v=STSv2; id=abc"));
    EXPECT_FALSE(parse_sts_record("id=abc; v=STSv1"));  // v= must come first (3.1)
    EXPECT_FALSE(parse_sts_record("v=STSv1"));
    EXPECT_FALSE(parse_sts_record("v=STSv1; id=has-dash"));
    EXPECT_FALSE(parse_sts_record("v=STSv1; id=012345678901234567890123456789012"));  // 33 characters
}

TEST(MtaSts, PolicyFileWithCrlfOrLfAndUnknownKeys) {
    auto policy = parse_sts_policy("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
                                   "max_age: 86400\r\nfuture: ignored\r\n");
    ASSERT_TRUE(policy) << policy.error().message;
    EXPECT_EQ(policy->mode, StsMode::enforce);
    EXPECT_EQ(policy->max_age, 86400u);
    EXPECT_EQ(policy->mx, (std::vector<std::string>{"mail.example.com", "*.example.net"}));
    EXPECT_TRUE(parse_sts_policy("version: STSv1\nmode: testing\nmx: a.example\nmax_age: 0\n"));
    EXPECT_TRUE(parse_sts_policy("version: STSv1\nmode: none\nmax_age: 10\n"));  // none needs no mx
}

TEST(MtaSts, PolicyFileMissingRequiredKeysOrOutOfRangeIsRefused) {
    EXPECT_FALSE(parse_sts_policy("mode: enforce\nmx: a.example\nmax_age: 10\n"));
    EXPECT_FALSE(parse_sts_policy("version: STSv1\nmx: a.example\nmax_age: 10\n"));
    EXPECT_FALSE(parse_sts_policy("version: STSv1\nmode: enforce\nmax_age: 10\n"));
    EXPECT_FALSE(parse_sts_policy("version: STSv1\nmode: enforce\nmx: a.example\n"));
    EXPECT_FALSE(parse_sts_policy("version: STSv1\nmode: strict\nmx: a.example\nmax_age: 10\n"));
    EXPECT_FALSE(parse_sts_policy("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n"));
    EXPECT_FALSE(parse_sts_policy(std::string(kMaxPolicyOctets + 1, '\n')));
}

TEST(MtaSts, WildcardMatchesExactlyOneLabel) {
    StsPolicy policy{StsMode::enforce, {"mail.example.com", "*.example.net"}, 60};
    EXPECT_TRUE(sts_mx_matches(policy, "MAIL.example.com."));
    EXPECT_TRUE(sts_mx_matches(policy, "mx1.example.net"));
    EXPECT_FALSE(sts_mx_matches(policy, "a.b.example.net"));
    EXPECT_FALSE(sts_mx_matches(policy, "example.net"));
    EXPECT_FALSE(sts_mx_matches(policy, "evil-mail.example.com"));
}

TEST(MtaSts, OwnPolicyParsesBackAndItsIdFollowsItsText) {
    std::string text = sts_policy_text(StsMode::testing, {"MX.Example.org"}, 604800);
    EXPECT_EQ(text, "version: STSv1\r\nmode: testing\r\nmx: mx.example.org\r\nmax_age: 604800\r\n");
    auto policy = parse_sts_policy(text);
    ASSERT_TRUE(policy);
    EXPECT_TRUE(sts_mx_matches(*policy, "mx.example.org"));
    EXPECT_EQ(sts_policy_id(text).size(), 16u);
    EXPECT_NE(sts_policy_id(text), sts_policy_id(sts_policy_text(StsMode::enforce, {"mx.example.org"}, 604800)));
    EXPECT_TRUE(parse_sts_record("v=STSv1; id=" + sts_policy_id(text)));
}

TEST(MtaSts, CacheEntryRoundTripsAndKnowsWhenItExpires) {
    CachedStsPolicy cached{"abc", 1000, "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 60\n", {}};
    auto back = parse_cached_sts_policy(serialize_cached_sts_policy(cached));
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(back->id, "abc");
    EXPECT_EQ(back->fetched_at, 1000);
    EXPECT_TRUE(back->fresh(1059));
    EXPECT_FALSE(back->fresh(1060));
    EXPECT_FALSE(parse_cached_sts_policy("garbage"));
    EXPECT_FALSE(parse_cached_sts_policy("abc notanumber\nversion: STSv1\n"));
}

}  // namespace
}  // namespace magpie::mailauth
