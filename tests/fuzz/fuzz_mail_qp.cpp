// libFuzzer target: quoted-printable decoding never misbehaves on any input, and decode(encode(x)) == x in
// text and binary mode with 7-bit output lines of at most 76 characters.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mail/quoted_printable.h"

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    std::string decoded = magpie::mail::qp_decode(input);
    check(decoded.size() <= input.size());

    for (bool binary : {false, true}) {
        std::string encoded = magpie::mail::qp_encode(input, binary);
        check(magpie::mail::qp_decode(encoded) == input);
        std::size_t column = 0;
        for (std::size_t i = 0; i < encoded.size(); ++i) {
            auto c = static_cast<unsigned char>(encoded[i]);
            check(c < 0x80);
            if (c == '\r') {
                check(i + 1 < encoded.size() && encoded[i + 1] == '\n');  // no bare CR
                continue;
            }
            if (c == '\n') {
                check(i > 0 && encoded[i - 1] == '\r');               // no bare LF
                check(!binary || (i >= 2 && encoded[i - 2] == '='));  // binary mode: soft breaks only
                column = 0;
                continue;
            }
            check(++column <= 76);
        }
    }
    return 0;
}
