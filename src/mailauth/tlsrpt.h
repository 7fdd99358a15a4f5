// SMTP TLS Reporting (RFC 8460): the _smtp._tls TXT record that says where a domain wants reports, the
// results our deliveries record per policy domain, and the daily aggregate report (4) built from them.
// Sans-IO: the caller passes the records, the time and the results; sending is the caller's.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace magpie::mailauth {

// RFC 8460 3: "v=TLSRPTv1; rua=mailto:tlsrpt@example.com,https://reports.example.com/v1". Errors
// (invalid_argument, naming the problem): not TLSRPTv1 first, no rua, a rua URI that is neither mailto: nor
// https:. Unknown fields are ignored (3: extensions).
struct TlsRptRecord {
    std::vector<std::string> rua;  // as written, in order
};
Result<TlsRptRecord> parse_tlsrpt_record(std::string_view txt);

// 3: of the TXT records at _smtp._tls.DOMAIN, those starting with "v=TLSRPTv1"; exactly one must remain,
// else the domain does not take reports (not_found for none, invalid_argument for several).
Result<TlsRptRecord> select_tlsrpt_record(const std::vector<std::string>& txt_records);

}  // namespace magpie::mailauth

namespace magpie::mailauth {

// 4.4 policy-type: which policy the sending MTA applied to the session.
enum class TlsPolicyType { sts, tlsa, no_policy_found };
const char* tls_policy_type_name(TlsPolicyType type);  // "sts", "tlsa", "no-policy-found"

// 4.3 result types of a failed session.
enum class TlsResultType {
    starttls_not_supported,
    certificate_host_mismatch,
    certificate_expired,
    certificate_not_trusted,
    validation_failure,
    tlsa_invalid,
    dnssec_invalid,
    dane_required,
    sts_policy_fetch_error,
    sts_policy_invalid,
    sts_webpki_invalid,
};
const char* tls_result_type_name(TlsResultType type);  // "starttls-not-supported", ...

// 4.3.2: the result type of a certificate OpenSSL refused, from its verify result (X509_V_ERR_*):
// expired or not yet valid, host mismatch, untrusted chain (self-signed, unknown issuer), else
// validation-failure.
TlsResultType tls_result_type_for_verify_error(long x509_verify_error);

// What one outbound SMTP session saw of TLS, as the IO layer observed it.
struct TlsSessionObservation {
    bool greeted = false;          // the peer answered EHLO/HELO: whether it offers STARTTLS is known
    bool tls_attempted = false;    // a TLS handshake started (STARTTLS accepted, or implicit TLS)
    bool tls_established = false;  // and completed
    long verify_result = -1;  // X509_V_OK (0) or an X509_V_ERR_*; -1 when the certificate was not checked
    bool dane = false;        // the check was DANE's (RFC 7672), not PKIX
    std::string reason;       // the handshake's or the session's error, when there was one
};
struct TlsOutcome {
    bool success = true;
    TlsResultType result_type = TlsResultType::validation_failure;  // when !success
    std::string failure_reason_code;
};
// 4.3: the result of one session: success when TLS was established and its check (if any) passed; otherwise
// starttls-not-supported (greeted, no TLS), tlsa-invalid (DANE found no matching record), the PKIX result
// type of the verify error (tls_result_type_for_verify_error), or validation-failure. nullopt when the
// session never got as far as TLS (a refused connection is no TLS result).
std::optional<TlsOutcome> classify_tls_session(const TlsSessionObservation& observed);

// One outbound SMTP session's TLS outcome, as the delivery records it (one line in the day's file).
struct TlsSessionResult {
    std::int64_t time = 0;                   // Unix seconds
    std::string policy_domain;               // the recipient domain whose policy applied
    TlsPolicyType policy_type = TlsPolicyType::no_policy_found;
    std::vector<std::string> policy_string;  // sts: the policy file's lines; tlsa: the records
    std::vector<std::string> mx_host;        // sts: the policy's mx patterns
    bool success = true;
    TlsResultType result_type = TlsResultType::validation_failure;  // when !success
    std::string sending_mta_ip;
    std::string receiving_mx_hostname;
    std::string receiving_ip;
    std::string failure_reason_code;  // free text (4.4 "failure-reason-code"), e.g. OpenSSL's reason
};

// One JSON object on one line (no newline), and back. parse errors: invalid_argument.
std::string serialize_tls_result(const TlsSessionResult& result);
Result<TlsSessionResult> parse_tls_result(std::string_view line);

// The day's results on disk: <data_dir>/tlsrpt/YYYY-MM-DD.jsonl (UTC day of `result.time`), one line each,
// appended with O_APPEND (lines from concurrent writers do not interleave). A day's file stops growing at
// `max_day_octets` (the call then returns limit_exceeded): a report is a summary, and a flood of failing
// sessions must not fill the disk. Errors: io_error.
inline constexpr std::uint64_t kDefaultMaxTlsResultOctetsPerDay = 64ull << 20;
Result<void> append_tls_result(const std::string& data_dir, const TlsSessionResult& result,
                               std::uint64_t max_day_octets = kDefaultMaxTlsResultOctetsPerDay);
// The results of the UTC day `day` ("2026-11-29"); an absent file is no results. Unreadable lines are
// skipped and counted in `skipped`. Errors: io_error, invalid_argument for a bad day.
Result<std::vector<TlsSessionResult>> read_tls_results(const std::string& data_dir, std::string_view day,
                                                       std::size_t* skipped = nullptr);

// What a report says about its sender (4.4).
struct TlsReportMeta {
    std::string organization_name;  // e.g. [server] hostname
    std::string contact_info;       // e.g. "postmaster@mx.example.org"
    std::string report_id;          // unique per report (4.4: "report-id")
    std::int64_t start = 0;         // the day's first second, UTC
    std::int64_t end = 0;           // its last second
};

// RFC 8460 4.4: the JSON report for one policy domain, from that domain's results in [start, end]: one
// "policies" entry per distinct (policy-type, policy-string, mx-host) with its success and failure session
// counts, and failure-details grouped by (result-type, sending IP, MX host, receiving IP, reason) with
// failed-session-count, at most `max_failure_details` groups per policy (the largest kept).
std::string tlsrpt_report(const TlsReportMeta& meta, std::string_view policy_domain,
                          const std::vector<TlsSessionResult>& results, std::size_t max_failure_details = 100);

// 5.3: the report as a mail message to one mailto: rua address: multipart/report; report-type="tlsrpt",
// a text part, the JSON as application/tlsrpt+json named "submitter!domain!start!end!id.json", with the
// TLS-Report-Domain and TLS-Report-Submitter fields and the Subject the RFC describes. CRLF lines, 7 bit.
std::string tlsrpt_message(const TlsReportMeta& meta, std::string_view policy_domain, std::string_view submitter,
                           std::string_view from, std::string_view to, std::string_view report_json,
                           std::string_view date, std::string_view message_id);

}  // namespace magpie::mailauth
