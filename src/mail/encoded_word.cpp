#include "mail/encoded_word.h"

#include <optional>

#include "base/strings.h"
#include "mail/base64.h"
#include "mail/charset.h"

namespace magpie::mail {
namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

struct EncodedWord {
    std::string_view charset;  // without an RFC 2231 "*language" suffix
    std::string bytes;         // decoded octets, still in `charset`
    std::size_t length = 0;    // of the whole "=?...?=" text
};

// Where the next "?=" and the next white space are, at or after some position. Each is searched again only
// once passed, so text full of "=?" that never closes is scanned in linear time, not once per "=?".
struct Lookahead {
    std::string_view text;
    std::size_t close = 0, close_from = std::string_view::npos;
    std::size_t space = 0, space_from = std::string_view::npos;

    std::size_t next_close(std::size_t from) {
        if (close_from == std::string_view::npos || from < close_from || (close != std::string_view::npos && close < from)) {
            close = text.find("?=", from);
            close_from = from;
        }
        return close;
    }
    std::size_t next_space(std::size_t from) {
        if (space_from == std::string_view::npos || from < space_from || (space != std::string_view::npos && space < from)) {
            space = text.find_first_of(" \t\r\n", from);
            space_from = from;
        }
        return space;
    }
};

// Parses an encoded word starting at text[at] (which begins with "=?").
std::optional<EncodedWord> parse_word(Lookahead& look, std::size_t at) {
    std::string_view s = look.text;
    std::size_t q1 = at + 2;
    while (q1 < s.size() && s[q1] != '?' && !is_space(s[q1])) ++q1;
    if (q1 >= s.size() || s[q1] != '?' || q1 == at + 2) return std::nullopt;
    if (q1 + 2 >= s.size() || s[q1 + 2] != '?') return std::nullopt;
    char encoding = ascii_upper(s[q1 + 1]);
    if (encoding != 'B' && encoding != 'Q') return std::nullopt;
    std::size_t text_begin = q1 + 3;
    std::size_t close = look.next_close(text_begin);
    if (close == std::string_view::npos) return std::nullopt;
    // RFC 2047 5: no white space inside an encoded word.
    if (look.next_space(text_begin) < close) return std::nullopt;
    std::string_view charset = s.substr(at + 2, q1 - at - 2);
    std::string_view text = s.substr(text_begin, close - text_begin);
    if (std::size_t star = charset.find('*'); star != std::string_view::npos) charset = charset.substr(0, star);
    EncodedWord word;
    word.charset = charset;
    word.bytes = encoding == 'B' ? base64_decode(text) : q_decode(text);
    word.length = close + 2 - at;
    return word;
}

}  // namespace

std::string q_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '_') {
            out.push_back(' ');
        } else if (c == '=' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 && hex_value(text[i + 2]) >= 0) {
            out.push_back(static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2])));
            i += 2;
        } else {
            out.push_back(c);
        }
    }
    return out;
}

std::string decode_encoded_words(std::string_view text) {
    if (text.find("=?") == std::string_view::npos) return guess_to_utf8(text);
    std::string out;
    out.reserve(text.size());
    std::string pending;              // bytes of adjacent words in one charset, not yet converted
    std::string_view pending_charset;
    auto flush = [&] {
        if (!pending_charset.empty() || !pending.empty()) {
            out += to_utf8_lenient(pending, pending_charset);
            pending.clear();
            pending_charset = {};
        }
    };
    auto append_plain = [&](std::string_view plain) {
        if (!plain.empty()) out += guess_to_utf8(plain);
    };
    bool after_word = false;
    Lookahead look{text};
    std::size_t i = 0;
    std::size_t plain_start = 0;
    while (i < text.size()) {
        if (text[i] == '=' && i + 1 < text.size() && text[i + 1] == '?') {
            auto word = parse_word(look, i);
            if (word) {
                std::string_view between = text.substr(plain_start, i - plain_start);
                bool only_space = true;
                for (char c : between) only_space = only_space && is_space(c);
                if (!(after_word && only_space)) {
                    // Plain text between words (or before the first) is kept; white space between two
                    // encoded words is not (RFC 2047 6.2).
                    flush();
                    append_plain(between);
                } else if (!iequals(word->charset, pending_charset)) {
                    flush();
                }
                if (pending.empty()) pending_charset = word->charset;
                pending += word->bytes;
                i += word->length;
                plain_start = i;
                after_word = true;
                continue;
            }
        }
        ++i;
    }
    flush();
    append_plain(text.substr(plain_start));
    return out;
}

}  // namespace magpie::mail
