// Fewer round trips to PostgreSQL. Each costs a wake-up of a server process and of ours, which on a busy
// machine is milliseconds, so the hot paths count them: a lone read runs as one statement (read_statement),
// and a batch of writes as statements sent back to back (Pipeline).
//
// Pipeline: statements sent back to back without waiting for each answer (libpq's pipeline mode), read back
// together at flush(): N statements cost one round trip instead of N. The group committer sends a whole batch
// of deliveries this way. PostgreSQL runs them in order; the first that fails aborts the rest up to the flush
// (they come back as "not run"), and inside a transaction block the transaction is then aborted too.
// Sends never block on a full socket while the server waits for us to read its answers: the connection is
// non-blocking while sending, and what the server has answered so far is taken in as it comes.
// A statement the connection has not prepared yet is prepared in the same round trip (Connection).
// Internal to src/store/postgres.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "store/postgres/pg.h"

namespace magpie::store::postgres {

// A statement's error as Connection::exec reports it ("postgres SQLSTATE: message", or a connection error).
Error error_from_result(pg_conn* conn, pg_result* result);

// One statement on a pooled connection, outside any transaction block (a statement is its own snapshot): one
// round trip where BEGIN, the statement and COMMIT take three. Once more when the pooled connection turned
// out broken (PostgreSQL restarted since it was last used; a fresh one then) or the failure is retryable (a
// prepared statement another node's schema change altered): a read is safe to repeat.
Result<Rows> read_statement(Pool& pool, std::string_view sql, const Params& params = {});

class Pipeline {
public:
    explicit Pipeline(Connection& db) : db_(db) {}
    ~Pipeline();
    Pipeline(const Pipeline&) = delete;
    Pipeline& operator=(const Pipeline&) = delete;

    // Queues one statement; its bytes parameters are copied into libpq's buffer before this returns. The
    // statement's index (for result()) counts from 0 over the pipeline's life. An error here is the
    // connection's (it is then broken); the statement's own outcome comes from result() after flush().
    Result<std::size_t> send(std::string_view sql, const Params& params = {}, bool binary_results = false);
    // Ends the statements sent so far with a sync and reads their results; the connection leaves pipeline mode
    // until the next send. An error is the connection's: every statement not yet read is then failed with it.
    Result<void> flush();
    // After flush(): the i-th statement's rows or error.
    Result<Rows>& result(std::size_t index) { return results_.at(index); }
    std::size_t size() const { return results_.size() + pending_; }
    // The first statement flushed so far that failed, if any.
    std::optional<std::size_t> first_failure() const;

private:
    Result<void> drain_output();

    Connection& db_;
    bool active_ = false;  // in pipeline mode, statements sent and not yet read
    std::size_t pending_ = 0;  // statements sent and not yet read
    // What each answer still to come is for, in order: a statement or the Parse of one. `sql`: a Parse's
    // statement (the connection forgets it when the Parse fails) or a prepared statement's (forgotten when a
    // schema change altered its result columns); empty for a statement sent unnamed.
    struct Queued {
        std::string sql;
        bool prepare = false;
    };
    std::deque<Queued> queued_;
    std::vector<Result<Rows>> results_;
};

}  // namespace magpie::store::postgres
