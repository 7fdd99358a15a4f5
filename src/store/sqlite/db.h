// A thin RAII layer over the SQLite C API for the store's backend: a Connection owns one sqlite3 handle and
// a cache of prepared statements, a Statement binds, steps and reads columns, a Transaction rolls back unless
// committed. Every failure becomes a Result with an Errc chosen from the SQLite result code.
// A Connection is used by one thread at a time (the store's mutexes and reader pool see to that).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/result.h"

struct sqlite3;
struct sqlite3_stmt;

namespace magpie::store::sqlite {

// Maps a SQLite result code (primary or extended) to our error vocabulary.
Error sqlite_error(int code, std::string_view context, sqlite3* db = nullptr);

class Connection;

// A prepared statement borrowed from a Connection's cache (or owned, when the cached one is in use).
// Destruction resets it and clears its bindings, so the next user starts clean.
class Statement {
public:
    Statement(Statement&& other) noexcept;
    Statement& operator=(Statement&&) = delete;
    Statement(const Statement&) = delete;
    ~Statement();

    // Parameters are 1-based, as in SQLite.
    Statement& bind(int index, std::int64_t value);
    Statement& bind_text(int index, std::string_view value);
    Statement& bind_blob(int index, std::string_view bytes);
    Statement& bind_null(int index);

    // Runs one step: true when a row is ready, false when done.
    Result<bool> step();
    // Steps to completion, for statements that return no rows.
    Result<void> run();

    std::int64_t column_int64(int index) const;
    std::string column_text(int index) const;  // also for BLOB columns: raw bytes
    bool column_is_null(int index) const;

private:
    friend class Connection;
    Statement(Connection* owner, sqlite3_stmt* stmt, bool* in_use);

    Connection* owner_;
    sqlite3_stmt* stmt_;
    bool* in_use_;  // the cache slot's flag; nullptr when this statement is owned and finalized here
    Error bind_error_{Errc::internal, ""};
    bool bind_failed_ = false;
};

class Connection {
public:
    enum class Mode { read_write_create, read_only };
    // How the connection's commits reach the write-ahead log: as SQLite writes them (two writes per page), or
    // gathered into one write per commit (wal_vfs.h; for the store's one writer).
    enum class WalWrites { per_frame, coalesced };

    static Result<std::unique_ptr<Connection>> open(const std::filesystem::path& path, Mode mode,
                                                    int busy_timeout_ms, WalWrites wal_writes = WalWrites::per_frame);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Runs one or more statements that return nothing of interest (schema, pragmas).
    Result<void> exec(std::string_view sql);
    // Prepares `sql` once per connection and reuses it afterwards.
    Result<Statement> prepare(const std::string& sql);
    // Prepares SQL built per request (a query's filter shape) without caching it: finalized when it goes, so
    // the cache does not grow with every shape a client sends.
    Result<Statement> prepare_once(const std::string& sql);

    std::int64_t last_insert_rowid() const;
    int changes() const;  // rows changed by the last INSERT, UPDATE or DELETE

    sqlite3* handle() const { return db_; }

private:
    explicit Connection(sqlite3* db) : db_(db) {}

    struct Cached {
        sqlite3_stmt* stmt = nullptr;
        bool in_use = false;
    };
    sqlite3* db_;
    std::unordered_map<std::string, std::unique_ptr<Cached>> cache_;
};

// BEGIN IMMEDIATE (takes the write lock up front, so a busy writer waits in busy_timeout instead of failing
// at its first write); rolls back on destruction unless commit() succeeded.
class Transaction {
public:
    static Result<Transaction> begin(Connection& connection);
    Transaction(Transaction&& other) noexcept;
    Transaction& operator=(Transaction&&) = delete;
    ~Transaction();
    Result<void> commit();

private:
    explicit Transaction(Connection* connection) : connection_(connection) {}
    Connection* connection_;
};

// A read transaction: every query inside sees one snapshot (WAL readers never block the writer).
class ReadSnapshot {
public:
    static Result<ReadSnapshot> begin(Connection& connection);
    ReadSnapshot(ReadSnapshot&& other) noexcept;
    ReadSnapshot& operator=(ReadSnapshot&&) = delete;
    ~ReadSnapshot();

private:
    explicit ReadSnapshot(Connection* connection) : connection_(connection) {}
    Connection* connection_;
};

}  // namespace magpie::store::sqlite
