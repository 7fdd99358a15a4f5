// smtp::ServerSession in submission mode (RFC 6409 with AUTH, RFC 4954): when AUTH is offered, the events it
// raises, the replies to each answer, and the sender rules for MAIL FROM and the From:/Sender: fields.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "smtp/server_session.h"

namespace magpie::smtp {
namespace {

ServerConfig submission_config(bool tls) {
    ServerConfig config;
    config.hostname = "smtp.crepes.test";
    config.submission = true;
    config.starttls_offered = !tls;
    config.tls_active = tls;
    return config;
}

// Plays the IO layer: AUTH events are answered from `answers` in order (recorded in `auth_events`), RCPT
// checks accept, messages are stored as "Q1".
struct Driver {
    explicit Driver(ServerConfig config) : session(std::move(config), "127.0.0.1") { session.take_output(); }

    std::string send(std::string_view bytes) {
        std::string out;
        session.feed(bytes);
        for (;;) {
            out += session.take_output();
            auto event = session.poll_event();
            if (!event) break;
            if (auto* begin = std::get_if<AuthBegin>(&*event)) {
                auth_events.push_back("begin " + begin->mechanism + " " +
                                      begin->initial_response.value_or("-"));
                session.auth_answered(next_answer());
            } else if (auto* response = std::get_if<AuthResponse>(&*event)) {
                auth_events.push_back("response " + response->line);
                session.auth_answered(next_answer());
            } else if (std::holds_alternative<RcptCheck>(*event)) {
                session.rcpt_checked(RcptVerdict::accept);
            } else if (auto* message = std::get_if<MessageReceived>(&*event)) {
                stored.push_back(*message);
                session.stored(std::string("Q1"));
            } else if (std::holds_alternative<StartTls>(*event)) {
                session.tls_started();
            }
        }
        return out;
    }

    AuthAnswer next_answer() {
        if (answers.empty()) return AuthAnswer{AuthAnswer::Kind::failed, {}, {}, {}};
        AuthAnswer answer = answers.front();
        answers.erase(answers.begin());
        return answer;
    }

    // EHLO, then AUTH PLAIN answered with success for alice (and her alias).
    void log_in() {
        send("EHLO client.test\r\n");
        answers.push_back(AuthAnswer{
            AuthAnswer::Kind::success, {}, "alice@crepes.test", {"alice@crepes.test", "chef@crepes.test"}});
        EXPECT_EQ(send("AUTH PLAIN AGFsaWNlQGNyZXBlcy50ZXN0AHNlY3JldA==\r\n"),
                  "235 2.7.0 Authentication successful\r\n");
    }

