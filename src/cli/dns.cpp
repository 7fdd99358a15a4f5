#include "cli/dns.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
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
#include "mailauth/tlsrpt.h"

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

std::string today() {
    std::time_t now = std::time(nullptr);
    std::tm utc{};
    gmtime_r(&now, &utc);
    return fmt::format("{:04}{:02}{:02}", utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday);
}

}  // namespace

namespace {

// One record the domain needs, as magpied serves it. `data` is the zone-file data (TXT unquoted).
struct Record {
    std::string name;  // owner, no trailing dot
    std::string type;
    std::string data;
};
struct Section {
    std::string comment;  // "; " lines printed before the records
    std::vector<Record> records;
};

// The host and ports clients are told ([autoconfig]); a port not configured is the standard one.
std::string client_host(const server::Config& config) {
    return to_lower(config.autoconfig.hostname.empty() ? config.hostname : config.autoconfig.hostname);
}

// RFC 6186 SRV data: "priority weight port target." or "0 0 0 ." (3.4: the service is not offered).
std::string srv_data(unsigned priority, std::optional<std::uint16_t> configured, std::uint16_t standard,
                     const std::string& host) {
    const std::uint16_t port = configured ? *configured : standard;
    if (port == 0) return "0 0 0 .";
    return fmt::format("{} 1 {} {}.", priority, port, host);
}

// DANE-EE (RFC 7672 3.1.1, RFC 7671 5.1): "3 1 1 <SHA-256 of the certificate's SubjectPublicKeyInfo>",
// which stays right across renewals that keep the key. Empty when no certificate is configured or readable.
std::string tlsa_data(const std::filesystem::path& certificate) {
    if (certificate.empty()) return {};
    FILE* file = std::fopen(certificate.c_str(), "r");
    if (!file) return {};
    X509* cert = PEM_read_X509(file, nullptr, nullptr, nullptr);
    std::fclose(file);
    if (!cert) return {};
    unsigned char* spki = nullptr;
    int length = i2d_PUBKEY(X509_get0_pubkey(cert), &spki);
    X509_free(cert);
    if (length <= 0) return {};
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_length = 0;
    EVP_Digest(spki, static_cast<std::size_t>(length), md, &md_length, EVP_sha256(), nullptr);
    OPENSSL_free(spki);
    std::string out = "3 1 1 ";
    for (unsigned i = 0; i < md_length; ++i) out += fmt::format("{:02x}", md[i]);
    return out;
}

// Every record of the domain but the PTRs (which belong to the address's owner), in the order printed.
std::vector<Section> domain_records(const server::Config& config, const std::string& domain,
                                   const std::vector<mailauth::StoredKey>& keys) {
    const std::string host = to_lower(config.hostname);
    const std::string host_dot = host + ".";
    const std::string clients = client_host(config);
    const auto& pub = config.autoconfig;
    std::vector<Section> out;
    out.push_back({"; Where mail for the domain goes (RFC 5321 5.1).\n", {{domain, "MX", "10 " + host_dot}}});
    out.push_back({"\n; SPF (RFC 7208): only the MX hosts send mail for the domain.\n",
                   {{domain, "TXT", "v=spf1 mx -all"}}});
    Section dkim{"\n; DKIM (RFC 6376, RFC 8463): the public halves of the signing keys.\n", {}};
    if (keys.empty()) {
        dkim.comment += fmt::format(
            "; No DKIM keys for {} yet. Create them with:\n;   magpie dkim keygen {}\n"
            "; then run magpie dns {} again.\n",
            domain, domain, domain);
    }
    for (const auto& key : keys) dkim.records.push_back({key.selector + "._domainkey." + domain, "TXT", key.key_record});
    out.push_back(std::move(dkim));
    out.push_back({"\n; DMARC (RFC 7489): unaligned mail is quarantined; aggregate reports to postmaster.\n",
                   {{"_dmarc." + domain, "TXT", "v=DMARC1; p=quarantine; rua=mailto:postmaster@" + domain}}});
    // The policy magpied serves (http_service, [mta_sts] mode and max_age): the id is its digest.
    std::string policy = mailauth::sts_policy_text(mailauth::sts_mode_from_name(config.mta_sts.mode), {host},
                                                   config.mta_sts.max_age);
    out.push_back({fmt::format("\n; MTA-STS (RFC 8461): senders must use TLS to the MX; the policy is served at\n"
                               "; https://mta-sts.{}/.well-known/mta-sts.txt (mode {}, mx {}; [mta_sts] mode in "
                               "magpie.toml).\n",
                               domain, config.mta_sts.mode, host),
                   {{"_mta-sts." + domain, "TXT", "v=STSv1; id=" + mailauth::sts_policy_id(policy)},
                    {"mta-sts." + domain, "CNAME", host_dot}}});
    if (std::string tlsa = tlsa_data(config.tls_certificate); !tlsa.empty()) {
        out.push_back({fmt::format("\n; DANE (RFC 7672): senders that validate DNSSEC require this key of {} on port 25.\n"
                                   "; Only in a DNSSEC-signed zone (that of {}); before the key changes, publish\n"
                                   "; the new record beside this one.\n",
                                   host, host),
                       {{"_25._tcp." + host, "TLSA", tlsa}}});
    }
    out.push_back({"\n; TLS reporting (RFC 8460).\n",
                   {{"_smtp._tls." + domain, "TXT", "v=TLSRPTv1; rua=mailto:postmaster@" + domain}}});
    out.push_back({"\n; Mail clients find their servers (RFC 6186, RFC 8314: implicit TLS preferred).\n",
                   {{"_submissions._tcp." + domain, "SRV", srv_data(0, pub.submissions_port, 465, clients)},
                    {"_submission._tcp." + domain, "SRV", srv_data(10, pub.submission_port, 587, clients)},
                    {"_imaps._tcp." + domain, "SRV", srv_data(0, pub.imaps_port, 993, clients)},
                    {"_imap._tcp." + domain, "SRV", srv_data(10, pub.imap_port, 143, clients)},
                    {"_pop3._tcp." + domain, "SRV", "0 0 0 ."},  // RFC 6186 3.4: no POP3 here
                    {"_pop3s._tcp." + domain, "SRV", "0 0 0 ."}}});
    out.push_back({"\n; Thunderbird autoconfig and Outlook autodiscover.\n",
                   {{"autoconfig." + domain, "CNAME", clients + "."},
                    {"autodiscover." + domain, "CNAME", clients + "."},
                    {"_autodiscover._tcp." + domain, "SRV", "0 1 443 " + clients + "."}}});
    return out;
}

std::string zone_data(const Record& r) { return r.type == "TXT" ? txt_data(r.data) : r.data; }

std::string without_dot(std::string name) {
    if (name.ends_with('.')) name.pop_back();
    return to_lower(name);
}

// What --check says about each kind of record: precise, with what was expected and what was found.
class Checker {
public:
    Checker(dns::Resolver& resolver, mailauth::Dns& dns, CheckReport& report, const server::Config& config, const std::string& domain,
            const std::vector<mailauth::StoredKey>& keys)
        : resolver_(resolver), dns_(dns), report_(report), config_(config), domain_(domain), keys_(keys) {}

