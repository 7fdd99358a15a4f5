#include "auth/sasl.h"

#include <utility>

#include "auth/crypto.h"
#include "base/strings.h"
#include "mail/base64.h"

namespace magpie::auth {
namespace {

constexpr std::size_t kScramKeyOctets = 32;     // SHA-256 output
constexpr std::size_t kServerNonceOctets = 18;  // 24 base64 characters
constexpr std::size_t kMockSaltOctets = 16;

int base64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

const std::string& process_mock_salt_key() {
    static const std::string key = random_bytes(32);
    return key;
}

// RFC 5802 5.1: in a saslname, "," is written "=2C" and "=" is written "=3D"; any other "=" is invalid.
std::optional<std::string> decode_saslname(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '=') {
            out += text[i];
            continue;
        }
        std::string_view escape = text.substr(i + 1, 2);
        if (escape == "2C") {
            out += ',';
        } else if (escape == "3D") {
            out += '=';
        } else {
            return std::nullopt;
        }
        i += 2;
    }
    return out;
}

// RFC 5802 7: printable = %x21-2B / %x2D-7E (no comma; split() already removed those).
bool is_printable_nonce(std::string_view nonce) {
    if (nonce.empty()) return false;
    for (char c : nonce) {
        if (c < 0x21 || c > 0x7E) return false;
    }
    return true;
}

// An identity (authcid, authzid, SCRAM user name): bounded, then SASLprep'd (RFC 4616 2, RFC 5802 5.1).
Result<std::string> prepare_identity(std::string_view text, const SaslLimits& limits) {
    if (text.size() > limits.max_identity_octets) {
        return make_error(Errc::limit_exceeded, "identity longer than the limit");
    }
    auto prepared = saslprep(text);
    if (!prepared) return make_error(Errc::invalid_argument, "identity " + prepared.error().message);
    return prepared;
}

}  // namespace

std::optional<SaslMechanism> parse_sasl_mechanism(std::string_view name) {
    if (iequals(name, "PLAIN")) return SaslMechanism::plain;
    if (iequals(name, "LOGIN")) return SaslMechanism::login;
    if (iequals(name, "SCRAM-SHA-256")) return SaslMechanism::scram_sha_256;
    return std::nullopt;
}

std::string_view sasl_mechanism_name(SaslMechanism mechanism) {
    switch (mechanism) {
        case SaslMechanism::plain:
            return "PLAIN";
        case SaslMechanism::login:
            return "LOGIN";
        case SaslMechanism::scram_sha_256:
            return "SCRAM-SHA-256";
    }
    return "";
}

std::optional<std::string> decode_sasl_base64(std::string_view text) {
    if (text.size() % 4 != 0) return std::nullopt;
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (std::size_t i = 0; i < text.size(); i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; ++k) {
            char c = text[i + k];
            if (c == '=') {
                // Padding only in the last two places of the last quantum.
                if (i + 4 != text.size() || k < 2) return std::nullopt;
                ++pad;
                v[k] = 0;
            } else {
                if (pad > 0) return std::nullopt;
                v[k] = base64_value(c);
                if (v[k] < 0) return std::nullopt;
            }
        }
        // RFC 4648 3.5: the bits that padding leaves over must be zero, so each text has one meaning.
        if ((pad == 1 && (v[2] & 0x3) != 0) || (pad == 2 && (v[1] & 0xF) != 0)) return std::nullopt;
        std::uint32_t n = (static_cast<std::uint32_t>(v[0]) << 18) |
                          (static_cast<std::uint32_t>(v[1]) << 12) | (static_cast<std::uint32_t>(v[2]) << 6) |
                          static_cast<std::uint32_t>(v[3]);
        out += static_cast<char>(n >> 16);
        if (pad < 2) out += static_cast<char>((n >> 8) & 0xFF);
        if (pad < 1) out += static_cast<char>(n & 0xFF);
    }
    return out;
}

std::string encode_sasl_base64(std::string_view bytes) {
    return mail::base64_encode(bytes, 0);
}

Result<SaslServer> SaslServer::create(std::string_view mechanism, SaslOptions options) {
    auto parsed = parse_sasl_mechanism(mechanism);
    if (!parsed) return make_error(Errc::invalid_argument, "unsupported SASL mechanism");
    return SaslServer(*parsed, std::move(options));
}

SaslServer::SaslServer(SaslMechanism mechanism, SaslOptions options)
    : mechanism_(mechanism), options_(std::move(options)) {}

SaslOutcome SaslServer::challenge(State next, std::string data) {
    state_ = next;
    SaslOutcome out;
    out.kind = SaslOutcome::Kind::challenge;
    out.data = std::move(data);
    return out;
}

