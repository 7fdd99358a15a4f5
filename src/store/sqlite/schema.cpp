#include "store/sqlite/schema.h"

#include <fmt/format.h>

#include "store/flags.h"
#include "store/sqlite/api_tokens.h"
#include "store/sqlite/jmap_objects.h"
#include "store/sqlite/emails.h"

namespace magpie::store::sqlite {
namespace {

// The counters and partial indexes below spell the \Seen and \Deleted bits as numbers.
static_assert(flag_seen == 1 && flag_deleted == 8, "schema v3 names flag bits by number");

// Version 1. Notes on the layout:
// - blobs holds one row per distinct content (id = hex SHA-256) with the parse-once summary, which is a
//   function of the content; the bytes themselves are in blob_contents (location 0, inside the WAL-covered
//   database) or in blobs/<2 hex>/<62 hex> (location 1). Keeping the bytes in their own table keeps
//   summary reads off the overflow pages of large values. Later stores also write location 2: the bytes in
//   blob_contents as one zstd frame (inline_content.h); no migration, a row keeps the location it was
//   written with.
// - messages.system_flags is a bit set (see store/sqlite/flags.h); keywords are space-separated atoms.
// - change_log gets one row per appended, flag-changed or expunged message, in the same transaction, keyed
//   by (mailbox, modseq) for CONDSTORE/QRESYNC (RFC 7162) and JMAP changes.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE meta(
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE domains(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE
);

CREATE TABLE accounts(
  id INTEGER PRIMARY KEY,
  domain_id INTEGER NOT NULL REFERENCES domains(id) ON DELETE RESTRICT,
  address TEXT NOT NULL UNIQUE,
  password_hash TEXT NOT NULL,
  scram_salt BLOB NOT NULL,
  scram_iterations INTEGER NOT NULL,
  scram_stored_key BLOB NOT NULL,
  scram_server_key BLOB NOT NULL,
  disabled INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);
CREATE INDEX accounts_domain ON accounts(domain_id);

CREATE TABLE aliases(
  id INTEGER PRIMARY KEY,
  domain_id INTEGER NOT NULL REFERENCES domains(id) ON DELETE RESTRICT,
  address TEXT NOT NULL UNIQUE,
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE
);
CREATE INDEX aliases_domain ON aliases(domain_id);
CREATE INDEX aliases_account ON aliases(account_id);

CREATE TABLE mailboxes(
  id INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  uidvalidity INTEGER NOT NULL,
  uidnext INTEGER NOT NULL DEFAULT 1,
  highest_modseq INTEGER NOT NULL DEFAULT 0,
  special_use INTEGER NOT NULL DEFAULT 0,
  subscribed INTEGER NOT NULL DEFAULT 1,
  message_count INTEGER NOT NULL DEFAULT 0,
  total_size INTEGER NOT NULL DEFAULT 0,
  UNIQUE(account_id, name)
);

CREATE TABLE blobs(
  id TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  location INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  subject TEXT NOT NULL,
  from_header TEXT NOT NULL,
  to_header TEXT NOT NULL,
  cc_header TEXT NOT NULL,
  date_header TEXT NOT NULL,
  message_id TEXT NOT NULL,
  in_reply_to TEXT NOT NULL,
  refs TEXT NOT NULL,
  structure BLOB NOT NULL
);

CREATE TABLE blob_contents(
  blob_id TEXT PRIMARY KEY REFERENCES blobs(id) ON DELETE CASCADE,
  content BLOB NOT NULL
);

CREATE TABLE messages(
  id INTEGER PRIMARY KEY,
  mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
  uid INTEGER NOT NULL,
  modseq INTEGER NOT NULL,
  blob_id TEXT NOT NULL REFERENCES blobs(id),
  size INTEGER NOT NULL,
  internal_date INTEGER NOT NULL,
  system_flags INTEGER NOT NULL DEFAULT 0,
  keywords TEXT NOT NULL DEFAULT '',
  UNIQUE(mailbox_id, uid)
);
CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);
CREATE INDEX messages_blob ON messages(blob_id);

CREATE TABLE change_log(
  mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
  modseq INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  PRIMARY KEY(mailbox_id, modseq, uid)
) WITHOUT ROWID;
CREATE INDEX change_log_uid ON change_log(mailbox_id, uid);
)sql";

