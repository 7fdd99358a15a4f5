// Message identity on PostgreSQL (the twin of store/sqlite/emails.h, schema step 7): the emails table, the
// per-account state and Email log, and thread ids computed at delivery. A `messages` row is one membership of
// an Email in one mailbox; the Email holds the identity, the thread and the flags. The keys (Message-ID,
// parents, base subject, Date) come from sqlite::email_keys: one derivation for both backends.
// Call inside a write transaction. Locking (multi-node): every write that creates, changes or destroys Emails
// holds the account's row lock (lock_account, or lock_mailboxes, which takes the accounts first) before any
// mailbox lock, so the account state is taken in commit order and two nodes never deadlock on it.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "store/flags.h"
#include "store/postgres/pg.h"
#include "store/sqlite/emails.h"
#include "store/store.h"

namespace magpie::store::postgres {

using sqlite::EmailKeys;
using sqlite::ThreadLimits;
using sqlite::email_keys;
using sqlite::kMembershipFlags;

inline constexpr int kEmailsSchemaVersion = 7;

// The account's row lock (FOR NO KEY UPDATE: rows that merely reference the account, as a new mailbox or
// upload does, are not held up). not_found.
Result<void> lock_account(Connection& db, std::int64_t account_id);

// Thread lookup as sqlite::find_thread: parents (nearest first) then the own Message-ID, then the latest
// same-subject Email within the window; 0 for a new thread.
Result<std::int64_t> find_thread(Connection& db, std::int64_t account_id, const EmailKeys& keys,
                                 std::int64_t received_at, const ThreadLimits& limits);

struct EmailRow {
    std::int64_t account_id = 0;
    std::string blob_id;
    std::int64_t thread_id = 0;  // 0: a new thread, named after the new Email
    std::int64_t internal_date = 0;
    std::uint64_t size = 0;
    std::uint32_t system_flags = 0;
    std::string keywords;
};
struct InsertedEmail {
    std::int64_t id = 0;
    std::int64_t thread_id = 0;
};
Result<InsertedEmail> insert_email(Connection& db, const EmailRow& row, const EmailKeys& keys);
Result<InsertedEmail> clone_email(Connection& db, std::int64_t email_id);
Result<bool> has_membership(Connection& db, std::int64_t email_id, std::int64_t mailbox_id);

enum class EmailChange : std::int64_t { created = 1, updated = 2, destroyed = 3 };

// One state per account per transaction, taken by UPDATE ... RETURNING under the account's row lock.
class EmailLog {
public:
    Result<void> record(Connection& db, std::int64_t account_id, std::int64_t email_id, std::int64_t thread_id,
                        EmailChange kind);
    // Emails left in no mailbox are destroyed, the others logged as updated (set-based, whatever the count).
    Result<void> settle(Connection& db, std::int64_t account_id, std::span<const std::int64_t> email_ids);

private:
    Result<std::uint64_t> state_of(Connection& db, std::int64_t account_id);
    std::map<std::int64_t, std::uint64_t> states_;
};

struct Doomed {
    std::uint32_t uid = 0;
    std::uint64_t size = 0;
    std::uint32_t system_flags = 0;
    std::int64_t email_id = 0;
};

// Removes memberships of one mailbox under one new MODSEQ (change log, counters) and settles their Emails.
Result<std::uint64_t> remove_memberships(Connection& db, std::int64_t mailbox_id, std::int64_t account_id,
                                         const std::vector<Doomed>& doomed, EmailLog& log);

struct Reflagged {
    std::int64_t email_id = 0;
    std::uint32_t system = 0;
    std::string keywords;
};

// As sqlite::reflag_emails: the Emails' flags, and their memberships outside `except_mailbox`, each such
// mailbox under one new MODSEQ with change-log rows and counters. The caller holds the account's lock.
Result<std::map<std::int64_t, std::uint64_t>> reflag_emails(Connection& db, std::int64_t except_mailbox,
                                                            const std::vector<Reflagged>& emails,
                                                            bool deleted_too = false);

// Schema step 7's data: every membership of an older store becomes an Email of its own, threads computed in
// received order.
Result<void> backfill_emails(Connection& db, const ThreadLimits& limits);

// A bytea[] literal ({"\\x..",...}) for byte strings that need not be UTF-8.
std::string bytea_array(std::span<const std::string> values);

}  // namespace magpie::store::postgres