SaslOutcome SaslServer::verify(std::string authcid, std::string password) {
    state_ = State::awaiting_verification;
    authcid_ = authcid;
    SaslOutcome out;
    out.kind = SaslOutcome::Kind::verify_password;
    out.authcid = std::move(authcid);
    out.password = std::move(password);
    return out;
}

SaslOutcome SaslServer::succeed(std::string data) {
    state_ = State::done;
    credentials_ = {};
    SaslOutcome out;
    out.kind = SaslOutcome::Kind::success;
    out.authcid = authcid_;
    out.data = std::move(data);
    return out;
}

SaslOutcome SaslServer::fail(Errc code, std::string message) {
    state_ = State::done;
    credentials_ = {};
    SaslOutcome out;
    out.kind = SaslOutcome::Kind::failure;
    out.authcid = authcid_;
    out.error = make_error(code, std::move(message));
    return out;
}

SaslOutcome SaslServer::start(std::optional<std::string_view> initial_response) {
    if (state_ != State::initial) return fail(Errc::internal, "SASL exchange already started");
    if (initial_response && initial_response->size() > options_.limits.max_response_octets) {
        return fail(Errc::limit_exceeded, "SASL response longer than the limit");
    }
    switch (mechanism_) {
        case SaslMechanism::plain:
            // RFC 4616 2: with no initial response the server sends an empty challenge.
            return initial_response ? on_plain(*initial_response) : challenge(State::plain_response, "");
        case SaslMechanism::login:
            // RFC 4954 4 lets the client send the user name as the initial response.
            return initial_response ? on_login_username(*initial_response)
                                    : challenge(State::login_username, "Username:");
        case SaslMechanism::scram_sha_256:
            return initial_response ? on_scram_client_first(*initial_response)
                                    : challenge(State::scram_client_first, "");
    }
    return fail(Errc::internal, "unknown SASL mechanism");
}

SaslOutcome SaslServer::step(std::string_view response) {
    if (response.size() > options_.limits.max_response_octets) {
        return fail(Errc::limit_exceeded, "SASL response longer than the limit");
    }
    switch (state_) {
        case State::plain_response:
            return on_plain(response);
        case State::login_username:
            return on_login_username(response);
        case State::login_password:
            return on_login_password(response);
        case State::scram_client_first:
            return on_scram_client_first(response);
        case State::scram_client_final:
            return on_scram_client_final(response);
        case State::scram_final_ack:
            return on_scram_final_ack(response);
        case State::initial:
        case State::awaiting_verification:
        case State::awaiting_credentials:
        case State::done:
            break;
    }
    return fail(Errc::internal, "SASL response out of order");
}

SaslOutcome SaslServer::start_encoded(std::optional<std::string_view> initial_response) {
    if (!initial_response) return start(std::nullopt);
    // RFC 4954 4 / RFC 4959 3: "=" stands for an initial response of zero length.
    if (*initial_response == "=") return start(std::string_view{});
    if (initial_response->size() > options_.limits.max_response_octets / 3 * 4 + 4) {
        return fail(Errc::limit_exceeded, "SASL response longer than the limit");
    }
    auto decoded = decode_sasl_base64(*initial_response);
    if (!decoded) return fail(Errc::invalid_argument, "SASL initial response is not valid base64");
    return start(*decoded);
}

SaslOutcome SaslServer::step_encoded(std::string_view line) {
    if (state_ == State::done) return fail(Errc::internal, "SASL exchange is over");
    if (line == "*") return fail(Errc::invalid_argument, "authentication cancelled");
    if (line.size() > options_.limits.max_response_octets / 3 * 4 + 4) {
        return fail(Errc::limit_exceeded, "SASL response longer than the limit");
    }
    auto decoded = decode_sasl_base64(line);
    if (!decoded) return fail(Errc::invalid_argument, "SASL response is not valid base64");
    return step(*decoded);
}