    std::vector<std::string> addresses;  // the server's, for SPF, PTR and the CNAME alternative

    void check(const Record& r) {
        if (r.type == "MX") return mx(r);
        if (r.type == "SRV") return srv(r);
        if (r.type == "CNAME") return cname(r);
        if (r.type == "TLSA") return tlsa(r);
        if (r.name == domain_) return spf();
        if (r.name.find("._domainkey.") != std::string::npos) return dkim(r);
        if (r.name.starts_with("_dmarc.")) return dmarc(r);
        if (r.name.starts_with("_mta-sts.")) return mta_sts(r);
        if (r.name.starts_with("_smtp._tls.")) return tlsrpt(r);
    }

private:
    void mx(const Record& r) {
        const std::string host = without_dot(r.data.substr(r.data.find(' ') + 1));
        auto found = dns_.lookup(dns::RecordType::mx, r.name);
        if (found && std::find(found->begin(), found->end(), host) != found->end()) {
            std::string others;
            for (const auto& h : *found)
                if (h != host) others += (others.empty() ? "" : ", ") + h;
            report_.line(true, "MX " + r.name, others.empty() ? host : host + " (also: " + others + ")");
        } else if (!found || found->empty()) {
            report_.line(false, "MX " + r.name, "should be " + r.data + " (found: " + joined(found) + ")");
        } else {
            report_.wrong("MX " + r.name, "points at " + joined(found) + ", not at " + host);
        }
    }

    // The SRV target and port must be what clients are told; priority and weight are the admin's choice.
    void srv(const Record& r) {
        auto found = dns_.lookup(dns::RecordType::srv, r.name);
        auto port_target = [](std::string_view data) {
            auto parts = split(data, ' ');
            return parts.size() == 4 ? std::string(parts[2]) + " " + without_dot(std::string(parts[3])) : "";
        };
        const std::string want = port_target(r.data);
        const bool not_offered = r.data == "0 0 0 .";
        bool ok = false;
        for (const auto& f : found ? *found : std::vector<std::string>{})
            ok = ok || port_target(f) == want || (not_offered && f.ends_with(" ."));
        if (ok)
            report_.line(true, "SRV " + r.name, joined(found));
        else if (!found || found->empty())
            report_.line(false, "SRV " + r.name, "should be " + r.data + " (found: " + joined(found) + ")");
        else
            report_.wrong("SRV " + r.name, "is " + joined(found) + ", should be " + r.data);
    }

