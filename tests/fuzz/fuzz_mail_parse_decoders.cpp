// Fuzzes each decoder a reader goes through: base64, quoted-printable, RFC 2047 Q, and charset conversion
// (the first byte picks the charset so iconv's stateful and multi-byte decoders are reached too).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/strings.h"
#include "mail/base64.h"
#include "mail/charset.h"
#include "mail/encoded_word.h"
#include "mail/quoted_printable.h"

using namespace magpie::mail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    if (base64_decode(text).size() != base64_decoded_size(text)) __builtin_trap();
    (void)qp_decode(text);
    (void)q_decode(text);
    static const char* kCharsets[] = {"utf-8", "iso-8859-1", "windows-1252", "iso-2022-jp", "shift_jis",
                                      "euc-kr", "gb18030", "utf-16", "koi8-r", "utf-7", "big5", "bogus"};
    if (!text.empty()) {
        const char* charset = kCharsets[static_cast<unsigned char>(text[0]) % std::size(kCharsets)];
        if (!magpie::is_valid_utf8(to_utf8_lenient(text.substr(1), charset))) __builtin_trap();
    }
    return 0;
}
