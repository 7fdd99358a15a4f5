// imap::Session over a real SQLite store in a temporary directory: bytes in, bytes out.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <future>
#include <map>
#include <random>
#include <string_view>
#include <utility>

#include "auth/password.h"
#include "imap/session/session.h"
#include "mail/base64.h"
#include "mail/builder.h"
#include "mail/downgrade.h"
#include "mail/summary.h"
#include "store/blob.h"
#include "store/store.h"
#include "store_unused.h"

namespace magpie::imap {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// RFC 8474 4.1: CREATE's tagged OK carries the new mailbox's MAILBOXID.
::testing::Matcher<std::string> Created(const std::string& tag) {
    return ::testing::MatchesRegex(tag + " OK \\[MAILBOXID \\(m[0-9]+\\)\\] CREATE completed\r\n");
}

constexpr std::int64_t kNow = 1'800'000'000;

const char* kFirst =
    "From: Alice <alice@example.test>\r\n"
    "To: demo@example.test\r\n"
    "Subject: Hello there\r\n"
    "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
    "Message-ID: <one@example.test>\r\n"
    "\r\n"
    "First body line\r\n";

const char* kSecond =
    "From: Bob <bob@example.test>\r\n"
    "To: demo@example.test\r\n"
    "Bcc: hidden@example.test\r\n"
    "Subject: Quarterly report\r\n"
    "Date: Tue, 01 Dec 2026 09:00:00 +0100\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "U2VjcmV0IHBpbmVhcHBsZQ==\r\n";  // "Secret pineapple"

store::MessageSummary summary_of(std::string_view content) {
    mail::Summary s = mail::summarize(content);
    store::MessageSummary out;
    out.subject = s.subject;
    out.from = s.from;
    out.to = s.to;
    out.cc = s.cc;
    out.date = s.date;
    out.message_id = s.message_id;
    out.structure = s.structure;
    return out;
}

// argon2id hashes of the fixture's passwords at hash_password's parameters (libsodium's interactive limits),
// made once with crypto_pwhash_str: hashing them in every test's SetUp cost two argon2id runs (about 0.1 s
// of CPU each) per test, and every test runs in its own process. Logins still verify them with argon2id, and
// FixtureHashesAreCurrentArgon2id checks that they match and need no rehash.
constexpr std::pair<std::string_view, std::string_view> kFixtureHashes[] = {
    {"correct horse",
     "$argon2id$v=19$m=65536,t=2,p=1$lLI9ow/fUfoL3oLt13JTdw$LKiFPxgfGRkXpKg/0xH2UjBwPvBZr8PymeNZilABJug"},
    {"other secret",
     "$argon2id$v=19$m=65536,t=2,p=1$7LFDc5EuoiubeNXHYvqkXg$1Zpb6NQuyGrgSFXDk+wa4N2W7JYdOwrplybkwXzo5Mk"},
};

// The secrets add_account stores: the precomputed hash for a fixture password (fresh SCRAM keys, which are
// cheap), else make_password_secrets.
Result<auth::PasswordSecrets> fixture_secrets(std::string_view password) {
    for (const auto& [known, hash] : kFixtureHashes) {
        if (known != password) continue;
        auto scram = auth::make_scram_credentials(password);
        if (!scram) return scram.error();
        return auth::PasswordSecrets{std::string(hash), std::move(*scram)};
    }
    return auth::make_password_secrets(password);
}

TEST(ImapSessionFixture, FixtureHashesAreCurrentArgon2id) {
    for (const auto& [password, hash] : kFixtureHashes) {
        EXPECT_TRUE(auth::verify_password(hash, password)) << password;
        EXPECT_FALSE(auth::verify_password(hash, "wrong")) << password;
        EXPECT_FALSE(auth::password_needs_rehash(hash)) << password;
    }
}

class ImapSessionTest : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() /
               fmt::format("magpie-imapsession-{}", std::random_device{}());
        store::SqliteOptions options;
        options.data_dir = dir_;
        auto opened = store::open_sqlite_store(options);
        ASSERT_TRUE(opened.ok()) << opened.error().message;
        store_ = std::move(*opened);
        ASSERT_TRUE(store_->add_domain("example.test").ok());
        demo_ = add_account("demo@example.test", "correct horse");
        other_ = add_account("other@example.test", "other secret");
        services_ = std::make_unique<SessionServices>(SessionServices{*store_, limiter_, throttle_});
    }

    void TearDown() override {
        store_.reset();
        std::filesystem::remove_all(dir_);
    }

    std::int64_t add_account(std::string_view address, std::string_view password) {
        auto secrets = fixture_secrets(password);
        EXPECT_TRUE(secrets.ok());
        auto account = store_->add_account(address, secrets->hash, secrets->scram);
        EXPECT_TRUE(account.ok());
        return account->id;
    }

    store::Mailbox mailbox(std::int64_t account, std::string_view name) {
        auto found = store_->find_mailbox(account, name);
        EXPECT_TRUE(found.ok());
        return *found;
    }

    std::uint32_t deliver(std::int64_t account, std::string_view name, std::string_view content,
                          std::vector<std::string> flags = {}) {
        store::Delivery delivery;
        delivery.content = std::string(content);
        delivery.internal_date = kNow;
        delivery.targets.push_back(store::DeliveryTarget{mailbox(account, name).id, std::move(flags)});
        delivery.summary = summary_of(content);
        std::promise<Result<store::Delivered>> promise;
        auto future = promise.get_future();
        store_->deliver(std::move(delivery),
                        [&](Result<store::Delivered> r) { promise.set_value(std::move(r)); });
        auto delivered = future.get();
        EXPECT_TRUE(delivered.ok());
        return delivered->placed.at(0).uid;
    }

    std::unique_ptr<Session> open(bool tls = true, std::string ip = "192.0.2.1") {
        SessionConfig config;
        config.hostname = "mail.example.test";
        config.tls_active = tls;
        config.starttls_available = true;
        config.quota_storage_kib = 1024;
        config.max_output_octets_per_run = max_output_per_run_;
        config.limits = limits_;
        auto session = std::make_unique<Session>(config, std::move(ip), [this] { return store_->open_spool(); });
        greeting_ = session->take_output();
        return session;
    }

    // Runs the session as the IO loop does, answering its store requests here (perform() on this thread).
    void drive(Session& session) {
        for (;;) {
            if (auto request = session.take_request()) {
                session.answer(perform(*services_, std::move(*request)), kNow);
                continue;
            }
            if (!session.has_work()) return;
            session.run(kNow);
        }
    }

    std::string send(Session& session, std::string_view bytes) {
        session.feed(bytes);
        drive(session);
        return session.take_output();
    }

    std::unique_ptr<Session> logged_in(std::string_view user = "demo@example.test",
                                       std::string_view password = "correct horse") {
        auto session = open();
        auto out = send(*session, fmt::format("L LOGIN {} \"{}\"\r\n", user, password));
        EXPECT_THAT(out, HasSubstr("L OK [CAPABILITY"));
        return session;
    }

    std::filesystem::path dir_;
    std::unique_ptr<store::Store> store_;
    auth::HashLimiter limiter_;
    auth::LoginThrottle throttle_;
    std::unique_ptr<SessionServices> services_;
    std::int64_t demo_ = 0, other_ = 0;
    std::string greeting_;
    std::size_t max_output_per_run_ = 1024 * 1024;
    Limits limits_;
};

TEST_F(ImapSessionTest, GreetingAdvertisesLoginDisabledWithoutTls) {
    auto session = open(false);
    EXPECT_THAT(greeting_, HasSubstr("* OK [CAPABILITY IMAP4rev1 IMAP4rev2 STARTTLS LOGINDISABLED SASL-IR"));
    EXPECT_THAT(greeting_, Not(HasSubstr("AUTH=PLAIN")));
    EXPECT_EQ(send(*session, "a LOGIN demo@example.test \"correct horse\"\r\n"),
              "a NO [PRIVACYREQUIRED] LOGIN is disabled until TLS is active\r\n");
    EXPECT_EQ(send(*session, "b AUTHENTICATE PLAIN AGRlbW9AZXhhbXBsZS50ZXN0AGNvcnJlY3QgaG9yc2U=\r\n"),
              "b NO [PRIVACYREQUIRED] Authentication is disabled until TLS is active\r\n");
    EXPECT_EQ(session->state(), Session::State::not_authenticated);
}

TEST_F(ImapSessionTest, StartTlsDropsPipelinedBytesAndEnablesLogin) {
    auto session = open(false);
    EXPECT_EQ(send(*session, "a STARTTLS\r\nb LOGIN demo@example.test \"correct horse\"\r\n"),
              "a OK Begin TLS negotiation now\r\n");
    EXPECT_EQ(session->take_action(), Session::Action::start_tls);
    session->tls_started();
    EXPECT_FALSE(session->has_work());
    EXPECT_THAT(send(*session, "c CAPABILITY\r\n"), HasSubstr("AUTH=PLAIN"));
    EXPECT_THAT(send(*session, "d LOGIN demo@example.test \"correct horse\"\r\n"),
                HasSubstr("d OK [CAPABILITY"));
}

TEST_F(ImapSessionTest, CommandsInTheWrongStateAreBad) {
    auto session = open();
    EXPECT_THAT(send(*session, "a SELECT INBOX\r\n"),
                HasSubstr("a BAD SELECT not allowed now: Log in first"));
    EXPECT_THAT(send(*session, "b FETCH 1 FLAGS\r\n"), HasSubstr("b BAD"));
    send(*session, "c LOGIN demo@example.test \"correct horse\"\r\n");
    EXPECT_THAT(send(*session, "d LOGIN demo@example.test x\r\n"), HasSubstr("d BAD LOGIN not allowed now"));
    EXPECT_THAT(send(*session, "e FETCH 1 FLAGS\r\n"),
                HasSubstr("e BAD FETCH not allowed now: No mailbox selected"));
    EXPECT_THAT(send(*session, "f CLOSE\r\n"), HasSubstr("f BAD"));
    EXPECT_THAT(send(*session, "g STARTTLS\r\n"), HasSubstr("g BAD"));
}

TEST_F(ImapSessionTest, ThrottlesAfterRepeatedFailures) {
    auto session = open(true, "198.51.100.7");
    for (int i = 0; i < 5; ++i)
        EXPECT_EQ(send(*session, "a LOGIN demo@example.test wrong\r\n"),
                  "a NO [AUTHENTICATIONFAILED] Invalid credentials\r\n");
    // Even the right password is refused while the account is locked out.
    EXPECT_THAT(send(*session, "b LOGIN demo@example.test \"correct horse\"\r\n"),
                HasSubstr("b NO [UNAVAILABLE]"));
    EXPECT_EQ(session->state(), Session::State::not_authenticated);
}

TEST_F(ImapSessionTest, AuthenticatePlainWithInitialResponse) {
    auto session = open();
    // "\0demo@example.test\0correct horse"
    EXPECT_THAT(send(*session, "a AUTHENTICATE PLAIN AGRlbW9AZXhhbXBsZS50ZXN0AGNvcnJlY3QgaG9yc2U=\r\n"),
                HasSubstr("a OK [CAPABILITY"));
    EXPECT_EQ(session->account_id(), demo_);
}

TEST_F(ImapSessionTest, AuthenticatePlainWithContinuation) {
    auto session = open();
    EXPECT_EQ(send(*session, "a AUTHENTICATE PLAIN\r\n"), "+ \r\n");
    EXPECT_THAT(send(*session, "AGRlbW9AZXhhbXBsZS50ZXN0AGNvcnJlY3QgaG9yc2U=\r\n"),
                HasSubstr("a OK [CAPABILITY"));
    EXPECT_EQ(session->state(), Session::State::authenticated);
}

TEST_F(ImapSessionTest, LoginSelectFetchLogout) {
    deliver(demo_, "INBOX", kFirst);
    deliver(demo_, "INBOX", kSecond, {"\\Flagged"});
    auto session = logged_in();
    const auto inbox = mailbox(demo_, "INBOX");
    EXPECT_EQ(
        send(*session, "s SELECT INBOX\r\n"),
        fmt::format(
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
            "* 2 EXISTS\r\n"
            "* 2 RECENT\r\n"
            "* OK [UNSEEN 1] First unseen\r\n"
            "* OK [UIDVALIDITY {}] UIDs valid\r\n"
            "* OK [UIDNEXT 3] Predicted next UID\r\n"
            "* OK [MAILBOXID (m{})] Ok\r\n"
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted\r\n"
            "* OK [HIGHESTMODSEQ {}] Highest\r\n"
            "s OK [READ-WRITE] SELECT completed\r\n",
            inbox.uidvalidity, inbox.id, inbox.highest_modseq));
    EXPECT_EQ(send(*session, "f FETCH 1:2 (UID FLAGS RFC822.SIZE)\r\n"),
              fmt::format("* 1 FETCH (UID 1 FLAGS (\\Recent) RFC822.SIZE {})\r\n"
                          "* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent) RFC822.SIZE {})\r\n"
                          "f OK FETCH completed\r\n",
                          std::strlen(kFirst), std::strlen(kSecond)));
    EXPECT_EQ(send(*session, "g FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject)])\r\n"),
              "* 1 FETCH (BODY[HEADER.FIELDS (Subject)] {24}\r\nSubject: Hello there\r\n\r\n)\r\n"
              "g OK FETCH completed\r\n");
    EXPECT_EQ(send(*session, "h FETCH 1 BODY[TEXT]<0.5>\r\n"),
              "* 1 FETCH (BODY[TEXT]<0> {5}\r\nFirst FLAGS (\\Seen \\Recent))\r\nh OK FETCH completed\r\n");
    EXPECT_EQ(send(*session, "i UID FETCH 2 (BINARY.PEEK[1] BINARY.SIZE[1])\r\n"),
              "* 2 FETCH (UID 2 BINARY[1] {16}\r\nSecret pineapple BINARY.SIZE[1] 16)\r\ni OK UID FETCH "
              "completed\r\n");
    auto envelope = send(*session, "j FETCH 2 (ENVELOPE BODYSTRUCTURE)\r\n");
    EXPECT_THAT(envelope, HasSubstr("ENVELOPE (\"Tue, 01 Dec 2026 09:00:00 +0100\" \"Quarterly report\""));
    EXPECT_THAT(envelope,
                HasSubstr("BODYSTRUCTURE (\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"base64\""));
    EXPECT_THAT(send(*session, "k FETCH 2 INTERNALDATE\r\n"),
                HasSubstr("* 2 FETCH (INTERNALDATE \"15-Jan-2027 08:00:00 +0000\")"));
    EXPECT_EQ(send(*session, "l FETCH 3 FLAGS\r\n"), "l BAD Invalid message sequence number\r\n");
    EXPECT_EQ(send(*session, "z LOGOUT\r\n"), "* BYE Logging out\r\nz OK LOGOUT completed\r\n");
    EXPECT_EQ(session->take_action(), Session::Action::close);
    EXPECT_FALSE(session->wants_input());
}

