#include "mail/base64.h"

#include <array>
#include <cstdint>

namespace magpie::mail {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// 0..63 for alphabet octets, 64 for '=', 255 for everything a tolerant decoder skips.
constexpr std::uint8_t kPad = 64;
constexpr std::uint8_t kSkip = 255;

constexpr std::array<std::uint8_t, 256> make_decode_table() {
    std::array<std::uint8_t, 256> table{};
    for (auto& v : table) v = kSkip;
    for (std::uint8_t i = 0; i < 64; ++i) table[static_cast<unsigned char>(kAlphabet[i])] = i;
    table['='] = kPad;
    return table;
}

constexpr auto kDecode = make_decode_table();

// Counts the alphabet octets before the first '=' (the only ones that carry data).
std::size_t count_sextets(std::string_view text) {
    std::size_t n = 0;
    for (char c : text) {
        std::uint8_t v = kDecode[static_cast<unsigned char>(c)];
        if (v == kPad) break;
        if (v != kSkip) ++n;
    }
    return n;
}

std::size_t bytes_from_sextets(std::size_t sextets) {
    // A dangling single sextet holds only 6 bits: no whole octet (RFC 4648 3.3 lets us drop it).
    std::size_t rest = sextets % 4;
    return sextets / 4 * 3 + (rest >= 2 ? rest - 1 : 0);
}

}  // namespace

std::size_t base64_encoded_size(std::size_t size, std::size_t line_length) {
    std::size_t chars = (size + 2) / 3 * 4;
    if (line_length == 0 || chars == 0) return chars;
    return chars + (chars - 1) / line_length * 2;
}

std::string base64_encode(std::string_view bytes, std::size_t line_length) {
    std::string out;
    out.resize(base64_encoded_size(bytes.size(), line_length));
    char* dst = out.data();
    std::size_t column = 0;
    // With lines a multiple of 4 long (76, or none at all), a break never falls inside a group, so the
    // column is checked once per group instead of once per character.
    const bool whole_groups = line_length % 4 == 0;
    auto put = [&](char c) {
        if (line_length != 0 && column == line_length) {
            *dst++ = '\r';
            *dst++ = '\n';
            column = 0;
        }
        *dst++ = c;
        ++column;
    };
    const auto* src = reinterpret_cast<const unsigned char*>(bytes.data());
    std::size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        std::uint32_t v = (std::uint32_t{src[i]} << 16) | (std::uint32_t{src[i + 1]} << 8) | src[i + 2];
        if (whole_groups) {
            if (line_length != 0 && column == line_length) {
                *dst++ = '\r';
                *dst++ = '\n';
                column = 0;
            }
            dst[0] = kAlphabet[(v >> 18) & 63];
            dst[1] = kAlphabet[(v >> 12) & 63];
            dst[2] = kAlphabet[(v >> 6) & 63];
            dst[3] = kAlphabet[v & 63];
            dst += 4;
            column += 4;
        } else {
            put(kAlphabet[(v >> 18) & 63]);
            put(kAlphabet[(v >> 12) & 63]);
            put(kAlphabet[(v >> 6) & 63]);
            put(kAlphabet[v & 63]);
        }
    }
    std::size_t rest = bytes.size() - i;
    if (rest > 0) {
        std::uint32_t v = std::uint32_t{src[i]} << 16;
        if (rest == 2) v |= std::uint32_t{src[i + 1]} << 8;
        put(kAlphabet[(v >> 18) & 63]);
        put(kAlphabet[(v >> 12) & 63]);
        put(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
        put('=');
    }
    return out;
}

std::size_t base64_decoded_size(std::string_view text) {
    return bytes_from_sextets(count_sextets(text));
}

std::string base64_decode(std::string_view text) {
    std::string out;
    out.resize(text.size() / 4 * 3 + 3);
    char* dst = out.data();
    const auto* src = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t n = text.size();
    std::uint32_t acc = 0;
    int have = 0;
    std::size_t i = 0;
    while (i < n) {
        // Fast path: four alphabet characters in a row make three octets (the bulk of every line).
        if (have == 0 && i + 4 <= n) {
            std::uint8_t a = kDecode[src[i]], b = kDecode[src[i + 1]], c = kDecode[src[i + 2]],
                         d = kDecode[src[i + 3]];
            if ((a | b | c | d) < 64) {
                std::uint32_t v =
                    (std::uint32_t{a} << 18) | (std::uint32_t{b} << 12) | (std::uint32_t{c} << 6) | d;
                dst[0] = static_cast<char>((v >> 16) & 0xff);
                dst[1] = static_cast<char>((v >> 8) & 0xff);
                dst[2] = static_cast<char>(v & 0xff);
                dst += 3;
                i += 4;
                continue;
            }
        }
        std::uint8_t v = kDecode[src[i++]];
        if (v == kSkip) continue;
        if (v == kPad) break;
        acc = (acc << 6) | v;
        if (++have == 4) {
            *dst++ = static_cast<char>((acc >> 16) & 0xff);
            *dst++ = static_cast<char>((acc >> 8) & 0xff);
            *dst++ = static_cast<char>(acc & 0xff);
            acc = 0;
            have = 0;
        }
    }
    if (have == 2) {
        *dst++ = static_cast<char>((acc >> 4) & 0xff);
    } else if (have == 3) {
        *dst++ = static_cast<char>((acc >> 10) & 0xff);
        *dst++ = static_cast<char>((acc >> 2) & 0xff);
    }
    out.resize(static_cast<std::size_t>(dst - out.data()));
    return out;
}

}  // namespace magpie::mail
