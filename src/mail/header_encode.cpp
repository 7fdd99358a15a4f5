#include "mail/header_encode.h"

#include "base/strings.h"
#include "mail/base64.h"

namespace magpie::mail {

namespace {

constexpr char kHex[] = "0123456789ABCDEF";
// "=?UTF-8?Q?" + "?=": the fixed part of every encoded word we write.
constexpr std::string_view kWordPrefixQ = "=?UTF-8?Q?";
constexpr std::string_view kWordPrefixB = "=?UTF-8?B?";
constexpr std::size_t kWordOverhead = 12;
constexpr std::size_t kMaxEncodedWord = 75;  // RFC 2047 2
// A word alone on a continuation line (" " + word) must stay within the 78-octet soft limit.
constexpr std::size_t kMaxPlainWord = 77;
// RFC 5321 4.5.3.1.3: a path is at most 256 octets including the angle brackets.
constexpr std::size_t kMaxAddrSpec = 254;
// Parameter segments are kept short enough that " name*N*=..." folds within 78 columns.
constexpr std::size_t kMaxParameterSegment = 76;

bool is_control(unsigned char c) {
    return c < 0x20 || c == 0x7f;
}

// RFC 5322 3.2.3 atext.
bool is_atext(unsigned char c) {
    if (c >= 'a' && c <= 'z') return true;
    if (c >= 'A' && c <= 'Z') return true;
    if (c >= '0' && c <= '9') return true;
    return std::string_view("!#$%&'*+-/=?^_`{|}~").find(static_cast<char>(c)) != std::string_view::npos;
}

// RFC 2045 5.1 tspecials.
bool is_tspecial(unsigned char c) {
    return std::string_view("()<>@,;:\\\"/[]?=").find(static_cast<char>(c)) != std::string_view::npos;
}

bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if (c <= 0x20 || c >= 0x7f || is_tspecial(c)) return false;
    }
    return true;
}

// Q octets written literally: in a phrase only RFC 2047 5 rule 3's set, elsewhere any printable ASCII but
// the ones with a meaning inside an encoded word.
bool q_literal(unsigned char c, bool phrase) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    if (phrase) return c == '!' || c == '*' || c == '+' || c == '-' || c == '/';
    return c > 0x20 && c < 0x7f && c != '=' && c != '?' && c != '_' && c != '(' && c != ')' && c != '"';
}

std::size_t q_width(unsigned char c, bool phrase) {
    return (c == ' ' || q_literal(c, phrase)) ? 1 : 3;
}

void q_append(std::string& out, std::string_view bytes, bool phrase) {
    for (char ch : bytes) {
        auto c = static_cast<unsigned char>(ch);
        if (c == ' ') {
            out.push_back('_');  // RFC 2047 4.2 rule 2
        } else if (q_literal(c, phrase)) {
            out.push_back(ch);
        } else {
            out.push_back('=');
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 15]);
        }
    }
}

// Length of the UTF-8 sequence starting with `lead` (input is already validated).
std::size_t utf8_length(unsigned char lead) {
    if (lead < 0x80) return 1;
    if (lead >= 0xf0) return 4;
    if (lead >= 0xe0) return 3;
    return 2;
}

bool has_non_ascii(std::string_view s) {
    return !is_ascii(s);
}

bool has_control(std::string_view s) {
    for (char c : s)
        if (is_control(static_cast<unsigned char>(c))) return true;
    return false;
}

// Splits on single spaces; empty pieces stand for extra spaces and are kept.
std::vector<std::string_view> words_of(std::string_view text) {
    return split(text, ' ');
}