    ServerSession session;
    std::vector<AuthAnswer> answers;
    std::vector<std::string> auth_events;
    std::vector<MessageReceived> stored;
};

TEST(SmtpSubmission, AuthIsAdvertisedOnlyAfterTls) {
    Driver plain(submission_config(false));
    std::string ehlo = plain.send("EHLO client.test\r\n");
    EXPECT_NE(ehlo.find("STARTTLS"), std::string::npos);
    EXPECT_EQ(ehlo.find("AUTH"), std::string::npos);
    EXPECT_EQ(plain.send("AUTH PLAIN AGEAYg==\r\n"),
              "538 5.7.11 Error: encryption required for authentication, use STARTTLS first\r\n");
    EXPECT_TRUE(plain.auth_events.empty());
    plain.send("STARTTLS\r\n");
    EXPECT_NE(plain.send("EHLO client.test\r\n").find("250 AUTH PLAIN LOGIN SCRAM-SHA-256\r\n"),
              std::string::npos);
}

TEST(SmtpSubmission, PlaintextAuthWhenTheConfigAllowsIt) {
    ServerConfig config = submission_config(false);
    config.auth_plaintext_allowed = true;
    Driver driver(config);
    EXPECT_NE(driver.send("EHLO client.test\r\n").find("AUTH PLAIN LOGIN SCRAM-SHA-256"), std::string::npos);
}

TEST(SmtpSubmission, PortTwentyFiveNeitherOffersNorAcceptsAuth) {
    ServerConfig config = submission_config(true);
    config.submission = false;
    Driver driver(config);
    EXPECT_EQ(driver.send("EHLO client.test\r\n").find("AUTH"), std::string::npos);
    EXPECT_EQ(driver.send("AUTH PLAIN AGEAYg==\r\n"), "502 5.5.1 Error: command not implemented\r\n");
    EXPECT_EQ(driver.send("MAIL FROM:<anyone@example.org>\r\n"), "250 2.1.0 OK\r\n");
}

TEST(SmtpSubmission, MailBeforeAuthIsRefusedWith530) {
    Driver driver(submission_config(true));
    driver.send("EHLO client.test\r\n");
    EXPECT_EQ(driver.send("MAIL FROM:<alice@crepes.test>\r\n"),
              "530 5.7.0 Error: authentication required\r\n");
}

TEST(SmtpSubmission, InitialResponseGoesToTheIoLayerAsSent) {
    Driver driver(submission_config(true));
    driver.log_in();
    EXPECT_EQ(driver.auth_events,
              std::vector<std::string>{"begin PLAIN AGFsaWNlQGNyZXBlcy50ZXN0AHNlY3JldA=="});
    EXPECT_EQ(driver.session.auth_user(), "alice@crepes.test");
    EXPECT_EQ(driver.send("AUTH PLAIN AGEAYg==\r\n"), "503 5.5.1 Error: already authenticated\r\n");
}

TEST(SmtpSubmission, ChallengesCarryTheExchangeLineByLine) {
    Driver driver(submission_config(true));
    driver.send("EHLO client.test\r\n");
    driver.answers = {AuthAnswer{AuthAnswer::Kind::challenge, "VXNlcm5hbWU6", {}, {}},
                      AuthAnswer{AuthAnswer::Kind::challenge, "UGFzc3dvcmQ6", {}, {}},
                      AuthAnswer{AuthAnswer::Kind::failed, {}, {}, {}}};
    EXPECT_EQ(driver.send("AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6\r\n");
    // A response line is not a command, even when it looks like one.
    EXPECT_EQ(driver.send("QUIT\r\n"), "334 UGFzc3dvcmQ6\r\n");
    EXPECT_EQ(driver.send("d3Jvbmc=\r\n"), "535 5.7.8 Error: authentication credentials invalid\r\n");
    EXPECT_EQ(driver.auth_events,
              (std::vector<std::string>{"begin LOGIN -", "response QUIT", "response d3Jvbmc="}));
    // The exchange is over: the next line is a command again.
    EXPECT_EQ(driver.send("MAIL FROM:<alice@crepes.test>\r\n"),
              "530 5.7.0 Error: authentication required\r\n");
}

TEST(SmtpSubmission, EachAnswerKindHasItsReply) {
    struct Case {
        AuthAnswer::Kind kind;
        std::string reply;
    };
    const Case cases[] = {
        {AuthAnswer::Kind::cancelled, "501 5.0.0 Error: authentication cancelled\r\n"},
        {AuthAnswer::Kind::malformed, "501 5.5.2 Error: cannot decode the authentication response\r\n"},
        {AuthAnswer::Kind::too_long, "500 5.5.6 Error: authentication exchange line is too long\r\n"},
        {AuthAnswer::Kind::unsupported, "504 5.5.4 Error: unrecognized authentication mechanism\r\n"},
        {AuthAnswer::Kind::temporary,
         "454 4.7.0 Error: temporary authentication failure, try again later\r\n"},
    };
    for (const auto& c : cases) {
        Driver driver(submission_config(true));
        driver.send("EHLO client.test\r\n");
        driver.answers = {AuthAnswer{c.kind, {}, {}, {}}};
        EXPECT_EQ(driver.send("AUTH CRAM-MD5\r\n"), c.reply);
    }
}

TEST(SmtpSubmission, OverlongAuthLinesAreRefusedWithTheAuthCode) {
    ServerConfig config = submission_config(true);
    config.limits.max_auth_line = 1000;
    Driver driver(config);
    driver.send("EHLO client.test\r\n");
    // Longer than a command line (512) but within max_auth_line: accepted as an AUTH line.
    std::string medium(700, 'A');
    EXPECT_EQ(driver.send("AUTH PLAIN " + medium + "\r\n"),
              "535 5.7.8 Error: authentication credentials invalid\r\n");
    EXPECT_EQ(driver.auth_events.size(), 1u);
    std::string huge(5000, 'A');
    EXPECT_EQ(driver.send("AUTH PLAIN " + huge + "\r\n"),
              "500 5.5.6 Error: authentication exchange line is too long\r\n");
    driver.answers = {AuthAnswer{AuthAnswer::Kind::challenge, "", {}, {}}};
    EXPECT_EQ(driver.send("AUTH PLAIN\r\n"), "334 \r\n");
    EXPECT_EQ(driver.send(huge + "\r\n"), "500 5.5.6 Error: authentication exchange line is too long\r\n");
    // Not an AUTH line: the command limit still holds.
    EXPECT_EQ(driver.send("NOOP " + medium + "\r\n"), "500 5.5.2 Error: line too long\r\n");
    EXPECT_EQ(driver.auth_events.size(), 2u);
}

TEST(SmtpSubmission, EnvelopeSenderMustBeTheUserOrAnAlias) {
    Driver driver(submission_config(true));
    driver.log_in();
    std::string refused = driver.send("MAIL FROM:<bob@hamburger.test>\r\n");
    EXPECT_EQ(refused.substr(0, 10), "553 5.7.1 ");
    EXPECT_NE(refused.find("not owned by user alice@crepes.test"), std::string::npos);
    EXPECT_NE(driver.send("MAIL FROM:<>\r\n").find("553 5.7.1"), std::string::npos);
    EXPECT_EQ(driver.send("MAIL FROM:<Chef@Crepes.test>\r\n"), "250 2.1.0 OK\r\n");
}

// RFC 4954 5: the AUTH= parameter of MAIL belongs to the AUTH extension (Sendmail and Exchange send AUTH=<>);
// it is accepted as xtext and trusts nothing. Port 25, which offers no AUTH, still refuses it.
TEST(SmtpSubmission, MailAcceptsTheAuthParameter) {
    Driver driver(submission_config(true));
    driver.log_in();
    EXPECT_EQ(driver.send("MAIL FROM:<alice@crepes.test> AUTH=<>\r\n"), "250 2.1.0 OK\r\n");
    EXPECT_EQ(driver.send("RSET\r\n"), "250 2.0.0 OK\r\n");
    EXPECT_EQ(driver.send("MAIL FROM:<alice@crepes.test> AUTH=alice+40crepes.test\r\n"), "250 2.1.0 OK\r\n");
    EXPECT_EQ(driver.send("RSET\r\n"), "250 2.0.0 OK\r\n");
    EXPECT_EQ(driver.send("MAIL FROM:<alice@crepes.test> AUTH\r\n"),
              "501 5.5.4 Error: bad AUTH parameter\r\n");
    EXPECT_EQ(driver.send("MAIL FROM:<alice@crepes.test> AUTH=a+zzb\r\n"),
              "501 5.5.4 Error: bad AUTH parameter\r\n");

    ServerConfig port25 = submission_config(true);
    port25.submission = false;
    Driver mx(port25);
    mx.send("EHLO client.test\r\n");
    EXPECT_EQ(mx.send("MAIL FROM:<a@b.test> AUTH=<>\r\n"), "555 5.5.4 Error: unsupported MAIL parameter\r\n");
}

std::string submit(Driver& driver, std::string_view message) {
    driver.send("MAIL FROM:<alice@crepes.test>\r\n");
    driver.send("RCPT TO:<bob@hamburger.test>\r\n");
    driver.send("DATA\r\n");
    return driver.send(std::string(message) + ".\r\n");
}

TEST(SmtpSubmission, OwnFromIsStoredWithTheAuthenticatedUser) {
    Driver driver(submission_config(true));
    driver.log_in();
    EXPECT_EQ(submit(driver, "From: Alice <alice@crepes.test>\r\nSubject: hi\r\n\r\nhello\r\n"),
              "250 2.0.0 OK Q1\r\n");
    ASSERT_EQ(driver.stored.size(), 1u);
    EXPECT_EQ(driver.stored[0].envelope.auth_user, "alice@crepes.test");
    EXPECT_EQ(driver.stored[0].envelope.reverse_path, "alice@crepes.test");
}

TEST(SmtpSubmission, ForgedFromIsRefusedWith553NamingTheRule) {
    Driver driver(submission_config(true));
    driver.log_in();
    std::string reply = submit(driver, "From: Bob <bob@hamburger.test>\r\n\r\nhello\r\n");
    EXPECT_EQ(reply.substr(0, 10), "553 5.7.1 ");
    EXPECT_NE(reply.find("From: header field must be the authenticated user's address"), std::string::npos);
    EXPECT_TRUE(driver.stored.empty());
    // The session goes on.
    EXPECT_EQ(submit(driver, "From: chef@crepes.test\r\n\r\nhello\r\n"), "250 2.0.0 OK Q1\r\n");
}

TEST(SmtpSubmission, SenderFieldDecidesWhenPresent) {
    Driver driver(submission_config(true));
    driver.log_in();
    EXPECT_EQ(submit(driver,
                     "From: bob@hamburger.test, alice@crepes.test\r\nSender: alice@crepes.test\r\n\r\nx\r\n"),
              "250 2.0.0 OK Q1\r\n");
    EXPECT_NE(submit(driver, "From: alice@crepes.test\r\nSender: bob@hamburger.test\r\n\r\nx\r\n")
                  .find("553 5.7.1"),
              std::string::npos);
}

TEST(SmtpSubmission, MissingFromIsA56Refusal) {
    Driver driver(submission_config(true));
    driver.log_in();
    EXPECT_EQ(submit(driver, "Subject: no author\r\n\r\nhello\r\n"),
              "550 5.6.0 Error: message has no From: header field (RFC 5322 3.6 requires one)\r\n");
    EXPECT_TRUE(driver.stored.empty());
}

TEST(SmtpSubmission, StarttlsForgetsAnEarlierAuthentication) {
    ServerConfig config = submission_config(false);
    config.auth_plaintext_allowed = true;
    Driver driver(config);
    driver.log_in();
    driver.send("STARTTLS\r\n");
    driver.send("EHLO client.test\r\n");
    EXPECT_EQ(driver.send("MAIL FROM:<alice@crepes.test>\r\n"),
              "530 5.7.0 Error: authentication required\r\n");
}

}  // namespace
}  // namespace magpie::smtp
