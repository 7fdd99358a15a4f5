#include "auth/password.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sodium.h>

#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <future>
#include <new>

#include "auth/crypto.h"
#include "base/strings.h"

namespace magpie::auth {
namespace {

// Decodes the code point at s[i] of already validated UTF-8 and advances i.
char32_t next_code_point(std::string_view s, std::size_t& i) {
    auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char c = byte(i);
    if (c < 0x80) {
        ++i;
        return c;
    }
    int extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
    char32_t cp = c & (0x3F >> extra);
    for (int k = 1; k <= extra; ++k) cp = (cp << 6) | (byte(i + k) & 0x3F);
    i += extra + 1;
    return cp;
}

// RFC 3454 C.1.2 (Unicode 3.2 Zs other than U+0020).
bool is_non_ascii_space(char32_t c) {
    return c == 0x00A0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200B) || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

// RFC 3454 B.1.
bool is_mapped_to_nothing(char32_t c) {
    return c == 0x00AD || c == 0x034F || c == 0x1806 || (c >= 0x180B && c <= 0x180D) ||
           (c >= 0x200B && c <= 0x200D) || c == 0x2060 || (c >= 0xFE00 && c <= 0xFE0F) || c == 0xFEFF;
}

// RFC 4013 2.3: RFC 3454 C.2.1, C.2.2, C.3, C.4, C.6, C.7, C.8, C.9 (C.1.2 is mapped, C.5 cannot occur
// in valid UTF-8).
bool is_prohibited(char32_t c) {
    if (c < 0x20 || c == 0x7F || (c >= 0x80 && c <= 0x9F)) return true;  // C.2.1, C.2.2
    if (c == 0x06DD || c == 0x070F || c == 0x180E || c == 0x200C || c == 0x200D || c == 0x2028 ||
        c == 0x2029 || (c >= 0x2060 && c <= 0x2063) || (c >= 0x206A && c <= 0x206F) || c == 0xFEFF ||
        (c >= 0xFFF9 && c <= 0xFFFC) || (c >= 0x1D173 && c <= 0x1D17A)) {
        return true;  // C.2.2
    }
    if ((c >= 0xE000 && c <= 0xF8FF) || c >= 0xF0000) return true;            // C.3 (planes 15 and 16)
    if ((c >= 0xFDD0 && c <= 0xFDEF) || (c & 0xFFFE) == 0xFFFE) return true;  // C.4
    if (c >= 0xFFF9 && c <= 0xFFFD) return true;                              // C.6
    if (c >= 0x2FF0 && c <= 0x2FFB) return true;                              // C.7
    if (c == 0x0340 || c == 0x0341 || c == 0x200E || c == 0x200F || (c >= 0x202A && c <= 0x202E)) {
        return true;  // C.8
    }
    return c == 0xE0001 || (c >= 0xE0020 && c <= 0xE007F);  // C.9
}

// Overwrites a plaintext copy before its memory goes back to the allocator.
struct Wiped {
    std::string text;
    ~Wiped() { sodium_memzero(text.data(), text.size()); }
};

}  // namespace

Result<std::string> saslprep(std::string_view text) {
    if (text.size() > kMaxPasswordOctets) return make_error(Errc::limit_exceeded, "longer than the limit");
    if (!is_valid_utf8(text)) return make_error(Errc::invalid_argument, "not valid UTF-8");
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
        char32_t c = next_code_point(text, i);
        // RFC 4013 2.1: spaces first, then B.1 (U+200B is in both lists).
        if (is_non_ascii_space(c)) {
            c = U' ';
        } else if (is_mapped_to_nothing(c)) {
            continue;
        }
        if (is_prohibited(c)) {
            sodium_memzero(out.data(), out.size());
            return make_error(Errc::invalid_argument, "holds a control or prohibited character");
        }
        append_utf8(out, c);
    }
    if (out.empty()) return make_error(Errc::invalid_argument, "empty");
    return out;
}

Result<std::string> hash_password(std::string_view password) {
    ensure_sodium();
    auto prepared = saslprep(password);
    if (!prepared) return make_error(prepared.error().code, "password " + prepared.error().message);
    Wiped plain{std::move(*prepared)};
    char out[crypto_pwhash_STRBYTES];
    if (crypto_pwhash_str_alg(out, plain.text.data(), plain.text.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13) != 0) {
        throw std::bad_alloc();  // libsodium fails here only when it cannot get the 64 MiB
    }
    return std::string(out);
}

bool verify_password(std::string_view hash, std::string_view password) {
    ensure_sodium();
    if (hash.empty() || hash.size() >= crypto_pwhash_STRBYTES) return false;
    auto prepared = saslprep(password);
    if (!prepared) return false;
    Wiped plain{std::move(*prepared)};
    std::string terminated(hash);  // crypto_pwhash_str_verify reads a C string
    return crypto_pwhash_str_verify(terminated.c_str(), plain.text.data(), plain.text.size()) == 0;
}

