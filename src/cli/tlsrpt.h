// `magpie tlsrpt`: the daily SMTP TLS report (RFC 8460 4) of the outbound sessions magpied recorded
// (<data_dir>/tlsrpt/DAY.jsonl, mailauth/tlsrpt.h), one per policy domain; printed, or with --send queued
// as mail (5.3) to each mailto: address of the domain's _smtp._tls record.
#pragma once

#include <string>

#include "server/config.h"

namespace magpie::cli {

struct TlsRptOptions {
    std::string day;         // "YYYY-MM-DD", UTC; empty: yesterday
    std::string domain;      // only this policy domain; empty: every domain with results
    bool send = false;       // queue the reports instead of printing them
    std::string from;        // the report's From and envelope sender; empty: postmaster@[server] hostname
    std::string dns_server;  // "host:port" for the _smtp._tls lookups; empty: [queue] resolver
};

// Returns the exit status: 0 when every report was printed or queued, 1 otherwise (each problem said).
int tlsrpt_command(const server::Config& config, const TlsRptOptions& options);

}  // namespace magpie::cli
