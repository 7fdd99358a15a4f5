// RFC 2047 encoded words ("=?charset?B|Q?text?=") in header text, decoded to UTF-8. Adjacent encoded words
// are joined (the white space between them is dropped, RFC 2047 6.2) and words in the same charset are
// decoded as one byte run, so a multi-byte character split across two words survives.
#pragma once

#include <string>
#include <string_view>

namespace magpie::mail {

// Decodes every encoded word in `text` (unstructured text or a phrase already unquoted) to UTF-8. Raw 8-bit
// text outside encoded words is read as UTF-8 (RFC 6532) or, when not valid UTF-8, as Windows-1252.
// Malformed or unknown-charset words are kept literally, as RFC 2047 6.3 asks.
std::string decode_encoded_words(std::string_view text);

// The "Q" encoding (RFC 2047 4.2): "=XX" escapes and '_' for space. Bad escapes are kept literally.
std::string q_decode(std::string_view text);

}  // namespace magpie::mail
