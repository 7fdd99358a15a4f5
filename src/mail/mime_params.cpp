#include "mail/mime_params.h"

#include <algorithm>
#include <map>

#include "base/strings.h"
#include "mail/lexer.h"
#include "mail/charset.h"
#include "mail/encoded_word.h"

namespace magpie::mail {
namespace {

using lex::is_token_char;
using lex::is_ws;
using lex::skip_cfws;

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

std::string percent_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
            out.push_back(static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
            i += 2;
        } else {
            out.push_back(s[i]);
        }
    }
    return out;
}

std::vector<RawParameter> parse_raw(std::string_view s, const ParameterLimits& limits) {
    std::vector<RawParameter> out;
    std::size_t i = 0;
    while (i < s.size() && out.size() < limits.max_parameters) {
        skip_cfws(s, i);
        if (i < s.size() && s[i] == ';') {
            ++i;
            continue;
        }
        std::size_t name_start = i;
        while (i < s.size() && s[i] != '=' && s[i] != ';') ++i;
        std::string_view name = trim(s.substr(name_start, i - name_start));
        while (!name.empty() && is_ws(name.back())) name.remove_suffix(1);
        if (i >= s.size() || s[i] != '=') continue;  // a bare word with no value is dropped
        ++i;
        skip_cfws(s, i);
        std::string value;
        if (i < s.size() && s[i] == '"') {
            ++i;
            while (i < s.size() && s[i] != '"') {
                if (s[i] == '\\' && i + 1 < s.size()) ++i;
                if (s[i] != '\r' && s[i] != '\n') value.push_back(s[i]);
                ++i;
            }
            if (i < s.size()) ++i;
            while (i < s.size() && s[i] != ';') ++i;  // junk after the closing quote
        } else {
            // Tolerant: an unquoted value runs to ';' (real mail has spaces and specials in them).
            std::size_t start = i;
            while (i < s.size() && s[i] != ';') ++i;
            std::string_view v = s.substr(start, i - start);
            while (!v.empty() && is_ws(v.back())) v.remove_suffix(1);
            value = std::string(v);
        }
        bool valid_name = !name.empty();
        for (char c : name) valid_name = valid_name && (is_token_char(c) || c == '*');
        if (valid_name) out.push_back(RawParameter{std::string(name), std::move(value)});
    }
    return out;
}

// RFC 2231 3 and 4: name*N, name*N* and name* sections, joined in order and converted from their charset.
std::vector<Parameter> reassemble(const std::vector<RawParameter>& raw, const ParameterLimits& limits) {
    struct Section {
        std::string value;
        bool encoded;
    };
    struct Pending {
        std::map<std::size_t, Section> sections;
        std::string plain;  // the value of a plain "name=" parameter
        bool has_plain = false;
        std::size_t order = 0;
    };
    std::map<std::string, Pending> by_name;
    std::size_t order = 0;
    for (const auto& p : raw) {
        std::string name = to_lower(p.name);
        std::size_t star = name.find('*');
        std::string base = name.substr(0, star);
        auto [it, inserted] = by_name.try_emplace(base);
        if (inserted) it->second.order = order++;
        Pending& pending = it->second;
        if (star == std::string::npos) {
            if (!pending.has_plain) {
                pending.plain = p.value;
                pending.has_plain = true;
            }
            continue;
        }
        // "name*" is one encoded section; "name*N" and "name*N*" are numbered, the latter encoded.
        std::string_view rest = std::string_view(name).substr(star + 1);
        bool encoded = rest.empty() || rest.back() == '*';
        if (!rest.empty() && rest.back() == '*') rest.remove_suffix(1);
        std::size_t number = 0;
        if (!rest.empty()) {
            auto n = parse_uint(rest);
            if (!n || *n > limits.max_continuations) continue;
            number = static_cast<std::size_t>(*n);
        }
        pending.sections.try_emplace(number, Section{p.value, encoded});
    }
    std::vector<std::pair<std::size_t, Parameter>> ordered;
    for (auto& [base, pending] : by_name) {
        Parameter param;
        param.name = base;
        if (!pending.sections.empty() && pending.sections.begin()->first == 0) {
            std::string bytes;
            std::size_t expected = 0;
            for (auto& [number, section] : pending.sections) {
                if (number != expected) break;  // RFC 2231 3: sections stop at the first gap
                ++expected;
                std::string_view v = section.value;
                if (section.encoded && number == 0) {
                    // charset'language'value
                    std::size_t q1 = v.find('\'');
                    std::size_t q2 = q1 == std::string_view::npos ? q1 : v.find('\'', q1 + 1);
                    if (q2 != std::string_view::npos) {
                        param.charset = std::string(v.substr(0, q1));
                        param.language = std::string(v.substr(q1 + 1, q2 - q1 - 1));
                        v = v.substr(q2 + 1);
                    }
                }
                bytes += section.encoded ? percent_decode(v) : std::string(v);
            }
            param.value = param.charset.empty() ? decode_encoded_words(bytes)
                                                : to_utf8_lenient(bytes, param.charset);
        } else if (pending.has_plain) {
            // Many mailers put RFC 2047 words in parameters although RFC 2047 5 forbids it; readers decode them.
            param.value = decode_encoded_words(pending.plain);
        } else {
            continue;
        }
        ordered.emplace_back(pending.order, std::move(param));
    }
    std::sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<Parameter> out;
    out.reserve(ordered.size());
    for (auto& [o, p] : ordered) out.push_back(std::move(p));
    return out;
}

