#include "cli/tlsrpt.h"

#include <fmt/format.h>

#include <ctime>
#include <iostream>
#include <map>

#include "base/strings.h"
#include "base/time.h"
#include "delivery/store_queue.h"
#include "delivery/wake.h"
#include "dns/resolver.h"
#include "mailauth/dkim_signer.h"
#include "mailauth/tlsrpt.h"
#include "server/store_factory.h"

namespace magpie::cli {
namespace {

int fail(const std::string& message) {
    std::cerr << "magpie: " << message << "\n";
    return 1;
}

// The UTC day's first second, from "YYYY-MM-DD".
std::optional<std::int64_t> day_start(const std::string& day) {
    std::tm tm{};
    if (day.size() != 10 || !strptime(day.c_str(), "%Y-%m-%d", &tm)) return std::nullopt;
    return static_cast<std::int64_t>(timegm(&tm));
}

std::string yesterday() {
    std::time_t t = std::time(nullptr) - 86400;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char out[16];
    std::strftime(out, sizeof out, "%Y-%m-%d", &tm);
    return out;
}

// The mailto: addresses of the domain's one TLSRPTv1 record (RFC 8460 3); https: ones are named in `skipped`.
Result<std::vector<std::string>> report_addresses(dns::Resolver& resolver, const std::string& domain,
                                                  std::vector<std::string>& skipped) {
    auto txt = resolver.lookup_blocking(dns::RecordType::txt, "_smtp._tls." + domain);
    if (!txt) return txt.error();
    auto record = mailauth::select_tlsrpt_record(*txt);
    if (!record) return record.error();
    std::vector<std::string> out;
    for (const auto& uri : record->rua) {
        if (istarts_with(uri, "mailto:")) {
            // RFC 6068: mailto:addr[?headers].
            std::string address = uri.substr(7, uri.find('?') == std::string::npos ? std::string::npos : uri.find('?') - 7);
            out.push_back(address);
        } else {
            skipped.push_back(uri);
        }
    }
    return out;
}

}  // namespace

int tlsrpt_command(const server::Config& config, const TlsRptOptions& options) {
    const std::string day = options.day.empty() ? yesterday() : options.day;
    auto start = day_start(day);
    if (!start) return fail("a day is YYYY-MM-DD: " + day);
    std::size_t skipped_lines = 0;
    auto results = mailauth::read_tls_results(config.data_dir.string(), day, &skipped_lines);
    if (!results) return fail(results.error().message);
    if (skipped_lines > 0) std::cerr << "magpie: " << skipped_lines << " unreadable result line(s) skipped\n";
    std::map<std::string, std::vector<mailauth::TlsSessionResult>> by_domain;
    for (auto& r : *results)
        if (options.domain.empty() || iequals(r.policy_domain, options.domain))
            by_domain[r.policy_domain].push_back(std::move(r));
    if (by_domain.empty()) {
        std::cerr << "magpie: no TLS results recorded for " << day << "\n";
        return 0;
    }
    const std::string host = to_lower(config.hostname);
    const std::string from = options.from.empty() ? "postmaster@" + host : options.from;

    std::unique_ptr<dns::Resolver> resolver;
    std::unique_ptr<store::Store> store;
    std::optional<delivery::StoreQueue> queue;
    std::optional<mailauth::DkimSigner> signer;
    if (options.send) {
        dns::ResolverConfig rc;
        rc.servers = options.dns_server.empty() ? config.queue.resolver : options.dns_server;
        auto created = dns::Resolver::create(rc);
        if (!created) return fail(created.error().message);
        resolver = std::move(*created);
        auto opened = server::open_store(config, false);
        if (!opened) return fail(opened.error().message);
        store = std::move(*opened);
        queue.emplace(*store);
        auto loaded = mailauth::DkimSigner::load(config.data_dir);
        if (!loaded) return fail(loaded.error().message);
        signer.emplace(std::move(*loaded));
    }

    int status = 0;
    std::size_t queued = 0;
    for (const auto& [domain, domain_results] : by_domain) {
        // The same day, domain and submitter give the same id: a report sent twice is recognisably one.
        mailauth::TlsReportMeta meta{host, from, fmt::format("{}_{}@{}", day, domain, host), *start, *start + 86399};
        std::string report = mailauth::tlsrpt_report(meta, domain, domain_results);
        if (!options.send) {
            std::cout << report << "\n";
            continue;
        }
        std::vector<std::string> https;
        auto addresses = report_addresses(*resolver, domain, https);
        for (const auto& uri : https)
            std::cerr << fmt::format("magpie: {}: {} not sent: HTTPS submission (RFC 8460 5.4) is not done here\n",
                                     domain, uri);
        if (!addresses) {
            std::cerr << fmt::format("magpie: {}: no report sent: _smtp._tls.{}: {}\n", domain, domain,
                                     addresses.error().message);
            status = addresses.error().code == Errc::not_found ? status : 1;
            continue;
        }
        for (const auto& to : *addresses) {
            const std::int64_t now = unix_now();
            std::string message = mailauth::tlsrpt_message(meta, domain, host, from, to, report,
                                                           rfc5322_date(now),
                                                           fmt::format("<{}.{}>", meta.report_id, now));
            // Signed like a user's mail when the From domain has keys (RFC 8460 5.3 asks for DKIM).
            auto signature = signer->sign(message, static_cast<std::uint64_t>(now));
            if (signature) message = *signature + message;
            delivery::NewEntry entry;
            entry.reverse_path = from;
            entry.content = std::move(message);
            entry.queued_at = now;
            entry.recipients.push_back(delivery::NewRecipient{to, "", ""});
            auto id = queue->enqueue(entry);
            if (!id) {
                std::cerr << fmt::format("magpie: {}: cannot queue the report to {}: {}\n", domain, to,
                                         id.error().message);
                status = 1;
                continue;
            }
            ++queued;
            std::cout << fmt::format("queued {} report for {} to {} (entry {})\n", day, domain, to, *id);
        }
    }
    if (queued > 0) delivery::notify_queue_changed(config.data_dir);
    return status;
}

}  // namespace magpie::cli
