// Delivery status notifications (RFC 3464): a multipart/report (RFC 6522) with a human-readable text part,
// a message/delivery-status part (per-message and per-recipient fields) and the original message or its
// header (RET=FULL / RET=HDRS, RFC 3461 4.3). Delivery builds these for bounces and delay notices.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "mail/builder.h"

namespace magpie::mail {

// RFC 3464 2.3.3.
enum class DsnAction { failed, delayed, delivered, relayed, expanded };

std::string_view dsn_action_name(DsnAction action);

struct DsnRecipient {
    std::string final_recipient;     // the address delivery was tried to, "user@domain"
    std::string original_recipient;  // the ORCPT value as given ("rfc822;user@domain"), empty for none
    DsnAction action = DsnAction::failed;
    std::string status;                            // RFC 3463 "5.1.1"; its class must agree with the action
    std::string remote_mta;                        // host name of the MTA that answered, empty for none
    std::string diagnostic_code;                   // the SMTP reply, "550 5.1.1 No such user", empty for none
    std::optional<std::int64_t> last_attempt;      // Unix seconds
    std::optional<std::int64_t> will_retry_until;  // Unix seconds, for delayed
};

// What to return of the original message (RFC 3461 4.3).
enum class DsnReturn { headers, full };

struct DsnReport {
    std::string reporting_mta;      // our host name
    std::string envelope_id;        // ENVID (RFC 3461 4.4), as given; empty for none
    std::string received_from_mta;  // host the message came from; empty for none
    std::optional<std::int64_t> arrival_date;
    std::vector<DsnRecipient> recipients;
    std::string original_message;  // the bytes of the message the report is about
    DsnReturn return_content = DsnReturn::headers;
    std::string to;          // the original envelope sender (the DSN goes there with MAIL FROM:<>)
    std::string postmaster;  // the From address; empty means "MAILER-DAEMON@" + reporting_mta
};

struct DsnLimits {
    std::size_t max_recipients = 1000;            // per report
    std::size_t max_returned_octets = 10u << 20;  // a larger original is returned as its header only
    std::size_t max_diagnostic_octets = 1000;     // each Diagnostic-Code is cut to this
};

// Builds the report. The text part lists each recipient with its diagnostic; the subject says "Undelivered
// Mail Returned to Sender", "Delayed Mail (still being retried)" or "Delivery Status Notification"
// by the most serious action. An original that does not fit `options.transport` is downgraded
// (downgrade.h), or when that is impossible, returned as its header in text/rfc822-headers.
Result<std::string> build_dsn(const DsnReport& report, const BuildOptions& options, const BuildEnv& env,
                              const DsnLimits& limits = {});

}  // namespace magpie::mail