TEST_F(ImapSessionTest, StoreExpungeCopyMoveAppend) {
    deliver(demo_, "INBOX", kFirst);
    deliver(demo_, "INBOX", kSecond);
    deliver(demo_, "INBOX", kFirst);
    auto session = logged_in();
    send(*session, "e ENABLE IMAP4rev2\r\n");
    send(*session, "s SELECT INBOX\r\n");
    EXPECT_EQ(
        send(*session, "a STORE 1 +FLAGS (\\Deleted $Work)\r\n"),
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)\r\n"
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)] Flags permitted\r\n"
        "* 1 FETCH (FLAGS (\\Deleted $Work))\r\na OK STORE completed\r\n");
    EXPECT_EQ(send(*session, "b STORE 2 +FLAGS.SILENT (\\Seen)\r\n"), "b OK STORE completed\r\n");
    EXPECT_EQ(send(*session, "c EXPUNGE\r\n"), "* 1 EXPUNGE\r\nc OK EXPUNGE completed\r\n");
    const auto archive = mailbox(demo_, "Archive");
    EXPECT_EQ(send(*session, "d COPY 1 Archive\r\n"),
              fmt::format("d OK [COPYUID {} 2 1] COPY completed\r\n", archive.uidvalidity));
    EXPECT_EQ(send(*session, "f UID MOVE 3 Archive\r\n"),
              fmt::format("* OK [COPYUID {} 3 2] Moved\r\n* 2 EXPUNGE\r\nf OK MOVE completed\r\n",
                          archive.uidvalidity));
    EXPECT_EQ(send(*session, "g COPY 1 Nowhere\r\n"), "g NO [TRYCREATE] No such mailbox\r\n");
    EXPECT_EQ(send(*session, "h APPEND INBOX (\\Seen) {5+}\r\nHi!\r\n\r\n"),
              fmt::format("* 2 EXISTS\r\nh OK [APPENDUID {} 4] APPEND completed\r\n",
                          mailbox(demo_, "INBOX").uidvalidity));
    EXPECT_EQ(send(*session, "i UID FETCH 4 (FLAGS BODY.PEEK[])\r\n"),
              "* 2 FETCH (UID 4 FLAGS (\\Seen) BODY[] {5}\r\nHi!\r\n)\r\ni OK UID FETCH completed\r\n");
    EXPECT_EQ(send(*session, "j APPEND Nowhere {3+}\r\nabc\r\n"), "j NO [TRYCREATE] No such mailbox\r\n");
    // The moved and copied messages share the blob: the bytes read back the same.
    auto moved = store_->find_message(archive.id, 2);
    ASSERT_TRUE(moved.ok());
    EXPECT_EQ(*store_->read_blob(moved->blob_id), kFirst);
    EXPECT_EQ(send(*session, "k CLOSE\r\n"), "k OK CLOSE completed\r\n");
    EXPECT_EQ(session->state(), Session::State::authenticated);
}

TEST_F(ImapSessionTest, ReadOnlyExamineRefusesChanges) {
    deliver(demo_, "INBOX", kFirst);
    auto session = logged_in();
    auto out = send(*session, "x EXAMINE INBOX\r\n");
    EXPECT_THAT(out, HasSubstr("* OK [PERMANENTFLAGS ()] No permanent flags permitted\r\n"));
    EXPECT_THAT(out, HasSubstr("x OK [READ-ONLY] EXAMINE completed\r\n"));
    EXPECT_EQ(send(*session, "a STORE 1 +FLAGS (\\Seen)\r\n"),
              "a NO [READ-ONLY] The mailbox is read-only\r\n");
    // BODY[] does not set \Seen in a read-only mailbox.
    EXPECT_THAT(send(*session, "b FETCH 1 BODY[]\r\n"), Not(HasSubstr("\\Seen")));
    EXPECT_EQ(send(*session, "c EXPUNGE\r\n"), "c NO [READ-ONLY] The mailbox is read-only\r\n");
}

TEST_F(ImapSessionTest, TwoSessionsSeeEachOthersChangesAtAllowedPoints) {
    deliver(demo_, "INBOX", kFirst);
    deliver(demo_, "INBOX", kSecond);
    auto a = logged_in();
    auto b = logged_in();
    send(*a, "e ENABLE IMAP4rev2\r\n");
    send(*b, "e ENABLE IMAP4rev2\r\n");
    send(*a, "s SELECT INBOX\r\n");
    send(*b, "s SELECT INBOX\r\n");
    send(*a, "1 STORE 2 +FLAGS.SILENT (\\Answered)\r\n");
    EXPECT_EQ(send(*b, "n NOOP\r\n"), "* 2 FETCH (FLAGS (\\Answered))\r\nn OK Done\r\n");
    send(*a, "2 STORE 1 +FLAGS.SILENT (\\Deleted)\r\n");
    EXPECT_THAT(send(*a, "3 EXPUNGE\r\n"), HasSubstr("* 1 EXPUNGE"));
    // RFC 9051 7.5.1: no EXPUNGE during FETCH by number; the flag update there is allowed but not needed.
    auto during_fetch = send(*b, "f FETCH 2 UID\r\n");
    EXPECT_THAT(during_fetch, Not(HasSubstr("EXPUNGE")));
    EXPECT_THAT(during_fetch, HasSubstr("* 2 FETCH (UID 2)"));
    EXPECT_EQ(send(*b, "n NOOP\r\n"), "* 1 EXPUNGE\r\nn OK Done\r\n");
    deliver(demo_, "INBOX", kFirst);
    // Updates follow the command's own data: the search ran over the view before the new message.
    EXPECT_EQ(send(*b, "u UID SEARCH ALL\r\n"),
              "* ESEARCH (TAG \"u\") UID ALL 2\r\n* 2 EXISTS\r\nu OK UID SEARCH completed\r\n");
    EXPECT_EQ(send(*b, "v UID SEARCH ALL\r\n"),
              "* ESEARCH (TAG \"v\") UID ALL 2:3\r\nv OK UID SEARCH completed\r\n");
    EXPECT_EQ(send(*a, "n NOOP\r\n"), "* 2 EXISTS\r\nn OK Done\r\n");
}

TEST_F(ImapSessionTest, IdleReportsNewMailWhenTheMailboxChanges) {
    deliver(demo_, "INBOX", kFirst);
    auto session = logged_in();
    send(*session, "s SELECT INBOX\r\n");
    EXPECT_EQ(send(*session, "i IDLE\r\n"), "+ idling\r\n");
    EXPECT_TRUE(session->idling());
    deliver(demo_, "INBOX", kSecond);
    session->mailbox_changed(kNow);
    drive(*session);  // its Refresh request, answered
    // This session selected first, so both messages are recent to it (rev1).
    EXPECT_EQ(session->take_output(), "* 2 EXISTS\r\n* 2 RECENT\r\n");
    ASSERT_TRUE(store_
                    ->store_flags(mailbox(demo_, "INBOX").id, {1},
                                  store::FlagUpdate{store::FlagOperation::add, {"\\Seen"}, {}})
                    .ok());
    session->mailbox_changed(kNow);
    drive(*session);  // its Refresh request, answered
    EXPECT_EQ(session->take_output(), "* 1 FETCH (FLAGS (\\Seen \\Recent))\r\n");
    // Another session expunges while this one idles: the EXPUNGE comes at once.
    auto other = logged_in();
    send(*other, "s SELECT INBOX\r\n");
    send(*other, "d STORE 1 +FLAGS.SILENT (\\Deleted)\r\n");
    send(*other, "x EXPUNGE\r\n");
    session->mailbox_changed(kNow);
    drive(*session);  // its Refresh request, answered
    EXPECT_EQ(session->take_output(), "* 1 EXPUNGE\r\n");
    EXPECT_EQ(send(*session, "DONE\r\n"), "i OK IDLE terminated\r\n");
    EXPECT_FALSE(session->idling());
    session->idle_timeout();
    EXPECT_EQ(session->take_output(), "* BYE Autologout; idle for too long\r\n");
    EXPECT_EQ(session->take_action(), Session::Action::close);
}

// Issue 12 item 10: a keepalive during IDLE says "* OK Still here"; outside IDLE it says nothing.
TEST_F(ImapSessionTest, IdleKeepaliveSaysStillHereOnlyWhileIdling) {
    auto session = logged_in();
    send(*session, "s SELECT INBOX\r\n");
    session->idle_keepalive();
    EXPECT_EQ(session->take_output(), "");
    EXPECT_EQ(send(*session, "i IDLE\r\n"), "+ idling\r\n");
    session->idle_keepalive();
    session->idle_keepalive();
    EXPECT_EQ(session->take_output(), "* OK Still here\r\n* OK Still here\r\n");
    EXPECT_EQ(send(*session, "DONE\r\n"), "i OK IDLE terminated\r\n");
    session->idle_keepalive();
    EXPECT_EQ(session->take_output(), "");
}

TEST_F(ImapSessionTest, CondstoreAndQresync) {
    deliver(demo_, "INBOX", kFirst);
    deliver(demo_, "INBOX", kSecond);
    deliver(demo_, "INBOX", kFirst);
    auto session = logged_in();
    EXPECT_EQ(send(*session, "e ENABLE QRESYNC\r\n"), "* ENABLED QRESYNC\r\ne OK ENABLE completed\r\n");
    send(*session, "s SELECT INBOX\r\n");
    const auto inbox = mailbox(demo_, "INBOX");
    const std::uint64_t base = inbox.highest_modseq;
    auto stored = send(*session, "a UID STORE 2 +FLAGS (\\Seen)\r\n");
    EXPECT_EQ(
        stored,
        fmt::format("* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent) MODSEQ ({}))\r\na OK UID STORE completed\r\n",
                    base + 1));
    EXPECT_EQ(send(*session, fmt::format("b UID STORE 2 (UNCHANGEDSINCE {}) +FLAGS (\\Flagged)\r\n", base)),
              "b OK [MODIFIED 2] Conditional STORE failed for some messages\r\n");
    EXPECT_EQ(
        send(*session, fmt::format("c FETCH 1:* (FLAGS) (CHANGEDSINCE {})\r\n", base)),
        fmt::format("* 2 FETCH (FLAGS (\\Seen \\Recent) MODSEQ ({}))\r\nc OK FETCH completed\r\n", base + 1));
    send(*session, "d UID STORE 3 +FLAGS.SILENT (\\Deleted)\r\n");
    // With QRESYNC the tagged OK says the HIGHESTMODSEQ the expunge left (as Dovecot and mox do).
    auto expunged = send(*session, "x EXPUNGE\r\n");
    EXPECT_EQ(expunged, fmt::format("* VANISHED 3\r\nx OK [HIGHESTMODSEQ {}] EXPUNGE completed\r\n",
                                    mailbox(demo_, "INBOX").highest_modseq));
    EXPECT_GT(mailbox(demo_, "INBOX").highest_modseq, base + 1);
    EXPECT_EQ(
        send(*session, fmt::format("v UID FETCH 1:* (FLAGS) (CHANGEDSINCE {} VANISHED)\r\n", base)),
        fmt::format("* VANISHED (EARLIER) 3\r\n* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent) MODSEQ ({}))\r\n"
                    "v OK UID FETCH completed\r\n",
                    base + 1));
    send(*session, "u UNSELECT\r\n");
    auto resync =
        send(*session, fmt::format("r SELECT INBOX (QRESYNC ({} {} 1:3))\r\n", inbox.uidvalidity, base));
    EXPECT_THAT(resync, HasSubstr("* VANISHED (EARLIER) 3\r\n"));
    EXPECT_THAT(resync, HasSubstr(fmt::format("* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ ({}))\r\n", base + 1)));
    EXPECT_THAT(resync, HasSubstr("r OK [READ-WRITE]"));
    EXPECT_THAT(send(*session, "r2 SELECT Archive\r\n"),
                HasSubstr("* OK [CLOSED] Previous mailbox closed\r\n"));
}

// Issue 12 item 6: the first CONDSTORE-enabling command in a selected mailbox says HIGHESTMODSEQ first
// (RFC 7162 3.1; Dovecot); later ones do not.
TEST_F(ImapSessionTest, FirstFetchWithModseqSaysHighestModseq) {
    deliver(demo_, "INBOX", kFirst);
    auto session = logged_in();
    send(*session, "e ENABLE IMAP4rev2\r\n");
    send(*session, "s SELECT INBOX\r\n");
    const auto inbox = mailbox(demo_, "INBOX");
    EXPECT_EQ(send(*session, "a FETCH 1 (FLAGS MODSEQ)\r\n"),
              fmt::format("* OK [HIGHESTMODSEQ {0}] Highest\r\n* 1 FETCH (FLAGS () MODSEQ ({0}))\r\n"
                          "a OK FETCH completed\r\n",
                          inbox.highest_modseq));
    EXPECT_EQ(send(*session, "b FETCH 1 (MODSEQ)\r\n"),
              fmt::format("* 1 FETCH (MODSEQ ({}))\r\nb OK FETCH completed\r\n", inbox.highest_modseq));
    auto other = logged_in();
    send(*other, "s SELECT INBOX\r\n");
    EXPECT_THAT(
        send(*other, "c SEARCH MODSEQ 1\r\n"),
        ::testing::StartsWith(fmt::format("* OK [HIGHESTMODSEQ {}] Highest\r\n", inbox.highest_modseq)));
}

