#include "server/inbound_auth.h"

#include <chrono>
#include <random>

#include <fmt/format.h>

#include "base/time.h"
#include "dns/resolver.h"

namespace magpie::server {
namespace {

// mailauth::Dns over a dns::Resolver made for one evaluation, refusing lookups once the evaluation's time
// budget is spent: SPF's 10 terms with up to 10 MX names each could otherwise wait minutes on a slow zone.
class BoundedDns : public mailauth::Dns {
public:
    BoundedDns(std::unique_ptr<dns::Resolver> resolver, std::chrono::seconds budget)
        : resolver_(std::move(resolver)), deadline_(std::chrono::steady_clock::now() + budget) {}

    Result<std::vector<std::string>> lookup(dns::RecordType type, std::string_view name) override {
        if (!resolver_) return make_error(Errc::unavailable, "no resolver: " + resolver_error_);
        if (std::chrono::steady_clock::now() >= deadline_)
            return make_error(Errc::unavailable, "[mailauth] max_time spent before looking up " + std::string(name));
        return resolver_->lookup_blocking(type, name);
    }
    void set_resolver_error(std::string error) { resolver_error_ = std::move(error); }

private:
    std::unique_ptr<dns::Resolver> resolver_;
    std::chrono::steady_clock::time_point deadline_;
    std::string resolver_error_;
};

dns::ResolverConfig resolver_config(const Config& config) {
    const auto& m = config.mailauth;
    dns::ResolverConfig r;
    r.servers = m.resolver.empty() ? config.queue.resolver : m.resolver;
    r.tries = 2;
    r.timeout_ms = static_cast<int>(m.dns_timeout * 1000 / 2);
    return r;
}

unsigned dmarc_sample() {
    thread_local std::mt19937 rng{std::random_device{}()};
    return std::uniform_int_distribution<unsigned>(0, 99)(rng);
}

std::string summary_of(const mailauth::InboundVerdict& verdict, const MailauthConfig& m) {
    std::string out;
    if (m.spf) out += fmt::format("spf={} ", mailauth::spf_result_name(verdict.spf.result));
    if (m.dkim) {
        if (verdict.dkim.empty()) out += "dkim=none ";
        for (const auto& s : verdict.dkim)
            out += fmt::format("dkim={}({}) ", mail::dkim::status_name(s.status), s.domain);
    }
    if (m.dmarc)
        out += fmt::format("dmarc={} disposition={} ", mailauth::dmarc_result_name(verdict.dmarc.result),
                           mailauth::disposition_name(verdict.dmarc.disposition));
    if (!out.empty()) out.pop_back();
    return out;
}

}  // namespace

Result<std::unique_ptr<InboundAuthenticator>> InboundAuthenticator::create(const std::string& public_suffix_list) {
    auto psl = mailauth::PublicSuffixList::load(public_suffix_list);
    if (!psl) return psl.error();
    return std::unique_ptr<InboundAuthenticator>(new InboundAuthenticator(std::move(*psl)));
}

InboundDecision InboundAuthenticator::evaluate(const Config& config, const std::string& client_ip,
                                               const std::string& helo, const std::string& mail_from,
                                               std::string_view message) const {
    const auto& m = config.mailauth;
    // No check on: nothing to look up, so no resolver (c-ares reads resolv.conf at every channel made).
    Result<std::unique_ptr<dns::Resolver>> resolver = std::unique_ptr<dns::Resolver>();
    if (needs_dns(config)) resolver = dns::Resolver::create(resolver_config(config));
    BoundedDns dns(resolver ? std::move(*resolver) : nullptr, std::chrono::seconds(m.max_time));
    if (!resolver) dns.set_resolver_error(resolver.error().message);

    mailauth::InboundRequest request;
    request.authserv_id = config.hostname;
    request.client_ip = client_ip;
    request.helo = helo;
    request.mail_from = mail_from;
    request.now = static_cast<std::uint64_t>(unix_now());
    request.dmarc_sample = dmarc_sample();
    request.spf = m.spf;
    request.dkim = m.dkim;
    request.dmarc = m.dmarc;
    mailauth::InboundLimits limits;
    limits.spf.max_dns_mechanisms = static_cast<int>(m.max_dns_mechanisms);
    limits.spf.max_void_lookups = static_cast<int>(m.max_void_lookups);
    limits.dkim.max_signatures = m.max_signatures;
    auto verdict = mailauth::authenticate_inbound(dns, psl_, request, message, limits);

    InboundDecision decision;
    decision.header = verdict.header;
    if (!verdict.forged.empty()) {
        decision.message = mailauth::remove_ranges(message, verdict.forged);
        decision.rewritten = true;
    }
    decision.summary = summary_of(verdict, m);
    if (m.dmarc_policy == "enforce" && verdict.dmarc.result == mailauth::DmarcResult::fail) {
        // RFC 7489 6.6.4 / 10.3: the policy's disposition, pct= already applied by evaluate_dmarc.
        if (verdict.dmarc.disposition == mailauth::Disposition::reject) {
            decision.action = InboundDecision::Action::reject;
            decision.reason = fmt::format("DMARC policy of {} rejects this message", verdict.dmarc.record_domain);
        } else if (verdict.dmarc.disposition == mailauth::Disposition::quarantine) {
            decision.action = InboundDecision::Action::junk;
            decision.reason = fmt::format("DMARC policy of {} quarantines this message", verdict.dmarc.record_domain);
        }
    }
    return decision;
}

}  // namespace magpie::server
