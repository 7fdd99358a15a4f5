// The versioned PostgreSQL schema of the shared store (the `magpie_meta` row 'schema_version') and the
// migration magpied runs at start. Version numbers follow the embedded store's (store/sqlite/schema.h), so
// a step added there (queue v6, emails v7, ...) gets its twin here under the same number.
#pragma once

#include "base/result.h"
#include "store/postgres/pg.h"
#include "store/sqlite/emails.h"

namespace magpie::store::postgres {

// Kept equal to the embedded store's (magpie migrate copies between equal versions); 9 changes nothing here.
inline constexpr int kSchemaVersion = 11;

// change_log.kind values (the same as the embedded store's).
enum class ChangeKind : std::int64_t { appended = 1, flags = 2, expunged = 3 };

// The DDL that brings version `version - 1` to `version`; nullptr when unknown. PostgreSQL databases
// begin at version 5 (the backend was born then): step 5 creates the whole layout of that version.
const char* schema_step(int version);

// 0 for a database without Magpie's tables.
Result<int> schema_version(Connection& db);

// Creates or upgrades the schema in one transaction, under an advisory lock so that nodes starting at once
// migrate one after the other; unavailable for a schema newer than this code knows.
// `thread_limits` bound the threads step 7 computes for the messages an older store holds.
Result<void> migrate(Connection& db, const sqlite::ThreadLimits& thread_limits = {});

}  // namespace magpie::store::postgres
