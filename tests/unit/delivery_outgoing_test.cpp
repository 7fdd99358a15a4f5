// prepare_outgoing_message: what every message a user sends goes through before it is queued (completion,
// the trace field, the DKIM signature of its From domain), checked with our own verifier here and with
// python3-dkim end to end (tests/e2e/test_submission_dkim.py).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "delivery/outgoing.h"
#include "mail/dkim.h"
#include "mailauth/dkim_keys.h"

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