    // A CNAME to the host, or A/AAAA records equal to the host's (an admin may prefer addresses).
    void cname(const Record& r) {
        const std::string target = without_dot(r.data);
        auto found = dns_.lookup(dns::RecordType::cname, r.name);
        if (found && !found->empty()) {
            if (std::find(found->begin(), found->end(), target) != found->end())
                report_.line(true, "CNAME " + r.name, target);
            else
                report_.wrong("CNAME " + r.name, "points at " + joined(found) + ", should be " + target);
            return;
        }
        std::vector<std::string> theirs, ours;
        for (auto type : {dns::RecordType::a, dns::RecordType::aaaa}) {
            auto a = dns_.lookup(type, r.name);
            if (a) theirs.insert(theirs.end(), a->begin(), a->end());
            auto b = dns_.lookup(type, target);
            if (b) ours.insert(ours.end(), b->begin(), b->end());
        }
        std::sort(theirs.begin(), theirs.end());
        std::sort(ours.begin(), ours.end());
        if (theirs.empty())
            report_.line(false, "CNAME " + r.name, "should point at " + target + " (found: no CNAME, no address)");
        else if (theirs == ours)
            report_.line(true, "CNAME " + r.name, "no CNAME, but the same addresses as " + target);
        else
            report_.wrong("CNAME " + r.name, "no CNAME, and its addresses are not those of " + target);
    }

    // SPF is evaluated, not compared: any record that lets our addresses send is right.
    void spf() {
        for (const auto& a : addresses) {
            mailauth::SpfRequest request;
            request.ip = a;
            request.sender = "postmaster@" + domain_;
            request.helo = to_lower(config_.hostname);
            auto spf = mailauth::check_host(dns_, request, domain_);
            std::string detail = fmt::format("{} for {}", mailauth::spf_result_name(spf.result), a);
            if (!spf.reason.empty()) detail += " (" + spf.reason + ")";
            if (spf.result == mailauth::SpfResult::pass)
                report_.line(true, "SPF " + domain_, detail);
            else if (spf.result == mailauth::SpfResult::none)
                report_.line(false, "SPF " + domain_, detail);
            else
                report_.wrong("SPF " + domain_, detail);
        }
    }

    void dkim(const Record& r) {
        const mailauth::StoredKey* key = nullptr;
        for (const auto& k : keys_)
            if (k.selector + "._domainkey." + domain_ == r.name) key = &k;
        auto answer = dns_.lookup(dns::RecordType::txt, r.name);
        auto ours = mail::dkim::parse_key_record(r.data);
        bool match = false, revoked = false;
        for (const auto& txt : answer ? *answer : std::vector<std::string>{}) {
            auto published = mail::dkim::parse_key_record(txt);
            if (published && ours && published->public_key == ours->public_key) {
                match = match || !published->revoked;
                revoked = revoked || published->revoked;
            }
        }
        const std::string file = key ? key->path.filename().string() : "";
        if (match)
            report_.line(true, "TXT " + r.name, "matches " + file);
        else if (revoked)
            report_.wrong("TXT " + r.name, "publishes " + file + " revoked (empty p=) while magpied signs with it");
        else if (!answer || answer->empty())
            report_.line(false, "TXT " + r.name, "(found: " + joined(answer) + ")");
        else
            report_.wrong("TXT " + r.name, "does not publish the public half of " + file);
    }

    void dmarc(const Record& r) {
        auto found = dns_.lookup(dns::RecordType::txt, r.name);
        auto records = starting_with(found, "v=DMARC1");
        if (records.empty()) {
            report_.line(false, "TXT " + r.name, "(found: " + joined(found) + ")");
        } else if (records.size() > 1) {
            report_.wrong("TXT " + r.name, "more than one v=DMARC1 record (RFC 7489 6.6.3: none is used)");
        } else if (auto parsed = mailauth::parse_dmarc_record(records[0]); !parsed) {
            report_.wrong("TXT " + r.name, "unusable: " + parsed.error().message);
        } else {
            report_.line(true, "TXT " + r.name, records[0]);
        }
    }

