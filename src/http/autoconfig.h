// Mail clients that set themselves up (issue 18): the answers to Thunderbird's autoconfig
// (config-v1.1.xml, https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat), Outlook's
// autodiscover (the POX protocol, [MS-OXDSCLI], and its JSON v2 redirect) and an Apple configuration
// profile (.mobileconfig, com.apple.mail.managed). Sans-IO: the server hands in the request and what it
// serves, gets a Response back. Every answer names the user's full address as login name, and works without
// it (placeholders the client fills in, or fields the device asks for).
//
// URLs (GET unless said):
//   /.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=U   Thunderbird, on the domain's own host
//   /mail/config-v1.1.xml?emailaddress=U                          Thunderbird, on autoconfig.DOMAIN
//   POST /autodiscover/autodiscover.xml                           Outlook POX (also /Autodiscover/Autodiscover.xml)
//   /autodiscover/autodiscover.json?Email=U&Protocol=P            Outlook JSON v2 (also .../v1.0/U?Protocol=P)
//   /apple/mobileconfig?emailaddress=U                            Apple profile (also /.well-known/mobileconfig)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/message.h"

namespace magpie::http::autoconfig {

// One listener a client may use. Implicit TLS is "SSL" in every client's vocabulary (993, 465); STARTTLS
// on the plain port (143, 587) is "STARTTLS" (RFC 8314 prefers the first).
struct Endpoint {
    enum class Security { implicit_tls, starttls };
    std::uint16_t port = 0;
    Security security = Security::implicit_tls;
};

struct Settings {
    std::string hostname;                // the host clients connect to ([server] hostname)
    std::vector<Endpoint> imap;          // in order of preference; implicit TLS first
    std::vector<Endpoint> submission;    // likewise
    std::vector<std::string> domains;    // the local domains (lower case): others get 404
    std::size_t max_body_octets = 16 * 1024;  // an autodiscover POST body; larger: 413
};

struct Request {
    std::string_view method;  // "GET", "POST"
    std::string_view path;    // without the query
    std::string_view query;   // after '?', undecoded
    std::string_view host;    // the Host header, for autoconfig.DOMAIN
    std::string_view body;
};

// The listeners clients are told about: `bound` (implicit TLS first, as the server bound them) unless a
// public port is configured for that kind ([autoconfig] imaps_port etc., for a server behind NAT or a
// proxy): then that one port, or none when it is 0.
std::vector<Endpoint> public_endpoints(const std::vector<Endpoint>& bound, std::optional<std::uint16_t> implicit_tls,
                                       std::optional<std::uint16_t> starttls);

// True for the paths above (any method): the caller then gathers Settings (the domain list is a store
// read) and calls answer().
bool handles(std::string_view path);

// The answer for one of those paths: 200 with the document; 404 for a domain that is not ours or an
// address that is no address; 405 for the wrong method; 413 for an oversized POST body.
Response answer(const Request& request, const Settings& settings);

// The parts, exposed for tests: the domain an answer is for (from the address, else from an
// "autoconfig."/"autodiscover." Host, else the only local domain), and the XML escaping used.
std::optional<std::string> domain_for(std::string_view email, std::string_view host, const Settings& settings);
std::string xml_escape(std::string_view text);

}  // namespace magpie::http::autoconfig
