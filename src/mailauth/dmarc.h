// DMARC (RFC 7489): the From domain's policy record (at _dmarc.<From domain>, else at _dmarc.<its
// organizational domain>), identifier alignment of SPF and DKIM with the From domain (strict or relaxed),
// the result, and what the policy asks done with a failing message (p=, sp= for subdomains, pct=).
// Evaluation only: the caller decides from its own configuration whether to act on the disposition.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mail/dkim.h"
#include "mailauth/dns.h"
#include "mailauth/public_suffix.h"
#include "mailauth/spf.h"

namespace magpie::mailauth {

enum class DmarcPolicy { none, quarantine, reject };
enum class Alignment { relaxed, strict };
const char* dmarc_policy_name(DmarcPolicy policy);

struct DmarcRecord {
    DmarcPolicy policy = DmarcPolicy::none;         // p=
    std::optional<DmarcPolicy> subdomain_policy;    // sp=
    Alignment dkim_alignment = Alignment::relaxed;  // adkim=
    Alignment spf_alignment = Alignment::relaxed;   // aspf=
    unsigned percent = 100;                         // pct=, 0..100
    std::vector<std::string> aggregate_reports;     // rua= URIs
    std::vector<std::string> failure_reports;       // ruf= URIs
};

// RFC 7489 6.3 and 6.6.3: v=DMARC1 first; p= required, except that a record with a usable rua= and a
// missing or bad p= counts as p=none; bad sp=, adkim=, aspf=, pct= fall back to their defaults. Errors
// (invalid_argument): not a DMARC record, or no usable p= and no rua=.
Result<DmarcRecord> parse_dmarc_record(std::string_view text);

enum class DmarcResult { none, pass, fail, temperror, permerror };
enum class Disposition { none, quarantine, reject };
const char* dmarc_result_name(DmarcResult result);
const char* disposition_name(Disposition disposition);

struct DmarcInput {
    std::string from_domain;  // RFC5322.From domain (see from_domain() below)
    SpfResult spf = SpfResult::none;
    std::string spf_domain;  // the domain SPF checked (MAIL FROM's, or HELO's for a null sender)
    std::vector<mail::dkim::VerifyResult> dkim;
    unsigned sample = 0;  // the caller's uniform draw in 0..99, compared with pct= (no randomness here)
};

struct DmarcOutcome {
    DmarcResult result = DmarcResult::none;
    Disposition disposition = Disposition::none;  // what the policy asks for this message
    DmarcPolicy policy = DmarcPolicy::none;       // p= or sp=, whichever applied
    std::optional<DmarcRecord> record;
    std::string from_domain;
    std::string organizational_domain;
    std::string record_domain;  // where the record was found: the From domain or its organizational one
    bool spf_aligned = false;
    bool dkim_aligned = false;
    std::string dkim_domain;   // d= of the aligned passing signature
    bool sampled_out = false;  // failed, but pct= spared it the full policy
    std::string reason;        // for logs and the A-R comment
};

DmarcOutcome evaluate_dmarc(Dns& dns, const PublicSuffixList& psl, const DmarcInput& input);

// The RFC5322.From domain DMARC judges (6.6.1): the domain of the one mailbox of the one From field.
// Errors (invalid_argument): no From, several From fields or mailboxes, a mailbox without a domain.
Result<std::string> from_domain(std::string_view message);

}  // namespace magpie::mailauth