// Version 2: SMTP envelopes whose sender asked for success notifications (RFC 3461 NOTIFY=SUCCESS), kept
// until the outgoing queue has turned them into DSNs. Not tied to blobs: a notification outlives nothing.
constexpr const char* kSchemaV2 = R"sql(
CREATE TABLE envelopes(
  id INTEGER PRIMARY KEY,
  received_at INTEGER NOT NULL,
  blob_id TEXT NOT NULL,
  reverse_path TEXT NOT NULL,
  dsn_ret TEXT NOT NULL,
  dsn_envid TEXT NOT NULL
);
CREATE TABLE envelope_recipients(
  envelope_id INTEGER NOT NULL REFERENCES envelopes(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  address TEXT NOT NULL,
  notify TEXT NOT NULL,
  orcpt TEXT NOT NULL,
  PRIMARY KEY(envelope_id, position)
) WITHOUT ROWID;
)sql";

// Version 3: kept counters, stored \Recent, subscriptions by name, and indexes for the hot writes.
// - mailboxes keeps unseen, deleted and recent counts (and the deleted octets) beside message_count and
//   total_size, updated in every transaction that changes them, so STATUS and SELECT never scan messages.
// - first_recent_uid: messages from this UID on are \Recent for the next session that selects the mailbox
//   (RFC 3501 2.3.1.2). Existing mail is not recent after the upgrade: those sessions have already seen it.
// - subscriptions are names, not mailboxes (RFC 3501 6.3.6): they outlive DELETE and precede CREATE.
// - change_log_uid_kind covers log_change's "DELETE ... WHERE mailbox_id, uid, kind": without it SQLite
//   scanned the mailbox's whole log for every flag change (181 s for STORE 1:* on 51,000 messages).
// - messages_deleted / messages_unseen are partial indexes: EXPUNGE and SEARCH UNSEEN visit only the
//   messages that carry (or lack) the flag. Their WHERE terms must appear verbatim in the queries.
// - A mailbox's HIGHESTMODSEQ starts at 1: RFC 7162 3.1.2.1 forbids 0 for a mailbox with mod-sequences.
constexpr const char* kSchemaV3 = R"sql(
ALTER TABLE mailboxes ADD COLUMN unseen_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN deleted_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN deleted_size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN recent_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN first_recent_uid INTEGER NOT NULL DEFAULT 1;

CREATE TABLE subscriptions(
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  PRIMARY KEY(account_id, name)
) WITHOUT ROWID;
INSERT INTO subscriptions(account_id, name) SELECT account_id, name FROM mailboxes WHERE subscribed <> 0;
ALTER TABLE mailboxes DROP COLUMN subscribed;

UPDATE mailboxes SET
  unseen_count = (SELECT count(*) FROM messages m WHERE m.mailbox_id = mailboxes.id AND (m.system_flags & 1) = 0),
  deleted_count = (SELECT count(*) FROM messages m WHERE m.mailbox_id = mailboxes.id AND (m.system_flags & 8) <> 0),
  deleted_size = (SELECT coalesce(sum(m.size), 0) FROM messages m
                  WHERE m.mailbox_id = mailboxes.id AND (m.system_flags & 8) <> 0),
  first_recent_uid = uidnext,
  highest_modseq = max(highest_modseq, 1);

DROP INDEX change_log_uid;
CREATE INDEX change_log_uid_kind ON change_log(mailbox_id, uid, kind);
CREATE INDEX messages_deleted ON messages(mailbox_id, uid) WHERE (system_flags & 8) <> 0;
CREATE INDEX messages_unseen ON messages(mailbox_id, uid) WHERE (system_flags & 1) = 0;
)sql";

