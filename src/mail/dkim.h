// DKIM signing and verification (RFC 6376, with RFC 8463's ed25519-sha256 and RFC 8301's rules): which
// header fields are hashed, the body hash, and the signature made or checked with OpenSSL 3 (EVP). The
// text parts live in dkim_canon.h and dkim_signature.h.
//
// Sans-IO: verification never queries DNS itself. Either call find_signatures(), look up each
// Candidate's key_name() TXT record however the caller likes (asynchronously in the server), and pass the
// answer to check(); or call verify() with a KeyLookup function (the CLI, tests, a worker thread). No clock
// either: the caller passes the time for t=/x= checks.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "mail/dkim_signature.h"

namespace magpie::mail::dkim {

// Bounds on one message's verification, so a hostile message costs bounded CPU and memory.
struct Limits {
    std::size_t max_signatures = 5;              // DKIM-Signature fields checked; later ones are ignored
    std::size_t max_signed_headers = 64;         // h= entries per signature (longer: permerror)
    std::size_t max_header_octets = 256 * 1024;  // header block scanned for fields
    std::size_t max_body_octets = 64 << 20;      // canonical body octets hashed (above, without l=: neutral)
    std::size_t max_key_record_octets = 8192;    // one joined TXT record
    std::uint64_t allowed_clock_skew_seconds = 300;  // t= may be this far in the future
    unsigned min_rsa_bits = 1024;                    // RFC 8301 3.2: smaller keys are not trusted
};

// A private signing key (RSA or Ed25519) in an EVP_PKEY. Movable, not copyable.
class PrivateKey {
public:
    // PEM, PKCS#8 or traditional RSA ("BEGIN PRIVATE KEY" / "BEGIN RSA PRIVATE KEY"). Errors:
    // invalid_argument when it is not a readable RSA or Ed25519 key.
    static Result<PrivateKey> from_pem(std::string_view pem);
    // A raw 32-octet Ed25519 seed, base64 (python3-dkim and RFC 8463 A.2 write keys this way).
    static Result<PrivateKey> from_ed25519_seed_base64(std::string_view base64);
    // Fresh keys from OpenSSL's CSPRNG. Errors: internal.
    static Result<PrivateKey> generate(Algorithm algorithm, unsigned rsa_bits = 2048);

    PrivateKey(PrivateKey&&) noexcept;
    PrivateKey& operator=(PrivateKey&&) noexcept;
    ~PrivateKey();

    Algorithm algorithm() const { return algorithm_; }
    std::string to_pem() const;  // PKCS#8 PEM
    // The TXT record to publish at <selector>._domainkey.<domain>: "v=DKIM1; k=rsa; p=<base64>".
    std::string key_record() const;

    void* evp_pkey() const { return pkey_; }  // EVP_PKEY*, kept opaque so callers need no OpenSSL headers

private:
    PrivateKey(void* pkey, Algorithm algorithm) : pkey_(pkey), algorithm_(algorithm) {}
    void* pkey_ = nullptr;
    Algorithm algorithm_ = Algorithm::rsa_sha256;
};

// The header fields signed by default (RFC 6376 5.4.1's list, minus those relays often rewrite).
const std::vector<std::string>& default_signed_headers();

struct SignOptions {
    std::string domain;                                           // d=
    std::string selector;                                         // s=
    std::vector<std::string> headers = default_signed_headers();  // lower case; must contain "from"
    // Each listed name is signed once more than it occurs (absent ones once, as empty), so nobody can add
    // an instance later without breaking the signature (RFC 6376 8.15).
    bool oversign = true;
    Canon header_canon = Canon::relaxed;
    Canon body_canon = Canon::relaxed;
    std::optional<std::uint64_t> timestamp;   // t=; the caller's clock
    std::optional<std::uint64_t> expiration;  // x=
    bool body_length = false;                 // add l= (not recommended: lets anyone append to the body)
};

// Signs `message` (header and body, CRLF or LF line ends) and returns the DKIM-Signature field to put on
// top of it, folded and ending with CRLF. Errors: invalid_argument (no From field, empty domain or
// selector, "from" not in headers), internal (OpenSSL failed).
Result<std::string> sign(std::string_view message, const PrivateKey& key, const SignOptions& options);

// RFC 8601 2.7.1 result of one signature.
enum class Status { pass, fail, neutral, temperror, permerror };
const char* status_name(Status status);

struct VerifyResult {
    Status status = Status::permerror;
    std::string reason;    // why not pass, for logs and the A-R comment; empty on pass
    std::string domain;    // d= (empty when the field did not parse)
    std::string selector;  // s=
    std::string identity;  // i= (or "@d")
    std::string b_prefix;  // first 8 characters of b= (RFC 6008 header.b)
    Algorithm algorithm = Algorithm::rsa_sha256;
    bool testing = false;  // the key record says t=y
};

// One DKIM-Signature field found in a message, parsed or not.
struct Candidate {
    std::size_t field_index = 0;  // among the message's header fields
    Result<Signature> signature = make_error(Errc::invalid_argument, "not parsed");
    std::string key_name() const { return signature ? signature->key_name() : std::string(); }
};

// The first `limits.max_signatures` DKIM-Signature fields, top to bottom.
std::vector<Candidate> find_signatures(std::string_view message, const Limits& limits = {});

// The TXT answer for a key name: its records (each record's strings joined), or an error: not_found for
// NXDOMAIN/no TXT (permerror), anything else a temporary failure (temperror).
using TxtAnswer = Result<std::vector<std::string>>;

// Verifies one candidate against its key record. `now` is seconds since the epoch.
VerifyResult check(std::string_view message, const Candidate& candidate, const TxtAnswer& key_txt,
                   std::uint64_t now, const Limits& limits = {});

using KeyLookup = std::function<TxtAnswer(std::string_view key_name)>;

// find_signatures() + check() with `lookup` for every candidate; empty when the message is unsigned
// (Authentication-Results then says dkim=none).
std::vector<VerifyResult> verify(std::string_view message, const KeyLookup& lookup, std::uint64_t now,
                                 const Limits& limits = {});

}  // namespace magpie::mail::dkim
