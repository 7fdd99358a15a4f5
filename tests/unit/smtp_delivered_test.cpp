// smtp::delivered_message: what final delivery stores, and where the stored message's header ends.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "mail/message.h"
#include "smtp/delivered.h"

namespace magpie::smtp {
namespace {

constexpr std::string_view trace =
    "Return-Path: <alice@crepes.fr>\r\nReceived: from crepes.fr\r\n\tby mx; date\r\n";
// Mon, 23 Nov 2026 00:16:54 +0000
constexpr std::int64_t when = 1795393014;

Envelope envelope_from(std::string sender) {
    Envelope e;
    e.reverse_path = std::move(sender);
    e.recipients.push_back({"demo@example.test", "", ""});
    return e;
}

std::string deliver(std::string_view data, AddMissingHeaders policy = AddMissingHeaders::headerless,
                    std::string sender = "alice@crepes.fr") {
    return delivered_message(trace, envelope_from(std::move(sender)), data,
                             DeliveryStamp{"mx.example.test", "0123ABCD", when, policy});
}

constexpr std::string_view added =
    "Message-ID: <20261123001654.0123ABCD@mx.example.test>\r\n"
    "Date: Mon, 23 Nov 2026 00:16:54 +0000\r\n"
    "From: alice@crepes.fr\r\n";

// What a reader of the stored bytes sees as the body (the mail library's own rule).
std::string body_of(std::string_view stored) {
    std::vector<mail::HeaderField> fields;
    auto scan = mail::scan_header(stored, 0, stored.size(), mail::ParseLimits{}, fields);
    return std::string(stored.substr(scan.body_offset));
}

// Issue 12 A: two lines of text and no header at all.
TEST(SmtpDelivered, HeaderlessTextBecomesTheBodyWithDateMessageIdAndFrom) {
    std::string data = "Bonjour,\r\nvoici des crepes.\r\n";
    std::string stored = deliver(data);
    EXPECT_EQ(stored, std::string(trace) + std::string(added) + "\r\n" + data);
    EXPECT_EQ(body_of(stored), data);
}

// Neighbours of the same fault: first lines that are not header fields, though they look close to one.
TEST(SmtpDelivered, FirstLinesThatAreNotFieldsNeverJoinTheTraceFields) {
    for (std::string data :
         {"  indented text\r\nsecond\r\n",  // would fold into Received:
          "\tTabbed: looks like a field\r\n",
          "From alice Mon Nov 23 00:00:00 2026\r\nSubject: x\r\n\r\nmbox\r\n", "No colon here\r\n",
          ": empty field name\r\n", "Subj ect: space inside a name\r\n", "Ünïcode: 8-bit name\r\n", "x"}) {
        std::string stored = deliver(data);
        EXPECT_EQ(stored, std::string(trace) + std::string(added) + "\r\n" + data) << data;
        EXPECT_EQ(body_of(stored), data) << data;
    }
}

TEST(SmtpDelivered, MessageThatStartsWithTheEmptyLineKeepsIt) {
    std::string data = "\r\nbody only\r\n";
    EXPECT_EQ(deliver(data), std::string(trace) + std::string(added) + data);
    EXPECT_EQ(body_of(deliver(data)), "body only\r\n");
}

TEST(SmtpDelivered, EmptyMessageGetsTheFieldsAndNoBody) {
    EXPECT_EQ(deliver(""), std::string(trace) + std::string(added));
}

TEST(SmtpDelivered, MessageWithAHeaderIsStoredAsSentByDefault) {
    for (std::string data :
         {"Subject: hi\r\n\r\nbody\r\n", "Subject: hi\r\n", "X-Only: field\r\n\tfolded\r\n\r\n",
          "Subject : obsolete space before the colon\r\n\r\nb\r\n"}) {
        EXPECT_EQ(deliver(data), std::string(trace) + data) << data;
    }
}

// Postfix inserts the empty line when the primary header is ended by a line that is not a field.
TEST(SmtpDelivered, HeaderEndedByTextGetsTheEmptyLine) {
    std::string stored = deliver("Subject: hi\r\nthis is the body\r\nmore\r\n");
    EXPECT_EQ(stored, std::string(trace) + "Subject: hi\r\n\r\nthis is the body\r\nmore\r\n");
    EXPECT_EQ(body_of(stored), "this is the body\r\nmore\r\n");
}

TEST(SmtpDelivered, AlwaysAddsOnlyWhatIsMissingAfterTheMessagesOwnFields) {
    std::string stored =
        deliver("Subject: hi\r\nmessage-id: <x@y>\r\n\r\nbody\r\n", AddMissingHeaders::always);
    EXPECT_EQ(stored, std::string(trace) +
                          "Subject: hi\r\nmessage-id: <x@y>\r\n"
                          "Date: Mon, 23 Nov 2026 00:16:54 +0000\r\nFrom: alice@crepes.fr\r\n"
                          "\r\nbody\r\n");
    std::string complete =
        "From: a@b\r\nDate: Mon, 23 Nov 2026 00:00:00 +0000\r\nMessage-ID: <1@b>\r\n\r\nb\r\n";
    EXPECT_EQ(deliver(complete, AddMissingHeaders::always), std::string(trace) + complete);
}

TEST(SmtpDelivered, NeverAddsNoFieldsButStillSeparatesTheBody) {
    EXPECT_EQ(deliver("plain text\r\n", AddMissingHeaders::never), std::string(trace) + "\r\nplain text\r\n");
}

TEST(SmtpDelivered, NullSenderBecomesMailerDaemon) {
    std::string stored = deliver("bounce text\r\n", AddMissingHeaders::headerless, "");
    EXPECT_NE(stored.find("\r\nFrom: MAILER-DAEMON@mx.example.test\r\n\r\nbounce text\r\n"),
              std::string::npos);
}

TEST(SmtpDelivered, QuotedAndLiteralSendersAreValidAddrSpecs) {
    EXPECT_NE(deliver("t\r\n", AddMissingHeaders::headerless, "\"john doe\"@x.org")
                  .find("From: \"john doe\"@x.org\r\n"),
              std::string::npos);
    EXPECT_NE(
        deliver("t\r\n", AddMissingHeaders::headerless, "u@[192.0.2.1]").find("From: u@[192.0.2.1]\r\n"),
        std::string::npos);
}

TEST(SmtpDelivered, MessageIdNamesTheQueueIdAndHost) {
    std::string stored =
        delivered_message("", envelope_from("a@b"), "t\r\n",
                          DeliveryStamp{"bad host(name)", "Q\r\n1", 0, AddMissingHeaders::headerless});
    EXPECT_TRUE(stored.starts_with("Message-ID: <19700101000000.Q__1@bad_host_name_>\r\n")) << stored;
}

}  // namespace
}  // namespace magpie::smtp
