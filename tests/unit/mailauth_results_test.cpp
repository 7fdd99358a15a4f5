// Authentication-Results (RFC 8601): the field we write, the authserv-id we read back, removal of forged
// fields claiming our name, and the whole inbound evaluation of a signed message over a table DNS.
#include <gtest/gtest.h>

#include "mailauth/authentication_results.h"
#include "mailauth/inbound.h"
#include "mailauth_table_dns.h"

namespace magpie::mailauth {
namespace {

using testing::TableDns;

TEST(AuthenticationResults, WritesOneResinfoALine) {
    SpfOutcome spf;
    spf.result = SpfResult::pass;
    spf.identity = "mailfrom";
    spf.domain = "example.com";
    mail::dkim::VerifyResult dkim;
    dkim.status = mail::dkim::Status::fail;
    dkim.reason = "body hash did not verify";
    dkim.domain = "example.com";
    dkim.selector = "sel";
    dkim.algorithm = mail::dkim::Algorithm::ed25519_sha256;
    dkim.b_prefix = "9/dsDChY";
    DmarcOutcome dmarc;
    dmarc.result = DmarcResult::fail;
    dmarc.policy = DmarcPolicy::reject;
    dmarc.disposition = Disposition::reject;
    dmarc.from_domain = "example.com";
    std::string field = build_authentication_results(
        "mx.example.org", {spf_method_result(spf), dkim_method_result(dkim), dmarc_method_result(dmarc)});
    EXPECT_EQ(field,
              "Authentication-Results: mx.example.org;\r\n"
              "\tspf=pass smtp.mailfrom=example.com;\r\n"
              "\tdkim=fail reason=\"body hash did not verify\" header.d=example.com header.s=sel "
              "header.a=ed25519-sha256 header.b=\"9/dsDChY\";\r\n"
              "\tdmarc=fail reason=\"p=reject dis=reject\" header.from=example.com\r\n");
}

TEST(AuthenticationResults, NoResultsIsNone) {
    EXPECT_EQ(build_authentication_results("mx.example.org", {}),
              "Authentication-Results: mx.example.org; none\r\n");
}

TEST(AuthenticationResults, QuotesValuesThatAreNoTokenAndDropsControlCharacters) {
    MethodResult r{"spf",
                   "pass",
                   "a \"quoted\" \\ reason\r\n",
                   {{"smtp.mailfrom", "user name@example.com"}, {"smtp.helo", "host.example"}}};
    EXPECT_EQ(build_authentication_results("mx", {r}),
              "Authentication-Results: mx;\r\n\tspf=pass reason=\"a \\\"quoted\\\" \\\\ reason??\" "
              "smtp.mailfrom=\"user name@example.com\" smtp.helo=host.example\r\n");
}

TEST(AuthenticationResults, ReadsTheAuthservIdPastComments) {
    EXPECT_EQ(authserv_id_of(" mx.example.org; spf=pass"), "mx.example.org");
    EXPECT_EQ(authserv_id_of(" (comment (nested)) MX.example.org 1; none"), "MX.example.org");
    EXPECT_EQ(authserv_id_of("\r\n\tmx.example.org;"), "mx.example.org");
    EXPECT_EQ(authserv_id_of(""), "");
}

TEST(AuthenticationResults, ForgedFieldsWithOurIdAreFoundAndRemoved) {
    std::string message =
        "Authentication-Results: MX.example.org; dkim=pass header.d=bank.example\r\n"
        "Received: from x\r\n"
        "Authentication-Results: other.example; spf=fail\r\n"
        "Authentication-Results: (sneaky)\r\n mx.example.org;\r\n\tdmarc=pass\r\n"
        "Subject: hi\r\n"
        "\r\n"
        "Authentication-Results: mx.example.org; in the body, not a header\r\n";
    auto forged = forged_authentication_results(message, "mx.example.org");
    ASSERT_EQ(forged.size(), 2u);
    EXPECT_EQ(remove_ranges(message, forged),
              "Received: from x\r\n"
              "Authentication-Results: other.example; spf=fail\r\n"
              "Subject: hi\r\n"
              "\r\n"
              "Authentication-Results: mx.example.org; in the body, not a header\r\n");
}

constexpr const char* kEd25519Seed = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";

std::string signed_message(const std::string& domain, const std::string& extra_header = "") {
    auto key = mail::dkim::PrivateKey::from_ed25519_seed_base64(kEd25519Seed);
    std::string message = extra_header + "From: Alice <alice@" + domain +
                          ">\r\n"
                          "To: bob@receiver.example\r\n"
                          "Subject: lunch\r\n"
                          "\r\n"
                          "Noon?\r\n";
    mail::dkim::SignOptions options;
    options.domain = domain;
    options.selector = "s1";
    return *mail::dkim::sign(message, *key, options) + message;
}

class Inbound : public ::testing::Test {
protected:
    Inbound() : psl(PublicSuffixList::parse("com\nexample\n")) {
        auto key = mail::dkim::PrivateKey::from_ed25519_seed_base64(kEd25519Seed);
        dns.txt("sender.example", "v=spf1 ip4:192.0.2.0/24 -all");
        dns.txt("s1._domainkey.sender.example", key->key_record());
        dns.txt("_dmarc.sender.example", "v=DMARC1; p=reject");
        request.authserv_id = "mx.receiver.example";
        request.client_ip = "192.0.2.7";
        request.helo = "out.sender.example";
        request.mail_from = "bounce@sender.example";
        request.now = 1700000000;
    }
    TableDns dns;
    PublicSuffixList psl;
    InboundRequest request;
};

TEST_F(Inbound, SignedMessageFromAnAllowedAddressPassesEverything) {
    std::string message = signed_message("sender.example");
    auto verdict = authenticate_inbound(dns, psl, request, message);
    EXPECT_EQ(verdict.spf.result, SpfResult::pass);
    ASSERT_EQ(verdict.dkim.size(), 1u);
    EXPECT_EQ(verdict.dkim[0].status, mail::dkim::Status::pass) << verdict.dkim[0].reason;
    EXPECT_EQ(verdict.dmarc.result, DmarcResult::pass);
    EXPECT_EQ(verdict.dmarc.disposition, Disposition::none);
    EXPECT_NE(verdict.header.find("\tspf=pass smtp.mailfrom=sender.example;"), std::string::npos)
        << verdict.header;
    EXPECT_NE(verdict.header.find("\tdkim=pass header.d=sender.example header.s=s1"), std::string::npos);
    EXPECT_NE(verdict.header.find("\tdmarc=pass header.from=sender.example"), std::string::npos);
}

TEST_F(Inbound, SpoofedUnsignedMessageFailsDmarcWithReject) {
    request.client_ip = "203.0.113.9";
    std::string message = "From: ceo@sender.example\r\nSubject: wire money\r\n\r\nnow\r\n";
    auto verdict = authenticate_inbound(dns, psl, request, message);
    EXPECT_EQ(verdict.spf.result, SpfResult::fail);
    EXPECT_TRUE(verdict.dkim.empty());
    EXPECT_EQ(verdict.dmarc.result, DmarcResult::fail);
    EXPECT_EQ(verdict.dmarc.disposition, Disposition::reject);
    EXPECT_NE(verdict.header.find("\tdkim=none;"), std::string::npos) << verdict.header;
}

TEST_F(Inbound, ForgedResultsAreStrippedAndOursGoesOnTop) {
    std::string message =
        signed_message("sender.example", "Authentication-Results: mx.receiver.example; dmarc=pass\r\n");
    auto verdict = authenticate_inbound(dns, psl, request, message);
    ASSERT_EQ(verdict.forged.size(), 1u);
    std::string stored = apply_verdict(message, verdict);
    EXPECT_EQ(stored.find("Authentication-Results: mx.receiver.example;\r\n\tspf=pass"), 0u);
    EXPECT_EQ(stored.find("dmarc=pass\r\n"), std::string::npos);
    EXPECT_EQ(stored.find("Authentication-Results", 10), std::string::npos);
}

TEST_F(Inbound, ChecksTurnedOffAreNeitherEvaluatedNorReported) {
    request.client_ip = "203.0.113.9";
    request.spf = false;
    request.dmarc = false;
    std::string message = signed_message("sender.example");
    auto verdict = authenticate_inbound(dns, psl, request, message);
    EXPECT_EQ(verdict.spf.result, SpfResult::none);
    EXPECT_EQ(verdict.dmarc.result, DmarcResult::none);
    EXPECT_EQ(verdict.dmarc.disposition, Disposition::none);
    ASSERT_EQ(verdict.dkim.size(), 1u);
    EXPECT_EQ(verdict.header.find("spf="), std::string::npos) << verdict.header;
    EXPECT_EQ(verdict.header.find("dmarc="), std::string::npos) << verdict.header;
    EXPECT_NE(verdict.header.find("dkim=pass"), std::string::npos) << verdict.header;
}

TEST_F(Inbound, NothingEvaluatedStillWritesTheFieldAsNone) {
    request.spf = request.dkim = request.dmarc = false;
    auto verdict = authenticate_inbound(dns, psl, request, "From: a@sender.example\r\n\r\nx\r\n");
    EXPECT_EQ(verdict.header, "Authentication-Results: mx.receiver.example; none\r\n");
}

}  // namespace
}  // namespace magpie::mailauth
