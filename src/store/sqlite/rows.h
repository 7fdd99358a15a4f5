// Row-level building blocks shared by the backend's operations: reading mailbox and message rows, and the
// writes every message change is made of (allocate a UID and MODSEQ, insert the message, log the change),
// so delivery, APPEND, COPY and MOVE keep the same invariants by construction. Call inside a transaction.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"
#include "store/sqlite/db.h"
#include "store/sqlite/schema.h"
#include "store/store.h"

namespace magpie::store::sqlite {

// For "SELECT {} FROM mailboxes" (unaliased): `subscribed` is derived from the subscriptions table.
inline constexpr const char* kMailboxColumns =
    "id, account_id, name, uidvalidity, uidnext, highest_modseq, special_use, "
    "EXISTS(SELECT 1 FROM subscriptions s WHERE s.account_id = mailboxes.account_id AND s.name = mailboxes.name), "
    "message_count, total_size";
Mailbox mailbox_from_row(const Statement& row);

// A UID set as a JSON array of [first, last] ranges, for the queries in queries.h: "[[1,5],[9,9]]".
// `uids` must be ascending and distinct.
std::string uid_ranges_json(std::span<const std::uint32_t> uids);

// Ends with a space; append "WHERE ...". LEFT JOINs, so a message whose blob or Email row is missing
// (corruption, reported by check_store) still lists.
inline constexpr const char* kMessageSelect =
    "SELECT m.id, m.mailbox_id, m.uid, m.modseq, m.blob_id, m.size, m.internal_date, m.system_flags, "
    "m.keywords, b.subject, b.from_header, b.to_header, b.cc_header, b.date_header, b.message_id, "
    "b.in_reply_to, b.refs, b.structure, m.email_id, e.thread_id FROM messages m "
    "LEFT JOIN blobs b ON b.id = m.blob_id LEFT JOIN emails e ON e.id = m.email_id ";
Message message_from_row(const Statement& row);

Result<Mailbox> select_mailbox(Connection& db, std::int64_t mailbox_id);  // not_found

// UIDVALIDITY must change whenever a mailbox name is reused (RFC 9051 2.3.1.1). One counter for the whole
// store, seeded from the clock, never goes back even if the clock does, so every mailbox ever created has
// its own value.
Result<std::uint32_t> next_uidvalidity(Connection& db);

// meta.directory_version (Store::directory_version, schema version 10's triggers keep it).
Result<std::uint64_t> read_directory_version(Connection& db);

// A new mailbox starts at HIGHESTMODSEQ 1 (RFC 7162 3.1.2.1: never 0) and unsubscribed.
Result<std::int64_t> insert_mailbox(Connection& db, std::int64_t account_id, std::string_view name,
                                    SpecialUse special_use);

// Adds a name to the account's subscriptions (no-op when present); the name need not exist.
Result<void> subscribe(Connection& db, std::int64_t account_id, std::string_view name);

struct Allocated {
    std::int64_t account_id = 0;
    std::uint32_t uid = 0;
    std::uint64_t modseq = 0;
};
// Takes the mailbox's next UID and next MODSEQ and counts a new message of `size` bytes with these system
// flags in the kept counters (a new UID is always \Recent: it is at or above first_recent_uid).
// not_found for no such mailbox, limit_exceeded when its UIDs are exhausted.
Result<Allocated> allocate_message(Connection& db, std::int64_t mailbox_id, std::uint64_t size,
                                   std::uint32_t system_flags);

// Changes to a mailbox's kept counters (RFC 9051 6.3.11 STATUS items), summed over an operation and
// applied in one UPDATE.
struct CounterDelta {
    std::int64_t messages = 0, size = 0, unseen = 0, deleted = 0, deleted_size = 0, recent = 0;
    // Counts (n > 0) or uncounts (n < 0) |n| messages alike.
    void count(int n, std::uint32_t system_flags, std::uint64_t size, bool recent);
    // A message's flags went from `before` to `after`.
    void reflag(std::uint32_t before, std::uint32_t after, std::uint64_t size);
    bool empty() const;
};
Result<void> apply_counters(Connection& db, std::int64_t mailbox_id, const CounterDelta& delta);

// The UID from which messages are \Recent (stored, RFC 3501 2.3.1.2); not_found for no such mailbox.
Result<std::uint32_t> first_recent_uid(Connection& db, std::int64_t mailbox_id);

// Takes the mailbox's next MODSEQ alone (flag changes, expunges share one per operation).
Result<std::uint64_t> allocate_modseq(Connection& db, std::int64_t mailbox_id);

// Where a blob's bytes are (blobs.location).
inline constexpr std::int64_t kLocationInline = 0;      // blob_contents, inside the WAL-covered database
inline constexpr std::int64_t kLocationFile = 1;        // blobs/<2 hex>/<62 hex>, written and fsynced before
inline constexpr std::int64_t kLocationInlineZstd = 2;  // blob_contents as one zstd frame (inline_content.h)

// The blob row (and, when not in a file, its bytes as stored at `location`) once per distinct content; a
// later insert of the same id is a no-op and keeps the first summary (parse-once data depends only on the
// bytes). `size` is the message's own. True when new.
Result<bool> insert_blob(Connection& db, std::string_view blob_id, std::uint64_t size, std::int64_t location,
                         const MessageSummary& summary, std::string_view stored);

// One membership row; `email_id` names its Email (emails.h), whose flags it mirrors.
struct MessageRow {
    std::int64_t mailbox_id = 0;
    std::int64_t email_id = 0;
    std::uint32_t uid = 0;
    std::uint64_t modseq = 0;
    std::string blob_id;
    std::uint64_t size = 0;
    std::int64_t internal_date = 0;
    std::uint32_t system_flags = 0;
    std::string keywords;  // joined
};
Result<void> insert_message(Connection& db, const MessageRow& row);

// A JSON array of numbers ("[1,2,3]") or a JSON string literal (quotes and escapes included), for the
// set-based statements of queries.h.
std::string json_numbers(std::span<const std::uint32_t> numbers);
std::string json_string(std::string_view text);

// change_log rows for many UIDs of one mailbox at one MODSEQ, superseding older rows as log_change does.
Result<void> log_changes(Connection& db, std::int64_t mailbox_id, std::uint64_t modseq,
                         std::span<const std::uint32_t> uids, ChangeKind kind);

// One change_log row. For flag changes and expunges the uid's older rows that the new one supersedes are
// dropped, so the log holds at most "appended", the latest "flags" and "expunged" per uid.
Result<void> log_change(Connection& db, std::int64_t mailbox_id, std::uint64_t modseq, std::uint32_t uid,
                        ChangeKind kind);

}  // namespace magpie::store::sqlite
