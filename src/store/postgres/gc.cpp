// The collector of `magpie gc` on PostgreSQL: unreferenced blob rows (and, by cascade, their chunks) older
// than the grace period go, in transactions of a bounded number of rows. There are no files to sweep. A
// delivery reusing a blob either committed before (the blob is referenced) or inserts the row again after.
#include <fmt/format.h>

#include "store/postgres/postgres_store.h"

namespace magpie::store::postgres {
namespace {

constexpr std::int64_t kMinimumGraceSeconds = 60;
constexpr std::int64_t kRowsPerTransaction = 2000;

}  // namespace

Result<GarbageReport> PostgresStore::collect_garbage(std::int64_t now, std::int64_t grace_seconds) {
    if (grace_seconds < kMinimumGraceSeconds) {
        return make_error(Errc::invalid_argument, fmt::format("a grace period below {} s could collect a blob "
                                                              "being delivered", kMinimumGraceSeconds));
    }
    const std::int64_t cutoff = now - grace_seconds;
    GarbageReport report;
    // A message's blob is its Email's (magpie check says so), so the Emails answer for the messages too.
    for (;;) {
        auto removed = write<std::size_t>([&](Connection& db) -> Result<std::size_t> {
            // FOR UPDATE SKIP LOCKED: a blob row a delivery is inserting (or referencing) right now is skipped.
            auto done = db.exec(
                "DELETE FROM blobs WHERE id IN (SELECT b.id FROM blobs b WHERE b.created_at < $1 "
                "AND NOT EXISTS(SELECT 1 FROM emails em WHERE em.blob_id = b.id) "
                "AND NOT EXISTS(SELECT 1 FROM queue_messages q WHERE q.blob_id = b.id) "
                "AND NOT EXISTS(SELECT 1 FROM envelopes e WHERE e.blob_id = b.id) LIMIT $2 FOR UPDATE SKIP LOCKED)",
                Params().add(cutoff).add(kRowsPerTransaction));
            if (!done) return done.error();
            return static_cast<std::size_t>(done->affected());
        });
        if (!removed) return removed.error();
        report.blob_rows += *removed;
        if (*removed < static_cast<std::size_t>(kRowsPerTransaction)) break;
    }
    return report;
}

}  // namespace magpie::store::postgres
