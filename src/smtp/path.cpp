#include "smtp/path.h"

#include <arpa/inet.h>

#include <cstring>

#include "base/strings.h"

namespace magpie::smtp {
namespace {

bool is_alpha(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(unsigned char c) {
    return c >= '0' && c <= '9';
}

// RFC 5322 3.2.3 atext, plus UTF8-non-ascii (RFC 6531 3.3); UTF-8 validity is checked on the whole path.
bool is_atext(unsigned char c) {
    if (is_alpha(c) || is_digit(c) || c >= 0x80) return true;
    return c != 0 && std::strchr("!#$%&'*+-/=?^_`{|}~", c) != nullptr;
}

// RFC 5321 4.1.2 qtextSMTP (plus UTF-8 octets).
bool is_qtext(unsigned char c) {
    return (c >= 32 && c <= 33) || (c >= 35 && c <= 91) || (c >= 93 && c <= 126) || c >= 0x80;
}

Error syntax(std::string message) {
    return make_error(Errc::invalid_argument, std::move(message));
}

bool is_ipv4_literal_body(std::string_view s) {
    auto parts = split(s, '.');
    if (parts.size() != 4) return false;
    for (auto part : parts) {
        if (part.empty() || part.size() > 3) return false;
        auto value = parse_uint(part);
        if (!value || *value > 255) return false;
    }
    return true;
}

// Scans a Domain starting at `pos`; returns the end position (pos when nothing valid was found).
std::size_t scan_domain(std::string_view s, std::size_t pos) {
    std::size_t end = pos;
    while (end < s.size()) {
        auto c = static_cast<unsigned char>(s[end]);
        if (is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c >= 0x80) {
            ++end;
        } else {
            break;
        }
    }
    return end;
}

}  // namespace

bool is_valid_domain(std::string_view domain, bool allow_utf8) {
    if (domain.empty()) return false;
    for (auto label : split(domain, '.')) {
        if (label.empty() || label.size() > 63) return false;
        for (unsigned char c : label) {
            bool ok = is_alpha(c) || is_digit(c) || c == '-' || (allow_utf8 && c >= 0x80);
            if (!ok) return false;
        }
        // Let-dig [Ldh-str]: no hyphen at either end of a label.
        if (label.front() == '-' || label.back() == '-') return false;
    }
    return true;
}

bool is_valid_address_literal(std::string_view literal) {
    if (literal.size() < 3 || literal.front() != '[' || literal.back() != ']') return false;
    std::string_view body = literal.substr(1, literal.size() - 2);
    if (istarts_with(body, "IPv6:")) {
        std::string address(body.substr(5));
        // inet_pton reads a C string: refuse anything but IPv6 characters (a NUL would end it early).
        for (char c : address) {
            bool ok = is_digit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f') ||
                      (c >= 'A' && c <= 'F') || c == ':' || c == '.';
            if (!ok) return false;
        }
        unsigned char buffer[16];
        return !address.empty() && address.size() < 46 && inet_pton(AF_INET6, address.c_str(), buffer) == 1;
    }
    // General-address-literal tags other than IPv6 are not registered; refuse them.
    return is_ipv4_literal_body(body);
}

Result<ParsedPath> parse_path(std::string_view s, const PathOptions& options) {
    if (s.empty() || s[0] != '<') return syntax("path must be enclosed in angle brackets");
    ParsedPath out;
    std::size_t pos = 1;
    if (pos < s.size() && s[pos] == '>') {
        if (!options.allow_null) return syntax("null path not allowed here");
        out.is_null = true;
        out.consumed = 2;
        return out;
    }

    // RFC 5321 4.1.2 A-d-l: "@one,@two:" source route; accepted and ignored (Appendix C).
    if (pos < s.size() && s[pos] == '@') {
        for (;;) {
            if (pos >= s.size() || s[pos] != '@') return syntax("malformed source route");
            std::size_t start = pos + 1;
            std::size_t end = scan_domain(s, start);
            if (end - start > options.limits.max_domain) {
                return make_error(Errc::limit_exceeded, "domain too long");
            }
            if (!is_valid_domain(s.substr(start, end - start), true)) return syntax("malformed source route");
            pos = end;
            if (pos < s.size() && s[pos] == ',') {
                ++pos;
                continue;
            }
            if (pos < s.size() && s[pos] == ':') {
                ++pos;
                break;
            }
            return syntax("malformed source route");
        }
    }

    // Local-part = Dot-string / Quoted-string
    std::size_t local_start = pos;
    if (pos < s.size() && s[pos] == '"') {
        ++pos;
        bool closed = false;
        while (pos < s.size()) {
            auto c = static_cast<unsigned char>(s[pos]);
            if (c == '"') {
                closed = true;
                ++pos;
                break;
            }
            if (c == '\\') {
                if (pos + 1 >= s.size()) break;
                auto next = static_cast<unsigned char>(s[pos + 1]);
                if (next < 32 || next > 126) return syntax("malformed quoted local part");
                pos += 2;
                continue;
            }
            if (!is_qtext(c)) return syntax("malformed quoted local part");
            ++pos;
        }
        if (!closed) return syntax("unterminated quoted local part");
    } else {
        bool expect_atom = true;
        while (pos < s.size()) {
            auto c = static_cast<unsigned char>(s[pos]);
            if (c == '.') {
                if (expect_atom) return syntax("malformed local part");
                expect_atom = true;
            } else if (is_atext(c)) {
                expect_atom = false;
            } else {
                break;
            }
            ++pos;
        }
        if (pos == local_start) return syntax("empty local part");
        if (expect_atom) return syntax("malformed local part");
    }
    std::string_view local = s.substr(local_start, pos - local_start);
    if (local.size() > options.limits.max_local_part) {
        return make_error(Errc::limit_exceeded, "local part too long");
    }

    if (pos < s.size() && s[pos] == '>' && options.allow_postmaster && iequals(local, "postmaster")) {
        out.mailbox = std::string(local);
        out.consumed = pos + 1;
        return out;
    }
    if (pos >= s.size() || s[pos] != '@') return syntax("missing domain");
    ++pos;

    std::size_t domain_start = pos;
    if (pos < s.size() && s[pos] == '[') {
        std::size_t close = s.find(']', pos);
        if (close == std::string_view::npos) return syntax("unterminated address literal");
        pos = close + 1;
        if (pos - domain_start > options.limits.max_domain)
            return make_error(Errc::limit_exceeded, "domain too long");
        if (!is_valid_address_literal(s.substr(domain_start, pos - domain_start))) {
            return syntax("malformed address literal");
        }
    } else {
        pos = scan_domain(s, pos);
        if (pos - domain_start > options.limits.max_domain)
            return make_error(Errc::limit_exceeded, "domain too long");
        if (!is_valid_domain(s.substr(domain_start, pos - domain_start), true))
            return syntax("malformed domain");
    }
    if (pos >= s.size() || s[pos] != '>') return syntax("path must be enclosed in angle brackets");
    ++pos;
    if (pos > options.limits.max_path) return make_error(Errc::limit_exceeded, "path too long");

    std::string_view domain = s.substr(domain_start, pos - 1 - domain_start);
    out.mailbox.reserve(local.size() + 1 + domain.size());
    out.mailbox.append(local).append(1, '@').append(domain);
    out.non_ascii = !is_ascii(s.substr(0, pos));
    if (out.non_ascii && !is_valid_utf8(s.substr(0, pos))) return syntax("path is not valid UTF-8");
    out.consumed = pos;
    return out;
}

Result<EnvelopeArgument> parse_envelope_argument(std::string_view text, const PathOptions& options) {
    std::size_t start = 0;
    while (start < text.size() && text[start] == ' ') ++start;
    std::string_view rest = text.substr(start);
    // The end of the path: the '>' (or, without brackets, the space) that is not inside a quoted local part.
    bool bracketed = !rest.empty() && rest.front() == '<';
    std::size_t i = bracketed ? 1 : 0;
    bool quoted = false;
    for (; i < rest.size(); ++i) {
        char c = rest[i];
        if (quoted) {
            if (c == '\\') {
                ++i;
            } else if (c == '"') {
                quoted = false;
            }
        } else if (c == '"') {
            quoted = true;
        } else if (bracketed ? c == '>' : c == ' ') {
            break;
        }
    }
    std::string path;
    std::size_t end = 0;  // octets of `rest` the path takes
    if (bracketed) {
        // No closing bracket: parse_path says precisely what is wrong (an open quote, a missing '>').
        if (i >= rest.size()) {
            auto parsed = parse_path(rest, options);
            if (!parsed) return parsed.error();
            return syntax("path must be enclosed in angle brackets");
        }
        std::string_view inner = rest.substr(1, i - 1);
        while (!inner.empty() && inner.front() == ' ') inner.remove_prefix(1);
        while (!inner.empty() && inner.back() == ' ') inner.remove_suffix(1);
        path.reserve(inner.size() + 2);
        path.append(1, '<').append(inner).append(1, '>');
        end = i + 1;
    } else {
        if (i == 0) return syntax("missing address");
        path.reserve(i + 2);
        path.append(1, '<').append(rest.substr(0, i)).append(1, '>');
        end = i;
    }
    auto parsed = parse_path(path, options);
    if (!parsed) return parsed.error();
    if (parsed->consumed != path.size()) return syntax("malformed address");
    return EnvelopeArgument{std::move(*parsed), rest.substr(end)};
}

}  // namespace magpie::smtp
