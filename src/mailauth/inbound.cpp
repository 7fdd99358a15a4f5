#include "mailauth/inbound.h"

namespace magpie::mailauth {

InboundVerdict authenticate_inbound(Dns& dns, const PublicSuffixList& psl, const InboundRequest& request,
                                    std::string_view message, const InboundLimits& limits) {
    InboundVerdict verdict;
    SpfRequest spf_request;
    spf_request.ip = request.client_ip;
    spf_request.sender = request.mail_from;
    spf_request.helo = request.helo;
    spf_request.receiver = request.authserv_id;
    spf_request.now = request.now;
    if (request.spf) {
        verdict.spf = check_mail_from(dns, spf_request, limits.spf);
        verdict.spf_helo = check_helo(dns, spf_request, limits.spf);
    }
    if (request.dkim) verdict.dkim = mail::dkim::verify(message, dns.dkim_key_lookup(), request.now, limits.dkim);

    DmarcInput dmarc;
    auto from = from_domain(message);
    if (!request.dmarc) {
        // not evaluated: result none, no disposition
    } else if (from) {
        dmarc.from_domain = *from;
        dmarc.spf = verdict.spf.result;
        dmarc.spf_domain = verdict.spf.domain;
        dmarc.dkim = verdict.dkim;
        dmarc.sample = request.dmarc_sample;
        verdict.dmarc = evaluate_dmarc(dns, psl, dmarc);
    } else {
        verdict.dmarc.result = DmarcResult::permerror;
        verdict.dmarc.reason = from.error().message;
    }

    std::vector<MethodResult> results;
    if (request.spf) {
        results.push_back(spf_method_result(verdict.spf));
        if (!request.mail_from.empty()) results.push_back(spf_method_result(verdict.spf_helo));
    }
    if (request.dkim) {
        if (verdict.dkim.empty()) results.push_back(dkim_none_result());
        for (const auto& signature : verdict.dkim) results.push_back(dkim_method_result(signature));
    }
    if (request.dmarc) results.push_back(dmarc_method_result(verdict.dmarc));
    verdict.header = build_authentication_results(request.authserv_id, results);
    verdict.forged = forged_authentication_results(message, request.authserv_id);
    return verdict;
}

std::string apply_verdict(std::string_view message, const InboundVerdict& verdict) {
    return verdict.header + remove_ranges(message, verdict.forged);
}

}  // namespace magpie::mailauth