// Writes words, replacing each run of words for which needs(word) holds by encoded words. Two runs separated
// only by empty words (extra spaces) are one run, because readers drop white space between encoded words.
template <class Needs>
std::string encode_runs(const std::vector<std::string_view>& words, bool phrase, Needs needs) {
    std::string out;
    std::size_t i = 0;
    while (i < words.size()) {
        if (i > 0) out.push_back(' ');
        if (!needs(words[i])) {
            out.append(words[i]);
            ++i;
            continue;
        }
        std::size_t last = i;  // last word needing encoding in this run
        std::size_t j = i + 1;
        while (j < words.size()) {
            if (words[j].empty()) {
                ++j;
                continue;
            }
            if (!needs(words[j])) break;
            last = j;
            ++j;
        }
        // The run spans words[i..last] with the spaces between them.
        const char* begin = words[i].data();
        const char* end = words[last].data() + words[last].size();
        out.append(encode_words(std::string_view(begin, static_cast<std::size_t>(end - begin)), phrase));
        i = last + 1;
    }
    return out;
}


// Is `s` exactly one RFC 5322 3.2.4 quoted-string: a '"' at each end, and every '"' and '\\' between them
// escaped? One that is not ("a", b@evil.test, "c") must be quoted whole, or its quotes would end early
// and the rest would read as more addresses.
bool is_one_quoted_string(std::string_view s) {
    if (s.size() < 2 || s.front() != '"' || s.back() != '"') return false;
    for (std::size_t i = 1; i + 1 < s.size(); ++i) {
        if (s[i] == '"') return false;
        if (s[i] == '\\' && ++i + 1 >= s.size()) return false;  // escapes the closing quote
    }
    return true;
}

bool is_dot_atom(std::string_view s, bool utf8) {
    if (s.empty() || s.front() == '.' || s.back() == '.') return false;
    char prev = 0;
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if (ch == '.') {
            if (prev == '.') return false;
        } else if (!(is_atext(c) || (utf8 && c >= 0x80))) {
            return false;
        }
        prev = ch;
    }
    return true;
}

Result<void> check_utf8(std::string_view s, std::string_view what) {
    if (!is_valid_utf8(s))
        return make_error(Errc::invalid_argument, std::string(what) + " is not valid UTF-8");
    return {};
}

}  // namespace

std::string encode_words(std::string_view text, bool phrase) {
    std::size_t q_total = 0;
    for (char c : text) q_total += q_width(static_cast<unsigned char>(c), phrase);
    // Q keeps mostly-ASCII text legible to a reader without RFC 2047, so B must save a quarter to win.
    bool use_b = (text.size() + 2) / 3 * 4 * 4 < q_total * 3;
    const std::size_t budget = kMaxEncodedWord - kWordOverhead;

    std::string out;
    std::size_t pos = 0;
    while (pos < text.size()) {
        // Take whole characters while the encoded payload fits the word.
        std::size_t take = 0;
        std::size_t q_len = 0;
        while (pos + take < text.size()) {
            std::size_t n = utf8_length(static_cast<unsigned char>(text[pos + take]));
            n = std::min(n, text.size() - pos - take);
            std::size_t next_len = 0;
            if (use_b) {
                next_len = (take + n + 2) / 3 * 4;
            } else {
                next_len = q_len;
                for (std::size_t k = 0; k < n; ++k)
                    next_len += q_width(static_cast<unsigned char>(text[pos + take + k]), phrase);
            }
            if (next_len > budget && take > 0) break;
            take += n;
            q_len = next_len;
        }
        if (!out.empty()) out.push_back(' ');
        std::string_view chunk = text.substr(pos, take);
        if (use_b) {
            out.append(kWordPrefixB);
            out.append(base64_encode(chunk, 0));
        } else {
            out.append(kWordPrefixQ);
            q_append(out, chunk, phrase);
        }
        out.append("?=");
        pos += take;
    }
    if (text.empty()) out.append(kWordPrefixQ).append("?=");
    return out;
}

Result<std::string> encode_unstructured(std::string_view text, bool utf8_headers) {
    MAGPIE_TRY(check_utf8(text, "header text"));
    auto needs = [utf8_headers](std::string_view word) {
        if (word.empty()) return false;
        if (word.size() > kMaxPlainWord) return true;
        if (has_control(word)) return true;
        if (!utf8_headers && has_non_ascii(word)) return true;
        return word.find("=?") != std::string_view::npos;
    };
    return encode_runs(words_of(text), false, needs);
}

