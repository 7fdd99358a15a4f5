#include "http/autoconfig.h"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "base/strings.h"

namespace magpie::http::autoconfig {
namespace {

constexpr std::string_view kThunderbirdWellKnown = "/.well-known/autoconfig/mail/config-v1.1.xml";
constexpr std::string_view kThunderbirdHost = "/mail/config-v1.1.xml";
constexpr std::string_view kAutodiscoverXml = "/autodiscover/autodiscover.xml";
constexpr std::string_view kAutodiscoverJson = "/autodiscover/autodiscover.json";
constexpr std::string_view kApple = "/apple/mobileconfig";
constexpr std::string_view kAppleWellKnown = "/.well-known/mobileconfig";

Response text(int status, std::string content_type, std::string body) {
    Response r;
    r.status = status;
    r.content_type = std::move(content_type);
    r.body = std::move(body);
    return r;
}

Response not_found(std::string why) { return text(404, "text/plain; charset=utf-8", std::move(why) + "\n"); }

// The value of `name` (ASCII case-insensitive: Thunderbird sends emailaddress, Outlook Email) in a query,
// percent-decoded; "" when absent or undecodable. '+' stays '+': it is common in local parts.
std::string query_value(std::string_view query, std::string_view name) {
    while (!query.empty()) {
        std::size_t amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        std::size_t eq = pair.find('=');
        if (eq == std::string_view::npos || !iequals(pair.substr(0, eq), name)) continue;
        auto decoded = percent_decode(pair.substr(eq + 1));
        return decoded ? *decoded : std::string();
    }
    return {};
}

// A plausible address: one '@', something on both sides, no whitespace or markup characters. Anything
// else is treated as absent, so nothing hostile is echoed into the documents (they are escaped anyway).
bool is_address(std::string_view email) {
    std::size_t at = email.rfind('@');
    if (at == std::string_view::npos || at == 0 || at + 1 == email.size() || email.size() > 254) return false;
    return std::none_of(email.begin(), email.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u <= 0x20 || u == 0x7f || c == '<' || c == '>' || c == '"' || c == '&' || c == '\'';
    });
}

std::string_view host_without_port(std::string_view host) {
    if (!host.empty() && host.front() == '[') return host;  // an IPv6 literal names no domain
    return host.substr(0, host.find(':'));
}

bool is_local(const Settings& settings, std::string_view domain) {
    return std::ranges::any_of(settings.domains, [&](const std::string& d) { return iequals(d, domain); });
}

const char* thunderbird_socket(const Endpoint& e) {
    return e.security == Endpoint::Security::implicit_tls ? "SSL" : "STARTTLS";
}

// Thunderbird (config-v1.1): every listener, preferred first; %EMAILADDRESS% when the address is unknown
// (Thunderbird substitutes it).
std::string thunderbird(const Settings& s, const std::string& domain, const std::string& email) {
    const std::string user = email.empty() ? "%EMAILADDRESS%" : xml_escape(email);
    std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<clientConfig version=\"1.1\">\n";
    out += fmt::format("  <emailProvider id=\"{}\">\n    <domain>{}</domain>\n", xml_escape(domain), xml_escape(domain));
    out += fmt::format("    <displayName>{} mail</displayName>\n    <displayShortName>{}</displayShortName>\n",
                       xml_escape(domain), xml_escape(domain));
    auto server = [&](const char* element, const char* type, const Endpoint& e) {
        out += fmt::format(
            "    <{} type=\"{}\">\n      <hostname>{}</hostname>\n      <port>{}</port>\n"
            "      <socketType>{}</socketType>\n      <authentication>password-cleartext</authentication>\n"
            "      <username>{}</username>\n    </{}>\n",
            element, type, xml_escape(s.hostname), e.port, thunderbird_socket(e), user, element);
    };
    for (const auto& e : s.imap) server("incomingServer", "imap", e);
    for (const auto& e : s.submission) server("outgoingServer", "smtp", e);
    out += "  </emailProvider>\n</clientConfig>\n";
    return out;
}

// Outlook POX ([MS-OXDSCLI] 2.2.4): one IMAP and one SMTP protocol, the preferred listener of each.
// SSL=on with Encryption=SSL is implicit TLS; Encryption=TLS is STARTTLS (Encryption overrides SSL).
std::string autodiscover_xml(const Settings& s, const std::string& email) {
    std::string out =
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
        "<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n"
        "  <Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\">\n"
        "    <Account>\n      <AccountType>email</AccountType>\n      <Action>settings</Action>\n";
    auto protocol = [&](const char* type, const Endpoint& e) {
        const bool implicit = e.security == Endpoint::Security::implicit_tls;
        out += fmt::format(
            "      <Protocol>\n        <Type>{}</Type>\n        <Server>{}</Server>\n        <Port>{}</Port>\n"
            "        <DomainRequired>off</DomainRequired>\n",
            type, xml_escape(s.hostname), e.port);
        if (!email.empty()) out += fmt::format("        <LoginName>{}</LoginName>\n", xml_escape(email));
        out += fmt::format(
            "        <SPA>off</SPA>\n        <SSL>on</SSL>\n        <Encryption>{}</Encryption>\n"
            "        <AuthRequired>on</AuthRequired>\n",
            implicit ? "SSL" : "TLS");
        if (std::string_view(type) == "SMTP")
            out += "        <UsePOPAuth>on</UsePOPAuth>\n        <SMTPLast>off</SMTPLast>\n";
        out += "      </Protocol>\n";
    };
    if (!s.imap.empty()) protocol("IMAP", s.imap.front());
    if (!s.submission.empty()) protocol("SMTP", s.submission.front());
    out += "    </Account>\n  </Response>\n</Autodiscover>\n";
    return out;
}

// The address in a POX request body: the text of <EMailAddress> ("" when absent).
std::string pox_email(std::string_view body) {
    std::string lower = to_lower(body);
    std::size_t open = lower.find("<emailaddress>");
    if (open == std::string::npos) return {};
    open += std::string_view("<emailaddress>").size();
    std::size_t close = lower.find("</emailaddress>", open);
    if (close == std::string::npos) return {};
    return std::string(trim(body.substr(open, close - open)));
}

// Two FNV-1a passes give a stable UUID per profile: installing the profile again replaces it on the
// device instead of adding a second account.
std::string stable_uuid(std::string_view seed) {
    auto fnv = [&](std::uint64_t h) {
        for (char c : seed) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
        return h;
    };
    std::uint64_t a = fnv(0xcbf29ce484222325ull), b = fnv(0x84222325cbf29ce4ull);
    a = (a & ~0xf000ull) | 0x4000ull;                            // version 4 layout
    b = (b & 0x3fffffffffffffffull) | 0x8000000000000000ull;  // RFC 4122 variant
    return fmt::format("{:08X}-{:04X}-{:04X}-{:04X}-{:012X}", a >> 32, (a >> 16) & 0xffff, a & 0xffff, b >> 48,
                       b & 0xffffffffffffull);
}

// Apple's com.apple.mail.managed payload. Without an address the address and user names are left out, and
// the device asks for them when the profile is installed. UseSSL true is TLS from the start on the
// implicit-TLS ports and STARTTLS on the others.
std::string mobileconfig(const Settings& s, const std::string& domain, const std::string& email) {
    const Endpoint& in = s.imap.front();
    const Endpoint& out_endpoint = s.submission.front();
    std::string id = "mail." + domain;
    std::string out =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
        "<plist version=\"1.0\">\n<dict>\n  <key>PayloadContent</key>\n  <array>\n    <dict>\n";
    auto key = [&](std::string_view k, std::string_view v) {
        out += fmt::format("      <key>{}</key>\n      <string>{}</string>\n", k, xml_escape(v));
    };
    auto integer = [&](std::string_view k, unsigned v) {
        out += fmt::format("      <key>{}</key>\n      <integer>{}</integer>\n", k, v);
    };
    auto boolean = [&](std::string_view k, bool v) {
        out += fmt::format("      <key>{}</key>\n      <{}/>\n", k, v ? "true" : "false");
    };
    key("EmailAccountDescription", domain);
    key("EmailAccountType", "EmailTypeIMAP");
    if (!email.empty()) {
        key("EmailAddress", email);
        key("IncomingMailServerUsername", email);
        key("OutgoingMailServerUsername", email);
    }
    key("IncomingMailServerAuthentication", "EmailAuthPassword");
    key("IncomingMailServerHostName", s.hostname);
    integer("IncomingMailServerPortNumber", in.port);
    boolean("IncomingMailServerUseSSL", true);
    key("OutgoingMailServerAuthentication", "EmailAuthPassword");
    key("OutgoingMailServerHostName", s.hostname);
    integer("OutgoingMailServerPortNumber", out_endpoint.port);
    boolean("OutgoingMailServerUseSSL", true);
    boolean("OutgoingPasswordSameAsIncomingPassword", true);
    key("PayloadDescription", "Mail account " + (email.empty() ? domain : email));
    key("PayloadDisplayName", domain + " mail");
    key("PayloadIdentifier", id + ".account." + stable_uuid(email + "|" + domain));
    key("PayloadType", "com.apple.mail.managed");
    key("PayloadUUID", stable_uuid("account|" + email + "|" + domain));
    integer("PayloadVersion", 1);
    out += "    </dict>\n  </array>\n";
    auto top_key = [&](std::string_view k, std::string_view v) {
        out += fmt::format("  <key>{}</key>\n  <string>{}</string>\n", k, xml_escape(v));
    };
    top_key("PayloadDisplayName", domain + " mail");
    top_key("PayloadIdentifier", id + "." + stable_uuid(email + "|" + domain));
    out += "  <key>PayloadRemovalDisallowed</key>\n  <false/>\n";
    top_key("PayloadType", "Configuration");
    top_key("PayloadUUID", stable_uuid("profile|" + email + "|" + domain));
    out += "  <key>PayloadVersion</key>\n  <integer>1</integer>\n</dict>\n</plist>\n";
    return out;
}

std::string json_string(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (u < 0x20) {
            out += fmt::format("\\u{:04x}", u);
        } else {
            out += c;
        }
    }
    return out + "\"";
}