// Issue 12 item 6: RETURN (MIN) / (MAX) with MODSEQ give the mod-sequence of the message named (RFC 4731
// 3.2): four messages whose \Seen was set in the order 1, 3, 2, 4.
TEST_F(ImapSessionTest, EsearchMinMaxModseqIsThatOfTheMessageNamed) {
    for (int i = 0; i < 4; ++i) deliver(demo_, "INBOX", kFirst);
    auto session = logged_in();
    send(*session, "e ENABLE IMAP4rev2 CONDSTORE\r\n");
    send(*session, "s SELECT INBOX\r\n");
    const std::uint64_t base = mailbox(demo_, "INBOX").highest_modseq;
    for (const char* n : {"1", "3", "2", "4"})
        send(*session, fmt::format("t STORE {} +FLAGS.SILENT (\\Seen)\r\n", n));
    auto esearch = [&](std::string_view options) {
        return send(*session, fmt::format("q SEARCH RETURN ({}) MODSEQ 1\r\n", options));
    };
    EXPECT_EQ(esearch("MIN"),
              fmt::format("* ESEARCH (TAG \"q\") MIN 1 MODSEQ {}\r\nq OK SEARCH completed\r\n", base + 1));
    EXPECT_EQ(esearch("MAX"),
              fmt::format("* ESEARCH (TAG \"q\") MAX 4 MODSEQ {}\r\nq OK SEARCH completed\r\n", base + 4));
    EXPECT_EQ(send(*session, "q SEARCH RETURN (MAX) MODSEQ 1 NOT 4\r\n"),
              fmt::format("* ESEARCH (TAG \"q\") MAX 3 MODSEQ {}\r\nq OK SEARCH completed\r\n", base + 2));
    EXPECT_EQ(
        esearch("MIN MAX"),
        fmt::format("* ESEARCH (TAG \"q\") MIN 1 MAX 4 MODSEQ {}\r\nq OK SEARCH completed\r\n", base + 4));
    EXPECT_EQ(
        send(*session, "q SEARCH RETURN (MIN MAX) MODSEQ 1 NOT 4\r\n"),
        fmt::format("* ESEARCH (TAG \"q\") MIN 1 MAX 3 MODSEQ {}\r\nq OK SEARCH completed\r\n", base + 2));
    EXPECT_EQ(
        send(*session, "q SEARCH RETURN (MIN COUNT) MODSEQ 1 NOT 4\r\n"),
        fmt::format("* ESEARCH (TAG \"q\") MIN 1 COUNT 3 MODSEQ {}\r\nq OK SEARCH completed\r\n", base + 3));
}

