// SPF (RFC 7208): may this client address send mail for this domain? check_host() of section 4 with every
// mechanism (all, include, a, mx, ptr, ip4, ip6, exists) and modifier (redirect, exp), macros (section 7),
// and the processing limits of 4.6.4: at most 10 DNS-querying terms, 2 void lookups, 10 names per MX and
// PTR. DNS goes through mailauth::Dns; nothing else is touched (the time for %{t} is passed in).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "mailauth/dns.h"

namespace magpie::mailauth {

enum class SpfResult { none, neutral, pass, fail, softfail, temperror, permerror };
const char* spf_result_name(SpfResult result);  // RFC 7208 2.6 / RFC 8601 2.7.2 spelling

struct SpfLimits {
    int max_dns_mechanisms = 10;           // include, a, mx, ptr, exists, redirect (4.6.4)
    int max_void_lookups = 2;              // lookups answered NXDOMAIN or NODATA (4.6.4)
    int max_mx_names = 10;                 // MX hosts looked up per "mx" (4.6.4)
    int max_ptr_names = 10;                // PTR names validated per "ptr" or %{p} (4.6.4)
    std::size_t max_record_octets = 4096;  // one SPF TXT record; longer is permerror
};

struct SpfRequest {
    std::string ip;         // the SMTP client's address, "192.0.2.1" or "2001:db8::1"
    std::string sender;     // MAIL FROM address; empty (null reverse path) means postmaster@helo (2.4)
    std::string helo;       // EHLO/HELO argument
    std::string receiver;   // our host name, for %{r} in explanations
    std::uint64_t now = 0;  // seconds since the epoch, for %{t}
};

struct SpfOutcome {
    SpfResult result = SpfResult::none;
    std::string domain;       // the domain checked (from MAIL FROM, or HELO)
    std::string identity;     // "mailfrom" or "helo" (RFC 8601 smtp.mailfrom / smtp.helo)
    std::string mechanism;    // the term that decided, e.g. "-all", "include:_spf.example.com"
    std::string explanation;  // exp= text on fail, expanded; empty otherwise
    std::string reason;       // why a temperror/permerror/none, for logs and A-R comments
    int dns_mechanisms = 0;   // counted against max_dns_mechanisms
    int void_lookups = 0;
};

// check_host(ip, domain, sender) of RFC 7208 4 for the given domain.
SpfOutcome check_host(Dns& dns, const SpfRequest& request, std::string_view domain,
                      const SpfLimits& limits = {});

// The MAIL FROM identity (2.4): the sender's domain, or with a null sender the HELO identity as
// postmaster@helo.
SpfOutcome check_mail_from(Dns& dns, const SpfRequest& request, const SpfLimits& limits = {});
// The HELO identity (2.3), with sender postmaster@helo.
SpfOutcome check_helo(Dns& dns, const SpfRequest& request, const SpfLimits& limits = {});

// Expands an SPF macro-string (RFC 7208 7) for `domain`; exposed for tests. Errors: invalid_argument
// (permerror) for a bad macro. `explanation` allows c, r and t.
Result<std::string> expand_macros(Dns& dns, const SpfRequest& request, std::string_view domain,
                                  std::string_view text, bool explanation, const SpfLimits& limits = {});

}  // namespace magpie::mailauth
