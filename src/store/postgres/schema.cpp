#include "store/postgres/schema.h"

#include <fmt/format.h>

#include "store/flags.h"
#include "store/postgres/emails.h"

namespace magpie::store::postgres {
namespace {

static_assert(flag_seen == 1 && flag_deleted == 8, "the partial indexes name \\Seen and \\Deleted by number");

// Version 5, the embedded store's layout in PostgreSQL terms. Differences, and why:
// - Bytes that come from outside and need not be UTF-8 (parse-once header fields, MIME structure, SMTP
//   replies and transcripts) are bytea: a text column would refuse a raw 8-bit Subject in a UTF-8 database.
// - Blob bytes live in blob_chunks, one row per `chunk` bytes (256 KiB by default), so neither end ever
//   builds a whole large message as one parameter or one value; blobs.size is the sum of their lengths.
// - Integers that the embedded store keeps in SQLite's 64-bit INTEGER are bigint here (UIDs fit int4
//   only unsigned; MODSEQs are 63-bit).
// - meta holds last_uidvalidity (a row lock serializes it between nodes) and schema_version.
constexpr const char* kSchemaV5 = R"sql(
CREATE TABLE meta(
  key text PRIMARY KEY,
  value bigint NOT NULL
);

CREATE TABLE domains(
  id bigserial PRIMARY KEY,
  name text NOT NULL UNIQUE
);

CREATE TABLE accounts(
  id bigserial PRIMARY KEY,
  domain_id bigint NOT NULL REFERENCES domains(id) ON DELETE RESTRICT,
  address text NOT NULL UNIQUE,
  password_hash text NOT NULL,
  scram_salt bytea NOT NULL,
  scram_iterations bigint NOT NULL,
  scram_stored_key bytea NOT NULL,
  scram_server_key bytea NOT NULL,
  disabled boolean NOT NULL DEFAULT false,
  created_at bigint NOT NULL
);
CREATE INDEX accounts_domain ON accounts(domain_id);

CREATE TABLE aliases(
  id bigserial PRIMARY KEY,
  domain_id bigint NOT NULL REFERENCES domains(id) ON DELETE RESTRICT,
  address text NOT NULL UNIQUE,
  account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE
);
CREATE INDEX aliases_domain ON aliases(domain_id);
CREATE INDEX aliases_account ON aliases(account_id);

CREATE TABLE mailboxes(
  id bigserial PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name text NOT NULL,
  uidvalidity bigint NOT NULL,
  uidnext bigint NOT NULL DEFAULT 1,
  highest_modseq bigint NOT NULL DEFAULT 1,
  special_use integer NOT NULL DEFAULT 0,
  message_count bigint NOT NULL DEFAULT 0,
  total_size bigint NOT NULL DEFAULT 0,
  unseen_count bigint NOT NULL DEFAULT 0,
  deleted_count bigint NOT NULL DEFAULT 0,
  deleted_size bigint NOT NULL DEFAULT 0,
  recent_count bigint NOT NULL DEFAULT 0,
  first_recent_uid bigint NOT NULL DEFAULT 1,
  UNIQUE(account_id, name)
);

CREATE TABLE subscriptions(
  account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name text NOT NULL,
  PRIMARY KEY(account_id, name)
);

CREATE TABLE blobs(
  id text PRIMARY KEY,
  size bigint NOT NULL,
  created_at bigint NOT NULL,
  subject bytea NOT NULL,
  from_header bytea NOT NULL,
  to_header bytea NOT NULL,
  cc_header bytea NOT NULL,
  date_header bytea NOT NULL,
  message_id bytea NOT NULL,
  in_reply_to bytea NOT NULL,
  refs bytea NOT NULL,
  structure bytea NOT NULL
);

CREATE TABLE blob_chunks(
  blob_id text NOT NULL REFERENCES blobs(id) ON DELETE CASCADE,
  seq integer NOT NULL,
  data bytea NOT NULL,
  PRIMARY KEY(blob_id, seq)
);

CREATE TABLE messages(
  id bigserial PRIMARY KEY,
  mailbox_id bigint NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
  uid bigint NOT NULL,
  modseq bigint NOT NULL,
  blob_id text NOT NULL REFERENCES blobs(id),
  size bigint NOT NULL,
  internal_date bigint NOT NULL,
  system_flags integer NOT NULL DEFAULT 0,
  keywords text NOT NULL DEFAULT '',
  UNIQUE(mailbox_id, uid)
);
CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);
CREATE INDEX messages_blob ON messages(blob_id);
CREATE INDEX messages_deleted ON messages(mailbox_id, uid) WHERE (system_flags & 8) <> 0;
CREATE INDEX messages_unseen ON messages(mailbox_id, uid) WHERE (system_flags & 1) = 0;

CREATE TABLE change_log(
  mailbox_id bigint NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
  modseq bigint NOT NULL,
  uid bigint NOT NULL,
  kind integer NOT NULL,
  PRIMARY KEY(mailbox_id, modseq, uid)
);
CREATE INDEX change_log_uid_kind ON change_log(mailbox_id, uid, kind);

CREATE TABLE envelopes(
  id bigserial PRIMARY KEY,
  received_at bigint NOT NULL,
  blob_id text NOT NULL,
  reverse_path text NOT NULL,
  dsn_ret text NOT NULL,
  dsn_envid text NOT NULL
);
CREATE INDEX envelopes_blob ON envelopes(blob_id);
CREATE TABLE envelope_recipients(
  envelope_id bigint NOT NULL REFERENCES envelopes(id) ON DELETE CASCADE,
  position integer NOT NULL,
  address text NOT NULL,
  notify text NOT NULL,
  orcpt text NOT NULL,
  PRIMARY KEY(envelope_id, position)
);

CREATE TABLE queue_messages(
  id bigserial PRIMARY KEY,
  blob_id text NOT NULL REFERENCES blobs(id),
  reverse_path text NOT NULL,
  dsn_ret text NOT NULL,
  dsn_envid text NOT NULL,
  created_at bigint NOT NULL
);
CREATE INDEX queue_messages_blob ON queue_messages(blob_id);

CREATE TABLE queue_recipients(
  id bigserial PRIMARY KEY,
  message_id bigint NOT NULL REFERENCES queue_messages(id) ON DELETE CASCADE,
  address text NOT NULL,
  notify text NOT NULL,
  orcpt text NOT NULL,
  state integer NOT NULL,
  last_reply bytea NOT NULL DEFAULT '',
  next_attempt_at bigint NOT NULL,
  attempts bigint NOT NULL DEFAULT 0,
  lease_owner text NOT NULL DEFAULT '',
  lease_expires_at bigint NOT NULL DEFAULT 0
);
CREATE INDEX queue_recipients_message ON queue_recipients(message_id);
CREATE INDEX queue_recipients_due ON queue_recipients(next_attempt_at) WHERE state IN (0, 1);

CREATE TABLE queue_attempts(
  id bigserial PRIMARY KEY,
  recipient_id bigint NOT NULL REFERENCES queue_recipients(id) ON DELETE CASCADE,
  at bigint NOT NULL,
  host bytea NOT NULL,
  address bytea NOT NULL,
  tls bytea NOT NULL,
  reply bytea NOT NULL,
  transcript bytea NOT NULL
);
CREATE INDEX queue_attempts_recipient ON queue_attempts(recipient_id);

CREATE TABLE api_tokens(
  id bigserial PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name text NOT NULL,
  token_hash bytea NOT NULL UNIQUE,
  created_at bigint NOT NULL,
  expires_at bigint,
  UNIQUE(account_id, name)
);
)sql";

