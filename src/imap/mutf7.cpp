#include "imap/mutf7.h"

#include <cstdint>
#include <vector>

#include "base/strings.h"

namespace magpie::imap {
namespace {

// RFC 3501 5.1.3: base64 with "," in place of "/", and no "=" padding.
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

int alphabet_index(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == ',') return 63;
    return -1;
}

bool is_direct(std::uint32_t c) {
    return c >= 0x20 && c <= 0x7E;
}

// Decodes one scalar from valid UTF-8 (the caller validated it) and advances i.
std::uint32_t next_code_point(std::string_view s, std::size_t& i) {
    auto byte = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(s[k])); };
    std::uint32_t c = byte(i);
    if (c < 0x80) {
        i += 1;
        return c;
    }
    if (c < 0xE0) {
        std::uint32_t cp = ((c & 0x1F) << 6) | (byte(i + 1) & 0x3F);
        i += 2;
        return cp;
    }
    if (c < 0xF0) {
        std::uint32_t cp = ((c & 0x0F) << 12) | ((byte(i + 1) & 0x3F) << 6) | (byte(i + 2) & 0x3F);
        i += 3;
        return cp;
    }
    std::uint32_t cp = ((c & 0x07) << 18) | ((byte(i + 1) & 0x3F) << 12) | ((byte(i + 2) & 0x3F) << 6) |
                       (byte(i + 3) & 0x3F);
    i += 4;
    return cp;
}

// Writes UTF-16 units in modified base64 and closes the shift with "-".
void flush_shift(std::string& out, const std::vector<std::uint16_t>& units) {
    std::uint32_t bits = 0;
    int nbits = 0;
    for (std::uint16_t unit : units) {
        bits = (bits << 16) | unit;
        nbits += 16;
        while (nbits >= 6) {
            nbits -= 6;
            out.push_back(kAlphabet[(bits >> nbits) & 0x3F]);
        }
        bits &= (1u << nbits) - 1;
    }
    if (nbits > 0) out.push_back(kAlphabet[(bits << (6 - nbits)) & 0x3F]);
    out.push_back('-');
}

Error malformed(const char* why) {
    return make_error(Errc::invalid_argument, std::string("modified UTF-7: ") + why);
}

}  // namespace

Result<std::string> mutf7_encode(std::string_view utf8) {
    if (!is_valid_utf8(utf8)) return make_error(Errc::invalid_argument, "mailbox name is not valid UTF-8");
    std::string out;
    std::vector<std::uint16_t> pending;
    std::size_t i = 0;
    while (i < utf8.size()) {
        std::uint32_t cp = next_code_point(utf8, i);
        if (is_direct(cp)) {
            if (!pending.empty()) {
                out.push_back('&');
                flush_shift(out, pending);
                pending.clear();
            }
            out.push_back(static_cast<char>(cp));
            if (cp == '&') out.push_back('-');
            continue;
        }
        if (cp >= 0x10000) {
            std::uint32_t v = cp - 0x10000;
            pending.push_back(static_cast<std::uint16_t>(0xD800 | (v >> 10)));
            pending.push_back(static_cast<std::uint16_t>(0xDC00 | (v & 0x3FF)));
        } else {
            pending.push_back(static_cast<std::uint16_t>(cp));
        }
    }
    if (!pending.empty()) {
        out.push_back('&');
        flush_shift(out, pending);
    }
    return out;
}

Result<std::string> mutf7_decode(std::string_view in) {
    std::string out;
    bool previous_was_shift = false;
    std::size_t i = 0;
    while (i < in.size()) {
        char c = in[i];
        auto byte = static_cast<unsigned char>(c);
        if (byte < 0x20 || byte > 0x7E) return malformed("8-bit or control octet");
        if (c != '&') {
            out.push_back(c);
            previous_was_shift = false;
            ++i;
            continue;
        }
        if (i + 1 < in.size() && in[i + 1] == '-') {
            out.push_back('&');
            previous_was_shift = false;
            i += 2;
            continue;
        }
        // RFC 3501 5.1.3: a shifted sequence right after another must have been merged into it.
        if (previous_was_shift) return malformed("adjacent shifted sequences");
        std::size_t end = in.find('-', i + 1);
        if (end == std::string_view::npos) return malformed("unterminated shifted sequence");
        std::vector<std::uint16_t> units;
        std::uint32_t bits = 0;
        int nbits = 0;
        for (std::size_t k = i + 1; k < end; ++k) {
            int value = alphabet_index(in[k]);
            if (value < 0) return malformed("invalid base64 character");
            bits = ((bits << 6) | static_cast<std::uint32_t>(value)) & 0x3FFFFF;
            nbits += 6;
            if (nbits >= 16) {
                nbits -= 16;
                units.push_back(static_cast<std::uint16_t>(bits >> nbits));
                bits &= (1u << nbits) - 1;
            }
        }
        // A canonical encoding ends within the last sextet with zero padding bits.
        if (nbits >= 6 || bits != 0) return malformed("bad padding");
        for (std::size_t u = 0; u < units.size(); ++u) {
            std::uint32_t unit = units[u];
            std::uint32_t cp = unit;
            if (unit >= 0xD800 && unit <= 0xDBFF) {
                if (u + 1 >= units.size() || units[u + 1] < 0xDC00 || units[u + 1] > 0xDFFF) {
                    return malformed("unpaired surrogate");
                }
                cp = 0x10000 + ((unit - 0xD800) << 10) + (units[u + 1] - 0xDC00u);
                ++u;
            } else if (unit >= 0xDC00 && unit <= 0xDFFF) {
                return malformed("unpaired surrogate");
            }
            if (is_direct(cp)) return malformed("printable ASCII in a shifted sequence");
            append_utf8(out, cp);
        }
        previous_was_shift = true;
        i = end + 1;
    }
    return out;
}

}  // namespace magpie::imap
