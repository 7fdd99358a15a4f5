// Quoted-printable (RFC 2045 6.7): the transfer encoding for mostly-ASCII text that must cross 7-bit
// transport, and the base of the "Q" encoding of RFC 2047. Encoding is strict; decoding is tolerant.
#pragma once

#include <string>
#include <string_view>

namespace magpie::mail {

// Encodes bytes so that every output line is at most 76 characters including a trailing soft break '='
// (RFC 2045 6.7 rule 5). Text mode (binary == false) keeps each CRLF as a hard line break; a bare CR or
// LF is encoded (=0D, =0A) so decoding gives back exactly the input. Binary mode encodes CR and LF too,
// so the output has only soft breaks. White space before a line break is encoded (rule 3), and so are a
// leading "From " and a leading '.' so the text survives mbox files and careless SMTP relays. No encoded
// line starts with "--" (the first '-' becomes =2D), so an encoded body never holds a line that reads as a
// multipart delimiter of the message around it (RFC 2046 5.1.1), whatever its boundary.
// The result does not end with a line break unless the input did.
std::string qp_encode(std::string_view bytes, bool binary = false);

// Decodes tolerantly: "=XX" (either case of hex) gives an octet; a bad escape is kept literally; "=" at the
// end of a line is a soft break even with trailing white space after it; white space at the end of an
// encoded line is dropped (rule 3: transport added it). Line breaks (CRLF or bare LF) are kept as they are.
std::string qp_decode(std::string_view text);

}  // namespace magpie::mail
