// The Authentication-Results header field (RFC 8601): what this server found (SPF, DKIM, DMARC) written
// for the mail user agent and filters, and the removal of fields from outside that claim to be ours (5:
// a field with our authserv-id that we did not add is a forgery and must go before ours is added).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mail/dkim.h"
#include "mailauth/dmarc.h"
#include "mailauth/spf.h"

namespace magpie::mailauth {

// One resinfo (2.2): "method=result reason=\"...\" ptype.property=value ...".
struct MethodResult {
    std::string method;  // "spf", "dkim", "dmarc"
    std::string result;  // "pass", "fail", ... (2.7)
    std::string reason;  // optional free text, written as reason="..."
    std::vector<std::pair<std::string, std::string>> properties;  // {"smtp.mailfrom", "example.com"}
};

MethodResult spf_method_result(const SpfOutcome& outcome);                // smtp.mailfrom= or smtp.helo=
MethodResult dkim_method_result(const mail::dkim::VerifyResult& result);  // header.d/s/i/a/b (RFC 6008)
MethodResult dkim_none_result();                                          // dkim=none: unsigned
MethodResult dmarc_method_result(const DmarcOutcome& outcome);            // header.from, policy.dmarc

// The whole field, folded one resinfo a line, ending with CRLF:
//   "Authentication-Results: mx.example.org;\r\n\tspf=pass smtp.mailfrom=example.com\r\n"
// No results: "Authentication-Results: mx.example.org; none" (2.2). Property values and reasons are
// quoted where a token would not do; control characters and non-ASCII in them become '?'.
std::string build_authentication_results(std::string_view authserv_id,
                                         const std::vector<MethodResult>& results);

// The authserv-id of an Authentication-Results value: its first token, comments skipped; "" if none.
std::string authserv_id_of(std::string_view value);

// Byte ranges [offset, offset + length) of the top-level header's Authentication-Results fields whose
// authserv-id equals ours (ASCII case-insensitive), in message order.
std::vector<std::pair<std::size_t, std::size_t>> forged_authentication_results(std::string_view message,
                                                                               std::string_view authserv_id);

// `message` without those ranges.
std::string remove_ranges(std::string_view message,
                          const std::vector<std::pair<std::size_t, std::size_t>>& ranges);

}  // namespace magpie::mailauth
