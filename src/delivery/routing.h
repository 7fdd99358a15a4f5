// The configured side of routing: static routes per domain and the smart host ("*"), with how to talk to
// them (port, TLS, AUTH), and the domains that require TLS. DNS (MX by preference, implicit MX, null MX of
// RFC 7505) is src/dns's; the IO layer hands it the hosts and ports of these routes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace magpie::delivery {

// A host to hand a domain's mail to instead of asking DNS.
struct StaticRoute {
    std::string domain;  // lower-case; "*" is the smart host (every domain without a route of its own)
    std::string host;    // a name or an IP literal
    std::uint16_t port = 25;
    bool require_tls = false;   // STARTTLS with a verified certificate, or no delivery
    bool implicit_tls = false;  // TLS from the first byte (a smart host on port 465)
    std::string username;       // AUTH (only over TLS); empty for none
    std::string password;
};

struct RoutingConfig {
    std::vector<StaticRoute> routes;       // by domain; "*" = the smart host
    std::vector<std::string> require_tls;  // domains whose MX must offer STARTTLS with a valid certificate
};

// The route for a domain when the configuration names one (exact domain first, then "*").
std::optional<StaticRoute> static_route(const RoutingConfig& config, std::string_view domain);
bool tls_required(const RoutingConfig& config, std::string_view domain);

// The domain of an address ("user@Example.ORG" -> "example.org"); "" without '@'.
std::string recipient_domain(std::string_view address);

}  // namespace magpie::delivery
