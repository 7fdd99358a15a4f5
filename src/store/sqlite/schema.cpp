#include "store/sqlite/schema.h"

#include <fmt/format.h>

namespace magpie::store::sqlite {
namespace {

// Version 1. Notes on the layout:
// - blobs holds one row per distinct content (id = hex SHA-256) with the parse-once summary, which is a
//   function of the content; the bytes themselves are in blob_contents (location 0, inside the WAL-covered
//   database) or in blobs/<2 hex>/<62 hex> (location 1). Keeping the bytes in their own table keeps
//   summary reads off the overflow pages of large values.
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

}  // namespace

Result<int> schema_version(Connection& connection) {
    auto statement = connection.prepare("PRAGMA user_version");
    if (!statement) return statement.error();
    auto row = statement->step();
    if (!row) return row.error();
    if (!*row) return make_error(Errc::internal, "PRAGMA user_version returned no row");
    return static_cast<int>(statement->column_int64(0));
}

Result<void> migrate(Connection& connection) {
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
    if (*version < 1) MAGPIE_TRY(connection.exec(kSchemaV1));
    if (*version < 2) MAGPIE_TRY(connection.exec(kSchemaV2));
    MAGPIE_TRY(connection.exec(fmt::format("PRAGMA user_version = {}", kSchemaVersion)));
    return transaction->commit();
}

}  // namespace magpie::store::sqlite
