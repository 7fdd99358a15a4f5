// The collector of `magpie gc`: unreferenced blob rows go first, in chunks through the group committer (so
// a delivery that reuses a blob either commits before, and the blob is referenced, or after, and re-inserts
// its row); then the file sweep removes every file older than the grace period that no blob row names,
// holding blob writers off while it looks (blob.h).
#include <fmt/format.h>

#include "store/sqlite/sqlite_store.h"

namespace magpie::store::sqlite {
namespace {

constexpr std::int64_t kMinimumGraceSeconds = 60;  // well above the time from a blob's write to its commit
constexpr std::int64_t kRowsPerTransaction = 2000;

}  // namespace

Result<GarbageReport> SqliteStore::collect_garbage(std::int64_t now, std::int64_t grace_seconds) {
    if (grace_seconds < kMinimumGraceSeconds) {
        return make_error(Errc::invalid_argument, fmt::format("a grace period below {} s could collect a blob "
                                                              "being delivered", kMinimumGraceSeconds));
    }
    const std::int64_t cutoff = now - grace_seconds;
    GarbageReport report;
    // A message's blob is its Email's (magpie check says so), so the Emails answer for the messages too.
    for (;;) {
        auto removed = write<std::size_t>([&](Connection& db) -> Result<std::size_t> {
            auto statement = db.prepare(
                "DELETE FROM blobs WHERE id IN (SELECT b.id FROM blobs b WHERE b.created_at < ?1 "
                "AND NOT EXISTS(SELECT 1 FROM emails m WHERE m.blob_id = b.id) "
                "AND NOT EXISTS(SELECT 1 FROM queue_messages q WHERE q.blob_id = b.id) "
                "AND NOT EXISTS(SELECT 1 FROM envelopes e WHERE e.blob_id = b.id) LIMIT ?2)");
            if (!statement) return statement.error();
            MAGPIE_TRY(statement->bind(1, cutoff).bind(2, kRowsPerTransaction).run());
            return static_cast<std::size_t>(db.changes());
        });
        if (!removed) return removed.error();
        report.blob_rows += *removed;
        if (*removed < static_cast<std::size_t>(kRowsPerTransaction)) break;
    }
    auto lease = readers_.acquire();
    if (!lease) return lease.error();
    Connection& db = **lease;
    // Each question is its own read: it sees the latest commit, not a snapshot from before the sweep.
    auto swept = blobs_->sweep(cutoff, [&](std::string_view blob_id) -> Result<bool> {
        auto statement = db.prepare("SELECT 1 FROM blobs WHERE id = ?1");
        if (!statement) return statement.error();
        auto row = statement->bind_text(1, blob_id).step();
        if (!row) return row.error();
        return *row;
    });
    if (!swept) return swept.error();
    report.files = swept->removed;
    report.file_bytes = swept->bytes;
    return report;
}

}  // namespace magpie::store::sqlite
