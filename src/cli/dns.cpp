#include "cli/dns.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <iostream>

#include "base/strings.h"
#include "dns/resolver.h"
#include "mailauth/dkim_keys.h"
#include "mailauth/dmarc.h"
#include "mailauth/dns.h"
#include "mailauth/mta_sts.h"
#include "mailauth/spf.h"

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

// The domain as given, lower case, without the root dot; empty when it is no multi-label name.
std::string domain_argument(const std::string& domain_in) {
    std::string domain = to_lower(domain_in);
    while (domain.ends_with('.')) domain.pop_back();
    if (domain.find('.') == std::string::npos) return {};
    return domain;
}

// One line of `--check` output; counts the failures.
struct CheckReport {
    int failures = 0;
    void line(bool ok, std::string_view what, std::string_view detail) {
        if (!ok) ++failures;
        std::cout << fmt::format("{:<8}{} {}\n", ok ? "ok" : "MISSING", what, detail);
    }
    void wrong(std::string_view what, std::string_view detail) {
        ++failures;
        std::cout << fmt::format("{:<8}{} {}\n", "WRONG", what, detail);
    }
};

std::string joined(const Result<std::vector<std::string>>& answer) {
    if (!answer) return answer.error().message;
    std::string out;
    for (const auto& r : *answer) out += (out.empty() ? "" : " | ") + r;
    return out.empty() ? "no record" : out;
}

// The records at `name` that start with `prefix` (case-insensitive).
std::vector<std::string> starting_with(const Result<std::vector<std::string>>& answer,
                                       std::string_view prefix) {
    std::vector<std::string> out;
    if (!answer) return out;
    for (const auto& r : *answer)
        if (istarts_with(r, prefix)) out.push_back(r);
    return out;
}

