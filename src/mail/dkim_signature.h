// The DKIM-Signature header field (RFC 6376 3.5) and the selector's key record (3.6.1): their tag=value
// lists parsed into typed structs, and the signature built back into a folded header field. Text only:
// signing and verifying are in dkim.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "mail/dkim_canon.h"

namespace magpie::mail::dkim {

// RFC 6376 3.2: "tag=value; tag=value", white space (folds included) around tags, '=' and ';' ignored, a
// trailing ';' allowed. Errors (invalid_argument): a tag without '=', a bad tag name, a tag given twice.
// Views borrow `text`; values keep their inner white space (the caller strips what its tag allows).
Result<std::vector<std::pair<std::string_view, std::string_view>>> parse_tag_list(std::string_view text);

enum class Algorithm { rsa_sha256, ed25519_sha256 };
const char* algorithm_name(Algorithm algorithm);  // "rsa-sha256" / "ed25519-sha256"

// A parsed DKIM-Signature. Decoded forms of b= and bh= are raw bytes.
struct Signature {
    Algorithm algorithm = Algorithm::rsa_sha256;
    std::string signature;  // b=, decoded
    std::string b_base64;   // b= as written without white space (for header.b= in Authentication-Results)
    std::string body_hash;  // bh=, decoded
    Canon header_canon = Canon::simple;  // c= (default simple/simple)
    Canon body_canon = Canon::simple;
    std::string domain;                        // d=, lower case
    std::string selector;                      // s=, lower case
    std::vector<std::string> signed_headers;   // h=, lower case, in order (names repeat for oversigning)
    std::string identity;                      // i=, default "@" + d=
    std::optional<std::uint64_t> body_length;  // l=
    std::optional<std::uint64_t> timestamp;    // t=, seconds since the epoch
    std::optional<std::uint64_t> expiration;   // x=

    // Where the key record lives: "<s>._domainkey.<d>" (3.6.2.1).
    std::string key_name() const;
};

// Parses the value of a DKIM-Signature field (raw or unfolded). Errors (invalid_argument, message says
// which rule): v= missing or not 1; a=, b=, bh=, d=, h=, s= missing; h= without "from" (3.5); i= not in
// d= or a subdomain of it; an unknown algorithm or canonicalization; q= without dns/txt; x= before t=.
Result<Signature> parse_signature(std::string_view value);

// The field value with the b= tag's value removed and everything else kept byte for byte (3.7: the
// signature field is hashed with an empty b=).
std::string strip_b_value(std::string_view value);

// Builds "DKIM-Signature: v=1; a=...; ...; b=<signature_base64>" folded at about 76 columns, without the
// final CRLF. With an empty signature this is the field the signer hashes (its b= empty).
std::string build_signature_field(const Signature& signature, std::string_view signature_base64);

// A selector's key record (RFC 6376 3.6.1; RFC 8463 adds k=ed25519).
enum class KeyType { rsa, ed25519 };
struct KeyRecord {
    KeyType key_type = KeyType::rsa;  // k=, default rsa
    std::string public_key;           // p=, decoded: DER for rsa, 32 raw octets for ed25519
    bool revoked = false;             // p= present but empty (3.6.1)
    bool testing = false;             // t=y
    bool strict_identity = false;     // t=s: i= must be exactly d=, not a subdomain
};

// Parses one TXT record (its strings already joined). Errors (invalid_argument): v= present but not first
// or not DKIM1, p= missing, an unknown k=, h= without sha256, s= without "*" or "email". Unknown tags and
// flags are ignored, as 3.6.1 requires.
Result<KeyRecord> parse_key_record(std::string_view text);

}  // namespace magpie::mail::dkim
