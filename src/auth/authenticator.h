// Login checks over the store: joins LoginThrottle, HashLimiter, argon2id verification and the account
// directory for PLAIN/LOGIN, looks up SCRAM keys for SCRAM-SHA-256, and answers a SaslServer's requests.
// Every function here may block (store lookup, ~90 ms of argon2id): call them off the network threads.
#pragma once

#include <cstdint>
#include <string_view>

#include "auth/password.h"
#include "auth/sasl.h"
#include "auth/throttle.h"
#include "auth/verified_cache.h"
#include "base/result.h"
#include "store/store.h"

namespace magpie::auth {

// Checks an address and password. In order: the throttle (limit_exceeded with the wait in the message),
// the account lookup, a HashLimiter slot (unavailable when none frees up), argon2id verification. An
// unknown address is verified against a dummy hash so that it costs the same as a known one. Wrong
// passwords and unknown users are auth_failed and count in the throttle; a disabled account with the right
// password is permission_denied; store failures keep their code (io_error, unavailable). With a `cache`, a
// password verified for this account moments ago is accepted without argon2id, and a success is remembered.
Result<store::Account> authenticate_plain(store::Store& store, HashLimiter& limiter, LoginThrottle& throttle,
                                          std::string_view address, std::string_view password,
                                          std::string_view client_ip, std::int64_t now,
                                          VerifiedCache* cache = nullptr);

// The SCRAM-SHA-256 keys of an address, for SaslServer::scram_credentials: limit_exceeded when throttled,
// not_found for an unknown address or one without SCRAM keys, permission_denied when disabled.
Result<store::ScramCredentials> find_scram_credentials(store::Store& store, LoginThrottle& throttle,
                                                       std::string_view address, std::string_view client_ip,
                                                       std::int64_t now);

// Answers a verify_password or need_scram_credentials outcome of `sasl` with the functions above and
// returns the exchange's next outcome. Any other outcome is returned unchanged.
SaslOutcome answer_sasl_request(store::Store& store, HashLimiter& limiter, LoginThrottle& throttle,
                                SaslServer& sasl, const SaslOutcome& request, std::string_view client_ip,
                                std::int64_t now, VerifiedCache* cache = nullptr);

// Counts the end of a SCRAM exchange in the throttle: success clears the account's failures, a wrong proof
// (auth_failed) counts as a failure. PLAIN and LOGIN are already counted by authenticate_plain, so this
// does nothing for them; call it with every final outcome regardless of mechanism.
void record_sasl_result(LoginThrottle& throttle, const SaslServer& sasl, const SaslOutcome& outcome,
                        std::string_view client_ip, std::int64_t now);

}  // namespace magpie::auth
