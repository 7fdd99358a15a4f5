#include "cli/dns.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <unistd.h>

#include <ctime>
#include <iostream>

#include "base/strings.h"
#include "dns/resolver.h"
#include "mailauth/dkim_keys.h"

namespace magpie::cli {

namespace {

constexpr int kColumn = 40;  // where the record type starts, so a pasted zone lines up

void record(std::string_view name, std::string_view type, std::string_view data) {
    std::string owner = std::string(name) + ".";
    std::cout << fmt::format("{:<{}} 3600 IN {:<5} {}\n", owner, kColumn, type, data);
}

// A TXT value as zone-file strings: each at most 255 octets (RFC 1035 3.3.14), a long one split and put in
// parentheses so the record may span lines. Resolvers give the strings back joined.
std::string txt_data(std::string_view text) {
    std::vector<std::string> parts;
    for (std::size_t i = 0; i < text.size(); i += 250) parts.emplace_back(text.substr(i, 250));
    if (parts.size() == 1) return "\"" + parts[0] + "\"";
    std::string out = "(";
    for (const auto& part : parts) out += "\n    \"" + part + "\"";
    return out + " )";
}

std::string reverse_name(const std::string& address) {
    unsigned char bytes[16];
    if (inet_pton(AF_INET, address.c_str(), bytes) == 1)
        return fmt::format("{}.{}.{}.{}.in-addr.arpa", bytes[3], bytes[2], bytes[1], bytes[0]);
    if (inet_pton(AF_INET6, address.c_str(), bytes) != 1) return {};
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (int i = 15; i >= 0; --i) out += fmt::format("{}.{}.", kHex[bytes[i] & 0xf], kHex[bytes[i] >> 4]);
    return out + "ip6.arpa";
}

// The server's public addresses: the one given, or its host name's A/AAAA records.
std::vector<std::string> server_addresses(const std::string& hostname, const std::string& given,
                                          std::string& why) {
    if (!given.empty()) return {given};
    dns::ResolverConfig config;
    config.timeout_ms = 2000;
    config.tries = 2;
    auto resolver = dns::Resolver::create(config);
    if (!resolver) {
        why = resolver.error().message;
        return {};
    }
    std::vector<std::string> out;
    for (auto type : {dns::RecordType::a, dns::RecordType::aaaa}) {
        auto answer = (*resolver)->lookup_blocking(type, hostname);
        if (answer)
            out.insert(out.end(), answer->begin(), answer->end());
        else
            why = answer.error().message;
    }
    return out;
}

// RFC 8461 3.1: the id changes whenever the policy does; a digest of the policy does that by itself.
std::string mta_sts_id(std::string_view policy) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_Digest(policy.data(), policy.size(), md, &length, EVP_sha256(), nullptr);
    return to_hex(std::string_view(reinterpret_cast<const char*>(md), 8));
}

std::string today() {
    std::time_t now = std::time(nullptr);
    std::tm utc{};
    gmtime_r(&now, &utc);
    return fmt::format("{:04}{:02}{:02}", utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday);
}

}  // namespace

