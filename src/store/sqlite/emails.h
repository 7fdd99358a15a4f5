// Message identity (issue 11, schema version 7): the emails table, the per-account state and Email log, and
// thread ids computed at delivery. A `messages` row is one membership of an Email in one mailbox (its UID,
// MODSEQ and change log stay as before); the Email holds the identity, the thread and the flags.
// Internal to the embedded backend; call inside a write transaction unless a function says otherwise.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "store/flags.h"
#include "store/sqlite/db.h"
#include "store/store.h"

namespace magpie::store::sqlite {

// Schema step 7 (on top of the previous version; the lead renumbers steps when branches merge).
// - emails: one row per Email. The header fields (subject, from, ...) stay on the blob row they are a
//   function of (one join by primary key); emails keeps only what is indexed or per account: the bare
//   Message-ID and the lower-cased RFC 5256 base subject (threading), sent_at (sorting), and the flags.
// - messages.email_id: the Email a membership belongs to (nullable only because SQLite adds a column with
//   a foreign key no other way; every writer sets it and check_store verifies it). messages keeps a copy of
//   its Email's flags (plus its own \Deleted, kMembershipFlags below) so the partial \Deleted / unseen
//   indexes and the per-mailbox counters stay per row: every flag change writes the Email and all its
//   memberships in one transaction.
// - messages_email is unique: an Email is in a mailbox at most once (JMAP mailboxIds is a set); a COPY into
//   a mailbox that already holds the Email makes a new Email (same blob and thread).
// - accounts.email_state is the account's state (JMAP state strings); email_log keeps, per account and
//   state, which Emails were created (1), updated (2) or destroyed (3), superseded like change_log: at
//   most created, the latest updated and destroyed per Email.
// - Indexes: Message-ID lookups by account (threading by References), base subject by account and date
//   (the subject fallback's window), threads by received date, account listings by received date.
inline constexpr const char* kSchemaEmails = R"sql(
CREATE TABLE emails(
  id INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  blob_id TEXT NOT NULL REFERENCES blobs(id),
  thread_id INTEGER NOT NULL,
  internal_date INTEGER NOT NULL,
  sent_at INTEGER NOT NULL,
  size INTEGER NOT NULL,
  system_flags INTEGER NOT NULL DEFAULT 0,
  keywords TEXT NOT NULL DEFAULT '',
  message_id TEXT NOT NULL,
  base_subject TEXT NOT NULL,
  state INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX emails_message_id ON emails(account_id, message_id) WHERE message_id <> '';
CREATE INDEX emails_subject ON emails(account_id, base_subject, internal_date);
CREATE INDEX emails_thread ON emails(thread_id, internal_date);
CREATE INDEX emails_received ON emails(account_id, internal_date);
CREATE INDEX emails_blob ON emails(blob_id);

ALTER TABLE messages ADD COLUMN email_id INTEGER REFERENCES emails(id);
CREATE UNIQUE INDEX messages_email ON messages(email_id, mailbox_id);

ALTER TABLE accounts ADD COLUMN email_state INTEGER NOT NULL DEFAULT 0;

CREATE TABLE email_log(
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  state INTEGER NOT NULL,
  email_id INTEGER NOT NULL,
  thread_id INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  PRIMARY KEY(account_id, state, email_id)
) WITHOUT ROWID;
CREATE INDEX email_log_email ON email_log(account_id, email_id, kind);
)sql";

// The hot queries of Email identity, named so that a test checks their plans (each an index search):
// ?1 account, ?2 JSON array of bare Message-IDs in preference order: the thread of the first one known.
inline constexpr const char* kThreadByMessageId =
    "SELECT e.thread_id FROM json_each(?2) j CROSS JOIN emails e "
    "WHERE e.account_id = ?1 AND e.message_id = j.value AND e.message_id <> '' ORDER BY j.key LIMIT 1";
// ?1 account, ?2 base subject, ?3..?4 received window: the latest same-subject Email's thread.
inline constexpr const char* kThreadBySubject =
    "SELECT thread_id FROM emails WHERE account_id = ?1 AND base_subject = ?2 "
    "AND internal_date BETWEEN ?3 AND ?4 ORDER BY internal_date DESC LIMIT 1";
// ?1 JSON array of Email ids: those in no mailbox any more.
inline constexpr const char* kEmailsInNoMailbox =
    "SELECT e.id FROM json_each(?1) j CROSS JOIN emails e WHERE e.id = j.value "
    "AND NOT EXISTS(SELECT 1 FROM messages m WHERE m.email_id = e.id)";
// The Email log for many Emails at once (?1 account, ?2 JSON array of Email ids; ?3 state, ?4 kind): the
// rows a new "updated" (kind 2) or "destroyed" row supersedes, the new rows, and the Emails' state stamp.
inline constexpr const char* kPruneEmailUpdatesOf =
    "DELETE FROM email_log WHERE account_id = ?1 AND kind = 2 AND email_id IN (SELECT value FROM json_each(?2))";
inline constexpr const char* kPruneEmailLogOf =
    "DELETE FROM email_log WHERE account_id = ?1 AND email_id IN (SELECT value FROM json_each(?2))";
inline constexpr const char* kLogEmails =
    "INSERT INTO email_log(account_id, state, email_id, thread_id, kind) SELECT ?1, ?3, e.id, e.thread_id, ?4 "
    "FROM json_each(?2) j CROSS JOIN emails e WHERE e.id = j.value ON CONFLICT DO NOTHING";
inline constexpr const char* kStampEmails =
    "UPDATE emails SET state = ?1 FROM json_each(?2) j WHERE emails.id = j.value";
inline constexpr const char* kDeleteEmails = "DELETE FROM emails WHERE id IN (SELECT value FROM json_each(?1))";
// ?1 account, ?2 email: the log rows a new "updated" (kind 2) or "destroyed" row supersedes.
inline constexpr const char* kPruneEmailUpdates =
    "DELETE FROM email_log WHERE account_id = ?1 AND email_id = ?2 AND kind = 2";
inline constexpr const char* kPruneEmailLog = "DELETE FROM email_log WHERE account_id = ?1 AND email_id = ?2";
// ?1 account, ?2 state: Email/changes and Thread/changes.
inline constexpr const char* kEmailLogSince =
    "SELECT state, email_id, thread_id, kind FROM email_log WHERE account_id = ?1 AND state > ?2 ORDER BY state";
// ?1 thread, ?2 account: Thread/get, in received order.
inline constexpr const char* kThreadEmails =
    "SELECT id FROM emails WHERE thread_id = ?1 AND account_id = ?2 ORDER BY internal_date, id";
// ?1 account, ?2 mailbox, ?3 limit, ?4 offset: Email/query's first pages of one mailbox by receivedAt
// descending (ties by id), walking emails_received backwards and probing messages_email, with no sort.
inline constexpr const char* kMailboxPageByReceived =
    "SELECT e.id FROM emails e INDEXED BY emails_received WHERE e.account_id = ?1 AND "
    "EXISTS(SELECT 1 FROM messages m WHERE m.email_id = e.id AND m.mailbox_id = ?2) "
    "ORDER BY e.internal_date DESC, e.id DESC LIMIT ?3 OFFSET ?4";
// ?1 blob id, ?2 account: whether one of the account's Emails is that blob (a JMAP download of a message's
// blobId), through emails_blob. A message's blob is its Email's, so messages need no blob index of their own.
// INDEXED BY: without statistics SQLite takes emails_received (account_id), a walk of the account's Emails.
inline constexpr const char* kAccountHoldsBlob =
    "SELECT 1 FROM emails INDEXED BY emails_blob WHERE blob_id = ?1 AND account_id = ?2 LIMIT 1";
inline constexpr const char* kEmailQueries[] = {
    kThreadByMessageId, kThreadBySubject, kEmailsInNoMailbox, kPruneEmailUpdatesOf, kPruneEmailLogOf, kLogEmails,
    kStampEmails,       kDeleteEmails,    kPruneEmailUpdates, kPruneEmailLog,       kEmailLogSince,   kThreadEmails,
    kMailboxPageByReceived, kAccountHoldsBlob};

// Flags kept per membership, not per Email: \Deleted marks a message for EXPUNGE in its own mailbox (RFC 9051
// 6.4.3 expunges per mailbox). Were it the Email's, an old client's move (COPY to Trash, \Deleted, EXPUNGE)
// would mark the copy in Trash for deletion too; Gmail scopes \Deleted to the mailbox likewise. Every other
// flag is the Email's, and memberships mirror it. JMAP's $deleted thus never shows on an Email.
inline constexpr std::uint32_t kMembershipFlags = flag_deleted;

// Bounds of the thread computation (SqliteOptions::max_thread_references, thread_subject_window_seconds).
struct ThreadLimits {
    std::size_t max_references = 64;
    std::int64_t subject_window_seconds = 30 * 24 * 3600;
};

// Turns every messages row of an older store into an Email of its own (no row knows which others were its
// copies), threads computed in received order as delivery would have. Part of schema step 7.
Result<void> backfill_emails(Connection& db, const ThreadLimits& limits);

// What threading and sorting need of a message, derived from its summary.
struct EmailKeys {
    std::string message_id;            // the Message-ID without <>; "" when none
    std::vector<std::string> parents;  // In-Reply-To then References (last first), without <>, distinct, bounded
    std::string base_subject;          // RFC 5256 base subject, lower-cased (ASCII)
    std::int64_t sent_at = 0;          // the Date field in Unix seconds; 0 when missing or unreadable
};
EmailKeys email_keys(const MessageSummary& summary, const ThreadLimits& limits);

// The thread a new Email of the account joins: the thread of an Email whose Message-ID is one of its
// parents (nearest first) or its own (a second delivery of the same message); else of the latest Email with
// the same non-empty base subject received within the window around `received_at`; else 0 (a new thread).
// A parent that arrives after its replies does not merge their threads: it joins by its own subject or
// starts a thread (merging would change thread ids that clients already hold).
Result<std::int64_t> find_thread(Connection& db, std::int64_t account_id, const EmailKeys& keys,
                                 std::int64_t received_at, const ThreadLimits& limits);

struct EmailRow {
    std::int64_t account_id = 0;
    std::string blob_id;
    std::int64_t thread_id = 0;  // 0: a new thread, whose id is the new Email's
    std::int64_t internal_date = 0;
    std::uint64_t size = 0;
    std::uint32_t system_flags = 0;
    std::string keywords;  // joined
};
struct InsertedEmail {
    std::int64_t id = 0;
    std::int64_t thread_id = 0;
};
Result<InsertedEmail> insert_email(Connection& db, const EmailRow& row, const EmailKeys& keys);

// Reserves `count` consecutive new Email ids and returns the first. Ids are never reused within a store
// (store.h), not even the newest one's after it is destroyed, which SQLite's own choice of rowid (the
// largest + 1) would do: the last id handed out is kept in meta ('last_email_id'). A store from before
// that key starts past every id its emails and its Email log still name.
Result<std::int64_t> reserve_email_ids(Connection& db, std::int64_t count);

// A new Email with the same blob, thread, dates, keys and flags as `email_id` (COPY into a mailbox that
// already holds it).
Result<InsertedEmail> clone_email(Connection& db, std::int64_t email_id);

// Whether the Email has a membership in the mailbox.
Result<bool> has_membership(Connection& db, std::int64_t email_id, std::int64_t mailbox_id);

enum class EmailChange : std::int64_t { created = 1, updated = 2, destroyed = 3 };

// The Email log of one transaction: the first record for an account takes its next state, and every record
// of that transaction shares it (one state per transaction, as one MODSEQ per mailbox per chunk).
class EmailLog {
public:
    Result<void> record(Connection& db, std::int64_t account_id, std::int64_t email_id, std::int64_t thread_id,
                        EmailChange kind);
    // After memberships or flags of these Emails changed: the Emails left in no mailbox are destroyed (their
    // blobs may become garbage), the others logged as updated. A few set-based statements, whatever the count.
    Result<void> settle(Connection& db, std::int64_t account_id, std::span<const std::int64_t> email_ids);

private:
    Result<std::uint64_t> state_of(Connection& db, std::int64_t account_id);
    std::map<std::int64_t, std::uint64_t> states_;
};

// A message chosen for removal, with what the kept counters need to uncount it.
struct Doomed {
    std::uint32_t uid = 0;
    std::uint64_t size = 0;
    std::uint32_t system_flags = 0;
    std::int64_t email_id = 0;
};

// Removes memberships (already chosen) from a mailbox under one new MODSEQ, logs them as expunged and
// uncounts them. Their Emails lose these memberships: those left with none are destroyed (`log`).
// Returns the MODSEQ taken.
Result<std::uint64_t> remove_memberships(Connection& db, std::int64_t mailbox_id, std::int64_t account_id,
                                         const std::vector<Doomed>& doomed, EmailLog& log);

// An Email's new flags, as the memberships' kSetFlags and the Email's kSetEmailFlags take them.
struct Reflagged {
    std::int64_t email_id = 0;
    std::uint32_t system = 0;
    std::string keywords;
};

// Flags belong to the Email (JMAP keywords, as in Stalwart and Gmail): writes them on the Emails and on
// their memberships in every mailbox other than `except_mailbox` (whose rows the caller wrote; 0 = none),
// each such mailbox taking one new MODSEQ, change-log rows and counter changes. Returns the MODSEQ taken
// per mailbox (a membership whose flags come out the same is left alone). \Deleted is per membership
// (kMembershipFlags): other memberships keep theirs unless `deleted_too` (a JMAP update that names it), when
// each takes the Reflagged one. Logs nothing in the Email log (the caller's settle() does).
Result<std::map<std::int64_t, std::uint64_t>> reflag_emails(Connection& db, std::int64_t except_mailbox,
                                                            const std::vector<Reflagged>& emails,
                                                            bool deleted_too = false);

}  // namespace magpie::store::sqlite
