// Base64 (RFC 2045 6.8, RFC 4648 4): the transfer encoding for binary and mostly-non-ASCII MIME bodies, and
// the "B" encoding of RFC 2047 encoded words. Encoding is strict; decoding is tolerant of what real mail
// holds.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace magpie::mail {

// Encodes bytes, breaking the output with CRLF every line_length characters (RFC 2045 6.8: at most 76).
// Breaks go between lines only: the result never ends with CRLF. line_length 0 means one unbroken line.
std::string base64_encode(std::string_view bytes, std::size_t line_length = 76);

// Decodes tolerantly: skips whitespace, line breaks and any other non-alphabet octet (RFC 2045 6.8 says a
// decoder must ignore them), stops at the first '=' (padding ends the data), and drops a dangling final
// sextet that cannot make a whole octet.
std::string base64_decode(std::string_view text);

// The exact size base64_decode(text) returns, without allocating.
std::size_t base64_decoded_size(std::string_view text);

// The size base64_encode(bytes, line_length) returns for an input of `size` bytes.
std::size_t base64_encoded_size(std::size_t size, std::size_t line_length = 76);

}  // namespace magpie::mail
