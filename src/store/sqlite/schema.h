// The versioned SQLite schema of the embedded store (PRAGMA user_version) and the migration that brings a
// database up to it. Tables are laid out for the IMAP and JMAP waves too: per-mailbox UIDVALIDITY, UIDNEXT
// and HIGHESTMODSEQ, and a change log written in the same transaction as the change it records.
#pragma once

#include <cstdint>

#include "base/result.h"
#include "store/sqlite/db.h"
#include "store/sqlite/emails.h"

namespace magpie::store::sqlite {

// 9: blob_contents may hold zstd frames (blobs.location 2); an older magpie would take them for files.
// 10: meta.directory_version and the triggers that raise it.
// 11: messages_blob dropped (a message's blob is found through its Email's emails_blob).
inline constexpr int kSchemaVersion = 11;
// The step that brings message identity (emails.h): messages rows become Emails.
inline constexpr int kEmailsSchemaVersion = 7;

// change_log.kind values.
enum class ChangeKind : std::int64_t { appended = 1, flags = 2, expunged = 3 };

// The DDL that brings version `version - 1` to `version` (1 creates the tables); nullptr when unknown.
const char* schema_step(int version);

// Reads PRAGMA user_version: 0 for an empty database.
Result<int> schema_version(Connection& connection);

// Creates the schema on an empty database, or checks that an existing one is a version this code knows.
Result<void> migrate(Connection& connection, const ThreadLimits& thread_limits = {});

}  // namespace magpie::store::sqlite
