#include "store/postgres/login_counters.h"

namespace magpie::store::postgres {
namespace {

// An arbitrary constant of ours for pg_advisory_xact_lock ("magpie login counters").
constexpr std::int64_t kCreateLock = 0x6d61677069656c63;
// Stale rows forgotten per update: a steady trickle keeps the table near the live entries without one
// update ever paying for a large sweep.
constexpr std::int64_t kStaleRowsPerUpdate = 16;

}  // namespace

Result<void> ensure_login_counters(Connection& db) {
    return in_transaction(db, [&]() -> Result<void> {
        MAGPIE_TRY(db.exec("SELECT pg_advisory_xact_lock($1)", Params().add(kCreateLock)));
        MAGPIE_TRY(
            db.run("CREATE UNLOGGED TABLE IF NOT EXISTS login_failures("
                   "  key text PRIMARY KEY,"
                   "  failures integer NOT NULL,"
                   "  window_start bigint NOT NULL,"
                   "  lockouts integer NOT NULL,"
                   "  locked_until bigint NOT NULL,"
                   "  last_failure bigint NOT NULL,"
                   "  touched_at bigint NOT NULL);"
                   "CREATE INDEX IF NOT EXISTS login_failures_touched ON login_failures(touched_at);"));
        return {};
    });
}

Result<std::int64_t> PostgresLoginCounters::locked_until(const std::vector<std::string>& keys) {
    auto lease = pool_.acquire();
    if (!lease) return lease.error();
    auto rows = (*lease)->exec(
        "SELECT coalesce(max(locked_until), 0) FROM login_failures WHERE key = ANY($1::text[])",
        Params().add(text_array(keys)));
    if (!rows) return rows.error();
    return rows->int64(0, 0);
}

Result<void> PostgresLoginCounters::update(std::string_view key, std::int64_t now, std::int64_t stale_before,
                                           const std::function<void(LoginFailureEntry&)>& change) {
    auto lease = pool_.acquire();
    if (!lease) return lease.error();
    Connection& db = **lease;
    return in_transaction(db, [&]() -> Result<void> {
        MAGPIE_TRY(
            db.exec("DELETE FROM login_failures WHERE key IN (SELECT key FROM login_failures "
                    "WHERE touched_at < $1 AND key <> $2 LIMIT $3 FOR UPDATE SKIP LOCKED)",
                    Params().add(stale_before).add(key).add(kStaleRowsPerUpdate)));
        // The row exists (and is locked) before it is read: two nodes failing at once queue on the lock
        // instead of both reading "no entry" and one overwriting the other's count.
        MAGPIE_TRY(
            db.exec("INSERT INTO login_failures VALUES($1, 0, $2, 0, 0, 0, $2) ON CONFLICT(key) DO NOTHING",
                    Params().add(key).add(now)));
        auto rows = db.exec(
            "SELECT failures, window_start, lockouts, locked_until, last_failure FROM login_failures "
            "WHERE key = $1 FOR UPDATE",
            Params().add(key));
        if (!rows) return rows.error();
        LoginFailureEntry entry;
        if (!rows->empty()) {
            entry.failures = static_cast<std::uint32_t>(rows->int64(0, 0));
            entry.window_start = rows->int64(0, 1);
            entry.lockouts = static_cast<std::uint32_t>(rows->int64(0, 2));
            entry.locked_until = rows->int64(0, 3);
            entry.last_failure = rows->int64(0, 4);
        }
        change(entry);
        MAGPIE_TRY(
            db.exec("UPDATE login_failures SET failures = $2, window_start = $3, lockouts = $4, "
                    "locked_until = $5, last_failure = $6, touched_at = $7 WHERE key = $1",
                    Params()
                        .add(key)
                        .add(std::int64_t{entry.failures})
                        .add(entry.window_start)
                        .add(std::int64_t{entry.lockouts})
                        .add(entry.locked_until)
                        .add(entry.last_failure)
                        .add(now)));
        return {};
    });
}

Result<void> PostgresLoginCounters::erase(std::string_view key) {
    auto lease = pool_.acquire();
    if (!lease) return lease.error();
    MAGPIE_TRY((*lease)->exec("DELETE FROM login_failures WHERE key = $1", Params().add(key)));
    return {};
}

}  // namespace magpie::store::postgres