Result<std::string> encode_phrase(std::string_view name, bool utf8_headers) {
    MAGPIE_TRY(check_utf8(name, "display name"));
    name = trim(name);
    if (name.empty()) return std::string();
    bool plain = !has_control(name) && (utf8_headers || !has_non_ascii(name)) &&
                 name.find("=?") == std::string_view::npos;
    if (plain) {
        bool atoms = true;
        for (std::string_view word : words_of(name)) {
            atoms = atoms && is_dot_atom(word, utf8_headers) && word.find('.') == std::string_view::npos;
        }
        return atoms ? std::string(name) : quoted_string(name);
    }
    auto needs = [utf8_headers](std::string_view word) {
        if (word.empty()) return false;
        for (char ch : word) {
            auto c = static_cast<unsigned char>(ch);
            if (c >= 0x80 ? !utf8_headers : !is_atext(c)) return true;
        }
        return word.size() > kMaxPlainWord || word.find("=?") != std::string_view::npos;
    };
    return encode_runs(words_of(name), true, needs);
}

Result<std::string> format_addr_spec(std::string_view address, bool utf8_headers) {
    MAGPIE_TRY(check_utf8(address, "address"));
    if (address.size() > kMaxAddrSpec) return make_error(Errc::limit_exceeded, "address too long");
    std::size_t at = address.rfind('@');
    if (at == std::string_view::npos || at == 0 || at + 1 == address.size())
        return make_error(Errc::invalid_argument, "address needs local@domain");
    std::string_view local = address.substr(0, at);
    std::string_view domain = address.substr(at + 1);
    if (has_control(address)) return make_error(Errc::invalid_argument, "control character in address");
    if (!utf8_headers && has_non_ascii(address))
        return make_error(Errc::invalid_argument, "non-ASCII address needs SMTPUTF8");

    std::string out;
    if (is_one_quoted_string(local)) {
        out.append(local);  // already a quoted-string
    } else if (is_dot_atom(local, utf8_headers)) {
        out.append(local);
    } else {
        out.append(quoted_string(local));
    }
    out.push_back('@');
    if (domain.front() == '[') {
        // RFC 5322 3.4.1 domain-literal: dtext only, no escapes.
        if (domain.back() != ']' || domain.size() < 3)
            return make_error(Errc::invalid_argument, "bad domain literal");
        for (char ch : domain.substr(1, domain.size() - 2)) {
            if (ch == '[' || ch == ']' || ch == '\\' || ch == ' ')
                return make_error(Errc::invalid_argument, "bad domain literal");
        }
    } else if (!is_dot_atom(domain, utf8_headers)) {
        return make_error(Errc::invalid_argument, "bad domain in address");
    }
    out.append(domain);
    return out;
}

Result<std::string> format_mailbox(const MailboxSpec& mailbox, bool utf8_headers) {
    auto addr = format_addr_spec(mailbox.address, utf8_headers);
    if (!addr) return addr.error();
    auto phrase = encode_phrase(mailbox.name, utf8_headers);
    if (!phrase) return phrase.error();
    if (phrase->empty()) return std::move(addr).value();
    return *phrase + " <" + *addr + ">";
}

Result<std::string> format_mailbox_list(const std::vector<MailboxSpec>& mailboxes, bool utf8_headers) {
    std::string out;
    for (const auto& mailbox : mailboxes) {
        auto one = format_mailbox(mailbox, utf8_headers);
        if (!one) return one.error();
        if (!out.empty()) out.append(", ");
        out.append(*one);
    }
    return out;
}

