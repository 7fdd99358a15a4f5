#include "mail/dkim.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>

#include "base/strings.h"
#include "mail/base64.h"
#include "mail/message.h"

namespace magpie::mail::dkim {

namespace {

EVP_PKEY* as_pkey(void* p) {
    return static_cast<EVP_PKEY*>(p);
}

struct PkeyFree {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct MdCtxFree {
    void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
struct BioFree {
    void operator()(BIO* p) const { BIO_free(p); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

Error bad(std::string message) {
    return make_error(Errc::invalid_argument, std::move(message));
}

std::string sha256(std::string_view data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_Digest(data.data(), data.size(), md, &length, EVP_sha256(), nullptr) != 1) return {};
    return std::string(reinterpret_cast<const char*>(md), length);
}

Result<Algorithm> algorithm_of(EVP_PKEY* pkey) {
    switch (EVP_PKEY_get_base_id(pkey)) {
        case EVP_PKEY_RSA:
            return Algorithm::rsa_sha256;
        case EVP_PKEY_ED25519:
            return Algorithm::ed25519_sha256;
        default:
            return bad("DKIM keys are RSA or Ed25519");
    }
}

// RFC 8463 3: Ed25519 signs the SHA-256 hash of the header data (PureEdDSA over the 32-octet digest);
// RSA signs the data with SHA-256 in the usual PKCS#1 v1.5 way.
Result<std::string> make_signature(EVP_PKEY* pkey, Algorithm algorithm, std::string_view data) {
    MdCtxPtr ctx(EVP_MD_CTX_new());
    std::string input = algorithm == Algorithm::ed25519_sha256 ? sha256(data) : std::string(data);
    const EVP_MD* md = algorithm == Algorithm::ed25519_sha256 ? nullptr : EVP_sha256();
    std::size_t length = 0;
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, pkey) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &length, reinterpret_cast<const unsigned char*>(input.data()),
                       input.size()) != 1)
        return make_error(Errc::internal, "OpenSSL could not start the DKIM signature");
    std::string out(length, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &length,
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1)
        return make_error(Errc::internal, "OpenSSL could not make the DKIM signature");
    out.resize(length);
    return out;
}

bool check_signature(EVP_PKEY* pkey, Algorithm algorithm, std::string_view data, std::string_view signature) {
    MdCtxPtr ctx(EVP_MD_CTX_new());
    std::string input = algorithm == Algorithm::ed25519_sha256 ? sha256(data) : std::string(data);
    const EVP_MD* md = algorithm == Algorithm::ed25519_sha256 ? nullptr : EVP_sha256();
    return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, pkey) == 1 &&
           EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                            signature.size(), reinterpret_cast<const unsigned char*>(input.data()),
                            input.size()) == 1;
}

// The key record's p=: SubjectPublicKeyInfo for RSA (what everyone publishes), or a bare RSAPublicKey
// (RFC 6376 3.6.1's wording, which some signers follow); 32 raw octets for Ed25519 (RFC 8463 4).
PkeyPtr load_public_key(const KeyRecord& record) {
    const auto* der = reinterpret_cast<const unsigned char*>(record.public_key.data());
    if (record.key_type == KeyType::ed25519) {
        if (record.public_key.size() != 32) return nullptr;
        return PkeyPtr(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, der, 32));
    }
    const unsigned char* p = der;
    PkeyPtr key(d2i_PUBKEY(nullptr, &p, static_cast<long>(record.public_key.size())));
    if (!key) {
        p = der;
        key.reset(d2i_PublicKey(EVP_PKEY_RSA, nullptr, &p, static_cast<long>(record.public_key.size())));
    }
    if (key && EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA) return nullptr;
    return key;
}

struct ParsedMessage {
    std::vector<HeaderField> fields;
    std::string_view body;
};

ParsedMessage parse_message(std::string_view message, const Limits& limits) {
    ParsedMessage parsed;
    ParseLimits parse_limits;
    parse_limits.max_header_octets = limits.max_header_octets;
    HeaderScan scan = scan_header(message, 0, message.size(), parse_limits, parsed.fields);
    parsed.body = scan.body_offset < message.size() ? message.substr(scan.body_offset) : std::string_view();
    return parsed;
}

