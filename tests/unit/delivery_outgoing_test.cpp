// prepare_outgoing_message: what every message a user sends goes through before it is queued (completion,
// the trace field, the DKIM signature of its From domain), checked with our own verifier here and with
// python3-dkim end to end (tests/e2e/test_submission_dkim.py).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "delivery/outgoing.h"
#include "mail/dkim.h"
#include "mail/downgrade.h"
#include "mailauth/dkim_keys.h"
#include "smtp/client_session.h"

namespace magpie::delivery {
namespace {

constexpr std::int64_t kNow = 1'800'000'000;

class Outgoing : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/magpie-outgoing-XXXXXX";
        dir_ = mkdtemp(tmpl);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    OutgoingDraft draft(std::string_view message) {
        return OutgoingDraft{message, "Received: from laptop by mx.crepes.fr; now\r\n", false, "crepes.fr", kNow,
                             "TEST1"};
    }

    std::filesystem::path dir_;
};

// What a peer receives through our SMTP client when it offers `ehlo` (DATA, dot-stuffing undone), or
// BDAT chunks when it offers CHUNKING.
std::string as_received_by(std::string data, std::string_view ehlo) {
    smtp::ClientConfig config;
    config.helo_name = "mx.crepes.fr";
    config.peer_name = "peer.test[192.0.2.1]";
    smtp::ClientSession session(config);
    smtp::OutgoingMessage message;
    message.id = "m1";
    message.reverse_path = "alice@crepes.fr";
    message.recipients.push_back(smtp::OutgoingRecipient{"bob@peer.test", "", ""});
    message.data = std::move(data);
    session.enqueue(std::move(message));
    std::string written;
    auto pump = [&](std::string_view reply) {
        session.feed(reply);
        while (session.has_output()) written += session.take_output();
        while (session.poll_event()) {
        }
    };
    pump("220 peer.test ESMTP\r\n");
    pump(ehlo);
    const bool bdat = ehlo.find("CHUNKING") != std::string_view::npos;
    if (bdat) {
        pump("250 ok\r\n250 ok\r\n250 ok\r\n");  // MAIL, RCPT, BDAT LAST (pipelined)
        std::size_t data = written.find("BDAT ");
        std::size_t size_end = written.find(' ', data + 5);
        std::size_t size = std::stoul(written.substr(data + 5, size_end - data - 5));
        return written.substr(written.find("\r\n", data) + 2, size);
    }
    pump("250 ok\r\n");  // MAIL
    pump("250 ok\r\n");  // RCPT
    pump("354 go on\r\n");
    std::size_t start = written.find("DATA\r\n");
    EXPECT_NE(start, std::string::npos) << written;
    std::string stuffed = written.substr(start + 6);
    EXPECT_TRUE(stuffed.ends_with("\r\n.\r\n"));
    stuffed.resize(stuffed.size() - 3);
    std::string out;
    std::size_t at = 0;
    while (at < stuffed.size()) {
        std::size_t end = stuffed.find("\r\n", at);
        end = end == std::string::npos ? stuffed.size() : end + 2;
        std::string_view line(stuffed.data() + at, end - at);
        out += line.starts_with("..") ? line.substr(1) : line;
        at = end;
    }
    return out;
}

TEST_F(Outgoing, SignsForTheFromDomainOverTheTraceAndTheCompletedMessage) {
    auto keys = mailauth::create_dkim_keys(dir_, "crepes.fr", mailauth::KeygenOptions{.selector_suffix = "1"});
    ASSERT_TRUE(keys) << keys.error().message;
    auto signer = mailauth::DkimSigner::load(dir_);
    ASSERT_TRUE(signer) << signer.error().message;
    auto prepared = prepare_outgoing_message(
        draft("From: alice@crepes.fr\r\nTo: bob@hamburger.edu\r\nBcc: eve@x.test\r\nSubject: s\r\n\r\nhi\r\n"),
        *signer);
    ASSERT_TRUE(prepared) << prepared.error().message;
    EXPECT_TRUE(prepared->starts_with("DKIM-Signature: "));
    EXPECT_NE(prepared->find("\r\nReceived: from laptop"), std::string::npos);
    EXPECT_NE(prepared->find("\r\nMessage-ID: <"), std::string::npos);  // completed before it was signed
    EXPECT_EQ(prepared->find("Bcc:"), std::string::npos);
    auto lookup = [&](std::string_view name) -> mail::dkim::TxtAnswer {
        for (const auto& key : *keys)
            if (name == key.selector + "._domainkey.crepes.fr") return std::vector<std::string>{key.key_record};
        return make_error(Errc::not_found, "NXDOMAIN");
    };
    auto results = mail::dkim::verify(*prepared, lookup, kNow);
    ASSERT_EQ(results.size(), 2u);
    for (const auto& r : results) EXPECT_EQ(r.status, mail::dkim::Status::pass) << r.selector << ": " << r.reason;
}

// RFC 6376 5.3: whatever our SMTP client does for a peer (7-bit downgrade without 8BITMIME, re-encoding of
// NULs and long lines, CRLF for bare line ends), it never changes a message after it was signed.
TEST_F(Outgoing, EverySignedMessageVerifiesAtPeersWithAndWithout8BitMime) {
    auto keys = mailauth::create_dkim_keys(dir_, "crepes.fr", mailauth::KeygenOptions{.selector_suffix = "1"});
    ASSERT_TRUE(keys) << keys.error().message;
    auto signer = mailauth::DkimSigner::load(dir_);
    ASSERT_TRUE(signer) << signer.error().message;
    auto lookup = [&](std::string_view name) -> mail::dkim::TxtAnswer {
        for (const auto& key : *keys)
            if (name == key.selector + "._domainkey.crepes.fr") return std::vector<std::string>{key.key_record};
        return make_error(Errc::not_found, "NXDOMAIN");
    };
    const std::string head = "From: alice@crepes.fr\r\nTo: bob@peer.test\r\nSubject: s\r\nMIME-Version: 1.0\r\n";
    const std::string long_line(1500, 'x');
    const std::vector<std::pair<std::string, std::string>> messages = {
        {"8-bit text", head + "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
                              "Gr\xc3\xbc\xc3\x9f aus Paris, cr\xc3\xaapes \xe2\x82\xac 5\r\n.\r\n..\r\n"},
        {"no transfer encoding", head + "Content-Type: text/plain; charset=utf-8\r\n\r\ncaf\xc3\xa9\r\n"},
        {"long line", head + "\r\n" + long_line + "\r\n"},
        {"bare line ends", head + "\r\nline one\nline two\rline three\r\n"},
        {"8-bit multipart",
         head + "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; "
                "charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\xc3\xa9t\xc3\xa9\r\n--b\r\n"
                "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
                + std::string("\x00\x01\xff\r\n", 5) + "--b--\r\n"},
    };
    const std::vector<std::string_view> peers = {
        "250 peer.test\r\n",                                                   // nothing: 7-bit only
        "250-peer.test\r\n250-8BITMIME\r\n250 SIZE 100000\r\n",              // 8BITMIME, DATA
        "250-peer.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 CHUNKING\r\n",  // BDAT
    };
    for (const auto& [name, text] : messages) {
        auto prepared = prepare_outgoing_message(draft(text), *signer);
        ASSERT_TRUE(prepared) << name << ": " << prepared.error().message;
        EXPECT_FALSE(mail::needs_7bit_downgrade(*prepared)) << name;
        for (auto peer : peers) {
            std::string received = as_received_by(*prepared, peer);
            EXPECT_EQ(received, *prepared) << name << " to " << peer;
            auto results = mail::dkim::verify(received, lookup, kNow);
            ASSERT_EQ(results.size(), 2u) << name;
            for (const auto& r : results)
                EXPECT_EQ(r.status, mail::dkim::Status::pass) << name << " to " << peer << ": " << r.reason;
        }
    }
}

TEST_F(Outgoing, AnUnsignedMessageKeepsItsEightBitForm) {
    auto signer = mailauth::DkimSigner::load(dir_);
    ASSERT_TRUE(signer);
    const std::string text =
        "From: carol@galettes.fr\r\nSubject: s\r\nContent-Transfer-Encoding: 8bit\r\n\r\ncaf\xc3\xa9\r\n";
    auto prepared = prepare_outgoing_message(draft(text), *signer);
    ASSERT_TRUE(prepared);
    EXPECT_NE(prepared->find("caf\xc3\xa9\r\n"), std::string::npos);
}

TEST_F(Outgoing, ADomainWithoutKeysGoesOutUnsigned) {
    auto signer = mailauth::DkimSigner::load(dir_);
    ASSERT_TRUE(signer);
    auto prepared = prepare_outgoing_message(draft("From: carol@galettes.fr\r\nSubject: s\r\n\r\nhi\r\n"), *signer);
    ASSERT_TRUE(prepared);
    EXPECT_TRUE(prepared->starts_with("Received: from laptop"));
    EXPECT_EQ(prepared->find("DKIM-Signature"), std::string::npos);
}

TEST_F(Outgoing, AMessageWithoutFromIsRefused) {
    auto signer = mailauth::DkimSigner::load(dir_);
    ASSERT_TRUE(signer);
    auto prepared = prepare_outgoing_message(draft("Subject: s\r\n\r\nhi\r\n"), *signer);
    ASSERT_FALSE(prepared);
    EXPECT_EQ(prepared.error().code, Errc::invalid_argument);
}

}  // namespace
}  // namespace magpie::delivery