Result<std::vector<std::string>> encode_parameter(std::string_view name, std::string_view value,
                                                  bool utf8_headers) {
    if (!is_token(name) || name.find('*') != std::string_view::npos)
        return make_error(Errc::invalid_argument, "bad parameter name");
    MAGPIE_TRY(check_utf8(value, "parameter value"));
    std::vector<std::string> segments;
    // "=?" too: readers decode RFC 2047 words in plain parameter values (as mime_params.cpp does, after many
    // mailers), so a value that holds one would not read back as itself; the extended form is never decoded so.
    bool extended = has_control(value) || (!utf8_headers && has_non_ascii(value)) ||
                    value.find("=?") != std::string_view::npos;
    std::string prefix(name);

    if (!extended) {
        if (is_token(value) && prefix.size() + 1 + value.size() <= kMaxParameterSegment) {
            segments.push_back(prefix + "=" + std::string(value));
            return segments;
        }
        std::string quoted = quoted_string(value);
        if (prefix.size() + 1 + quoted.size() <= kMaxParameterSegment) {
            segments.push_back(prefix + "=" + quoted);
            return segments;
        }
        // RFC 2231 3: name*0="..."; name*1="..."; whole characters per segment.
        std::size_t pos = 0;
        while (pos < value.size()) {
            std::string head = prefix + "*" + std::to_string(segments.size()) + "=\"";
            std::string body;
            while (pos < value.size()) {
                std::size_t n =
                    std::min(utf8_length(static_cast<unsigned char>(value[pos])), value.size() - pos);
                std::size_t extra = 0;
                for (std::size_t k = 0; k < n; ++k) {
                    extra += (value[pos + k] == '"' || value[pos + k] == '\\') ? 2 : 1;
                }
                if (!body.empty() && head.size() + body.size() + extra + 1 > kMaxParameterSegment) break;
                for (std::size_t k = 0; k < n; ++k) {
                    if (value[pos + k] == '"' || value[pos + k] == '\\') body.push_back('\\');
                    body.push_back(value[pos + k]);
                }
                pos += n;
            }
            segments.push_back(head + body + "\"");
        }
        return segments;
    }

    // RFC 2231 4: charset'language'percent-encoded octets, split into continuations (RFC 2231 4.1).
    auto attribute_char = [](unsigned char c) {
        return c > 0x20 && c < 0x7f && c != '*' && c != '\'' && c != '%' && !is_tspecial(c);
    };
    std::string encoded;
    std::vector<std::size_t> char_starts;  // offsets in `encoded` where a character begins
    for (std::size_t pos = 0; pos < value.size();) {
        std::size_t n = std::min(utf8_length(static_cast<unsigned char>(value[pos])), value.size() - pos);
        char_starts.push_back(encoded.size());
        for (std::size_t k = 0; k < n; ++k) {
            auto c = static_cast<unsigned char>(value[pos + k]);
            if (attribute_char(c)) {
                encoded.push_back(static_cast<char>(c));
            } else {
                encoded.push_back('%');
                encoded.push_back(kHex[c >> 4]);
                encoded.push_back(kHex[c & 15]);
            }
        }
        pos += n;
    }
    char_starts.push_back(encoded.size());
    const std::string charset = "UTF-8''";
    if (prefix.size() + 2 + charset.size() + encoded.size() <= kMaxParameterSegment) {
        segments.push_back(prefix + "*=" + charset + encoded);
        return segments;
    }
    std::size_t start = 0;
    std::size_t c = 0;  // index into char_starts
    while (start < encoded.size()) {
        std::string head = prefix + "*" + std::to_string(segments.size()) + "*=";
        if (segments.empty()) head += charset;
        std::size_t end = start;
        while (c + 1 < char_starts.size() &&
               (end == start || head.size() + (char_starts[c + 1] - start) <= kMaxParameterSegment)) {
            ++c;
            end = char_starts[c];
        }
        segments.push_back(head + encoded.substr(start, end - start));
        start = end;
    }
    return segments;
}

std::string join_parameters(std::string_view value, const std::vector<std::string>& segments) {
    std::string out(value);
    for (const auto& segment : segments) {
        out.append("; ");
        out.append(segment);
    }
    return out;
}