std::string_view field_text(std::string_view message, const HeaderField& field) {
    return message.substr(field.offset, field.length);
}

// RFC 6376 5.4.2: each name in h= takes the last instance not yet used, from the bottom up; a name with
// no instance left contributes nothing (this is what makes oversigning work).
std::string hashed_headers(std::string_view message, const std::vector<HeaderField>& fields,
                           const std::vector<std::string>& names, Canon canon, std::size_t skip_index) {
    std::vector<bool> used(fields.size(), false);
    std::string out;
    for (const auto& name : names) {
        for (std::size_t i = fields.size(); i-- > 0;) {
            if (used[i] || i == skip_index || !iequals(fields[i].name, name)) continue;
            used[i] = true;
            out += canonicalize_header(field_text(message, fields[i]), canon);
            break;
        }
    }
    return out;
}

// The signature field as hashed: canonical, its b= value empty, without the final CRLF (3.7).
std::string hashed_signature_field(std::string_view field, Canon canon) {
    std::string canonical = canonicalize_header(strip_b_value(field), canon);
    if (canonical.size() >= 2) canonical.resize(canonical.size() - 2);
    return canonical;
}

VerifyResult result_of(const Candidate& candidate) {
    VerifyResult result;
    if (candidate.signature) {
        const Signature& sig = *candidate.signature;
        result.domain = sig.domain;
        result.selector = sig.selector;
        result.identity = sig.identity;
        result.b_prefix = sig.b_base64.substr(0, 8);
        result.algorithm = sig.algorithm;
    }
    return result;
}

VerifyResult finish(VerifyResult result, Status status, std::string reason) {
    result.status = status;
    result.reason = std::move(reason);
    return result;
}

}  // namespace

PrivateKey::PrivateKey(PrivateKey&& other) noexcept : pkey_(other.pkey_), algorithm_(other.algorithm_) {
    other.pkey_ = nullptr;
}
PrivateKey& PrivateKey::operator=(PrivateKey&& other) noexcept {
    std::swap(pkey_, other.pkey_);
    algorithm_ = other.algorithm_;
    return *this;
}
PrivateKey::~PrivateKey() {
    EVP_PKEY_free(as_pkey(pkey_));
}

Result<PrivateKey> PrivateKey::from_pem(std::string_view pem) {
    BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    PkeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!key) return bad("not a PEM private key");
    auto algorithm = algorithm_of(key.get());
    if (!algorithm) return algorithm.error();
    return PrivateKey(key.release(), *algorithm);
}

Result<PrivateKey> PrivateKey::from_ed25519_seed_base64(std::string_view base64) {
    std::string seed = base64_decode(base64);
    if (seed.size() != 32) return bad("an Ed25519 seed is 32 octets");
    EVP_PKEY* key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr,
                                                 reinterpret_cast<const unsigned char*>(seed.data()), 32);
    if (!key) return bad("OpenSSL refused the Ed25519 seed");
    return PrivateKey(key, Algorithm::ed25519_sha256);
}

Result<PrivateKey> PrivateKey::generate(Algorithm algorithm, unsigned rsa_bits) {
    EVP_PKEY* key = algorithm == Algorithm::rsa_sha256
                        ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(rsa_bits))
                        : EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    if (!key) return make_error(Errc::internal, "OpenSSL could not generate a key");
    return PrivateKey(key, algorithm);
}

std::string PrivateKey::to_pem() const {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio ||
        PEM_write_bio_PrivateKey(bio.get(), as_pkey(pkey_), nullptr, nullptr, 0, nullptr, nullptr) != 1)
        return {};
    char* data = nullptr;
    long length = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(length));
}

std::string PrivateKey::key_record() const {
    std::string public_key;
    if (algorithm_ == Algorithm::ed25519_sha256) {
        unsigned char raw[32];
        std::size_t length = sizeof raw;
        if (EVP_PKEY_get_raw_public_key(as_pkey(pkey_), raw, &length) == 1)
            public_key.assign(reinterpret_cast<const char*>(raw), length);
        return "v=DKIM1; k=ed25519; p=" + base64_encode(public_key, 0);
    }
    unsigned char* der = nullptr;
    int length = i2d_PUBKEY(as_pkey(pkey_), &der);
    if (length > 0) public_key.assign(reinterpret_cast<const char*>(der), static_cast<std::size_t>(length));
    OPENSSL_free(der);
    return "v=DKIM1; k=rsa; p=" + base64_encode(public_key, 0);
}

