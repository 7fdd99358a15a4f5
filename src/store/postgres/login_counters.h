// The failed-login counters of the PostgreSQL backend (store::SharedLoginCounters): one row per throttle
// key in `login_failures`, changed under the row's lock (SELECT ... FOR UPDATE) so that two nodes counting
// one guesser's failures at the same moment both count. The table is UNLOGGED and outside the versioned
// schema on purpose: the counters are minutes-long state, not mail; a crash of PostgreSQL empties them (as
// a restart of magpied empties the embedded store's), and no backup or `magpie migrate` carries them.
// Internal to src/store/postgres.
#pragma once

#include "store/postgres/pg.h"
#include "store/shared_login_counters.h"

namespace magpie::store::postgres {

// Creates the table when missing (nodes starting together take turns on an advisory lock).
Result<void> ensure_login_counters(Connection& db);

class PostgresLoginCounters final : public SharedLoginCounters {
public:
    explicit PostgresLoginCounters(Pool& pool) : pool_(pool) {}

    Result<std::int64_t> locked_until(const std::vector<std::string>& keys) override;
    Result<void> update(std::string_view key, std::int64_t now, std::int64_t stale_before,
                        const std::function<void(LoginFailureEntry&)>& change) override;
    Result<void> erase(std::string_view key) override;

private:
    Pool& pool_;
};

}  // namespace magpie::store::postgres
