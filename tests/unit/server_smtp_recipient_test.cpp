// server::resolve_recipient: who receives RCPT TO, with RFC 5321 4.5.1's postmaster that always exists.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include "server/smtp_service.h"
#include "store/store.h"

namespace magpie::server {
namespace {

class SmtpRecipients : public ::testing::Test {
protected:
    void SetUp() override {
        std::string pattern = (std::filesystem::temp_directory_path() / "magpie-rcpt-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        dir_ = pattern;
        store::SqliteOptions options;
        options.data_dir = dir_;
        auto opened = store::open_sqlite_store(options);
        ASSERT_TRUE(opened) << opened.error().message;
        store_ = std::move(*opened);
        ASSERT_TRUE(store_->add_domain("example.test"));
        ASSERT_TRUE(store_->add_domain("other.test"));
        // Created in this order: zed is example.test's oldest account, though last by name.
        add("zed@example.test");
        add("alice@example.test");
        add("bob@example.test");
        add("carol@other.test");
    }
    void TearDown() override {
        store_.reset();
        std::filesystem::remove_all(dir_);
    }

    void add(std::string_view address) {
        store::ScramCredentials scram{"salt", 4096, std::string(32, 's'), std::string(32, 'k')};
        auto account = store_->add_account(address, "$argon2id$v=19$m=65536,t=2,p=1$fake", scram);
        ASSERT_TRUE(account) << account.error().message;
    }

    // The account an address reaches, or "" when it is refused.
    std::string who(std::string_view address, RecipientPolicy policy = {"mx.example.test", ""}) {
        auto result = resolve_recipient(*store_, policy, address);
        EXPECT_TRUE(result) << result.error().message;
        if (!result || result->status != store::RecipientStatus::local) return "";
        return result->canonical_address;
    }

    std::filesystem::path dir_;
    std::unique_ptr<store::Store> store_;
};

TEST_F(SmtpRecipients, OrdinaryAddressesFollowTheStore) {
    EXPECT_EQ(who("bob@example.test"), "bob@example.test");
    EXPECT_EQ(who("BOB@Example.Test"), "bob@example.test");
    EXPECT_EQ(who("nobody@example.test"), "");
    auto elsewhere = resolve_recipient(*store_, {"mx.example.test", ""}, "x@elsewhere.example");
    ASSERT_TRUE(elsewhere);
    EXPECT_EQ(elsewhere->status, store::RecipientStatus::not_local_domain);
    EXPECT_EQ(who("webmaster"), "");  // only Postmaster may come without a domain
}

TEST_F(SmtpRecipients, PostmasterExistsWithoutAnyAliasInEveryLocalDomain) {
    for (std::string_view address : {"postmaster@example.test", "PostMaster@EXAMPLE.test", "Postmaster"}) {
        EXPECT_EQ(who(address), "zed@example.test") << address;  // the oldest account of the domain
    }
    EXPECT_EQ(who("postmaster@other.test"), "carol@other.test");
}

TEST_F(SmtpRecipients, ConfiguredPostmasterReceivesEveryDomainsPostmaster) {
    RecipientPolicy policy{"mx.example.test", "bob@example.test"};
    EXPECT_EQ(who("postmaster@example.test", policy), "bob@example.test");
    EXPECT_EQ(who("postmaster@other.test", policy), "bob@example.test");
    EXPECT_EQ(who("POSTMASTER", policy), "bob@example.test");
}

TEST_F(SmtpRecipients, ExplicitAliasOrAccountWinsOverTheConfiguredPostmaster) {
    ASSERT_TRUE(store_->add_alias("postmaster@example.test", "alice@example.test"));
    RecipientPolicy policy{"mx.example.test", "bob@example.test"};
    EXPECT_EQ(who("postmaster@example.test", policy), "alice@example.test");
    EXPECT_EQ(who("Postmaster", policy), "alice@example.test");           // the host name's domain
    EXPECT_EQ(who("postmaster@other.test", policy), "bob@example.test");  // no alias there
    add("postmaster@other.test");
    EXPECT_EQ(who("postmaster@other.test", policy), "postmaster@other.test");
}

TEST_F(SmtpRecipients, ConfiguredPostmasterWinsOverACatchAll) {
    ASSERT_TRUE(store_->add_alias("@example.test", "alice@example.test"));
    EXPECT_EQ(who("random@example.test"), "alice@example.test");
    EXPECT_EQ(who("postmaster@example.test", {"mx.example.test", "bob@example.test"}), "bob@example.test");
    EXPECT_EQ(who("postmaster@example.test"), "alice@example.test");  // unconfigured: the catch-all's owner
}

TEST_F(SmtpRecipients, ConfiguredPostmasterThatIsNoAccountFallsBack) {
    EXPECT_EQ(who("postmaster@example.test", {"mx.example.test", "gone@example.test"}), "zed@example.test");
}

TEST_F(SmtpRecipients, BarePostmasterWhenTheHostNameIsInNoLocalDomain) {
    EXPECT_EQ(who("Postmaster", {"mail.unrelated.example", ""}), "zed@example.test");  // first domain by name
    EXPECT_EQ(who("Postmaster", {"mail.unrelated.example", "carol@other.test"}), "carol@other.test");
    EXPECT_EQ(who("Postmaster", {"other.test", ""}), "carol@other.test");  // the host name is a domain
}

TEST_F(SmtpRecipients, DomainWithoutAccountsHasNoPostmasterToReach) {
    ASSERT_TRUE(store_->add_domain("empty.test"));
    EXPECT_EQ(who("postmaster@empty.test"), "");
    EXPECT_EQ(who("postmaster@empty.test", {"mx.example.test", "bob@example.test"}), "bob@example.test");
}

}  // namespace
}  // namespace magpie::server