// RFC 4616 2: message = [authzid] NUL authcid NUL passwd.
SaslOutcome SaslServer::on_plain(std::string_view message) {
    auto first = message.find('\0');
    auto second = first == std::string_view::npos ? first : message.find('\0', first + 1);
    if (second == std::string_view::npos || message.find('\0', second + 1) != std::string_view::npos) {
        return fail(Errc::invalid_argument, "malformed PLAIN message");
    }
    std::string_view authzid = message.substr(0, first);
    std::string_view authcid = message.substr(first + 1, second - first - 1);
    std::string_view password = message.substr(second + 1);
    if (authcid.empty() || password.empty()) return fail(Errc::invalid_argument, "malformed PLAIN message");
    if (password.size() > options_.limits.max_password_octets) {
        return fail(Errc::limit_exceeded, "password longer than the limit");
    }
    auto identity = prepare_identity(authcid, options_.limits);
    if (!identity) return fail(identity.error().code, identity.error().message);
    if (!authzid.empty()) {
        // Acting as another user is not offered: an authzid must name the authenticating user itself.
        auto requested = prepare_identity(authzid, options_.limits);
        if (!requested) return fail(requested.error().code, requested.error().message);
        if (!iequals(*requested, *identity)) {
            return fail(Errc::permission_denied,
                        "authorization identity differs from authentication identity");
        }
    }
    return verify(std::move(*identity), std::string(password));
}

SaslOutcome SaslServer::on_login_username(std::string_view response) {
    auto identity = prepare_identity(response, options_.limits);
    if (!identity) return fail(identity.error().code, identity.error().message);
    authcid_ = std::move(*identity);
    return challenge(State::login_password, "Password:");
}

SaslOutcome SaslServer::on_login_password(std::string_view response) {
    if (response.empty()) return fail(Errc::invalid_argument, "empty password");
    if (response.size() > options_.limits.max_password_octets) {
        return fail(Errc::limit_exceeded, "password longer than the limit");
    }
    return verify(authcid_, std::string(response));
}

SaslOutcome SaslServer::password_checked(const Result<void>& verdict) {
    if (state_ != State::awaiting_verification) return fail(Errc::internal, "password check out of order");
    if (!verdict) return fail(verdict.error().code, verdict.error().message);
    return succeed("");
}

// RFC 5802 7: client-first-message = gs2-header client-first-message-bare, where
// gs2-header = gs2-cbind-flag "," [authzid] "," and the bare part = [reserved-mext ","] username "," nonce
// ["," extensions].
SaslOutcome SaslServer::on_scram_client_first(std::string_view message) {
    if (message.starts_with("p=")) {
        return fail(Errc::invalid_argument, "channel binding is not supported");
    }
    // "n": the client does not support channel binding; "y": it does but thinks the server does not.
    // Magpie never advertises SCRAM-SHA-256-PLUS, so "y" is no sign of a downgrade (RFC 5802 6).
    if (message.size() < 2 || (message[0] != 'n' && message[0] != 'y') || message[1] != ',') {
        return fail(Errc::invalid_argument, "malformed SCRAM gs2 header");
    }
    std::size_t end_of_header = message.find(',', 2);
    if (end_of_header == std::string_view::npos)
        return fail(Errc::invalid_argument, "malformed SCRAM gs2 header");
    std::string_view authzid_field = message.substr(2, end_of_header - 2);
    std::optional<std::string> authzid;
    if (!authzid_field.empty()) {
        if (!authzid_field.starts_with("a="))
            return fail(Errc::invalid_argument, "malformed SCRAM gs2 header");
        authzid = decode_saslname(authzid_field.substr(2));
        if (!authzid) return fail(Errc::invalid_argument, "malformed SCRAM authzid");
    }
    gs2_header_ = std::string(message.substr(0, end_of_header + 1));
    client_first_bare_ = std::string(message.substr(end_of_header + 1));

    auto fields = split(client_first_bare_, ',');
    if (!fields.empty() && fields[0].starts_with("m=")) {
        return fail(Errc::invalid_argument, "unsupported mandatory SCRAM extension");  // RFC 5802 5.1 "m"
    }
    if (fields.size() < 2 || !fields[0].starts_with("n=") || !fields[1].starts_with("r=")) {
        return fail(Errc::invalid_argument, "malformed SCRAM client-first-message");
    }
    auto username = decode_saslname(fields[0].substr(2));
    if (!username) return fail(Errc::invalid_argument, "malformed SCRAM user name");
    auto identity = prepare_identity(*username, options_.limits);
    if (!identity) return fail(identity.error().code, identity.error().message);
    std::string_view client_nonce = fields[1].substr(2);
    if (!is_printable_nonce(client_nonce) || client_nonce.size() > options_.limits.max_nonce_octets) {
        return fail(Errc::invalid_argument, "malformed SCRAM nonce");
    }
    if (authzid && !authzid->empty()) {
        auto requested = prepare_identity(*authzid, options_.limits);
        if (!requested) return fail(requested.error().code, requested.error().message);
        if (!iequals(*requested, *identity)) {
            return fail(Errc::permission_denied,
                        "authorization identity differs from authentication identity");
        }
    }
    authcid_ = std::move(*identity);
    nonce_ = std::string(client_nonce);
    state_ = State::awaiting_credentials;
    SaslOutcome out;
    out.kind = SaslOutcome::Kind::need_scram_credentials;
    out.authcid = authcid_;
    return out;
}