const std::vector<std::string>& default_signed_headers() {
    static const std::vector<std::string> headers = {"from",
                                                     "reply-to",
                                                     "subject",
                                                     "date",
                                                     "to",
                                                     "cc",
                                                     "message-id",
                                                     "in-reply-to",
                                                     "references",
                                                     "mime-version",
                                                     "content-type",
                                                     "content-transfer-encoding",
                                                     "list-id",
                                                     "list-unsubscribe",
                                                     "list-unsubscribe-post"};
    return headers;
}

Result<std::string> sign(std::string_view message, const PrivateKey& key, const SignOptions& options) {
    if (options.domain.empty() || options.selector.empty())
        return bad("DKIM signing needs a domain and a selector");
    if (std::find(options.headers.begin(), options.headers.end(), "from") == options.headers.end())
        return bad("DKIM signatures must cover From (RFC 6376 5.4)");
    // A first line that continues nothing, or an mbox "From " line, would join our field or stop being
    // skipped once the signature is on top: the signed header would not be the one verifiers see.
    if (!message.empty() && (message[0] == ' ' || message[0] == '\t' || message.starts_with("From ")))
        return bad("the message does not start with a header field");
    ParsedMessage parsed = parse_message(message, Limits{.max_header_octets = SIZE_MAX});
    Signature sig;
    sig.algorithm = key.algorithm();
    sig.header_canon = options.header_canon;
    sig.body_canon = options.body_canon;
    sig.domain = to_lower(options.domain);
    sig.selector = to_lower(options.selector);
    sig.identity = "@" + sig.domain;
    sig.timestamp = options.timestamp;
    sig.expiration = options.expiration;
    bool has_from = false;
    for (const auto& name : options.headers) {
        std::size_t count = std::count_if(parsed.fields.begin(), parsed.fields.end(),
                                          [&](const HeaderField& f) { return iequals(f.name, name); });
        if (name == "from") has_from = count > 0;
        if (count == 0 && !options.oversign) continue;
        for (std::size_t i = 0; i < count + (options.oversign ? 1 : 0); ++i)
            sig.signed_headers.push_back(name);
    }
    if (!has_from) return bad("the message has no From field to sign");
    std::string body = canonicalize_body(parsed.body, options.body_canon);
    if (options.body_length) sig.body_length = body.size();
    sig.body_hash = sha256(body);

    std::string data = hashed_headers(message, parsed.fields, sig.signed_headers, sig.header_canon, SIZE_MAX);
    data += hashed_signature_field(build_signature_field(sig, ""), sig.header_canon);
    auto signature = make_signature(as_pkey(key.evp_pkey()), sig.algorithm, data);
    if (!signature) return signature.error();
    return build_signature_field(sig, base64_encode(*signature, 0)) + "\r\n";
}

const char* status_name(Status status) {
    switch (status) {
        case Status::pass:
            return "pass";
        case Status::fail:
            return "fail";
        case Status::neutral:
            return "neutral";
        case Status::temperror:
            return "temperror";
        case Status::permerror:
            return "permerror";
    }
    return "permerror";
}

std::vector<Candidate> find_signatures(std::string_view message, const Limits& limits) {
    ParsedMessage parsed = parse_message(message, limits);
    std::vector<Candidate> candidates;
    for (std::size_t i = 0; i < parsed.fields.size() && candidates.size() < limits.max_signatures; ++i) {
        if (!iequals(parsed.fields[i].name, "DKIM-Signature")) continue;
        Candidate candidate;
        candidate.field_index = i;
        candidate.signature = parse_signature(parsed.fields[i].raw_value);
        candidates.push_back(std::move(candidate));
    }
    return candidates;
}