bool password_needs_rehash(std::string_view hash) {
    ensure_sodium();
    if (hash.empty() || hash.size() >= crypto_pwhash_STRBYTES) return true;
    std::string terminated(hash);
    return crypto_pwhash_str_needs_rehash(terminated.c_str(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0;
}

Result<store::ScramCredentials> make_scram_credentials_with_salt(std::string_view password,
                                                                 std::string_view salt,
                                                                 std::uint32_t iterations) {
    if (iterations < kMinScramIterations || iterations > kMaxScramIterations) {
        return make_error(Errc::invalid_argument, "SCRAM iteration count out of range");
    }
    if (salt.empty()) return make_error(Errc::invalid_argument, "SCRAM salt is empty");
    auto prepared = saslprep(password);
    if (!prepared) return make_error(prepared.error().code, "password " + prepared.error().message);
    Wiped plain{std::move(*prepared)};
    Wiped salted{std::string(SHA256_DIGEST_LENGTH, '\0')};
    if (PKCS5_PBKDF2_HMAC(plain.text.data(), static_cast<int>(plain.text.size()),
                          reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                          static_cast<int>(iterations), EVP_sha256(), static_cast<int>(salted.text.size()),
                          reinterpret_cast<unsigned char*>(salted.text.data())) != 1) {
        throw std::bad_alloc();
    }
    Wiped client_key{hmac_sha256(salted.text, "Client Key")};
    store::ScramCredentials credentials;
    credentials.salt = std::string(salt);
    credentials.iterations = iterations;
    credentials.stored_key = sha256(client_key.text);
    credentials.server_key = hmac_sha256(salted.text, "Server Key");
    return credentials;
}

Result<store::ScramCredentials> make_scram_credentials(std::string_view password, std::uint32_t iterations) {
    return make_scram_credentials_with_salt(password, random_bytes(16), iterations);
}

Result<PasswordSecrets> make_password_secrets(std::string_view password) {
    auto hash = hash_password(password);
    if (!hash) return hash.error();
    auto scram = make_scram_credentials(password);
    if (!scram) return scram.error();
    return PasswordSecrets{std::move(*hash), std::move(*scram)};
}

HashLimiter::HashLimiter(HashLimiterOptions options) : options_(options) {
    if (options_.max_concurrent == 0) options_.max_concurrent = 1;
}

HashLimiter::~HashLimiter() {
    {
        std::lock_guard lock(jobs_mutex_);
        stopping_ = true;
    }
    jobs_ready_.notify_all();
    for (auto& thread : threads_) thread.join();
}

Result<HashLimiter::Permit> HashLimiter::acquire() {
    std::unique_lock lock(mutex_);
    if (!freed_.wait_for(lock, options_.max_wait, [&] { return in_use_ < options_.max_concurrent; })) {
        return make_error(Errc::unavailable, "too many logins in progress; try again later");
    }
    ++in_use_;
    return Permit(this);
}

Result<void> HashLimiter::run(const std::function<void()>& work) {
    auto permit = acquire();
    if (!permit) return permit.error();
    std::promise<void> done;
    auto finished = done.get_future();
    {
        std::lock_guard lock(jobs_mutex_);
        // One thread per slot, so a permit always finds one idle.
        if (threads_.size() < options_.max_concurrent) threads_.emplace_back([this] { serve(); });
        jobs_.emplace_back([&work, &done] {
            work();
            done.set_value();
        });
    }
    jobs_ready_.notify_one();
    finished.wait();
    return {};
}

void HashLimiter::serve() {
    // This thread only (on Linux a thread id names one thread to setpriority), and only ever lower: a magpied
    // already started at a higher niceness (or as root, which may lower it) keeps its own for these threads.
    const auto self = static_cast<id_t>(::gettid());
    errno = 0;
    const int current = ::getpriority(PRIO_PROCESS, self);
    if (errno == 0 && options_.nice > current) (void)::setpriority(PRIO_PROCESS, self, options_.nice);
    std::unique_lock lock(jobs_mutex_);
    for (;;) {
        jobs_ready_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopping, nothing left
        auto job = std::move(jobs_.front());
        jobs_.pop_front();
        lock.unlock();
        job();
        lock.lock();
    }
}

void HashLimiter::release() {
    {
        std::lock_guard lock(mutex_);
        --in_use_;
    }
    freed_.notify_one();
}

std::size_t HashLimiter::in_use() const {
    std::lock_guard lock(mutex_);
    return in_use_;
}

HashLimiter::Permit& HashLimiter::Permit::operator=(Permit&& other) noexcept {
    if (this != &other) {
        if (owner_) owner_->release();
        owner_ = other.owner_;
        other.owner_ = nullptr;
    }
    return *this;
}

HashLimiter::Permit::~Permit() {
    if (owner_) owner_->release();
}

}  // namespace magpie::auth
