#include <gtest/gtest.h>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "auth/password.h"
#include "auth/sasl.h"
#include "base/strings.h"

namespace magpie::auth {
namespace {

using namespace std::chrono_literals;

// argon2id costs ~90 ms (more under ASan): one hash and two verifies in this whole file.
TEST(Password, Argon2idRoundTripAcceptsRightAndRejectsWrongPassword) {
    auto secrets = make_password_secrets("correct horse battery staple");
    ASSERT_TRUE(secrets) << secrets.error().message;
    EXPECT_TRUE(secrets->hash.starts_with("$argon2id$"));
    EXPECT_FALSE(password_needs_rehash(secrets->hash));
    EXPECT_TRUE(verify_password(secrets->hash, "correct horse battery staple"));
    EXPECT_FALSE(verify_password(secrets->hash, "correct horse battery stapler"));
    EXPECT_EQ(secrets->scram.iterations, 4096u);
    EXPECT_EQ(secrets->scram.salt.size(), 16u);
    EXPECT_EQ(secrets->scram.stored_key.size(), 32u);
    EXPECT_EQ(secrets->scram.server_key.size(), 32u);
}

TEST(Password, MalformedHashNeverMatches) {
    EXPECT_FALSE(verify_password("", "x"));
    EXPECT_FALSE(verify_password("$argon2id$garbage", "x"));
    EXPECT_FALSE(verify_password(std::string(200, 'a'), "x"));
    EXPECT_TRUE(password_needs_rehash(""));
}

TEST(Password, HashRefusesPasswordWithControlCharacter) {
    auto hash = hash_password("abc\x01");
    ASSERT_FALSE(hash);
    EXPECT_EQ(hash.error().code, Errc::invalid_argument);
}

TEST(Saslprep, MapsNonAsciiSpaceAndRemovesMappedToNothing) {
    // RFC 4013 3 examples: "I<U+00AD>X" -> "IX", "user" -> "user".
    EXPECT_EQ(*saslprep("I\xC2\xADX"), "IX");
    EXPECT_EQ(*saslprep("user"), "user");
    EXPECT_EQ(*saslprep("a\xC2\xA0"
                        "b"),
              "a b");  // NO-BREAK SPACE
    EXPECT_EQ(*saslprep("a\xE3\x80\x80"
                        "b"),
              "a b");                                    // IDEOGRAPHIC SPACE
    EXPECT_EQ(*saslprep("p\xC3\xA4ss"), "p\xC3\xA4ss");  // ordinary non-ASCII kept
}

TEST(Saslprep, RejectsControlsProhibitedAndInvalidUtf8) {
    EXPECT_FALSE(saslprep("\x07"));  // RFC 4013 3: <U+0007> is prohibited
    EXPECT_FALSE(saslprep("a\x7F"));
    EXPECT_FALSE(saslprep("a\xC2\x85"));      // C1 control NEL
    EXPECT_FALSE(saslprep("a\xEE\x80\x80"));  // U+E000 private use
    EXPECT_FALSE(saslprep("a\xE2\x80\x8E"));  // U+200E LEFT-TO-RIGHT MARK
    EXPECT_FALSE(saslprep("a\xEF\xBF\xBE"));  // U+FFFE non-character
    EXPECT_FALSE(saslprep("a\xFF"));          // not UTF-8
    EXPECT_FALSE(saslprep("a\xC0\xAF"));      // overlong
    EXPECT_FALSE(saslprep(""));
    EXPECT_FALSE(saslprep("\xC2\xAD"));  // maps to nothing, leaving it empty
    EXPECT_EQ(saslprep(std::string(kMaxPasswordOctets + 1, 'a')).error().code, Errc::limit_exceeded);
}

TEST(Scram, CredentialsMatchRfc7677Vector) {
    auto salt = decode_sasl_base64("W22ZaJ0SNY7soEsUEjb6gQ==");
    ASSERT_TRUE(salt);
    auto credentials = make_scram_credentials_with_salt("pencil", *salt, 4096);
    ASSERT_TRUE(credentials);
    EXPECT_EQ(to_hex(credentials->stored_key),
              "586e5df283e6dceb5c3e791d8b8528ec191e664045ce971792e2e6b5bb13e2a6");
    EXPECT_EQ(to_hex(credentials->server_key),
              "c1f3cbc1c13a9d35a14c0990eed97629ea225863e566a4314ab99f3f00e5d9d5");
    EXPECT_EQ(credentials->salt, *salt);
}

TEST(Scram, KeysDeriveFromPreparedPassword) {
    // SASLprep maps NO-BREAK SPACE to SPACE and drops the soft hyphen, so these are one password.
    auto mapped = make_scram_credentials_with_salt(
        "a\xC2\xA0"
        "b\xC2\xAD",
        "salt", 4096);
    auto plain = make_scram_credentials_with_salt("a b", "salt", 4096);
    ASSERT_TRUE(mapped && plain);
    EXPECT_EQ(mapped->stored_key, plain->stored_key);
    EXPECT_NE(make_scram_credentials_with_salt("a  b", "salt", 4096)->stored_key, plain->stored_key);
}

TEST(Scram, RefusesIterationCountBelowRfc7677Minimum) {
    EXPECT_FALSE(make_scram_credentials("pencil", 4095));
    EXPECT_FALSE(make_scram_credentials("pencil", kMaxScramIterations + 1));
    EXPECT_FALSE(make_scram_credentials_with_salt("pencil", "", 4096));
}

TEST(Scram, FreshSaltEachTime) {
    auto a = make_scram_credentials("pencil");
    auto b = make_scram_credentials("pencil");
    ASSERT_TRUE(a && b);
    EXPECT_NE(a->salt, b->salt);
    EXPECT_NE(a->stored_key, b->stored_key);
}

TEST(HashLimiter, RefusesBeyondMaxConcurrencyAfterBoundedWait) {
    HashLimiter limiter({.max_concurrent = 2, .max_wait = 20ms});
    auto first = limiter.acquire();
    auto second = limiter.acquire();
    ASSERT_TRUE(first && second);
    EXPECT_EQ(limiter.in_use(), 2u);
    auto started = std::chrono::steady_clock::now();
    auto third = limiter.acquire();
    ASSERT_FALSE(third);
    EXPECT_EQ(third.error().code, Errc::unavailable);
    EXPECT_GE(std::chrono::steady_clock::now() - started, 20ms);
    { auto released = std::move(*first); }
    EXPECT_EQ(limiter.in_use(), 1u);
    EXPECT_TRUE(limiter.acquire());
}

TEST(HashLimiter, WaiterGetsSlotWhenOneIsReleased) {
    HashLimiter limiter({.max_concurrent = 1, .max_wait = 5s});
    auto held = limiter.acquire();
    ASSERT_TRUE(held);
    std::atomic<bool> got{false};
    std::thread waiter([&] {
        auto permit = limiter.acquire();
        got = permit.ok();
    });
    std::this_thread::sleep_for(20ms);
    EXPECT_FALSE(got);
    { auto released = std::move(*held); }
    waiter.join();
    EXPECT_TRUE(got);
    EXPECT_EQ(limiter.in_use(), 0u);
}

TEST(HashLimiter, RunsWorkOnItsOwnThreadsAtTheirNiceness) {
    HashLimiter limiter({.max_concurrent = 2, .max_wait = 5s, .nice = 7});
    const int caller = ::getpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()));
    int seen = -100;
    pid_t thread = 0;
    ASSERT_TRUE(limiter.run([&] {
        thread = ::gettid();
        seen = ::getpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()));
    }));
    EXPECT_NE(thread, ::gettid());
    // Niceness only goes up without privileges: at least 7, or the caller's when that is higher already.
    EXPECT_EQ(seen, std::max(7, caller));
    EXPECT_EQ(::getpriority(PRIO_PROCESS, static_cast<id_t>(::gettid())), caller);
    EXPECT_EQ(limiter.in_use(), 0u);
}

TEST(HashLimiter, RunRefusesWhileEverySlotIsHeld) {
    HashLimiter limiter({.max_concurrent = 1, .max_wait = 10ms});
    auto held = limiter.acquire();
    ASSERT_TRUE(held);
    bool ran = false;
    auto refused = limiter.run([&] { ran = true; });
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, Errc::unavailable);
    EXPECT_FALSE(ran);
    { auto released = std::move(*held); }
    EXPECT_TRUE(limiter.run([&] { ran = true; }));
    EXPECT_TRUE(ran);
}

TEST(HashLimiter, ConcurrentRunsAllFinish) {
    HashLimiter limiter({.max_concurrent = 2, .max_wait = 5s});
    std::atomic<int> done{0};
    std::vector<std::thread> callers;
    for (int i = 0; i < 6; ++i) {
        callers.emplace_back([&] {
            auto ran = limiter.run([&] {
                std::this_thread::sleep_for(5ms);
                ++done;
            });
            EXPECT_TRUE(ran);
        });
    }
    for (auto& c : callers) c.join();
    EXPECT_EQ(done.load(), 6);
    EXPECT_EQ(limiter.in_use(), 0u);
}

}  // namespace
}  // namespace magpie::auth
