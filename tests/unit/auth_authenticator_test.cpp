#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <string>

#include "auth/authenticator.h"
#include "auth/crypto.h"
#include "base/strings.h"
#include "store_unused.h"

namespace magpie::auth {
namespace {

using Kind = SaslOutcome::Kind;
using namespace std::string_literals;

constexpr std::int64_t kNow = 1'800'000'000;

// A directory of accounts in memory; only find_account answers, the rest of Store is not used by auth.
class AccountsOnlyStore : public store::UnusedStore {
public:
    std::map<std::string, store::Account> accounts;
    int lookups = 0;
    bool failing = false;

    Result<store::Account> find_account(std::string_view address) override {
        ++lookups;
        if (failing) return make_error(Errc::io_error, "disk on fire");
        auto it = accounts.find(std::string(address));
        if (it == accounts.end()) return make_error(Errc::not_found, "no such account");
        return it->second;
    }
};

// One argon2id hash for the whole file (each costs ~90 ms, more under ASan).
const store::Account& demo_account() {
    static const store::Account account = [] {
        store::Account a;
        a.id = 7;
        a.address = "demo@example.test";
        auto secrets = make_password_secrets("pencil").value();
        a.password_hash = secrets.hash;
        a.scram = secrets.scram;
        return a;
    }();
    return account;
}

class Authenticator : public ::testing::Test {
protected:
    Authenticator() { store.accounts[demo_account().address] = demo_account(); }

    Result<store::Account> login(std::string_view address, std::string_view password,
                                 std::string_view ip = "192.0.2.1") {
        return authenticate_plain(store, limiter, throttle, address, password, ip, kNow);
    }

    AccountsOnlyStore store;
    HashLimiter limiter;
    LoginThrottle throttle{[] {
        ThrottleLimits limits;
        limits.max_user_failures = 2;
        return limits;
    }()};
};

TEST_F(Authenticator, AcceptsRightPasswordAndReturnsAccount) {
    auto account = login("demo@example.test", "pencil");
    ASSERT_TRUE(account) << account.error().message;
    EXPECT_EQ(account->id, 7);
}

TEST_F(Authenticator, WrongPasswordAndUnknownUserFailAlikeAndCount) {
    auto wrong = login("demo@example.test", "pencil2");
    ASSERT_FALSE(wrong);
    EXPECT_EQ(wrong.error().code, Errc::auth_failed);
    auto unknown = login("nobody@example.test", "pencil");
    ASSERT_FALSE(unknown);
    EXPECT_EQ(unknown.error().code, Errc::auth_failed);
    EXPECT_EQ(unknown.error().message, wrong.error().message);
    // The second failure for the account locks it, before any lookup or hash.
    EXPECT_FALSE(login("demo@example.test", "nope"));
    int lookups = store.lookups;
    auto locked = login("demo@example.test", "pencil");
    ASSERT_FALSE(locked);
    EXPECT_EQ(locked.error().code, Errc::limit_exceeded);
    EXPECT_EQ(store.lookups, lookups);
}

TEST_F(Authenticator, DisabledAccountRefusedEvenWithRightPassword) {
    store.accounts["demo@example.test"].disabled = true;
    auto result = login("demo@example.test", "pencil");
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, Errc::permission_denied);
}

TEST_F(Authenticator, StoreFailureKeepsItsCode) {
    store.failing = true;
    auto result = login("demo@example.test", "pencil");
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, Errc::io_error);
}

TEST_F(Authenticator, BusyLimiterRefusesWithUnavailable) {
    HashLimiter busy({.max_concurrent = 1, .max_wait = std::chrono::milliseconds(1)});
    auto held = busy.acquire();
    ASSERT_TRUE(held);
    auto result = authenticate_plain(store, busy, throttle, "demo@example.test", "pencil", "192.0.2.1", kNow);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, Errc::unavailable);
}

TEST_F(Authenticator, AnswersPlainExchange) {
    auto sasl = SaslServer::create("PLAIN").value();
    auto out = sasl.start("\0demo@example.test\0pencil"s);
    ASSERT_EQ(out.kind, Kind::verify_password);
    out = answer_sasl_request(store, limiter, throttle, sasl, out, "192.0.2.1", kNow);
    ASSERT_EQ(out.kind, Kind::success) << out.error.message;
    EXPECT_EQ(out.authcid, "demo@example.test");
}