int print_dns_records(const server::Config& config, const std::string& domain_in,
                      const std::string& address) {
    std::string domain = to_lower(domain_in);
    while (domain.ends_with('.')) domain.pop_back();
    const std::string host = to_lower(config.hostname);
    if (domain.empty() || domain.find('.') == std::string::npos) {
        std::cerr << "magpie: " << domain_in << " is not a domain name\n";
        return 1;
    }
    auto keys = mailauth::list_dkim_keys(config.data_dir, domain);
    if (!keys) {
        std::cerr << "magpie: " << keys.error().message << "\n";
        return 1;
    }
    const std::string host_dot = host + ".";

    std::cout << fmt::format("; DNS records for {} (mail host {}). Paste into the zone of {}.\n\n", domain,
                             host, domain);
    std::cout << "; Where mail for the domain goes (RFC 5321 5.1).\n";
    record(domain, "MX", "10 " + host_dot);

    std::cout << "\n; SPF (RFC 7208): only the MX hosts send mail for the domain.\n";
    record(domain, "TXT", txt_data("v=spf1 mx -all"));

    std::cout << "\n; DKIM (RFC 6376, RFC 8463): the public halves of the signing keys.\n";
    if (keys->empty()) {
        std::cout << fmt::format(
            "; No DKIM keys for {} yet. Create them with:\n;   magpie dkim keygen {}\n"
            "; then run magpie dns {} again.\n",
            domain, domain, domain);
    }
    for (const auto& key : *keys)
        record(key.selector + "._domainkey." + domain, "TXT", txt_data(key.key_record));

    std::cout << "\n; DMARC (RFC 7489): unaligned mail is quarantined; aggregate reports to postmaster.\n";
    record("_dmarc." + domain, "TXT", txt_data("v=DMARC1; p=quarantine; rua=mailto:postmaster@" + domain));

    std::string policy = "version: STSv1\r\nmode: enforce\r\nmx: " + host + "\r\nmax_age: 604800\r\n";
    std::cout << "\n; MTA-STS (RFC 8461): senders must use TLS to the MX; the policy is served at\n"
              << "; https://mta-sts." << domain << "/.well-known/mta-sts.txt (mode enforce, mx " << host
              << ").\n";
    record("_mta-sts." + domain, "TXT", txt_data("v=STSv1; id=" + mta_sts_id(policy)));
    record("mta-sts." + domain, "CNAME", host_dot);
    std::cout << "\n; TLS reporting (RFC 8460).\n";
    record("_smtp._tls." + domain, "TXT", txt_data("v=TLSRPTv1; rua=mailto:postmaster@" + domain));

    std::cout << "\n; Mail clients find their servers (RFC 6186, RFC 8314: implicit TLS preferred).\n";
    record("_submissions._tcp." + domain, "SRV", "0 1 465 " + host_dot);
    record("_submission._tcp." + domain, "SRV", "10 1 587 " + host_dot);
    record("_imaps._tcp." + domain, "SRV", "0 1 993 " + host_dot);
    record("_imap._tcp." + domain, "SRV", "10 1 143 " + host_dot);
    record("_pop3._tcp." + domain, "SRV", "0 0 0 .");  // RFC 6186 3.4: no POP3 here
    record("_pop3s._tcp." + domain, "SRV", "0 0 0 .");
    std::cout << "\n; Thunderbird autoconfig and Outlook autodiscover.\n";
    record("autoconfig." + domain, "CNAME", host_dot);
    record("autodiscover." + domain, "CNAME", host_dot);
    record("_autodiscover._tcp." + domain, "SRV", "0 1 443 " + host_dot);

    std::cout << "\n; Reverse DNS: set by whoever owns the server's address (the hosting provider), so that\n"
              << "; receivers find " << host << " from the address and the address from " << host << ".\n";
    std::string why;
    auto addresses = server_addresses(host, address, why);
    for (const auto& a : addresses) {
        std::string reverse = reverse_name(a);
        if (reverse.empty()) {
            std::cerr << "magpie: " << a << " is not an IP address\n";
            return 1;
        }
        record(reverse, "PTR", host_dot);
    }
    if (addresses.empty()) {
        std::cout << fmt::format(
            "; {} has no address in DNS yet ({}). Publish its A/AAAA records, then set\n"
            "; the PTR of each address to {} (or run magpie dns {} --address IP).\n",
            host, why.empty() ? "no A or AAAA record" : why, host_dot, domain);
    }
    return 0;
}

int dkim_keygen(const server::Config& config, const std::string& domain, const std::string& selector_suffix) {
    mailauth::KeygenOptions options;
    options.selector_suffix = selector_suffix.empty() ? today() : selector_suffix;
    // Run as root for a magpied that drops to [server] user: the keys must be that user's, mode 0600.
    if (::geteuid() == 0 && !config.user.empty()) {
        passwd* pw = ::getpwnam(config.user.c_str());
        if (!pw) {
            std::cerr << "magpie: no such user " << config.user << " ([server] user)\n";
            return 1;
        }
        options.owner_uid = static_cast<int>(pw->pw_uid);
        options.owner_gid = static_cast<int>(pw->pw_gid);
    }
    auto created = mailauth::create_dkim_keys(config.data_dir, domain, options);
    if (!created) {
        std::cerr << "magpie: " << created.error().message << "\n";
        return 1;
    }
    std::string lower = to_lower(domain);
    std::cout << "; Created; publish these records (magpie dns " << lower
              << " prints all the domain needs):\n";
    for (const auto& key : *created) {
        std::cout << "; " << key.path.string() << "\n";
        record(key.selector + "._domainkey." + lower, "TXT", txt_data(key.key_record));
    }
    return 0;
}

}  // namespace magpie::cli
