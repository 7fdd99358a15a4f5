// DANE for outgoing SMTP (RFC 7672): which MX hosts of a recipient domain must be reached over TLS with a
// certificate matching their DNSSEC-validated TLSA records. Sans-IO decisions over the answers of a `Dns`
// (only answers the resolver marked authenticated count: RFC 7672 2.1.1); the certificate check itself is
// OpenSSL's DANE verification in net::ClientConnection.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "mailauth/dns.h"

namespace magpie::mailauth {

// One TLSA record (RFC 6698 2.1), from its text form "3 1 1 ab12...". Errors (invalid_argument): not four
// fields, a number above 255, data that is not an even number of hex digits.
struct TlsaRecord {
    std::uint8_t usage = 0;          // 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE
    std::uint8_t selector = 0;       // 0 full certificate, 1 SubjectPublicKeyInfo
    std::uint8_t matching_type = 0;  // 0 exact, 1 SHA-256, 2 SHA-512
    std::vector<unsigned char> data;
};
Result<TlsaRecord> parse_tlsa(std::string_view text);

// RFC 7672 3.1: usable for SMTP are DANE-TA(2) and DANE-EE(3) (PKIX-TA/PKIX-EE are unusable, 3.1.3), with a
// known selector (0, 1) and matching type (0 with data, 1 with 32 octets, 2 with 64).
bool tlsa_usable(const TlsaRecord& record);

// What DANE asks for one MX host (RFC 7672 2.2):
//   none         no DANE: the address or TLSA answer was not validated, or there is no TLSA record; the
//                domain's other policies (MTA-STS, configured ones, else opportunistic TLS) apply.
//   verify       usable TLSA records: STARTTLS is mandatory and the certificate must match one of them.
//   encrypt      validated TLSA records, none usable: TLS is mandatory but not authenticated (2.2).
//   unreachable  the TLSA lookup failed (SERVFAIL, a bogus answer, a timeout) for a host whose address was
//                validated: the host is not used (2.2: a downgrade attack would look like this).
enum class DaneLevel { none, verify, encrypt, unreachable };
const char* dane_level_name(DaneLevel level);  // "none", "verify", "encrypt", "unreachable"

struct DaneHost {
    DaneLevel level = DaneLevel::none;
    std::vector<TlsaRecord> usable;    // verify: the records the certificate must match
    std::vector<std::string> records;  // the validated TLSA RRset as text (TLS-RPT's policy-string)
    std::string note;                  // why this level, for logs and the delivery tracker
};

// The decision for one host from its answers: whether its A/AAAA answer was validated, and the TLSA lookup
// (records with the resolver's AD bit, or the error; not_found is NXDOMAIN: no TLSA).
DaneHost dane_host(std::string_view tlsa_name, bool address_secure,
                   const Result<dns::Resolver::SecureRecords>& tlsa);

// "_25._tcp.mx.example.com" (RFC 7672 2.2.3: the TLSA base domain is the MX host name).
std::string tlsa_name(std::string_view host, std::uint16_t port);

struct DanePolicy {
    bool mx_secure = false;                 // the MX answer (or, implicit MX, its denial) was validated
    std::map<std::string, DaneHost> hosts;  // by lower-case host name; only when mx_secure
    // Some host has validated TLSA records (verify or encrypt): RFC 8461 2 then prefers DANE to MTA-STS.
    bool applies() const;
    const DaneHost* host(std::string_view name) const;  // null: none
};

// RFC 7672 2.2.1 and 2.2.2: the MX lookup of `domain` asked again with DNSSEC; when validated, for each of
// `hosts` (the MX hosts, or the domain itself for an implicit MX) its A record (AAAA when it has no A) and,
// when that is validated too, its TLSA records at tlsa_name(host, port). At most 1 + 3 lookups per host.
DanePolicy dane_policy(Dns& dns, std::string_view domain, const std::vector<std::string>& hosts,
                       std::uint16_t port = 25);

}  // namespace magpie::mailauth
