#include "delivery/outcome.h"

#include <fmt/format.h>

#include "base/strings.h"

namespace magpie::delivery {

RecipientUpdate decide(const RetryPolicy& policy, std::int64_t queued_at, const QueueRecipient& recipient,
                       const AttemptResult& result, std::int64_t now) {
    RecipientUpdate update;
    update.recipient_id = recipient.id;
    update.remote_mta = result.remote_mta;
    switch (result.kind) {
        case AttemptResult::Kind::delivered:
            update.state = RecipientState::delivered;
            update.status = result.status.empty() ? "2.0.0" : result.status;
            return update;
        case AttemptResult::Kind::permanent:
            update.state = RecipientState::failed;
            update.status = result.status.empty() ? "5.0.0" : result.status;
            return update;
        case AttemptResult::Kind::temporary:
            break;
    }
    update.count_failure = result.tried;
    update.status = result.status.empty() ? "4.0.0" : result.status;
    auto retry =
        after_temporary_failure(policy, queued_at, recipient.failed_attempts + (result.tried ? 1 : 0), now);
    if (retry.give_up) {
        // RFC 3464 2.3.4: a failure after transient errors keeps its 4.x.x status ("failed", "4.4.7" when
        // none).
        update.state = RecipientState::failed;
        if (result.status.empty()) update.status = "4.4.7";
        return update;
    }
    update.state = RecipientState::deferred;
    update.next_attempt_at = retry.next_attempt_at;
    return update;
}

Round settle(const RetryPolicy& policy, const QueueEntry& entry, const std::vector<AttemptResult>& results,
             std::int64_t now) {
    Round round;
    for (std::size_t i = 0; i < entry.recipients.size() && i < results.size(); ++i) {
        const QueueRecipient& recipient = entry.recipients[i];
        const AttemptResult& result = results[i];
        RecipientUpdate update = decide(policy, entry.queued_at, recipient, result, now);
        ReportedRecipient reported{&recipient,   mail::DsnAction::failed, update.status,
                                   result.reply, result.remote_mta,       std::nullopt};
        if (update.state == RecipientState::failed) {
            round.failed.push_back(reported);
        } else if (update.state == RecipientState::delivered) {
            if (!result.dsn_passed_on) {
                reported.action =
                    result.remote_mta.empty() ? mail::DsnAction::delivered : mail::DsnAction::relayed;
                round.delivered.push_back(reported);
            }
        } else if (delay_notice_due(policy, entry.queued_at, recipient.delay_notified, now)) {
            reported.action = mail::DsnAction::delayed;
            reported.will_retry_until = entry.queued_at + policy.lifetime;
            round.delayed.push_back(reported);
            update.delay_notified = true;
        }
        round.updates.push_back(std::move(update));
    }
    return round;
}

bool notify_wants(std::string_view notify, mail::DsnAction action) {
    std::string upper = to_upper(notify);
    if (upper.empty()) return action == mail::DsnAction::failed || action == mail::DsnAction::delayed;
    if (upper.find("NEVER") != std::string::npos) return false;
    switch (action) {
        case mail::DsnAction::failed:
            return upper.find("FAILURE") != std::string::npos;
        case mail::DsnAction::delayed:
            return upper.find("DELAY") != std::string::npos;
        case mail::DsnAction::delivered:
        case mail::DsnAction::relayed:
        case mail::DsnAction::expanded:
            return upper.find("SUCCESS") != std::string::npos;
    }
    return false;
}

Result<std::optional<NewEntry>> make_report(const QueueEntry& entry,
                                            const std::vector<ReportedRecipient>& recipients,
                                            const ReportContext& context) {
    // RFC 3461 6.2 / RFC 5321 6.1: never a report about a report (the null reverse-path).
    if (entry.reverse_path.empty()) return std::optional<NewEntry>{};
    mail::DsnReport report;
    report.reporting_mta = context.reporting_mta;
    report.envelope_id = entry.dsn_envid;
    report.arrival_date = entry.queued_at;
    report.original_message = entry.content;
    report.return_content = iequals(entry.dsn_ret, "FULL") ? mail::DsnReturn::full : mail::DsnReturn::headers;
    report.to = entry.reverse_path;
    for (const auto& r : recipients) {
        if (!notify_wants(r.recipient->notify, r.action)) continue;
        mail::DsnRecipient d;
        d.final_recipient = r.recipient->address;
        d.original_recipient = r.recipient->orcpt;
        d.action = r.action;
        d.status = r.status;
        d.remote_mta = r.remote_mta;
        d.diagnostic_code = r.diagnostic;
        d.last_attempt = context.now;
        d.will_retry_until = r.will_retry_until;
        report.recipients.push_back(std::move(d));
    }
    if (report.recipients.empty()) return std::optional<NewEntry>{};
    mail::BuildOptions options;
    options.transport = mail::Transport::eight_bit;
    options.utf8_headers = entry.smtputf8;
    mail::BuildEnv env{context.now, context.random, context.reporting_mta};
    auto built = mail::build_dsn(report, options, env, context.limits);
    if (!built) return built.error();
    NewEntry out;
    out.reverse_path = "";  // reports go from the null sender (RFC 3461 6.2)
    out.content = std::move(*built);
    out.queued_at = context.now;
    out.smtputf8 = entry.smtputf8;
    out.recipients.push_back(NewRecipient{entry.reverse_path, "", ""});
    return std::optional<NewEntry>{std::move(out)};
}

}  // namespace magpie::delivery
