#include "store/sqlite/db.h"

#include <sqlite3.h>

#include <mutex>

#include <fmt/format.h>

#include "store/sqlite/wal_vfs.h"

namespace magpie::store::sqlite {
namespace {

// A savepoint's journal (the group committer opens one per item: delivery.cpp) holds the pages the item
// changes; SQLite keeps it in memory up to this size and beyond it in a temporary file. Its default, 64 KiB,
// is less than one delivery changes (a score of B-tree pages), so every delivery created, wrote and unlinked
// a file under /var/tmp (issue 17: strace showed one per message). Only writing connections have such
// journals (one writer), and one item's is bounded by the writes' own limits (max_messages_per_transaction).
constexpr int kStatementJournalSpill = 4 * 1024 * 1024;

void configure_sqlite_once() {
    static std::once_flag once;
    // Process-wide and only before SQLite initializes: a process that initialized it already keeps its own.
    std::call_once(once, [] { (void)sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, kStatementJournalSpill); });
}

}  // namespace

Error sqlite_error(int code, std::string_view context, sqlite3* db) {
    Errc errc = Errc::internal;
    switch (code & 0xff) {
        case SQLITE_CONSTRAINT:
            errc = (code == SQLITE_CONSTRAINT_UNIQUE || code == SQLITE_CONSTRAINT_PRIMARYKEY)
                       ? Errc::already_exists
                       : Errc::invalid_argument;
            break;
        case SQLITE_BUSY:
        case SQLITE_LOCKED: errc = Errc::unavailable; break;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB: errc = Errc::corrupt; break;
        case SQLITE_IOERR:
        case SQLITE_FULL:
        case SQLITE_CANTOPEN:
        case SQLITE_NOMEM: errc = Errc::io_error; break;
        case SQLITE_READONLY:
        case SQLITE_PERM:
        case SQLITE_AUTH: errc = Errc::permission_denied; break;
        default: break;
    }
    const char* detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(code);
    return make_error(errc, fmt::format("{}: {}", context, detail));
}

// ---- Statement ----

Statement::Statement(Connection* owner, sqlite3_stmt* stmt, bool* in_use)
    : owner_(owner), stmt_(stmt), in_use_(in_use) {}

Statement::Statement(Statement&& other) noexcept
    : owner_(other.owner_),
      stmt_(other.stmt_),
      in_use_(other.in_use_),
      bind_error_(std::move(other.bind_error_)),
      bind_failed_(other.bind_failed_) {
    other.stmt_ = nullptr;
    other.in_use_ = nullptr;
}

Statement::~Statement() {
    if (stmt_ == nullptr) return;
    if (in_use_ != nullptr) {
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
        *in_use_ = false;
    } else {
        sqlite3_finalize(stmt_);
    }
}

Statement& Statement::bind(int index, std::int64_t value) {
    int rc = sqlite3_bind_int64(stmt_, index, value);
    if (rc != SQLITE_OK && !bind_failed_) {
        bind_failed_ = true;
        bind_error_ = sqlite_error(rc, "bind", owner_->handle());
    }
    return *this;
}

Statement& Statement::bind_text(int index, std::string_view value) {
    // SQLITE_TRANSIENT: SQLite copies, so the caller's buffer may go away before step().
    int rc = sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    if (rc != SQLITE_OK && !bind_failed_) {
        bind_failed_ = true;
        bind_error_ = sqlite_error(rc, "bind", owner_->handle());
    }
    return *this;
}

Statement& Statement::bind_blob(int index, std::string_view bytes) {
    // A zero-length blob must still be a BLOB, not NULL: give SQLite a valid pointer.
    static const char empty = 0;
    const char* data = bytes.empty() ? &empty : bytes.data();
    int rc = sqlite3_bind_blob64(stmt_, index, data, bytes.size(), SQLITE_TRANSIENT);
    if (rc != SQLITE_OK && !bind_failed_) {
        bind_failed_ = true;
        bind_error_ = sqlite_error(rc, "bind", owner_->handle());
    }
    return *this;
}

Statement& Statement::bind_null(int index) {
    int rc = sqlite3_bind_null(stmt_, index);
    if (rc != SQLITE_OK && !bind_failed_) {
        bind_failed_ = true;
        bind_error_ = sqlite_error(rc, "bind", owner_->handle());
    }
    return *this;
}

Result<bool> Statement::step() {
    if (bind_failed_) return bind_error_;
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    // sqlite3_step returns only the primary code; the extended one tells UNIQUE from other constraints.
    return sqlite_error(sqlite3_extended_errcode(owner_->handle()), "step", owner_->handle());
}

Result<void> Statement::run() {
    for (;;) {
        auto row = step();
        if (!row) return row.error();
        if (!*row) return {};
    }
}

std::int64_t Statement::column_int64(int index) const { return sqlite3_column_int64(stmt_, index); }

std::string Statement::column_text(int index) const {
    // Ask for the blob first, then the byte count, as the SQLite docs require for a stable answer.
    const void* data = sqlite3_column_blob(stmt_, index);
    int size = sqlite3_column_bytes(stmt_, index);
    if (data == nullptr || size <= 0) return {};
    return std::string(static_cast<const char*>(data), static_cast<std::size_t>(size));
}

