#include "net/proxy_protocol.h"

#include <arpa/inet.h>

#include <array>
#include <charconv>
#include <cstring>

namespace magpie::net {
namespace {

using Status = ProxyParse::Status;

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr std::size_t kV1MaxOctets = 107;  // proxy-protocol.txt 2.1: the worst case, CRLF included
constexpr std::string_view kV2Signature("\r\n\r\n\0\r\nQUIT\n", 12);
constexpr std::size_t kV2FixedOctets = 16;

ProxyParse invalid(std::string error) {
    return {Status::invalid, {}, std::move(error)};
}
ProxyParse incomplete() {
    return {Status::incomplete, {}, {}};
}

// Whether `bytes` (shorter than `prefix`) could still become it.
bool begins(std::string_view bytes, std::string_view prefix) {
    return bytes.size() < prefix.size() && prefix.starts_with(bytes);
}

// The text form of an address, IPv4-mapped IPv6 as IPv4 (as Connection names its peer).
std::string address_text(int family, const unsigned char* raw) {
    static constexpr std::array<unsigned char, 12> kMapped = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (family == AF_INET6 && std::memcmp(raw, kMapped.data(), kMapped.size()) == 0) {
        family = AF_INET;
        raw += kMapped.size();
    }
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(family, raw, text, sizeof text);
    return text;
}

std::optional<std::uint16_t> parse_port(std::string_view text) {
    if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0')) return std::nullopt;
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value > 65535) return std::nullopt;
    return static_cast<std::uint16_t>(value);
}

// Splits off the text up to the next space.
std::string_view next_field(std::string_view& rest) {
    auto space = rest.find(' ');
    auto field = rest.substr(0, space);
    rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
    return field;
}

// Version 1 (proxy-protocol.txt 2.1): "PROXY TCP4|TCP6 src dst sport dport\r\n", or "PROXY UNKNOWN...\r\n".
ProxyParse parse_v1(std::string_view bytes) {
    auto end = bytes.substr(0, kV1MaxOctets).find("\r\n");
    if (end == std::string_view::npos) {
        return bytes.size() < kV1MaxOctets ? incomplete() : invalid("a v1 PROXY line longer than 107 octets");
    }
    std::string_view rest = bytes.substr(kV1Prefix.size(), end - kV1Prefix.size());
    ProxyParse parsed{Status::complete, {end + 2, std::nullopt, 0}, {}};
    const auto protocol = next_field(rest);
    if (protocol == "UNKNOWN") return parsed;  // whatever follows is ignored (2.1)
    int family = protocol == "TCP4" ? AF_INET : protocol == "TCP6" ? AF_INET6 : 0;
    if (family == 0) return invalid("a v1 PROXY line with an unknown protocol");
    const auto source = next_field(rest);
    const auto destination = next_field(rest);
    const auto source_port = parse_port(next_field(rest));
    const auto destination_port = parse_port(next_field(rest));
    if (!rest.empty() || !source_port || !destination_port) return invalid("a malformed v1 PROXY line");
    std::array<unsigned char, 16> raw{};
    for (auto address : {destination, source}) {
        if (address.size() >= INET6_ADDRSTRLEN ||
            inet_pton(family, std::string(address).c_str(), raw.data()) != 1) {
            return invalid("a v1 PROXY line with an address not of its protocol");
        }
    }
    parsed.header.source = address_text(family, raw.data());  // the source, parsed last
    parsed.header.source_port = *source_port;
    return parsed;
}

// Version 2 (proxy-protocol.txt 2.2): the binary header, its addresses by family, TLVs skipped.
ProxyParse parse_v2(std::string_view bytes) {
    if (bytes.size() < kV2FixedOctets) return incomplete();
    const auto* raw = reinterpret_cast<const unsigned char*>(bytes.data());
    const unsigned version = raw[12] >> 4, command = raw[12] & 0x0f;
    if (version != 2) return invalid("a v2 PROXY header of another version");
    if (command > 1) return invalid("a v2 PROXY header with an unknown command");
    const std::size_t length = kV2FixedOctets + ((std::size_t{raw[14]} << 8) | raw[15]);
    if (length > kMaxProxyHeaderOctets) return invalid("a v2 PROXY header longer than 4096 octets");
    if (bytes.size() < length) return incomplete();
    ProxyParse parsed{Status::complete, {length, std::nullopt, 0}, {}};
    if (command == 0) return parsed;  // LOCAL: the balancer speaking for itself
    const unsigned family = raw[13] >> 4, transport = raw[13] & 0x0f;
    const std::size_t address_octets = family == 1 ? 4 : family == 2 ? 16 : 0;
    if (address_octets == 0 || transport != 1)
        return parsed;  // UNSPEC, UNIX or not TCP: the connection's own
    if (length < kV2FixedOctets + 2 * address_octets + 4)
        return invalid("a v2 PROXY header too short for its family");
    const unsigned char* source = raw + kV2FixedOctets;
    const unsigned char* port = source + 2 * address_octets;
    parsed.header.source = address_text(family == 1 ? AF_INET : AF_INET6, source);
    parsed.header.source_port = static_cast<std::uint16_t>((port[0] << 8) | port[1]);
    return parsed;
}

}  // namespace

