// The shared Store backend on PostgreSQL (issue 16): several magpied nodes serve the same domains from one
// database. Everything lives in PostgreSQL, blobs included (chunked), so nodes share nothing else; UIDs and
// MODSEQs are allocated under the mailbox's row lock; a node hears of other nodes' commits through
// LISTEN/NOTIFY. Open it through server/store_factory (magpied, magpie) or directly (tests, migrate).
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>

#include "base/result.h"
#include "store/flags.h"
#include "store/store.h"

namespace magpie::store {

struct PostgresOptions {
    std::string dsn;       // libpq connection string or URI, e.g. "host=127.0.0.1 port=5432 dbname=magpie"
    std::string password;  // empty: libpq's own sources (PGPASSWORD, ~/.pgpass); never logged
    bool read_only = false;      // no migration, every write refused (magpie check, export, listings)
    bool listen = true;          // hear other nodes' changes (LISTEN); off for one-shot tools
    std::size_t pool_size = 8;   // pooled connections for reads and IMAP/admin writes
    // Statements each connection keeps prepared (parsed and planned once, not per execution); 0: none, for a
    // pooler in transaction mode that does not track them (PgBouncer before 1.21).
    std::size_t prepared_statements = 256;
    std::size_t max_batch = 256;  // deliveries per group commit
    std::size_t chunk_bytes = 256 * 1024;  // one blob_chunks row
    // Where large APPENDs wait, as nameless files, until their commit copies them into blob_chunks (a
    // local disk of this node; nothing is left there after a crash). Empty: the system's temporary directory.
    std::filesystem::path spool_dir;
    std::size_t max_messages_per_transaction = 2000;  // one chunk of a STORE/EXPUNGE/COPY/MOVE
    std::size_t max_queued = 10000;  // deliveries waiting for a commit; beyond: unavailable
    std::size_t max_message_bytes = 256 * 1024 * 1024;
    std::size_t max_targets = 1000;
    std::size_t max_remote_recipients = 1000;
    std::size_t max_attempt_field_bytes = 2048;
    std::size_t max_transcript_bytes = 16 * 1024;
    std::size_t max_attempts_kept = 32;
    std::size_t max_mailbox_name_bytes = 1024;
    std::size_t max_subscriptions = 10000;
    FlagLimits flag_limits;
    // Emails and threads, as SqliteOptions: parents looked up at delivery, the same-subject window (seconds
    // of received_at), ids per query answer / find / update call, conditions per Email/query filter.
    std::size_t max_thread_references = 64;
    std::int64_t thread_subject_window_seconds = 30 * 24 * 3600;
    std::size_t max_query_results = 10000;
    std::size_t max_filter_nodes = 256;
    // `magpie migrate`: rows per batch (a cursor FETCH from PostgreSQL, one multi-row INSERT into it); memory
    // holds one batch and one blob's bytes, whatever the store's size.
    std::size_t migrate_batch_rows = 1000;
};

// Connects, and when writable creates or migrates the schema (unavailable for a newer one).
Result<std::unique_ptr<Store>> open_postgres_store(const PostgresOptions& options);

// `magpie check` on PostgreSQL: every message's blob present with the right hash and size, UIDs below
// UIDNEXT, MODSEQs not above HIGHESTMODSEQ, kept counters equal to the messages they count, the change log
// within HIGHESTMODSEQ. Unreferenced blobs are counted as garbage.
Result<CheckReport> check_postgres_store(const PostgresOptions& options);

// `magpie migrate`: the whole store, row for row with the same ids (UIDVALIDITY, UIDs, MODSEQs, flags, change
// log, Emails, threads and states, uploads, JMAP objects, queue with leases and attempts), into an empty target in one transaction. already_exists when the
// target holds a store; unavailable when a schema version differs from this magpie's.
struct MigrationReport {
    std::size_t rows = 0;      // all rows copied, blobs aside
    std::size_t messages = 0;
    std::size_t blobs = 0;
};
Result<MigrationReport> migrate_sqlite_to_postgres(const std::filesystem::path& data_dir, const PostgresOptions& to);
Result<MigrationReport> migrate_postgres_to_sqlite(const PostgresOptions& from, const std::filesystem::path& data_dir);

}  // namespace magpie::store
