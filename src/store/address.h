// How the store names domains and addresses: lower-cased (mail systems in practice treat the whole address
// case-insensitively, and one spelling per account keeps lookups exact) and checked against the RFC 5321
// size limits before they become keys. Not a full RFC 5322 parser: that is src/mail's job.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "base/result.h"

namespace magpie::store {

inline constexpr std::size_t kMaxLocalPartOctets = 64;  // RFC 5321 4.5.3.1.1
inline constexpr std::size_t kMaxDomainOctets = 255;    // RFC 5321 4.5.3.1.2
inline constexpr std::size_t kMaxAddressOctets = 254;   // RFC 5321 4.5.3.1.3 path (256) minus "<>"

// A lower-case domain of dot-separated LDH labels (A-labels for IDNs), each 1..63 octets.
Result<std::string> normalize_domain(std::string_view domain);

struct NormalizedAddress {
    std::string address;  // "local@domain", lower-cased; "@domain" for a catch-all
    std::string local;    // empty for a catch-all
    std::string domain;
};

// Splits at the last '@' and checks both parts. A local part may hold UTF-8 (RFC 6531) but no controls,
// spaces or address delimiters; a quoted one ("u.x"@d, RFC 5321 4.1.2) is taken unquoted (u.x@d), under
// the same rules. `allow_catch_all` accepts "@domain".
Result<NormalizedAddress> normalize_address(std::string_view address, bool allow_catch_all = false);

// A local part as written in a path: a Quoted-string ("u.x", RFC 5321 4.1.2) becomes its content with each
// quoted-pair's backslash removed; anything else is returned as it is. No checks: normalize_address checks.
std::string unquote_local_part(std::string_view local);

}  // namespace magpie::store
