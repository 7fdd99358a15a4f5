#include "mailauth/dane.h"

#include <fmt/format.h>

#include "base/strings.h"

namespace magpie::mailauth {
namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::optional<std::uint8_t> octet(std::string_view field) {
    if (field.empty() || field.size() > 3) return std::nullopt;
    unsigned value = 0;
    for (char c : field) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value > 255) return std::nullopt;
    return static_cast<std::uint8_t>(value);
}

std::string lower_host(std::string_view host) {
    std::string out = to_lower(host);
    if (out.ends_with('.')) out.pop_back();
    return out;
}

}  // namespace

Result<TlsaRecord> parse_tlsa(std::string_view text) {
    std::vector<std::string_view> fields;
    for (auto field : split(trim(text), ' '))
        if (!field.empty()) fields.push_back(field);
    if (fields.size() < 4) return make_error(Errc::invalid_argument, "a TLSA record has four fields");
    TlsaRecord record;
    auto usage = octet(fields[0]), selector = octet(fields[1]), matching = octet(fields[2]);
    if (!usage || !selector || !matching)
        return make_error(Errc::invalid_argument, "TLSA usage, selector and matching type are 0..255");
    record.usage = *usage;
    record.selector = *selector;
    record.matching_type = *matching;
    std::string hex;
    for (std::size_t i = 3; i < fields.size(); ++i) hex += fields[i];  // presentation form may split the data
    if (hex.empty() || hex.size() % 2 != 0)
        return make_error(Errc::invalid_argument, "TLSA data is an even number of hex digits");
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        int high = hex_value(hex[i]), low = hex_value(hex[i + 1]);
        if (high < 0 || low < 0) return make_error(Errc::invalid_argument, "TLSA data is not hexadecimal");
        record.data.push_back(static_cast<unsigned char>(high * 16 + low));
    }
    return record;
}

bool tlsa_usable(const TlsaRecord& record) {
    if (record.usage != 2 && record.usage != 3) return false;  // RFC 7672 3.1.3: PKIX-TA/EE unusable
    if (record.selector > 1) return false;
    switch (record.matching_type) {
        case 0:
            return !record.data.empty();
        case 1:
            return record.data.size() == 32;
        case 2:
            return record.data.size() == 64;
        default:
            return false;
    }
}

const char* dane_level_name(DaneLevel level) {
    switch (level) {
        case DaneLevel::none:
            return "none";
        case DaneLevel::verify:
            return "verify";
        case DaneLevel::encrypt:
            return "encrypt";
        case DaneLevel::unreachable:
            return "unreachable";
    }
    return "none";
}

std::string tlsa_name(std::string_view host, std::uint16_t port) {
    return fmt::format("_{}._tcp.{}", port, lower_host(host));
}

DaneHost dane_host(std::string_view name, bool address_secure,
                   const Result<dns::Resolver::SecureRecords>& tlsa) {
    DaneHost out;
    if (!address_secure) {
        // RFC 7672 2.2.2: TLSA records of a host whose address is not validated are not used.
        out.note = fmt::format("no DANE for {}: its address is not DNSSEC-validated", name);
        return out;
    }
    if (!tlsa) {
        if (tlsa.error().code == Errc::not_found) {
            out.note = fmt::format("no TLSA record at {}", name);
        } else {
            out.level = DaneLevel::unreachable;
            out.note = fmt::format("TLSA lookup for {} failed ({}): the host is not used (RFC 7672 2.2)",
                                   name, tlsa.error().message);
        }
        return out;
    }
    if (!tlsa->authenticated) {
        out.note = fmt::format("TLSA records at {} are not DNSSEC-validated: ignored (RFC 7672 2.2)", name);
        return out;
    }
    if (tlsa->records.empty()) {
        out.note = fmt::format("no TLSA record at {}", name);
        return out;
    }
    out.records = tlsa->records;
    for (const auto& text : tlsa->records) {
        auto record = parse_tlsa(text);
        if (record && tlsa_usable(*record)) out.usable.push_back(std::move(*record));
    }
    if (out.usable.empty()) {
        out.level = DaneLevel::encrypt;
        out.note = fmt::format(
            "TLSA records at {} are all unusable: TLS without authentication (RFC 7672 2.2)", name);
    } else {
        out.level = DaneLevel::verify;
        out.note = fmt::format("{} usable TLSA record(s) at {}", out.usable.size(), name);
    }
    return out;
}

bool DanePolicy::applies() const {
    for (const auto& [name, host] : hosts)
        if (host.level == DaneLevel::verify || host.level == DaneLevel::encrypt) return true;
    return false;
}

const DaneHost* DanePolicy::host(std::string_view name) const {
    auto it = hosts.find(lower_host(name));
    return it == hosts.end() ? nullptr : &it->second;
}

DanePolicy dane_policy(Dns& dns, std::string_view domain, const std::vector<std::string>& hosts,
                       std::uint16_t port) {
    DanePolicy policy;
    // 2.2.1: an MX RRset (or its denial, for the implicit MX) that is not validated gives no DANE: its host
    // names could be an attacker's.
    auto mx = dns.lookup_secure(RecordType::mx, domain);
    policy.mx_secure = mx && mx->authenticated;
    if (!policy.mx_secure) return policy;
    for (const auto& host_in : hosts) {
        std::string host = lower_host(host_in);
        if (policy.hosts.count(host)) continue;
        auto address = dns.lookup_secure(RecordType::a, host);
        if (address && address->records.empty() && address->authenticated)
            address = dns.lookup_secure(RecordType::aaaa, host);
        const bool address_secure = address && address->authenticated;
        const std::string name = tlsa_name(host, port);
        Result<dns::Resolver::SecureRecords> tlsa = make_error(Errc::not_found, "not asked");
        if (address_secure) tlsa = dns.lookup_secure(RecordType::tlsa, name);
        policy.hosts.emplace(host, dane_host(name, address_secure, tlsa));
    }
    return policy;
}

}  // namespace magpie::mailauth
