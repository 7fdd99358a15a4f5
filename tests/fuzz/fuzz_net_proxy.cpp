// libFuzzer: the PROXY protocol header parser (src/net/proxy_protocol.h) on arbitrary first bytes of a
// connection. A complete header is never longer than the bytes given nor than the bound, and a source it
// names parses as a network of one address.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "net/proxy_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    const auto parsed = magpie::net::parse_proxy_header(bytes);
    if (parsed.status == magpie::net::ProxyParse::Status::complete) {
        if (parsed.header.length == 0 || parsed.header.length > size ||
            parsed.header.length > magpie::net::kMaxProxyHeaderOctets) {
            std::abort();
        }
        if (parsed.header.source && !magpie::net::parse_ip_network(*parsed.header.source)) std::abort();
    }
    return 0;
}
