// The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2): what a TCP load balancer
// (HAProxy, nginx's stream proxy, a cloud L4 balancer) sends first on each connection it opens to a server,
// naming the client it accepted the connection from. Sans-IO: the listener peeks at the first bytes of a
// connection from a trusted balancer ([server] proxy_trusted_networks), hands them here, and consumes
// exactly `length` octets once the header is complete, so the bytes after it (an SMTP command, a TLS
// ClientHello) stay on the socket for the protocol.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace magpie::net {

struct ProxyHeader {
    std::size_t length = 0;             // octets of the header, from the connection's first byte
    std::optional<std::string> source;  // the client's address (dotted or RFC 5952 text); none for a v1
                                        // UNKNOWN, a v2 LOCAL (the balancer's own health check) or a family
                                        // other than TCP over IPv4/IPv6: the connection's own address stands
    std::uint16_t source_port = 0;
};

struct ProxyParse {
    enum class Status { complete, incomplete, invalid };
    Status status = Status::incomplete;
    ProxyHeader header;  // complete only
    std::string error;   // invalid only: what was wrong, for the log
};

// A header longer than this is refused (a v1 line is at most 107 octets; a v2 header's TLVs, which are
// skipped, carry at most a few hundred octets from the balancers in use).
inline constexpr std::size_t kMaxProxyHeaderOctets = 4096;

// Parses the header at the start of `bytes` (the connection's first bytes, possibly followed by the
// protocol's own). incomplete: more bytes are needed and those present are a valid beginning; invalid:
// they cannot begin a header (a client that sent none, or a malformed one).
ProxyParse parse_proxy_header(std::string_view bytes);

// An address block: the balancers whose connections must begin with a header.
struct IpNetwork {
    int family = 0;  // AF_INET or AF_INET6
    std::array<unsigned char, 16> address{};
    unsigned prefix = 0;  // leading bits that count
};

// "10.0.0.0/8", "2001:db8::/32", or one address ("192.0.2.7", a /32 or /128). invalid_argument otherwise
// (a bad address, a prefix longer than the family's, host bits set past the prefix).
Result<IpNetwork> parse_ip_network(std::string_view text);
// Whether `address` (text as Connection::peer_ip gives it) is inside one of `networks`.
bool in_networks(const std::vector<IpNetwork>& networks, std::string_view address);

// The client of an HTTP request that came from a reverse proxy in `proxies` (`peer`, the connection's
// address): the X-Forwarded-For list (`forwarded_for`, "client, proxy1, proxy2") read from its right end,
// where the proxy next to us appended its own peer, past every address that is itself one of `proxies`. An
// entry that is no address ends the walk (what lies left of it is the client's to write, and unchecked),
// as does an empty list: then the last trusted hop stands. Addresses as Connection::peer_ip writes them.
std::string forwarded_client(std::string_view forwarded_for, const std::string& peer,
                             const std::vector<IpNetwork>& proxies);

}  // namespace magpie::net