Result<IpNetwork> parse_ip_network(std::string_view text) {
    auto bad = [&] {
        return make_error(Errc::invalid_argument, "'" + std::string(text) + "' is not an IP network");
    };
    const auto slash = text.find('/');
    const std::string address(text.substr(0, slash));
    IpNetwork network;
    network.family = address.find(':') == std::string::npos ? AF_INET : AF_INET6;
    if (inet_pton(network.family, address.c_str(), network.address.data()) != 1) return bad();
    const unsigned bits = network.family == AF_INET ? 32 : 128;
    network.prefix = bits;
    if (slash != std::string_view::npos) {
        const auto prefix = text.substr(slash + 1);
        auto [end, ec] = std::from_chars(prefix.data(), prefix.data() + prefix.size(), network.prefix);
        if (prefix.empty() || ec != std::errc{} || end != prefix.data() + prefix.size() ||
            network.prefix > bits) {
            return bad();
        }
    }
    for (unsigned bit = network.prefix; bit < bits; ++bit) {
        if (network.address[bit / 8] & (0x80 >> (bit % 8))) return bad();  // "10.1.0.0/8": which was meant?
    }
    return network;
}

bool in_networks(const std::vector<IpNetwork>& networks, std::string_view address) {
    if (networks.empty()) return false;  // the usual case, on every accepted connection
    std::array<unsigned char, 16> raw{};
    const int family = address.find(':') == std::string_view::npos ? AF_INET : AF_INET6;
    if (address.size() >= INET6_ADDRSTRLEN ||
        inet_pton(family, std::string(address).c_str(), raw.data()) != 1) {
        return false;
    }
    for (const auto& network : networks) {
        if (network.family != family) continue;
        const unsigned whole = network.prefix / 8, rest = network.prefix % 8;
        if (std::memcmp(raw.data(), network.address.data(), whole) != 0) continue;
        const unsigned mask = (0xff00u >> rest) & 0xff;
        if (rest == 0 || (raw[whole] & mask) == (network.address[whole] & mask)) return true;
    }
    return false;
}

std::string forwarded_client(std::string_view forwarded_for, const std::string& peer,
                             const std::vector<IpNetwork>& proxies) {
    std::string client = peer;
    while (!forwarded_for.empty()) {
        const auto comma = forwarded_for.rfind(',');
        std::string_view entry =
            comma == std::string_view::npos ? forwarded_for : forwarded_for.substr(comma + 1);
        forwarded_for = comma == std::string_view::npos ? std::string_view{} : forwarded_for.substr(0, comma);
        while (!entry.empty() && (entry.front() == ' ' || entry.front() == '\t')) entry.remove_prefix(1);
        while (!entry.empty() && (entry.back() == ' ' || entry.back() == '\t')) entry.remove_suffix(1);
        if (entry.starts_with('[') && entry.find(']') != std::string_view::npos) {
            entry = entry.substr(1, entry.find(']') - 1);  // "[2001:db8::1]:443"
        } else if (entry.find(':') != std::string_view::npos && entry.find(':') == entry.rfind(':')) {
            entry = entry.substr(0, entry.find(':'));  // "192.0.2.1:443"
        }
        std::array<unsigned char, 16> raw{};
        const int family = entry.find(':') == std::string_view::npos ? AF_INET : AF_INET6;
        if (entry.empty() || entry.size() >= INET6_ADDRSTRLEN ||
            inet_pton(family, std::string(entry).c_str(), raw.data()) != 1) {
            break;
        }
        client = address_text(family, raw.data());
        if (!in_networks(proxies, client)) break;
    }
    return client;
}

ProxyParse parse_proxy_header(std::string_view bytes) {
    if (bytes.starts_with(kV1Prefix)) return parse_v1(bytes);
    if (bytes.starts_with(kV2Signature)) return parse_v2(bytes);
    if (begins(bytes, kV1Prefix) || begins(bytes, kV2Signature)) return incomplete();
    return invalid("no PROXY protocol header");
}

}  // namespace magpie::net
