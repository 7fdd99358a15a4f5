// Everything the SMTP receive path asks about one incoming message, in one call: SPF of MAIL FROM (and
// HELO), every DKIM signature, DMARC of the From domain, and the Authentication-Results field to add once
// forged ones are removed. Blocking DNS through mailauth::Dns: run it on a worker thread after DATA, before
// the message is handed to the store.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mail/dkim.h"
#include "mailauth/authentication_results.h"
#include "mailauth/dmarc.h"
#include "mailauth/spf.h"

namespace magpie::mailauth {

struct InboundRequest {
    std::string authserv_id;  // our name in Authentication-Results ([server] hostname)
    std::string client_ip;    // the SMTP peer
    std::string helo;
    std::string mail_from;      // reverse path without brackets; empty for <>
    std::uint64_t now = 0;      // seconds since the epoch (DKIM t=/x=, SPF %{t})
    unsigned dmarc_sample = 0;  // uniform in 0..99, for pct=
    // Which evaluations run ([mailauth] spf/dkim/dmarc). One turned off is left out of the field; DMARC
    // then sees SPF "none" or no signatures, so turning SPF or DKIM off weakens DMARC, never strengthens it.
    bool spf = true;
    bool dkim = true;
    bool dmarc = true;
};

struct InboundLimits {
    SpfLimits spf;
    mail::dkim::Limits dkim;
};

struct InboundVerdict {
    SpfOutcome spf;       // MAIL FROM identity (HELO's when the sender is <>); none when not evaluated
    SpfOutcome spf_helo;  // HELO identity, recorded alongside
    std::vector<mail::dkim::VerifyResult> dkim;
    DmarcOutcome dmarc;  // result none when not evaluated
    std::string header;  // "Authentication-Results: ...\r\n" to put on top
    std::vector<std::pair<std::size_t, std::size_t>>
        forged;  // fields to drop (forged_authentication_results)
};

InboundVerdict authenticate_inbound(Dns& dns, const PublicSuffixList& psl, const InboundRequest& request,
                                    std::string_view message, const InboundLimits& limits = {});

// The message as it should be stored: our field first, forged ones removed.
std::string apply_verdict(std::string_view message, const InboundVerdict& verdict);

}  // namespace magpie::mailauth
