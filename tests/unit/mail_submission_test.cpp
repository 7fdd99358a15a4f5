// Completing submitted messages (RFC 6409 8): what is added, what is refused, and that nothing else changes.
#include <gtest/gtest.h>

#include <string>

#include "mail/mime.h"
#include "mail/submission.h"

namespace magpie::mail {
namespace {

BuildEnv test_env() {
    BuildEnv env;
    env.now = 1795000000;
    env.random = []() { return std::uint64_t{0x0123456789abcdef}; };
    env.domain = "submit.example.test";
    return env;
}

std::string complete_ok(std::string_view message, SubmissionOptions options = {}) {
    auto result = complete_submission(message, options, test_env());
    EXPECT_TRUE(result.ok()) << (result.ok() ? "" : result.error().message);
    return result.ok() ? *result : std::string();
}

Error complete_error(std::string_view message, SubmissionOptions options = {}) {
    auto result = complete_submission(message, options, test_env());
    EXPECT_FALSE(result.ok());
    return result.ok() ? Error{Errc::internal, "accepted"} : result.error();
}

const std::string kDate = "Date: Wed, 18 Nov 2026 11:06:40 +0000\r\n";
const std::string kMessageId =
    "Message-ID: <6afd86c0.0123456789abcdef0123456789abcdef@submit.example.test>\r\n";

TEST(Submission, LeavesACompleteMessageAlone) {
    std::string message =
        "From: a@example.test\r\nTo: b@example.test\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        "Message-ID: <x@example.test>\r\n\r\nbody\r\n";
    EXPECT_EQ(complete_ok(message), message);
}

TEST(Submission, AddsDateAndMessageIdAtTheEndOfTheHeader) {
    std::string message = "From: a@example.test\r\nTo: b@example.test\r\nSubject: hi\r\n\r\nbody\r\n";
    EXPECT_EQ(complete_ok(message), "From: a@example.test\r\nTo: b@example.test\r\nSubject: hi\r\n" + kDate +
                                        kMessageId + "\r\nbody\r\n");
}

TEST(Submission, AddsUndisclosedRecipientsWhenThereIsNoDestination) {
    std::string message =
        "From: a@example.test\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        "Message-ID: <x@example.test>\r\n\r\nbody\r\n";
    std::string out = complete_ok(message);
    Message parsed = Message::parse(out);
    EXPECT_EQ(parsed.header().value("To"), "undisclosed-recipients:;");
    EXPECT_EQ(parsed.body(parsed.root()), "body\r\n");
}

TEST(Submission, StripsBccAndThenNeedsADestination) {
    std::string message =
        "From: a@example.test\r\nBcc: hidden@example.test\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        "Message-ID: <x@example.test>\r\n\r\nbody\r\n";
    std::string out = complete_ok(message);
    EXPECT_EQ(out.find("Bcc"), std::string::npos);
    EXPECT_NE(out.find("To: undisclosed-recipients:;\r\n"), std::string::npos);
}

TEST(Submission, KeepsBccWhenAskedAndItCountsAsDestination) {
    std::string message =
        "From: a@example.test\r\nBcc: hidden@example.test\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        "Message-ID: <x@example.test>\r\n\r\nbody\r\n";
    SubmissionOptions options;
    options.strip_bcc = false;
    EXPECT_EQ(complete_ok(message, options), message);
}

TEST(Submission, RefusesAMessageWithoutFrom) {
    EXPECT_EQ(complete_error("To: b@example.test\r\n\r\nbody\r\n").code, Errc::invalid_argument);
    EXPECT_EQ(complete_error("From: \r\nTo: b@example.test\r\n\r\nbody\r\n").code, Errc::invalid_argument);
}

TEST(Submission, RefusesRepeatedSingleFields) {
    complete_error("From: a@example.test\r\nFrom: c@example.test\r\nTo: b@example.test\r\n\r\n");
    complete_error("From: a@example.test\r\nSubject: 1\r\nsubject: 2\r\n\r\n");
}

TEST(Submission, SeveralAuthorsNeedASender) {
    std::string message = "From: a@example.test, c@example.test\r\nTo: b@example.test\r\n\r\nx\r\n";
    complete_error(message);
    complete_ok("Sender: a@example.test\r\n" + message);
}

TEST(Submission, RefusesEightBitHeadersWithoutSmtputf8) {
    std::string message = "From: J\xc3\xb8rn <j@example.test>\r\nTo: b@example.test\r\n\r\nx\r\n";
    EXPECT_EQ(complete_error(message).code, Errc::invalid_argument);
    SubmissionOptions options;
    options.smtputf8 = true;
    complete_ok(message, options);
    complete_error("From: \xff <j@example.test>\r\nTo: b@example.test\r\n\r\nx\r\n", options);  // not UTF-8
}

TEST(Submission, EightBitBodyIsNotAHeaderProblem) {
    complete_ok("From: a@example.test\r\nTo: b@example.test\r\n\r\ncaf\xc3\xa9\r\n");
}

TEST(Submission, RefusesOverlongHeaderLines) {
    std::string message = "From: a@example.test\r\nX-Long: " + std::string(1000, 'a') + "\r\n\r\nx\r\n";
    EXPECT_EQ(complete_error(message).code, Errc::limit_exceeded);
}

TEST(Submission, RefusesHeadersBeyondTheFieldLimit) {
    std::string message = "From: a@example.test\r\n";
    for (int i = 0; i < 20; ++i) message += "X-N: " + std::to_string(i) + "\r\n";
    SubmissionOptions options;
    options.limits.max_header_fields = 10;
    EXPECT_EQ(complete_error(message + "\r\nx\r\n", options).code, Errc::limit_exceeded);
}

TEST(Submission, HeaderOnlyMessageWithoutFinalLineEnd) {
    std::string out = complete_ok("From: a@example.test\r\nTo: b@example.test");
    EXPECT_EQ(out, "From: a@example.test\r\nTo: b@example.test\r\n" + kDate + kMessageId);
}

TEST(Submission, BodyWithoutBlankLineStaysTheBody) {
    std::string out = complete_ok("From: a@example.test\r\nTo: b@example.test\r\nnot a field\r\n");
    Message parsed = Message::parse(out);
    EXPECT_EQ(parsed.body(parsed.root()), "not a field\r\n");
    EXPECT_TRUE(parsed.header().has("Message-ID"));
}

TEST(Submission, ToleratesBareLfHeaders) {
    std::string out = complete_ok("From: a@example.test\nTo: b@example.test\n\nbody\n");
    Message parsed = Message::parse(out);
    EXPECT_TRUE(parsed.header().has("Date"));
    EXPECT_EQ(parsed.body(parsed.root()), "body\n");
}

}  // namespace
}  // namespace magpie::mail
