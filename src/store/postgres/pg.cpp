#include "store/postgres/pg.h"

#include "store/postgres/pipeline.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

namespace magpie::store::postgres {
namespace {

// The SQLSTATE leads the error message ("postgres 40P01: ..."), so that callers holding only an Error can
// tell a retryable abort from a real failure.
constexpr std::string_view kPrefix = "postgres ";

Errc errc_of(std::string_view state) {
    if (state == "23505") return Errc::already_exists;
    if (state == "23503") return Errc::not_found;  // a foreign key names a row that is gone
    if (state == "40001" || state == "40P01") return Errc::unavailable;
    if (state.starts_with("08") || state.starts_with("57") || state.starts_with("53")) return Errc::unavailable;
    if (state.starts_with("22")) return Errc::invalid_argument;
    return Errc::internal;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

// ---- Params ----

Params& Params::add(std::int64_t value) { return add(std::string_view(std::to_string(value))); }

Params& Params::add(std::string_view text) {
    storage_.emplace_back(text);
    values_.push_back(storage_.back().c_str());
    lengths_.push_back(static_cast<int>(text.size()));
    formats_.push_back(0);
    return *this;
}

Params& Params::add_bytes(std::string_view data) {
    // An empty bytea still needs a non-null pointer, or libpq sends NULL.
    values_.push_back(data.empty() ? "" : data.data());
    lengths_.push_back(static_cast<int>(data.size()));
    formats_.push_back(1);
    return *this;
}

Params& Params::add_null() {
    values_.push_back(nullptr);
    lengths_.push_back(0);
    formats_.push_back(0);
    return *this;
}

// ---- Rows ----

Rows::Rows(pg_result* result) : result_(result) {}
Rows::Rows(Rows&& other) noexcept : result_(other.result_) { other.result_ = nullptr; }
Rows& Rows::operator=(Rows&& other) noexcept {
    if (this != &other) {
        if (result_ != nullptr) PQclear(result_);
        result_ = other.result_;
        other.result_ = nullptr;
    }
    return *this;
}
Rows::~Rows() {
    if (result_ != nullptr) PQclear(result_);
}

int Rows::size() const { return result_ != nullptr ? PQntuples(result_) : 0; }

std::int64_t Rows::affected() const {
    const char* count = result_ != nullptr ? PQcmdTuples(result_) : "";
    std::int64_t n = 0;
    std::from_chars(count, count + std::char_traits<char>::length(count), n);
    return n;
}

bool Rows::null(int row, int column) const { return PQgetisnull(result_, row, column) != 0; }

std::string Rows::text(int row, int column) const {
    return std::string(PQgetvalue(result_, row, column), static_cast<std::size_t>(PQgetlength(result_, row, column)));
}

std::int64_t Rows::int64(int row, int column) const {
    const char* value = PQgetvalue(result_, row, column);
    std::int64_t n = 0;
    std::from_chars(value, value + PQgetlength(result_, row, column), n);
    return n;
}

bool Rows::boolean(int row, int column) const { return PQgetvalue(result_, row, column)[0] == 't'; }

std::string Rows::bytes(int row, int column) const {
    // bytea_output = hex (the default since 9.0): "\x" then two hex digits per byte.
    const char* value = PQgetvalue(result_, row, column);
    auto length = static_cast<std::size_t>(PQgetlength(result_, row, column));
    if (length < 2 || value[0] != '\\' || value[1] != 'x') return std::string(value, length);
    std::string out;
    out.resize((length - 2) / 2);
    for (std::size_t i = 0; i < out.size(); ++i) {
        out[i] = static_cast<char>(hex_value(value[2 + 2 * i]) * 16 + hex_value(value[3 + 2 * i]));
    }
    return out;
}

std::string_view Rows::raw(int row, int column) const {
    return std::string_view(PQgetvalue(result_, row, column), static_cast<std::size_t>(PQgetlength(result_, row, column)));
}

bool is_stale_prepared(const Error& error) {
    std::string_view message = error.message;
    return message.starts_with("postgres 0A000") &&
           message.find("cached plan must not change result type") != std::string_view::npos;
}

bool is_retryable(const Error& error) {
    std::string_view message = error.message;
    // A stale prepared statement: exec() and Pipeline forgot it when it failed so, the next run prepares it
    // again.
    return message.starts_with("postgres 40001") || message.starts_with("postgres 40P01") ||
           is_stale_prepared(error);
}

// ---- Connection ----

Result<std::unique_ptr<Connection>> Connection::open(const std::string& conninfo, const std::string& password,
                                                     std::size_t prepared_statements) {
    // expand_dbname: `dbname` carries the whole connection string or URI. The password travels as its own
    // keyword so that it never sits in the DSN that logs and errors may show.
    std::vector<const char*> keys{"dbname", "application_name", "client_encoding"};
    std::vector<const char*> values{conninfo.c_str(), "magpied", "UTF8"};
    if (!password.empty()) {
        keys.push_back("password");
        values.push_back(password.c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
    pg_conn* conn = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
    if (conn == nullptr) return make_error(Errc::unavailable, "postgres: out of memory connecting");
    if (PQstatus(conn) != CONNECTION_OK) {
        std::string message = PQerrorMessage(conn);
        PQfinish(conn);
        while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
        return make_error(Errc::unavailable, fmt::format("postgres: cannot connect: {}", message));
    }
    auto connection = std::unique_ptr<Connection>(new Connection(conn, prepared_statements));
    // Quiet NOTICEs (CREATE ... IF NOT EXISTS and the like) instead of printing them on stderr.
    PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);
    // Durable before acknowledged: a COMMIT returns only once its WAL is flushed, whatever the server's
    // default says (synchronous_commit = off would acknowledge mail a crash then loses).
    MAGPIE_TRY(connection->run("SET synchronous_commit = on"));
    return connection;
}

Connection::~Connection() { PQfinish(conn_); }

bool Connection::broken() const { return PQstatus(conn_) != CONNECTION_OK; }

bool Connection::alive() {
    if (broken()) return false;
    // An idle connection has nothing to read unless the server closed it (a FATAL "terminating
    // connection" message, then end of file) or sent a notice: a readable socket is consumed until it is
    // quiet or reads as end of file (PQconsumeInput fails). A few rounds at most: the server's last words
    // and its close arrive together.
    for (int round = 0; round < 4; ++round) {
        pollfd fd{PQsocket(conn_), POLLIN, 0};
        if (::poll(&fd, 1, 0) <= 0) return !broken();
        if (PQconsumeInput(conn_) == 0) return false;
        while (PGnotify* note = PQnotifies(conn_)) PQfreemem(note);  // not a LISTEN connection: nothing to keep
        if (broken()) return false;
    }
    return !broken();
}

Error Connection::error_of(pg_result* result) const { return error_from_result(conn_, result); }

Error error_from_result(pg_conn* conn, pg_result* result) {
    const char* state = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
    std::string message = result != nullptr ? PQresultErrorMessage(result) : PQerrorMessage(conn);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
    if (state == nullptr) {
        // No SQLSTATE: the connection itself failed (server gone, socket closed).
        return make_error(Errc::unavailable, fmt::format("postgres connection: {}", message));
    }
    return make_error(errc_of(state), fmt::format("{}{}: {}", kPrefix, state, message));
}

const std::string* Connection::prepared(std::string_view sql) const {
    auto found = prepared_.find(sql);
    return found != prepared_.end() ? &found->second : nullptr;
}

const std::string* Connection::remember(std::string_view sql) {
    if (prepared_.size() >= prepared_limit_) return nullptr;
    auto [it, added] = prepared_.emplace(std::string(sql), fmt::format("magpie_{}", ++prepared_count_));
    return &it->second;
}

void Connection::forget(std::string_view sql) {
    if (auto found = prepared_.find(sql); found != prepared_.end()) prepared_.erase(found);
}

Result<Rows> Connection::exec(std::string_view sql, const Params& params, bool binary_results) {
    const std::string* name = prepared(sql);
    if (name == nullptr && (name = remember(sql)) != nullptr) {
        // A round trip the first time only. Types of the parameters are inferred as PQexecParams infers them;
        // an error here (bad SQL, an aborted transaction) is the statement's own.
        pg_result* parsed = PQprepare(conn_, name->c_str(), std::string(sql).c_str(), 0, nullptr);
        if (parsed == nullptr || PQresultStatus(parsed) != PGRES_COMMAND_OK) {
            Error error = error_of(parsed);
            if (parsed != nullptr) PQclear(parsed);
            forget(sql);
            return error;
        }
        PQclear(parsed);
    }
    pg_result* result =
        name != nullptr
            ? PQexecPrepared(conn_, name->c_str(), params.size(), params.values(), params.lengths(),
                             params.formats(), binary_results ? 1 : 0)
            : PQexecParams(conn_, std::string(sql).c_str(), params.size(), nullptr, params.values(),
                           params.lengths(), params.formats(), binary_results ? 1 : 0);
    ExecStatusType status = result != nullptr ? PQresultStatus(result) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return Rows(result);
    Error error = error_of(result);
    if (result != nullptr) PQclear(result);
    if (name != nullptr && is_stale_prepared(error)) forget(sql);
    return error;
}

Result<void> Connection::run(std::string_view sql) {
    std::string statement(sql);
    pg_result* result = PQexec(conn_, statement.c_str());
    ExecStatusType status = result != nullptr ? PQresultStatus(result) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
        PQclear(result);
        return {};
    }
    Error error = error_of(result);
    if (result != nullptr) PQclear(result);
    return error;
}

// ---- Pool ----

Pool::Pool(std::string conninfo, std::string password, std::size_t max, std::size_t prepared_statements)
    : conninfo_(std::move(conninfo)),
      password_(std::move(password)),
      max_(std::max<std::size_t>(max, 1)),
      prepared_statements_(prepared_statements) {}

Pool::Lease::~Lease() {
    if (connection_) pool_->release(std::move(connection_));
}

Result<Pool::Lease> Pool::acquire() {
    std::unique_lock lock(mutex_);
    for (;;) {
        available_.wait(lock, [&] { return !idle_.empty() || open_ < max_; });
        if (idle_.empty()) break;
        std::unique_ptr<Connection> connection = std::move(idle_.back());
        idle_.pop_back();
        if (connection->alive()) return Lease(this, std::move(connection));
        // PostgreSQL restarted (or dropped it) while the connection sat idle: close it and take the next,
        // so that the first requests after a restart do not fail on connections the server already closed.
        connection.reset();
        --open_;
    }
    ++open_;
    lock.unlock();
    auto connection = Connection::open(conninfo_, password_, prepared_statements_);
    if (!connection) {
        lock.lock();
        --open_;
        available_.notify_one();
        return connection.error();
    }
    return Lease(this, std::move(*connection));
}

void Pool::release(std::unique_ptr<Connection> connection) {
    std::lock_guard lock(mutex_);
    // A connection left inside a transaction (a caller's error path) or broken is not handed out again.
    if (connection->broken() || PQtransactionStatus(connection->handle()) != PQTRANS_IDLE) {
        connection.reset();
        --open_;
    } else {
        idle_.push_back(std::move(connection));
    }
    available_.notify_one();
}

// ---- transactions and literals ----

Result<void> in_transaction(Connection& db, const std::function<Result<void>()>& body, std::string_view begin,
                            int attempts) {
    for (int attempt = 1;; ++attempt) {
        MAGPIE_TRY(db.run(begin));
        Result<void> result = body();
        if (result) result = db.run("COMMIT");
        if (result) return result;
        (void)db.run("ROLLBACK");
        if (!is_retryable(result.error()) || attempt >= attempts) return result;
    }
}

std::string int_array(std::span<const std::int64_t> values) {
    std::string out = "{";
    for (std::int64_t v : values) {
        if (out.size() > 1) out += ',';
        out += std::to_string(v);
    }
    out += '}';
    return out;
}

std::string uint_array(std::span<const std::uint32_t> values) {
    std::string out = "{";
    for (std::uint32_t v : values) {
        if (out.size() > 1) out += ',';
        out += std::to_string(v);
    }
    out += '}';
    return out;
}

std::string text_array(std::span<const std::string> values) {
    std::string out = "{";
    for (const std::string& v : values) {
        if (out.size() > 1) out += ',';
        out += '"';
        for (char c : v) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        out += '"';
    }
    out += '}';
    return out;
}

}  // namespace magpie::store::postgres
