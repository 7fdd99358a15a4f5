// Converting a message with 8-bit or binary bodies to 7-bit for a peer without 8BITMIME (RFC 6152 3, as
// RFC 1652 describes): each such leaf body is re-encoded as quoted-printable or base64 and its
// Content-Transfer-Encoding rewritten, so that what a reader decodes is unchanged. Everything else (header
// fields, boundaries, 7-bit parts) is copied byte for byte.
#pragma once

#include <functional>
#include <optional>
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

// What an IMAP server stores for a message APPENDed as a literal8 (RFC 3516 4.4), so that every plain
// {n} literal it later sends of that message is free of NUL (RFC 3501 9: CHAR8 excludes %x00) and BODY,
// BODYSTRUCTURE, sizes and BINARY all describe the same bytes. Re-encoded as base64, Content-Transfer-
// Encoding rewritten in place:
// - every leaf labelled "binary" (Dovecot converts these at APPEND the same way, NUL or not);
// - every leaf of a known transfer encoding whose body holds a NUL anyway (7bit and 8bit exclude it, RFC
//   2045 2.7/2.8; Dovecot would serve it with the NUL changed to 0x80, which loses data).
// Multipart and message/rfc822 parts are never encoded (RFC 2045 6.4, RFC 2046 5.2.1); their children are.
// Header fields, 8-bit ones included, boundaries, preambles and epilogues are copied byte for byte: 8-bit
// octets are valid in a literal, and a NUL in a header can only be replaced when it is sent.
// Returns nullopt when no part needs re-encoding. Base64 lines are 76 characters with no final line break
// (the CRLF before a following boundary belongs to the boundary, RFC 2046 5.1.1), as Dovecot writes them.
std::optional<std::string> reencode_binary_parts(std::string_view message, const ParseLimits& limits = {});

// The same, streamed: writes the re-encoded message (or the message as it is, when no part needs it) to
// `write` in pieces, base64 made in slices, so a large literal8 is never held whole (the IMAP spool reads it
// mapped). Returns whether any part was re-encoded.
bool reencode_binary_parts(std::string_view message, const std::function<void(std::string_view)>& write,
                           const ParseLimits& limits = {});

}  // namespace magpie::mail