    // The id must be that of the policy magpied serves now ([mta_sts] mode, max_age, [server] hostname):
    // senders fetch the policy again only when the id changes (RFC 8461 3.1).
    void mta_sts(const Record& r) {
        const std::string want = r.data.substr(r.data.find("id=") + 3);
        auto found = dns_.lookup(dns::RecordType::txt, r.name);
        auto records = starting_with(found, "v=STSv1");
        if (records.empty()) {
            report_.line(false, "TXT " + r.name, "should be \"" + r.data + "\" (found: " + joined(found) + ")");
            return;
        }
        if (records.size() > 1) {
            report_.wrong("TXT " + r.name, "more than one v=STSv1 record (RFC 8461 3.1: senders use none)");
            return;
        }
        auto id = mailauth::parse_sts_record(records[0]);
        if (!id)
            report_.wrong("TXT " + r.name, "unusable: " + id.error().message);
        else if (*id != want)
            report_.wrong("TXT " + r.name,
                          fmt::format("id={} is not the id of the policy magpied serves (id={}: mode {}, "
                                      "max_age {}); publish \"{}\" so senders fetch it again",
                                      *id, want, config_.mta_sts.mode, config_.mta_sts.max_age, r.data));
        else
            report_.line(true, "TXT " + r.name, records[0] + " (the policy magpied serves)");
    }

    void tlsrpt(const Record& r) {
        auto found = dns_.lookup(dns::RecordType::txt, r.name);
        auto parsed = mailauth::select_tlsrpt_record(found ? *found : std::vector<std::string>{});
        if (parsed) {
            std::string rua;
            for (const auto& uri : parsed->rua) rua += (rua.empty() ? "" : ",") + uri;
            report_.line(true, "TXT " + r.name, "reports go to " + rua);
        } else if (parsed.error().code == Errc::not_found) {
            report_.line(false, "TXT " + r.name, "should be \"" + r.data + "\" (found: " + joined(found) + ")");
        } else {
            report_.wrong("TXT " + r.name, "unusable: " + parsed.error().message);
        }
    }

    // RFC 7672 2.2: a TLSA record counts only when the resolver validated it (the AD bit); one that does
    // not match the certificate makes DANE senders refuse to deliver, which is worse than none.
    void tlsa(const Record& r) {
        auto found = resolver_.lookup_secure_blocking(dns::RecordType::tlsa, r.name);
        std::vector<std::string> records = found ? found->records : std::vector<std::string>{};
        const bool match = std::find(records.begin(), records.end(), r.data) != records.end();
        if (records.empty()) {
            report_.line(false, "TLSA " + r.name,
                         "should be " + r.data + " (found: " + (found ? "no record" : found.error().message) + ")");
        } else if (!found->authenticated) {
            report_.wrong("TLSA " + r.name,
                          "is not DNSSEC-validated by the resolver (no AD bit): senders ignore it (RFC 7672 2.2)");
        } else if (!match) {
            std::string all;
            for (const auto& t : records) all += (all.empty() ? "" : " | ") + t;
            report_.wrong("TLSA " + r.name, "is " + all + ", not the key of " + config_.tls_certificate.string() +
                                                ": DANE senders will not deliver");
        } else {
            report_.line(true, "TLSA " + r.name, r.data + " (DNSSEC-validated)");
        }
    }

    dns::Resolver& resolver_;
    mailauth::Dns& dns_;
    CheckReport& report_;
    const server::Config& config_;
    const std::string& domain_;
    const std::vector<mailauth::StoredKey>& keys_;
};

}  // namespace

int print_dns_records(const server::Config& config, const std::string& domain_in,
                      const std::string& address) {
    const std::string domain = domain_argument(domain_in);
    const std::string host = to_lower(config.hostname);
    if (domain.empty()) {
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
    for (const auto& section : domain_records(config, domain, *keys)) {
        std::cout << section.comment;
        for (const auto& r : section.records) record(r.name, r.type, zone_data(r));
    }

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
    Checker checker(**resolver, dns, report, config, domain, *keys);

    // Addresses: the one given, else the host name's A and AAAA records in the DNS being checked.
    if (!address.empty()) {
        checker.addresses.push_back(address);
    } else {
        for (auto type : {dns::RecordType::a, dns::RecordType::aaaa}) {
            auto answer = dns.lookup(type, host);
            if (answer) checker.addresses.insert(checker.addresses.end(), answer->begin(), answer->end());
        }
        report.line(!checker.addresses.empty(), "A/AAAA " + host,
                    checker.addresses.empty() ? "no address" : "");
    }
    if (keys->empty()) report.line(false, "DKIM keys", "none yet: magpie dkim keygen " + domain);
    for (const auto& section : domain_records(config, domain, *keys))
        for (const auto& r : section.records) checker.check(r);

    // Reverse DNS, forward-confirmed: the address names the host, and the host has the address.
    for (const auto& a : checker.addresses) {
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
