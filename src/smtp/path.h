// Parsing of SMTP envelope paths (RFC 5321 4.1.2, extended for UTF-8 by RFC 6531 3.3): the
// "<local@domain>" of MAIL FROM and RCPT TO, with quoted local parts, address literals, source routes
// (accepted and stripped, RFC 5321 3.6.1 / Appendix C) and the RFC 5321 4.5.3.1 length limits.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "base/result.h"

namespace magpie::smtp {

// RFC 5321 4.5.3.1.1-3 object sizes; servers must accept at least these and may refuse longer ones.
struct PathLimits {
    std::size_t max_local_part = 64;
    std::size_t max_domain = 255;
    std::size_t max_path = 256;  // including "<", ">" and any source route
};

struct ParsedPath {
    std::string mailbox;       // "local@domain" as written (quotes kept), source route removed; "" for <>
    bool is_null = false;      // the null reverse-path "<>"
    bool non_ascii = false;    // carries UTF-8 (allowed only with SMTPUTF8, RFC 6531 3.5)
    std::size_t consumed = 0;  // octets of the input used, from "<" to ">" inclusive
};

struct PathOptions {
    bool allow_null = false;        // MAIL FROM:<>
    bool allow_postmaster = false;  // RCPT TO:<Postmaster> without a domain, RFC 5321 4.5.1
    PathLimits limits;
};

// Parses a path at the start of `text` (which must begin with '<'). Errors: invalid_argument for bad
// syntax (including bytes that are not valid UTF-8), limit_exceeded for an over-long part; the message
// is fit for a reply text.
Result<ParsedPath> parse_path(std::string_view text, const PathOptions& options);

// The argument of MAIL FROM: / RCPT TO: after the colon, read as tolerantly as Postfix's default
// (smtpd_strict_rfc821_envelope = no) reads the forms real senders use, and no further:
//   - white space between the colon and the path ("MAIL FROM: <a@b>");
//   - white space just inside the angle brackets ("RCPT TO:< a@b >", "MAIL FROM:< >" is the null path);
//   - a path without angle brackets ("MAIL FROM:a@b"), ended by a space outside a quoted local part.
// The address itself must still be a valid RFC 5321 Mailbox (parse_path): white space inside it, two
// addresses, comments or a stray bracket are refused.
struct EnvelopeArgument {
    ParsedPath path;              // `consumed` counts octets of the bracketed, trimmed form
    std::string_view parameters;  // what follows the path ("" or starting with a space); borrows `text`
};
// Errors as parse_path; invalid_argument "missing address" when there is no path at all.
Result<EnvelopeArgument> parse_envelope_argument(std::string_view text, const PathOptions& options);

// RFC 5321 4.1.2 Domain (letters, digits, hyphens; labels of 1..63 octets), or with `allow_utf8` also
// U-labels (RFC 6531 3.3). Used for paths and to judge whether a HELO name can go into a trace header.
bool is_valid_domain(std::string_view domain, bool allow_utf8);

// RFC 5321 4.1.3 address literal including its brackets: [192.0.2.1] or [IPv6:2001:db8::1].
bool is_valid_address_literal(std::string_view literal);

}  // namespace magpie::smtp