bool Statement::column_is_null(int index) const { return sqlite3_column_type(stmt_, index) == SQLITE_NULL; }

// ---- Connection ----

Result<std::unique_ptr<Connection>> Connection::open(const std::filesystem::path& path, Mode mode,
                                                     int busy_timeout_ms, WalWrites wal_writes) {
    // NOMUTEX: each connection is used by one thread at a time, serialized by the store.
    int flags = SQLITE_OPEN_NOMUTEX | (mode == Mode::read_only ? SQLITE_OPEN_READONLY
                                                               : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    configure_sqlite_once();
    sqlite3* db = nullptr;
    const char* vfs = wal_writes == WalWrites::coalesced ? coalescing_wal_vfs() : nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &db, flags, vfs);
    if (rc != SQLITE_OK) {
        Error error = sqlite_error(rc, fmt::format("open {}", path.string()), db);
        sqlite3_close(db);
        return error;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, busy_timeout_ms);
    return std::unique_ptr<Connection>(new Connection(db));
}

Connection::~Connection() {
    for (auto& [sql, cached] : cache_) sqlite3_finalize(cached->stmt);
    sqlite3_close(db_);
}

std::int64_t Connection::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }

int Connection::changes() const { return sqlite3_changes(db_); }

Result<void> Connection::exec(std::string_view sql) {
    // One statement (BEGIN, COMMIT, SAVEPOINT, RELEASE: a group commit runs two per item and a read snapshot
    // two per read) is prepared once and kept like any other, instead of being parsed again at every call
    // (issue 17: sqlite3_exec prepares, steps and finalizes each time). Several statements go to sqlite3_exec.
    if (sql.find(';') == std::string_view::npos) {
        auto statement = prepare(std::string(sql));
        if (!statement) return statement.error();
        if (statement->stmt_ == nullptr) return {};  // only whitespace or a comment
        int rc = SQLITE_ROW;
        while (rc == SQLITE_ROW) rc = sqlite3_step(statement->stmt_);
        if (rc == SQLITE_DONE) return {};
        return sqlite_error(sqlite3_extended_errcode(db_), fmt::format("exec ({})", sqlite3_errmsg(db_)));
    }
    std::string text(sql);
    char* message = nullptr;
    int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &message);
    if (rc != SQLITE_OK) {
        std::string detail = message != nullptr ? message : sqlite3_errstr(rc);
        sqlite3_free(message);
        return sqlite_error(sqlite3_extended_errcode(db_), fmt::format("exec ({})", detail));
    }
    return {};
}

Result<Statement> Connection::prepare(const std::string& sql) {
    auto& slot = cache_[sql];
    if (!slot) slot = std::make_unique<Cached>();
    if (slot->stmt != nullptr && !slot->in_use) {
        slot->in_use = true;
        return Statement(this, slot->stmt, &slot->in_use);
    }
    sqlite3_stmt* stmt = nullptr;
    bool cacheable = slot->stmt == nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                cacheable ? SQLITE_PREPARE_PERSISTENT : 0, &stmt, nullptr);
    if (rc != SQLITE_OK) return sqlite_error(rc, "prepare", db_);
    if (!cacheable) return Statement(this, stmt, nullptr);  // the cached one is busy: a private copy
    slot->stmt = stmt;
    slot->in_use = true;
    return Statement(this, stmt, &slot->in_use);
}

Result<Statement> Connection::prepare_once(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), 0, &stmt, nullptr);
    if (rc != SQLITE_OK) return sqlite_error(rc, "prepare", db_);
    return Statement(this, stmt, nullptr);
}

// ---- Transaction ----

Result<Transaction> Transaction::begin(Connection& connection) {
    MAGPIE_TRY(connection.exec("BEGIN IMMEDIATE"));
    return Transaction(&connection);
}

Transaction::Transaction(Transaction&& other) noexcept : connection_(other.connection_) {
    other.connection_ = nullptr;
}

Transaction::~Transaction() {
    if (connection_ != nullptr) (void)connection_->exec("ROLLBACK");
}

Result<void> Transaction::commit() {
    Connection* connection = connection_;
    auto result = connection->exec("COMMIT");
    // A failed COMMIT may leave the transaction open (e.g. SQLITE_BUSY); the destructor rolls it back.
    if (result) connection_ = nullptr;
    return result;
}

// ---- ReadSnapshot ----

Result<ReadSnapshot> ReadSnapshot::begin(Connection& connection) {
    MAGPIE_TRY(connection.exec("BEGIN"));
    return ReadSnapshot(&connection);
}

ReadSnapshot::ReadSnapshot(ReadSnapshot&& other) noexcept : connection_(other.connection_) {
    other.connection_ = nullptr;
}

ReadSnapshot::~ReadSnapshot() {
    if (connection_ != nullptr) (void)connection_->exec("COMMIT");
}

}  // namespace magpie::store::sqlite