// The client side of RFC 5802 3, enough to answer a server-first-message for a known password.
std::string scram_client_final(std::string_view client_first_bare, std::string_view server_first,
                               std::string_view password) {
    auto fields = split(server_first, ',');
    std::string nonce(fields[0].substr(2));
    std::string salt = *decode_sasl_base64(fields[1].substr(2));
    std::string salted(32, '\0');
    PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                      reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                      4096, EVP_sha256(), 32, reinterpret_cast<unsigned char*>(salted.data()));
    std::string client_key = hmac_sha256(salted, "Client Key");
    std::string without_proof = "c=biws,r=" + nonce;
    std::string auth_message =
        std::string(client_first_bare) + "," + std::string(server_first) + "," + without_proof;
    std::string proof = hmac_sha256(sha256(client_key), auth_message);
    for (std::size_t i = 0; i < proof.size(); ++i) proof[i] ^= client_key[i];
    return without_proof + ",p=" + encode_sasl_base64(proof);
}

TEST_F(Authenticator, ScramSucceedsWithStoredKeysAndClearsFailures) {
    throttle.record_failure("demo@example.test", "192.0.2.1", kNow);
    auto sasl = SaslServer::create("SCRAM-SHA-256").value();
    auto out = sasl.start("n,,n=demo@example.test,r=abcdef"s);
    out = answer_sasl_request(store, limiter, throttle, sasl, out, "192.0.2.1", kNow);
    ASSERT_EQ(out.kind, Kind::challenge) << out.error.message;
    out = sasl.step(scram_client_final("n=demo@example.test,r=abcdef", out.data, "pencil"));
    ASSERT_EQ(out.kind, Kind::challenge) << out.error.message;
    EXPECT_TRUE(out.data.starts_with("v="));
    out = sasl.step("");
    ASSERT_EQ(out.kind, Kind::success);
    record_sasl_result(throttle, sasl, out, "192.0.2.1", kNow);
    // The earlier failure is forgotten: one more does not reach the limit of two.
    throttle.record_failure("demo@example.test", "192.0.2.1", kNow);
    EXPECT_TRUE(throttle.check("demo@example.test", "192.0.2.1", kNow).allowed);
}

TEST_F(Authenticator, ScramLookupHonoursThrottleAndDisabled) {
    auto credentials = find_scram_credentials(store, throttle, "demo@example.test", "192.0.2.1", kNow);
    ASSERT_TRUE(credentials);
    EXPECT_EQ(credentials->stored_key, demo_account().scram.stored_key);
    EXPECT_EQ(find_scram_credentials(store, throttle, "x@example.test", "192.0.2.1", kNow).error().code,
              Errc::not_found);
    store.accounts["demo@example.test"].disabled = true;
    EXPECT_EQ(find_scram_credentials(store, throttle, "demo@example.test", "192.0.2.1", kNow).error().code,
              Errc::permission_denied);
    throttle.record_failure("demo@example.test", "192.0.2.1", kNow);
    throttle.record_failure("demo@example.test", "192.0.2.1", kNow);
    EXPECT_EQ(find_scram_credentials(store, throttle, "demo@example.test", "192.0.2.1", kNow).error().code,
              Errc::limit_exceeded);
}

TEST_F(Authenticator, FailedScramProofCountsInThrottle) {
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto sasl = SaslServer::create("SCRAM-SHA-256").value();
        auto out = sasl.start("n,,n=demo@example.test,r=abcdef"s);
        ASSERT_EQ(out.kind, Kind::need_scram_credentials);
        out = answer_sasl_request(store, limiter, throttle, sasl, out, "192.0.2.1", kNow);
        ASSERT_EQ(out.kind, Kind::challenge) << out.error.message;
        std::string nonce = out.data.substr(2, out.data.find(',') - 2);
        out = sasl.step("c=biws,r=" + nonce + ",p=" + encode_sasl_base64(std::string(32, 'x')));
        ASSERT_EQ(out.kind, Kind::failure);
        record_sasl_result(throttle, sasl, out, "192.0.2.1", kNow);
    }
    EXPECT_FALSE(throttle.check("demo@example.test", "192.0.2.9", kNow).allowed);
}

