// SPF (RFC 7208) over a table DNS: results, every mechanism and modifier, macros with RFC 7208 7.4's
// examples, and the processing limits. Cases follow the shape of the OpenSPF RFC 7208 test suite (a
// zone, a client, a sender, an expected result), written anew for this code.
#include <gtest/gtest.h>

#include "mailauth/spf.h"
#include "mailauth_table_dns.h"

namespace magpie::mailauth {
namespace {

using testing::TableDns;

SpfRequest request(std::string ip, std::string sender, std::string helo = "mail.example.net") {
    SpfRequest r;
    r.ip = std::move(ip);
    r.sender = std::move(sender);
    r.helo = std::move(helo);
    r.receiver = "mx.receiver.example";
    r.now = 1700000000;
    return r;
}

SpfResult mail_from(TableDns& dns, std::string ip, std::string sender) {
    return check_mail_from(dns, request(std::move(ip), std::move(sender))).result;
}

TEST(Spf, QualifiersDecideTheResult) {
    TableDns dns;
    dns.txt("pass.example", "v=spf1 +all").txt("fail.example", "v=spf1 -all");
    dns.txt("soft.example", "v=spf1 ~all").txt("neutral.example", "v=spf1 ?all");
    dns.txt("nomatch.example", "v=spf1 ip4:10.0.0.1");
    EXPECT_EQ(mail_from(dns, "192.0.2.1", "a@pass.example"), SpfResult::pass);
    EXPECT_EQ(mail_from(dns, "192.0.2.1", "a@fail.example"), SpfResult::fail);
    EXPECT_EQ(mail_from(dns, "192.0.2.1", "a@soft.example"), SpfResult::softfail);
    EXPECT_EQ(mail_from(dns, "192.0.2.1", "a@neutral.example"), SpfResult::neutral);
    EXPECT_EQ(mail_from(dns, "192.0.2.1", "a@nomatch.example"), SpfResult::neutral) << "4.7 default";
}

TEST(Spf, NoRecordOrNoDomainIsNone) {
    TableDns dns;
    dns.txt("other.example", "some other text").txt("spf10.example", "v=spf10 -all");
    EXPECT_EQ(mail_from(dns, "192.0.2.1", "a@nowhere.example"), SpfResult::none);
    EXPECT_EQ(mail_from(dns, "192.0.2.1", "a@other.example"), SpfResult::none);
    EXPECT_EQ(mail_from(dns, "192.0.2.1", "a@spf10.example"), SpfResult::none) << "v=spf10 is no SPF record";
    EXPECT_EQ(mail_from(dns, "192.0.2.1", "a@example....."), SpfResult::none) << "4.3 malformed domain";
    EXPECT_EQ(mail_from(dns, "192.0.2.1", "a@localhost"), SpfResult::none) << "4.3 not a FQDN";
}

TEST(Spf, TwoRecordsArePermerrorAndServfailIsTemperror) {
    TableDns dns;
    dns.txt("two.example", "v=spf1 +all").txt("two.example", "v=spf1 -all");
    dns.servfail("broken.example");
    EXPECT_EQ(mail_from(dns, "192.0.2.1", "a@two.example"), SpfResult::permerror);
    EXPECT_EQ(mail_from(dns, "192.0.2.1", "a@broken.example"), SpfResult::temperror);
}

TEST(Spf, SyntaxErrorAnywhereIsPermerrorEvenAfterAMatch) {
    TableDns dns;
    dns.txt("late.example", "v=spf1 +all frobnicate");
    dns.txt("badcidr.example", "v=spf1 ip4:192.0.2.0/33 -all");
    dns.txt("zerocidr.example", "v=spf1 ip4:192.0.2.0/024 -all");
    dns.txt("badip.example", "v=spf1 ip4:192.0.2 -all");
    dns.txt("twice.example", "v=spf1 redirect=a.example redirect=b.example");
    dns.txt("allarg.example", "v=spf1 -all:foo");
    dns.txt("toplabel.example", "v=spf1 a:foo.1 -all");
    dns.txt("badmacro.example", "v=spf1 exists:%{x}.example -all");
    dns.txt("cmacro.example", "v=spf1 exists:%{c}.example -all");
    dns.txt("unknownmod.example", "v=spf1 moo=cow -all");
    for (const char* domain :
         {"late.example", "badcidr.example", "zerocidr.example", "badip.example", "twice.example",
          "allarg.example", "toplabel.example", "badmacro.example", "cmacro.example"}) {
        EXPECT_EQ(mail_from(dns, "192.0.2.1", std::string("a@") + domain), SpfResult::permerror) << domain;
    }
    EXPECT_EQ(mail_from(dns, "192.0.2.1", "a@unknownmod.example"), SpfResult::fail)
        << "unknown modifiers are ignored";
}

TEST(Spf, Ip4AndIp6NetworksMatchByPrefix) {
    TableDns dns;
    dns.txt("net.example", "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8:1::/48 -all");
    EXPECT_EQ(mail_from(dns, "192.0.2.200", "a@net.example"), SpfResult::pass);
    EXPECT_EQ(mail_from(dns, "192.0.3.1", "a@net.example"), SpfResult::fail);
    EXPECT_EQ(mail_from(dns, "2001:db8:1:ffff::1", "a@net.example"), SpfResult::pass);
    EXPECT_EQ(mail_from(dns, "2001:db8:2::1", "a@net.example"), SpfResult::fail);
    EXPECT_EQ(mail_from(dns, "::ffff:192.0.2.9", "a@net.example"), SpfResult::pass) << "IPv4-mapped is IPv4";
}

TEST(Spf, AMechanismUsesTheClientsFamilyAndDualCidr) {
    TableDns dns;
    dns.txt("a.example", "v=spf1 a/24//64 -all").a("a.example", "192.0.2.1").aaaa("a.example", "2001:db8::1");
    dns.txt("other.example", "v=spf1 a:host.a.example -all").a("host.a.example", "198.51.100.7");
    EXPECT_EQ(mail_from(dns, "192.0.2.99", "a@a.example"), SpfResult::pass);
    EXPECT_EQ(mail_from(dns, "2001:db8::ffff:1", "a@a.example"), SpfResult::pass);
    EXPECT_EQ(mail_from(dns, "2001:db8:0:1::1", "a@a.example"), SpfResult::fail);
    EXPECT_EQ(mail_from(dns, "198.51.100.7", "a@other.example"), SpfResult::pass);
    EXPECT_EQ(mail_from(dns, "198.51.100.8", "a@other.example"), SpfResult::fail);
}

TEST(Spf, MxMechanismChecksEveryHostAndRefusesMoreThanTen) {
    TableDns dns;
    dns.txt("mx.example", "v=spf1 mx -all")
        .mx("mx.example", "mx1.mx.example")
        .mx("mx.example", "mx2.mx.example");
    dns.a("mx1.mx.example", "192.0.2.10").a("mx2.mx.example", "192.0.2.20");
    EXPECT_EQ(mail_from(dns, "192.0.2.20", "a@mx.example"), SpfResult::pass);
    EXPECT_EQ(mail_from(dns, "192.0.2.30", "a@mx.example"), SpfResult::fail);
    dns.txt("manymx.example", "v=spf1 mx ?all");
    for (int i = 0; i < 11; ++i) dns.mx("manymx.example", "mx" + std::to_string(i) + ".manymx.example");
    EXPECT_EQ(mail_from(dns, "192.0.2.1", "a@manymx.example"), SpfResult::permerror);
}

TEST(Spf, IncludeMatchesOnlyOnPass) {
    TableDns dns;
    dns.txt("inc.example", "v=spf1 include:fails.example include:passes.example -all");
    dns.txt("fails.example", "v=spf1 -all").txt("passes.example", "v=spf1 ip4:192.0.2.1 -all");
    dns.txt("tonone.example", "v=spf1 include:nothing.example -all");
    dns.txt("totemp.example", "v=spf1 include:broken.example -all").servfail("broken.example");
    EXPECT_EQ(mail_from(dns, "192.0.2.1", "a@inc.example"), SpfResult::pass);
    EXPECT_EQ(mail_from(dns, "192.0.2.2", "a@inc.example"), SpfResult::fail);
    EXPECT_EQ(mail_from(dns, "192.0.2.1", "a@tonone.example"), SpfResult::permerror)
        << "5.2: include of none";
    EXPECT_EQ(mail_from(dns, "192.0.2.1", "a@totemp.example"), SpfResult::temperror);
}

TEST(Spf, RedirectAppliesOnlyWithoutAMatch) {
    TableDns dns;
    dns.txt("redir.example", "v=spf1 ip4:198.51.100.1 redirect=target.example");
    dns.txt("target.example", "v=spf1 ip4:192.0.2.1 -all");
    dns.txt("allfirst.example", "v=spf1 -all redirect=target.example");
    dns.txt("nowhere.example", "v=spf1 redirect=missing.example");
    EXPECT_EQ(mail_from(dns, "198.51.100.1", "a@redir.example"), SpfResult::pass);
    EXPECT_EQ(mail_from(dns, "192.0.2.1", "a@redir.example"), SpfResult::pass);
    EXPECT_EQ(mail_from(dns, "192.0.2.2", "a@redir.example"), SpfResult::fail);
    EXPECT_EQ(mail_from(dns, "192.0.2.1", "a@allfirst.example"), SpfResult::fail);
    EXPECT_EQ(mail_from(dns, "192.0.2.1", "a@nowhere.example"), SpfResult::permerror) << "6.1";
}

TEST(Spf, ExistsLooksUpAnARecord) {
    TableDns dns;
    dns.txt("ex.example", "v=spf1 exists:%{i}.allow.ex.example -all")
        .a("192.0.2.1.allow.ex.example", "127.0.0.2");
    EXPECT_EQ(mail_from(dns, "192.0.2.1", "a@ex.example"), SpfResult::pass);
    dns.aaaa("192.0.2.2.allow.ex.example", "::1");  // exists asks for A only (5.7)
    EXPECT_EQ(mail_from(dns, "192.0.2.2", "a@ex.example"), SpfResult::fail);
}

TEST(Spf, PtrMatchesOnlyValidatedNames) {
    TableDns dns;
    dns.txt("ptr.example", "v=spf1 ptr -all");
    dns.ptr("192.0.2.1", "mail.ptr.example").a("mail.ptr.example", "192.0.2.1");
    dns.ptr("192.0.2.2", "liar.ptr.example").a("liar.ptr.example", "192.0.2.99");
    dns.ptr("192.0.2.3", "mail.elsewhere.example").a("mail.elsewhere.example", "192.0.2.3");
    EXPECT_EQ(mail_from(dns, "192.0.2.1", "a@ptr.example"), SpfResult::pass);
    EXPECT_EQ(mail_from(dns, "192.0.2.2", "a@ptr.example"), SpfResult::fail) << "forward lookup disagrees";
    EXPECT_EQ(mail_from(dns, "192.0.2.3", "a@ptr.example"), SpfResult::fail) << "not within the domain";
}

TEST(Spf, TenDnsMechanismsAreAllowedAndTheEleventhIsPermerror) {
    TableDns dns;
    // inc0 includes inc1 ... each include is one DNS mechanism; the last record passes.
    auto chain = [&](const std::string& prefix, int length) {
        for (int i = 0; i < length; ++i)
            dns.txt(prefix + std::to_string(i) + ".example",
                    "v=spf1 include:" + prefix + std::to_string(i + 1) + ".example -all");
        dns.txt(prefix + std::to_string(length) + ".example", "v=spf1 +all");
    };
    chain("ten", 10);
    chain("eleven", 11);
    auto ten = check_mail_from(dns, request("192.0.2.1", "a@ten0.example"));
    EXPECT_EQ(ten.result, SpfResult::pass) << ten.reason;
    EXPECT_EQ(ten.dns_mechanisms, 10);
    EXPECT_EQ(mail_from(dns, "192.0.2.1", "a@eleven0.example"), SpfResult::permerror);
}

TEST(Spf, ThirdVoidLookupIsPermerror) {
    TableDns dns;
    dns.txt("void2.example", "v=spf1 a:none1.example a:none2.example +all");
    dns.txt("void3.example", "v=spf1 a:none1.example a:none2.example mx:none3.example +all");
    EXPECT_EQ(mail_from(dns, "192.0.2.1", "a@void2.example"), SpfResult::pass);
    auto three = check_mail_from(dns, request("192.0.2.1", "a@void3.example"));
    EXPECT_EQ(three.result, SpfResult::permerror);
    EXPECT_EQ(three.void_lookups, 3);
}

TEST(Spf, MacroExamplesOfRfc7208Section74) {
    TableDns dns;
    SpfRequest r = request("192.0.2.3", "strong-bad@email.example.com");
    auto expand = [&](const char* text) {
        auto out = expand_macros(dns, r, "email.example.com", text, false);
        return out ? *out : "error: " + out.error().message;
    };
    EXPECT_EQ(expand("%{s}"), "strong-bad@email.example.com");
    EXPECT_EQ(expand("%{o}"), "email.example.com");
    EXPECT_EQ(expand("%{d}"), "email.example.com");
    EXPECT_EQ(expand("%{d4}"), "email.example.com");
    EXPECT_EQ(expand("%{d3}"), "email.example.com");
    EXPECT_EQ(expand("%{d2}"), "example.com");
    EXPECT_EQ(expand("%{d1}"), "com");
    EXPECT_EQ(expand("%{dr}"), "com.example.email");
    EXPECT_EQ(expand("%{d2r}"), "example.email");
    EXPECT_EQ(expand("%{l}"), "strong-bad");
    EXPECT_EQ(expand("%{l-}"), "strong.bad");
    EXPECT_EQ(expand("%{lr}"), "strong-bad");
    EXPECT_EQ(expand("%{lr-}"), "bad.strong");
    EXPECT_EQ(expand("%{l1r-}"), "strong");
    EXPECT_EQ(expand("%{ir}.%{v}._spf.%{d2}"), "3.2.0.192.in-addr._spf.example.com");
    EXPECT_EQ(expand("%{lr-}.lp._spf.%{d2}"), "bad.strong.lp._spf.example.com");
    EXPECT_EQ(expand("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}"), "bad.strong.lp.3.2.0.192.in-addr._spf.example.com");
    EXPECT_EQ(expand("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}"), "3.2.0.192.in-addr.strong.lp._spf.example.com");
    EXPECT_EQ(expand("%{d2}.trusted-domains.example.net"), "example.com.trusted-domains.example.net");
    r.ip = "2001:db8::cb01";
    EXPECT_EQ(expand("%{ir}.%{v}._spf.%{d2}"),
              "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com");
}

TEST(Spf, MacroEscapesAndErrors) {
    TableDns dns;
    SpfRequest r = request("192.0.2.3", "joe+x y@example.com");
    EXPECT_EQ(*expand_macros(dns, r, "example.com", "%{L}.%%.%_.%-", true), "joe%2Bx%20y.%. .%20");
    EXPECT_FALSE(expand_macros(dns, r, "example.com", "%{d0}", false)) << "zero parts";
    EXPECT_FALSE(expand_macros(dns, r, "example.com", "%{z}", false));
    EXPECT_FALSE(expand_macros(dns, r, "example.com", "%x", false));
    EXPECT_FALSE(expand_macros(dns, r, "example.com", "%{t}", false)) << "t is for explanations only";
    EXPECT_EQ(*expand_macros(dns, r, "example.com", "%{t} %{c} %{r}", true),
              "1700000000 192.0.2.3 mx.receiver.example");
}

TEST(Spf, LongExpansionLosesLabelsFromTheLeft) {
    TableDns dns;
    std::string local(60, 'x');
    SpfRequest r = request("192.0.2.3", local + "@example.com");
    auto out = expand_macros(dns, r, "example.com", "%{l}.%{l}.%{l}.%{l}.%{l}.example.com", false);
    ASSERT_TRUE(out);
    EXPECT_LE(out->size(), 253u);
    EXPECT_TRUE(out->ends_with(".example.com"));
}

TEST(Spf, FailCarriesTheExpandedExplanation) {
    TableDns dns;
    dns.txt("exp.example", "v=spf1 -all exp=why.%{d}");
    dns.txt("why.exp.example", "%{i} is not one of %{d}'s designated mail servers.");
    auto outcome = check_mail_from(dns, request("192.0.2.3", "a@exp.example"));
    EXPECT_EQ(outcome.result, SpfResult::fail);
    EXPECT_EQ(outcome.explanation, "192.0.2.3 is not one of exp.example's designated mail servers.");
    EXPECT_EQ(outcome.mechanism, "-all");
}

TEST(Spf, NullSenderIsPostmasterAtHelo) {
    TableDns dns;
    dns.txt("mail.example.net", "v=spf1 exists:%{l}.check.example.net -all")
        .a("postmaster.check.example.net", "127.0.0.2");
    auto outcome = check_mail_from(dns, request("192.0.2.3", ""));
    EXPECT_EQ(outcome.result, SpfResult::pass) << outcome.reason;
    EXPECT_EQ(outcome.domain, "mail.example.net");
    auto helo = check_helo(dns, request("192.0.2.3", "someone@else.example"));
    EXPECT_EQ(helo.result, SpfResult::pass);
    EXPECT_EQ(helo.identity, "helo");
}

TEST(Spf, RecordsAreCaseInsensitive) {
    TableDns dns;
    dns.txt("case.example", "V=SPF1 IP4:192.0.2.1 -ALL");
    EXPECT_EQ(mail_from(dns, "192.0.2.1", "a@CASE.example"), SpfResult::pass);
    EXPECT_EQ(mail_from(dns, "192.0.2.2", "a@case.example"), SpfResult::fail);
}

}  // namespace
}  // namespace magpie::mailauth
