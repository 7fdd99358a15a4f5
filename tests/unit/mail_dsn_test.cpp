// Delivery status notifications (RFC 3464, RFC 6522): structure, exact delivery-status fields, what is
// returned of the original, and refusal of inconsistent reports.
#include <gtest/gtest.h>

#include <string>

#include "base/strings.h"
#include "mail/decode.h"
#include "mail/dsn.h"
#include "mail/mime.h"

namespace magpie::mail {
namespace {

BuildEnv test_env() {
    BuildEnv env;
    env.now = 1795000000;
    auto counter = std::make_shared<std::uint64_t>(0);
    env.random = [counter]() { return ++*counter * 0x9e3779b97f4a7c15ULL; };
    env.domain = "mx.example.test";
    return env;
}

const std::string kOriginal =
    "From: Alice <alice@example.test>\r\n"
    "To: nobody@remote.test\r\n"
    "Subject: lunch?\r\n"
    "Message-ID: <orig@example.test>\r\n"
    "\r\n"
    "Shall we?\r\n";

DsnReport bounce() {
    DsnReport report;
    report.reporting_mta = "mx.example.test";
    report.arrival_date = 1794999000;
    report.to = "alice@example.test";
    report.original_message = kOriginal;
    DsnRecipient r;
    r.final_recipient = "nobody@remote.test";
    r.original_recipient = "rfc822;nobody@remote.test";
    r.action = DsnAction::failed;
    r.status = "5.1.1";
    r.remote_mta = "mx.remote.test";
    r.diagnostic_code = "550 5.1.1 <nobody@remote.test>: Recipient address rejected";
    r.last_attempt = 1794999900;
    report.recipients.push_back(r);
    return report;
}

std::vector<const Part*> children(const Message& message, const Part& part) {
    std::vector<const Part*> out;
    for (std::uint32_t i = part.first_child; i != kNoPart; i = message.parts()[i].next_sibling)
        out.push_back(&message.parts()[i]);
    return out;
}

std::string build_ok(const DsnReport& report, const BuildOptions& options = {},
                     const DsnLimits& limits = {}) {
    auto built = build_dsn(report, options, test_env(), limits);
    EXPECT_TRUE(built.ok()) << (built.ok() ? "" : built.error().message);
    return built.ok() ? *built : std::string();
}

TEST(Dsn, IsAMultipartReportWithThreeParts) {
    std::string dsn = build_ok(bounce());
    EXPECT_TRUE(is_ascii(dsn));
    Message parsed = Message::parse(dsn);
    ASSERT_TRUE(parsed.root().is("multipart", "report"));
    EXPECT_EQ(parsed.content_type(parsed.root()).params.get("report-type"), "delivery-status");
    auto parts = children(parsed, parsed.root());
    ASSERT_EQ(parts.size(), 3u);
    EXPECT_TRUE(parts[0]->is("text", "plain"));  // RFC 6522 3: the human-readable part first
    EXPECT_TRUE(parts[1]->is("message", "delivery-status"));
    EXPECT_TRUE(parts[2]->is("text", "rfc822-headers"));  // RET=HDRS by default
    auto header = parsed.header();
    EXPECT_EQ(header.value("Subject"), "Undelivered Mail Returned to Sender");
    EXPECT_EQ(header.value("To"), "alice@example.test");
    EXPECT_EQ(header.value("From"), "Mail Delivery System <MAILER-DAEMON@mx.example.test>");
    EXPECT_EQ(header.value("Auto-Submitted"), "auto-replied");
}

TEST(Dsn, WritesRfc3464FieldsExactly) {
    std::string dsn = build_ok(bounce());
    Message parsed = Message::parse(dsn);
    auto parts = children(parsed, parsed.root());
    ASSERT_EQ(parts.size(), 3u);
    EXPECT_EQ(decode_body(parsed, *parts[1]),
              "Reporting-MTA: dns; mx.example.test\r\n"
              "Arrival-Date: Wed, 18 Nov 2026 10:50:00 +0000\r\n"
              "\r\n"
              "Original-Recipient: rfc822; nobody@remote.test\r\n"
              "Final-Recipient: rfc822; nobody@remote.test\r\n"
              "Action: failed\r\n"
              "Status: 5.1.1\r\n"
              "Remote-MTA: dns; mx.remote.test\r\n"
              "Diagnostic-Code: smtp; 550 5.1.1 <nobody@remote.test>: Recipient address\r\n"
              " rejected\r\n"
              "Last-Attempt-Date: Wed, 18 Nov 2026 11:05:00 +0000\r\n");
}

TEST(Dsn, ReproducesRfc3464ExampleA1) {
    // RFC 3464 appendix A.1: a failure after a timeout, reported with the transient status 4.0.0.
    DsnReport report;
    report.reporting_mta = "cs.utk.edu";
    report.to = "moore@cs.utk.edu";
    report.original_message = "Subject: x\r\n\r\nbody\r\n";
    DsnRecipient r;
    r.original_recipient = "rfc822;louisl@larry.slip.umd.edu";
    r.final_recipient = "louisl@larry.slip.umd.edu";
    r.action = DsnAction::failed;
    r.status = "4.0.0";
    r.diagnostic_code = "426 connection timed out";
    r.last_attempt = 773615749;  // Thu, 7 Jul 1994 21:15:49 +0000 (17:15:49 -0400 in the RFC)
    report.recipients.push_back(r);
    std::string dsn = build_ok(report);
    Message parsed = Message::parse(dsn);
    EXPECT_EQ(decode_body(parsed, *children(parsed, parsed.root())[1]),
              "Reporting-MTA: dns; cs.utk.edu\r\n"
              "\r\n"
              "Original-Recipient: rfc822; louisl@larry.slip.umd.edu\r\n"
              "Final-Recipient: rfc822; louisl@larry.slip.umd.edu\r\n"
              "Action: failed\r\n"
              "Status: 4.0.0\r\n"
              "Diagnostic-Code: smtp; 426 connection timed out\r\n"
              "Last-Attempt-Date: Thu, 7 Jul 1994 21:15:49 +0000\r\n");
}

TEST(Dsn, HumanPartNamesEachRecipientAndTheRemoteReply) {
    std::string dsn = build_ok(bounce());
    Message parsed = Message::parse(dsn);
    std::string text = decode_text(parsed, *children(parsed, parsed.root())[0]);
    EXPECT_NE(text.find("<nobody@remote.test>: delivery failed (5.1.1)"), std::string::npos);
    EXPECT_NE(text.find("The server mx.remote.test said: 550 5.1.1"), std::string::npos);
    EXPECT_EQ(children(parsed, parsed.root())[0]->encoding, TransferEncoding::seven_bit);  // short lines
}

TEST(Dsn, ReturnsTheHeaderOnlyByDefault) {
    std::string dsn = build_ok(bounce());
    Message parsed = Message::parse(dsn);
    std::string returned = decode_body(parsed, *children(parsed, parsed.root())[2]);
    EXPECT_EQ(returned, kOriginal.substr(0, kOriginal.find("\r\n\r\n") + 2));
}

TEST(Dsn, ReturnsTheFullMessageWhenAsked) {
    DsnReport report = bounce();
    report.return_content = DsnReturn::full;
    std::string dsn = build_ok(report);
    Message parsed = Message::parse(dsn);
    auto parts = children(parsed, parsed.root());
    ASSERT_EQ(parts.size(), 3u);
    EXPECT_TRUE(parts[2]->is("message", "rfc822"));
    EXPECT_EQ(parts[2]->kind, PartKind::message);
    EXPECT_EQ(parsed.body(*parts[2]), kOriginal);
}

TEST(Dsn, DowngradesAnEightBitOriginalForSevenBitTransport) {
    DsnReport report = bounce();
    report.return_content = DsnReturn::full;
    report.original_message =
        "From: a@example.test\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\nna\xc3\xafve\r\n";
    std::string dsn = build_ok(report);
    EXPECT_TRUE(is_ascii(dsn));
    Message parsed = Message::parse(dsn);
    auto parts = children(parsed, parsed.root());
    ASSERT_TRUE(parts[2]->is("message", "rfc822"));
    const Part& inner = parsed.parts()[parts[2]->first_child];
    EXPECT_EQ(decode_body(parsed, inner), "na\xc3\xafve\r\n");
}

TEST(Dsn, ReturnsAnOriginalWithBareLfWholeInCanonicalForm) {
    DsnReport report = bounce();
    report.return_content = DsnReturn::full;
    report.original_message = "From: a@example.test\nSubject: lf\n\nbody\n";
    std::string dsn = build_ok(report);
    Message parsed = Message::parse(dsn);
    auto parts = children(parsed, parsed.root());
    ASSERT_TRUE(parts[2]->is("message", "rfc822"));
    EXPECT_EQ(parsed.body(*parts[2]), "From: a@example.test\r\nSubject: lf\r\n\r\nbody\r\n");
}

TEST(Dsn, FallsBackToHeadersWhenTheOriginalCannotBeDowngraded) {
    DsnReport report = bounce();
    report.return_content = DsnReturn::full;
    report.original_message = "Subject: caf\xc3\xa9\r\n\r\nbody \xff\r\n";
    std::string dsn = build_ok(report);
    EXPECT_TRUE(is_ascii(dsn));
    Message parsed = Message::parse(dsn);
    auto parts = children(parsed, parsed.root());
    ASSERT_TRUE(parts[2]->is("text", "rfc822-headers"));
    EXPECT_EQ(decode_body(parsed, *parts[2]), "Subject: caf\xc3\xa9\r\n");
}

TEST(Dsn, ReturnsOnlyTheHeaderOfAnOversizedOriginal) {
    DsnReport report = bounce();
    report.return_content = DsnReturn::full;
    DsnLimits limits;
    limits.max_returned_octets = 10;
    std::string dsn = build_ok(report, {}, limits);
    Message parsed = Message::parse(dsn);
    EXPECT_TRUE(children(parsed, parsed.root())[2]->is("text", "rfc822-headers"));
}

TEST(Dsn, DelayNoticeCarriesWillRetryUntil) {
    DsnReport report = bounce();
    report.recipients[0].action = DsnAction::delayed;
    report.recipients[0].status = "4.4.1";
    report.recipients[0].diagnostic_code.clear();
    report.recipients[0].will_retry_until = 1795400000;
    std::string dsn = build_ok(report);
    Message parsed = Message::parse(dsn);
    EXPECT_EQ(parsed.header().value("Subject"), "Delayed Mail (still being retried)");
    std::string status = decode_body(parsed, *children(parsed, parsed.root())[1]);
    EXPECT_NE(status.find("Action: delayed\r\nStatus: 4.4.1\r\n"), std::string::npos);
    EXPECT_NE(status.find("Will-Retry-Until: "), std::string::npos);
}

TEST(Dsn, OneReportCoversSeveralRecipients) {
    DsnReport report = bounce();
    DsnRecipient ok;
    ok.final_recipient = "bob@remote.test";
    ok.action = DsnAction::delivered;
    ok.status = "2.0.0";
    report.recipients.push_back(ok);
    std::string dsn = build_ok(report);
    Message parsed = Message::parse(dsn);
    std::string status = decode_body(parsed, *children(parsed, parsed.root())[1]);
    EXPECT_NE(status.find("\r\n\r\nFinal-Recipient: rfc822; bob@remote.test\r\nAction: delivered\r\n"),
              std::string::npos);
}

TEST(Dsn, DiagnosticIsOneAsciiLine) {
    DsnReport report = bounce();
    report.recipients[0].diagnostic_code = "550-first line\r\n550 second \xc3\xa9 line";
    std::string dsn = build_ok(report);
    Message parsed = Message::parse(dsn);
    std::string status = decode_body(parsed, *children(parsed, parsed.root())[1]);
    EXPECT_NE(status.find("Diagnostic-Code: smtp; 550-first line 550 second ?? line\r\n"), std::string::npos);
}

TEST(Dsn, InternationalisedRecipientUsesUtf8AddressType) {
    DsnReport report = bounce();
    report.recipients[0].final_recipient = "j\xc3\xb8rn@remote.test";
    report.recipients[0].original_recipient.clear();
    std::string dsn = build_ok(report);
    EXPECT_TRUE(is_ascii(dsn));
    Message parsed = Message::parse(dsn);
    std::string status = decode_body(parsed, *children(parsed, parsed.root())[1]);
    // RFC 6533 3: utf-8-addr-xtext.
    EXPECT_NE(status.find("Final-Recipient: utf-8; j\\x{F8}rn@remote.test\r\n"), std::string::npos);
}

TEST(Dsn, RejectsInconsistentReports) {
    DsnReport report = bounce();
    report.recipients[0].status = "2.0.0";  // a failure is not a success
    EXPECT_FALSE(build_dsn(report, {}, test_env()).ok());
    report.recipients[0].action = DsnAction::delayed;
    report.recipients[0].status = "5.1.1";  // a delay is transient
    EXPECT_FALSE(build_dsn(report, {}, test_env()).ok());
    report.recipients[0].action = DsnAction::failed;
    report.recipients[0].status = "5.1";
    EXPECT_FALSE(build_dsn(report, {}, test_env()).ok());
    report = bounce();
    report.recipients.clear();
    EXPECT_FALSE(build_dsn(report, {}, test_env()).ok());
    report = bounce();
    report.reporting_mta = "bad host";
    EXPECT_FALSE(build_dsn(report, {}, test_env()).ok());
    report = bounce();
    report.to = "";
    EXPECT_FALSE(build_dsn(report, {}, test_env()).ok());
}

TEST(Dsn, BoundsTheRecipientCount) {
    DsnReport report = bounce();
    report.recipients.resize(3, report.recipients[0]);
    DsnLimits limits;
    limits.max_recipients = 2;
    auto result = build_dsn(report, {}, test_env(), limits);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code, Errc::limit_exceeded);
}

}  // namespace
}  // namespace magpie::mail
