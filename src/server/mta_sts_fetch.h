// MTA-STS for outgoing mail (RFC 8461): a recipient domain's policy, found through its _mta-sts TXT record,
// fetched over HTTPS from https://mta-sts.DOMAIN/.well-known/mta-sts.txt (3.3: a certificate valid for that
// name, no redirects, 200 with text/plain, at most 64 KiB) and cached in <data_dir>/mta-sts/DOMAIN for its
// max_age (5.1). Blocking, with a deadline: the delivery service runs it on its executor, never on a
// network thread.
#pragma once

#include <optional>
#include <string>

#include "base/result.h"
#include "mailauth/mta_sts.h"
#include "server/config.h"

namespace magpie::server {

// The policy to apply to mail for `domain`, or nullopt when it has none (no record, or a policy that could
// not be fetched and no fresh cached one: 5.1 lets delivery go on as without MTA-STS). Lookups use
// [queue] resolver; the fetch is bounded by [mta_sts] fetch_timeout. `note` says what happened, for logs.
std::optional<mailauth::StsPolicy> mta_sts_policy(const Config& config, const std::string& domain, std::string& note);

// The HTTPS fetch alone (for tests): the policy text from mta-sts.DOMAIN at one of `addresses`.
// Errors: unavailable (connection, TLS, certificate, timeout), invalid_argument (status, redirect, type, size).
Result<std::string> fetch_mta_sts_policy(const std::string& domain, const std::vector<std::string>& addresses,
                                         std::chrono::seconds timeout);

}  // namespace magpie::server
