#include "mailauth/authentication_results.h"

#include "base/strings.h"
#include "mail/message.h"

namespace magpie::mailauth {

namespace {

// RFC 2045 token characters: printable ASCII without SP and tspecials.
bool is_token_char(char c) {
    return c > 0x20 && c < 0x7f && std::string_view("()<>@,;:\\\"/[]?=").find(c) == std::string_view::npos;
}

std::string sanitize(std::string_view text) {
    std::string out;
    for (char c : text) {
        auto u = static_cast<unsigned char>(c);
        out += (u < 0x20 || u >= 0x7f) ? '?' : c;
    }
    return out;
}

std::string quoted(std::string_view text) {
    std::string out = "\"";
    for (char c : sanitize(text)) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

// pvalue (2.2): a token, an address "local@domain" or domain, or else a quoted-string.
std::string pvalue(std::string_view value) {
    if (value.empty()) return "\"\"";
    bool token = true;
    int ats = 0;
    for (char c : value) {
        if (c == '@')
            ++ats;
        else if (!is_token_char(c))
            token = false;
    }
    if (token && ats <= 1 && value.back() != '@') return std::string(value);
    return quoted(value);
}

}  // namespace

MethodResult spf_method_result(const SpfOutcome& outcome) {
    MethodResult r{"spf", spf_result_name(outcome.result), {}, {}};
    if (outcome.result == SpfResult::temperror || outcome.result == SpfResult::permerror)
        r.reason = outcome.reason;
    r.properties.emplace_back(outcome.identity == "helo" ? "smtp.helo" : "smtp.mailfrom", outcome.domain);
    return r;
}

MethodResult dkim_method_result(const mail::dkim::VerifyResult& result) {
    MethodResult r{"dkim", mail::dkim::status_name(result.status), result.reason, {}};
    if (!result.domain.empty()) {
        r.properties.emplace_back("header.d", result.domain);
        r.properties.emplace_back("header.s", result.selector);
        r.properties.emplace_back("header.a", mail::dkim::algorithm_name(result.algorithm));
        if (!result.b_prefix.empty()) r.properties.emplace_back("header.b", result.b_prefix);
    }
    return r;
}

MethodResult dkim_none_result() {
    return MethodResult{"dkim", "none", {}, {}};
}

MethodResult dmarc_method_result(const DmarcOutcome& outcome) {
    MethodResult r{"dmarc", dmarc_result_name(outcome.result), {}, {}};
    if (outcome.result == DmarcResult::fail) {
        r.reason = std::string("p=") + dmarc_policy_name(outcome.policy) +
                   " dis=" + disposition_name(outcome.disposition) + (outcome.sampled_out ? " (pct)" : "");
    } else if (outcome.result == DmarcResult::temperror || outcome.result == DmarcResult::permerror) {
        r.reason = outcome.reason;
    }
    if (!outcome.from_domain.empty()) r.properties.emplace_back("header.from", outcome.from_domain);
    return r;
}

std::string build_authentication_results(std::string_view authserv_id,
                                         const std::vector<MethodResult>& results) {
    std::string out = "Authentication-Results: " + sanitize(authserv_id);
    if (results.empty()) return out + "; none\r\n";
    for (const auto& r : results) {
        out += ";\r\n\t" + sanitize(r.method) + "=" + sanitize(r.result);
        if (!r.reason.empty()) out += " reason=" + quoted(r.reason);
        for (const auto& [name, value] : r.properties) out += " " + sanitize(name) + "=" + pvalue(value);
    }
    return out + "\r\n";
}

std::string authserv_id_of(std::string_view value) {
    std::size_t i = 0;
    int depth = 0;
    // Skip CFWS: white space, line ends and (possibly nested) comments.
    while (i < value.size()) {
        char c = value[i];
        if (depth > 0) {
            if (c == '\\')
                ++i;
            else if (c == '(')
                ++depth;
            else if (c == ')')
                --depth;
            ++i;
            continue;
        }
        if (c == '(') {
            ++depth;
            ++i;
        } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            ++i;
        } else {
            break;
        }
    }
    std::size_t end = i;
    while (end < value.size() && value[end] != ';' && value[end] != '(' && value[end] != ' ' &&
           value[end] != '\t' && value[end] != '\r' && value[end] != '\n')
        ++end;
    return std::string(value.substr(i, end - i));
}

std::vector<std::pair<std::size_t, std::size_t>> forged_authentication_results(std::string_view message,
                                                                               std::string_view authserv_id) {
    std::vector<mail::HeaderField> fields;
    mail::scan_header(message, 0, message.size(), mail::ParseLimits{}, fields);
    std::vector<std::pair<std::size_t, std::size_t>> out;
    for (const auto& field : fields) {
        if (iequals(field.name, "Authentication-Results") &&
            iequals(authserv_id_of(field.raw_value), authserv_id))
            out.emplace_back(field.offset, field.length);
    }
    return out;
}

std::string remove_ranges(std::string_view message,
                          const std::vector<std::pair<std::size_t, std::size_t>>& ranges) {
    std::string out;
    out.reserve(message.size());
    std::size_t pos = 0;
    for (const auto& [offset, length] : ranges) {
        if (offset < pos || offset > message.size()) continue;
        out.append(message.substr(pos, offset - pos));
        pos = std::min(message.size(), offset + length);
    }
    out.append(message.substr(pos));
    return out;
}

}  // namespace magpie::mailauth
