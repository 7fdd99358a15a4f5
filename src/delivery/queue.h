// The outgoing queue as the scheduler, the reports and `magpie queue` see it: entries (one message with its
// envelope) with a state per recipient (RFC 5321 4.5.4.1: queued, deferred with its last reply and next
// attempt, delivered, failed) and every attempt kept for the delivery tracker. QueueStore is the narrow
// interface the scheduler needs; store_queue.h implements it over store::Store, where the queue lives. These
// types are the scheduler's view (content loaded, states named); the store's own are backend-neutral.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace magpie::delivery {

enum class RecipientState { queued, deferred, delivered, failed };

std::string_view state_name(RecipientState state);
std::optional<RecipientState> parse_state(std::string_view name);
inline bool is_final(RecipientState s) {
    return s == RecipientState::delivered || s == RecipientState::failed;
}

// One try of one recipient: where, how, and what the peer said.
struct Attempt {
    std::int64_t at = 0;     // Unix seconds
    std::string host;        // "mx.example.org", or "local" for a local mailbox
    std::string address;     // "192.0.2.1:25"; empty when no connection was made
    std::string tls;         // "TLSv1.3 TLS_AES_256_GCM_SHA384"; empty for plaintext
    std::string reply;       // "250 2.0.0 Ok", or the local reason ("connection refused")
    std::string connection;  // id of the TCP connection: messages that shared one share it
    std::string transcript;  // C:/S: lines of the conversation, bounded; message text left out
};

struct QueueRecipient {
    std::int64_t id = 0;
    std::string address;  // "local@domain"
    std::string notify;   // RFC 3461 NOTIFY as given ("" = default: FAILURE,DELAY)
    std::string orcpt;    // RFC 3461 ORCPT "rfc822;xtext", or ""
    RecipientState state = RecipientState::queued;
    std::int64_t next_attempt_at = 0;   // Unix seconds (queued, deferred)
    std::uint32_t failed_attempts = 0;  // temporary failures so far (retry.h)
    std::string status;                 // RFC 3463 code of the last result, "4.4.1"
    std::string last_reply;             // the last attempt's reply or reason
    std::string remote_mta;             // the host that gave it
    std::int64_t last_attempt_at = 0;
    bool delay_notified = false;    // the one delay notice went out
    std::vector<Attempt> attempts;  // filled by QueueStore::get only, oldest first
};

struct QueueEntry {
    std::int64_t id = 0;
    std::string reverse_path;  // "" = null sender (a report: never reported on)
    std::string dsn_ret;       // "", "FULL" or "HDRS" (RFC 3461 4.3)
    std::string dsn_envid;     // RFC 3461 4.4 ENVID as given
    bool smtputf8 = false;
    std::int64_t queued_at = 0;
    bool held = false;       // `magpie queue hold`: not attempted until released
    std::uint64_t size = 0;  // octets of content
    std::string content;     // RFC 5322 bytes, CRLF; empty in listings
    std::vector<QueueRecipient> recipients;
};

struct NewRecipient {
    std::string address;
    std::string notify;
    std::string orcpt;
};

struct NewEntry {
    std::string reverse_path;
    std::string dsn_ret;
    std::string dsn_envid;
    bool smtputf8 = false;
    std::string content;
    std::vector<NewRecipient> recipients;
    std::int64_t queued_at = 0;  // Unix seconds; also the first attempt's time
};

// What one attempt did to one recipient.
struct RecipientUpdate {
    std::int64_t recipient_id = 0;
    RecipientState state = RecipientState::deferred;
    std::int64_t next_attempt_at = 0;  // when deferred
    bool count_failure = false;        // a temporary failure: failed_attempts + 1
    std::string status;                // RFC 3463
    std::string remote_mta;
    std::optional<Attempt> attempt;  // none when nothing was tried (e.g. a lifetime ran out)
    bool delay_notified = false;     // set the flag (never cleared)
};

// The result of one round for one entry: recipient updates and reports to queue, in one transaction.
struct EntryOutcome {
    std::int64_t entry_id = 0;
    std::vector<RecipientUpdate> updates;
    std::vector<NewEntry> reports;  // DSNs to queue in the same commit (never lost, never doubled)
};

class QueueStore {
public:
    virtual ~QueueStore() = default;

    // Adds an entry; every recipient starts queued and due at queued_at. Durable when it returns.
    // invalid_argument: no recipient, or an address without '@'; limit_exceeded: over the store's bounds.
    virtual Result<std::int64_t> enqueue(const NewEntry& entry) = 0;

    // Takes up to `limit` entries that have a recipient due at `now` (queued or deferred, next_attempt_at <=
    // now), are not held, and are not leased by anyone (or their lease expired), and leases them to `owner`
    // until now + lease_seconds. Each comes with its content and only its due recipients.
    virtual Result<std::vector<QueueEntry>> lease_due(std::int64_t now, std::size_t limit,
                                                      std::uint32_t lease_seconds,
                                                      std::string_view owner) = 0;
    // Releases every lease of `owner` (a restarted process: its previous leases died with it).
    virtual Result<void> release_leases(std::string_view owner) = 0;
    // Applies an outcome for recipients leased to `owner`, releases their leases and queues the reports, in
    // one transaction. Outcomes for recipients the owner no longer holds are skipped, and then no report is
    // queued (store::Store::record_attempts). Returns how many updates were recorded.
    virtual Result<std::size_t> record(std::string_view owner, const EntryOutcome& outcome) = 0;
    // The earliest next_attempt_at among recipients that are due some time and not held; none when idle.
    virtual Result<std::optional<std::int64_t>> next_due() = 0;

    // ---- The tracker and `magpie queue`.
    // Entries with their recipients (no attempts, no content), oldest first; `all` includes finished ones.
    virtual Result<std::vector<QueueEntry>> list(bool all, std::size_t limit) = 0;
    // One entry with content, recipients and their attempts. not_found.
    virtual Result<QueueEntry> get(std::int64_t id) = 0;
    // Makes every waiting recipient of the entry (every entry when id is none) due now.
    virtual Result<std::size_t> retry_now(std::optional<std::int64_t> id, std::int64_t now) = 0;
    virtual Result<void> set_held(std::int64_t id, bool held) = 0;  // not_found
    virtual Result<void> remove(std::int64_t id) = 0;               // not_found
    // Removes entries whose recipients are all final and older than `before` (the tracker's retention).
    virtual Result<std::size_t> purge_finished(std::int64_t before) = 0;
};

}  // namespace magpie::delivery
