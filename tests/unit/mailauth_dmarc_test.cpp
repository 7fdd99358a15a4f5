// DMARC (RFC 7489): organizational domains from the Public Suffix List (a small list written here and
// Debian's real one), record parsing, discovery at the From domain then its organizational domain,
// strict and relaxed alignment, p=/sp=/pct= and the disposition.
#include <gtest/gtest.h>

#include <filesystem>

#include "mailauth/dmarc.h"
#include "mailauth_table_dns.h"

namespace magpie::mailauth {
namespace {

using testing::TableDns;

const PublicSuffixList& small_list() {
    static const PublicSuffixList list = PublicSuffixList::parse(
        "// comment\n"
        "com\nuk\nco.uk\n"
        "*.ck\n!www.ck\n"
        "\n"
        "// a UTF-8 rule cannot match an A-label and is skipped\n"
        "\xe5\x85\xac\xe5\x8f\xb8.cn\n");
    return list;
}

TEST(PublicSuffix, OrganizationalDomainIsTheSuffixPlusOneLabel) {
    const auto& psl = small_list();
    EXPECT_EQ(psl.organizational_domain("example.com"), "example.com");
    EXPECT_EQ(psl.organizational_domain("mail.Example.COM."), "example.com");
    EXPECT_EQ(psl.organizational_domain("a.b.example.co.uk"), "example.co.uk");
    EXPECT_EQ(psl.organizational_domain("co.uk"), "co.uk") << "a public suffix is its own";
    EXPECT_EQ(psl.organizational_domain("com"), "com");
    EXPECT_EQ(psl.organizational_domain("a.b.example.zz"), "example.zz") << "default rule *";
}

TEST(PublicSuffix, WildcardAndExceptionRules) {
    const auto& psl = small_list();
    EXPECT_EQ(psl.public_suffix("b.foo.ck"), "foo.ck");
    EXPECT_EQ(psl.organizational_domain("b.foo.ck"), "b.foo.ck");
    EXPECT_EQ(psl.organizational_domain("x.b.foo.ck"), "b.foo.ck");
    EXPECT_EQ(psl.public_suffix("www.ck"), "ck");
    EXPECT_EQ(psl.organizational_domain("www.ck"), "www.ck");
    EXPECT_EQ(psl.organizational_domain("a.www.ck"), "www.ck");
    EXPECT_EQ(psl.rule_count(), 5u);
}

TEST(PublicSuffix, DebiansListGivesTheKnownAnswers) {
    if (!std::filesystem::exists(PublicSuffixList::kDebianPath))
        GTEST_SKIP() << "publicsuffix is not installed (scripts/install-deps.sh)";
    auto psl = PublicSuffixList::load();
    ASSERT_TRUE(psl) << psl.error().message;
    EXPECT_GT(psl->rule_count(), 5000u);
    EXPECT_EQ(psl->organizational_domain("mail.example.co.uk"), "example.co.uk");
    EXPECT_EQ(psl->organizational_domain("a.b.example.com.au"), "example.com.au");
    EXPECT_EQ(psl->organizational_domain("foo.blogspot.com"), "foo.blogspot.com") << "private section";
    EXPECT_EQ(psl->organizational_domain("a.b.kawasaki.jp"), "a.b.kawasaki.jp") << "*.kawasaki.jp";
    EXPECT_EQ(psl->organizational_domain("x.city.kawasaki.jp"), "city.kawasaki.jp") << "!city.kawasaki.jp";
}

TEST(PublicSuffix, MissingFileIsNotFound) {
    auto psl = PublicSuffixList::load("/nonexistent/list.dat");
    ASSERT_FALSE(psl);
    EXPECT_EQ(psl.error().code, Errc::not_found);
}

TEST(DmarcRecordParse, ReadsEveryTag) {
    auto r = parse_dmarc_record(
        "v=DMARC1; p=quarantine; sp=reject; adkim=s; aspf=s; pct=25; "
        "rua=mailto:a@example.com,mailto:b@example.net; "
        "ruf=mailto:f@example.com; fo=1");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->policy, DmarcPolicy::quarantine);
    EXPECT_EQ(r->subdomain_policy, DmarcPolicy::reject);
    EXPECT_EQ(r->dkim_alignment, Alignment::strict);
    EXPECT_EQ(r->spf_alignment, Alignment::strict);
    EXPECT_EQ(r->percent, 25u);
    EXPECT_EQ(r->aggregate_reports.size(), 2u);
    EXPECT_EQ(r->failure_reports, std::vector<std::string>{"mailto:f@example.com"});
}

TEST(DmarcRecordParse, FollowsSection663) {
    EXPECT_FALSE(parse_dmarc_record("p=reject; v=DMARC1")) << "v= must come first";
    EXPECT_FALSE(parse_dmarc_record("v=DMARC2; p=reject"));
    EXPECT_FALSE(parse_dmarc_record("v=DMARC1; p=bogus")) << "no usable p= and no rua=";
    auto monitoring = parse_dmarc_record("v=DMARC1; p=bogus; rua=mailto:d@example.com");
    ASSERT_TRUE(monitoring);
    EXPECT_EQ(monitoring->policy, DmarcPolicy::none) << "bad p= with rua= is p=none";
    auto defaults = parse_dmarc_record("v=DMARC1;p=reject;pct=200;adkim=x");
    ASSERT_TRUE(defaults);
    EXPECT_EQ(defaults->percent, 100u);
    EXPECT_EQ(defaults->dkim_alignment, Alignment::relaxed);
    EXPECT_FALSE(defaults->subdomain_policy);
}

mail::dkim::VerifyResult dkim(std::string domain, mail::dkim::Status status = mail::dkim::Status::pass) {
    mail::dkim::VerifyResult r;
    r.domain = std::move(domain);
    r.status = status;
    return r;
}

DmarcInput input(std::string from, SpfResult spf, std::string spf_domain,
                 std::vector<mail::dkim::VerifyResult> signatures = {}, unsigned sample = 0) {
    DmarcInput in;
    in.from_domain = std::move(from);
    in.spf = spf;
    in.spf_domain = std::move(spf_domain);
    in.dkim = std::move(signatures);
    in.sample = sample;
    return in;
}

class Dmarc : public ::testing::Test {
protected:
    Dmarc() {
        dns.txt("_dmarc.example.com", "v=DMARC1; p=reject; sp=quarantine; pct=50");
        dns.txt("_dmarc.strict.example.co.uk", "v=DMARC1; p=reject; adkim=s; aspf=s");
        dns.txt("_dmarc.own.example.com", "v=DMARC1; p=none");
        dns.txt("_dmarc.two.example", "v=DMARC1; p=none").txt("_dmarc.two.example", "v=DMARC1; p=reject");
        dns.servfail("_dmarc.broken.example");
        dns.txt("_dmarc.noise.example", "v=spf1 -all");
    }
    DmarcOutcome evaluate(const DmarcInput& in) { return evaluate_dmarc(dns, small_list(), in); }
    TableDns dns;
};

TEST_F(Dmarc, AlignedSpfOrDkimPasses) {
    auto spf = evaluate(input("example.com", SpfResult::pass, "bounce.example.com"));
    EXPECT_EQ(spf.result, DmarcResult::pass);
    EXPECT_TRUE(spf.spf_aligned) << "relaxed: same organizational domain";
    auto dkim_only = evaluate(input("example.com", SpfResult::fail, "other.net", {dkim("mail.example.com")}));
    EXPECT_EQ(dkim_only.result, DmarcResult::pass);
    EXPECT_TRUE(dkim_only.dkim_aligned);
    EXPECT_EQ(dkim_only.dkim_domain, "mail.example.com");
    EXPECT_EQ(dkim_only.disposition, Disposition::none);
}

TEST_F(Dmarc, UnalignedOrFailingIdentifiersFailWithThePolicy) {
    auto out = evaluate(input("example.com", SpfResult::pass, "other.net",
                              {dkim("other.net"), dkim("example.com", mail::dkim::Status::fail)}));
    EXPECT_EQ(out.result, DmarcResult::fail);
    EXPECT_EQ(out.policy, DmarcPolicy::reject);
    EXPECT_EQ(out.disposition, Disposition::reject);
    EXPECT_EQ(out.record_domain, "example.com");
    auto softfail = evaluate(input("example.com", SpfResult::softfail, "example.com"));
    EXPECT_EQ(softfail.result, DmarcResult::fail) << "only an SPF pass aligns";
}

TEST_F(Dmarc, StrictAlignmentWantsTheExactDomain) {
    auto relaxed_match = evaluate(input("strict.example.co.uk", SpfResult::pass, "mail.strict.example.co.uk",
                                        {dkim("mail.strict.example.co.uk")}));
    EXPECT_EQ(relaxed_match.result, DmarcResult::fail);
    auto exact = evaluate(input("strict.example.co.uk", SpfResult::pass, "strict.example.co.uk"));
    EXPECT_EQ(exact.result, DmarcResult::pass);
}

TEST_F(Dmarc, SubdomainFallsBackToTheOrganizationalRecordAndItsSp) {
    auto out = evaluate(input("news.example.com", SpfResult::fail, "news.example.com"));
    EXPECT_EQ(out.result, DmarcResult::fail);
    EXPECT_EQ(out.record_domain, "example.com");
    EXPECT_EQ(out.organizational_domain, "example.com");
    EXPECT_EQ(out.policy, DmarcPolicy::quarantine) << "sp= applies below the organizational domain";
    auto own = evaluate(input("own.example.com", SpfResult::fail, "x.net"));
    EXPECT_EQ(own.record_domain, "own.example.com") << "a record at the From domain wins";
    EXPECT_EQ(own.policy, DmarcPolicy::none);
    EXPECT_EQ(own.disposition, Disposition::none);
}

TEST_F(Dmarc, PctSparesTheRestWithTheNextMilderPolicy) {
    auto sampled = evaluate(input("example.com", SpfResult::fail, "example.com", {}, 49));
    EXPECT_EQ(sampled.disposition, Disposition::reject);
    EXPECT_FALSE(sampled.sampled_out);
    auto spared = evaluate(input("example.com", SpfResult::fail, "example.com", {}, 50));
    EXPECT_EQ(spared.disposition, Disposition::quarantine);
    EXPECT_TRUE(spared.sampled_out);
    auto sub = evaluate(input("a.example.com", SpfResult::fail, "example.com", {}, 99));
    EXPECT_EQ(sub.disposition, Disposition::none) << "quarantine spared is none";
}

TEST_F(Dmarc, NoRecordSeveralRecordsAndDnsFailure) {
    EXPECT_EQ(evaluate(input("nothing.example", SpfResult::pass, "nothing.example")).result,
              DmarcResult::none);
    EXPECT_EQ(evaluate(input("noise.example", SpfResult::pass, "noise.example")).result, DmarcResult::none);
    EXPECT_EQ(evaluate(input("two.example", SpfResult::fail, "x.net")).result, DmarcResult::permerror);
    EXPECT_EQ(evaluate(input("broken.example", SpfResult::fail, "x.net")).result, DmarcResult::temperror);
}

TEST(DmarcFrom, TakesTheDomainOfTheOneFromMailbox) {
    EXPECT_EQ(*from_domain("From: Joe <joe@Mail.Example.COM>\r\nTo: x@y\r\n\r\nbody"), "mail.example.com");
    EXPECT_FALSE(from_domain("To: x@y\r\n\r\n"));
    EXPECT_FALSE(from_domain("From: a@x.example\r\nFrom: b@y.example\r\n\r\n"));
    EXPECT_FALSE(from_domain("From: a@x.example, b@y.example\r\n\r\n"));
    EXPECT_FALSE(from_domain("From: undisclosed\r\n\r\n"));
}

}  // namespace
}  // namespace magpie::mailauth
