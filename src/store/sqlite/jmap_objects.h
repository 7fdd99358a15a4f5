// The JMAP tables (uploads, JMAP-only objects and their state counters): the schema step, kept here so the
// store's migration list only names it.
#pragma once

namespace magpie::store::sqlite {

// Schema step 8 (the JMAP helper's number; 6 and 7 belong to the queue and email steps).
// - uploads keeps an account's uploaded bytes in the row (at most max_message_bytes, inside the WAL-covered
//   database, so an upload is durable with its commit's one fsync); an upload is the account's alone, so the
//   same bytes uploaded by two accounts are two rows.
// - jmap_objects holds Identity, VacationResponse and EmailSubmission objects as JSON; destroyed ones stay as
//   tombstones for /changes. jmap_states is the per-(account, type) counter their states come from.
inline constexpr const char* kSchemaJmapObjects = R"sql(
CREATE TABLE uploads(
  id INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  blob_id TEXT NOT NULL,
  type TEXT NOT NULL,
  size INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  content BLOB NOT NULL,
  UNIQUE(account_id, blob_id)
);
CREATE INDEX uploads_created ON uploads(account_id, created_at);

CREATE TABLE jmap_objects(
  id INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  type TEXT NOT NULL,
  created_state INTEGER NOT NULL,
  updated_state INTEGER NOT NULL,
  destroyed INTEGER NOT NULL DEFAULT 0,
  data TEXT NOT NULL
);
CREATE INDEX jmap_objects_account ON jmap_objects(account_id, type);

CREATE TABLE jmap_states(
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  type TEXT NOT NULL,
  state INTEGER NOT NULL,
  PRIMARY KEY(account_id, type)
) WITHOUT ROWID;
)sql";

}  // namespace magpie::store::sqlite
