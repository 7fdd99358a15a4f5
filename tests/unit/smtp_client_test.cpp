// Byte-level tests of smtp::ClientSession and its reply reader: replies in, exact command bytes, results
// and events out; then the client against smtp::ServerSession in memory.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "smtp/client_session.h"
#include "smtp/reply.h"
#include "smtp/server_session.h"

namespace magpie::smtp {
namespace {

ClientConfig default_config() {
    ClientConfig config;
    config.helo_name = "client.example";
    config.peer_name = "mx.example.org[192.0.2.1]";
    return config;
}

OutgoingMessage message(std::string id = "m1", std::vector<std::string> to = {"bob@example.org"},
                        std::string data = "Subject: hi\r\n\r\nhello\r\n") {
    OutgoingMessage m;
    m.id = std::move(id);
    m.reverse_path = "alice@example.test";
    for (auto& address : to) m.recipients.push_back(OutgoingRecipient{address, "", ""});
    m.data = std::move(data);
    return m;
}

// Plays the IO layer against scripted replies: feeds bytes, collects every byte written and every event.
struct Client {
    explicit Client(ClientConfig config = default_config()) : session(std::move(config)) {}

    // Feeds the peer's bytes and returns what the session writes in answer.
    std::string reply(std::string_view bytes) {
        session.feed(bytes);
        return drain();
    }
    std::string drain() {
        std::string out;
        while (session.has_output()) out += session.take_output();
        while (auto event = session.poll_event()) {
            if (auto* result = std::get_if<MessageResult>(&*event)) {
                results.push_back(std::move(*result));
            } else if (std::holds_alternative<TlsHandshake>(*event)) {
                ++handshakes;
            } else if (std::holds_alternative<Idle>(*event)) {
                ++idles;
            } else {
                ++disconnects;
            }
        }
        written += out;
        return out;
    }
    void enqueue(OutgoingMessage m) { session.enqueue(std::move(m)); }

    const RecipientResult& result(std::size_t message, std::size_t recipient = 0) const {
        return results.at(message).recipients.at(recipient);
    }