// Version 6, the twin of the embedded store's (store/sqlite/schema.cpp kSchemaV6): the one outgoing queue
// with everything `magpie queue` and the scheduler need. queue_messages gains held, smtputf8 and send_offset
// (octets of the blob only the local copies carry); queue_recipients the RFC 3463 status and remote MTA of
// the last result, the last attempt's time, failed_attempts (the retry schedule's count; version 5 counted
// every attempt, which for a recipient still waiting were all temporary failures) and delay_notified;
// queue_attempts the id of the connection that carried the attempt. Flags are booleans here; remote_mta
// comes from outside (a host's own name in its reply) and so is bytea, like the attempt's host.
// queue_recipients_lease serves release_leases(owner) at start-up without a scan.
constexpr const char* kSchemaV6 = R"sql(
ALTER TABLE queue_messages ADD COLUMN smtputf8 boolean NOT NULL DEFAULT false;
ALTER TABLE queue_messages ADD COLUMN held boolean NOT NULL DEFAULT false;
ALTER TABLE queue_messages ADD COLUMN send_offset bigint NOT NULL DEFAULT 0;

ALTER TABLE queue_recipients ADD COLUMN status text NOT NULL DEFAULT '';
ALTER TABLE queue_recipients ADD COLUMN remote_mta bytea NOT NULL DEFAULT '';
ALTER TABLE queue_recipients ADD COLUMN last_attempt_at bigint NOT NULL DEFAULT 0;
ALTER TABLE queue_recipients ADD COLUMN failed_attempts bigint NOT NULL DEFAULT 0;
ALTER TABLE queue_recipients ADD COLUMN delay_notified boolean NOT NULL DEFAULT false;
UPDATE queue_recipients SET failed_attempts = attempts WHERE state IN (0, 1);
UPDATE queue_recipients SET last_attempt_at = coalesce(
  (SELECT max(a.at) FROM queue_attempts a WHERE a.recipient_id = queue_recipients.id), 0);

