// Small ASCII string helpers shared by every protocol: case-insensitive comparison (protocol keywords and
// header names are ASCII case-insensitive), trimming and splitting. Nothing here is locale-dependent.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace magpie {

constexpr char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
constexpr char ascii_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }

bool iequals(std::string_view a, std::string_view b);
bool istarts_with(std::string_view s, std::string_view prefix);
std::string to_lower(std::string_view s);
std::string to_upper(std::string_view s);

// Strips spaces and horizontal tabs (SMTP/IMAP/RFC 5322 white space) from both ends.
std::string_view trim(std::string_view s);

// Splits on one separator character; empty pieces are kept.
std::vector<std::string_view> split(std::string_view s, char sep);

// Parses a whole decimal number without sign; nullopt on anything else or on overflow.
std::optional<std::uint64_t> parse_uint(std::string_view s);

// True when every byte is 7-bit (no octet >= 0x80).
bool is_ascii(std::string_view s);

// Strict UTF-8 validation (no overlongs, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view s);

// Appends the UTF-8 encoding of one code point (the caller has checked it is a scalar value <= U+10FFFF).
void append_utf8(std::string& out, char32_t code_point);

// Lower-case hexadecimal of raw bytes.
std::string to_hex(std::string_view bytes);

}  // namespace magpie