// The keys must survive the real store's columns byte for byte (they are raw bytes, NULs included).
TEST(AuthenticatorOverSqlite, PlainAndScramWorkWithStoredSecrets) {
    std::string dir_template = (std::filesystem::temp_directory_path() / "magpie-auth-XXXXXX").string();
    ASSERT_NE(mkdtemp(dir_template.data()), nullptr);
    std::filesystem::path dir(dir_template);
    {
        store::SqliteOptions options;
        options.data_dir = dir;
        auto opened = store::open_sqlite_store(options);
        ASSERT_TRUE(opened) << opened.error().message;
        store::Store& sqlite = **opened;
        ASSERT_TRUE(sqlite.add_domain("example.test"));
        ASSERT_TRUE(
            sqlite.add_account("demo@example.test", demo_account().password_hash, demo_account().scram));
        HashLimiter limiter;
        LoginThrottle throttle;

        auto account =
            authenticate_plain(sqlite, limiter, throttle, "demo@Example.TEST", "pencil", "192.0.2.1", kNow);
        ASSERT_TRUE(account) << account.error().message;
        EXPECT_EQ(account->address, "demo@example.test");

        auto sasl = SaslServer::create("SCRAM-SHA-256").value();
        auto out = sasl.start("n,,n=demo@example.test,r=xyz"s);
        out = answer_sasl_request(sqlite, limiter, throttle, sasl, out, "192.0.2.1", kNow);
        ASSERT_EQ(out.kind, Kind::challenge) << out.error.message;
        out = sasl.step(scram_client_final("n=demo@example.test,r=xyz", out.data, "pencil"));
        EXPECT_EQ(out.kind, Kind::challenge) << out.error.message;

        ASSERT_TRUE(sqlite.set_disabled("demo@example.test", true));
        auto disabled =
            authenticate_plain(sqlite, limiter, throttle, "demo@example.test", "pencil", "192.0.2.1", kNow);
        ASSERT_FALSE(disabled);
        EXPECT_EQ(disabled.error().code, Errc::permission_denied);
    }
    std::filesystem::remove_all(dir);
}

// A held limiter makes any argon2id verification fail with `unavailable`: what succeeds then did not hash.
class VerifiedCacheLogin : public Authenticator {
protected:
    Result<store::Account> login_busy(std::string_view password, std::int64_t now) {
        return authenticate_plain(store, busy, throttle, "demo@example.test", password, "192.0.2.1", now, &cache);
    }
    VerifiedCache cache{{.ttl_seconds = 60, .max_entries = 100}};
    HashLimiter busy{{.max_concurrent = 1, .max_wait = std::chrono::milliseconds(1)}};
};

TEST_F(VerifiedCacheLogin, RepeatedLoginWithinTtlSkipsArgon2) {
    ASSERT_TRUE(authenticate_plain(store, limiter, throttle, "demo@example.test", "pencil", "192.0.2.1", kNow,
                                   &cache));
    auto held = busy.acquire();
    ASSERT_TRUE(held);
    auto again = login_busy("pencil", kNow + 30);
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_EQ(again->id, 7);
}

TEST_F(VerifiedCacheLogin, WrongPasswordAlwaysPaysTheFullVerification) {
    ASSERT_TRUE(authenticate_plain(store, limiter, throttle, "demo@example.test", "pencil", "192.0.2.1", kNow,
                                   &cache));
    auto held = busy.acquire();
    auto wrong = login_busy("pencil2", kNow + 1);
    ASSERT_FALSE(wrong);
    EXPECT_EQ(wrong.error().code, Errc::unavailable);  // it needed a hashing slot
}

TEST_F(VerifiedCacheLogin, ExpiresAfterTtlAndForgetsOnPasswordChange) {
    ASSERT_TRUE(authenticate_plain(store, limiter, throttle, "demo@example.test", "pencil", "192.0.2.1", kNow,
                                   &cache));
    auto held = busy.acquire();
    EXPECT_FALSE(login_busy("pencil", kNow + 61));  // expired: must hash, and cannot
    store.accounts["demo@example.test"].password_hash = hash_password("pencil").value();  // a new salt
    EXPECT_FALSE(login_busy("pencil", kNow + 1));
}

TEST_F(VerifiedCacheLogin, DisabledAccountRefusedEvenFromTheCache) {
    ASSERT_TRUE(authenticate_plain(store, limiter, throttle, "demo@example.test", "pencil", "192.0.2.1", kNow,
                                   &cache));
    store.accounts["demo@example.test"].disabled = true;
    auto held = busy.acquire();
    auto result = login_busy("pencil", kNow + 1);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, Errc::permission_denied);
}

TEST(VerifiedCacheBounds, KeepsAtMostMaxEntriesAndNothingWhenOff) {
    VerifiedCache cache({.ttl_seconds = 60, .max_entries = 3});
    for (int i = 0; i < 10; ++i) cache.remember("$argon2id$h", "password" + std::to_string(i), kNow);
    EXPECT_EQ(cache.size(), 3u);
    EXPECT_TRUE(cache.contains("$argon2id$h", "password9", kNow));
    EXPECT_FALSE(cache.contains("$argon2id$h", "password0", kNow));
    EXPECT_FALSE(cache.contains("$argon2id$other", "password9", kNow));
    VerifiedCache off({.ttl_seconds = 0});
    off.remember("$argon2id$h", "p", kNow);
    EXPECT_FALSE(off.contains("$argon2id$h", "p", kNow));
}

}  // namespace
}  // namespace magpie::auth