SaslOutcome SaslServer::scram_credentials(const Result<store::ScramCredentials>& credentials) {
    if (state_ != State::awaiting_credentials) return fail(Errc::internal, "SCRAM credentials out of order");
    bool usable =
        credentials && !credentials->salt.empty() && credentials->stored_key.size() == kScramKeyOctets &&
        credentials->server_key.size() == kScramKeyOctets && credentials->iterations >= kMinScramIterations &&
        credentials->iterations <= kMaxScramIterations;
    if (usable) {
        credentials_ = *credentials;
        unknown_user_ = false;
    } else {
        if (!credentials) {
            Errc code = credentials.error().code;
            if (code != Errc::not_found && code != Errc::permission_denied && code != Errc::auth_failed) {
                return fail(code, credentials.error().message);
            }
        }
        // RFC 5802 9: an unknown user (or one without SCRAM keys) sees a salt that looks real and stays the
        // same across attempts, and the exchange fails only at the proof.
        const std::string& key =
            options_.mock_salt_key.empty() ? process_mock_salt_key() : options_.mock_salt_key;
        credentials_.salt = hmac_sha256(key, to_lower(authcid_)).substr(0, kMockSaltOctets);
        credentials_.iterations = kMinScramIterations;
        credentials_.stored_key = random_bytes(kScramKeyOctets);
        credentials_.server_key = random_bytes(kScramKeyOctets);
        unknown_user_ = true;
    }
    std::string server_nonce = options_.fixed_server_nonce.empty()
                                   ? encode_sasl_base64(random_bytes(kServerNonceOctets))
                                   : options_.fixed_server_nonce;
    nonce_ += server_nonce;
    // RFC 5802 7: server-first-message = nonce "," salt "," iteration-count.
    server_first_ = "r=" + nonce_ + ",s=" + encode_sasl_base64(credentials_.salt) +
                    ",i=" + std::to_string(credentials_.iterations);
    return challenge(State::scram_client_final, server_first_);
}

// RFC 5802 7: client-final-message = channel-binding "," nonce ["," extensions] "," proof.
SaslOutcome SaslServer::on_scram_client_final(std::string_view message) {
    std::size_t proof_at = message.rfind(",p=");
    if (proof_at == std::string_view::npos)
        return fail(Errc::invalid_argument, "malformed SCRAM client-final-message");
    std::string_view without_proof = message.substr(0, proof_at);
    auto fields = split(without_proof, ',');
    if (fields.size() < 2 || !fields[0].starts_with("c=") || !fields[1].starts_with("r=")) {
        return fail(Errc::invalid_argument, "malformed SCRAM client-final-message");
    }
    // RFC 5802 5.1 "c": without channel binding the client echoes its gs2 header, base64-encoded.
    auto binding = decode_sasl_base64(fields[0].substr(2));
    if (!binding || *binding != gs2_header_)
        return fail(Errc::invalid_argument, "SCRAM channel binding mismatch");
    if (fields[1].substr(2) != nonce_) return fail(Errc::invalid_argument, "SCRAM nonce mismatch");
    auto proof = decode_sasl_base64(message.substr(proof_at + 3));
    if (!proof || proof->size() != kScramKeyOctets)
        return fail(Errc::invalid_argument, "malformed SCRAM proof");

    // RFC 5802 3: ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); accept if H(ClientKey) is
    // StoredKey.
    std::string auth_message = client_first_bare_ + "," + server_first_ + "," + std::string(without_proof);
    std::string client_key = hmac_sha256(credentials_.stored_key, auth_message);
    for (std::size_t i = 0; i < client_key.size(); ++i) client_key[i] ^= (*proof)[i];
    bool proof_matches = constant_time_equal(sha256(client_key), credentials_.stored_key);
    if (!proof_matches || unknown_user_) return fail(Errc::auth_failed, "authentication failed");

    std::string server_final = "v=" + encode_sasl_base64(hmac_sha256(credentials_.server_key, auth_message));
    if (options_.success_data_allowed) return succeed(std::move(server_final));
    return challenge(State::scram_final_ack, std::move(server_final));
}

SaslOutcome SaslServer::on_scram_final_ack(std::string_view response) {
    if (!response.empty())
        return fail(Errc::invalid_argument, "unexpected data after SCRAM server-final-message");
    return succeed("");
}

}  // namespace magpie::auth
