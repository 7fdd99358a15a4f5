#include "auth/crypto.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <sodium.h>

#include <new>
#include <stdexcept>

namespace magpie::auth {

void ensure_sodium() {
    // sodium_init is idempotent; -1 means no usable entropy source, which no caller can work around.
    static const int init = sodium_init();
    if (init < 0) throw std::runtime_error("libsodium could not initialize");
}

std::string sha256(std::string_view data) {
    unsigned char out[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out);
    return std::string(reinterpret_cast<const char*>(out), sizeof out);
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
              reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &length)) {
        throw std::bad_alloc();  // OpenSSL fails here only when it cannot allocate
    }
    return std::string(reinterpret_cast<const char*>(out), length);
}

std::string random_bytes(std::size_t count) {
    ensure_sodium();
    std::string out(count, '\0');
    randombytes_buf(out.data(), out.size());
    return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    if (a.empty()) return true;
    return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace magpie::auth
