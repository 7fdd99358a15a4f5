// The inbound evaluation over real DNS: dns::Resolver (through mailauth::ResolverDns) asking a dnsmasq
// this test starts with the sender's SPF, DKIM key and DMARC records as --txt-record lines.
#include <gtest/gtest.h>

#include "dnsmasq.h"
#include "mailauth/inbound.h"

namespace magpie::mailauth {
namespace {

// One RSA-2048 key for the suite: its record is published by dnsmasq, its private half signs.
const mail::dkim::PrivateKey& rsa_key() {
    static const mail::dkim::PrivateKey key =
        mail::dkim::PrivateKey::generate(mail::dkim::Algorithm::rsa_sha256, 2048).value();
    return key;
}

// dnsmasq splits a TXT value at commas into strings of at most 255 octets; a DKIM RSA record needs two.
std::string txt_arg(const std::string& name, const std::string& value) {
    std::string arg = "--txt-record=" + name;
    for (std::size_t i = 0; i < value.size(); i += 200) arg += "," + value.substr(i, 200);
    return arg;
}

class MailauthOverDnsmasq : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        server_ = new testing::Dnsmasq({
            "--local=/test/",
            "--txt-record=sender.test,v=spf1 mx ip4:127.0.0.7 -all",
            "--mx-host=sender.test,mail.sender.test,10",
            "--host-record=mail.sender.test,127.0.0.9",
            txt_arg("k1._domainkey.sender.test", rsa_key().key_record()),
            "--txt-record=_dmarc.sender.test,v=DMARC1; p=reject; rua=mailto:d@sender.test",
        });
    }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }
    void SetUp() override {
        if (!server_->installed()) GTEST_SKIP() << server_->why();
        ASSERT_NE(server_->port(), 0) << server_->why();
        dns::ResolverConfig config;
        config.servers = std::string(testing::kAddress) + ":" + std::to_string(server_->port());
        config.timeout_ms = 500;
        config.tries = 2;
        auto created = dns::Resolver::create(config);
        ASSERT_TRUE(created);
        resolver_ = std::move(*created);
        request_.authserv_id = "mx.receiver.test";
        request_.helo = "mail.sender.test";
        request_.mail_from = "bounce@sender.test";
        request_.now = 1700000000;
    }

    InboundVerdict authenticate(std::string_view message) {
        ResolverDns dns(*resolver_);
        return authenticate_inbound(dns, psl_, request_, message);
    }

    static testing::Dnsmasq* server_;
    std::unique_ptr<dns::Resolver> resolver_;
    PublicSuffixList psl_ = PublicSuffixList::parse("test\n");
    InboundRequest request_;
};
testing::Dnsmasq* MailauthOverDnsmasq::server_ = nullptr;

std::string signed_message() {
    std::string message =
        "From: Alice <alice@sender.test>\r\nTo: bob@receiver.test\r\nSubject: hi\r\n\r\nHello\r\n";
    mail::dkim::SignOptions options;
    options.domain = "sender.test";
    options.selector = "k1";
    return *mail::dkim::sign(message, rsa_key(), options) + message;
}

TEST_F(MailauthOverDnsmasq, SignedMailFromTheMxPassesSpfDkimAndDmarc) {
    request_.client_ip = "127.0.0.9";
    auto verdict = authenticate(signed_message());
    EXPECT_EQ(verdict.spf.result, SpfResult::pass) << verdict.spf.reason;
    EXPECT_EQ(verdict.spf.mechanism, "mx");
    ASSERT_EQ(verdict.dkim.size(), 1u);
    EXPECT_EQ(verdict.dkim[0].status, mail::dkim::Status::pass) << verdict.dkim[0].reason;
    EXPECT_EQ(verdict.dmarc.result, DmarcResult::pass);
    EXPECT_NE(verdict.header.find("dkim=pass header.d=sender.test header.s=k1"), std::string::npos)
        << verdict.header;
}

TEST_F(MailauthOverDnsmasq, UnsignedMailFromAnotherAddressFailsDmarcWithReject) {
    request_.client_ip = "127.0.0.99";
    auto verdict = authenticate("From: alice@sender.test\r\nSubject: hi\r\n\r\nHello\r\n");
    EXPECT_EQ(verdict.spf.result, SpfResult::fail);
    EXPECT_EQ(verdict.dmarc.result, DmarcResult::fail);
    EXPECT_EQ(verdict.dmarc.disposition, Disposition::reject);
}

TEST_F(MailauthOverDnsmasq, TamperedSignedMailFailsDkimButSpfStillAligns) {
    request_.client_ip = "127.0.0.7";
    std::string message = signed_message();
    message.replace(message.find("Hello"), 5, "Hullo");
    auto verdict = authenticate(message);
    ASSERT_EQ(verdict.dkim.size(), 1u);
    EXPECT_EQ(verdict.dkim[0].status, mail::dkim::Status::fail);
    EXPECT_EQ(verdict.spf.result, SpfResult::pass);
    EXPECT_EQ(verdict.dmarc.result, DmarcResult::pass);
    EXPECT_TRUE(verdict.dmarc.spf_aligned);
}

TEST_F(MailauthOverDnsmasq, UnknownSenderDomainHasNoPolicies) {
    request_.client_ip = "127.0.0.7";
    request_.mail_from = "x@nowhere.test";
    auto verdict = authenticate("From: x@nowhere.test\r\n\r\nhi\r\n");
    EXPECT_EQ(verdict.spf.result, SpfResult::none);
    EXPECT_EQ(verdict.dmarc.result, DmarcResult::none);
}

}  // namespace
}  // namespace magpie::mailauth
