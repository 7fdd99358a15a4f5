#include "store/postgres/pipeline.h"

#include <libpq-fe.h>
#include <poll.h>

#include <cerrno>
#include <optional>
#include <string>

namespace magpie::store::postgres {

Result<Rows> read_statement(Pool& pool, std::string_view sql, const Params& params) {
    for (int attempt = 1;; ++attempt) {
        auto lease = pool.acquire();
        if (!lease) return lease.error();
        auto rows = (*lease)->exec(sql, params);
        if (rows || attempt >= 2 || !((*lease)->broken() || is_retryable(rows.error()))) return rows;
    }
}

Pipeline::~Pipeline() {
    // An unread pipeline leaves the connection unusable for plain statements: read it (and drop it).
    if (active_) (void)flush();
}

std::optional<std::size_t> Pipeline::first_failure() const {
    for (std::size_t i = 0; i < results_.size(); ++i) {
        if (!results_[i]) return i;
    }
    return std::nullopt;
}

Result<void> Pipeline::drain_output() {
    // PQflush returns 1 while bytes remain unsent. Meanwhile the server may be blocked writing answers we have
    // not read: take them in (PQconsumeInput only buffers them), so neither side waits on the other.
    pg_conn* conn = db_.handle();
    for (;;) {
        const int left = PQflush(conn);
        if (left == 0) return {};
        if (left < 0) return error_from_result(conn, nullptr);
        pollfd fd{PQsocket(conn), POLLIN | POLLOUT, 0};
        if (::poll(&fd, 1, -1) < 0 && errno != EINTR) return make_error(Errc::io_error, "postgres: poll failed");
        if ((fd.revents & (POLLIN | POLLERR | POLLHUP)) != 0 && PQconsumeInput(conn) == 0)
            return error_from_result(conn, nullptr);
    }
}

Result<std::size_t> Pipeline::send(std::string_view sql, const Params& params, bool binary_results) {
    pg_conn* conn = db_.handle();
    if (!active_) {
        if (PQenterPipelineMode(conn) == 0) return error_from_result(conn, nullptr);
        if (PQsetnonblocking(conn, 1) != 0) return error_from_result(conn, nullptr);
        active_ = true;
    }
    const std::string statement(sql);
    const std::string* name = db_.prepared(sql);
    if (name == nullptr && (name = db_.remember(sql)) != nullptr) {
        // Parsed in the same round trip, its answer read (and skipped) in flush(); forgotten there if it
        // failed.
        if (PQsendPrepare(conn, name->c_str(), statement.c_str(), 0, nullptr) == 0) {
            db_.forget(sql);
            return error_from_result(conn, nullptr);
        }
        queued_.push_back({statement, true});
    }
    const int sent = name != nullptr
                         ? PQsendQueryPrepared(conn, name->c_str(), params.size(), params.values(),
                                               params.lengths(), params.formats(), binary_results ? 1 : 0)
                         : PQsendQueryParams(conn, statement.c_str(), params.size(), nullptr, params.values(),
                                             params.lengths(), params.formats(), binary_results ? 1 : 0);
    if (sent == 0) return error_from_result(conn, nullptr);
    queued_.push_back({name != nullptr ? statement : std::string(), false});
    ++pending_;
    MAGPIE_TRY(drain_output());
    return results_.size() + pending_ - 1;
}

Result<void> Pipeline::flush() {
    if (!active_) return {};
    pg_conn* conn = db_.handle();
    active_ = false;
    std::optional<Error> lost;
    if (PQpipelineSync(conn) == 0) lost = error_from_result(conn, nullptr);
    if (!lost) {
        if (auto drained = drain_output(); !drained) lost = drained.error();
    }
    (void)PQsetnonblocking(conn, 0);  // PQgetResult below waits for what it needs
    std::optional<Error> unprepared;  // the Parse that failed, given to its statement (not run because of it)
    for (; !queued_.empty() && !lost; queued_.pop_front()) {
        pg_result* result = PQgetResult(conn);
        if (result == nullptr) {
            lost = error_from_result(conn, nullptr);
            break;
        }
        const ExecStatusType status = PQresultStatus(result);
        const Queued& queued = queued_.front();
        if (queued.prepare) {
            if (status != PGRES_COMMAND_OK) {
                db_.forget(queued.sql);
                unprepared = status == PGRES_PIPELINE_ABORTED
                                 ? std::nullopt
                                 : std::optional(error_from_result(conn, result));
            }
            PQclear(result);
        } else {
            if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
                results_.emplace_back(Rows(result));
            } else if (status == PGRES_PIPELINE_ABORTED) {
                PQclear(result);
                results_.emplace_back(unprepared ? *unprepared
                                                 : make_error(Errc::unavailable,
                                                              "postgres: not run, an earlier "
                                                              "statement of its pipeline failed"));
            } else {
                Error error = error_from_result(conn, result);
                PQclear(result);
                if (!queued.sql.empty() && is_stale_prepared(error))
                    db_.forget(queued.sql);  // its result columns changed: prepared again next time
                results_.emplace_back(std::move(error));
            }
            unprepared.reset();
            --pending_;
        }
        // Each statement's (and each Parse's) results end with a null.
        while (pg_result* extra = PQgetResult(conn)) PQclear(extra);
        if (db_.broken()) lost = error_from_result(conn, nullptr);
    }
    for (; !queued_.empty(); queued_.pop_front()) {
        if (queued_.front().prepare) db_.forget(queued_.front().sql);
    }
    for (; pending_ > 0; --pending_) results_.emplace_back(*lost);
    if (!lost) {
        pg_result* sync = PQgetResult(conn);
        if (sync == nullptr || PQresultStatus(sync) != PGRES_PIPELINE_SYNC) lost = error_from_result(conn, sync);
        if (sync != nullptr) PQclear(sync);
    }
    if (!lost && PQexitPipelineMode(conn) == 0) lost = error_from_result(conn, nullptr);
    if (lost) return *lost;
    return {};
}

}  // namespace magpie::store::postgres
