#include "mailauth/dmarc.h"

#include "base/strings.h"
#include "mail/address.h"
#include "mail/dkim_signature.h"
#include "mail/message.h"

namespace magpie::mailauth {

namespace {

std::optional<DmarcPolicy> policy_of(std::string_view text) {
    if (iequals(text, "none")) return DmarcPolicy::none;
    if (iequals(text, "quarantine")) return DmarcPolicy::quarantine;
    if (iequals(text, "reject")) return DmarcPolicy::reject;
    return std::nullopt;
}

std::vector<std::string> uri_list(std::string_view text) {
    std::vector<std::string> out;
    for (std::string_view uri : split(text, ','))
        if (!trim(uri).empty()) out.emplace_back(trim(uri));
    return out;
}

bool is_dmarc_record(std::string_view txt) {
    std::string_view t = trim(txt);
    if (!t.starts_with("v")) return false;
    t = trim(t.substr(1));
    if (!t.starts_with("=")) return false;
    t = trim(t.substr(1));
    return t.starts_with("DMARC1") && (t.size() == 6 || t[6] == ';' || t[6] == ' ' || t[6] == '\t');
}

bool aligned(const PublicSuffixList& psl, std::string_view a, std::string_view b, Alignment mode) {
    if (a.empty() || b.empty()) return false;
    if (mode == Alignment::strict) return iequals(a, b);
    return psl.organizational_domain(a) == psl.organizational_domain(b);
}

// 6.6.3: the record at one name. nullopt: nothing usable there; error: temporary DNS failure.
struct Discovered {
    std::optional<DmarcRecord> record;
    bool malformed = false;  // v=DMARC1 records were there, none usable
};

Result<Discovered> discover_at(Dns& dns, const std::string& domain) {
    Discovered out;
    auto answer = dns.lookup(RecordType::txt, "_dmarc." + domain);
    if (!answer) {
        if (answer.error().code == Errc::not_found || answer.error().code == Errc::invalid_argument)
            return out;
        return answer.error();
    }
    std::vector<DmarcRecord> records;
    for (const auto& txt : *answer) {
        if (!is_dmarc_record(txt)) continue;
        auto record = parse_dmarc_record(txt);
        if (record)
            records.push_back(std::move(*record));
        else
            out.malformed = true;
    }
    if (records.size() == 1) out.record = std::move(records[0]);
    // Several records: "policy discovery terminates" (6.6.3) and no policy applies.
    if (records.size() > 1) out.malformed = true;
    return out;
}

}  // namespace

const char* dmarc_policy_name(DmarcPolicy policy) {
    switch (policy) {
        case DmarcPolicy::none:
            return "none";
        case DmarcPolicy::quarantine:
            return "quarantine";
        case DmarcPolicy::reject:
            return "reject";
    }
    return "none";
}

const char* dmarc_result_name(DmarcResult result) {
    switch (result) {
        case DmarcResult::none:
            return "none";
        case DmarcResult::pass:
            return "pass";
        case DmarcResult::fail:
            return "fail";
        case DmarcResult::temperror:
            return "temperror";
        case DmarcResult::permerror:
            return "permerror";
    }
    return "none";
}

const char* disposition_name(Disposition disposition) {
    switch (disposition) {
        case Disposition::none:
            return "none";
        case Disposition::quarantine:
            return "quarantine";
        case Disposition::reject:
            return "reject";
    }
    return "none";
}

Result<DmarcRecord> parse_dmarc_record(std::string_view text) {
    if (!is_dmarc_record(text)) return make_error(Errc::invalid_argument, "not a DMARC record");
    auto tags = mail::dkim::parse_tag_list(text);
    if (!tags) return tags.error();
    DmarcRecord record;
    std::optional<DmarcPolicy> policy;
    for (const auto& [name, value] : *tags) {
        std::string tag = to_lower(name);
        if (tag == "p") {
            policy = policy_of(value);
        } else if (tag == "sp") {
            record.subdomain_policy = policy_of(value);
        } else if (tag == "adkim" || tag == "aspf") {
            Alignment mode = iequals(value, "s") ? Alignment::strict : Alignment::relaxed;
            (tag == "adkim" ? record.dkim_alignment : record.spf_alignment) = mode;
        } else if (tag == "pct") {
            auto pct = parse_uint(value);
            if (pct && *pct <= 100) record.percent = static_cast<unsigned>(*pct);
        } else if (tag == "rua") {
            record.aggregate_reports = uri_list(value);
        } else if (tag == "ruf") {
            record.failure_reports = uri_list(value);
        }
    }
    if (policy) {
        record.policy = *policy;
    } else if (record.aggregate_reports.empty()) {
        return make_error(Errc::invalid_argument, "DMARC record without a valid p=");
    }  // else 6.6.3 step 6: monitoring only, p=none
    return record;
}

DmarcOutcome evaluate_dmarc(Dns& dns, const PublicSuffixList& psl, const DmarcInput& input) {
    DmarcOutcome out;
    out.from_domain = to_lower(input.from_domain);
    if (out.from_domain.ends_with('.')) out.from_domain.pop_back();
    out.organizational_domain = psl.organizational_domain(out.from_domain);
    if (out.from_domain.empty()) {
        out.result = DmarcResult::permerror;
        out.reason = "no From domain";
        return out;
    }

    auto found = discover_at(dns, out.from_domain);
    bool at_organizational = false;
    if (found && !found->record && !found->malformed && out.organizational_domain != out.from_domain) {
        found = discover_at(dns, out.organizational_domain);
        at_organizational = true;
    }
    if (!found) {
        out.result = DmarcResult::temperror;
        out.reason = found.error().message;
        return out;
    }
    if (!found->record) {
        out.result = found->malformed ? DmarcResult::permerror : DmarcResult::none;
        out.reason = found->malformed ? "unusable DMARC record" : "no DMARC record";
        return out;
    }
    out.record = found->record;
    out.record_domain = at_organizational ? out.organizational_domain : out.from_domain;
    const DmarcRecord& record = *out.record;
    out.policy = at_organizational && record.subdomain_policy ? *record.subdomain_policy : record.policy;

    out.spf_aligned =
        input.spf == SpfResult::pass && aligned(psl, input.spf_domain, out.from_domain, record.spf_alignment);
    for (const auto& signature : input.dkim) {
        if (signature.status == mail::dkim::Status::pass &&
            aligned(psl, signature.domain, out.from_domain, record.dkim_alignment)) {
            out.dkim_aligned = true;
            out.dkim_domain = signature.domain;
            break;
        }
    }
    if (out.spf_aligned || out.dkim_aligned) {
        out.result = DmarcResult::pass;
        return out;
    }
    out.result = DmarcResult::fail;
    out.reason = "neither SPF nor DKIM passed aligned with " + out.from_domain;
    out.disposition = out.policy == DmarcPolicy::reject       ? Disposition::reject
                      : out.policy == DmarcPolicy::quarantine ? Disposition::quarantine
                                                              : Disposition::none;
    // 6.6.4: a message outside the pct= sample gets the next milder policy.
    if (out.disposition != Disposition::none && input.sample >= record.percent) {
        out.sampled_out = true;
        out.disposition =
            out.disposition == Disposition::reject ? Disposition::quarantine : Disposition::none;
    }
    return out;
}

Result<std::string> from_domain(std::string_view message) {
    std::vector<mail::HeaderField> fields;
    mail::scan_header(message, 0, message.size(), mail::ParseLimits{}, fields);
    const mail::HeaderField* from = nullptr;
    for (const auto& field : fields) {
        if (!iequals(field.name, "From")) continue;
        if (from) return make_error(Errc::invalid_argument, "more than one From field");
        from = &field;
    }
    if (!from) return make_error(Errc::invalid_argument, "no From field");
    auto boxes = mail::mailboxes(mail::parse_address_list(from->raw_value));
    if (boxes.size() != 1) return make_error(Errc::invalid_argument, "From must hold exactly one mailbox");
    if (boxes[0].domain.empty() || boxes[0].domain.front() == '[')
        return make_error(Errc::invalid_argument, "From mailbox has no domain name");
    std::string domain = to_lower(boxes[0].domain);
    if (domain.ends_with('.')) domain.pop_back();
    return domain;
}

}  // namespace magpie::mailauth
