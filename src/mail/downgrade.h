// Converting a message with 8-bit or binary bodies to 7-bit for a peer without 8BITMIME (RFC 6152 3, as
// RFC 1652 describes): each such leaf body is re-encoded as quoted-printable or base64 and its
// Content-Transfer-Encoding rewritten, so that what a reader decodes is unchanged. Everything else (header
// fields, boundaries, 7-bit parts) is copied byte for byte.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"
#include "mail/message.h"

namespace magpie::mail {

// True when the message cannot go to a 7-bit peer as it is: an octet >= 0x80, a NUL, or a line over 998.
bool needs_7bit_downgrade(std::string_view message);

// The message with every leaf body fitting 7-bit SMTP, or the message itself when it already does. A part
// labelled binary is re-encoded too (base64), since SMTP without BINARYMIME would alter its bare line ends.
// Errors: 8-bit octets in a header field (invalid_argument: that needs SMTPUTF8, RFC 6531, not a body
// re-encoding), 8-bit data under an unknown transfer encoding or in a multipart without boundaries
// (invalid_argument: no lossless re-encoding exists), a parse limit reached (limit_exceeded).
// 8-bit octets in preambles and epilogues, which no reader shows, become '?'.
Result<std::string> downgrade_to_7bit(std::string_view message, const ParseLimits& limits = {});

}  // namespace magpie::mail
