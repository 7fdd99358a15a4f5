// Modified UTF-7 (RFC 3501 5.1.3), the mailbox name encoding of IMAP4rev1 clients that have not enabled
// UTF8=ACCEPT or IMAP4rev2. Decoding is strict: only the one canonical encoding of a name is accepted, so
// two spellings never name the same mailbox.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"

namespace magpie::imap {

// UTF-8 to modified UTF-7. Fails on invalid UTF-8.
Result<std::string> mutf7_encode(std::string_view utf8);

// Modified UTF-7 to UTF-8. Fails on 8-bit or control octets, "&" not closed by "-", base64 outside the
// modified alphabet, non-zero padding bits, a partial UTF-16 unit, unpaired surrogates, printable ASCII
// encoded in base64, and two adjacent shifted sequences (all non-canonical or malformed).
Result<std::string> mutf7_decode(std::string_view mutf7);

}  // namespace magpie::imap
