#include "auth/authenticator.h"

#include <fmt/format.h>

#include "auth/crypto.h"

namespace magpie::auth {
namespace {

// A real argon2id hash of a random password, made once, so that checking an unknown user or an account
// without a usable hash spends the same time and memory as checking a real one.
const std::string& dummy_hash() {
    static const std::string hash = hash_password(encode_sasl_base64(random_bytes(24))).value();
    return hash;
}

Error throttled(const ThrottleVerdict& verdict) {
    return make_error(Errc::limit_exceeded, fmt::format("too many failed logins; try again in {} seconds",
                                                        verdict.retry_after_seconds));
}

}  // namespace

Result<store::Account> authenticate_plain(store::Store& store, HashLimiter& limiter, LoginThrottle& throttle,
                                          std::string_view address, std::string_view password,
                                          std::string_view client_ip, std::int64_t now, VerifiedCache* cache) {
    ThrottleVerdict verdict = throttle.check(address, client_ip, now);
    if (!verdict.allowed) return throttled(verdict);

    auto account = store.find_account(address);
    if (!account && account.error().code != Errc::not_found) return account.error();
    const std::string& hash = dummy_hash();  // the first call hashes once: keep that outside the slot
    bool known = account && !account->password_hash.empty();

    bool matches = known && cache && cache->contains(account->password_hash, password, now);
    if (!matches) {
        std::string_view checked = known ? std::string_view(account->password_hash) : std::string_view(hash);
        auto ran = limiter.run([&] { matches = verify_password(checked, password); });
        if (!ran) return ran.error();
        if (known && matches && cache) cache->remember(account->password_hash, password, now);
    }
    if (!known || !matches) {
        throttle.record_failure(address, client_ip, now);
        return make_error(Errc::auth_failed, "authentication failed");
    }
    if (account->disabled) return make_error(Errc::permission_denied, "account disabled");
    throttle.record_success(address, client_ip, now);
    return std::move(*account);
}

Result<store::ScramCredentials> find_scram_credentials(store::Store& store, LoginThrottle& throttle,
                                                       std::string_view address, std::string_view client_ip,
                                                       std::int64_t now) {
    ThrottleVerdict verdict = throttle.check(address, client_ip, now);
    if (!verdict.allowed) return throttled(verdict);
    auto account = store.find_account(address);
    if (!account) return account.error();
    if (account->disabled) return make_error(Errc::permission_denied, "account disabled");
    if (account->scram.stored_key.empty()) return make_error(Errc::not_found, "account has no SCRAM keys");
    return std::move(account->scram);
}

SaslOutcome answer_sasl_request(store::Store& store, HashLimiter& limiter, LoginThrottle& throttle,
                                SaslServer& sasl, const SaslOutcome& request, std::string_view client_ip,
                                std::int64_t now, VerifiedCache* cache) {
    switch (request.kind) {
        case SaslOutcome::Kind::verify_password: {
            auto account = authenticate_plain(store, limiter, throttle, request.authcid, request.password,
                                              client_ip, now, cache);
            return sasl.password_checked(account ? Result<void>() : Result<void>(account.error()));
        }
        case SaslOutcome::Kind::need_scram_credentials:
            return sasl.scram_credentials(
                find_scram_credentials(store, throttle, request.authcid, client_ip, now));
        case SaslOutcome::Kind::challenge:
        case SaslOutcome::Kind::success:
        case SaslOutcome::Kind::failure:
            break;
    }
    return request;
}

void record_sasl_result(LoginThrottle& throttle, const SaslServer& sasl, const SaslOutcome& outcome,
                        std::string_view client_ip, std::int64_t now) {
    if (sasl.mechanism() != SaslMechanism::scram_sha_256 || outcome.authcid.empty()) return;
    if (outcome.kind == SaslOutcome::Kind::success) {
        throttle.record_success(outcome.authcid, client_ip, now);
    } else if (outcome.kind == SaslOutcome::Kind::failure && outcome.error.code == Errc::auth_failed) {
        throttle.record_failure(outcome.authcid, client_ip, now);
    }
}

}  // namespace magpie::auth