Result<std::string> fold_field(std::string_view name, std::string_view value, const FoldLimits& limits) {
    for (char ch : name) {
        auto c = static_cast<unsigned char>(ch);
        if (c <= 0x20 || c >= 0x7f || c == ':') return make_error(Errc::invalid_argument, "bad field name");
    }
    if (name.empty()) return make_error(Errc::invalid_argument, "empty field name");
    if (value.find_first_of("\r\n") != std::string_view::npos)
        return make_error(Errc::invalid_argument, "line break in field value");

    std::string line(name);
    line.push_back(':');
    if (!value.empty()) {
        line.push_back(' ');
        line.append(value);
    }

    // Break points, best first: (0) a WSP after a non-WSP outside quoted-strings; (1) the same inside a
    // quoted-string (legal, RFC 5322 3.2.4, but some readers mishandle it; and a lone '"' in unstructured
    // text must not forbid folding); (2) a WSP inside a run of white space. Each needs non-WSP after it and
    // in the line it ends (RFC 5322 3.2.2: no line of white space only). The break right after the colon
    // is taken only when nothing later fits (a long encoded word first in a value).
    struct Break {
        std::size_t at;
        int rank;
    };
    std::vector<Break> breaks;
    const std::size_t last_text = line.find_last_not_of(" \t");  // the colon at least
    bool quoted = false;
    for (std::size_t i = name.size() + 1; i < line.size(); ++i) {
        char c = line[i];
        if (quoted && c == '\\') {
            ++i;
        } else if (c == '"') {
            quoted = !quoted;
        } else if ((c == ' ' || c == '\t') && i < last_text) {
            bool in_run = line[i - 1] == ' ' || line[i - 1] == '\t';
            breaks.push_back({i, in_run ? 2 : quoted ? 1 : 0});
        }
    }

    std::string out;
    out.reserve(line.size() + line.size() / limits.soft_line_octets * 2 + 2);
    const std::size_t after_colon = name.size() + 1;
    std::size_t start = 0;
    std::size_t b = 0;
    while (line.size() - start > limits.soft_line_octets) {
        while (b < breaks.size() && breaks[b].at <= start) ++b;
        const std::size_t first_text = line.find_first_not_of(" \t", start);
        // The best-ranked last break keeping this line within the soft limit, else the first usable one.
        std::size_t best[3] = {0, 0, 0};
        for (std::size_t k = b; k < breaks.size() && breaks[k].at - start <= limits.soft_line_octets; ++k) {
            if (breaks[k].at != after_colon && first_text < breaks[k].at) best[breaks[k].rank] = breaks[k].at;
        }
        std::size_t chosen = best[0] ? best[0] : best[1] ? best[1] : best[2];
        for (std::size_t k = b; chosen == 0 && k < breaks.size(); ++k) {
            if (first_text < breaks[k].at) chosen = breaks[k].at;
        }
        if (chosen == 0) break;
        if (start == 0 && chosen == after_colon) {
            // Folding after the colon only helps when what follows then fits a line.
            std::size_t next = b + 1 < breaks.size() ? breaks[b + 1].at : line.size();
            if (next - chosen > limits.soft_line_octets) {
                if (b + 1 == breaks.size()) break;
                chosen = breaks[b + 1].at;
            }
        }
        if (chosen - start > limits.hard_line_octets)
            return make_error(Errc::limit_exceeded, "header line over 998 octets cannot be folded");
        out.append(line, start, chosen - start);
        out.append("\r\n");
        start = chosen;
    }
    if (line.size() - start > limits.hard_line_octets)
        return make_error(Errc::limit_exceeded, "header line over 998 octets cannot be folded");
    out.append(line, start, std::string::npos);
    out.append("\r\n");
    return out;
}

std::string quoted_string(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 2);
    out.push_back('"');
    for (char c : s) {
        if (c == '"' || c == '\\') out.push_back('\\');
        out.push_back(c);
    }
    out.push_back('"');
    return out;
}

}  // namespace magpie::mail
