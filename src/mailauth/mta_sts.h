// MTA-STS (RFC 8461): a recipient domain's promise that its MX hosts take mail over TLS with certificates
// valid for their names. Sans-IO: the TXT record (3.1) and the policy file (3.2) parsed, MX matching (4.1),
// the policy this server publishes for its own domains, and the cache entry kept between deliveries (5.1).
// Fetching (HTTPS, 3.3) and the cache file are the server's (src/server/mta_sts_fetch.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace magpie::mailauth {

enum class StsMode { enforce, testing, none };
const char* sts_mode_name(StsMode mode);  // "enforce", "testing", "none"
StsMode sts_mode_from_name(std::string_view name);  // anything but "enforce" or "testing" is none

struct StsPolicy {
    StsMode mode = StsMode::none;
    std::vector<std::string> mx;  // lower case patterns: "mx.example.com" or "*.example.com"
    std::uint32_t max_age = 0;    // seconds, at most 31557600 (3.2)
};

// "v=STSv1; id=20261129T1;" -> the id (1 to 32 letters and digits). Errors (invalid_argument): not
// STSv1 first, no id or a bad one. Unknown fields are ignored (3.1).
Result<std::string> parse_sts_record(std::string_view txt);

// The policy file: "key: value" lines ended by CRLF or LF; version STSv1, mode, max_age required, mx
// required (at least once) unless mode is none; unknown keys ignored; at most kMaxPolicyOctets.
// Errors (invalid_argument) name the problem.
inline constexpr std::size_t kMaxPolicyOctets = 64 * 1024;  // 3.3: senders may refuse larger bodies
Result<StsPolicy> parse_sts_policy(std::string_view text);

// 4.1: an MX host name matches a pattern exactly, or "*.example.com" matches one label more ("a.example.com",
// not "a.b.example.com" nor "example.com"). Case-insensitive, trailing dots ignored.
bool sts_mx_matches(const StsPolicy& policy, std::string_view host);

// The policy this server serves at https://mta-sts.DOMAIN/.well-known/mta-sts.txt for its domains, and the
// id for the _mta-sts TXT record: the first 16 hex digits of its SHA-256, so the id changes exactly when
// the policy does (3.1).
std::string sts_policy_text(StsMode mode, const std::vector<std::string>& mx_hosts, std::uint32_t max_age);
std::string sts_policy_id(std::string_view policy_text);

// A fetched policy as remembered (5.1): the record id it was fetched under, when, and its text.
struct CachedStsPolicy {
    std::string id;
    std::int64_t fetched_at = 0;  // seconds since the epoch
    std::string text;
    StsPolicy policy;
    bool fresh(std::int64_t now) const { return now < fetched_at + static_cast<std::int64_t>(policy.max_age); }
};
// "id fetched_at\n" then the policy text. parse_cached_sts_policy errors: invalid_argument (a damaged entry
// is ignored by the caller and fetched again).
std::string serialize_cached_sts_policy(const CachedStsPolicy& cached);
Result<CachedStsPolicy> parse_cached_sts_policy(std::string_view bytes);

}  // namespace magpie::mailauth