void check_txt_prefix(mailauth::Dns& dns, CheckReport& report, const std::string& name,
                      std::string_view prefix) {
    auto answer = dns.lookup(dns::RecordType::txt, name);
    auto found = starting_with(answer, prefix);
    if (found.size() == 1)
        report.line(true, "TXT " + name, found[0]);
    else if (found.empty())
        report.line(false, "TXT " + name, "(found: " + joined(answer) + ")");
    else
        report.wrong("TXT " + name, "more than one " + std::string(prefix) + " record");
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

    // The policy magpied serves (http_service, [mta_sts] mode and max_age): the id is its digest.
    std::string policy = mailauth::sts_policy_text(mailauth::sts_mode_from_name(config.mta_sts.mode), {host},
                                                   config.mta_sts.max_age);
    std::cout << "\n; MTA-STS (RFC 8461): senders must use TLS to the MX; the policy is served at\n"
              << "; https://mta-sts." << domain << "/.well-known/mta-sts.txt (mode " << config.mta_sts.mode
              << ", mx " << host << "; [mta_sts] mode in magpie.toml).\n";
    record("_mta-sts." + domain, "TXT", txt_data("v=STSv1; id=" + mailauth::sts_policy_id(policy)));
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

int check_dns_records(const server::Config& config, const std::string& domain_in, const std::string& address,
                      const std::string& dns_server) {
    std::string domain = domain_argument(domain_in);
    if (domain.empty()) {
        std::cerr << "magpie: " << domain_in << " is not a domain name\n";
        return 1;
    }
    const std::string host = to_lower(config.hostname);
    auto keys = mailauth::list_dkim_keys(config.data_dir, domain);
    if (!keys) {
        std::cerr << "magpie: " << keys.error().message << "\n";
        return 1;
    }
    dns::ResolverConfig resolver_config;
    resolver_config.servers = dns_server;
    resolver_config.timeout_ms = 2000;
    resolver_config.tries = 2;
    auto resolver = dns::Resolver::create(resolver_config);
    if (!resolver) {
        std::cerr << "magpie: " << resolver.error().message << "\n";
        return 1;
    }
    mailauth::ResolverDns dns(**resolver);
    CheckReport report;

    auto mx = dns.lookup(dns::RecordType::mx, domain);
    bool mx_ok = mx && std::find(mx->begin(), mx->end(), host) != mx->end();
    report.line(mx_ok, "MX " + domain, mx_ok ? host : "(found: " + joined(mx) + ")");

    // Addresses: the one given, else the host name's A and AAAA records in the DNS being checked.
    std::vector<std::string> addresses;
    if (!address.empty()) {
        addresses.push_back(address);
    } else {
        for (auto type : {dns::RecordType::a, dns::RecordType::aaaa}) {
            auto answer = dns.lookup(type, host);
            if (answer) addresses.insert(addresses.end(), answer->begin(), answer->end());
        }
        report.line(!addresses.empty(), "A/AAAA " + host, addresses.empty() ? "no address" : "");
    }

    // SPF: evaluated, not compared: any record that lets our addresses send is right.
    for (const auto& a : addresses) {
        mailauth::SpfRequest request;
        request.ip = a;
        request.sender = "postmaster@" + domain;
        request.helo = host;
        auto spf = mailauth::check_host(dns, request, domain);
        std::string detail = fmt::format("{} for {}", mailauth::spf_result_name(spf.result), a);
        if (!spf.reason.empty()) detail += " (" + spf.reason + ")";
        if (spf.result == mailauth::SpfResult::pass)
            report.line(true, "SPF " + domain, detail);
        else if (spf.result == mailauth::SpfResult::none)
            report.line(false, "SPF " + domain, detail);
        else
            report.wrong("SPF " + domain, detail);
    }

    if (keys->empty()) report.line(false, "DKIM keys", "none yet: magpie dkim keygen " + domain);
    for (const auto& key : *keys) {
        std::string name = key.selector + "._domainkey." + domain;
        auto answer = dns.lookup(dns::RecordType::txt, name);
        auto ours = mail::dkim::parse_key_record(key.key_record);
        bool match = false;
        for (const auto& txt : answer ? *answer : std::vector<std::string>{}) {
            auto published = mail::dkim::parse_key_record(txt);
            if (published && ours && published->public_key == ours->public_key && !published->revoked)
                match = true;
        }
        if (match)
            report.line(true, "TXT " + name, "matches " + key.path.filename().string());
        else if (!answer || answer->empty())
            report.line(false, "TXT " + name, "(found: " + joined(answer) + ")");
        else
            report.wrong("TXT " + name, "does not publish this key's public half");
    }

    auto dmarc = dns.lookup(dns::RecordType::txt, "_dmarc." + domain);
    auto dmarc_records = starting_with(dmarc, "v=DMARC1");
    if (dmarc_records.size() == 1 && mailauth::parse_dmarc_record(dmarc_records[0]))
        report.line(true, "TXT _dmarc." + domain, dmarc_records[0]);
    else if (dmarc_records.empty())
        report.line(false, "TXT _dmarc." + domain, "(found: " + joined(dmarc) + ")");
    else
        report.wrong("TXT _dmarc." + domain, "unusable: " + joined(dmarc));
    check_txt_prefix(dns, report, "_mta-sts." + domain, "v=STSv1");
    check_txt_prefix(dns, report, "_smtp._tls." + domain, "v=TLSRPTv1");

    // Reverse DNS, forward-confirmed: the address names the host, and the host has the address.
    for (const auto& a : addresses) {
        auto ptr = dns.lookup(dns::RecordType::ptr, a);
        bool names_host = ptr && std::find(ptr->begin(), ptr->end(), host) != ptr->end();
        if (!names_host) {
            report.line(false, "PTR " + a, "should be " + host + " (found: " + joined(ptr) + ")");
            continue;
        }
        auto forward =
            dns.lookup(a.find(':') == std::string::npos ? dns::RecordType::a : dns::RecordType::aaaa, host);
        bool confirmed = forward && std::find(forward->begin(), forward->end(), a) != forward->end();
        if (confirmed)
            report.line(true, "PTR " + a, host);
        else
            report.wrong("PTR " + a, host + " does not resolve back to " + a);
    }
    std::cout << "; not checked: SRV and CNAME records (autoconfig, autodiscover, RFC 6186, mta-sts host)\n";
    std::cout << (report.failures == 0 ? std::string("all checked records are right\n")
                                       : fmt::format("{} record(s) missing or wrong\n", report.failures));
    return report.failures == 0 ? 0 : 1;
}

namespace {

// Keys made by root for a magpied that drops to [server] user must be that user's (mode 0600).
Result<mailauth::KeygenOptions> keygen_options(const server::Config& config, const std::string& suffix) {
    mailauth::KeygenOptions options;
    options.selector_suffix = suffix.empty() ? today() : suffix;
    if (::geteuid() == 0 && !config.user.empty()) {
        passwd* pw = ::getpwnam(config.user.c_str());
        if (!pw) return make_error(Errc::not_found, "no such user " + config.user + " ([server] user)");
        options.owner_uid = static_cast<int>(pw->pw_uid);
        options.owner_gid = static_cast<int>(pw->pw_gid);
    }
    return options;
}

int print_created(const std::string& domain, const Result<std::vector<mailauth::StoredKey>>& created,
                  std::string_view what) {
    if (!created) {
        std::cerr << "magpie: " << created.error().message << "\n";
        return 1;
    }
    std::string lower = to_lower(domain);
    std::cout << "; " << what << "; publish these records (magpie dns " << lower << " prints all the domain needs):\n";
    for (const auto& key : *created) {
        std::cout << "; " << key.path.string() << "\n";
        record(key.selector + "._domainkey." + lower, "TXT", txt_data(key.key_record));
    }
    return 0;
}

}  // namespace

int dkim_keygen(const server::Config& config, const std::string& domain, const std::string& selector_suffix) {
    auto options = keygen_options(config, selector_suffix);
    if (!options) return print_created(domain, options.error(), "");
    return print_created(domain, mailauth::create_dkim_keys(config.data_dir, domain, *options), "Created");
}

int dkim_rotate(const server::Config& config, const std::string& domain, const std::string& selector_suffix) {
    auto options = keygen_options(config, selector_suffix);
    if (!options) return print_created(domain, options.error(), "");
    auto created = mailauth::rotate_dkim_keys(config.data_dir, domain, *options);
    int status = print_created(domain, created, "New keys; magpied signs with them after its next start or SIGHUP");
    if (status == 0) {
        std::cout << "; Keep the old records published until mail signed with them has been read (a few days),\n"
                  << "; then: magpie dkim remove " << to_lower(domain) << " SELECTOR\n";
    }
    return status;
}

int dkim_remove(const server::Config& config, const std::string& domain, const std::string& selector) {
    auto removed = mailauth::remove_dkim_key(config.data_dir, domain, selector);
    if (!removed) {
        std::cerr << "magpie: " << removed.error().message << "\n";
        return 1;
    }
    std::cout << "removed " << selector << "; its record " << selector << "._domainkey." << to_lower(domain)
              << " may go from DNS\n";
    return 0;
}

int dkim_list(const server::Config& config, const std::string& domain) {
    auto keys = mailauth::list_dkim_keys(config.data_dir, domain);
    if (!keys) {
        std::cerr << "magpie: " << keys.error().message << "\n";
        return 1;
    }
    for (const auto& key : *keys)
        std::cout << key.selector << " " << mail::dkim::algorithm_name(key.algorithm) << " " << key.path.string() << "\n";
    return 0;
}

int ensure_dkim_keys(const server::Config& config, const std::string& domain) {
    auto keys = mailauth::list_dkim_keys(config.data_dir, domain);
    if (!keys) {
        std::cerr << "magpie: " << keys.error().message << "\n";
        return 1;
    }
    if (!keys->empty()) return 0;  // a domain added again keeps the keys its records publish
    return dkim_keygen(config, domain, "");
}

}  // namespace magpie::cli
