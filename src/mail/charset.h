// Charset conversion to UTF-8 for decoded header words, RFC 2231 parameters and text bodies. US-ASCII,
// UTF-8 and ISO-8859-1 are converted in place; everything else goes through glibc's iconv.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace magpie::mail {

// Converts `bytes` in `charset` (any IANA name or alias iconv knows, case-insensitive) to UTF-8. nullopt
// when the charset is unknown. Invalid sequences become U+FFFD, so the result is always valid UTF-8.
std::optional<std::string> to_utf8(std::string_view bytes, std::string_view charset);

// As to_utf8, but an unknown charset is read as UTF-8 when the bytes are valid UTF-8 and as
// Windows-1252 otherwise (what mail readers do with mislabelled text).
std::string to_utf8_lenient(std::string_view bytes, std::string_view charset);

// Unlabelled bytes (raw 8-bit headers, text without a charset): UTF-8 when they are valid UTF-8,
// Windows-1252 otherwise.
std::string guess_to_utf8(std::string_view bytes);

// Replaces every invalid UTF-8 sequence with U+FFFD.
std::string sanitize_utf8(std::string_view bytes);

}  // namespace magpie::mail