ALTER TABLE queue_attempts ADD COLUMN connection text NOT NULL DEFAULT '';

CREATE INDEX queue_recipients_lease ON queue_recipients(lease_owner) WHERE lease_owner <> '';
)sql";

// Version 7, the twin of the embedded store's Email step (store/sqlite/emails.h kSchemaEmails): one row per
// Email with its thread, dates, size and flags; messages.email_id ties each membership to its Email (unique
// per mailbox); accounts.email_state is the JMAP state counter and email_log what changed at each state.
// Differences: message_id and base_subject come from outside and need not be UTF-8, so they are bytea (and
// compare bytewise, as SQLite's BINARY collation does). magpie_lower() lowers ASCII letters of a bytea
// (Email/query's case-insensitive header matches and the From sort, as SQLite's lower()); non-ASCII bytes
// pass through, since the 'escape' encoding spells them as octal escapes, which lower() leaves alone.
constexpr const char* kSchemaV7 = R"sql(
CREATE TABLE emails(
  id bigserial PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  blob_id text NOT NULL REFERENCES blobs(id),
  thread_id bigint NOT NULL,
  internal_date bigint NOT NULL,
  sent_at bigint NOT NULL,
  size bigint NOT NULL,
  system_flags integer NOT NULL DEFAULT 0,
  keywords text NOT NULL DEFAULT '',
  message_id bytea NOT NULL,
  base_subject bytea NOT NULL,
  state bigint NOT NULL DEFAULT 0
);
CREATE INDEX emails_message_id ON emails(account_id, message_id) WHERE message_id <> ''::bytea;
CREATE INDEX emails_subject ON emails(account_id, base_subject, internal_date);
CREATE INDEX emails_thread ON emails(thread_id, internal_date);
CREATE INDEX emails_received ON emails(account_id, internal_date);
CREATE INDEX emails_blob ON emails(blob_id);

ALTER TABLE messages ADD COLUMN email_id bigint REFERENCES emails(id);
CREATE UNIQUE INDEX messages_email ON messages(email_id, mailbox_id);

ALTER TABLE accounts ADD COLUMN email_state bigint NOT NULL DEFAULT 0;

CREATE TABLE email_log(
  account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  state bigint NOT NULL,
  email_id bigint NOT NULL,
  thread_id bigint NOT NULL,
  kind integer NOT NULL,
  PRIMARY KEY(account_id, state, email_id)
);
CREATE INDEX email_log_email ON email_log(account_id, email_id, kind);

CREATE FUNCTION magpie_lower(bytea) RETURNS bytea LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT decode(lower(encode($1, 'escape')), 'escape') $$;
)sql";

// Version 8, the twin of the embedded store's JMAP step (store/sqlite/jmap_objects.h): uploads (the bytes in
// the row, as bytea sent in binary), JMAP-only objects as JSON with tombstones, and their per-(account, type)
// state counters. destroyed is a boolean here.
constexpr const char* kSchemaV8 = R"sql(
CREATE TABLE uploads(
  id bigserial PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  blob_id text NOT NULL,
  type text NOT NULL,
  size bigint NOT NULL,
  created_at bigint NOT NULL,
  content bytea NOT NULL,
  UNIQUE(account_id, blob_id)
);
CREATE INDEX uploads_created ON uploads(account_id, created_at);

CREATE TABLE jmap_objects(
  id bigserial PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  type text NOT NULL,
  created_state bigint NOT NULL,
  updated_state bigint NOT NULL,
  destroyed boolean NOT NULL DEFAULT false,
  data text NOT NULL
);
CREATE INDEX jmap_objects_account ON jmap_objects(account_id, type);

CREATE TABLE jmap_states(
  account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  type text NOT NULL,
  state bigint NOT NULL,
  PRIMARY KEY(account_id, type)
);
)sql";

