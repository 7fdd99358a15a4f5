// Where mail for a domain goes (RFC 5321 5.1): a static route or the smart host from the configuration,
// else the domain's MX hosts by preference (random order among equal preferences), else the domain itself
// (its A/AAAA records: the implicit MX). A null MX (RFC 7505) means the domain takes no mail: the recipient
// fails at once. Pure functions: the IO layer does the DNS queries and passes the answers in.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace magpie::delivery {

// A host to hand a domain's mail to instead of asking DNS.
struct StaticRoute {
    std::string domain;      // lower-case; "*" is the smart host (every domain without a route of its own)
    std::string host;        // a name or an IP literal
    std::uint16_t port = 25;
    bool require_tls = false;  // STARTTLS with a verified certificate, or no delivery
    bool implicit_tls = false;  // TLS from the first byte (a smart host on port 465)
    std::string username;       // AUTH (only over TLS); empty for none
    std::string password;
};

struct RoutingConfig {
    std::vector<StaticRoute> routes;             // by domain; "*" = the smart host
    std::vector<std::string> require_tls;        // domains whose MX must offer STARTTLS with a valid certificate
    std::uint16_t mx_port = 25;                  // port of MX hosts (tests only change it)
};

// The route for a domain when the configuration names one (exact domain first, then "*").
std::optional<StaticRoute> static_route(const RoutingConfig& config, std::string_view domain);
bool tls_required(const RoutingConfig& config, std::string_view domain);

struct MxRecord {
    std::uint16_t preference = 0;
    std::string host;  // without the trailing dot; "" or "." for a null MX
};

// What DNS said about the domain's MX records.
enum class DnsStatus { ok, no_data, no_domain, temporary };
struct MxAnswer {
    DnsStatus status = DnsStatus::ok;
    std::vector<MxRecord> records;
    std::string error;  // for temporary: the resolver's message
};

// The outcome of routing: hosts to try in order, or a reason why none can be tried.
struct RoutePlan {
    enum class Kind { hosts, permanent_failure, temporary_failure } kind = Kind::hosts;
    std::vector<std::string> hosts;  // in the order to try
    std::string status;              // RFC 3463 for failures ("5.1.10" null MX, "5.1.2" no such domain)
    std::string reason;              // for the report and the tracker
};

// RFC 5321 5.1 and RFC 7505 from an MX answer. `random` returns uniform 64-bit values (shuffles equals).
// No MX (no_data) routes to the domain itself; NXDOMAIN fails ("5.1.2"); a single MX with host "" fails
// ("5.1.10"); a null MX beside real ones is ignored (RFC 7505 3: such records are malformed, use the rest).
RoutePlan plan_mx_route(std::string_view domain, const MxAnswer& answer, const std::function<std::uint64_t()>& random);

// The domain of an address ("user@Example.ORG" -> "example.org"); "" without '@'.
std::string recipient_domain(std::string_view address);

}  // namespace magpie::delivery

namespace magpie::delivery {

struct AddressAnswer {
    DnsStatus status = DnsStatus::ok;
    std::vector<std::string> addresses;  // IPv6 and IPv4 literals, in the order to try
    std::string error;
};

// DNS as the queue needs it; calls block (the IO layer runs them off the network threads). Thread-safe.
class Resolver {
public:
    virtual ~Resolver() = default;
    virtual MxAnswer mx(const std::string& domain) = 0;
    virtual AddressAnswer addresses(const std::string& host) = 0;  // A and AAAA; an IP literal answers itself
};

}  // namespace magpie::delivery
