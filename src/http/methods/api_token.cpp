#include "http/methods/api_token.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <fmt/format.h>

#include "base/strings.h"

namespace magpie::http {

NewApiToken make_api_token() {
    unsigned char random[32];
    // Resource exhaustion, not an expected failure: a system without entropy cannot make secrets at all.
    if (RAND_bytes(random, sizeof random) != 1) throw std::runtime_error("no randomness for an API token");
    NewApiToken made;
    made.token = "magpie_" + to_hex(std::string_view(reinterpret_cast<const char*>(random), sizeof random));
    made.hash = hash_api_token(made.token);
    return made;
}

std::string hash_api_token(std::string_view token) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_Digest(token.data(), token.size(), digest, &length, EVP_sha256(), nullptr);
    return std::string(reinterpret_cast<const char*>(digest), length);
}

Result<store::Account> authenticate_token(store::Store& store, auth::LoginThrottle& throttle, std::string_view token,
                                          std::string_view client_ip, std::int64_t now) {
    // Tokens have no user name to throttle by; each network gets its own pseudo-user so that a guessing
    // network locks out only itself, and the network's count is shared with IMAP and SMTP logins.
    const std::string who = fmt::format("bearer token from {}", client_ip);
    auto verdict = throttle.check(who, client_ip, now);
    if (!verdict.allowed) {
        return make_error(Errc::limit_exceeded,
                          fmt::format("too many failed logins; retry in {} seconds", verdict.retry_after_seconds));
    }
    auto found = store.find_api_token(hash_api_token(token));
    if (!found && found.error().code != Errc::not_found) return found.error();
    if (!found || (found->expires_at && *found->expires_at <= now)) {
        throttle.record_failure(who, client_ip, now);
        return make_error(Errc::auth_failed, "unknown or expired token");
    }
    auto account = store.find_account(found->account_address);
    if (!account) return account.error();
    if (account->disabled) return make_error(Errc::permission_denied, "the account is disabled");
    return account;
}

}  // namespace magpie::http
