// Choosing and applying a Content-Transfer-Encoding (RFC 2045 6) for a body the builder or the downgrade
// writes: identity when the bytes already fit the transport, quoted-printable for mostly-ASCII text, base64
// for the rest.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "mail/mime.h"  // TransferEncoding, transfer_encoding_name

namespace magpie::mail {

// What the next hop accepts: plain SMTP, 8BITMIME (RFC 6152) or BINARYMIME (RFC 3030).
enum class Transport { seven_bit, eight_bit, binary };

// What decides the encoding, counted in one pass.
struct BodyStats {
    std::size_t octets = 0;
    std::size_t eight_bit = 0;      // octets >= 0x80
    std::size_t qp_escapes = 0;     // octets quoted-printable would escape (8-bit, controls, '=')
    std::size_t nul = 0;            // RFC 2045 2.7/2.8: never in 7bit or 8bit
    std::size_t bare_cr_or_lf = 0;  // CR or LF not in a CRLF pair
    std::size_t longest_line = 0;   // octets between line breaks, CRLF excluded
};

BodyStats measure_body(std::string_view body);

// RFC 2045 2.7/2.8: lines of at most 998 octets, no NUL, CR and LF only as CRLF.
inline constexpr std::size_t kMaxBodyLineOctets = 998;

// Picks the encoding for `body`: 7bit when it is already 7-bit lines, 8bit (or binary) when the transport
// takes it, else quoted-printable for text with at most one octet in three escaped (for other bodies: one
// in six and no bare CR or LF) and base64 otherwise. `text` is true for text/* bodies.
TransferEncoding choose_transfer_encoding(std::string_view body, bool text, Transport transport);

// Encodes `body` with `encoding`. Base64 and quoted-printable results end with CRLF (a base64 line break
// or a quoted-printable soft break), which decoders ignore; identity encodings return the body unchanged.
std::string apply_transfer_encoding(std::string_view body, TransferEncoding encoding);

}  // namespace magpie::mail
