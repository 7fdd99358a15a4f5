// What an attempt's result does to a recipient (RFC 5321 4.5.4.1, 6.1) and which reports go to the sender
// (RFC 3464, RFC 3461 4.1 NOTIFY): 2xx delivered (a success notice when NOTIFY has SUCCESS), 4xx or a
// connection failure deferred to the next retry.h time (failed once the lifetime is over), 5xx failed (a
// failure notice unless NOTIFY=NEVER). One report per message and round, never about a null-sender message.
// Pure functions of the clock and randomness passed in.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "delivery/queue.h"
#include "delivery/retry.h"
#include "mail/dsn.h"

namespace magpie::delivery {

// The result of one attempt for one recipient, from the SMTP client, local delivery or routing.
struct AttemptResult {
    enum class Kind { delivered, temporary, permanent } kind = Kind::temporary;
    std::string status;      // RFC 3463, "5.1.1"; a default for the kind when empty
    std::string reply;       // "550 5.1.1 <bob@x>: no such user", or the local reason
    std::string remote_mta;  // the host that answered; empty when none did
    bool tried = true;       // an attempt to record (false: e.g. the lifetime ran out before one)
    // The next hop offered DSN and took NOTIFY/ORCPT (RFC 3461 5.2.2): success notices are its job now; a
    // relay to a peer without DSN is reported to a NOTIFY=SUCCESS sender as "relayed" (RFC 3461 5.2.3).
    bool dsn_passed_on = false;
};

// The recipient's new state after `result` at `now`. The attempt record is filled by the caller.
RecipientUpdate decide(const RetryPolicy& policy, std::int64_t queued_at, const QueueRecipient& recipient,
                       const AttemptResult& result, std::int64_t now);

// RFC 3461 4.1: which reports a recipient's NOTIFY asks for ("" means FAILURE,DELAY).
bool notify_wants(std::string_view notify, mail::DsnAction action);

// Who and what a report is about.
struct ReportedRecipient {
    const QueueRecipient* recipient = nullptr;
    mail::DsnAction action = mail::DsnAction::failed;
    std::string status;
    std::string diagnostic;  // the SMTP reply or the reason
    std::string remote_mta;
    std::optional<std::int64_t> will_retry_until;  // delayed only
};

// One round of an entry settled: each recipient's update (in order, attempts not attached) and whom each
// report is about. Failed recipients go in the failure report; a deferred one past delay_notice_after that
// had no notice gets one (once: the update sets delay_notified); a delivered one goes in the success report
// as "delivered" (a local mailbox) or "relayed" (a peer without DSN), and in none when the peer took the
// DSN request on (RFC 3461 5.2). NOTIFY filtering happens in make_report.
struct Round {
    std::vector<RecipientUpdate> updates;
    std::vector<ReportedRecipient> failed, delayed, delivered;
};
Round settle(const RetryPolicy& policy, const QueueEntry& entry, const std::vector<AttemptResult>& results,
             std::int64_t now);

struct ReportContext {
    std::string reporting_mta;  // our host name
    std::int64_t now = 0;
    std::function<std::uint64_t()> random;
    mail::DsnLimits limits;
};

// The report as a queue entry from the null sender to the message's sender, or none when nothing is to be
// said (null reverse-path, or no recipient's NOTIFY asks for it). Recipients whose NOTIFY declines are left
// out. The original goes back whole for RET=FULL, as headers otherwise (RFC 3461 4.3).
Result<std::optional<NewEntry>> make_report(const QueueEntry& entry,
                                            const std::vector<ReportedRecipient>& recipients,
                                            const ReportContext& context);

}  // namespace magpie::delivery