VerifyResult check(std::string_view message, const Candidate& candidate, const TxtAnswer& key_txt,
                   std::uint64_t now, const Limits& limits) {
    VerifyResult result = result_of(candidate);
    if (!candidate.signature) return finish(result, Status::permerror, candidate.signature.error().message);
    const Signature& sig = *candidate.signature;
    if (sig.signed_headers.size() > limits.max_signed_headers)
        return finish(result, Status::permerror, "too many signed header fields");
    if (sig.expiration && *sig.expiration < now) return finish(result, Status::fail, "signature expired");
    if (sig.timestamp && *sig.timestamp > now + limits.allowed_clock_skew_seconds)
        return finish(result, Status::permerror, "signature timestamp in the future");

    // The key: one usable record (3.6.2.2: more than one is ambiguous; take the first that parses).
    if (!key_txt) {
        if (key_txt.error().code == Errc::not_found)
            return finish(result, Status::permerror, "no key record");
        return finish(result, Status::temperror, "key lookup failed: " + key_txt.error().message);
    }
    std::optional<KeyRecord> record;
    std::string key_error = "no key record";
    for (const auto& txt : *key_txt) {
        if (txt.size() > limits.max_key_record_octets) {
            key_error = "key record too long";
            continue;
        }
        auto parsed = parse_key_record(txt);
        if (parsed) {
            record = std::move(*parsed);
            break;
        }
        key_error = parsed.error().message;
    }
    if (!record) return finish(result, Status::permerror, key_error);
    result.testing = record->testing;
    if (record->revoked) return finish(result, Status::permerror, "key revoked");
    bool ed = sig.algorithm == Algorithm::ed25519_sha256;
    if (ed != (record->key_type == KeyType::ed25519))
        return finish(result, Status::permerror, "key type does not match the algorithm");
    if (record->strict_identity) {
        std::string_view id = sig.identity;
        if (!iequals(id.substr(id.rfind('@') + 1), sig.domain))
            return finish(result, Status::permerror, "key requires i= domain to equal d= (t=s)");
    }
    PkeyPtr public_key = load_public_key(*record);
    if (!public_key) return finish(result, Status::permerror, "unreadable public key");
    if (!ed && static_cast<unsigned>(EVP_PKEY_get_bits(public_key.get())) < limits.min_rsa_bits)
        return finish(result, Status::permerror, "RSA key too short (RFC 8301)");

    // Body hash, within l= and our own bound.
    ParsedMessage parsed = parse_message(message, limits);
    std::string body =
        canonicalize_body(parsed.body, sig.body_canon,
                          limits.max_body_octets == SIZE_MAX ? SIZE_MAX : limits.max_body_octets + 1);
    if (sig.body_length) {
        if (*sig.body_length > body.size()) {
            if (body.size() > limits.max_body_octets)
                return finish(result, Status::neutral, "body longer than the verification limit");
            return finish(result, Status::permerror, "l= is longer than the body");
        }
        body.resize(static_cast<std::size_t>(*sig.body_length));
    } else if (body.size() > limits.max_body_octets) {
        return finish(result, Status::neutral, "body longer than the verification limit");
    }
    if (sha256(body) != sig.body_hash) return finish(result, Status::fail, "body hash did not verify");

    if (candidate.field_index >= parsed.fields.size())
        return finish(result, Status::permerror, "signature field beyond the header limit");
    std::string data =
        hashed_headers(message, parsed.fields, sig.signed_headers, sig.header_canon, candidate.field_index);
    data +=
        hashed_signature_field(field_text(message, parsed.fields[candidate.field_index]), sig.header_canon);
    if (!check_signature(public_key.get(), sig.algorithm, data, sig.signature))
        return finish(result, Status::fail, "signature did not verify");
    return finish(result, Status::pass, "");
}

std::vector<VerifyResult> verify(std::string_view message, const KeyLookup& lookup, std::uint64_t now,
                                 const Limits& limits) {
    std::vector<VerifyResult> results;
    for (const auto& candidate : find_signatures(message, limits)) {
        TxtAnswer answer = candidate.signature ? lookup(candidate.key_name())
                                               : TxtAnswer(make_error(Errc::invalid_argument, "unparsed"));
        results.push_back(check(message, candidate, answer, now, limits));
    }
    return results;
}

}  // namespace magpie::mail::dkim
