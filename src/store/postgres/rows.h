// Row-level building blocks of the PostgreSQL backend, shared by delivery, APPEND, COPY and MOVE so they keep
// the same invariants by construction (the twins of store/sqlite/rows.h). Call inside a transaction; the
// allocating ones take the mailbox's row lock, which is what keeps UIDs and MODSEQs unique across nodes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"
#include "store/postgres/pg.h"
#include "store/postgres/schema.h"
#include "store/store.h"

namespace magpie::store::postgres {

// For "SELECT {} FROM mailboxes" (unaliased).
inline constexpr const char* kMailboxColumns =
    "id, account_id, name, uidvalidity, uidnext, highest_modseq, special_use, "
    "EXISTS(SELECT 1 FROM subscriptions s WHERE s.account_id = mailboxes.account_id AND s.name = mailboxes.name), "
    "message_count, total_size";
Mailbox mailbox_from_row(const Rows& rows, int row);

// Ends with a space; append "WHERE ...". LEFT JOINs, so a message whose blob or Email row is missing still
// lists.
inline constexpr const char* kMessageSelect =
    "SELECT m.id, m.mailbox_id, m.uid, m.modseq, m.blob_id, m.size, m.internal_date, m.system_flags, "
    "m.keywords, b.subject, b.from_header, b.to_header, b.cc_header, b.date_header, b.message_id, "
    "b.in_reply_to, b.refs, b.structure, m.email_id, e.thread_id FROM messages m "
    "LEFT JOIN blobs b ON b.id = m.blob_id LEFT JOIN emails e ON e.id = m.email_id ";
Message message_from_row(const Rows& rows, int row);

// not_found. `lock`: FOR UPDATE, taken before a write reads what it will change (flags, \Deleted), so two
// nodes changing one mailbox take turns as the embedded store's one writer does.
Result<Mailbox> select_mailbox(Connection& db, std::int64_t mailbox_id, bool lock = false);

// Locks the accounts that own these mailboxes, then the mailboxes, each in ascending id order (the one order
// every write uses: no deadlock between a delivery to A and B and a COPY from B to A, nor between a STORE
// that reflags an Email's other mailboxes and a delivery there). Absent ids are skipped.
Result<void> lock_mailboxes(Connection& db, std::vector<std::int64_t> mailbox_ids);

// One store-wide counter seeded from the clock, never going back (RFC 9051 2.3.1.1).
Result<std::uint32_t> next_uidvalidity(Connection& db);
Result<std::int64_t> insert_mailbox(Connection& db, std::int64_t account_id, std::string_view name,
                                    SpecialUse special_use);
Result<void> subscribe(Connection& db, std::int64_t account_id, std::string_view name);

struct Allocated {
    std::int64_t account_id = 0;
    std::uint32_t uid = 0;
    std::uint64_t modseq = 0;
};
// Takes the next UID and MODSEQ and counts the new message (UPDATE ... RETURNING: the row lock).
Result<Allocated> allocate_message(Connection& db, std::int64_t mailbox_id, std::uint64_t size,
                                   std::uint32_t system_flags);
Result<std::uint64_t> allocate_modseq(Connection& db, std::int64_t mailbox_id);
Result<std::uint32_t> first_recent_uid(Connection& db, std::int64_t mailbox_id);

struct CounterDelta {
    std::int64_t messages = 0, size = 0, unseen = 0, deleted = 0, deleted_size = 0, recent = 0;
    void count(int n, std::uint32_t system_flags, std::uint64_t size, bool recent);
    void reflag(std::uint32_t before, std::uint32_t after, std::uint64_t size);
    bool empty() const;
};
Result<void> apply_counters(Connection& db, std::int64_t mailbox_id, const CounterDelta& delta);

struct MessageRow {
    std::int64_t mailbox_id = 0;
    std::int64_t email_id = 0;  // the Email this membership belongs to (emails.h)
    std::uint32_t uid = 0;
    std::uint64_t modseq = 0;
    std::string blob_id;
    std::uint64_t size = 0;
    std::int64_t internal_date = 0;
    std::uint32_t system_flags = 0;
    std::string keywords;
};
Result<void> insert_message(Connection& db, const MessageRow& row);

// change_log rows for UIDs of one mailbox at one MODSEQ; a "flags" row supersedes the uid's older "flags"
// row, an "expunged" row everything before it (at most appended, latest flags, expunged per uid).
Result<void> log_changes(Connection& db, std::int64_t mailbox_id, std::uint64_t modseq,
                         std::span<const std::uint32_t> uids, ChangeKind kind);

// A UID set as two arrays of range bounds ("{1,9}", "{5,9}") for "JOIN unnest($2::bigint[], $3::bigint[])".
struct UidRanges {
    std::string first, last;
};
UidRanges uid_ranges(std::span<const std::uint32_t> sorted_uids);

}  // namespace magpie::store::postgres