// One RFC 2231 section ("name*N", "name*N*" or "name*") of a raw parameter list.
struct RawSection {
    std::string base;  // the name before '*', as written
    std::string key;   // `base` in lower case: sections group case-insensitively
    std::size_t number = 0;
    bool encoded = false;
    const RawParameter* raw = nullptr;
};

// Reads "name*N", "name*N*" or "name*" (then N is 0); false for names without '*' or with junk after it.
bool read_section_name(const RawParameter& p, RawSection& out) {
    std::size_t star = p.name.find('*');
    if (star == std::string::npos || star == 0) return false;
    std::string_view rest = std::string_view(p.name).substr(star + 1);
    std::size_t digits = 0;
    while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') ++digits;
    if (digits > 0) {
        auto n = parse_uint(rest.substr(0, digits));
        if (!n || *n > ParameterLimits{}.max_continuations) return false;
        out.number = static_cast<std::size_t>(*n);
    }
    rest.remove_prefix(digits);
    out.encoded = digits == 0 || rest == "*";
    if (!rest.empty() && rest != "*") return false;
    out.base = p.name.substr(0, star);
    out.key = to_lower(out.base);
    out.raw = &p;
    return true;
}

}  // namespace

std::vector<RawParameter> join_rfc2231_sections(const std::vector<RawParameter>& raw) {
    std::vector<RawParameter> out;
    std::vector<RawSection> sections;
    for (const RawParameter& p : raw) {
        RawSection section;
        if (read_section_name(p, section)) {
            sections.push_back(std::move(section));
        } else {
            out.push_back(p);
        }
    }
    std::stable_sort(sections.begin(), sections.end(), [](const RawSection& a, const RawSection& b) {
        return a.key != b.key ? a.key < b.key : a.number < b.number;
    });
    // Groups of one name, [first, last); ordered by the name as written, as Dovecot orders them.
    std::vector<std::pair<std::size_t, std::size_t>> groups;
    for (std::size_t first = 0, next = 0; first < sections.size(); first = next) {
        for (next = first; next < sections.size() && sections[next].key == sections[first].key; ++next) {
        }
        groups.emplace_back(first, next);
    }
    std::stable_sort(groups.begin(), groups.end(), [&](const auto& a, const auto& b) {
        return sections[a.first].base < sections[b.first].base;
    });
    for (auto [first, next] : groups) {
        bool complete = true, encoded = false;
        for (std::size_t i = first; i < next; ++i) {
            complete = complete && sections[i].number == i - first;  // RFC 2231 3: 0, 1, 2, ...
            encoded = encoded || sections[i].encoded;
        }
        if (!complete) {
            for (std::size_t i = first; i < next; ++i) out.push_back(*sections[i].raw);
            continue;
        }
        RawParameter joined{sections[first].base + (encoded ? "*" : ""), {}};
        // A plain first section has no charset'language' prefix; an empty one keeps the value decodable.
        if (encoded && !sections[first].encoded) joined.value = "''";
        for (std::size_t i = first; i < next; ++i) {
            const std::string& value = sections[i].raw->value;
            if (!encoded || sections[i].encoded) {
                joined.value += value;
                continue;
            }
            for (char c : value) {  // a plain section inside an encoded value: its '%' must stay literal
                if (c == '%') joined.value += "%25";
                else joined.value += c;
            }
        }
        out.push_back(std::move(joined));
    }
    return out;
}

const Parameter* ParameterList::find(std::string_view name) const {
    for (const auto& p : decoded) {
        if (iequals(p.name, name)) return &p;
    }
    return nullptr;
}

std::string ParameterList::get(std::string_view name) const {
    const Parameter* p = find(name);
    return p ? p->value : std::string();
}

ParameterList parse_parameters(std::string_view text, const ParameterLimits& limits) {
    ParameterList list;
    list.raw = parse_raw(text, limits);
    list.decoded = reassemble(list.raw, limits);
    return list;
}

bool ContentType::is(std::string_view t, std::string_view s) const { return iequals(type, t) && iequals(subtype, s); }

ContentType parse_content_type(std::string_view value, const ParameterLimits& limits) {
    ContentType ct;
    std::size_t i = 0;
    skip_cfws(value, i);
    std::size_t start = i;
    while (i < value.size() && is_token_char(value[i])) ++i;
    std::string_view type = value.substr(start, i - start);
    skip_cfws(value, i);
    if (type.empty() || i >= value.size() || value[i] != '/') {
        // RFC 2045 5.2 default; keep any parameters (a charset) that follow.
        std::size_t semi = value.find(';');
        if (semi != std::string_view::npos) ct.params = parse_parameters(value.substr(semi + 1), limits);
        return ct;
    }
    ++i;
    skip_cfws(value, i);
    start = i;
    while (i < value.size() && is_token_char(value[i])) ++i;
    std::string_view subtype = value.substr(start, i - start);
    if (subtype.empty()) return ct;
    ct.type = to_lower(type);
    ct.subtype = to_lower(subtype);
    ct.present = true;
    std::size_t semi = value.find(';', i);
    if (semi != std::string_view::npos) ct.params = parse_parameters(value.substr(semi + 1), limits);
    return ct;
}

ContentDisposition parse_content_disposition(std::string_view value, const ParameterLimits& limits) {
    ContentDisposition cd;
    std::size_t i = 0;
    skip_cfws(value, i);
    std::size_t start = i;
    while (i < value.size() && is_token_char(value[i])) ++i;
    cd.kind = to_lower(value.substr(start, i - start));
    std::size_t semi = value.find(';', i);
    if (semi != std::string_view::npos) cd.params = parse_parameters(value.substr(semi + 1), limits);
    return cd;
}

}  // namespace magpie::mail
