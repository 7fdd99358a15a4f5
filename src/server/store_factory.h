// The one place that turns the configuration's [store] section into a Store backend, for magpied and for
// `magpie` alike, so both open the same store with the same options.
#pragma once

#include <memory>

#include "base/result.h"
#include "server/config.h"
#include "store/postgres/postgres.h"
#include "store/store.h"

namespace magpie::server {

// Opens (and when writable, creates and migrates) the backend that `[store] backend` names, in
// `config.data_dir` for the embedded one. read_only opens it for inspection beside a running magpied;
// Errc::not_found when a read-only open finds no store there.
Result<std::unique_ptr<store::Store>> open_store(const Config& config, bool read_only = false);

// The PostgreSQL options of a configuration whose backend is "postgres": the DSN, the password read from
// password_file (first line; libpq's PGPASSWORD when there is none), the pool and batch sizes and the Email
// limits.
Result<store::PostgresOptions> postgres_options(const Config& config);

// The embedded store's options from the configuration: [store] sizes and the Email limits, [queue]
// max_transcript.
store::SqliteOptions sqlite_options(const Config& config, bool read_only = false);

// `magpie check` on whichever backend the configuration names.
Result<store::CheckReport> check_configured_store(const Config& config);

}  // namespace magpie::server
