// net: the PROXY protocol header (HAProxy's proxy-protocol.txt, v1 and v2) and the trusted networks.
#include <gtest/gtest.h>

#include <string>

#include "net/proxy_protocol.h"

namespace magpie::net {
namespace {

using Status = ProxyParse::Status;

std::string v2(unsigned char command, unsigned char family, std::string addresses, std::string tlvs = {}) {
    std::string header("\r\n\r\n\0\r\nQUIT\n", 12);
    header += static_cast<char>(0x20 | command);
    header += static_cast<char>(family);
    const std::size_t length = addresses.size() + tlvs.size();
    header += static_cast<char>(length >> 8);
    header += static_cast<char>(length & 0xff);
    return header + addresses + tlvs;
}

TEST(ProxyHeader, Version1NamesTheSourceAndEndsAtItsLineEnd) {
    const std::string line = "PROXY TCP4 192.0.2.10 198.51.100.1 56324 25\r\n";
    auto parsed = parse_proxy_header(line + "EHLO client.example\r\n");
    ASSERT_EQ(parsed.status, Status::complete) << parsed.error;
    EXPECT_EQ(parsed.header.length, line.size());
    EXPECT_EQ(parsed.header.source, "192.0.2.10");
    EXPECT_EQ(parsed.header.source_port, 56324);

    parsed = parse_proxy_header("PROXY TCP6 2001:db8::1 2001:db8::2 65535 993\r\n");
    ASSERT_EQ(parsed.status, Status::complete) << parsed.error;
    EXPECT_EQ(parsed.header.source, "2001:db8::1");
    parsed =
        parse_proxy_header("PROXY TCP6 ::ffff:192.0.2.7 ::1 1 143\r\n");  // as Connection names a mapped peer
    ASSERT_EQ(parsed.status, Status::complete);
    EXPECT_EQ(parsed.header.source, "192.0.2.7");
}

TEST(ProxyHeader, Version1UnknownKeepsTheConnectionsOwnAddress) {
    for (std::string line :
         {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"}) {
        auto parsed = parse_proxy_header(line);
        ASSERT_EQ(parsed.status, Status::complete) << line;
        EXPECT_EQ(parsed.header.length, line.size());
        EXPECT_FALSE(parsed.header.source);
    }
}

TEST(ProxyHeader, EveryPrefixOfAHeaderIsIncomplete) {
    const std::string headers[] = {
        "PROXY TCP4 192.0.2.10 198.51.100.1 56324 25\r\n",
        v2(1, 0x11, std::string("\xc0\x00\x02\x0a\xc6\x33\x64\x01\xdc\x04\x00\x19", 12))};
    for (const auto& header : headers) {
        for (std::size_t n = 0; n < header.size(); ++n) {
            EXPECT_EQ(parse_proxy_header(header.substr(0, n)).status, Status::incomplete) << n;
        }
        EXPECT_EQ(parse_proxy_header(header).status, Status::complete);
    }
}

TEST(ProxyHeader, Version1MalformedLinesAreInvalid) {
    for (std::string line : {
             "PROXY TCP4 192.0.2.10 198.51.100.1 56324\r\n",           // a port missing
             "PROXY TCP4 192.0.2.10 198.51.100.1 56324 25 extra\r\n",  // a field too many
             "PROXY TCP4 2001:db8::1 198.51.100.1 1 25\r\n",           // an address of the other family
             "PROXY TCP4 192.0.2.10 198.51.100.1 65536 25\r\n",        // a port out of range
             "PROXY TCP4 192.0.2.10 198.51.100.1 0080 25\r\n",         // a leading zero
             "PROXY TCP4  192.0.2.10 198.51.100.1 1 25\r\n",           // two spaces
             "PROXY UDP4 192.0.2.10 198.51.100.1 1 25\r\n",            // not a protocol of v1
             "EHLO client.example\r\n",                                // no header at all
             "\x16\x03\x01\x02\x00",                                   // a TLS ClientHello
         }) {
        EXPECT_EQ(parse_proxy_header(line).status, Status::invalid) << line;
    }
    EXPECT_EQ(parse_proxy_header("PROXY " + std::string(200, 'A')).status,
              Status::invalid);  // no CRLF in 107
}

TEST(ProxyHeader, Version2NamesTheSourceAndSkipsItsTlvs) {
    // 192.0.2.10:56324 -> 198.51.100.1:25, then an ALPN and a NOOP TLV.
    const std::string header =
        v2(1, 0x11, std::string("\xc0\x00\x02\x0a\xc6\x33\x64\x01\xdc\x04\x00\x19", 12),
           std::string("\x01\x00\x02h2\x04\x00\x03\x00\x00\x00", 11));
    auto parsed = parse_proxy_header(header + "\x16\x03\x01");  // a ClientHello follows
    ASSERT_EQ(parsed.status, Status::complete) << parsed.error;
    EXPECT_EQ(parsed.header.length, header.size());
    EXPECT_EQ(parsed.header.source, "192.0.2.10");
    EXPECT_EQ(parsed.header.source_port, 56324);

    std::string addresses(36, '\0');
    addresses[0] = '\x20', addresses[1] = '\x01', addresses[2] = '\x0d', addresses[3] = '\xb8',
    addresses[15] = '\x05';
    addresses[32] = '\x01', addresses[33] = '\x02';
    parsed = parse_proxy_header(v2(1, 0x21, addresses));
    ASSERT_EQ(parsed.status, Status::complete) << parsed.error;
    EXPECT_EQ(parsed.header.source, "2001:db8::5");
    EXPECT_EQ(parsed.header.source_port, 0x0102);
}

TEST(ProxyHeader, Version2LocalAndOtherFamiliesKeepTheConnectionsOwnAddress) {
    for (const auto& header : {v2(0, 0x00, ""),                        // LOCAL: the balancer's health check
                               v2(0, 0x11, std::string(12, '\1')),     // LOCAL with addresses: still its own
                               v2(1, 0x00, ""),                        // PROXY, UNSPEC
                               v2(1, 0x31, std::string(216, '\0')),    // a UNIX socket
                               v2(1, 0x12, std::string(12, '\1'))}) {  // UDP over IPv4
        auto parsed = parse_proxy_header(header);
        ASSERT_EQ(parsed.status, Status::complete) << parsed.error;
        EXPECT_EQ(parsed.header.length, header.size());
        EXPECT_FALSE(parsed.header.source);
    }
}

TEST(ProxyHeader, Version2MalformedHeadersAreInvalid) {
    std::string other_version = v2(1, 0x11, std::string(12, '\1'));
    other_version[12] = '\x11';
    EXPECT_EQ(parse_proxy_header(other_version).status, Status::invalid);
    EXPECT_EQ(parse_proxy_header(v2(2, 0x11, std::string(12, '\1'))).status,
              Status::invalid);  // no command 2
    EXPECT_EQ(parse_proxy_header(v2(1, 0x11, std::string(8, '\1'))).status,
              Status::invalid);  // short for IPv4
    EXPECT_EQ(parse_proxy_header(v2(1, 0x21, std::string(12, '\1'))).status,
              Status::invalid);  // short for IPv6
    std::string huge = v2(1, 0x11, std::string(12, '\1'));
    huge[14] = '\x20';  // 8,192 + 12 octets announced
    EXPECT_EQ(parse_proxy_header(huge).status, Status::invalid);
}

TEST(IpNetwork, ParsesBlocksAndSingleAddresses) {
    auto parse = [](const char* text) {
        auto network = parse_ip_network(text);
        EXPECT_TRUE(network) << text;
        return network ? *network : IpNetwork{};
    };
    const std::vector<IpNetwork> networks = {parse("10.0.0.0/8"), parse("192.0.2.7"), parse("2001:db8::/32"),
                                             parse("172.16.0.0/12")};
    EXPECT_TRUE(in_networks(networks, "10.200.3.4"));
    EXPECT_TRUE(in_networks(networks, "192.0.2.7"));
    EXPECT_FALSE(in_networks(networks, "192.0.2.8"));
    EXPECT_TRUE(in_networks(networks, "172.31.255.255"));
    EXPECT_FALSE(in_networks(networks, "172.32.0.0"));
    EXPECT_TRUE(in_networks(networks, "2001:db8:ffff::1"));
    EXPECT_FALSE(in_networks(networks, "2001:db9::1"));
    EXPECT_FALSE(in_networks(networks, "not an address"));
    EXPECT_FALSE(in_networks({}, "10.0.0.1"));
    EXPECT_TRUE(in_networks({parse("0.0.0.0/0")}, "203.0.113.9"));
    EXPECT_FALSE(in_networks({parse("0.0.0.0/0")}, "::1"));  // families never match across
    for (const char* bad :
         {"10.0.0.0/33", "10.1.0.0/8", "10.0.0.0/", "10.0.0/8", "::/129", "host.example", ""}) {
        EXPECT_FALSE(parse_ip_network(bad)) << bad;
    }
}

TEST(ForwardedFor, TheClientIsTheRightmostAddressNotAProxy) {
    const std::vector<IpNetwork> proxies = {*parse_ip_network("127.0.0.1"), *parse_ip_network("10.0.0.0/8")};
    EXPECT_EQ(forwarded_client("192.0.2.1", "127.0.0.1", proxies), "192.0.2.1");
    // What the client wrote itself (left) is not believed past the first address that is no proxy.
    EXPECT_EQ(forwarded_client("203.0.113.66, 192.0.2.1", "127.0.0.1", proxies), "192.0.2.1");
    EXPECT_EQ(forwarded_client("203.0.113.66, 192.0.2.1, 10.1.2.3", "127.0.0.1", proxies), "192.0.2.1");
    EXPECT_EQ(forwarded_client(" 192.0.2.1 ,10.1.2.3 ", "127.0.0.1", proxies), "192.0.2.1");
    EXPECT_EQ(forwarded_client("192.0.2.1:5000", "127.0.0.1", proxies), "192.0.2.1");
    EXPECT_EQ(forwarded_client("[2001:DB8::1]:443", "127.0.0.1", proxies), "2001:db8::1");
    EXPECT_EQ(forwarded_client("2001:db8:0:0::1", "127.0.0.1", proxies), "2001:db8::1");
    EXPECT_EQ(forwarded_client("::ffff:192.0.2.9", "127.0.0.1", proxies), "192.0.2.9");
    // No header, or garbage where the proxy's entry should be: the last trusted hop stands.
    EXPECT_EQ(forwarded_client("", "127.0.0.1", proxies), "127.0.0.1");
    EXPECT_EQ(forwarded_client("unknown", "127.0.0.1", proxies), "127.0.0.1");
    EXPECT_EQ(forwarded_client("192.0.2.1, not-an-address", "127.0.0.1", proxies), "127.0.0.1");
    EXPECT_EQ(forwarded_client("garbage, 10.9.9.9", "127.0.0.1", proxies), "10.9.9.9");
    EXPECT_EQ(forwarded_client("10.9.9.9, 10.1.1.1", "127.0.0.1", proxies), "10.9.9.9");  // all proxies
}

}  // namespace
}  // namespace magpie::net