// Outlook's JSON v2: it asks where the POX service is (Protocol=AutodiscoverV1) and goes there.
Response autodiscover_json(const Settings& s, std::string_view protocol) {
    if (!iequals(protocol, "AutodiscoverV1")) {
        return text(400, "application/json",
                    fmt::format("{{\"ErrorCode\":\"InvalidProtocol\",\"ErrorMessage\":{}}}",
                                json_string(fmt::format("The given protocol value '{}' is invalid. Supported "
                                                        "values are 'AutodiscoverV1'",
                                                        protocol))));
    }
    return text(200, "application/json",
                fmt::format("{{\"Protocol\":\"AutodiscoverV1\",\"Url\":{}}}",
                            json_string("https://" + s.hostname + std::string(kAutodiscoverXml))));
}

}  // namespace

std::string xml_escape(std::string_view text) {
    std::string out;
    for (char c : text) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&apos;"; break;
            default:
                // XML 1.0 allows no control characters but tab, CR and LF.
                if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r')
                    out += '?';
                else
                    out += c;
        }
    }
    return out;
}

std::vector<Endpoint> public_endpoints(const std::vector<Endpoint>& bound, std::optional<std::uint16_t> implicit_tls,
                                       std::optional<std::uint16_t> starttls) {
    std::vector<Endpoint> out;
    for (auto [security, configured] : {std::pair{Endpoint::Security::implicit_tls, implicit_tls},
                                        std::pair{Endpoint::Security::starttls, starttls}}) {
        if (configured) {
            if (*configured != 0) out.push_back(Endpoint{*configured, security});
            continue;
        }
        for (const auto& e : bound)
            if (e.security == security) out.push_back(e);
    }
    return out;
}

