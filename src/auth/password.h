// Password secrets: argon2id hashes for PLAIN/LOGIN (libsodium crypto_pwhash_str), SCRAM-SHA-256 keys for
// SCRAM (RFC 5802 3, RFC 7677), the SASLprep subset both apply to a password first, and HashLimiter, which
// bounds how many 64 MiB argon2id computations run at once and runs them on threads of a lower CPU priority.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/result.h"
#include "store/store.h"

namespace magpie::auth {

// The longest password accepted, in octets after UTF-8 encoding. Far above any real password, far below
// anything that would make hashing or SCRAM proofs costly.
inline constexpr std::size_t kMaxPasswordOctets = 1024;

// RFC 7677 4: at least 4096 iterations. The upper bound keeps a stored or configured count from turning
// one login into minutes of client work.
inline constexpr std::uint32_t kMinScramIterations = 4096;
inline constexpr std::uint32_t kMaxScramIterations = 10'000'000;

// Prepares a password or user name the way RFC 4013 (SASLprep) does, minus Unicode normalization, which
// needs tables Magpie does not carry:
//  - the input must be valid UTF-8 and at most kMaxPasswordOctets long;
//  - non-ASCII spaces (RFC 3454 C.1.2) become U+0020; "commonly mapped to nothing" characters (B.1, such
//    as the soft hyphen and zero-width joiners) are removed;
//  - prohibited characters are refused: controls (C.2), private use (C.3), non-characters (C.4),
//    inappropriate ones (C.6, C.7), direction and deprecated format characters (C.8), tags (C.9);
//  - the result must not be empty.
// Not done: NFKC and the bidirectional checks of RFC 3454 6. A non-ASCII password typed in another
// normalization form than it was set in does not match; ASCII passwords are unaffected.
Result<std::string> saslprep(std::string_view text);

// Hashes a password with argon2id at libsodium's interactive limits (about 90 ms and 64 MiB). Fails with
// invalid_argument when the password fails saslprep. Call it under a HashLimiter permit, off network threads.
Result<std::string> hash_password(std::string_view password);

// True when `password` matches `hash` (a crypto_pwhash_str string). The comparison is libsodium's, in
// constant time. A password that fails saslprep or a malformed hash never matches.
bool verify_password(std::string_view hash, std::string_view password);

// True when `hash` was made with other parameters than hash_password uses now (rehash on next login).
bool password_needs_rehash(std::string_view hash);

// SCRAM-SHA-256 keys for a password (RFC 5802 3): SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, i),
// ClientKey = HMAC(SaltedPassword, "Client Key"), StoredKey = SHA-256(ClientKey),
// ServerKey = HMAC(SaltedPassword, "Server Key"). A fresh 16-byte random salt.
Result<store::ScramCredentials> make_scram_credentials(std::string_view password,
                                                       std::uint32_t iterations = kMinScramIterations);

// The same with a given salt (raw bytes): for test vectors and for re-deriving known keys.
Result<store::ScramCredentials> make_scram_credentials_with_salt(std::string_view password,
                                                                 std::string_view salt,
                                                                 std::uint32_t iterations);

// Both secrets a password change stores (Store::add_account / set_password take them together).
struct PasswordSecrets {
    std::string hash;
    store::ScramCredentials scram;
};
Result<PasswordSecrets> make_password_secrets(std::string_view password);

// A counting semaphore for argon2id work: at most max_concurrent hashes or verifies at once (each holds
// 64 MiB), and a caller waits at most max_wait for a slot, then gets Errc::unavailable, so a login flood
// queues briefly and is then refused instead of exhausting memory or threads. run() does the work on one of
// max_concurrent threads of the limiter's own, at `nice` (Linux niceness, 0 to 19, of each thread): a login
// flood (about 90 ms of CPU a try) then takes the CPU that mail delivery and logged-in sessions leave idle
// instead of an equal share of it (issue 11: nothing unauthenticated starves delivery).
struct HashLimiterOptions {
    std::size_t max_concurrent = 4;
    std::chrono::milliseconds max_wait{2000};
    int nice = 10;
};

class HashLimiter {
public:
    // Holds one slot until destroyed. Move-only.
    class Permit {
    public:
        Permit(Permit&& other) noexcept : owner_(other.owner_) { other.owner_ = nullptr; }
        Permit& operator=(Permit&& other) noexcept;
        Permit(const Permit&) = delete;
        Permit& operator=(const Permit&) = delete;
        ~Permit();

    private:
        friend class HashLimiter;
        explicit Permit(HashLimiter* owner) : owner_(owner) {}
        HashLimiter* owner_;
    };

    explicit HashLimiter(HashLimiterOptions options = {});
    ~HashLimiter();
    HashLimiter(const HashLimiter&) = delete;
    HashLimiter& operator=(const HashLimiter&) = delete;

    // Takes a slot, waiting up to options.max_wait; Errc::unavailable when none frees up in time.
    Result<Permit> acquire();

    // Takes a slot (as acquire()), runs work() on a hashing thread and returns once it has returned; the
    // slot is held meanwhile. work must not throw. Errc::unavailable when no slot freed up in time.
    Result<void> run(const std::function<void()>& work);

    std::size_t in_use() const;

private:
    void release();
    void serve();

    HashLimiterOptions options_;
    mutable std::mutex mutex_;
    std::condition_variable freed_;
    std::size_t in_use_ = 0;

    // The hashing threads (started with the first run()) and the work handed to them.
    std::mutex jobs_mutex_;
    std::condition_variable jobs_ready_;
    std::deque<std::function<void()>> jobs_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace magpie::auth
