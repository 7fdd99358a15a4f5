// Lexical pieces shared by the MIME header parsers (Content-Type, Content-Disposition and their
// parameters): white space, RFC 2045 tokens and comments. Internal to src/mail.
#pragma once

#include <cstddef>
#include <string_view>

namespace magpie::mail::lex {

inline bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// RFC 2045 5.1 token characters.
inline bool is_token_char(char c) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 32 || u >= 127) return false;
    return std::string_view("()<>@,;:\\\"/[]?=").find(c) == std::string_view::npos;
}

// Skips white space and (nested, quoted-pair aware) comments from s[i]; an unclosed comment runs to the end.
inline void skip_cfws(std::string_view s, std::size_t& i) {
    while (i < s.size()) {
        if (is_ws(s[i])) {
            ++i;
        } else if (s[i] == '(') {
            int depth = 0;
            while (i < s.size()) {
                char c = s[i++];
                if (c == '\\' && i < s.size()) ++i;
                else if (c == '(') ++depth;
                else if (c == ')' && --depth == 0) break;
            }
        } else {
            break;
        }
    }
}

}  // namespace magpie::mail::lex