    ClientSession session;
    std::string written;
    std::vector<MessageResult> results;
    int handshakes = 0;
    int idles = 0;
    int disconnects = 0;
};

constexpr std::string_view greeting = "220 mx.example.org ESMTP\r\n";
constexpr std::string_view ehlo_plain = "250-mx.example.org\r\n250 ENHANCEDSTATUSCODES\r\n";
constexpr std::string_view ehlo_full =
    "250-mx.example.org hello\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
    "250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250 DSN\r\n";

// A session greeted with `ehlo` and ready for messages.
Client greeted(std::string_view ehlo, ClientConfig config = default_config()) {
    Client c(std::move(config));
    EXPECT_EQ(c.reply(greeting), "EHLO client.example\r\n");
    c.reply(ehlo);
    return c;
}

// ---- the reply reader ----

Result<Reply> read_one(std::string_view bytes, ReplyLimits limits = {}) {
    ReplyReader reader(limits);
    std::size_t used = reader.consume(bytes);
    if (!reader.ready()) return make_error(Errc::internal, "incomplete after " + std::to_string(used));
    return reader.take();
}

TEST(SmtpReply, ReadsMultilineReplyWithEnhancedCode) {
    auto reply =
        read_one("550-5.1.1 The email account that you tried to reach\r\n550 5.1.1 does not exist.\r\n");
    ASSERT_TRUE(reply.ok());
    EXPECT_EQ(reply->code, 550);
    EXPECT_EQ(reply->enhanced, "5.1.1");
    ASSERT_EQ(reply->lines.size(), 2u);
    EXPECT_EQ(reply->text(), "The email account that you tried to reach does not exist.");
    EXPECT_EQ(reply->summary(), "550 5.1.1 The email account that you tried to reach does not exist.");
    EXPECT_TRUE(reply->permanent());
}

TEST(SmtpReply, StopsAtTheEndOfOneReply) {
    ReplyReader reader;
    std::string_view two = "250 first\r\n251 second\r\n";
    std::size_t used = reader.consume(two);
    EXPECT_EQ(used, 11u);
    ASSERT_TRUE(reader.ready());
    EXPECT_EQ(reader.take()->code, 250);
    EXPECT_EQ(reader.consume(two.substr(used)), 12u);
    EXPECT_EQ(reader.take()->code, 251);
    EXPECT_TRUE(reader.idle());
}

TEST(SmtpReply, AcceptsCodeWithoutTextAndBareLf) {
    auto reply = read_one("250\n");
    ASSERT_TRUE(reply.ok());
    EXPECT_EQ(reply->code, 250);
    EXPECT_EQ(reply->text(), "");
}

TEST(SmtpReply, ByteAtATimeGivesTheSameReply) {
    ReplyReader reader;
    std::string_view bytes = "250-a\r\n250-b\r\n250 c\r\n";
    for (char c : bytes) {
        EXPECT_FALSE(reader.ready());
        EXPECT_EQ(reader.consume(std::string_view(&c, 1)), 1u);
    }
    ASSERT_TRUE(reader.ready());
    EXPECT_EQ(reader.take()->lines, (std::vector<std::string>{"a", "b", "c"}));
}

TEST(SmtpReply, RejectsNonNumericAndOutOfRangeCodes) {
    for (std::string_view bad : {"abc hello\r\n", "25\r\n", "2500 x\r\n", "150 x\r\n", "650 x\r\n",
                                 "260 x\r\n", "250_x\r\n", "\r\n"}) {
        auto reply = read_one(bad);
        ASSERT_FALSE(reply.ok()) << bad;
        EXPECT_EQ(reply.error().code, Errc::invalid_argument);
        EXPECT_NE(reply.error().message.find("malformed reply line"), std::string::npos);
    }
}

TEST(SmtpReply, RejectsInconsistentCodesInMultilineReply) {
    auto reply = read_one("250-a\r\n251 b\r\n");
    ASSERT_FALSE(reply.ok());
    EXPECT_EQ(reply.error().message, "inconsistent codes in a multi-line reply (250 then 251)");
}

TEST(SmtpReply, BoundsLineLengthWithoutBuffering) {
    ReplyReader reader(ReplyLimits{.max_line = 64, .max_lines = 10});
    std::string endless(1000, 'x');
    EXPECT_EQ(reader.consume("250 "), 4u);
    EXPECT_FALSE(reader.ready());
    EXPECT_EQ(reader.consume(endless), endless.size());
    ASSERT_TRUE(reader.ready());
    auto reply = reader.take();
    ASSERT_FALSE(reply.ok());
    EXPECT_EQ(reply.error().code, Errc::limit_exceeded);
    EXPECT_EQ(reply.error().message, "reply line longer than 64 octets");
    // Failed for good: more input changes nothing.
    reader.consume("250 ok\r\n");
    EXPECT_FALSE(reader.take().ok());
}

TEST(SmtpReply, LineOfExactlyTheLimitIsAccepted) {
    std::string line = "250 " + std::string(60, 'y') + "\r\n";  // 66 octets
    EXPECT_TRUE(read_one(line, ReplyLimits{.max_line = 66, .max_lines = 2}).ok());
    EXPECT_FALSE(read_one(line, ReplyLimits{.max_line = 65, .max_lines = 2}).ok());
}

TEST(SmtpReply, BoundsLineCountOfAReplyThatNeverEnds) {
    std::string never_ending;
    for (int i = 0; i < 200; ++i) never_ending += "250-more\r\n";
    auto reply = read_one(never_ending, ReplyLimits{.max_line = 512, .max_lines = 100});
    ASSERT_FALSE(reply.ok());
    EXPECT_EQ(reply.error().message, "reply longer than 100 lines");
}

TEST(SmtpReply, ControlOctetsInTextBecomeQuestionMarks) {
    auto reply = read_one(std::string("250 a\0b\x1b[31mc\xff\r\n", 16));
    ASSERT_TRUE(reply.ok());
    EXPECT_EQ(reply->lines[0], "a?b?[31mc?");
}

TEST(SmtpReply, EnhancedCodeMustMatchTheReplyClass) {
    EXPECT_EQ(read_one("550 4.1.1 odd\r\n")->enhanced, "");
    EXPECT_EQ(read_one("250 2.1.0 ok\r\n")->enhanced, "2.1.0");
    EXPECT_EQ(read_one("250 2.1.0000 ok\r\n")->enhanced, "");
    EXPECT_EQ(read_one("451 4.7.1\r\n")->enhanced, "4.7.1");
}

// ---- EHLO ----

TEST(SmtpClient, ParsesEhloKeywords) {
    auto reply = read_one(
        "250-mx.example.org\r\n250-pipelining\r\n250-SIZE 35882577\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
        "250-CHUNKING\r\n250-DSN\r\n250-STARTTLS\r\n250-AUTH LOGIN plain XOAUTH2\r\n250-AUTH=LOGIN PLAIN\r\n"
        "250 ENHANCEDSTATUSCODES\r\n");
    ASSERT_TRUE(reply.ok());
    PeerExtensions ext = parse_ehlo(*reply);
    EXPECT_TRUE(ext.esmtp && ext.pipelining && ext.size && ext.eightbitmime && ext.smtputf8 && ext.chunking &&
                ext.dsn && ext.starttls && ext.enhanced_status_codes);
    EXPECT_EQ(ext.max_size, 35882577u);
    EXPECT_EQ(ext.auth, (std::vector<std::string>{"LOGIN", "PLAIN", "XOAUTH2"}));
}

TEST(SmtpClient, SizeWithoutNumberMeansNoLimit) {
    PeerExtensions ext = parse_ehlo(*read_one("250-mx\r\n250 SIZE\r\n"));
    EXPECT_TRUE(ext.size);
    EXPECT_EQ(ext.max_size, 0u);
}

TEST(SmtpClient, FallsBackToHeloWhenEhloIsRefused) {
    Client c;
    c.enqueue(message());
    EXPECT_EQ(c.reply(greeting), "EHLO client.example\r\n");
    EXPECT_EQ(c.reply("502 5.5.2 Error: command not recognized\r\n"), "HELO client.example\r\n");
    // No extensions after HELO: no SIZE parameter.
    EXPECT_EQ(c.reply("250 mx.example.org\r\n"), "MAIL FROM:<alice@example.test>\r\n");
    EXPECT_FALSE(c.session.extensions().esmtp);
}

TEST(SmtpClient, TemporaryEhloFailureDefersWithoutHelo) {
    Client c;
    c.enqueue(message());
    c.reply(greeting);
    EXPECT_EQ(c.reply("451 4.3.0 try later\r\n"), "QUIT\r\n");
    ASSERT_EQ(c.results.size(), 1u);
    EXPECT_EQ(c.result(0).outcome, Outcome::deferred);
    EXPECT_EQ(c.result(0).code, 451);
}

// ---- one transaction, step by step and pipelined ----

TEST(SmtpClient, DeliversOneMessageCommandByCommand) {
    Client c = greeted(ehlo_plain);
    EXPECT_EQ(c.idles, 1);
    c.enqueue(message("m1", {"bob@example.org"}, "Subject: hi\r\n\r\n.dot line\r\nend"));
    EXPECT_EQ(c.drain(), "MAIL FROM:<alice@example.test>\r\n");
    EXPECT_EQ(c.reply("250 2.1.0 Ok\r\n"), "RCPT TO:<bob@example.org>\r\n");
    EXPECT_EQ(c.reply("250 2.1.5 Ok\r\n"), "DATA\r\n");
    // RFC 5321 4.5.2: a leading dot doubled, a last line completed, then the terminator.
    EXPECT_EQ(c.reply("354 End data with <CR><LF>.<CR><LF>\r\n"),
              "Subject: hi\r\n\r\n..dot line\r\nend\r\n.\r\n");
    EXPECT_TRUE(c.results.empty());
    EXPECT_EQ(c.reply("250 2.0.0 Ok: queued as 12345\r\n"), "");
    ASSERT_EQ(c.results.size(), 1u);
    EXPECT_EQ(c.results[0].id, "m1");
    const RecipientResult& r = c.result(0);
    EXPECT_EQ(r.address, "bob@example.org");
    EXPECT_EQ(r.outcome, Outcome::delivered);
    EXPECT_EQ(r.code, 250);
    EXPECT_EQ(r.enhanced, "2.0.0");
    EXPECT_EQ(r.text, "Ok: queued as 12345");
    EXPECT_EQ(c.idles, 2);

    c.session.quit();
    EXPECT_EQ(c.drain(), "QUIT\r\n");
    EXPECT_EQ(c.reply("221 2.0.0 Bye\r\n"), "");
    EXPECT_EQ(c.disconnects, 1);
    EXPECT_TRUE(c.session.closed());
}

TEST(SmtpClient, SaysWhatItWaitsForSoTheIoLayerCanPickTimeouts) {
    Client c;
    EXPECT_EQ(c.session.awaiting(), ClientSession::Awaiting::reply);  // the greeting
    c.reply(greeting);
    c.reply(ehlo_plain);
    EXPECT_EQ(c.session.awaiting(), ClientSession::Awaiting::nothing);  // idle
    c.enqueue(message());
    c.drain();
    EXPECT_EQ(c.session.awaiting(), ClientSession::Awaiting::reply);
    c.reply("250 ok\r\n");
    c.reply("250 ok\r\n");
    c.reply("354 go\r\n");
    EXPECT_EQ(c.session.awaiting(), ClientSession::Awaiting::data_end);  // RFC 5321 4.5.3.2.6: 10 minutes
    c.reply("250 ok\r\n");
    EXPECT_EQ(c.session.awaiting(), ClientSession::Awaiting::nothing);
}

TEST(SmtpClient, PipelinesEnvelopeAndDataAndMatchesRepliesInOrder) {
    ClientConfig config = default_config();
    config.use_chunking = false;
    Client c = greeted(ehlo_full, config);
    c.enqueue(message("m1", {"bob@example.org", "nobody@example.org", "carol@example.org"}));
    EXPECT_EQ(c.drain(),
              "MAIL FROM:<alice@example.test> SIZE=22\r\nRCPT TO:<bob@example.org>\r\n"
              "RCPT TO:<nobody@example.org>\r\nRCPT TO:<carol@example.org>\r\nDATA\r\n");
    EXPECT_EQ(c.reply("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <nobody@example.org>: User unknown\r\n"
                      "451 4.3.0 <carol@example.org>: Temporary lookup failure\r\n354 go ahead\r\n"),
              "Subject: hi\r\n\r\nhello\r\n.\r\n");
    c.reply("250 2.0.0 Ok: queued\r\n");
    ASSERT_EQ(c.results.size(), 1u);
    EXPECT_EQ(c.result(0, 0).outcome, Outcome::delivered);
    EXPECT_EQ(c.result(0, 1).outcome, Outcome::failed);
    EXPECT_EQ(c.result(0, 1).code, 550);
    EXPECT_EQ(c.result(0, 1).enhanced, "5.1.1");
    EXPECT_EQ(c.result(0, 1).text, "<nobody@example.org>: User unknown");
    EXPECT_EQ(c.result(0, 2).outcome, Outcome::deferred);
    EXPECT_EQ(c.result(0, 2).code, 451);
}

TEST(SmtpClient, PipelinedDataAcceptedWithoutRecipientsGetsAnEmptyEnd) {
    ClientConfig config = default_config();
    config.use_chunking = false;
    Client c = greeted(ehlo_full, config);
    c.enqueue(message());
    c.drain();
    // RFC 2920 3.1: a server that says 354 although no recipient was taken gets a lone dot, not the message.
    EXPECT_EQ(c.reply("250 ok\r\n550 5.1.1 no\r\n354 go\r\n"), ".\r\n");
    EXPECT_EQ(c.reply("554 5.5.1 no valid recipients\r\n"), "");
    ASSERT_EQ(c.results.size(), 1u);
    EXPECT_EQ(c.result(0).outcome, Outcome::failed);
    EXPECT_EQ(c.result(0).code, 550);
}

TEST(SmtpClient, BareLineEndsInTheMessageCannotEndDataEarly) {
    // SMTP smuggling: "\n.\n" or "\r\n.\r" must not become an end of data at the peer.
    Client c = greeted(ehlo_plain);
    c.enqueue(message("m1", {"bob@example.org"}, "a\n.\nMAIL FROM:<x@y>\r\n.\rb"));
    c.drain();
    c.reply("250 ok\r\n");
    c.reply("250 ok\r\n");
    EXPECT_EQ(c.reply("354 go\r\n"), "a\r\n..\r\nMAIL FROM:<x@y>\r\n..\r\nb\r\n.\r\n");
}

TEST(SmtpClient, NoBdatWhenEveryRecipientIsRefused) {
    Client c = greeted(ehlo_full);
    c.enqueue(message("m1", {"a@x.org", "b@x.org"}));
    c.drain();
    EXPECT_EQ(c.reply("250 ok\r\n550 5.1.1 no\r\n"), "");
    EXPECT_EQ(c.reply("550 5.1.1 no\r\n"), "");
    ASSERT_EQ(c.results.size(), 1u);
    EXPECT_EQ(c.written.find("BDAT"), std::string::npos);
}

TEST(SmtpClient, RefusedMailFromDecidesEveryRecipient) {
    Client c = greeted(ehlo_plain);
    c.enqueue(message("m1", {"a@example.org", "b@example.org"}));
    c.drain();
    EXPECT_EQ(c.reply("553 5.7.1 Sender rejected\r\n"), "");
    ASSERT_EQ(c.results.size(), 1u);
    for (const auto& r : c.results[0].recipients) {
        EXPECT_EQ(r.outcome, Outcome::failed);
        EXPECT_EQ(r.text, "Sender rejected");
    }
}

TEST(SmtpClient, NoDataWhenEveryRecipientIsRefused) {
    Client c = greeted(ehlo_plain);
    c.enqueue(message());
    c.drain();
    c.reply("250 ok\r\n");
    EXPECT_EQ(c.reply("550 5.1.1 unknown\r\n"), "");
    ASSERT_EQ(c.results.size(), 1u);
    EXPECT_EQ(c.result(0).outcome, Outcome::failed);
    EXPECT_EQ(c.written.find("DATA"), std::string::npos);
}

TEST(SmtpClient, DataRefusalAndFinalReplyDecideAcceptedRecipients) {
    Client c = greeted(ehlo_plain);
    c.enqueue(message());
    c.drain();
    c.reply("250 ok\r\n");
    c.reply("250 ok\r\n");
    EXPECT_EQ(c.reply("554 5.3.0 no data today\r\n"), "");
    EXPECT_EQ(c.result(0).outcome, Outcome::failed);
    EXPECT_EQ(c.result(0).code, 554);

    c.enqueue(message("m2"));
    EXPECT_EQ(c.drain(), "RSET\r\n");
    c.reply("250 ok\r\n");
    c.reply("250 ok\r\n");
    c.reply("250 ok\r\n");
    c.reply("354 go\r\n");
    c.reply("452 4.3.1 Insufficient system storage\r\n");
    EXPECT_EQ(c.result(1).outcome, Outcome::deferred);
    EXPECT_EQ(c.result(1).enhanced, "4.3.1");
}

// ---- several messages on one connection ----

TEST(SmtpClient, SendsQueuedMessagesOverOneConnectionWithRsetBetween) {
    ClientConfig config = default_config();
    config.use_chunking = false;
    Client c(config);
    c.enqueue(message("m1", {"b@example.org"}, "one\r\n"));
    c.enqueue(message("m2", {"c@example.org"}, "two\r\n"));
    c.session.quit();
    c.reply(greeting);
    EXPECT_EQ(c.reply(ehlo_full),
              "MAIL FROM:<alice@example.test> SIZE=5\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
    // RFC 2920 3.1: the next transaction follows the end of the content without waiting for its reply.
    EXPECT_EQ(c.reply("250 ok\r\n250 ok\r\n354 go\r\n"),
              "one\r\n.\r\nRSET\r\nMAIL FROM:<alice@example.test> SIZE=5\r\nRCPT TO:<c@example.org>\r\n"
              "DATA\r\n");
    EXPECT_EQ(c.reply("250 2.0.0 queued 1\r\n"), "");
    ASSERT_EQ(c.results.size(), 1u);
    EXPECT_EQ(c.reply("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"), "two\r\n.\r\n");
    EXPECT_EQ(c.reply("250 2.0.0 queued 2\r\n"), "QUIT\r\n");
    EXPECT_EQ(c.idles, 0);  // quit() was asked for: no Idle in between
    ASSERT_EQ(c.results.size(), 2u);
    EXPECT_EQ(c.results[1].id, "m2");
    EXPECT_EQ(c.result(1).text, "queued 2");
    c.reply("221 bye\r\n");
    EXPECT_EQ(c.disconnects, 1);
}

TEST(SmtpClient, WithoutPipeliningTheNextTransactionWaitsForTheEndOfDataReply) {
    Client c = greeted(ehlo_plain);
    c.enqueue(message("m1"));
    c.enqueue(message("m2"));
    c.drain();
    c.reply("250 ok\r\n");
    c.reply("250 ok\r\n");
    EXPECT_EQ(c.reply("354 go\r\n"), "Subject: hi\r\n\r\nhello\r\n.\r\n");
    EXPECT_EQ(c.reply("250 ok\r\n"), "RSET\r\n");
    ASSERT_EQ(c.results.size(), 1u);
}

TEST(SmtpClient, PipelinedTransactionsKeepTheirOwnRepliesAndTranscripts) {
    ClientConfig config = default_config();
    config.use_chunking = false;
    Client c = greeted(ehlo_full, config);
    c.enqueue(message("m1", {"a@example.org"}, "one\r\n"));
    c.enqueue(message("m2", {"b@example.org", "c@example.org"}, "two\r\n"));
    c.enqueue(message("m3", {"d@example.org"}, "three\r\n"));
    c.drain();
    c.reply("250 ok\r\n250 ok\r\n354 go\r\n");
    // m1's end of data is refused; m2's envelope, sent behind it, is answered on its own.
    EXPECT_EQ(c.session.awaiting(), ClientSession::Awaiting::data_end);
    EXPECT_EQ(c.reply("554 5.7.1 m1 refused\r\n250 reset\r\n250 ok\r\n550 5.1.1 no b\r\n250 ok\r\n"
                      "354 go\r\n"),
              "two\r\n.\r\nRSET\r\nMAIL FROM:<alice@example.test> SIZE=7\r\nRCPT TO:<d@example.org>\r\n"
              "DATA\r\n");
    ASSERT_EQ(c.results.size(), 1u);
    EXPECT_EQ(c.result(0).outcome, Outcome::failed);
    EXPECT_EQ(c.result(0).text, "m1 refused");
    EXPECT_TRUE(c.results[0].answered);
    c.reply("250 2.0.0 m2 queued\r\n");
    ASSERT_EQ(c.results.size(), 2u);
    EXPECT_EQ(c.results[1].id, "m2");
    EXPECT_EQ(c.result(1, 0).outcome, Outcome::failed);
    EXPECT_EQ(c.result(1, 0).code, 550);
    EXPECT_EQ(c.result(1, 1).outcome, Outcome::delivered);
    EXPECT_EQ(c.result(1, 1).text, "m2 queued");
    // Each transcript holds its own commands and replies, whatever else was on the wire in between.
    const std::string& first = c.results[0].transcript;
    EXPECT_NE(first.find("C: <message, 5 octets>\nS: 554 5.7.1 m1 refused\n"), std::string::npos);
    EXPECT_EQ(first.find("RSET"), std::string::npos);
    const std::string& second = c.results[1].transcript;
    EXPECT_NE(second.find("C: RSET\nC: MAIL FROM:<alice@example.test> SIZE=5\nC: RCPT TO:<b@example.org>\n"
                          "C: RCPT TO:<c@example.org>\nC: DATA\nS: 250 reset\n"),
              std::string::npos);
    EXPECT_NE(second.find("S: 250 2.0.0 m2 queued\n"), std::string::npos);
    EXPECT_EQ(second.find("m1 refused"), std::string::npos);
    EXPECT_EQ(second.find("d@example.org"), std::string::npos);
    c.reply("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    c.reply("250 2.0.0 m3 queued\r\n");
    ASSERT_EQ(c.results.size(), 3u);
    EXPECT_EQ(c.result(2).outcome, Outcome::delivered);
    EXPECT_EQ(c.idles, 2);  // after the greeting and after the last message: none while one ran
}

TEST(SmtpClient, ClosingReplyAfterTheDataDefersThePipelinedNextMessageAsNotTried) {
    ClientConfig config = default_config();
    config.use_chunking = false;
    Client c = greeted(ehlo_full, config);
    c.enqueue(message("m1"));
    c.enqueue(message("m2"));
    c.drain();
    c.reply("250 ok\r\n250 ok\r\n354 go\r\n");
    EXPECT_EQ(c.reply("421 4.3.2 shutting down\r\n"), "");
    EXPECT_EQ(c.disconnects, 1);
    ASSERT_EQ(c.results.size(), 2u);
    EXPECT_EQ(c.result(0).outcome, Outcome::deferred);
    EXPECT_TRUE(c.results[0].answered);
    EXPECT_EQ(c.result(1).outcome, Outcome::deferred);
    EXPECT_FALSE(c.results[1].answered);  // its MAIL got no reply: the caller may send it elsewhere now
}

TEST(SmtpClient, PipelinesTheNextTransactionBehindTheLastBdatChunk) {
    Client c = greeted(ehlo_full);
    c.enqueue(message("m1", {"a@example.org"}, "one\r\n"));
    c.enqueue(message("m2", {"b@example.org"}, "two\r\n"));
    c.drain();
    EXPECT_EQ(c.reply("250 ok\r\n250 ok\r\n"),
              "BDAT 5 LAST\r\none\r\nRSET\r\nMAIL FROM:<alice@example.test> SIZE=5\r\n"
              "RCPT TO:<b@example.org>\r\n");
    EXPECT_EQ(c.reply("250 2.0.0 one\r\n250 ok\r\n250 ok\r\n250 ok\r\n"), "BDAT 5 LAST\r\ntwo\r\n");
    c.reply("250 2.0.0 two\r\n");
    ASSERT_EQ(c.results.size(), 2u);
    EXPECT_EQ(c.result(0).text, "one");
    EXPECT_EQ(c.result(1).text, "two");
}

TEST(SmtpClient, RefusedRsetDefersTheRestAndQuits) {
    Client c = greeted(ehlo_plain);
    c.enqueue(message("m1"));
    c.drain();
    c.reply("250 ok\r\n");
    c.reply("250 ok\r\n");
    c.reply("354 go\r\n");
    c.reply("250 ok\r\n");
    c.enqueue(message("m2"));
    EXPECT_EQ(c.drain(), "RSET\r\n");
    EXPECT_EQ(c.reply("500 5.5.1 what\r\n"), "QUIT\r\n");
    ASSERT_EQ(c.results.size(), 2u);
    EXPECT_EQ(c.result(1).outcome, Outcome::deferred);
    EXPECT_EQ(c.result(1).enhanced, "4.5.1");
    EXPECT_NE(c.result(1).text.find("refused RSET"), std::string::npos);
}

TEST(SmtpClient, SplitsRecipientsOverTransactionsAndGivesOneResult) {
    ClientConfig config = default_config();
    config.limits.max_recipients_per_transaction = 2;
    Client c = greeted(ehlo_plain, config);
    c.enqueue(message("m1", {"a@x.org", "b@x.org", "c@x.org"}));
    c.drain();
    for (int i = 0; i < 3; ++i) c.reply("250 ok\r\n");
    c.reply("354 go\r\n");
    EXPECT_EQ(c.reply("250 ok 1\r\n"), "RSET\r\n");
    EXPECT_TRUE(c.results.empty());
    c.reply("250 ok\r\n");
    EXPECT_EQ(c.reply("250 ok\r\n"), "RCPT TO:<c@x.org>\r\n");
    c.reply("250 ok\r\n");
    c.reply("354 go\r\n");
    c.reply("250 ok 2\r\n");
    ASSERT_EQ(c.results.size(), 1u);
    ASSERT_EQ(c.results[0].recipients.size(), 3u);
    EXPECT_EQ(c.result(0, 1).text, "ok 1");
    EXPECT_EQ(c.result(0, 2).address, "c@x.org");
    EXPECT_EQ(c.result(0, 2).text, "ok 2");
}

TEST(SmtpClient, TooManyRecipientsGoInTheNextTransaction) {
    Client c = greeted(ehlo_plain);
    c.enqueue(message("m1", {"a@x.org", "b@x.org"}));
    c.drain();
    c.reply("250 ok\r\n");
    c.reply("250 ok\r\n");
    // RFC 5321 4.5.3.1.10: 452 for too many recipients; the client sends the rest later.
    EXPECT_EQ(c.reply("452 4.5.3 Too many recipients\r\n"), "DATA\r\n");
    c.reply("354 go\r\n");
    EXPECT_EQ(c.reply("250 ok\r\n"), "RSET\r\n");
    c.reply("250 ok\r\n");
    EXPECT_EQ(c.reply("250 ok\r\n"), "RCPT TO:<b@x.org>\r\n");
    c.reply("250 ok\r\n");
    c.reply("354 go\r\n");
    c.reply("250 second\r\n");
    ASSERT_EQ(c.results.size(), 1u);
    EXPECT_EQ(c.result(0, 1).outcome, Outcome::delivered);
    EXPECT_EQ(c.result(0, 1).text, "second");
}

// ---- MAIL and RCPT parameters ----

TEST(SmtpClient, PassesDsnParametersOnlyToPeersOfferingDsn) {
    OutgoingMessage m = message();
    m.dsn_ret = "HDRS";
    m.dsn_envid = "QQ123";
    m.recipients[0].notify = "SUCCESS,FAILURE";
    m.recipients[0].orcpt = "rfc822;bob@example.org";
    {
        Client c = greeted(ehlo_full);
        c.enqueue(m);
        EXPECT_EQ(c.drain(),
                  "MAIL FROM:<alice@example.test> SIZE=22 RET=HDRS ENVID=QQ123\r\n"
                  "RCPT TO:<bob@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.org\r\n");
        EXPECT_EQ(c.reply("250 ok\r\n250 ok\r\n"), "BDAT 22 LAST\r\nSubject: hi\r\n\r\nhello\r\n");
        c.reply("250 ok\r\n");
        EXPECT_TRUE(c.result(0).dsn_passed_on);
    }
    Client c = greeted(ehlo_plain);
    c.enqueue(m);
    EXPECT_EQ(c.drain(), "MAIL FROM:<alice@example.test>\r\n");
    EXPECT_EQ(c.reply("250 ok\r\n"), "RCPT TO:<bob@example.org>\r\n");
}

TEST(SmtpClient, DeclaresEightBitBodyToEightBitPeer) {
    ClientConfig config = default_config();
    config.use_chunking = false;
    Client c = greeted(ehlo_full, config);
    c.enqueue(message("m1", {"bob@example.org"}, "Subject: hi\r\n\r\ncaf\xc3\xa9\r\n"));
    EXPECT_EQ(c.drain().substr(0, 50), "MAIL FROM:<alice@example.test> SIZE=22 BODY=8BITMI");
    EXPECT_EQ(c.reply("250 ok\r\n250 ok\r\n354 go\r\n"), "Subject: hi\r\n\r\ncaf\xc3\xa9\r\n.\r\n");
}

TEST(SmtpClient, DowngradesEightBitBodyForPeerWithoutEightBitMime) {
    Client c = greeted(ehlo_plain);
    c.enqueue(message("m1", {"bob@example.org"},
                      "Subject: hi\r\nContent-Type: text/plain; charset=utf-8\r\n"
                      "Content-Transfer-Encoding: 8bit\r\n\r\ncaf\xc3\xa9\r\n"));
    EXPECT_EQ(c.drain(), "MAIL FROM:<alice@example.test>\r\n");
    c.reply("250 ok\r\n");
    c.reply("250 ok\r\n");
    std::string content = c.reply("354 go\r\n");
    EXPECT_NE(content.find("Content-Transfer-Encoding: quoted-printable"), std::string::npos) << content;
    EXPECT_NE(content.find("caf=C3=A9"), std::string::npos) << content;
    for (char ch : content) EXPECT_LT(static_cast<unsigned char>(ch), 0x80);
}

TEST(SmtpClient, ReencodesLinesTooLongForSmtpEvenForEightBitPeers) {
    ClientConfig config = default_config();
    config.use_chunking = false;
    Client c = greeted(ehlo_full, config);
    std::string long_line(1500, 'a');
    c.enqueue(message("m1", {"bob@example.org"},
                      "Subject: long\r\nContent-Type: text/plain\r\n\r\n" + long_line + "\r\n"));
    c.drain();
    std::string content = c.reply("250 ok\r\n250 ok\r\n354 go\r\n");
    EXPECT_NE(content.find("Content-Transfer-Encoding: quoted-printable"), std::string::npos) << content;
    std::size_t start = 0;
    for (std::size_t end; (end = content.find("\r\n", start)) != std::string::npos; start = end + 2)
        EXPECT_LE(end - start, 998u);
    EXPECT_EQ(c.written.find("BODY=8BITMIME"), std::string::npos);
}

TEST(SmtpClient, SendsSmtpUtf8ForUtf8AddressesWhenOffered) {
    Client c = greeted(ehlo_full);
    c.enqueue(message("m1", {"j\xc3\xb6rg@example.org"}));
    EXPECT_EQ(c.drain(),
              "MAIL FROM:<alice@example.test> SIZE=22 SMTPUTF8\r\nRCPT TO:<j\xc3\xb6rg@example.org>\r\n");
}

TEST(SmtpClient, FailsMessageNeedingSmtpUtf8WhenPeerLacksIt) {
    Client c = greeted(ehlo_plain);
    c.enqueue(
        message("m1", {"bob@example.org", "carol@example.org"}, "Subject: caf\xc3\xa9\r\n\r\nhello\r\n"));
    EXPECT_EQ(c.drain(), "");  // nothing is sent for it
    ASSERT_EQ(c.results.size(), 1u);
    for (const auto& r : c.results[0].recipients) {
        EXPECT_EQ(r.outcome, Outcome::failed);
        EXPECT_EQ(r.enhanced, "5.6.7");
        EXPECT_EQ(
            r.text,
            "the message needs SMTPUTF8 (header fields are UTF-8) and mx.example.org[192.0.2.1] does not "
            "offer it");
    }
    EXPECT_EQ(c.idles, 2);
}

TEST(SmtpClient, FailsOnlyTheUtf8RecipientWhenSenderAndHeadersAreAscii) {
    Client c = greeted(ehlo_plain);
    c.enqueue(message("m1", {"j\xc3\xb6rg@example.org", "bob@example.org"}));
    EXPECT_EQ(c.drain(), "MAIL FROM:<alice@example.test>\r\n");
    EXPECT_EQ(c.reply("250 ok\r\n"), "RCPT TO:<bob@example.org>\r\n");
    c.reply("250 ok\r\n");
    c.reply("354 go\r\n");
    c.reply("250 ok\r\n");
    EXPECT_EQ(c.result(0, 0).outcome, Outcome::failed);
    EXPECT_EQ(c.result(0, 0).enhanced, "5.6.7");
    EXPECT_EQ(c.result(0, 1).outcome, Outcome::delivered);
}

TEST(SmtpClient, MessageOverThePeersSizeLimitFailsWithoutSending) {
    Client c = greeted(ehlo_full);
    c.enqueue(message("m1", {"bob@example.org"}, "Subject: big\r\n\r\n" + std::string(20000, 'x') + "\r\n"));
    EXPECT_EQ(c.drain(), "");
    EXPECT_EQ(c.result(0).outcome, Outcome::failed);
    EXPECT_EQ(c.result(0).enhanced, "5.3.4");
    EXPECT_NE(c.result(0).text.find("exceeds the size limit"), std::string::npos);
}

TEST(SmtpClient, AddressThatCouldInjectACommandIsRefusedLocally) {
    Client c = greeted(ehlo_plain);
    c.enqueue(message("m1", {"bob@example.org>\r\nRSET"}));
    EXPECT_EQ(c.drain(), "");
    EXPECT_EQ(c.result(0).outcome, Outcome::failed);
    EXPECT_EQ(c.result(0).enhanced, "5.1.3");
}

// ---- BDAT ----

TEST(SmtpClient, UsesBdatWhenChunkingIsOfferedAfterRecipientsAnswer) {
    ClientConfig config = default_config();
    config.limits.bdat_chunk_size = 10;
    Client c = greeted("250-mx\r\n250-CHUNKING\r\n250 8BITMIME\r\n", config);
    c.enqueue(message("m1", {"bob@example.org"}, "Subject: hi\r\n\r\n.hello\r\n"));
    c.drain();
    c.reply("250 ok\r\n");
    // Not pipelined: one chunk per reply, sent as is (no dot-stuffing).
    EXPECT_EQ(c.reply("250 ok\r\n"), "BDAT 10\r\nSubject: h");
    EXPECT_EQ(c.reply("250 2.0.0 10 octets\r\n"), "BDAT 10\r\ni\r\n\r\n.hell");
    EXPECT_EQ(c.reply("250 2.0.0 20 octets\r\n"), "BDAT 3 LAST\r\no\r\n");
    c.reply("250 2.0.0 Ok queued\r\n");
    EXPECT_EQ(c.result(0).outcome, Outcome::delivered);
    EXPECT_EQ(c.result(0).text, "Ok queued");
}

TEST(SmtpClient, PipelinesBdatChunksAndStopsAtFirstFailure) {
    ClientConfig config = default_config();
    config.limits.bdat_chunk_size = 8;
    Client c = greeted(ehlo_full, config);
    c.enqueue(message("m1", {"bob@example.org"}, "0123456789abcdef\r\n"));
    c.drain();
    EXPECT_EQ(c.reply("250 ok\r\n250 ok\r\n"), "BDAT 8\r\n01234567BDAT 8\r\n89abcdefBDAT 2 LAST\r\n\r\n");
    c.reply("250 ok\r\n452 4.3.1 disk full\r\n503 5.5.1 failed earlier\r\n");
    ASSERT_EQ(c.results.size(), 1u);
    EXPECT_EQ(c.result(0).outcome, Outcome::deferred);
    EXPECT_EQ(c.result(0).code, 452);
}

TEST(SmtpClient, BdatNormalisesBareLineEnds) {
    Client c = greeted("250-mx\r\n250 CHUNKING\r\n");
    c.enqueue(message("m1", {"bob@example.org"}, "a\nb\rc"));
    c.drain();
    c.reply("250 ok\r\n");
    EXPECT_EQ(c.reply("250 ok\r\n"), "BDAT 9 LAST\r\na\r\nb\r\nc\r\n");
}

TEST(SmtpClient, LargeMessageIsHandedOutInBoundedPieces) {
    ClientConfig config = default_config();
    config.limits.max_output_chunk = 1000;
    Client c = greeted(ehlo_plain, config);
    std::string body;
    for (int i = 0; i < 100; ++i) body += ".line " + std::to_string(i) + std::string(40, 'z') + "\r\n";
    c.enqueue(message("m1", {"bob@example.org"}, body));
    c.drain();
    c.reply("250 ok\r\n");
    c.reply("250 ok\r\n");
    c.session.feed("354 go\r\n");
    std::string all;
    int pieces = 0;
    while (c.session.has_output()) {
        std::string piece = c.session.take_output();
        EXPECT_LE(piece.size(), 1000u + 1000u / 40 + 5);
        all += piece;
        ++pieces;
    }
    EXPECT_GE(pieces, 5);
    EXPECT_TRUE(all.ends_with("\r\n.\r\n"));
    EXPECT_NE(all.find("\r\n..line 1"), std::string::npos);
}

// ---- STARTTLS and AUTH ----

TEST(SmtpClient, StartsTlsWhenOfferedThenSaysEhloAgain) {
    Client c;
    c.enqueue(message());
    c.reply(greeting);
    EXPECT_EQ(c.reply("250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n"), "STARTTLS\r\n");
    EXPECT_EQ(c.reply("220 2.0.0 Ready to start TLS\r\n"), "");
    EXPECT_EQ(c.handshakes, 1);
    EXPECT_EQ(c.session.awaiting(), ClientSession::Awaiting::tls_handshake);
    c.session.tls_started();
    EXPECT_EQ(c.drain(), "EHLO client.example\r\n");
    EXPECT_TRUE(c.session.tls_active());
    EXPECT_FALSE(c.session.extensions().pipelining);  // forgotten (RFC 3207 4.2)
    EXPECT_EQ(c.reply("250-mx\r\n250 SIZE 1000\r\n"), "MAIL FROM:<alice@example.test> SIZE=22\r\n");
}

TEST(SmtpClient, RepliesInjectedBeforeTheHandshakeEndTheSession) {
    Client c;
    c.enqueue(message());
    c.reply(greeting);
    c.reply("250-mx\r\n250 STARTTLS\r\n");
    EXPECT_EQ(c.reply("220 go ahead\r\n250-mx\r\n250 AUTH PLAIN\r\n"), "");
    EXPECT_EQ(c.disconnects, 1);
    EXPECT_TRUE(c.session.closed());
    ASSERT_EQ(c.results.size(), 1u);
    EXPECT_EQ(c.result(0).outcome, Outcome::deferred);
    EXPECT_EQ(c.result(0).text, "mx.example.org[192.0.2.1] sent data after its STARTTLS reply");
}

TEST(SmtpClient, RequiredTlsWithoutStartTlsDefersEverything) {
    ClientConfig config = default_config();
    config.tls = TlsMode::required;
    Client c(config);
    c.enqueue(message());
    c.reply(greeting);
    EXPECT_EQ(c.reply(ehlo_full), "QUIT\r\n");
    ASSERT_EQ(c.results.size(), 1u);
    EXPECT_EQ(c.result(0).outcome, Outcome::deferred);
    EXPECT_EQ(c.result(0).enhanced, "4.7.4");
    EXPECT_EQ(c.result(0).text, "mx.example.org[192.0.2.1] does not offer STARTTLS and TLS is required");
}

TEST(SmtpClient, RefusedStartTlsGoesOnInPlaintextUnlessRequired) {
    Client c;
    c.enqueue(message());
    c.reply(greeting);
    c.reply("250-mx\r\n250 STARTTLS\r\n");
    EXPECT_EQ(c.reply("454 4.7.0 TLS not available\r\n"), "MAIL FROM:<alice@example.test>\r\n");

    ClientConfig config = default_config();
    config.tls = TlsMode::required;
    Client strict(config);
    strict.enqueue(message());
    strict.reply(greeting);
    strict.reply("250-mx\r\n250 STARTTLS\r\n");
    EXPECT_EQ(strict.reply("454 4.7.0 TLS not available\r\n"), "QUIT\r\n");
    EXPECT_EQ(strict.result(0).outcome, Outcome::deferred);
    EXPECT_EQ(strict.result(0).code, 454);
}

TEST(SmtpClient, DisabledTlsIgnoresStartTls) {
    ClientConfig config = default_config();
    config.tls = TlsMode::disabled;
    Client c(config);
    c.enqueue(message());
    c.reply(greeting);
    EXPECT_EQ(c.reply("250-mx\r\n250 STARTTLS\r\n"), "MAIL FROM:<alice@example.test>\r\n");
}

ClientConfig smart_host_config() {
    ClientConfig config = default_config();
    config.tls_active = true;  // port 465
    config.auth = ClientCredentials{"alice", "secret"};
    return config;
}

TEST(SmtpClient, LogsInWithPlainAndKeepsTheSecretOutOfTheTranscript) {
    Client c(smart_host_config());
    c.enqueue(message());
    c.reply(greeting);
    // base64("\0alice\0secret")
    EXPECT_EQ(c.reply("250-relay\r\n250 AUTH LOGIN PLAIN\r\n"), "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
    EXPECT_EQ(c.reply("235 2.7.0 Authentication successful\r\n"), "MAIL FROM:<alice@example.test>\r\n");
    c.reply("250 ok\r\n");
    c.reply("250 ok\r\n");
    c.reply("354 go\r\n");
    c.reply("250 ok\r\n");
    const std::string& transcript = c.results.at(0).transcript;
    EXPECT_NE(transcript.find("C: AUTH PLAIN <secret>\n"), std::string::npos);
    EXPECT_EQ(transcript.find("AGFsaWNl"), std::string::npos);
}

TEST(SmtpClient, LogsInWithLoginWhenPlainIsNotOffered) {
    Client c(smart_host_config());
    c.enqueue(message());
    c.reply(greeting);
    EXPECT_EQ(c.reply("250-relay\r\n250 AUTH LOGIN\r\n"), "AUTH LOGIN\r\n");
    EXPECT_EQ(c.reply("334 VXNlcm5hbWU6\r\n"), "YWxpY2U=\r\n");
    EXPECT_EQ(c.reply("334 UGFzc3dvcmQ6\r\n"), "c2VjcmV0\r\n");
    EXPECT_EQ(c.reply("235 2.7.0 ok\r\n"), "MAIL FROM:<alice@example.test>\r\n");
}

TEST(SmtpClient, NeverLogsInWithoutTls) {
    ClientConfig config = smart_host_config();
    config.tls_active = false;
    Client c(config);
    c.enqueue(message());
    c.reply(greeting);
    EXPECT_EQ(c.reply("250-relay\r\n250 AUTH PLAIN\r\n"), "QUIT\r\n");
    EXPECT_EQ(c.result(0).outcome, Outcome::deferred);
    EXPECT_EQ(c.result(0).enhanced, "4.7.11");
    EXPECT_EQ(c.written.find("AUTH"), std::string::npos);
}

TEST(SmtpClient, RefusedLoginDefersWithTheReply) {
    Client c(smart_host_config());
    c.enqueue(message());
    c.reply(greeting);
    c.reply("250-relay\r\n250 AUTH PLAIN\r\n");
    EXPECT_EQ(c.reply("535 5.7.8 Authentication credentials invalid\r\n"), "QUIT\r\n");
    EXPECT_EQ(c.result(0).outcome, Outcome::deferred);
    EXPECT_EQ(c.result(0).code, 535);
    EXPECT_EQ(c.result(0).enhanced, "4.7.8");
    EXPECT_NE(c.result(0).text.find("refused the login: 535 5.7.8"), std::string::npos);
}

// ---- connection-level failures ----

TEST(SmtpClient, RefusingGreetingDefersAndQuits) {
    Client c;
    c.enqueue(message());
    EXPECT_EQ(c.reply("554 5.7.1 go away\r\n"), "QUIT\r\n");
    EXPECT_EQ(c.result(0).outcome, Outcome::deferred);
    EXPECT_EQ(c.result(0).code, 554);
    EXPECT_EQ(c.result(0).enhanced, "4.7.1");
    c.reply("221 bye\r\n");
    EXPECT_EQ(c.disconnects, 1);
}

TEST(SmtpClient, ReplyOf421EndsTheSessionAndDefersTheRest) {
    Client c = greeted(ehlo_plain);
    c.enqueue(message("m1", {"a@x.org", "b@x.org"}));
    c.enqueue(message("m2"));
    c.drain();
    c.reply("250 ok\r\n");
    c.reply("550 5.1.1 no a\r\n");
    EXPECT_EQ(c.reply("421 4.3.2 shutting down\r\n"), "");
    EXPECT_EQ(c.disconnects, 1);
    ASSERT_EQ(c.results.size(), 2u);
    EXPECT_EQ(c.result(0, 0).outcome, Outcome::failed);  // its 550 stays final
    EXPECT_EQ(c.result(0, 1).outcome, Outcome::deferred);
    EXPECT_EQ(c.result(0, 1).code, 421);
    EXPECT_EQ(c.result(1).outcome, Outcome::deferred);
}

TEST(SmtpClient, LostConnectionDefersAcceptedRecipients) {
    Client c = greeted(ehlo_plain);
    c.enqueue(message());
    c.drain();
    c.reply("250 ok\r\n");
    c.reply("250 ok\r\n");
    c.reply("354 go\r\n");
    c.session.connection_failed("connection reset by peer");
    c.drain();
    EXPECT_EQ(c.result(0).outcome, Outcome::deferred);
    EXPECT_EQ(c.result(0).enhanced, "4.4.2");
    EXPECT_EQ(c.result(0).text, "connection to mx.example.org[192.0.2.1] failed: connection reset by peer");
    EXPECT_TRUE(c.session.closed());
    c.enqueue(message("late"));
    c.drain();
    EXPECT_EQ(c.results.at(1).id, "late");
    EXPECT_EQ(c.result(1).outcome, Outcome::deferred);
}

TEST(SmtpClient, BadRepliesDeferWithAClearReason) {
    struct Case {
        std::string bytes;
        std::string reason;
    };
    std::vector<Case> cases = {
        {"250-mx\r\n251 x\r\n", "inconsistent codes in a multi-line reply (250 then 251)"},
        {"hello\r\n", "malformed reply line \"hello\""},
        {"250-" + std::string(5000, 'a'), "reply line longer than 2048 octets"},
        {std::string(), "reply longer than 100 lines"},
    };
    for (int i = 0; i < 200; ++i) cases.back().bytes += "250-x\r\n";
    for (const auto& [bytes, reason] : cases) {
        Client c;
        c.enqueue(message());
        c.reply(greeting);
        EXPECT_EQ(c.reply(bytes), "");
        ASSERT_EQ(c.results.size(), 1u);
        EXPECT_EQ(c.result(0).outcome, Outcome::deferred);
        EXPECT_EQ(c.result(0).text, "mx.example.org[192.0.2.1] sent a bad reply: " + reason);
        EXPECT_EQ(c.disconnects, 1);
    }
}

TEST(SmtpClient, TenMegabyteReplyIsRefusedEarlyWithBoundedMemory) {
    Client c;
    c.enqueue(message());
    c.reply(greeting);
    std::string chunk(64 * 1024, 'A');
    c.session.feed("250 ");
    for (int i = 0; i < 160 && !c.session.closed(); ++i) c.session.feed(chunk);
    c.drain();
    EXPECT_TRUE(c.session.closed());
    EXPECT_EQ(c.result(0).text,
              "mx.example.org[192.0.2.1] sent a bad reply: reply line longer than 2048 octets");
}

TEST(SmtpClient, UnexpectedReplyWhileIdleEndsTheSession) {
    Client c = greeted(ehlo_plain);
    EXPECT_EQ(c.reply("250 surprise\r\n"), "");
    EXPECT_EQ(c.disconnects, 1);
}

TEST(SmtpClient, TranscriptShowsTheConversationWithoutMessageText) {
    Client c = greeted(ehlo_plain);
    c.enqueue(message("m1", {"bob@example.org"}, "Subject: secret plans\r\n\r\nattack at dawn\r\n"));
    c.drain();
    c.reply("250 2.1.0 Ok\r\n");
    c.reply("250 2.1.5 Ok\r\n");
    c.reply("354 go\r\n");
    c.reply("250 2.0.0 Ok: queued\r\n");
    EXPECT_EQ(c.results.at(0).transcript,
              "S: 220 mx.example.org ESMTP\n"
              "C: EHLO client.example\n"
              "S: 250-mx.example.org\n"
              "S: 250 ENHANCEDSTATUSCODES\n"
              "C: MAIL FROM:<alice@example.test>\n"
              "S: 250 2.1.0 Ok\n"
              "C: RCPT TO:<bob@example.org>\n"
              "S: 250 2.1.5 Ok\n"
              "C: DATA\n"
              "S: 354 go\n"
              "C: <message, 41 octets>\n"
              "S: 250 2.0.0 Ok: queued\n");
}

TEST(SmtpClient, TranscriptIsBounded) {
    ClientConfig config = default_config();
    config.limits.max_transcript = 300;
    Client c = greeted(ehlo_plain, config);
    std::vector<std::string> many;
    for (int i = 0; i < 50; ++i) many.push_back("user" + std::to_string(i) + "@example.org");
    c.enqueue(message("m1", many));
    c.drain();
    c.reply("250 ok\r\n");
    for (int i = 0; i < 50; ++i) c.reply("250 ok\r\n");
    c.reply("354 go\r\n");
    c.reply("250 ok\r\n");
    const std::string& transcript = c.results.at(0).transcript;
    EXPECT_LE(transcript.size(), 2 * 300u + 30);
    EXPECT_TRUE(transcript.ends_with("(transcript truncated)\n"));
}

// ---- against the server session, in memory ----

// Pumps bytes both ways between a ClientSession and a ServerSession until neither has anything to say.
struct Loop {
    Loop(ClientConfig client_config, ServerConfig server_config)
        : client(std::move(client_config)), server(std::move(server_config), "192.0.2.9") {}

    void run() {
        for (int rounds = 0; rounds < 100000; ++rounds) {
            bool moved = false;
            std::string to_server;
            while (client.has_output()) to_server += client.take_output();
            while (auto event = client.poll_event()) {
                moved = true;
                if (auto* result = std::get_if<MessageResult>(&*event)) {
                    results.push_back(std::move(*result));
                } else if (std::holds_alternative<TlsHandshake>(*event)) {
                    tls_pending = true;
                } else if (std::holds_alternative<Idle>(*event)) {
                    client.quit();
                } else {
                    client_closed = true;
                }
            }
            if (!to_server.empty()) {
                moved = true;
                wire += to_server;
                server.feed(to_server);
            }
            std::string to_client = server.take_output();
            while (auto event = server.poll_event()) {
                moved = true;
                if (auto* check = std::get_if<RcptCheck>(&*event)) {
                    server.rcpt_checked(check->address.starts_with("nobody@") ? RcptVerdict::unknown_user
                                                                              : RcptVerdict::accept);
                } else if (auto* received = std::get_if<MessageReceived>(&*event)) {
                    messages.push_back(*received);
                    server.stored("Q" + std::to_string(messages.size()));
                } else if (std::holds_alternative<StartTls>(*event)) {
                    // Both ends "handshake" once each side wrote what it had.
                    to_client += server.take_output();
                    client.feed(to_client);
                    to_client.clear();
                    server.tls_started();
                    client.tls_started();
                    tls_pending = false;
                } else {
                    server_closed = true;
                }
                to_client += server.take_output();
            }
            if (!to_client.empty()) {
                moved = true;
                client.feed(to_client);
            }
            if (!moved) return;
        }
        FAIL() << "the conversation did not end";
    }

    ClientSession client;
    ServerSession server;
    std::vector<MessageResult> results;
    std::vector<MessageReceived> messages;
    std::string wire;  // every byte the client sent
    bool tls_pending = false;
    bool client_closed = false;
    bool server_closed = false;
};

ServerConfig server_config() {
    ServerConfig config;
    config.hostname = "mx.example.org";
    return config;
}

struct Mode {
    bool pipelining;
    bool chunking;
};

class AgainstServer : public ::testing::TestWithParam<Mode> {};

TEST_P(AgainstServer, DeliversSeveralMessagesOverOneConnection) {
    ClientConfig config = default_config();
    config.use_pipelining = GetParam().pipelining;
    config.use_chunking = GetParam().chunking;
    config.limits.bdat_chunk_size = 5000;
    config.limits.max_output_chunk = 4096;
    Loop loop(config, server_config());
    std::string big = "Subject: big\r\n\r\n";
    for (int i = 0; i < 2000; ++i)
        big += (i % 7 == 0 ? "." : "") + std::string("line ") + std::to_string(i) + "\r\n";
    loop.client.enqueue(message("m1", {"bob@example.org", "nobody@example.org", "carol@example.org"}));
    loop.client.enqueue(message("m2", {"dave@example.org"}, big));
    loop.client.enqueue(message("m3", {"nobody@example.org"}));
    loop.run();

    EXPECT_TRUE(loop.client_closed);
    EXPECT_TRUE(loop.server_closed);
    ASSERT_EQ(loop.results.size(), 3u);
    EXPECT_EQ(loop.results[0].recipients[0].outcome, Outcome::delivered);
    EXPECT_EQ(loop.results[0].recipients[0].text, "OK Q1");
    EXPECT_EQ(loop.results[0].recipients[1].outcome, Outcome::failed);
    EXPECT_EQ(loop.results[0].recipients[1].enhanced, "5.1.1");
    EXPECT_EQ(loop.results[0].recipients[2].outcome, Outcome::delivered);
    EXPECT_EQ(loop.results[1].recipients[0].outcome, Outcome::delivered);
    EXPECT_EQ(loop.results[1].recipients[0].text, "OK Q2");
    EXPECT_EQ(loop.results[2].recipients[0].outcome, Outcome::failed);

    ASSERT_EQ(loop.messages.size(), 2u);
    EXPECT_EQ(loop.messages[0].data, "Subject: hi\r\n\r\nhello\r\n");
    ASSERT_EQ(loop.messages[0].envelope.recipients.size(), 2u);
    EXPECT_EQ(loop.messages[0].envelope.recipients[1].address, "carol@example.org");
    EXPECT_EQ(loop.messages[1].data, big);
    EXPECT_EQ(loop.messages[1].envelope.reverse_path, "alice@example.test");
    EXPECT_EQ(loop.wire.find("BDAT") != std::string::npos, GetParam().chunking);
    EXPECT_EQ(loop.wire.find("\r\nDATA\r\n") != std::string::npos, !GetParam().chunking);
    EXPECT_NE(loop.wire.find("\r\nRSET\r\n"), std::string::npos);
    EXPECT_TRUE(loop.wire.ends_with("QUIT\r\n"));
}

INSTANTIATE_TEST_SUITE_P(Modes, AgainstServer,
                         ::testing::Values(Mode{true, false}, Mode{false, false}, Mode{true, true},
                                           Mode{false, true}),
                         [](const auto& info) {
                             return std::string(info.param.pipelining ? "Pipelined" : "Lockstep") +
                                    (info.param.chunking ? "Bdat" : "Data");
                         });

TEST(SmtpClientAgainstServer, StartsTlsThenDeliversEightBitMail) {
    ServerConfig server = server_config();
    server.starttls_offered = true;
    Loop loop(default_config(), server);
    loop.client.enqueue(message("m1", {"bob@example.org"}, "Subject: x\r\n\r\ncaf\xc3\xa9\r\n"));
    loop.run();
    ASSERT_EQ(loop.messages.size(), 1u);
    EXPECT_TRUE(loop.messages[0].envelope.tls);
    EXPECT_TRUE(loop.messages[0].envelope.body_8bit);
    EXPECT_FALSE(loop.messages[0].envelope.undeclared_8bit);
    EXPECT_TRUE(loop.client.tls_active());
    EXPECT_EQ(loop.results.at(0).recipients.at(0).outcome, Outcome::delivered);
}

TEST(SmtpClientAgainstServer, RecipientsOverTheServersLimitGoInFurtherTransactions) {
    ServerConfig server = server_config();
    server.limits.max_recipients = 2;  // the server answers 452 4.5.3 to the third
    Loop loop(default_config(), server);
    loop.client.enqueue(message("m1", {"a@x.org", "b@x.org", "c@x.org", "d@x.org", "e@x.org"}));
    loop.run();
    ASSERT_EQ(loop.results.size(), 1u);
    ASSERT_EQ(loop.results[0].recipients.size(), 5u);
    for (const auto& r : loop.results[0].recipients) EXPECT_EQ(r.outcome, Outcome::delivered) << r.address;
    ASSERT_EQ(loop.messages.size(), 3u);
    EXPECT_EQ(loop.messages[2].envelope.recipients.at(0).address, "e@x.org");
    EXPECT_EQ(loop.results[0].recipients[4].text, "OK Q3");
}

TEST(SmtpClientAgainstServer, MessageOverTheServersLimitFailsBeforeSending) {
    ServerConfig server = server_config();
    server.limits.max_message_size = 100;
    Loop loop(default_config(), server);
    loop.client.enqueue(
        message("m1", {"bob@example.org"}, "Subject: x\r\n\r\n" + std::string(200, 'x') + "\r\n"));
    loop.run();
    EXPECT_TRUE(loop.messages.empty());
    EXPECT_EQ(loop.results.at(0).recipients.at(0).outcome, Outcome::failed);
    EXPECT_EQ(loop.wire.find("MAIL"), std::string::npos);
}

}  // namespace
}  // namespace magpie::smtp
