// SaslServer: the server side of one SASL exchange (RFC 4422) as a sans-IO state machine, for SMTP AUTH
// (RFC 4954), IMAP AUTHENTICATE (RFC 3501 6.2.2, SASL-IR RFC 4959) and HTTP. Mechanisms: PLAIN (RFC 4616),
// LOGIN (de facto), SCRAM-SHA-256 (RFC 7677, RFC 5802) without channel binding. It never touches the store
// or a password hash: when it needs them it says so, and the caller answers (see authenticator.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "auth/password.h"
#include "base/result.h"
#include "store/store.h"

namespace magpie::auth {

struct SaslLimits {
    std::size_t max_response_octets = 4096;  // one decoded client response
    std::size_t max_identity_octets = 320;   // authcid, authzid, SCRAM user name (an address is <= 254)
    std::size_t max_password_octets = kMaxPasswordOctets;
    std::size_t max_nonce_octets = 256;  // the client's SCRAM nonce
};

struct SaslOptions {
    SaslLimits limits;
    // SMTP (RFC 4954 4) and IMAP4rev1 (RFC 3501 7.1) cannot carry data in their success reply, so by default
    // the last SCRAM server message goes out as one more challenge that the client answers with an empty
    // response. Set this when the protocol carries it with the success (RFC 4422 5, "additional data").
    bool success_data_allowed = false;
    // The server's part of the SCRAM nonce. Empty: 24 printable characters from libsodium's randombytes.
    // Set only to replay published test vectors.
    std::string fixed_server_nonce;
    // Key for the fake salt shown for unknown users (RFC 5802 9: do not reveal whether an account exists).
    // The salt must be the same on every attempt for a name. Empty: a random key for this process.
    std::string mock_salt_key;
};

enum class SaslMechanism { plain, login, scram_sha_256 };

// Mechanism names are case-insensitive (RFC 4422 3.1); nullopt for an unsupported one.
std::optional<SaslMechanism> parse_sasl_mechanism(std::string_view name);
std::string_view sasl_mechanism_name(SaslMechanism mechanism);

// What the exchange needs next.
struct SaslOutcome {
    enum class Kind {
        challenge,               // send `data` (raw bytes; base64-encode it), feed the reply to step()
        verify_password,         // check `authcid`/`password`, answer with password_checked()
        need_scram_credentials,  // look up `authcid`'s SCRAM keys, answer with scram_credentials()
        success,                 // `authcid` is authenticated; `data` is additional success data, maybe empty
        failure,                 // `error` says why: auth_failed, invalid_argument, limit_exceeded, ...
    };
    Kind kind = Kind::failure;
    std::string data;
    std::string authcid;
    std::string password;
    Error error{Errc::internal, {}};
};

class SaslServer {
public:
    // Fails with invalid_argument for an unsupported mechanism name.
    static Result<SaslServer> create(std::string_view mechanism, SaslOptions options = {});

    SaslMechanism mechanism() const { return mechanism_; }
    bool finished() const { return state_ == State::done; }

    // Begins the exchange. initial_response is the decoded SASL-IR (RFC 4422 5: an empty one differs from
    // none), or nullopt when the client sent none.
    SaslOutcome start(std::optional<std::string_view> initial_response = std::nullopt);

    // The client's decoded answer to the last challenge.
    SaslOutcome step(std::string_view response);

    // The same from the wire form: "*" cancels (RFC 4954 4, RFC 3501 6.2.2), anything that is not strict
    // base64 fails the exchange (RFC 4422 3.1). start_encoded also takes "=" as an empty initial response.
    SaslOutcome start_encoded(std::optional<std::string_view> initial_response);
    SaslOutcome step_encoded(std::string_view line);

    // The answer to verify_password: success, or the error to fail with (auth_failed, limit_exceeded, ...).
    SaslOutcome password_checked(const Result<void>& verdict);

    // The answer to need_scram_credentials. not_found, permission_denied and auth_failed continue the
    // exchange with a fake salt and fail it at the end, so a client cannot tell which accounts exist;
    // other errors (unavailable, limit_exceeded) fail it at once.
    SaslOutcome scram_credentials(const Result<store::ScramCredentials>& credentials);

private:
    enum class State {
        initial,
        plain_response,         // PLAIN: waiting for the one message
        login_username,         // LOGIN: "Username:" sent
        login_password,         // LOGIN: "Password:" sent
        awaiting_verification,  // PLAIN/LOGIN: verify_password returned
        scram_client_first,     // SCRAM: waiting for client-first-message
        awaiting_credentials,   // SCRAM: need_scram_credentials returned
        scram_client_final,     // SCRAM: server-first-message sent
        scram_final_ack,        // SCRAM: server-final-message sent as a challenge, waiting for ""
        done,
    };

    SaslServer(SaslMechanism mechanism, SaslOptions options);

    SaslOutcome on_plain(std::string_view message);
    SaslOutcome on_login_username(std::string_view response);
    SaslOutcome on_login_password(std::string_view response);
    SaslOutcome on_scram_client_first(std::string_view message);
    SaslOutcome on_scram_client_final(std::string_view message);
    SaslOutcome on_scram_final_ack(std::string_view response);

    SaslOutcome challenge(State next, std::string data);
    SaslOutcome verify(std::string authcid, std::string password);
    SaslOutcome succeed(std::string data);
    SaslOutcome fail(Errc code, std::string message);

    SaslMechanism mechanism_;
    SaslOptions options_;
    State state_ = State::initial;
    std::string authcid_;
    // SCRAM exchange state (RFC 5802 3).
    std::string gs2_header_;
    std::string client_first_bare_;
    std::string server_first_;
    std::string nonce_;  // client nonce + server nonce
    store::ScramCredentials credentials_;
    bool unknown_user_ = false;
};

// Strict base64 (RFC 4648 4) for SASL: the alphabet only, length a multiple of 4, padding only at the end
// and zero pad bits. nullopt on anything else.
std::optional<std::string> decode_sasl_base64(std::string_view text);

// One unbroken line of base64, for challenges.
std::string encode_sasl_base64(std::string_view bytes);

}  // namespace magpie::auth