// Version 4: the outgoing queue (issue 13), written in the same transaction as the local copies of a
// delivery. One queue_messages row per accepted message (its blob, envelope sender and DSN RET/ENVID), one
// queue_recipients row per remote recipient with its state, last reply, next attempt and lease, and one
// queue_attempts row per delivery attempt with a bounded SMTP transcript (the delivery tracker).
// - A lease (owner, expiry) marks recipients a worker is delivering; an expired lease is free again, so a
//   dead node's work is taken over. PostgreSQL will take the same rows with FOR UPDATE SKIP LOCKED.
// - queue_recipients_due serves "due and not leased" without visiting delivered or failed rows.
// - A queue entry references its blob, so the blob is not garbage while the entry exists (nor while a kept
//   DSN envelope names it: envelopes_blob lets the collector ask).
constexpr const char* kSchemaV4 = R"sql(
CREATE TABLE queue_messages(
  id INTEGER PRIMARY KEY,
  blob_id TEXT NOT NULL REFERENCES blobs(id),
  reverse_path TEXT NOT NULL,
  dsn_ret TEXT NOT NULL,
  dsn_envid TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX queue_messages_blob ON queue_messages(blob_id);

CREATE TABLE queue_recipients(
  id INTEGER PRIMARY KEY,
  message_id INTEGER NOT NULL REFERENCES queue_messages(id) ON DELETE CASCADE,
  address TEXT NOT NULL,
  notify TEXT NOT NULL,
  orcpt TEXT NOT NULL,
  state INTEGER NOT NULL,
  last_reply TEXT NOT NULL DEFAULT '',
  next_attempt_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  lease_owner TEXT NOT NULL DEFAULT '',
  lease_expires_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX queue_recipients_message ON queue_recipients(message_id);
CREATE INDEX queue_recipients_due ON queue_recipients(next_attempt_at) WHERE state IN (0, 1);

CREATE TABLE queue_attempts(
  id INTEGER PRIMARY KEY,
  recipient_id INTEGER NOT NULL REFERENCES queue_recipients(id) ON DELETE CASCADE,
  at INTEGER NOT NULL,
  host TEXT NOT NULL,
  address TEXT NOT NULL,
  tls TEXT NOT NULL,
  reply TEXT NOT NULL,
  transcript TEXT NOT NULL
);
CREATE INDEX queue_attempts_recipient ON queue_attempts(recipient_id);

CREATE INDEX envelopes_blob ON envelopes(blob_id);
)sql";

// Version 6: the one outgoing queue (issue 11). Everything the interim <data_dir>/queue.db kept moves here,
// so submission commits its local copies and its queue entry in one transaction, and the scheduler, the
// reports and `magpie queue` use the store:
// - queue_messages: held (`magpie queue hold`), smtputf8 (the next hop must offer SMTPUTF8) and
//   send_offset (octets of the blob only the local copies carry: their Return-Path field). The size is the
//   blob's, less send_offset; the queued time is created_at.
// - queue_recipients: the RFC 3463 status and remote MTA of the last result, the last attempt's time,
//   failed_attempts (the temporary failures the retry schedule counts; version 4 counted every attempt,
//   which for a recipient still waiting were all temporary failures) and delay_notified (the one delay
//   report went out).
// - queue_attempts: the id of the connection that carried the attempt (the tracker shows which messages
//   shared one).
// - queue_recipients_lease serves "free every lease of this owner" at start-up without a scan.
constexpr const char* kSchemaV6 = R"sql(
ALTER TABLE queue_messages ADD COLUMN smtputf8 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_messages ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_messages ADD COLUMN send_offset INTEGER NOT NULL DEFAULT 0;

ALTER TABLE queue_recipients ADD COLUMN status TEXT NOT NULL DEFAULT '';
ALTER TABLE queue_recipients ADD COLUMN remote_mta TEXT NOT NULL DEFAULT '';
ALTER TABLE queue_recipients ADD COLUMN last_attempt_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_recipients ADD COLUMN failed_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_recipients ADD COLUMN delay_notified INTEGER NOT NULL DEFAULT 0;
UPDATE queue_recipients SET failed_attempts = attempts WHERE state IN (0, 1);
UPDATE queue_recipients SET last_attempt_at = coalesce(
  (SELECT max(a.at) FROM queue_attempts a WHERE a.recipient_id = queue_recipients.id), 0);

ALTER TABLE queue_attempts ADD COLUMN connection TEXT NOT NULL DEFAULT '';

CREATE INDEX queue_recipients_lease ON queue_recipients(lease_owner) WHERE lease_owner <> '';
)sql";

// Version 9: no table changes. blob_contents may now hold a body as one zstd frame (blobs.location 2,
// inline_content.h); the version says so, so that a magpie from before, which would take such a row for a
// file, refuses the store instead of failing every read of those messages.
constexpr const char* kSchemaV9 = "-- blobs.location 2: zstd frames in blob_contents";

// Version 10: meta.directory_version (Store::directory_version), raised by these triggers in the transaction of
// every change to what an address resolves to for delivery, whoever writes it (magpied, the CLI, a restore):
// a domain, an account's address, domain or disabled flag, an alias, a mailbox renamed, moved or deleted (the
// INBOX a delivery targets), a VacationResponse. Not by what deliveries and sessions write (counters, flags,
// email_state), so that SMTP can keep what RCPT resolved for as long as the number stays.
constexpr const char* kSchemaV10 = R"sql(
INSERT INTO meta(key, value) VALUES('directory_version', 1) ON CONFLICT(key) DO NOTHING;
CREATE TRIGGER directory_domains_insert AFTER INSERT ON domains
  BEGIN UPDATE meta SET value = value + 1 WHERE key = 'directory_version'; END;
CREATE TRIGGER directory_domains_update AFTER UPDATE OF name ON domains
  BEGIN UPDATE meta SET value = value + 1 WHERE key = 'directory_version'; END;
CREATE TRIGGER directory_domains_delete AFTER DELETE ON domains
  BEGIN UPDATE meta SET value = value + 1 WHERE key = 'directory_version'; END;