bool handles(std::string_view path) {
    const std::string lower = to_lower(path);
    return lower == kThunderbirdWellKnown || lower == kThunderbirdHost || lower == kAutodiscoverXml ||
           lower == kAutodiscoverJson || lower.starts_with(std::string(kAutodiscoverJson) + "/v1.0/") ||
           lower == kApple || lower == kAppleWellKnown;
}

std::optional<std::string> domain_for(std::string_view email, std::string_view host_header, const Settings& settings) {
    if (!email.empty()) {
        std::string domain = to_lower(email.substr(email.rfind('@') + 1));
        if (is_local(settings, domain)) return domain;
        return std::nullopt;
    }
    std::string host = to_lower(host_without_port(host_header));
    for (std::string_view prefix : {"autoconfig.", "autodiscover."}) {
        if (host.starts_with(prefix) && is_local(settings, std::string_view(host).substr(prefix.size())))
            return host.substr(prefix.size());
    }
    if (is_local(settings, host)) return host;
    if (settings.domains.size() == 1) return settings.domains.front();
    return std::nullopt;
}

Response answer(const Request& request, const Settings& s) {
    const std::string path = to_lower(request.path);
    const bool pox = path == kAutodiscoverXml;
    if (pox ? request.method != "POST" && request.method != "GET" : request.method != "GET") {
        Response r = text(405, "text/plain; charset=utf-8", "method not allowed here\n");
        r.headers.emplace_back("Allow", pox ? "POST, GET" : "GET");
        return r;
    }
    if (request.body.size() > s.max_body_octets) return text(413, "text/plain; charset=utf-8", "request too large\n");
    if (s.imap.empty() || s.submission.empty())
        return not_found("this server has no IMAP or no submission listener to offer");

    if (path == kAutodiscoverJson || path.starts_with(std::string(kAutodiscoverJson) + "/v1.0/"))
        return autodiscover_json(s, query_value(request.query, "Protocol"));

    std::string email;
    if (pox) {
        email = pox_email(request.body);
    } else {
        email = query_value(request.query, "emailaddress");
    }
    if (!is_address(email)) email.clear();
    auto domain = domain_for(email, request.host, s);
    if (!domain) return not_found("no mail domain of this server matches the request");

    if (pox) return text(200, "application/xml; charset=utf-8", autodiscover_xml(s, email));
    if (path == kApple || path == kAppleWellKnown) {
        Response r = text(200, "application/x-apple-aspen-config", mobileconfig(s, *domain, email));
        r.headers.emplace_back("Content-Disposition", "attachment; filename=\"" + *domain + ".mobileconfig\"");
        return r;
    }
    return text(200, "application/xml; charset=utf-8", thunderbird(s, *domain, email));
}

}  // namespace magpie::http::autoconfig
