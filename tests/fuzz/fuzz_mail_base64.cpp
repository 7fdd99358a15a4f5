// libFuzzer target: base64 decoding never misbehaves on any input, its size function agrees with it, and
// decode(encode(x)) == x at every line length with lines within the limit.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mail/base64.h"

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    std::string decoded = magpie::mail::base64_decode(input);
    check(decoded.size() == magpie::mail::base64_decoded_size(input));
    check(decoded.size() <= input.size());

    std::size_t line_length = size == 0 ? 76 : data[0] % 80;
    std::string encoded = magpie::mail::base64_encode(input, line_length);
    check(encoded.size() == magpie::mail::base64_encoded_size(input.size(), line_length));
    check(magpie::mail::base64_decode(encoded) == input);
    if (line_length != 0) {
        std::size_t column = 0;
        for (char c : encoded) {
            if (c == '\r') continue;
            column = c == '\n' ? 0 : column + 1;
            check(column <= line_length);
        }
    }
    return 0;
}
