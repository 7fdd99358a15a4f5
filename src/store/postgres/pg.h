// A thin, owning layer over libpq for the PostgreSQL backend: connections, parameters (text, or binary
// bytes that borrow the caller's buffer so a 256 KiB blob chunk is never copied), result rows, a bounded
// connection pool that drops broken connections (PostgreSQL restarted: the next caller reconnects), and
// transactions that retry on serialization failures and deadlocks. Internal to src/store/postgres.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/result.h"

struct pg_conn;
struct pg_result;

namespace magpie::store::postgres {

// Query parameters ($1, $2, ...). Text values are copied (libpq wants NUL-terminated text); bytes go in
// binary format and borrow `data`, which must outlive the exec.
class Params {
public:
    Params& add(std::int64_t value);
    Params& add(std::string_view text);
    Params& add(const char* text) { return add(std::string_view(text)); }
    Params& add_bytes(std::string_view data);
    Params& add_null();

    int size() const { return static_cast<int>(values_.size()); }
    const char* const* values() const { return values_.data(); }
    const int* lengths() const { return lengths_.data(); }
    const int* formats() const { return formats_.data(); }

private:
    std::deque<std::string> storage_;  // stable addresses for the text values
    std::vector<const char*> values_;
    std::vector<int> lengths_;
    std::vector<int> formats_;
};

// A statement's result (text format). Columns are read by index.
class Rows {
public:
    explicit Rows(pg_result* result);
    Rows(Rows&&) noexcept;
    Rows& operator=(Rows&&) noexcept;
    ~Rows();

    int size() const;
    bool empty() const { return size() == 0; }
    std::int64_t affected() const;  // rows an INSERT/UPDATE/DELETE changed
    bool null(int row, int column) const;
    std::string text(int row, int column) const;
    std::int64_t int64(int row, int column) const;  // 0 for NULL
    bool boolean(int row, int column) const;
    std::string bytes(int row, int column) const;  // a bytea column, decoded (text results)
    std::string_view raw(int row, int column) const;  // the value as sent (binary results: bytea's bytes)

private:
    pg_result* result_;
};

// SQLSTATE classes the store reacts to. Retryable: a serialization failure or deadlock, or a prepared
// statement whose result columns a schema change (another node's upgrade) altered: PostgreSQL aborted the
// transaction with nothing done, and running it again prepares the statement anew.
bool is_retryable(const Error& error);
// That last case alone: a prepared statement's result columns changed under it (SQLSTATE 0A000).
bool is_stale_prepared(const Error& error);

// One session with PostgreSQL. exec() and Pipeline keep up to `prepared_statements` statements prepared
// (named statements of the extended query protocol: parsed, analysed and, once PostgreSQL settles on a
// generic plan, planned once per connection instead of per execution), keyed by their SQL text; beyond the
// limit a statement runs unnamed, parsed and planned each time. 0 prepares nothing (a pooler in transaction
// mode that does not track prepared statements, PgBouncer before 1.21).
class Connection {
public:
    // `conninfo` is a libpq connection string or URI; `password` (may be empty: then PGPASSWORD, ~/.pgpass).
    static Result<std::unique_ptr<Connection>> open(const std::string& conninfo, const std::string& password,
                                                    std::size_t prepared_statements = 0);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // `binary_results`: every column comes back in binary format (for bytea: the bytes, no hex).
    Result<Rows> exec(std::string_view sql, const Params& params = {}, bool binary_results = false);
    // Several statements without parameters (DDL, BEGIN/COMMIT).
    Result<void> run(std::string_view sql);
    bool broken() const;
    // Not broken, and not closed by the server while idle (checked without blocking): worth handing out.
    bool alive();
    pg_conn* handle() const { return conn_; }

    // The name `sql` is prepared under on this connection, or null.
    const std::string* prepared(std::string_view sql) const;
    // A new name remembered for `sql`, or null when the connection keeps its limit already. The caller
    // prepares the statement under it and forgets it when that fails. Names are never reused, so a statement
    // forgotten after all (its Parse outcome unknown) cannot collide with a later one.
    const std::string* remember(std::string_view sql);
    void forget(std::string_view sql);

private:
    Connection(pg_conn* conn, std::size_t prepared_statements)
        : conn_(conn), prepared_limit_(prepared_statements) {}
    Error error_of(pg_result* result) const;

    struct SqlHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view sql) const { return std::hash<std::string_view>{}(sql); }
    };
    pg_conn* conn_;
    std::size_t prepared_limit_;
    std::uint64_t prepared_count_ = 0;  // names handed out: "magpie_1", "magpie_2", ...
    std::unordered_map<std::string, std::string, SqlHash, std::equal_to<>> prepared_;  // SQL -> name
};

// At most `max` connections; callers wait while all are out. A broken connection is closed on release.
class Pool {
public:
    // `prepared_statements`: each connection's limit (Connection).
    Pool(std::string conninfo, std::string password, std::size_t max, std::size_t prepared_statements = 0);

    class Lease {
    public:
        Lease(Pool* pool, std::unique_ptr<Connection> connection) : pool_(pool), connection_(std::move(connection)) {}
        Lease(Lease&&) noexcept = default;
        Lease& operator=(Lease&&) = delete;
        ~Lease();
        Connection& operator*() const { return *connection_; }
        Connection* operator->() const { return connection_.get(); }

    private:
        Pool* pool_;
        std::unique_ptr<Connection> connection_;
    };

    Result<Lease> acquire();
    const std::string& conninfo() const { return conninfo_; }
    const std::string& password() const { return password_; }

private:
    void release(std::unique_ptr<Connection> connection);

    std::string conninfo_;
    std::string password_;
    std::size_t max_;
    std::size_t prepared_statements_;
    std::mutex mutex_;
    std::condition_variable available_;
    std::vector<std::unique_ptr<Connection>> idle_;
    std::size_t open_ = 0;
};

// Runs `body` between BEGIN and COMMIT (ROLLBACK on its error), again up to `attempts` times when
// PostgreSQL aborted it for a deadlock or a serialization failure. `begin` may name an isolation level.
Result<void> in_transaction(Connection& db, const std::function<Result<void>()>& body,
                            std::string_view begin = "BEGIN", int attempts = 4);

// PostgreSQL literals for array parameters: "{1,2,3}" and {"a","b"} (elements quoted and escaped).
std::string int_array(std::span<const std::int64_t> values);
std::string uint_array(std::span<const std::uint32_t> values);
std::string text_array(std::span<const std::string> values);

}  // namespace magpie::store::postgres