CREATE TRIGGER directory_accounts_insert AFTER INSERT ON accounts
  BEGIN UPDATE meta SET value = value + 1 WHERE key = 'directory_version'; END;
CREATE TRIGGER directory_accounts_update AFTER UPDATE OF address, domain_id, disabled ON accounts
  BEGIN UPDATE meta SET value = value + 1 WHERE key = 'directory_version'; END;
CREATE TRIGGER directory_accounts_delete AFTER DELETE ON accounts
  BEGIN UPDATE meta SET value = value + 1 WHERE key = 'directory_version'; END;
CREATE TRIGGER directory_aliases_insert AFTER INSERT ON aliases
  BEGIN UPDATE meta SET value = value + 1 WHERE key = 'directory_version'; END;
CREATE TRIGGER directory_aliases_update AFTER UPDATE OF address, domain_id, account_id ON aliases
  BEGIN UPDATE meta SET value = value + 1 WHERE key = 'directory_version'; END;
CREATE TRIGGER directory_aliases_delete AFTER DELETE ON aliases
  BEGIN UPDATE meta SET value = value + 1 WHERE key = 'directory_version'; END;
CREATE TRIGGER directory_mailboxes_update AFTER UPDATE OF name, account_id ON mailboxes
  BEGIN UPDATE meta SET value = value + 1 WHERE key = 'directory_version'; END;
CREATE TRIGGER directory_mailboxes_delete AFTER DELETE ON mailboxes
  BEGIN UPDATE meta SET value = value + 1 WHERE key = 'directory_version'; END;
CREATE TRIGGER directory_vacation_insert AFTER INSERT ON jmap_objects WHEN NEW.type = 'VacationResponse'
  BEGIN UPDATE meta SET value = value + 1 WHERE key = 'directory_version'; END;
CREATE TRIGGER directory_vacation_update AFTER UPDATE ON jmap_objects WHEN NEW.type = 'VacationResponse' OR OLD.type = 'VacationResponse'
  BEGIN UPDATE meta SET value = value + 1 WHERE key = 'directory_version'; END;
CREATE TRIGGER directory_vacation_delete AFTER DELETE ON jmap_objects WHEN OLD.type = 'VacationResponse'
  BEGIN UPDATE meta SET value = value + 1 WHERE key = 'directory_version'; END;
)sql";

// Version 11: no index on messages.blob_id. Every message row has an Email with the same blob (magpie check
// says so), so emails_blob answers who holds a blob (the collector, a JMAP download); the dropped index,
// keyed by a SHA-256, cost every delivery a write to a page at a random place of its B-tree (issue 17).
constexpr const char* kSchemaV11 = "DROP INDEX IF EXISTS messages_blob;";

}  // namespace

const char* schema_step(int version) {
    switch (version) {
        case 1: return kSchemaV1;
        case 2: return kSchemaV2;
        case 3: return kSchemaV3;
        case 4: return kSchemaV4;
        case 5: return kSchemaApiTokens;  // api_tokens.cpp
        case 6: return kSchemaV6;
        case kEmailsSchemaVersion: return kSchemaEmails;  // emails.h
        case 8: return kSchemaJmapObjects;  // jmap_objects.cpp
        case 9: return kSchemaV9;
        case 10: return kSchemaV10;
        case 11: return kSchemaV11;
        default: return nullptr;
    }
}

Result<int> schema_version(Connection& connection) {
    auto statement = connection.prepare("PRAGMA user_version");
    if (!statement) return statement.error();
    auto row = statement->step();
    if (!row) return row.error();
    if (!*row) return make_error(Errc::internal, "PRAGMA user_version returned no row");
    return static_cast<int>(statement->column_int64(0));
}

Result<void> migrate(Connection& connection, const ThreadLimits& thread_limits) {
    auto transaction = Transaction::begin(connection);
    if (!transaction) return transaction.error();
    auto version = schema_version(connection);
    if (!version) return version.error();
    if (*version == kSchemaVersion) return {};
    if (*version > kSchemaVersion) {
        return make_error(Errc::unavailable, fmt::format("store schema version {} is newer than this magpie ({})",
                                                         *version, kSchemaVersion));
    }
    // Version 0 is an empty database. Each step below brings one version to the next, in this transaction.
    for (int step = *version + 1; step <= kSchemaVersion; ++step) {
        MAGPIE_TRY(connection.exec(schema_step(step)));
        // Steps whose data conversion is more than SQL: old messages become Emails with computed threads.
        if (step == kEmailsSchemaVersion) MAGPIE_TRY(backfill_emails(connection, thread_limits));
    }
    MAGPIE_TRY(connection.exec(fmt::format("PRAGMA user_version = {}", kSchemaVersion)));
    return transaction->commit();
}

}  // namespace magpie::store::sqlite
