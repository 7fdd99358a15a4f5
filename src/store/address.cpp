#include "store/address.h"

#include <fmt/format.h>

#include "base/strings.h"

namespace magpie::store {
namespace {

bool is_ldh(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

bool is_local_part_octet(char c) {
    auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x80) return true;  // UTF-8 (RFC 6531); validated as a whole below
    if (byte <= 0x20 || byte == 0x7f) return false;
    switch (c) {
        case '@': case '<': case '>': case '(': case ')': case ',': case ';': case ':': case '\\': case '"':
        case '[': case ']': return false;
        default: return true;
    }
}

}  // namespace

Result<std::string> normalize_domain(std::string_view domain) {
    if (domain.empty() || domain.size() > kMaxDomainOctets) {
        return make_error(Errc::invalid_argument, "domain empty or longer than 255 octets");
    }
    std::string lower = to_lower(domain);
    for (std::string_view label : split(lower, '.')) {
        if (label.empty() || label.size() > 63) return make_error(Errc::invalid_argument, "bad domain label");
        if (label.front() == '-' || label.back() == '-') {
            return make_error(Errc::invalid_argument, "domain label starts or ends with '-'");
        }
        for (char c : label) {
            if (!is_ldh(c)) return make_error(Errc::invalid_argument, fmt::format("bad character in domain {}", lower));
        }
    }
    return lower;
}

std::string unquote_local_part(std::string_view local) {
    if (local.size() < 2 || local.front() != '"' || local.back() != '"') return std::string(local);
    std::string unquoted;
    for (std::size_t i = 1; i + 1 < local.size(); ++i) {
        if (local[i] == '\\' && i + 2 < local.size()) ++i;
        unquoted += local[i];
    }
    return unquoted;
}

Result<NormalizedAddress> normalize_address(std::string_view address, bool allow_catch_all) {
    if (address.size() > kMaxAddressOctets) return make_error(Errc::invalid_argument, "address too long");
    std::size_t at = address.rfind('@');
    if (at == std::string_view::npos) return make_error(Errc::invalid_argument, "address has no '@'");
    std::string_view local = address.substr(0, at);
    auto domain = normalize_domain(address.substr(at + 1));
    if (!domain) return domain.error();
    if (local.empty()) {
        if (!allow_catch_all) return make_error(Errc::invalid_argument, "empty local part");
        return NormalizedAddress{"@" + *domain, "", *domain};
    }
    // RFC 5321 4.1.2 / RFC 5322 3.4.1: a Quoted-string local part names the same mailbox as its content
    // unquoted ("u"@d is u@d); a content no unquoted local part could hold names no mailbox here.
    const std::string unquoted = unquote_local_part(local);
    local = unquoted;
    if (local.empty()) return make_error(Errc::invalid_argument, "empty local part");
    if (local.size() > kMaxLocalPartOctets) return make_error(Errc::invalid_argument, "local part too long");
    for (char c : local) {
        if (!is_local_part_octet(c)) return make_error(Errc::invalid_argument, "bad character in local part");
    }
    if (!is_valid_utf8(local)) return make_error(Errc::invalid_argument, "local part is not UTF-8");
    std::string lower_local = to_lower(local);
    return NormalizedAddress{lower_local + "@" + *domain, lower_local, *domain};
}

}  // namespace magpie::store