// Version 10, the twin of the embedded store's: meta.directory_version (Store::directory_version), raised in the
// transaction of every change to what an address resolves to for delivery, from any node or the CLI: a domain,
// an account's address, domain or disabled flag, an alias, a mailbox renamed, moved or deleted, a
// VacationResponse. Statement triggers on the directory tables, row triggers on jmap_objects (only
// VacationResponse rows count).
constexpr const char* kSchemaV10 = R"sql(
INSERT INTO meta(key, value) VALUES('directory_version', 1) ON CONFLICT(key) DO NOTHING;
CREATE FUNCTION magpie_directory_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE meta SET value = value + 1 WHERE key = 'directory_version';
  RETURN NULL;
END $$;
CREATE TRIGGER directory_domains AFTER INSERT OR DELETE OR UPDATE OF name ON domains
  FOR EACH STATEMENT EXECUTE FUNCTION magpie_directory_changed();
CREATE TRIGGER directory_accounts AFTER INSERT OR DELETE OR UPDATE OF address, domain_id, disabled ON accounts
  FOR EACH STATEMENT EXECUTE FUNCTION magpie_directory_changed();
CREATE TRIGGER directory_aliases AFTER INSERT OR DELETE OR UPDATE OF address, domain_id, account_id ON aliases
  FOR EACH STATEMENT EXECUTE FUNCTION magpie_directory_changed();
CREATE TRIGGER directory_mailboxes AFTER DELETE OR UPDATE OF name, account_id ON mailboxes
  FOR EACH STATEMENT EXECUTE FUNCTION magpie_directory_changed();
CREATE TRIGGER directory_vacation_written AFTER INSERT OR UPDATE ON jmap_objects
  FOR EACH ROW WHEN (NEW.type = 'VacationResponse') EXECUTE FUNCTION magpie_directory_changed();
CREATE TRIGGER directory_vacation_deleted AFTER DELETE ON jmap_objects
  FOR EACH ROW WHEN (OLD.type = 'VacationResponse') EXECUTE FUNCTION magpie_directory_changed();
)sql";

// Any number will do as long as every magpied uses the same one: the advisory lock of migrations.
constexpr std::int64_t kMigrationLock = 0x6d61677069650001;  // "magpie" 1

// Version 11, the twin of the embedded store's: no index on messages.blob_id. A message's blob is its Email's
// (magpie check says so), so emails_blob answers who holds a blob (the collector, a JMAP download).
constexpr const char* kSchemaV11 = "DROP INDEX IF EXISTS messages_blob";

}  // namespace

const char* schema_step(int version) {
    switch (version) {
        case 5: return kSchemaV5;
        case 6: return kSchemaV6;
        case kEmailsSchemaVersion: return kSchemaV7;
        case 8: return kSchemaV8;
        case 10: return kSchemaV10;
        case 11: return kSchemaV11;
        default: return nullptr;
    }
}

Result<int> schema_version(Connection& db) {
    auto exists = db.exec("SELECT to_regclass('meta') IS NOT NULL");
    if (!exists) return exists.error();
    if (!exists->boolean(0, 0)) return 0;
    auto rows = db.exec("SELECT value FROM meta WHERE key = 'schema_version'");
    if (!rows) return rows.error();
    if (rows->empty()) return make_error(Errc::corrupt, "a meta table without schema_version: not a Magpie store");
    return static_cast<int>(rows->int64(0, 0));
}

Result<void> migrate(Connection& db, const ThreadLimits& thread_limits) {
    return in_transaction(db, [&]() -> Result<void> {
        MAGPIE_TRY(db.exec("SELECT pg_advisory_xact_lock($1)", Params().add(kMigrationLock)));
        auto version = schema_version(db);
        if (!version) return version.error();
        if (*version == kSchemaVersion) return {};
        if (*version > kSchemaVersion) {
            return make_error(Errc::unavailable, fmt::format("store schema version {} is newer than this magpie ({})",
                                                             *version, kSchemaVersion));
        }
        for (int step = *version + 1; step <= kSchemaVersion; ++step) {
            const char* ddl = schema_step(step);
            // Versions before the backend existed (step 5 lays them all down) and steps of the embedded
            // store's alone (9: its compressed inline bodies) have nothing to do here.
            if (ddl == nullptr) continue;
            MAGPIE_TRY(db.run(ddl));
            // Steps whose data conversion is more than SQL: old messages become Emails with computed threads.
            if (step == kEmailsSchemaVersion) MAGPIE_TRY(backfill_emails(db, thread_limits));
        }
        MAGPIE_TRY(db.exec(
            "INSERT INTO meta(key, value) VALUES('schema_version', $1) ON CONFLICT(key) DO UPDATE SET value = $1",
            Params().add(kSchemaVersion)));
        return {};
    });
}

}  // namespace magpie::store::postgres
