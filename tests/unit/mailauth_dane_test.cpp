// DANE for outgoing SMTP (RFC 7672): TLSA parsing and usability, the per-host decision from validated and
// unvalidated answers, the whole-domain policy over a table DNS, and the TLS-RPT classification of a
// session (RFC 8460 4.3). No sockets, no OpenSSL handshake.
#include <gtest/gtest.h>
#include <openssl/x509_vfy.h>

#include <string>

#include "mailauth/dane.h"
#include "mailauth/tlsrpt.h"
#include "mailauth_table_dns.h"

namespace magpie::mailauth {
namespace {

using testing::TableDns;

const std::string kSha256 = std::string(64, 'a');
const std::string kSha512 = std::string(128, 'b');

TEST(Tlsa, ParsesThePresentationForm) {
    auto r = parse_tlsa("3 1 1 " + kSha256);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->usage, 3);
    EXPECT_EQ(r->selector, 1);
    EXPECT_EQ(r->matching_type, 1);
    ASSERT_EQ(r->data.size(), 32u);
    EXPECT_EQ(r->data[0], 0xaa);
    // Data split over several fields, as zone files write it.
    auto split = parse_tlsa("2 0 1 " + kSha256.substr(0, 20) + " " + kSha256.substr(20));
    ASSERT_TRUE(split);
    EXPECT_EQ(split->data.size(), 32u);
}

TEST(Tlsa, RefusesMalformedRecords) {
    EXPECT_FALSE(parse_tlsa("3 1 1"));
    EXPECT_FALSE(parse_tlsa("3 1 256 ab"));
    EXPECT_FALSE(parse_tlsa("3 1 1 abc"));
    EXPECT_FALSE(parse_tlsa("3 1 1 zz"));
    EXPECT_FALSE(parse_tlsa("x 1 1 ab"));
}

TEST(Tlsa, OnlyDaneUsagesWithKnownParametersAreUsable) {
    auto usable = [](const std::string& text) { return tlsa_usable(*parse_tlsa(text)); };
    EXPECT_TRUE(usable("3 1 1 " + kSha256));
    EXPECT_TRUE(usable("3 0 2 " + kSha512));
    EXPECT_TRUE(usable("2 0 1 " + kSha256));
    EXPECT_TRUE(usable("3 1 0 3059301306072a8648ce3d0201"));
    // RFC 7672 3.1.3: PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP.
    EXPECT_FALSE(usable("0 0 1 " + kSha256));
    EXPECT_FALSE(usable("1 1 1 " + kSha256));
    EXPECT_FALSE(usable("4 1 1 " + kSha256));
    EXPECT_FALSE(usable("3 2 1 " + kSha256));
    EXPECT_FALSE(usable("3 1 3 " + kSha256));
    EXPECT_FALSE(usable("3 1 1 " + kSha256.substr(2)));  // a SHA-256 digest is 32 octets
    EXPECT_FALSE(usable("3 1 2 " + kSha256));
}

dns::Resolver::SecureRecords answer(std::vector<std::string> records, bool authenticated) {
    return {std::move(records), authenticated};
}

TEST(DaneHost, ValidatedUsableRecordsMeanVerify) {
    auto host =
        dane_host("_25._tcp.mx.example.com", true, answer({"3 1 1 " + kSha256, "0 0 1 " + kSha256}, true));
    EXPECT_EQ(host.level, DaneLevel::verify);
    EXPECT_EQ(host.usable.size(), 1u);  // the PKIX-TA record is left out
    EXPECT_EQ(host.records.size(), 2u);
}

TEST(DaneHost, ValidatedButUnusableRecordsMeanEncrypt) {
    auto host = dane_host("_25._tcp.mx.example.com", true, answer({"1 1 1 " + kSha256}, true));
    EXPECT_EQ(host.level, DaneLevel::encrypt);
    EXPECT_TRUE(host.usable.empty());
}

TEST(DaneHost, UnvalidatedAnswersAreNoDane) {
    EXPECT_EQ(dane_host("n", true, answer({"3 1 1 " + kSha256}, false)).level, DaneLevel::none);
    // RFC 7672 2.2.2: an address that is not validated gives no DANE, whatever the TLSA answer says.
    EXPECT_EQ(dane_host("n", false, answer({"3 1 1 " + kSha256}, true)).level, DaneLevel::none);
    EXPECT_EQ(dane_host("n", true, answer({}, true)).level, DaneLevel::none);
    EXPECT_EQ(dane_host("n", true, make_error(Errc::not_found, "NXDOMAIN")).level, DaneLevel::none);
}

TEST(DaneHost, AFailedTlsaLookupMakesTheHostUnreachable) {
    auto host = dane_host("_25._tcp.mx.example.com", true, make_error(Errc::unavailable, "SERVFAIL"));
    EXPECT_EQ(host.level, DaneLevel::unreachable);
    EXPECT_NE(host.note.find("_25._tcp.mx.example.com"), std::string::npos);
    EXPECT_NE(host.note.find("SERVFAIL"), std::string::npos);
}

TableDns signed_domain() {
    TableDns dns;
    dns.mx("example.com", "mx1.example.com").mx("example.com", "mx2.example.com");
    dns.a("mx1.example.com", "192.0.2.1").a("mx2.example.com", "192.0.2.2");
    dns.tlsa("_25._tcp.mx1.example.com", "3 1 1 " + kSha256);
    for (const char* name : {"example.com", "mx1.example.com", "mx2.example.com", "_25._tcp.mx1.example.com"})
        dns.secure(name);
    return dns;
}

TEST(DanePolicy, EachHostOfAValidatedMxSetGetsItsOwnDecision) {
    TableDns dns = signed_domain();
    auto policy = dane_policy(dns, "example.com", {"mx1.example.com", "MX2.example.com."});
    EXPECT_TRUE(policy.mx_secure);
    EXPECT_TRUE(policy.applies());
    ASSERT_NE(policy.host("mx1.example.com"), nullptr);
    EXPECT_EQ(policy.host("MX1.example.com")->level, DaneLevel::verify);
    ASSERT_NE(policy.host("mx2.example.com"), nullptr);
    EXPECT_EQ(policy.host("mx2.example.com")->level, DaneLevel::none);  // signed, but no TLSA: opportunistic
}

TEST(DanePolicy, AnUnvalidatedMxSetAsksNothingMore) {
    TableDns dns;
    dns.mx("example.com", "mx1.example.com").a("mx1.example.com", "192.0.2.1");
    dns.tlsa("_25._tcp.mx1.example.com", "3 1 1 " + kSha256);
    dns.secure("mx1.example.com").secure("_25._tcp.mx1.example.com");
    auto policy = dane_policy(dns, "example.com", {"mx1.example.com"});
    EXPECT_FALSE(policy.mx_secure);
    EXPECT_FALSE(policy.applies());
    EXPECT_EQ(policy.host("mx1.example.com"), nullptr);
    EXPECT_EQ(dns.queries, 1);
}

TEST(DanePolicy, AnImplicitMxUsesTheValidatedDenialAndTheDomainsOwnTlsa) {
    TableDns dns;
    dns.a("example.com", "192.0.2.1").tlsa("_25._tcp.example.com", "3 1 1 " + kSha256);
    dns.secure("example.com").secure("_25._tcp.example.com");
    auto policy = dane_policy(dns, "example.com", {"example.com"});
    EXPECT_TRUE(policy.mx_secure);
    EXPECT_EQ(policy.host("example.com")->level, DaneLevel::verify);
}

TEST(DanePolicy, AnIpv6OnlyHostIsValidatedThroughItsAaaa) {
    TableDns dns;
    dns.mx("example.com", "mx.example.com").aaaa("mx.example.com", "2001:db8::1");
    dns.tlsa("_25._tcp.mx.example.com", "3 1 1 " + kSha256);
    dns.secure("example.com").secure("mx.example.com").secure("_25._tcp.mx.example.com");
    EXPECT_EQ(dane_policy(dns, "example.com", {"mx.example.com"}).host("mx.example.com")->level,
              DaneLevel::verify);
}

TEST(DanePolicy, TheTlsaNameFollowsThePort) {
    TableDns dns = signed_domain();
    dns.tlsa("_2525._tcp.mx2.example.com", "3 1 1 " + kSha256).secure("_2525._tcp.mx2.example.com");
    auto policy = dane_policy(dns, "example.com", {"mx1.example.com", "mx2.example.com"}, 2525);
    EXPECT_EQ(policy.host("mx1.example.com")->level, DaneLevel::none);
    EXPECT_EQ(policy.host("mx2.example.com")->level, DaneLevel::verify);
    EXPECT_EQ(tlsa_name("MX.Example.com.", 25), "_25._tcp.mx.example.com");
}

TEST(DanePolicy, AFailingTlsaLookupIsReportedForThatHostOnly) {
    TableDns dns = signed_domain();
    dns.servfail("_25._tcp.mx2.example.com");
    auto policy = dane_policy(dns, "example.com", {"mx1.example.com", "mx2.example.com"});
    EXPECT_EQ(policy.host("mx1.example.com")->level, DaneLevel::verify);
    EXPECT_EQ(policy.host("mx2.example.com")->level, DaneLevel::unreachable);
}

TEST(TlsSessionClassification, ARefusedConnectionIsNoTlsResult) {
    EXPECT_FALSE(classify_tls_session({}));
}

TEST(TlsSessionClassification, EstablishedTlsWithoutACheckIsASuccess) {
    TlsSessionObservation o;
    o.greeted = o.tls_attempted = o.tls_established = true;
    auto outcome = classify_tls_session(o);
    ASSERT_TRUE(outcome);
    EXPECT_TRUE(outcome->success);
}

TEST(TlsSessionClassification, NoStarttlsIsStarttlsNotSupported) {
    TlsSessionObservation o;
    o.greeted = true;
    auto outcome = classify_tls_session(o);
    ASSERT_TRUE(outcome);
    EXPECT_FALSE(outcome->success);
    EXPECT_EQ(outcome->result_type, TlsResultType::starttls_not_supported);
}

TEST(TlsSessionClassification, ADaneMismatchIsTlsaInvalid) {
    TlsSessionObservation o;
    o.greeted = o.tls_attempted = o.dane = true;
    o.verify_result = X509_V_ERR_DANE_NO_MATCH;
    o.reason = "TLS handshake failed: certificate verify failed (No matching DANE TLSA records)";
    auto outcome = classify_tls_session(o);
    ASSERT_TRUE(outcome);
    EXPECT_EQ(outcome->result_type, TlsResultType::tlsa_invalid);
    EXPECT_EQ(outcome->failure_reason_code, o.reason);
}

TEST(TlsSessionClassification, APkixFailureSeenOnlyForReportingStillCounts) {
    // MTA-STS testing: the handshake went on (no enforcement) but the certificate was not trusted.
    TlsSessionObservation o;
    o.greeted = o.tls_attempted = o.tls_established = true;
    o.verify_result = X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT;
    auto outcome = classify_tls_session(o);
    ASSERT_TRUE(outcome);
    EXPECT_FALSE(outcome->success);
    EXPECT_EQ(outcome->result_type, TlsResultType::certificate_not_trusted);
    EXPECT_FALSE(outcome->failure_reason_code.empty());
}

TEST(TlsSessionClassification, AHandshakeFailureWithoutAVerifyErrorIsValidationFailure) {
    TlsSessionObservation o;
    o.greeted = o.tls_attempted = true;
    o.reason = "TLS handshake failed: unsupported protocol";
    auto outcome = classify_tls_session(o);
    ASSERT_TRUE(outcome);
    EXPECT_EQ(outcome->result_type, TlsResultType::validation_failure);
}

}  // namespace
}  // namespace magpie::mailauth