TEST_F(ImapSessionTest, SearchKeys) {
    deliver(demo_, "INBOX", kFirst, {"\\Seen"});
    deliver(demo_, "INBOX", kSecond, {"$Work"});
    auto session = logged_in();
    send(*session, "s SELECT INBOX\r\n");
    auto search = [&](std::string_view criteria) {
        return send(*session, fmt::format("q SEARCH {}\r\n", criteria));
    };
    EXPECT_EQ(search("ALL"), "* SEARCH 1 2\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(search("SEEN"), "* SEARCH 1\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(search("UNSEEN KEYWORD $Work"), "* SEARCH 2\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(search("FROM alice"), "* SEARCH 1\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(search("SUBJECT REPORT"), "* SEARCH 2\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(search("BODY pineapple"), "* SEARCH 2\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(search("TEXT \"first body\""), "* SEARCH 1\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(search("BCC hidden"), "* SEARCH 2\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(search("HEADER Message-ID one@"), "* SEARCH 1\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(search("OR FROM bob NOT SEEN"), "* SEARCH 2\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(search("SENTBEFORE 1-Dec-2026"), "* SEARCH 1\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(search("SENTON 1-Dec-2026"), "* SEARCH 2\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(search("SINCE 15-Jan-2027 BEFORE 16-Jan-2027"), "* SEARCH 1 2\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(search(fmt::format("LARGER {}", std::strlen(kFirst))),
              "* SEARCH 2\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(search("UID 2:*"), "* SEARCH 2\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(search("2"), "* SEARCH 2\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(search("RECENT"), "* SEARCH 1 2\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(search("CHARSET X-NO-SUCH-CHARSET ALL"), "q NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset\r\n");
    EXPECT_EQ(search("CHARSET utf-8 FROM bob"), "* SEARCH 2\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(send(*session, "r SEARCH RETURN (MIN MAX COUNT) ALL\r\n"),
              "* ESEARCH (TAG \"r\") MIN 1 MAX 2 COUNT 2\r\nr OK SEARCH completed\r\n");
    EXPECT_EQ(send(*session, "v SEARCH RETURN (SAVE) FROM bob\r\n"), "v OK SEARCH completed\r\n");
    EXPECT_EQ(send(*session, "w FETCH $ UID\r\n"), "* 2 FETCH (UID 2)\r\nw OK FETCH completed\r\n");
    EXPECT_EQ(send(*session, "x UID SEARCH RETURN () $\r\n"),
              "* ESEARCH (TAG \"x\") UID ALL 2\r\nx OK UID SEARCH completed\r\n");
}

// RFC 9051 6.4.4: a charset other than UTF-8 may be given, as Dovecot takes it (older Outlook and other
// clients send their own): its strings are converted before they are compared. Was BADCHARSET for all.
TEST_F(ImapSessionTest, SearchStringsInAnotherCharsetAreConverted) {
    deliver(demo_, "INBOX",
            "From: =?UTF-8?Q?J=C3=B6rg?= <j@example.test>\r\nSubject: =?UTF-8?B?R3LDvMOfZQ==?= aus Köln\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nSchöne Grüße\r\n",
            {});
    deliver(demo_, "INBOX", kSecond, {});
    auto session = logged_in();
    send(*session, "s SELECT INBOX\r\n");
    // "Grüße" in ISO-8859-1; windows-1252 and ISO-8859-1 strings matched in headers and bodies.
    EXPECT_EQ(send(*session, "q SEARCH CHARSET ISO-8859-1 SUBJECT {5+}\r\nGr\xFC\xDF" "e\r\n"),
              "* SEARCH 1\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(send(*session, "q SEARCH CHARSET WINDOWS-1252 OR FROM {3+}\r\nJ\xF6r BODY {3+}\r\nSch\r\n"),
              "* SEARCH 1\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(send(*session, "q SEARCH CHARSET ISO-8859-1 NOT TEXT {6+}\r\nSch\xF6ne\r\n"),
              "* SEARCH 2\r\nq OK SEARCH completed\r\n");
    // KOI8-R "Привет" matches nothing here, but is a charset: an answer, not BADCHARSET.
    EXPECT_EQ(send(*session, "q SEARCH CHARSET KOI8-R BODY {6+}\r\n\xF0\xD2\xC9\xD7\xC5\xD4\r\n"),
              "* SEARCH\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(send(*session, "q SEARCH CHARSET ISO-8859-1 HEADER Subject {4+}\r\nK\xF6ln\r\n"),
              "* SEARCH 1\r\nq OK SEARCH completed\r\n");
}

// Issue 17: with the SearchRowCache, SEARCH's row keys find what they find without it, new mail included, and a
// mailbox deleted and created again under the same name (a new UIDVALIDITY) is never answered from old rows.
TEST_F(ImapSessionTest, SearchRowCacheFindsNewMailAndNothingOfAMailboxGone) {
    services_->search_rows = std::make_shared<SearchRowCache>(1000);
    deliver(demo_, "INBOX", kFirst, {"\\Seen"});
    auto session = logged_in();
    send(*session, "s SELECT INBOX\r\n");
    auto search = [&](std::string_view criteria) { return send(*session, fmt::format("q SEARCH {}\r\n", criteria)); };
    EXPECT_EQ(search("FROM alice"), "* SEARCH 1\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(search("SUBJECT report"), "* SEARCH\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(services_->search_rows->cached_messages(), 1u);
    deliver(demo_, "INBOX", kSecond, {"$Work"});
    // The SEARCH's own refresh comes after it: the view learns of message 2 at NOOP.
    EXPECT_THAT(send(*session, "n NOOP\r\n"), HasSubstr("* 2 EXISTS"));
    EXPECT_EQ(search("SUBJECT report"), "* SEARCH 2\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(search("UNSEEN SUBJECT REPORT"), "* SEARCH 2\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(search(fmt::format("LARGER {}", std::strlen(kFirst))), "* SEARCH 2\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(search("SENTON 1-Dec-2026"), "* SEARCH 2\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(services_->search_rows->cached_messages(), 2u);
    // Blob keys read whole rows, not the cache's.
    EXPECT_EQ(search("BODY pineapple"), "* SEARCH 2\r\nq OK SEARCH completed\r\n");

    send(*session, "c CREATE Box\r\n");
    deliver(demo_, "Box", kSecond);
    send(*session, "t SELECT Box\r\n");
    EXPECT_EQ(search("SUBJECT report"), "* SEARCH 1\r\nq OK SEARCH completed\r\n");
    send(*session, "u SELECT INBOX\r\n");
    send(*session, "d DELETE Box\r\n");
    send(*session, "e CREATE Box\r\n");
    deliver(demo_, "Box", kFirst);
    send(*session, "f SELECT Box\r\n");
    EXPECT_EQ(search("SUBJECT report"), "* SEARCH\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(search("FROM alice"), "* SEARCH 1\r\nq OK SEARCH completed\r\n");

    // A bound smaller than a mailbox: read whole each time, the same answers, nothing kept of it.
    services_->search_rows = std::make_shared<SearchRowCache>(1);
    send(*session, "g SELECT INBOX\r\n");
    EXPECT_EQ(search("SUBJECT report"), "* SEARCH 2\r\nq OK SEARCH completed\r\n");
    EXPECT_EQ(services_->search_rows->cached_messages(), 0u);
}

// Issue 12 item 9: SEARCH is case-insensitive in every script (RFC 9051 6.4.4, RFC 5051 i;unicode-casemap)
// over decoded text: RFC 2047 words, raw UTF-8 headers and charset-converted bodies.
// Issue 11: SEARCH BODY/TEXT/HEADER over a message larger than a search slice reads it in slices from the
// blob (transfer-decoded and charset-converted on the fly), and finds what the whole-message search finds:
// words in base64 and quoted-printable text parts, in a latin-1 part, and across a slice boundary; never
// in a non-text part.
TEST_F(ImapSessionTest, SearchOverALargeMessageReadsItInSlicesAndFindsTheSame) {
    auto filler = [](std::size_t octets) {
        std::string text;
        for (int i = 0; text.size() < octets; ++i) text += fmt::format("filler line number {} of the text\r\n", i);
        return text;
    };
    std::string straddle = filler(300 * 1024);
    straddle.resize(262144 - 5);  // slices start at the part's body: "straddling" crosses the first boundary
    straddle += "straddling word\r\n";
    const std::string message =
        "From: big@example.test\r\nSubject: large\r\nX-Big-Header: findme\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
        "--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
        filler(300 * 1024) + "Vi ses p=E5 m=F6tet\r\n" +
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
        mail::base64_encode(filler(300 * 1024) + "the needle is zanzibar\r\n") + "\r\n" +
        "--b\r\nContent-Type: text/plain\r\n\r\n" + straddle +
        "--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
        mail::base64_encode("not text: secretword") + "\r\n--b--\r\n";
    ASSERT_GT(message.size(), 900u * 1024);
    deliver(demo_, "INBOX", kFirst);
    deliver(demo_, "INBOX", message);
    auto session = logged_in();
    send(*session, "s SELECT INBOX\r\n");
    EXPECT_EQ(send(*session, "a SEARCH BODY zanzibar\r\n"), "* SEARCH 2\r\na OK SEARCH completed\r\n");
    EXPECT_EQ(send(*session, "b SEARCH BODY \"M\xC3\x96TET\"\r\n"), "* SEARCH 2\r\nb OK SEARCH completed\r\n");
    EXPECT_EQ(send(*session, "c SEARCH BODY straddling\r\n"), "* SEARCH 2\r\nc OK SEARCH completed\r\n");
    EXPECT_EQ(send(*session, "d SEARCH BODY secretword\r\n"), "* SEARCH\r\nd OK SEARCH completed\r\n");
    EXPECT_EQ(send(*session, "e SEARCH TEXT findme\r\n"), "* SEARCH 2\r\ne OK SEARCH completed\r\n");
    EXPECT_EQ(send(*session, "f SEARCH TEXT zanzibar\r\n"), "* SEARCH 2\r\nf OK SEARCH completed\r\n");
    EXPECT_EQ(send(*session, "g SEARCH HEADER X-Big-Header find\r\n"), "* SEARCH 2\r\ng OK SEARCH completed\r\n");
    EXPECT_EQ(send(*session, "h SEARCH BODY \"First body\"\r\n"), "* SEARCH 1\r\nh OK SEARCH completed\r\n");
    EXPECT_EQ(send(*session, "i SEARCH BODY nowhere-to-be-found\r\n"), "* SEARCH\r\ni OK SEARCH completed\r\n");
}

TEST_F(ImapSessionTest, SearchFoldsCaseInEveryScriptOverDecodedText) {
    deliver(demo_, "INBOX",
            "From: someone@example.test\r\nSubject: =?UTF-8?Q?=C3=85ke_m=C3=B6te?=\r\n\r\nplain\r\n");
    deliver(demo_, "INBOX",
            "From: \xC3\x85ke Str\xC3\xB6m <ake@example.test>\r\nSubject: hej\r\n\r\nplain\r\n");
    deliver(
        demo_, "INBOX",
        "From: x@example.test\r\nSubject: latin\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        "Vi ses p=E5 m=F6tet\r\n");
    deliver(demo_, "INBOX",
            "From: y@example.test\r\nSubject: =?utf-8?b?zqPOv8+GzrnOsQ==?=\r\n\r\nx\r\n");  // Σοφια
    auto session = logged_in();
    send(*session, "s SELECT INBOX\r\n");
    EXPECT_EQ(send(*session, "a SEARCH OR SUBJECT \"\xC3\xA5ke\" FROM \"\xC3\xA5ke\"\r\n"),
              "* SEARCH 1 2\r\na OK SEARCH completed\r\n");
    EXPECT_EQ(send(*session, "b SEARCH CHARSET UTF-8 TEXT {5}\r\nM\xC3\x96TE\r\n"),
              "+ Ready for literal data\r\n* SEARCH 1 3\r\nb OK SEARCH completed\r\n");
    EXPECT_EQ(send(*session, "c SEARCH BODY \"P\xC3\x85\"\r\n"), "* SEARCH 3\r\nc OK SEARCH completed\r\n");
    EXPECT_EQ(send(*session, "d SEARCH HEADER Subject \"\xCF\x83\xCE\x9F\xCE\xA6\"\r\n"),
              "* SEARCH 4\r\nd OK SEARCH completed\r\n");
    EXPECT_EQ(send(*session, "e SEARCH SUBJECT \"\xCE\xA3\xCE\xBF\xCF\x86\xCE\xB9\xCE\xB1\"\r\n"),
              "* SEARCH 4\r\ne OK SEARCH completed\r\n");
    EXPECT_EQ(send(*session, "f SEARCH SUBJECT \"ake\"\r\n"), "* SEARCH\r\nf OK SEARCH completed\r\n");
}

TEST_F(ImapSessionTest, ListPatternsAndMailboxManagement) {
    auto session = logged_in();
    EXPECT_THAT(send(*session, "a CREATE Work/Projects/Magpie\r\n"), Created("a"));
    EXPECT_EQ(send(*session, "b CREATE Work\r\n"), "b NO [ALREADYEXISTS] Mailbox already exists\r\n");
    EXPECT_EQ(send(*session, "c LIST \"\" %\r\n"),
              "* LIST (\\HasNoChildren \\Archive) \"/\" Archive\r\n"
              "* LIST (\\HasNoChildren \\Drafts) \"/\" Drafts\r\n"
              "* LIST (\\HasNoChildren) \"/\" INBOX\r\n"
              "* LIST (\\HasNoChildren \\Junk) \"/\" Junk\r\n"
              "* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n"
              "* LIST (\\HasNoChildren \\Trash) \"/\" Trash\r\n"
              "* LIST (\\HasChildren) \"/\" Work\r\n"
              "c OK LIST completed\r\n");
    EXPECT_EQ(send(*session, "d LIST Work/ *\r\n"),
              "* LIST (\\HasChildren) \"/\" Work/Projects\r\n"
              "* LIST (\\HasNoChildren) \"/\" Work/Projects/Magpie\r\n"
              "d OK LIST completed\r\n");
    EXPECT_EQ(send(*session, "e LIST \"\" \"\"\r\n"),
              "* LIST (\\Noselect) \"/\" \"\"\r\ne OK LIST completed\r\n");
    EXPECT_EQ(send(*session, "f RENAME Work Play\r\n"), "f OK RENAME completed\r\n");
    EXPECT_EQ(send(*session, "g LIST \"\" Play/%/%\r\n"),
              "* LIST (\\HasNoChildren) \"/\" Play/Projects/Magpie\r\ng OK LIST completed\r\n");
    EXPECT_EQ(send(*session, "h SUBSCRIBE Play/Projects\r\n"), "h OK SUBSCRIBE completed\r\n");
    EXPECT_EQ(send(*session, "h0 SUBSCRIBE Play\r\n"), "h0 OK SUBSCRIBE completed\r\n");
    EXPECT_EQ(send(*session, "h1 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" Play\r\n"),
              "* LIST (\\HasChildren \\Subscribed) \"/\" Play (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"
              "h1 OK LIST completed\r\n");
    EXPECT_EQ(send(*session, "h2 UNSUBSCRIBE Play\r\n"), "h2 OK UNSUBSCRIBE completed\r\n");
    EXPECT_EQ(
        send(*session, "i LIST (SUBSCRIBED RECURSIVEMATCH) \"\" Play\r\n"),
        "* LIST (\\HasChildren) \"/\" Play (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\ni OK LIST completed\r\n");
    // RFC 5258 3.5: Play is there only for Play/Projects; a pattern that lists Play/Projects too leaves it out
    // (Dovecot's imaptest, listext), one that lists another child keeps it.
    EXPECT_EQ(send(*session, "i1 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (Play Play/Projects)\r\n"),
              "* LIST (\\HasChildren \\Subscribed) \"/\" Play/Projects\r\ni1 OK LIST completed\r\n");
    EXPECT_EQ(send(*session, "i2 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (Play Play/Nothing)\r\n"),
              "* LIST (\\HasChildren) \"/\" Play (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\ni2 OK LIST completed\r\n");
    EXPECT_THAT(send(*session, "k LIST (SPECIAL-USE) \"\" * RETURN (STATUS (MESSAGES))\r\n"),
                HasSubstr("* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n* STATUS Sent (MESSAGES 0)\r\n"));
    EXPECT_EQ(send(*session, "l DELETE INBOX\r\n"), "l NO [CANNOT] INBOX cannot be deleted\r\n");
    EXPECT_EQ(send(*session, "m DELETE Play/Projects/Magpie\r\n"), "m OK DELETE completed\r\n");
    EXPECT_EQ(send(*session, "n DELETE Nowhere\r\n"), "n NO [NONEXISTENT] No such mailbox\r\n");
    EXPECT_EQ(send(*session, "o STATUS INBOX (MESSAGES UIDNEXT UNSEEN SIZE)\r\n"),
              "* STATUS INBOX (MESSAGES 0 UIDNEXT 1 UNSEEN 0 SIZE 0)\r\no OK STATUS completed\r\n");
    EXPECT_EQ(send(*session, "p NAMESPACE\r\n"),
              "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\np OK NAMESPACE completed\r\n");
    EXPECT_EQ(send(*session, "q GETQUOTAROOT INBOX\r\n"),
              "* QUOTAROOT INBOX \"\"\r\n* QUOTA \"\" (STORAGE 0 1024)\r\nq OK GETQUOTA completed\r\n");
}

TEST_F(ImapSessionTest, AUserCannotReachAnotherUsersMail) {
    deliver(other_, "INBOX", kSecond);
    auto session = logged_in();
    for (std::string name :
         {"other@example.test/INBOX", "../other@example.test/INBOX", "#users/other/INBOX"}) {
        EXPECT_THAT(send(*session, fmt::format("s SELECT \"{}\"\r\n", name)),
                    HasSubstr("s NO [NONEXISTENT]"));
        EXPECT_THAT(send(*session, fmt::format("t STATUS \"{}\" (MESSAGES)\r\n", name)), HasSubstr("t NO"));
    }
    EXPECT_THAT(send(*session, "l LIST \"\" *\r\n"), Not(HasSubstr("other")));
    send(*session, "s SELECT INBOX\r\n");
    EXPECT_EQ(send(*session, "f UID FETCH 1:* UID\r\n"), "f OK UID FETCH completed\r\n");
    EXPECT_EQ(send(*session, "q SEARCH ALL\r\n"), "* SEARCH\r\nq OK SEARCH completed\r\n");
}

TEST_F(ImapSessionTest, CapabilityIdAndUnknownCommands) {
    auto session = logged_in();
    auto caps = send(*session, "c CAPABILITY\r\n");
    EXPECT_THAT(caps, HasSubstr("* CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ ENABLE ID IDLE"));
    EXPECT_THAT(caps, HasSubstr("APPENDLIMIT=67108864\r\nc OK CAPABILITY completed\r\n"));
    EXPECT_THAT(caps, Not(HasSubstr("AUTH=")));
    EXPECT_EQ(send(*session, "i ID (\"name\" \"mutt\")\r\n"),
              "* ID (\"name\" \"Magpie\" \"version\" \"0.1.0\")\r\ni OK ID completed\r\n");
    EXPECT_THAT(send(*session, "x FROBNICATE\r\n"), ::testing::StartsWith("x BAD"));
    EXPECT_EQ(send(*session, "n NOOP\r\n"), "n OK Done\r\n");
}

TEST_F(ImapSessionTest, SynchronizingLiteralIsAskedForThenStored) {
    auto session = logged_in();
    EXPECT_EQ(send(*session, "a APPEND Drafts (\\Draft) \"15-Jan-2027 09:30:00 +0100\" {7}\r\n"),
              "+ Ready for literal data\r\n");
    EXPECT_EQ(send(*session, "Draft!\n\r\n"), fmt::format("a OK [APPENDUID {} 1] APPEND completed\r\n",
                                                          mailbox(demo_, "Drafts").uidvalidity));
    auto stored = store_->find_message(mailbox(demo_, "Drafts").id, 1);
    ASSERT_TRUE(stored.ok());
    EXPECT_EQ(stored->internal_date, kNow + 30 * 60);  // 09:30 +0100 is 08:30 UTC
    EXPECT_TRUE(std::ranges::find(stored->flags, "\\Draft") != stored->flags.end());
}

// Issue 12 item 1: LITERAL+ (RFC 7888); past the APPENDLIMIT the literal is dropped and refused TOOBIG.
TEST_F(ImapSessionTest, NonSynchronizingLiteralsAreTakenUpToTheAppendLimit) {
    limits_.max_literal_octets = 2000;
    auto session = logged_in();
    EXPECT_THAT(send(*session, "c CAPABILITY\r\n"), HasSubstr(" LITERAL+ "));
    const std::string message = "Subject: plus\r\n\r\n" + std::string(1500, 'p') + "\r\n";
    EXPECT_EQ(
        send(*session, fmt::format("a APPEND Drafts {{{}+}}\r\n{}\r\n", message.size(), message)),
        fmt::format("a OK [APPENDUID {} 1] APPEND completed\r\n", mailbox(demo_, "Drafts").uidvalidity));
    const std::string big = "b LOGOUT\r\n" + std::string(5000, 'q');
    EXPECT_EQ(send(*session, fmt::format("b APPEND Drafts {{{}+}}\r\n{}\r\nc NOOP\r\n", big.size(), big)),
              "b NO [TOOBIG] literal too large\r\nc OK Done\r\n");
    EXPECT_EQ(session->state(), Session::State::authenticated);
    EXPECT_EQ(store_->find_message(mailbox(demo_, "Drafts").id, 1)->size, message.size());
}

TEST_F(ImapSessionTest, UidExpungeRemovesOnlyTheNamedMessages) {
    deliver(demo_, "INBOX", kFirst, {"\\Deleted"});
    deliver(demo_, "INBOX", kSecond, {"\\Deleted"});
    auto session = logged_in();
    send(*session, "s SELECT INBOX\r\n");
    EXPECT_EQ(send(*session, "x UID EXPUNGE 2\r\n"), "* 2 EXPUNGE\r\nx OK EXPUNGE completed\r\n");
    EXPECT_EQ(send(*session, "y UNSELECT\r\n"), "y OK UNSELECT completed\r\n");
    EXPECT_EQ(mailbox(demo_, "INBOX").message_count, 1u);
}

TEST_F(ImapSessionTest, Rev2SelectListsTheMailboxAndHidesRecent) {
    deliver(demo_, "INBOX", kFirst);
    auto session = logged_in();
    EXPECT_EQ(send(*session, "e ENABLE IMAP4rev2 CONDSTORE\r\n"),
              "* ENABLED IMAP4rev2 CONDSTORE\r\ne OK ENABLE completed\r\n");
    auto selected = send(*session, "s SELECT Sent\r\n");
    EXPECT_THAT(selected, HasSubstr("* 0 EXISTS\r\n* LIST (\\Sent) \"/\" Sent\r\n"));
    // Issue 12 item 6: a mailbox never changed has HIGHESTMODSEQ 1, never NOMODSEQ.
    EXPECT_THAT(selected, HasSubstr("* OK [HIGHESTMODSEQ 1] Highest\r\n"));
    EXPECT_THAT(selected, Not(HasSubstr("NOMODSEQ")));
    EXPECT_THAT(selected, Not(HasSubstr("RECENT")));
    EXPECT_THAT(send(*session, "t SELECT INBOX\r\n"), HasSubstr("* OK [CLOSED] Previous mailbox closed\r\n"));
    EXPECT_EQ(send(*session, "f FETCH 1 FLAGS\r\n"),
              fmt::format("* 1 FETCH (FLAGS ())\r\nf OK FETCH completed\r\n"));
    EXPECT_EQ(send(*session, "q SEARCH UNSEEN\r\n"),
              "* ESEARCH (TAG \"q\") ALL 1\r\nq OK SEARCH completed\r\n");
}

TEST_F(ImapSessionTest, MailboxNamesAreModifiedUtf7UnlessUtf8IsEnabled) {
    auto rev1 = logged_in();
    EXPECT_THAT(send(*rev1, "a CREATE &AMQ-rger\r\n"), Created("a"));
    EXPECT_EQ(send(*rev1, "b LIST \"\" &AMQ-*\r\n"),
              "* LIST (\\HasNoChildren) \"/\" &AMQ-rger\r\nb OK LIST completed\r\n");
    auto rev2 = logged_in();
    send(*rev2, "e ENABLE IMAP4rev2\r\n");
    EXPECT_EQ(send(*rev2, "b LIST \"\" \"\xC3\x84*\"\r\n"),
              "* LIST (\\HasNoChildren) \"/\" \"\xC3\x84rger\"\r\nb OK LIST completed\r\n");
    EXPECT_TRUE(store_->find_mailbox(demo_, "\xC3\x84rger").ok());
}

// Issue 12 item 8: a name that is not modified UTF-7 names no mailbox: NO, not BAD (Dovecot's answer).
TEST_F(ImapSessionTest, UndecodableMailboxNamesGetNoAndListNothing) {
    auto rev2 = logged_in();
    send(*rev2, "e ENABLE IMAP4rev2\r\n");
    EXPECT_THAT(send(*rev2, "c CREATE foo&bar\r\n"), Created("c"));  // UTF-8 "foo&bar"
    auto session = logged_in();
    send(*session, "s SELECT INBOX\r\n");
    EXPECT_EQ(send(*session, "a SELECT foo&bar\r\n"),
              "a NO [NONEXISTENT] Mailbox name is not valid modified UTF-7\r\n");
    EXPECT_EQ(session->state(), Session::State::authenticated);  // a failed SELECT closes the old one
    EXPECT_EQ(send(*session, "b LIST \"\" foo&bar*\r\n"), "b OK LIST completed\r\n");
    EXPECT_EQ(send(*session, "b LIST \"foo&\" *\r\n"), "b OK LIST completed\r\n");
    EXPECT_EQ(send(*session, "l LSUB \"\" foo&bar\r\n"), "l OK LSUB completed\r\n");
    EXPECT_EQ(send(*session, "c CREATE foo&baz\r\n"),
              "c NO [CANNOT] Mailbox name is not valid modified UTF-7\r\n");
    EXPECT_EQ(send(*session, "d STATUS foo&bar (MESSAGES)\r\n"),
              "d NO [NONEXISTENT] Mailbox name is not valid modified UTF-7\r\n");
    EXPECT_EQ(send(*session, "f APPEND foo&bar {1+}\r\nx\r\n"),
              "f NO [NONEXISTENT] Mailbox name is not valid modified UTF-7\r\n");
    EXPECT_EQ(send(*session, "g DELETE foo&bar\r\n"),
              "g NO [NONEXISTENT] Mailbox name is not valid modified UTF-7\r\n");
    EXPECT_EQ(send(*session, "h SELECT \"a\x01z\"\r\n"),
              "h NO [NONEXISTENT] Mailbox name holds a control character\r\n");
    EXPECT_THAT(send(*session, "i SELECT foo&-bar\r\n"), HasSubstr("i OK [READ-WRITE]"));
}

// Issue 12 item 2: BINARY[] and BINARY.SIZE[] are the whole message (RFC 3516 4.1, RFC 9051 6.4.5); a
// part that does not exist is an empty string, not NO [UNKNOWN-CTE]; a multipart part is its octets.
TEST_F(ImapSessionTest, BinaryOfTheWholeMessageAndOfMissingParts) {
    const std::string multi =
        "From: a@example.test\r\nSubject: two\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
        "--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        "--b\r\nContent-Type: text/plain\r\n\r\nworld\r\n--b--\r\n";
    deliver(demo_, "INBOX", multi);
    deliver(demo_, "INBOX", kSecond);
    auto session = logged_in();
    send(*session, "s SELECT INBOX\r\n");
    EXPECT_EQ(send(*session, "a FETCH 1 (BINARY.SIZE[] RFC822.SIZE)\r\n"),
              fmt::format("* 1 FETCH (BINARY.SIZE[] {0} RFC822.SIZE {0})\r\na OK FETCH completed\r\n",
                          multi.size()));
    EXPECT_EQ(
        send(*session, "b FETCH 1 BINARY.PEEK[]\r\n"),
        fmt::format("* 1 FETCH (BINARY[] {{{}}}\r\n{})\r\nb OK FETCH completed\r\n", multi.size(), multi));
    EXPECT_EQ(send(*session, "c FETCH 1 (BINARY.PEEK[3] BINARY.SIZE[3] BINARY.PEEK[1.2] BINARY.PEEK[2])\r\n"),
              "* 1 FETCH (BINARY[3] {0}\r\n BINARY.SIZE[3] 0 BINARY[1.2] {0}\r\n BINARY[2] {5}\r\nworld)\r\n"
              "c OK FETCH completed\r\n");
    // A single-part message: BINARY[] is still the whole message, BINARY[1] its decoded body.
    EXPECT_EQ(send(*session, "d FETCH 2 (BINARY.SIZE[] BINARY.SIZE[1] BINARY.SIZE[2])\r\n"),
              fmt::format("* 2 FETCH (BINARY.SIZE[] {} BINARY.SIZE[1] 16 BINARY.SIZE[2] 0)\r\n"
                          "d OK FETCH completed\r\n",
                          std::strlen(kSecond)));
    EXPECT_EQ(send(*session, "e FETCH 1 BINARY.PEEK[]<2.5>\r\n"),
              "* 1 FETCH (BINARY[]<2> {5}\r\nom: a)\r\ne OK FETCH completed\r\n");
}

// Issue 12 item 3 (the reading side): mail stored with a raw NUL never puts it in a plain literal; BINARY
// gives the real octets in a literal8 (RFC 3516 4.2).
TEST_F(ImapSessionTest, NulInStoredMailIsNeverWrittenInAPlainLiteral) {
    using namespace std::string_literals;
    const std::string message =
        "From: a@example.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
        "--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        "--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        "A\0B\r\n--b--\r\n"s;
    deliver(demo_, "INBOX", message);
    auto session = logged_in();
    send(*session, "s SELECT INBOX\r\n");
    auto body = send(*session, "a FETCH 1 (BODY.PEEK[] BODY.PEEK[2])\r\n");
    EXPECT_EQ(body.find('\0'), std::string::npos);
    EXPECT_THAT(body, HasSubstr(fmt::format("BODY[] {{{}}}\r\n", message.size())));
    EXPECT_THAT(body, HasSubstr("BODY[2] {3}\r\nA\x80"
                                "B)"));
    EXPECT_EQ(send(*session, "b FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2])\r\n"),
              "* 1 FETCH (BINARY[2] ~{3}\r\nA\0B BINARY.SIZE[2] 3)\r\nb OK FETCH completed\r\n"s);
}

// Issue 12 item 7: a keyword the session has not announced gets FLAGS and PERMANENTFLAGS first
// (RFC 3501 7.2.6), whether this session set it (even .SILENT), another did, or it came with new mail.
TEST_F(ImapSessionTest, NewKeywordsAreAnnouncedBeforeTheFetchThatShowsThem) {
    deliver(demo_, "INBOX", kFirst);
    auto session = logged_in();
    send(*session, "e ENABLE IMAP4rev2\r\n");
    send(*session, "s SELECT INBOX\r\n");
    const std::string system = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";
    auto announced = [&](const std::string& keywords) {
        return fmt::format("* FLAGS ({0} {1})\r\n* OK [PERMANENTFLAGS ({0} {1} \\*)] Flags permitted\r\n",
                           system, keywords);
    };
    EXPECT_EQ(send(*session, "a STORE 1 +FLAGS ($NewOne)\r\n"),
              announced("$NewOne") + "* 1 FETCH (FLAGS ($NewOne))\r\na OK STORE completed\r\n");
    EXPECT_EQ(send(*session, "b STORE 1 +FLAGS.SILENT ($Other)\r\n"),
              announced("$NewOne $Other") + "b OK STORE completed\r\n");
    EXPECT_EQ(send(*session, "c STORE 1 -FLAGS ($Other)\r\n"),
              "* 1 FETCH (FLAGS ($NewOne))\r\nc OK STORE completed\r\n");  // nothing new: no FLAGS
    auto other = logged_in();
    send(*other, "s SELECT INBOX\r\n");
    send(*other, "a STORE 1 +FLAGS ($Third)\r\n");
    EXPECT_EQ(send(*session, "n NOOP\r\n"),
              announced("$NewOne $Other $Third") + "* 1 FETCH (FLAGS ($NewOne $Third))\r\nn OK Done\r\n");
    deliver(demo_, "INBOX", kSecond, {"$Fresh"});
    EXPECT_EQ(send(*session, "o NOOP\r\n"),
              announced("$NewOne $Other $Third $Fresh") + "* 2 EXISTS\r\no OK Done\r\n");
}

// Issue 12 item 7: MOVE into the selected mailbox is COPY + EXPUNGE with COPYUID (RFC 6851 3.3; Dovecot).
TEST_F(ImapSessionTest, MoveIntoTheSelectedMailboxIsCopyThenExpunge) {
    deliver(demo_, "INBOX", kFirst, {"\\Flagged"});
    deliver(demo_, "INBOX", kSecond);
    auto session = logged_in();
    send(*session, "e ENABLE IMAP4rev2\r\n");
    send(*session, "s SELECT INBOX\r\n");
    const auto inbox = mailbox(demo_, "INBOX");
    EXPECT_EQ(
        send(*session, "m MOVE 1 INBOX\r\n"),
        fmt::format("* OK [COPYUID {} 1 3] Moved\r\n* 1 EXPUNGE\r\n* 2 EXISTS\r\nm OK MOVE completed\r\n",
                    inbox.uidvalidity));
    EXPECT_EQ(
        send(*session, "f FETCH 1:* (UID FLAGS)\r\n"),
        "* 1 FETCH (UID 2 FLAGS ())\r\n* 2 FETCH (UID 3 FLAGS (\\Flagged))\r\nf OK FETCH completed\r\n");
    EXPECT_EQ(*store_->read_blob(store_->find_message(inbox.id, 3)->blob_id), kFirst);
    EXPECT_FALSE(store_->find_message(inbox.id, 1).ok());
}

// Issue 11: a MOVE into the selected mailbox renumbers the message and keeps its Email (RFC 8474 EMAILID,
// JMAP id), in one transaction; the mailbox's counters stay right.
TEST_F(ImapSessionTest, MoveIntoTheSelectedMailboxKeepsTheEmailId) {
    const auto before = deliver(demo_, "INBOX", kFirst, {"\\Flagged"});
    deliver(demo_, "INBOX", kSecond);
    const auto inbox = mailbox(demo_, "INBOX");
    const auto email = store_->find_message(inbox.id, before)->email_id;
    auto session = logged_in();
    send(*session, "e ENABLE IMAP4rev2\r\n");
    send(*session, "s SELECT INBOX\r\n");
    EXPECT_EQ(send(*session, "f UID FETCH 1 (EMAILID THREADID)\r\n"),
              fmt::format("* 1 FETCH (UID 1 EMAILID (e{0}) THREADID (t{1}))\r\nf OK UID FETCH completed\r\n", email,
                          store_->find_message(inbox.id, before)->thread_id));
    EXPECT_EQ(
        send(*session, "m UID MOVE 1 INBOX\r\n"),
        fmt::format("* OK [COPYUID {} 1 3] Moved\r\n* 1 EXPUNGE\r\n* 2 EXISTS\r\nm OK MOVE completed\r\n",
                    inbox.uidvalidity));
    EXPECT_EQ(send(*session, "g UID FETCH 3 (EMAILID FLAGS)\r\n"),
              fmt::format("* 2 FETCH (UID 3 EMAILID (e{}) FLAGS (\\Flagged))\r\ng OK UID FETCH completed\r\n", email));
    EXPECT_EQ(store_->find_message(inbox.id, 3)->email_id, email);
    auto status = store_->mailbox_status(inbox.id);
    ASSERT_TRUE(status.ok());
    EXPECT_EQ(status->messages, 2u);
    EXPECT_EQ(status->unseen, 2u);
    EXPECT_EQ(status->size, std::strlen(kFirst) + std::strlen(kSecond));
    auto found = store_->find_emails(demo_, {email});
    ASSERT_TRUE(found.ok());
    ASSERT_EQ(found->size(), 1u);
    ASSERT_EQ(found->front().mailboxes.size(), 1u);
    EXPECT_EQ(found->front().mailboxes.front().uid, 3u);
}

// RFC 8474: OBJECTID is advertised; EMAILID/THREADID search keys find by the store's ids; STATUS and SELECT
// name the mailbox; an id of another kind or shape matches nothing.
TEST_F(ImapSessionTest, ObjectIdsNameTheStoresObjects) {
    deliver(demo_, "INBOX", kFirst);
    deliver(demo_, "INBOX", kSecond);
    const auto inbox = mailbox(demo_, "INBOX");
    const auto second = *store_->find_message(inbox.id, 2);
    auto session = logged_in();
    EXPECT_THAT(send(*session, "c CAPABILITY\r\n"), HasSubstr(" OBJECTID"));
    EXPECT_EQ(send(*session, "t STATUS INBOX (MESSAGES MAILBOXID)\r\n"),
              fmt::format("* STATUS INBOX (MESSAGES 2 MAILBOXID (m{}))\r\nt OK STATUS completed\r\n", inbox.id));
    send(*session, "s SELECT INBOX\r\n");
    EXPECT_EQ(send(*session, fmt::format("a UID SEARCH EMAILID e{}\r\n", second.email_id)),
              "* SEARCH 2\r\na OK UID SEARCH completed\r\n");
    EXPECT_EQ(send(*session, fmt::format("b SEARCH THREADID t{}\r\n", second.thread_id)),
              "* SEARCH 2\r\nb OK SEARCH completed\r\n");
    EXPECT_EQ(send(*session, fmt::format("d SEARCH EMAILID t{}\r\n", second.email_id)),
              "* SEARCH\r\nd OK SEARCH completed\r\n");
    EXPECT_EQ(send(*session, "e SEARCH OR EMAILID e0 EMAILID x-y_z\r\n"), "* SEARCH\r\ne OK SEARCH completed\r\n");
}

// Issue 11: the session asks for store work with typed requests and waits holding no thread: nothing of a
// command (nor of the pipelined one after it) is written until its request is answered, and an APPEND's
// commit is a Deliver request the IO loop hands to the group committer.
TEST_F(ImapSessionTest, StoreWorkIsAskedForWithTypedRequestsAndAnsweredInOrder) {
    auto session = logged_in();
    session->feed("a STATUS INBOX (MESSAGES)\r\nb APPEND INBOX {12+}\r\nSubject: x\r\n\r\n");
    ASSERT_TRUE(session->has_work());
    session->run(kNow);
    auto status = session->take_request();
    ASSERT_TRUE(status);
    ASSERT_TRUE(std::holds_alternative<request::MailboxStatus>(*status));
    EXPECT_EQ(std::get<request::MailboxStatus>(*status).name, "INBOX");
    EXPECT_TRUE(session->waiting());
    EXPECT_FALSE(session->has_work());
    EXPECT_FALSE(session->take_request());  // taken once
    EXPECT_EQ(session->take_output(), "");
    session->answer(perform(*services_, std::move(*status)), kNow);
    EXPECT_EQ(session->take_output(), "* STATUS INBOX (MESSAGES 0)\r\na OK STATUS completed\r\n");

    ASSERT_TRUE(session->has_work());
    session->run(kNow);
    auto target = session->take_request();
    ASSERT_TRUE(target && std::holds_alternative<request::MailboxUsage>(*target));
    session->answer(perform(*services_, std::move(*target)), kNow);
    auto commit = session->take_request();
    ASSERT_TRUE(commit && std::holds_alternative<request::Deliver>(*commit));
    EXPECT_EQ(session->take_output(), "");  // not durable yet: no OK
    std::promise<Result<store::Delivered>> committed;
    store_->deliver(std::move(std::get<request::Deliver>(*commit).delivery),
                    [&](Result<store::Delivered> result) { committed.set_value(std::move(result)); });
    session->answer(delivered_answer(committed.get_future().get()), kNow);
    EXPECT_EQ(session->take_output(),
              fmt::format("b OK [APPENDUID {} 1] APPEND completed\r\n", mailbox(demo_, "INBOX").uidvalidity));
    EXPECT_FALSE(session->has_work());
    EXPECT_FALSE(session->waiting());
}

// Issue 11: an APPEND literal above spool_append_octets goes to a store spool as it arrives, bare LFs made
// CRLF across the pieces it came in, and becomes the blob; nothing is left in the spool directory.
TEST_F(ImapSessionTest, ALargeAppendIsSpooledAndStoredAsSent) {
    auto session = logged_in();
    std::string body;
    for (int i = 0; body.size() < 400 * 1024; ++i) body += fmt::format("line {} of a large message\n", i);
    const std::string message = "Subject: big\nMessage-ID: <big@example.test>\n\n" + body;
    EXPECT_EQ(send(*session, fmt::format("a APPEND INBOX {{{}}}\r\n", message.size())), "+ Ready for literal data\r\n");
    // In odd pieces, so a CR/LF decision spans two of them.
    std::string out;
    for (std::size_t at = 0; at < message.size(); at += 4093) out += send(*session, message.substr(at, 4093));
    out += send(*session, "\r\n");
    const auto inbox = mailbox(demo_, "INBOX");
    EXPECT_EQ(out, fmt::format("a OK [APPENDUID {} 1] APPEND completed\r\n", inbox.uidvalidity));
    std::string expected;
    for (char c : message) {
        if (c == '\n') expected += '\r';
        expected += c;
    }
    auto stored = store_->find_message(inbox.id, 1);
    ASSERT_TRUE(stored.ok());
    EXPECT_EQ(stored->size, expected.size());
    EXPECT_EQ(stored->summary.subject, "big");
    EXPECT_EQ(*store_->read_blob(stored->blob_id), expected);
    EXPECT_EQ(stored->blob_id, store::blob_id_of(expected));
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_ / "blobs"))
        EXPECT_THAT(entry.path().filename().string(), Not(HasSubstr("spool"))) << entry.path();
    // A spooled literal with a NUL octet is refused as a small one is (RFC 9051 9: CHAR8), and its spool goes.
    std::string with_nul = message;
    with_nul[100] = '\0';
    send(*session, fmt::format("b APPEND INBOX {{{}}}\r\n", with_nul.size()));
    EXPECT_THAT(send(*session, with_nul + "\r\n"), HasSubstr("b BAD"));
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_ / "blobs"))
        EXPECT_THAT(entry.path().filename().string(), Not(HasSubstr("spool"))) << entry.path();
}

// Issue 11: a large literal8 APPEND (RFC 3516) is spooled too: its binary part becomes base64 and its bare
// LFs CRLF, streamed from the spool into a second one, exactly as a small literal8 is stored; no spool is left.
TEST_F(ImapSessionTest, ALargeLiteral8AppendIsSpooledAndReencoded) {
    using namespace std::string_literals;
    std::string binary;
    for (int i = 0; binary.size() < 300 * 1024; ++i) binary += static_cast<char>(i * 31 % 256);
    const std::string message =
        "Subject: bin\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n"
        "--b\nContent-Type: text/plain\n\nhi\n"
        "--b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: binary\n\n"s +
        binary + "\n--b--\n";
    auto expected = mail::reencode_binary_parts(message);
    ASSERT_TRUE(expected);
    const std::string stored_form = mail::bare_lf_to_crlf(*expected);
    auto session = logged_in();
    EXPECT_EQ(send(*session, fmt::format("a APPEND INBOX ~{{{}}}\r\n", message.size())), "+ Ready for literal data\r\n");
    std::string out;
    for (std::size_t at = 0; at < message.size(); at += 4093) out += send(*session, message.substr(at, 4093));
    out += send(*session, "\r\n");
    const auto inbox = mailbox(demo_, "INBOX");
    EXPECT_EQ(out, fmt::format("a OK [APPENDUID {} 1] APPEND completed\r\n", inbox.uidvalidity));
    auto stored = store_->find_message(inbox.id, 1);
    ASSERT_TRUE(stored.ok());
    EXPECT_EQ(stored->summary.subject, "bin");
    EXPECT_EQ(stored->size, stored_form.size());
    EXPECT_TRUE(*store_->read_blob(stored->blob_id) == stored_form);
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_ / "blobs"))
        EXPECT_THAT(entry.path().filename().string(), Not(HasSubstr("spool"))) << entry.path();
}

// Issue 12 item 4: \Recent is kept in the store: the first SELECT claims it, EXAMINE only looks, and a
// mailbox deleted and created again under the same name starts afresh.
TEST_F(ImapSessionTest, RecentIsKeptInTheStoreAndSurvivesRecreation) {
    auto session = logged_in();
    auto append = [&](std::string_view mailbox) {
        return send(*session, fmt::format("a APPEND {} {{12+}}\r\nSubject: x\r\n\r\n", mailbox));
    };
    EXPECT_THAT(send(*session, "c CREATE rec\r\n"), Created("c"));
    for (int i = 0; i < 3; ++i) EXPECT_THAT(append("rec"), HasSubstr("a OK [APPENDUID"));
    EXPECT_EQ(send(*session, "t STATUS rec (RECENT MESSAGES)\r\n"),
              "* STATUS rec (RECENT 3 MESSAGES 3)\r\nt OK STATUS completed\r\n");
    EXPECT_THAT(send(*session, "e EXAMINE rec\r\n"), HasSubstr("* 3 EXISTS\r\n* 3 RECENT\r\n"));
    EXPECT_THAT(send(*session, "s SELECT rec\r\n"), HasSubstr("* 3 EXISTS\r\n* 3 RECENT\r\n"));
    EXPECT_EQ(send(*session, "t STATUS rec (RECENT)\r\n"),
              "* STATUS rec (RECENT 3)\r\nt OK STATUS completed\r\n");
    EXPECT_EQ(send(*session, "k CLOSE\r\n"), "k OK CLOSE completed\r\n");
    // Claimed: another session (or this one after a restart) sees none recent.
    auto other = logged_in();
    EXPECT_THAT(send(*other, "s SELECT rec\r\n"), HasSubstr("* 3 EXISTS\r\n* 0 RECENT\r\n"));
    send(*other, "u UNSELECT\r\n");
    EXPECT_EQ(send(*session, "d DELETE rec\r\n"), "d OK DELETE completed\r\n");
    EXPECT_THAT(send(*session, "c CREATE rec\r\n"), Created("c"));
    for (int i = 0; i < 2; ++i) EXPECT_THAT(append("rec"), HasSubstr("a OK [APPENDUID"));
    EXPECT_EQ(send(*session, "t STATUS rec (RECENT)\r\n"),
              "* STATUS rec (RECENT 2)\r\nt OK STATUS completed\r\n");
    // New mail while selected is recent to the session that sees it first.
    EXPECT_THAT(send(*other, "s SELECT rec\r\n"), HasSubstr("* 2 EXISTS\r\n* 2 RECENT\r\n"));
    EXPECT_EQ(append("rec"),
              fmt::format("a OK [APPENDUID {} 3] APPEND completed\r\n", mailbox(demo_, "rec").uidvalidity));
    EXPECT_EQ(send(*other, "n NOOP\r\n"), "* 3 EXISTS\r\n* 3 RECENT\r\nn OK Done\r\n");
}

// Issue 12 item 5: subscriptions are the client's names (RFC 3501 6.3.6, 6.3.9; RFC 5258 3.1).
TEST_F(ImapSessionTest, SubscriptionsAreNamesTheClientKeeps) {
    auto session = logged_in();
    EXPECT_THAT(send(*session, "c CREATE gone\r\n"), Created("c"));
    EXPECT_EQ(send(*session, "l LSUB \"\" gone\r\n"),
              "l OK LSUB completed\r\n");  // CREATE does not subscribe
    EXPECT_EQ(send(*session, "s SUBSCRIBE gone\r\n"), "s OK SUBSCRIBE completed\r\n");
    EXPECT_EQ(send(*session, "d DELETE gone\r\n"), "d OK DELETE completed\r\n");
    EXPECT_EQ(send(*session, "l LSUB \"\" gone\r\n"), "* LSUB () \"/\" gone\r\nl OK LSUB completed\r\n");
    EXPECT_EQ(send(*session, "m LIST (SUBSCRIBED) \"\" g*\r\n"),
              "* LIST (\\NonExistent \\Subscribed) \"/\" gone\r\nm OK LIST completed\r\n");
    EXPECT_EQ(send(*session, "n LIST \"\" g*\r\n"), "n OK LIST completed\r\n");
    // An unsubscribed parent of a subscribed child: "%" shows it \Noselect, "*" does not.
    EXPECT_THAT(send(*session, "c CREATE par/child\r\n"), Created("c"));
    EXPECT_EQ(send(*session, "s SUBSCRIBE par/child\r\n"), "s OK SUBSCRIBE completed\r\n");
    EXPECT_EQ(send(*session, "l LSUB \"\" p%\r\n"),
              "* LSUB (\\Noselect) \"/\" par\r\nl OK LSUB completed\r\n");
    EXPECT_EQ(send(*session, "l LSUB \"\" p*\r\n"), "* LSUB () \"/\" par/child\r\nl OK LSUB completed\r\n");
    EXPECT_EQ(send(*session, "l LSUB par/ %\r\n"), "* LSUB () \"/\" par/child\r\nl OK LSUB completed\r\n");
    EXPECT_EQ(send(*session, "r LIST (SUBSCRIBED RECURSIVEMATCH) \"\" p%\r\n"),
              "* LIST (\\HasChildren) \"/\" par (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\nr OK LIST completed\r\n");
    EXPECT_EQ(send(*session, "u UNSUBSCRIBE par\r\n"),
              "u OK UNSUBSCRIBE completed\r\n");  // was not: still OK
    EXPECT_EQ(send(*session, "u UNSUBSCRIBE gone\r\n"), "u OK UNSUBSCRIBE completed\r\n");
    EXPECT_EQ(send(*session, "m LIST (SUBSCRIBED) \"\" g*\r\n"), "m OK LIST completed\r\n");
    EXPECT_EQ(send(*session, "v LIST \"\" p* RETURN (SUBSCRIBED)\r\n"),
              "* LIST (\\HasChildren) \"/\" par\r\n* LIST (\\HasNoChildren \\Subscribed) \"/\" par/child\r\n"
              "v OK LIST completed\r\n");
}

// Narrow reads: a FETCH of whole rows reads them in batches of the UIDs asked (find_messages), across
// batch boundaries and with a message expunged by another session in the middle.
// An item named twice is answered once, as Dovecot does: a line of repeated BODY[] items asked the whole
// mailbox many times over. BODY.PEEK[TEXT] and BODY[TEXT] are one item that sets \Seen.
TEST_F(ImapSessionTest, FetchAnswersEachItemOnce) {
    deliver(demo_, "INBOX", kFirst);
    auto session = logged_in();
    send(*session, "s SELECT INBOX\r\n");
    EXPECT_EQ(send(*session, "f FETCH 1 (UID UID RFC822.SIZE UID RFC822.SIZE)\r\n"),
              fmt::format("* 1 FETCH (UID 1 RFC822.SIZE {})\r\nf OK FETCH completed\r\n", std::strlen(kFirst)));
    EXPECT_EQ(send(*session, "f FETCH 1 (BODY.PEEK[TEXT] BODY[TEXT] BODY.PEEK[TEXT]<0.5> BODY.PEEK[TEXT]<0.5>)\r\n"),
              "* 1 FETCH (BODY[TEXT] {17}\r\nFirst body line\r\n BODY[TEXT]<0> {5}\r\nFirst FLAGS (\\Seen \\Recent))\r\n"
              "f OK FETCH completed\r\n");
}

TEST_F(ImapSessionTest, FetchReadsRowsInBatchesOfTheUidsAsked) {
    for (int i = 0; i < 300; ++i) deliver(demo_, "INBOX", kFirst);
    auto session = logged_in();
    send(*session, "e ENABLE IMAP4rev2\r\n");
    send(*session, "s SELECT INBOX\r\n");
    auto other = logged_in();
    send(*other, "s SELECT INBOX\r\n");
    send(*other, "d UID STORE 260 +FLAGS.SILENT (\\Deleted)\r\n");
    send(*other, "x EXPUNGE\r\n");
    auto out = send(*session, "f FETCH 1:* (UID RFC822.SIZE)\r\n");
    std::size_t responses = 0;
    for (std::size_t at = out.find(" FETCH (UID "); at != std::string::npos;
         at = out.find(" FETCH (UID ", at + 1))
        ++responses;
    EXPECT_EQ(responses, 299u);
    EXPECT_THAT(out, HasSubstr(fmt::format("* 300 FETCH (UID 300 RFC822.SIZE {})\r\n", std::strlen(kFirst))));
    EXPECT_THAT(out, Not(HasSubstr("UID 260 ")));
    // RFC 5530: the code that tells the client another session expunged it (and imaptest's wording).
    EXPECT_THAT(out, HasSubstr("f NO [EXPUNGEISSUED] Some of the requested messages no longer exist\r\n"));
    EXPECT_EQ(send(*session, "u UID FETCH 255:258 (RFC822.SIZE)\r\n"),
              fmt::format("* 255 FETCH (UID 255 RFC822.SIZE {0})\r\n* 256 FETCH (UID 256 RFC822.SIZE {0})\r\n"
                          "* 257 FETCH (UID 257 RFC822.SIZE {0})\r\n* 258 FETCH (UID 258 RFC822.SIZE {0})\r\n"
                          "* 260 EXPUNGE\r\nu OK UID FETCH completed\r\n",  // UID FETCH may carry it
                          std::strlen(kFirst)));
}

// Issue 11: FETCH asks for its store work as typed requests too and the session never reads the store
// itself: FLAGS, UID and MODSEQ come from the view (no request at all); rows come a batch of UIDs per
// FetchRows, small blobs many per ReadBlobs, a large message through OpenBlob / MeasureBinary /
// ReadBlobRange slices; the implicit \Seen is a StoreFlags. The answers are what the same FETCH wrote
// when it called the store directly.
TEST_F(ImapSessionTest, FetchAsksForRowsAndBlobsWithTypedRequestsInBatches) {
    for (int i = 0; i < 300; ++i) deliver(demo_, "INBOX", kFirst);
    max_output_per_run_ = 64 * 1024;
    auto session = logged_in();
    send(*session, "e ENABLE IMAP4rev2\r\n");
    send(*session, "s SELECT INBOX\r\n");
    // Runs the session, counting the requests by kind, each answered on this thread.
    std::map<std::size_t, std::size_t> asked;
    std::vector<std::size_t> blobs_per_read;
    auto run_counting = [&](std::string_view bytes) {
        session->feed(bytes);
        std::string out;
        while (session->has_work()) {
            session->run(kNow);
            while (auto request = session->take_request()) {
                ++asked[request->index()];
                if (auto* read = std::get_if<request::ReadBlobs>(&*request))
                    blobs_per_read.push_back(read->blob_ids.size());
                session->answer(perform(*services_, std::move(*request)), kNow);
            }
            out += session->take_output();
        }
        return out;
    };
    auto flags = run_counting("a FETCH 1:* (UID FLAGS)\r\n");
    EXPECT_NE(flags.find("* 300 FETCH (UID 300 FLAGS ())\r\na OK FETCH completed\r\n"), std::string::npos);
    EXPECT_TRUE(asked.empty());  // the view answers (and FETCH by number carries no updates)

    asked.clear();
    auto headers = run_counting("b UID FETCH 1:* (BODY[HEADER.FIELDS (Subject)])\r\n");
    EXPECT_NE(headers.find("* 1 FETCH (UID 1 BODY[HEADER.FIELDS (Subject)] {24}\r\n"
                           "Subject: Hello there\r\n\r\n FLAGS (\\Seen))\r\n"),
              std::string::npos);
    EXPECT_NE(headers.find(" FLAGS (\\Seen))\r\nb OK UID FETCH completed\r\n"), std::string::npos);
    EXPECT_EQ(asked[kRequestIndex<request::StoreFlags>], 1u);  // the implicit \Seen, for all 300 at once
    EXPECT_EQ(asked[kRequestIndex<request::FetchRows>], 2u);   // 256 + 44 UIDs
    const std::size_t reads = asked[kRequestIndex<request::ReadBlobs>];
    EXPECT_GE(reads, 2u);
    EXPECT_LE(reads, 300u * std::strlen(kFirst) / (64 * 1024) + 4);  // many blobs per request
    std::size_t blobs = 0;
    for (std::size_t n : blobs_per_read) blobs += n;
    EXPECT_EQ(blobs, 300u);  // each blob read once

    // A large message streams: its reader is opened by a request, its literal read a slice per request.
    const std::string big = "Subject: big\r\n\r\n" + std::string(200 * 1024, 'y') + "\r\n";
    deliver(demo_, "INBOX", big);
    EXPECT_THAT(run_counting("n NOOP\r\n"), HasSubstr("* 301 EXISTS\r\n"));
    asked.clear();
    auto streamed = run_counting("c FETCH 301 (BODY.PEEK[] BINARY.SIZE[])\r\n");
    EXPECT_THAT(streamed, HasSubstr("c OK FETCH completed"));
    EXPECT_NE(streamed.find(fmt::format("BODY[] {{{}}}\r\n{} BINARY.SIZE[] {})", big.size(), big, big.size())),
              std::string::npos);
    EXPECT_EQ(asked[kRequestIndex<request::OpenBlob>], 1u);
    EXPECT_EQ(asked[kRequestIndex<request::MeasureBinary>], 1u);
    EXPECT_GE(asked[kRequestIndex<request::ReadBlobRange>], big.size() / (64 * 1024));
    EXPECT_EQ(asked[kRequestIndex<request::ReadBlobs>], 0u);
}

// Issue 11: a password check is a request too (Login, SaslStep), performed on the login pool; the session
// itself holds no store and no auth services.
TEST_F(ImapSessionTest, LoginAndAuthenticateAreRequestsForTheLoginPool) {
    auto session = open();
    session->feed("l LOGIN demo@example.test \"correct horse\"\r\n");
    session->run(kNow);
    auto login = session->take_request();
    ASSERT_TRUE(login && std::holds_alternative<request::Login>(*login));
    EXPECT_TRUE(runs_on_login_pool(*login));
    EXPECT_EQ(session->take_output(), "");
    session->answer(perform(*services_, std::move(*login)), kNow);
    EXPECT_THAT(session->take_output(), HasSubstr("l OK [CAPABILITY"));

    auto other = open();
    other->feed("a AUTHENTICATE PLAIN " + mail::base64_encode(std::string(1, '\0') + "demo@example.test" + std::string(1, '\0') + "wrong") + "\r\n");
    other->run(kNow);
    auto step = other->take_request();
    ASSERT_TRUE(step && std::holds_alternative<request::SaslStep>(*step));
    EXPECT_TRUE(runs_on_login_pool(*step));
    other->answer(perform(*services_, std::move(*step)), kNow);
    EXPECT_EQ(other->take_output(), "a NO [AUTHENTICATIONFAILED] Invalid credentials\r\n");
    EXPECT_FALSE(runs_on_login_pool(request::FetchRows{}));
}

TEST_F(ImapSessionTest, ShutdownSaysByeAndCloses) {
    auto session = logged_in();
    session->shutting_down();
    EXPECT_EQ(session->take_output(), "* BYE Server shutting down\r\n");
    EXPECT_EQ(session->take_action(), Session::Action::close);
    EXPECT_FALSE(session->wants_input());
}

TEST_F(ImapSessionTest, LsubAndStatusCounters) {
    deliver(demo_, "INBOX", kFirst, {"\\Deleted", "\\Seen"});
    deliver(demo_, "INBOX", kSecond);
    auto session = logged_in();
    ASSERT_TRUE(store_->set_subscribed(demo_, "Sent", true).ok());
    EXPECT_THAT(send(*session, "l LSUB \"\" S*\r\n"), HasSubstr("* LSUB () \"/\" Sent\r\n"));
    const auto inbox = mailbox(demo_, "INBOX");
    EXPECT_EQ(send(*session,
                   "s STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN DELETED HIGHESTMODSEQ)\r\n"),
              fmt::format("* STATUS INBOX (MESSAGES 2 RECENT 2 UIDNEXT 3 UIDVALIDITY {} UNSEEN 1 DELETED 1 "
                          "HIGHESTMODSEQ {})\r\ns OK STATUS completed\r\n",
                          inbox.uidvalidity, inbox.highest_modseq));
    EXPECT_EQ(send(*session, "t STATUS Nowhere (MESSAGES)\r\n"), "t NO [NONEXISTENT] No such mailbox\r\n");
}

TEST_F(ImapSessionTest, LargeFetchIsWrittenOneSliceAtATime) {
    deliver(demo_, "INBOX", kFirst);
    deliver(demo_, "INBOX", kSecond);
    deliver(demo_, "INBOX", kFirst);
    max_output_per_run_ = 1;
    auto session = logged_in();
    send(*session, "s SELECT INBOX\r\n");
    session->feed("f FETCH 1:3 (UID)\r\nn NOOP\r\n");
    ASSERT_TRUE(session->has_work());
    session->run(kNow);
    EXPECT_EQ(session->take_output(), "* 1 FETCH (UID 1)\r\n");
    EXPECT_TRUE(session->has_work());
    session->run(kNow);
    EXPECT_EQ(session->take_output(), "* 2 FETCH (UID 2)\r\n");
    session->run(kNow);
    // The last slice ends the FETCH, and the pipelined NOOP runs after it (its updates asked of the store).
    drive(*session);
    EXPECT_EQ(session->take_output(), "* 3 FETCH (UID 3)\r\nf OK FETCH completed\r\nn OK Done\r\n");
    EXPECT_FALSE(session->has_work());
}

// A message whose content cannot be read (its blob file gone, or cut short: a disk fault, a restore that missed
// files) fails alone, on the streamed path large messages take (a reader opened by request, then ranges) as on
// the whole-blob one: the other messages of the FETCH are answered, nothing of the failed one is written (a
// literal announced and not filled would desynchronise the client), the command ends NO, for UID FETCH too,
// what needs no content is still answered, and the session goes on.
TEST_F(ImapSessionTest, AMessageWhoseContentCannotBeReadFailsAloneAndTheSessionGoesOn) {
    deliver(demo_, "INBOX", kFirst);
    const std::string gone = "Subject: gone\r\n\r\n" + std::string(200 * 1024, 'g') + "\r\n";
    const std::string cut = "Subject: cut\r\n\r\n" + std::string(200 * 1024, 'c') + "\r\n";
    deliver(demo_, "INBOX", gone);
    deliver(demo_, "INBOX", cut);
    deliver(demo_, "INBOX", kSecond);
    store::BlobFiles files(dir_);
    ASSERT_TRUE(std::filesystem::remove(files.path_of(store::blob_id_of(gone))));
    std::filesystem::resize_file(files.path_of(store::blob_id_of(cut)), 1000);
    max_output_per_run_ = 4096;  // the streamed path: a slice at a time
    auto session = logged_in();
    send(*session, "s SELECT INBOX\r\n");
    for (const char* items : {"BODY.PEEK[]", "BODY.PEEK[TEXT]<100.50>", "BINARY.PEEK[1]", "BINARY.SIZE[1]"}) {
        SCOPED_TRACE(items);
        auto out = send(*session, fmt::format("f FETCH 1:4 (UID {})\r\n", items));
        EXPECT_THAT(out, HasSubstr("* 1 FETCH (UID 1 "));
        EXPECT_THAT(out, HasSubstr("* 4 FETCH (UID 4 "));
        EXPECT_THAT(out, Not(HasSubstr("* 2 FETCH")));
        EXPECT_THAT(out, Not(HasSubstr("* 3 FETCH")));
        EXPECT_THAT(out, Not(HasSubstr("ggggg")));
        EXPECT_THAT(out, Not(HasSubstr("ccccc")));
        EXPECT_TRUE(out.ends_with("f NO Some messages could not be fetched\r\n")) << out;
        for (int uid : {2, 3}) {
            EXPECT_EQ(send(*session, fmt::format("u UID FETCH {} ({})\r\n", uid, items)),
                      "u NO Some messages could not be fetched\r\n");
        }
    }
    // The row alone answers these.
    EXPECT_THAT(send(*session, "r UID FETCH 2:3 (UID RFC822.SIZE)\r\n"),
                ::testing::EndsWith(fmt::format("* 2 FETCH (UID 2 RFC822.SIZE {})\r\n* 3 FETCH (UID 3 RFC822.SIZE {})\r\n"
                                                "r OK UID FETCH completed\r\n",
                                                gone.size(), cut.size())));
    EXPECT_EQ(send(*session, "n NOOP\r\n"), "n OK Done\r\n");
    EXPECT_THAT(send(*session, "b FETCH 4 (BODY.PEEK[])\r\n"), HasSubstr("b OK FETCH completed\r\n"));
}

// Issue 12 item 15: a message larger than the output slice is served from its blob a slice at a time
// (inline blobs and files alike). Every section, partial and BINARY form answers byte for byte what the
// same FETCH answers when the message is read whole, and no run() writes much more than one slice.
std::string streamed_test_message(std::size_t binary_octets) {
    std::mt19937 random(7);
    std::string binary;
    for (std::size_t i = 0; i < binary_octets; ++i) binary.push_back(static_cast<char>(random() % 7 == 0 ? 0 : random()));
    std::string qp;
    for (int i = 0; i < 200; ++i) qp += fmt::format("line {} says a=3Db and goes on and on, soft =\r\nbreak here  \r\n", i);
    return "From: a@example.test\r\nTo: b@example.test\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
           "--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
           mail::base64_encode(binary) +
           "\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + qp +
           "--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nTo: c@example.test\r\n\r\ninner body\r\n"
           "--b--\r\n";
}

TEST_F(ImapSessionTest, LargeMessagesStreamTheSameBytesInBoundedSlices) {
    const std::string items =
        "(UID RFC822.SIZE BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODY.PEEK[1] BODY.PEEK[2] "
        "BODY.PEEK[2.MIME] BODY.PEEK[HEADER.FIELDS (Subject From)] BODY.PEEK[3.HEADER.FIELDS.NOT (To)] "
        "BODY.PEEK[3.TEXT] BODY.PEEK[]<10.5000> BODY.PEEK[1]<3.100> BODY.PEEK[9] BINARY.PEEK[] BINARY.PEEK[1] "
        "BINARY.PEEK[2] BINARY.PEEK[1]<5.50> BINARY.PEEK[2]<7.9> BINARY.SIZE[1] BINARY.SIZE[2] BINARY.PEEK[3] "
        "BINARY.PEEK[9] BINARY.SIZE[] ENVELOPE BODYSTRUCTURE)";
    deliver(demo_, "INBOX", streamed_test_message(20 * 1024));    // inline in the database
    deliver(demo_, "INBOX", streamed_test_message(300 * 1024));   // a blob file of its own
    auto fetch_all = [&](std::size_t slice, std::size_t& largest_run) {
        max_output_per_run_ = slice;
        auto session = logged_in();
        send(*session, "s SELECT INBOX\r\n");
        session->feed("f FETCH 1:2 " + items + "\r\n");
        std::string out;
        largest_run = 0;
        // As the IO loop does: a run(), the store requests it asked for answered, then one write.
        while (session->has_work()) {
            session->run(kNow);
            while (auto request = session->take_request())
                session->answer(perform(*services_, std::move(*request)), kNow);
            std::string piece = session->take_output();
            largest_run = std::max(largest_run, piece.size());
            out += piece;
        }
        return out;
    };
    std::size_t whole_largest = 0, streamed_largest = 0;
    const std::string whole = fetch_all(16 * 1024 * 1024, whole_largest);
    const std::string streamed = fetch_all(4096, streamed_largest);
    ASSERT_THAT(whole, HasSubstr("f OK FETCH completed"));
    EXPECT_THAT(whole, HasSubstr("BINARY[1] ~{"));  // the decoded part holds NULs: literal8
    EXPECT_EQ(streamed, whole);
    EXPECT_GT(whole_largest, 300u * 1024);
    // One slice of literal octets plus the response text around it (names, sizes, structure).
    EXPECT_LE(streamed_largest, 4096u + 2048u);
}

TEST_F(ImapSessionTest, AppendAndCopyOverQuotaAreRefused) {
    auto session = logged_in();  // the fixture's quota is 1024 KiB
    const std::string big(700 * 1024, 'x');
    EXPECT_EQ(send(*session, fmt::format("a APPEND INBOX {{{}}}\r\n{}\r\n", big.size(), big)),
              fmt::format("+ Ready for literal data\r\na OK [APPENDUID {} 1] APPEND completed\r\n",
                          mailbox(demo_, "INBOX").uidvalidity));
    send(*session, "s SELECT INBOX\r\n");
    EXPECT_EQ(send(*session, "c COPY 1 Archive\r\n"), "c NO [OVERQUOTA] The quota would be exceeded\r\n");
    EXPECT_EQ(send(*session, fmt::format("b APPEND INBOX {{{}}}\r\n{}\r\n", big.size(), big)),
              "+ Ready for literal data\r\nb NO [OVERQUOTA] The mailbox quota would be exceeded\r\n");
    EXPECT_EQ(send(*session, "q GETQUOTA \"\"\r\n"),
              "* QUOTA \"\" (STORAGE 700 1024)\r\nq OK GETQUOTA completed\r\n");
}

const char* kMultipart =
    "From: Carol <carol@example.test>\r\n"
    "Subject: Parts\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=XX\r\n"
    "\r\n"
    "--XX\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "Part one\r\n"
    "--XX\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "AAEC\r\n"
    "--XX--\r\n";

TEST_F(ImapSessionTest, SectionsComeFromTheStoredStructureOrAParseWhenMissing) {
    deliver(demo_, "INBOX", kMultipart);
    {
        // The same message stored without its structure (an older or foreign writer).
        store::Delivery delivery;
        delivery.content = kMultipart;
        delivery.internal_date = kNow;
        delivery.targets.push_back(store::DeliveryTarget{mailbox(demo_, "INBOX").id, {}});
        std::promise<Result<store::Delivered>> promise;
        auto future = promise.get_future();
        store_->deliver(std::move(delivery),
                        [&](Result<store::Delivered> r) { promise.set_value(std::move(r)); });
        ASSERT_TRUE(future.get().ok());
    }
    auto session = logged_in();
    send(*session, "s SELECT INBOX\r\n");
    const std::string items =
        "(BODY.PEEK[1] BODY.PEEK[1.MIME] BINARY.PEEK[2] BODY.PEEK[2]<1.2> BODYSTRUCTURE)";
    auto first = send(*session, fmt::format("a FETCH 1 {}\r\n", items));
    auto second = send(*session, fmt::format("b FETCH 2 {}\r\n", items));
    EXPECT_THAT(first,
                HasSubstr("BODY[1] {8}\r\nPart one BODY[1.MIME] {28}\r\nContent-Type: text/plain\r\n\r\n"));
    EXPECT_THAT(first,
                HasSubstr(std::string("BINARY[2] ~{3}\r\n\x00\x01\x02", 19) + " BODY[2]<1> {2}\r\nAE"));
    EXPECT_THAT(first, HasSubstr("BODYSTRUCTURE ((\"text\" \"plain\""));
    EXPECT_EQ(first.substr(0, first.find("a OK")), second.substr(0, second.find("b OK")).replace(2, 1, "1"));
}

TEST_F(ImapSessionTest, SaslCancelAndWrongPassword) {
    auto session = open();
    EXPECT_EQ(send(*session, "a AUTHENTICATE PLAIN\r\n"), "+ \r\n");
    EXPECT_EQ(send(*session, "*\r\n"), "a BAD Authentication exchange cancelled or malformed\r\n");
    // "\0demo@example.test\0wrong"
    EXPECT_EQ(send(*session, "b AUTHENTICATE PLAIN AGRlbW9AZXhhbXBsZS50ZXN0AHdyb25n\r\n"),
              "b NO [AUTHENTICATIONFAILED] Invalid credentials\r\n");
    EXPECT_EQ(send(*session, "c AUTHENTICATE X-UNKNOWN\r\n"),
              "c NO Unsupported authentication mechanism\r\n");
    EXPECT_EQ(session->state(), Session::State::not_authenticated);
    EXPECT_FALSE(session->account_id().has_value());
}

TEST_F(ImapSessionTest, SilentConditionalStoreStillReportsModseq) {
    deliver(demo_, "INBOX", kFirst);
    auto session = logged_in();
    send(*session, "s SELECT INBOX (CONDSTORE)\r\n");
    const auto base = mailbox(demo_, "INBOX").highest_modseq;
    EXPECT_EQ(
        send(*session, fmt::format("a STORE 1 (UNCHANGEDSINCE {}) +FLAGS.SILENT (\\Answered)\r\n", base)),
        fmt::format("* 1 FETCH (UID 1 MODSEQ ({}))\r\na OK STORE completed\r\n", base + 1));
    EXPECT_EQ(send(*session, "b SEARCH MODSEQ 1\r\n"),
              fmt::format("* SEARCH 1 (MODSEQ {})\r\nb OK SEARCH completed\r\n", base + 1));
}

// RFC 7162 3.1 / 3.1.3, as Dovecot and mox answer: with CONDSTORE on, a plain .SILENT STORE still reports
// the new MODSEQ (the client's cache would otherwise keep the old one), and every untagged FETCH, its own
// STORE's and another session's flag change alike, names the UID.
TEST_F(ImapSessionTest, CondstoreFetchResponsesCarryUidAndModseq) {
    deliver(demo_, "INBOX", kFirst);
    auto session = logged_in();
    send(*session, "e ENABLE CONDSTORE\r\n");
    send(*session, "s SELECT INBOX\r\n");
    const auto base = mailbox(demo_, "INBOX").highest_modseq;
    EXPECT_EQ(send(*session, "a STORE 1 +FLAGS.SILENT (\\Answered)\r\n"),
              fmt::format("* 1 FETCH (UID 1 MODSEQ ({}))\r\na OK STORE completed\r\n", base + 1));
    EXPECT_EQ(
        send(*session, "b STORE 1 +FLAGS (\\Seen)\r\n"),
        fmt::format(
            "* 1 FETCH (UID 1 FLAGS (\\Seen \\Answered \\Recent) MODSEQ ({}))\r\nb OK STORE completed\r\n",
            base + 2));
    auto other = logged_in();
    send(*other, "s SELECT INBOX\r\n");
    send(*other, "f STORE 1 +FLAGS (\\Flagged)\r\n");
    EXPECT_EQ(send(*session, "n NOOP\r\n"),
              fmt::format("* 1 FETCH (UID 1 FLAGS (\\Seen \\Answered \\Flagged \\Recent) MODSEQ ({}))\r\n"
                          "n OK Done\r\n",
                          base + 3));
    // Without CONDSTORE, .SILENT stays silent.
    EXPECT_EQ(send(*other, "g STORE 1 -FLAGS.SILENT (\\Flagged)\r\n"), "g OK STORE completed\r\n");
}

// Two sessions interleave random commands over one mailbox while mail arrives: every command gets exactly
// its tagged reply, sequence numbers in untagged replies never exceed what the session announced, and
// the sanitizers see no fault.
TEST_F(ImapSessionTest, RandomInterleavedCommandsKeepBothViewsConsistent) {
    const std::vector<std::string> templates = {"FETCH {set} (UID FLAGS ENVELOPE)",
                                                "UID FETCH {set} (FLAGS BODY.PEEK[HEADER])",
                                                "STORE {set} +FLAGS (\\Deleted)",
                                                "UID STORE {set} -FLAGS (\\Deleted \\Seen)",
                                                "STORE {set} FLAGS.SILENT ($Label)",
                                                "EXPUNGE",
                                                "NOOP",
                                                "SEARCH DELETED",
                                                "UID SEARCH RETURN (SAVE) UNSEEN",
                                                "FETCH $ FLAGS",
                                                "COPY {set} Archive",
                                                "UID MOVE {set} Trash",
                                                "UID EXPUNGE {set}",
                                                "FETCH {set} BODY[TEXT]",
                                                "STATUS INBOX (MESSAGES UNSEEN)",
                                                "SELECT INBOX",
                                                "EXAMINE INBOX",
                                                "CHECK"};
    std::mt19937 random(12345);
    auto pick_set = [&]() -> std::string {
        switch (random() % 4) {
            case 0:
                return "1:*";
            case 1:
                return fmt::format("{}", 1 + random() % 6);
            case 2:
                return fmt::format("{}:{}", 1 + random() % 4, 2 + random() % 8);
            default:
                return "*";
        }
    };
    for (int i = 0; i < 4; ++i) deliver(demo_, "INBOX", i % 2 ? kFirst : kSecond);
    std::unique_ptr<Session> sessions[2] = {logged_in(), logged_in()};
    std::size_t exists[2] = {0, 0};
    send(*sessions[1], "e ENABLE QRESYNC\r\n");
    for (auto& session : sessions) send(*session, "s SELECT INBOX\r\n");
    exists[0] = exists[1] = 4;
    for (int step = 0; step < 300; ++step) {
        if (step % 37 == 0) deliver(demo_, "INBOX", kFirst);
        const int who = static_cast<int>(random() % 2);
        std::string command = templates[random() % templates.size()];
        if (auto at = command.find("{set}"); at != std::string::npos) command.replace(at, 5, pick_set());
        const std::string tag = fmt::format("t{}", step);
        const std::string out = send(*sessions[who], tag + " " + command + "\r\n");
        ASSERT_EQ(out.find(tag + " "), out.rfind(tag + " ")) << out;
        const std::size_t last = out.size() >= 2 ? out.rfind("\r\n", out.size() - 3) : std::string::npos;
        ASSERT_TRUE(out.substr(last == std::string::npos ? 0 : last + 2).starts_with(tag + " "))
            << command << "\n"
            << out;
        EXPECT_THAT(out, Not(HasSubstr("SERVERBUG"))) << command;
        // Track EXISTS/EXPUNGE to check that FETCH numbers stay within the announced range.
        std::size_t pos = 0;
        while ((pos = out.find("* ", pos)) != std::string::npos) {
            const std::size_t end = out.find("\r\n", pos);
            const std::string line = out.substr(pos, end - pos);
            std::size_t n = 0;
            if (std::sscanf(line.c_str(), "* %zu", &n) == 1) {
                if (line.find(" EXISTS") != std::string::npos)
                    exists[who] = n;
                else if (line.find(" EXPUNGE") != std::string::npos)
                    --exists[who];
                else if (line.find(" FETCH") != std::string::npos) {
                    EXPECT_LE(n, exists[who]) << line;
                }
            }
            pos = end;
        }
    }
}

TEST_F(ImapSessionTest, DeletingAnotherSessionsSelectedMailboxEndsThatSession) {
    auto a = logged_in();
    auto b = logged_in();
    send(*a, "c CREATE Work\r\n");
    send(*a, "s SELECT Work\r\n");
    EXPECT_EQ(send(*a, "d DELETE Work\r\n"), "d NO [INUSE] Close the mailbox before deleting it\r\n");
    EXPECT_EQ(send(*b, "d DELETE Work\r\n"), "d OK DELETE completed\r\n");
    EXPECT_EQ(send(*a, "n NOOP\r\n"), "* BYE The selected mailbox was deleted\r\nn OK Done\r\n");
    EXPECT_EQ(a->take_action(), Session::Action::close);
}

// A store that, the first `replacements` times a listing is read, deletes a mailbox and makes it again under
// the same name just before: the race between OpenMailbox's reads (separate transactions), made certain.
class ReplacingStore : public store::UnusedStore {
public:
    ReplacingStore(store::Store& inner, std::int64_t account, std::string name, int replacements)
        : inner_(inner), account_(account), name_(std::move(name)), replacements_(replacements) {}
    Result<store::Mailbox> find_mailbox(std::int64_t account_id, std::string_view name) override {
        return inner_.find_mailbox(account_id, name);
    }
    Result<std::vector<store::MessageState>> list_states(std::int64_t mailbox_id) override {
        if (replacements_ > 0) {
            --replacements_;
            EXPECT_TRUE(inner_.delete_mailbox(account_, name_).ok());
            EXPECT_TRUE(inner_.create_mailbox(account_, name_).ok());
        }
        return inner_.list_states(mailbox_id);
    }
    Result<store::MailboxStatus> mailbox_status(std::int64_t mailbox_id) override {
        return inner_.mailbox_status(mailbox_id);
    }
    Result<std::uint32_t> claim_recent(std::int64_t mailbox_id) override { return inner_.claim_recent(mailbox_id); }

private:
    store::Store& inner_;
    std::int64_t account_;
    std::string name_;
    int replacements_;
};

// The listing SELECT answers is the mailbox's whose UIDVALIDITY it reports, even when the mailbox is replaced
// between the reads (SQLite gives the new one the old id when it had the highest); replaced every time, NO
// [UNAVAILABLE] rather than a mix.
TEST_F(ImapSessionTest, SelectOfAMailboxReplacedMeanwhileListsTheNewOneUnderItsOwnUidvalidity) {
    ASSERT_TRUE(store_->create_mailbox(demo_, "Projects").ok());  // the highest mailbox id
    for (bool read_only : {false, true}) {
        const store::Mailbox old = mailbox(demo_, "Projects");
        deliver(demo_, "Projects", kFirst);
        deliver(demo_, "Projects", kSecond);
        ReplacingStore replacing(*store_, demo_, "Projects", 1);
        SessionServices services{replacing, limiter_, throttle_};
        auto answer = perform(services, request::OpenMailbox{demo_, "Projects", read_only, std::nullopt});
        auto* opened = std::get_if<kRequestIndex<request::OpenMailbox>>(&answer);
        ASSERT_NE(opened, nullptr);
        ASSERT_TRUE(opened->ok()) << opened->error().message;
        const store::Mailbox now = mailbox(demo_, "Projects");
        EXPECT_NE(now.uidvalidity, old.uidvalidity);
        EXPECT_EQ((*opened)->mailbox.id, now.id);
        EXPECT_EQ((*opened)->mailbox.uidvalidity, now.uidvalidity);
        EXPECT_TRUE((*opened)->states.empty());  // the new mailbox's (empty), not the old one's two messages
        EXPECT_EQ(now.id, old.id);                // the case the check is for: the same id again
    }

    ReplacingStore always(*store_, demo_, "Projects", 1000);
    SessionServices services{always, limiter_, throttle_};
    auto answer = perform(services, request::OpenMailbox{demo_, "Projects", false, std::nullopt});
    auto* opened = std::get_if<kRequestIndex<request::OpenMailbox>>(&answer);
    ASSERT_NE(opened, nullptr);
    ASSERT_FALSE(opened->ok());
    EXPECT_EQ(opened->error().code, Errc::unavailable);
}

}  // namespace
}  // namespace magpie::imap
