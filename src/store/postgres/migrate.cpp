// `magpie migrate`: copies a whole store between the embedded backend and PostgreSQL, row for row with the
// same ids, so UIDVALIDITY, UIDs, MODSEQs (and HIGHESTMODSEQ, UIDNEXT, first-recent marks, counters), flags,
// the change log, subscriptions, tokens, Emails with their threads, account states and Email log, uploads,
// JMAP objects with their states, and the queue with its leases and attempts arrive as they were, and
// clients (IMAP and JMAP) keep their caches. Blob bytes move between blob_contents / blob files and blob_chunks. The target
// must be empty; the copy is one transaction on the target, so a failed copy leaves nothing half-done.
// Memory stays bounded whatever the store's size: rows travel in batches of PostgresOptions::migrate_batch_rows
// (read from PostgreSQL with a cursor, written to it with one multi-row INSERT per batch; SQLite is read and
// written a row at a time), and blob bytes one blob at a time.
#include <algorithm>
#include <filesystem>
#include <functional>

#include <fmt/format.h>

#include "store/blob.h"
#include "store/postgres/pg.h"
#include "store/postgres/postgres.h"
#include "store/postgres/schema.h"
#include "store/sqlite/db.h"
#include "store/sqlite/inline_content.h"
#include "store/sqlite/rows.h"
#include "store/sqlite/schema.h"

namespace magpie::store {
namespace {

using PgConnection = postgres::Connection;
using postgres::Params;
using SqliteConnection = sqlite::Connection;

// How a column travels: the two schemas spell a few types differently (SQLite INTEGER flags are PostgreSQL
// booleans; bytes that need not be UTF-8 are bytea there). text_bytes: bytea in PostgreSQL, TEXT in SQLite
// (compared with text values there, so it must arrive as TEXT, not as a BLOB).
enum class Kind { integer, text, bytes, boolean, text_bytes };

struct Column {
    const char* name;
    Kind kind;
};

struct Table {
    const char* name;
    std::vector<Column> columns;
    bool serial_id;  // PostgreSQL's sequence must move past the copied ids
};

constexpr Kind I = Kind::integer, T = Kind::text, B = Kind::bytes, L = Kind::boolean, X = Kind::text_bytes;

// In foreign-key order. blobs are copied apart (their bytes change home).
const std::vector<Table>& tables() {
    static const std::vector<Table> all = {
        {"domains", {{"id", I}, {"name", T}}, true},
        {"accounts",
         {{"id", I}, {"domain_id", I}, {"address", T}, {"password_hash", T}, {"scram_salt", B},
          {"scram_iterations", I}, {"scram_stored_key", B}, {"scram_server_key", B}, {"disabled", L},
          {"created_at", I}, {"email_state", I}},
         true},
        {"aliases", {{"id", I}, {"domain_id", I}, {"address", T}, {"account_id", I}}, true},
        {"mailboxes",
         {{"id", I}, {"account_id", I}, {"name", T}, {"uidvalidity", I}, {"uidnext", I}, {"highest_modseq", I},
          {"special_use", I}, {"message_count", I}, {"total_size", I}, {"unseen_count", I}, {"deleted_count", I},
          {"deleted_size", I}, {"recent_count", I}, {"first_recent_uid", I}},
         true},
        {"subscriptions", {{"account_id", I}, {"name", T}}, false},
        {"emails",
         {{"id", I}, {"account_id", I}, {"blob_id", T}, {"thread_id", I}, {"internal_date", I}, {"sent_at", I},
          {"size", I}, {"system_flags", I}, {"keywords", T}, {"message_id", X}, {"base_subject", X}, {"state", I}},
         true},
        {"messages",
         {{"id", I}, {"mailbox_id", I}, {"uid", I}, {"modseq", I}, {"blob_id", T}, {"size", I}, {"internal_date", I},
          {"system_flags", I}, {"keywords", T}, {"email_id", I}},
         true},
        {"email_log", {{"account_id", I}, {"state", I}, {"email_id", I}, {"thread_id", I}, {"kind", I}}, false},
        {"change_log", {{"mailbox_id", I}, {"modseq", I}, {"uid", I}, {"kind", I}}, false},
        {"envelopes",
         {{"id", I}, {"received_at", I}, {"blob_id", T}, {"reverse_path", T}, {"dsn_ret", T}, {"dsn_envid", T}},
         true},
        {"envelope_recipients",
         {{"envelope_id", I}, {"position", I}, {"address", T}, {"notify", T}, {"orcpt", T}},
         false},
        {"queue_messages",
         {{"id", I}, {"blob_id", T}, {"reverse_path", T}, {"dsn_ret", T}, {"dsn_envid", T}, {"created_at", I},
          {"smtputf8", L}, {"held", L}, {"send_offset", I}},
         true},
        {"queue_recipients",
         {{"id", I}, {"message_id", I}, {"address", T}, {"notify", T}, {"orcpt", T}, {"state", I},
          {"last_reply", B}, {"next_attempt_at", I}, {"attempts", I}, {"lease_owner", T}, {"lease_expires_at", I},
          {"status", T}, {"remote_mta", B}, {"last_attempt_at", I}, {"failed_attempts", I}, {"delay_notified", L}},
         true},
        {"queue_attempts",
         {{"id", I}, {"recipient_id", I}, {"at", I}, {"host", B}, {"address", B}, {"tls", B}, {"reply", B},
          {"transcript", B}, {"connection", T}},
         true},
        {"api_tokens",
         {{"id", I}, {"account_id", I}, {"name", T}, {"token_hash", B}, {"created_at", I}, {"expires_at", I}},
         true},
        {"uploads",
         {{"id", I}, {"account_id", I}, {"blob_id", T}, {"type", T}, {"size", I}, {"created_at", I}, {"content", B}},
         true},
        {"jmap_objects",
         {{"id", I}, {"account_id", I}, {"type", T}, {"created_state", I}, {"updated_state", I}, {"destroyed", L},
          {"data", T}},
         true},
        {"jmap_states", {{"account_id", I}, {"type", T}, {"state", I}}, false},
    };
    return all;
}

const std::vector<Column>& blob_columns() {
    static const std::vector<Column> columns = {
        {"id", T},          {"size", I},       {"created_at", I}, {"subject", B},     {"from_header", B},
        {"to_header", B},   {"cc_header", B},  {"date_header", B}, {"message_id", B}, {"in_reply_to", B},
        {"refs", B},        {"structure", B}};
    return columns;
}

std::string column_list(const std::vector<Column>& columns) {
    std::string list;
    for (const Column& c : columns) list += (list.empty() ? "" : ", ") + std::string(c.name);
    return list;
}

std::string placeholders(std::size_t n, char style) {
    std::string list;
    for (std::size_t i = 1; i <= n; ++i) list += fmt::format("{}{}{}", i > 1 ? ", " : "", style, i);
    return list;
}

// One value between the two: NULL stays NULL.
struct Value {
    bool null = false;
    std::int64_t integer = 0;
    std::string bytes;
};

Value from_sqlite(const sqlite::Statement& row, int i, Kind kind) {
    if (row.column_is_null(i)) return Value{true, 0, {}};
    if (kind == I || kind == L) return Value{false, row.column_int64(i), {}};
    return Value{false, 0, row.column_text(i)};
}

Value from_postgres(const postgres::Rows& rows, int r, int i, Kind kind) {
    if (rows.null(r, i)) return Value{true, 0, {}};
    switch (kind) {
        case Kind::integer: return Value{false, rows.int64(r, i), {}};
        case Kind::boolean: return Value{false, rows.boolean(r, i) ? 1 : 0, {}};
        case Kind::bytes:
        case Kind::text_bytes: return Value{false, 0, rows.bytes(r, i)};
        case Kind::text: return Value{false, 0, rows.text(r, i)};
    }
    return Value{};
}

void add_to(Params& params, const Value& value, Kind kind) {
    if (value.null) {
        params.add_null();
    } else if (kind == Kind::integer) {
        params.add(value.integer);
    } else if (kind == Kind::boolean) {
        params.add(value.integer != 0 ? "true" : "false");
    } else if (kind == Kind::bytes || kind == Kind::text_bytes) {
        params.add_bytes(value.bytes);
    } else {
        params.add(std::string_view(value.bytes));
    }
}

void bind_to(sqlite::Statement& statement, int index, const Value& value, Kind kind) {
    if (value.null) {
        statement.bind_null(index);
    } else if (kind == Kind::integer || kind == Kind::boolean) {
        statement.bind(index, value.integer);
    } else if (kind == Kind::bytes) {
        statement.bind_blob(index, value.bytes);
    } else {
        statement.bind_text(index, value.bytes);
    }
}

// PostgreSQL takes at most 65535 parameters in one statement (its protocol counts them in 16 bits).
constexpr std::size_t kMaxParameters = 65535;

// Rows for one table gathered into multi-row INSERTs of at most `batch_rows` rows (fewer when the columns
// would pass kMaxParameters): one round trip per batch instead of one per row. Holds one batch's values.
class BatchInsert {
public:
    BatchInsert(PgConnection& db, std::string table, const std::vector<Column>& columns, std::size_t batch_rows)
        : db_(db), table_(std::move(table)), columns_(columns),
          max_rows_(std::clamp<std::size_t>(batch_rows, 1, kMaxParameters / std::max<std::size_t>(columns.size(), 1))) {}

    Result<void> add(std::vector<Value> row) {
        rows_.push_back(std::move(row));
        if (rows_.size() >= max_rows_) return flush();
        return {};
    }

    Result<void> flush() {
        if (rows_.empty()) return {};
        std::string sql = fmt::format("INSERT INTO {}({}) VALUES", table_, column_list(columns_));
        Params params;
        std::size_t n = 0;
        for (std::size_t r = 0; r < rows_.size(); ++r) {
            sql += r == 0 ? "(" : ", (";
            for (std::size_t i = 0; i < columns_.size(); ++i) {
                sql += fmt::format("{}${}", i == 0 ? "" : ", ", ++n);
                add_to(params, rows_[r][i], columns_[i].kind);
            }
            sql += ')';
        }
        auto done = db_.exec(sql, params);  // the bytes parameters borrow rows_, cleared only after
        rows_.clear();
        if (!done) return done.error();
        return {};
    }

private:
    PgConnection& db_;
    std::string table_;
    const std::vector<Column>& columns_;
    std::size_t max_rows_;
    std::vector<std::vector<Value>> rows_;
};

// Runs `select` through a cursor (inside the caller's transaction) and hands `each` batches of at most
// `batch_rows` rows, so that no result holds a whole table.
Result<void> for_each_batch(PgConnection& db, std::string_view cursor, std::string_view select, std::size_t batch_rows,
                            const std::function<Result<void>(const postgres::Rows&)>& each) {
    MAGPIE_TRY(db.run(fmt::format("DECLARE {} NO SCROLL CURSOR FOR {}", cursor, select)));
    const std::string fetch = fmt::format("FETCH FORWARD {} FROM {}", std::max<std::size_t>(batch_rows, 1), cursor);
    for (;;) {
        auto rows = db.exec(fetch);
        if (!rows) return rows.error();
        if (rows->empty()) break;
        MAGPIE_TRY(each(*rows));
    }
    return db.run(fmt::format("CLOSE {}", cursor));
}

Result<void> insert_chunks(PgConnection& db, const std::string& blob_id, std::string_view content, std::size_t chunk) {
    std::int64_t seq = 0;
    std::size_t offset = 0;
    do {
        auto done = db.exec("INSERT INTO blob_chunks(blob_id, seq, data) VALUES($1, $2, $3)",
                            Params().add(blob_id).add(seq).add_bytes(content.substr(offset, chunk)));
        if (!done) return done.error();
        offset += chunk;
        ++seq;
    } while (offset < content.size());
    return {};
}

Result<void> copy_sqlite_to_postgres(SqliteConnection& from, const std::filesystem::path& data_dir, PgConnection& to,
                                     const PostgresOptions& options, MigrationReport& report) {
    // Blobs first (messages reference them), bytes from blob_contents or the blob's own file.
    {
        BlobFiles files(data_dir);
        auto rows = from.prepare(
            "SELECT b.id, b.size, b.created_at, b.subject, b.from_header, b.to_header, b.cc_header, b.date_header, "
            "b.message_id, b.in_reply_to, b.refs, b.structure, b.location, c.content FROM blobs b "
            "LEFT JOIN blob_contents c ON c.blob_id = b.id");
        if (!rows) return rows.error();
        const auto& columns = blob_columns();
        for (;;) {
            auto row = rows->step();
            if (!row) return row.error();
            if (!*row) break;
            Params params;
            std::vector<Value> values;
            for (std::size_t i = 0; i < columns.size(); ++i) values.push_back(from_sqlite(*rows, static_cast<int>(i), columns[i].kind));
            for (std::size_t i = 0; i < columns.size(); ++i) add_to(params, values[i], columns[i].kind);
            MAGPIE_TRY(to.exec(fmt::format("INSERT INTO blobs({}) VALUES({})", column_list(columns),
                                           placeholders(columns.size(), '$')),
                               params));
            std::string content;
            const std::int64_t location = rows->column_int64(12);
            if (location == sqlite::kLocationFile) {
                auto read = files.read(values[0].bytes, options.max_message_bytes);
                if (!read) return read.error();
                content = std::move(*read);
            } else {
                auto expanded = sqlite::expand_inline(location, rows->column_text(13),
                                                      static_cast<std::uint64_t>(rows->column_int64(1)),
                                                      options.max_message_bytes);
                if (!expanded) {
                    return make_error(expanded.error().code,
                                      fmt::format("blob {}: {}", values[0].bytes, expanded.error().message));
                }
                content = std::move(*expanded);
            }
            MAGPIE_TRY(insert_chunks(to, values[0].bytes, content, std::max<std::size_t>(options.chunk_bytes, 1)));
            ++report.blobs;
        }
    }
    for (const Table& table : tables()) {
        auto rows = from.prepare(fmt::format("SELECT {} FROM {}", column_list(table.columns), table.name));
        if (!rows) return rows.error();
        BatchInsert insert(to, table.name, table.columns, options.migrate_batch_rows);
        for (;;) {
            auto row = rows->step();
            if (!row) return row.error();
            if (!*row) break;
            std::vector<Value> values;
            values.reserve(table.columns.size());
            for (std::size_t i = 0; i < table.columns.size(); ++i) {
                values.push_back(from_sqlite(*rows, static_cast<int>(i), table.columns[i].kind));
            }
            MAGPIE_TRY(insert.add(std::move(values)));
            report.rows += 1;
            if (std::string_view(table.name) == "messages") ++report.messages;
        }
        MAGPIE_TRY(insert.flush());
        if (table.serial_id) {
            MAGPIE_TRY(to.exec(fmt::format("SELECT setval(pg_get_serial_sequence('{0}', 'id'), "
                                           "coalesce((SELECT max(id) FROM {0}), 0) + 1, false)",
                                           table.name)));
        }
    }
    // Email and thread ids are never reused (JMAP clients hold them): past every id the Email log still names,
    // the destroyed Emails' included.
    MAGPIE_TRY(to.exec("SELECT setval(pg_get_serial_sequence('emails', 'id'), greatest("
                       "(SELECT coalesce(max(id), 0) FROM emails), (SELECT coalesce(max(email_id), 0) FROM email_log), "
                       "(SELECT coalesce(max(thread_id), 0) FROM email_log)) + 1, false)"));
    // meta last: the UIDVALIDITY counter, so that mailboxes created after the move never reuse a value, and the
    // directory version as it was (the rows copied above raised the destination's through its triggers).
    {
        auto rows = from.prepare("SELECT key, value FROM meta");
        if (!rows) return rows.error();
        for (;;) {
            auto row = rows->step();
            if (!row) return row.error();
            if (!*row) break;
            MAGPIE_TRY(to.exec("INSERT INTO meta(key, value) VALUES($1, $2) ON CONFLICT(key) DO UPDATE SET value = $2",
                               Params().add(rows->column_text(0)).add(rows->column_int64(1))));
        }
    }
    return {};
}

Result<void> copy_blob_to_sqlite(PgConnection& from, SqliteConnection& to, BlobFiles& files,
                                 std::vector<Value> values, std::size_t inline_blob_max) {
    const auto& columns = blob_columns();
    auto chunks = from.exec("SELECT data FROM blob_chunks WHERE blob_id = $1 ORDER BY seq",
                            Params().add(values[0].bytes), /*binary_results=*/true);
    if (!chunks) return chunks.error();
    std::string content;
    for (int c = 0; c < chunks->size(); ++c) content += chunks->raw(c, 0);
    const bool in_file = content.size() > inline_blob_max;
    if (in_file) MAGPIE_TRY(files.write(values[0].bytes, content));
    auto insert = to.prepare(
        "INSERT INTO blobs(id, size, created_at, subject, from_header, to_header, cc_header, date_header, "
        "message_id, in_reply_to, refs, structure, location) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)");
    if (!insert) return insert.error();
    // The summary fields are TEXT columns in SQLite: bound as text, byte for byte.
    for (std::size_t i = 0; i < columns.size(); ++i) {
        Kind kind = columns[i].kind == Kind::bytes && columns[i].name != std::string_view("structure") ? Kind::text
                                                                                                       : columns[i].kind;
        bind_to(*insert, static_cast<int>(i) + 1, values[i], kind);
    }
    // Inline bodies are stored as magpied stores them (compressed at the default level when that is smaller).
    const auto compressed =
        in_file ? std::nullopt : sqlite::compress_inline(content, SqliteOptions{}.compression_level);
    insert->bind(13, in_file ? sqlite::kLocationFile
                     : compressed ? sqlite::kLocationInlineZstd
                                  : sqlite::kLocationInline);
    MAGPIE_TRY(insert->run());
    if (in_file) return {};
    auto inline_content = to.prepare("INSERT INTO blob_contents(blob_id, content) VALUES(?1, ?2)");
    if (!inline_content) return inline_content.error();
    return inline_content->bind_text(1, values[0].bytes).bind_blob(2, compressed ? *compressed : content).run();
}

Result<void> copy_postgres_to_sqlite(PgConnection& from, SqliteConnection& to, const std::filesystem::path& data_dir,
                                     std::size_t inline_blob_max, std::size_t batch_rows, MigrationReport& report) {
    {
        // A batch of blob rows at a time from the cursor, and one blob's bytes at a time.
        BlobFiles files(data_dir);
        const auto& columns = blob_columns();
        MAGPIE_TRY(for_each_batch(from, "migrate_blobs", fmt::format("SELECT {} FROM blobs", column_list(columns)),
                                  batch_rows, [&](const postgres::Rows& rows) -> Result<void> {
            for (int r = 0; r < rows.size(); ++r) {
                std::vector<Value> values;
                for (std::size_t i = 0; i < columns.size(); ++i) {
                    values.push_back(from_postgres(rows, r, static_cast<int>(i), columns[i].kind));
                }
                MAGPIE_TRY(copy_blob_to_sqlite(from, to, files, std::move(values), inline_blob_max));
                ++report.blobs;
            }
            return {};
        }));
    }
    for (const Table& table : tables()) {
        const std::string insert = fmt::format("INSERT INTO {}({}) VALUES({})", table.name, column_list(table.columns),
                                               placeholders(table.columns.size(), '?'));
        // In id order where there is one: SQLite appends to its b-trees instead of splitting pages at random.
        const std::string select = fmt::format("SELECT {} FROM {}{}", column_list(table.columns), table.name,
                                               table.serial_id ? " ORDER BY id" : "");
        MAGPIE_TRY(for_each_batch(from, "migrate_rows", select, batch_rows, [&](const postgres::Rows& rows) -> Result<void> {
            for (int r = 0; r < rows.size(); ++r) {
                auto statement = to.prepare(insert);
                if (!statement) return statement.error();
                for (std::size_t i = 0; i < table.columns.size(); ++i) {
                    Kind kind = table.columns[i].kind;
                    // SQLite keeps the queue's replies and transcripts as TEXT.
                    Value value = from_postgres(rows, r, static_cast<int>(i), kind);
                    bind_to(*statement, static_cast<int>(i) + 1, value,
                            kind == Kind::bytes && std::string_view(table.name).starts_with("queue_") ? Kind::text
                                                                                                     : kind);
                }
                MAGPIE_TRY(statement->run());
                report.rows += 1;
                if (std::string_view(table.name) == "messages") ++report.messages;
            }
            return {};
        }));
    }
    // meta last, as above.
    {
        auto rows = from.exec("SELECT key, value FROM meta WHERE key <> 'schema_version'");
        if (!rows) return rows.error();
        for (int r = 0; r < rows->size(); ++r) {
            auto insert = to.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)");
            if (!insert) return insert.error();
            MAGPIE_TRY(insert->bind_text(1, rows->text(r, 0)).bind(2, rows->int64(r, 1)).run());
        }
    }
    return {};
}

}  // namespace

Result<MigrationReport> migrate_sqlite_to_postgres(const std::filesystem::path& data_dir, const PostgresOptions& to) {
    const auto db_path = data_dir / "magpie.db";
    if (!std::filesystem::exists(db_path)) return make_error(Errc::not_found, fmt::format("no store in {}", data_dir.string()));
    auto source = SqliteConnection::open(db_path, SqliteConnection::Mode::read_only, 5000);
    if (!source) return source.error();
    auto version = sqlite::schema_version(**source);
    if (!version) return version.error();
    if (*version != sqlite::kSchemaVersion || postgres::kSchemaVersion != sqlite::kSchemaVersion) {
        return make_error(Errc::unavailable, fmt::format("the embedded store is at schema version {} and this magpie's "
                                                         "PostgreSQL schema at {}: migrate needs one version on both "
                                                         "sides", *version, postgres::kSchemaVersion));
    }
    auto target = PgConnection::open(to.dsn, to.password);
    if (!target) return target.error();
    MAGPIE_TRY(postgres::migrate(**target));
    auto snapshot = sqlite::ReadSnapshot::begin(**source);
    if (!snapshot) return snapshot.error();
    MigrationReport report;
    MAGPIE_TRY(postgres::in_transaction(**target, [&]() -> Result<void> {
        report = MigrationReport{};
        auto used = (*target)->exec("SELECT (SELECT count(*) FROM domains) + (SELECT count(*) FROM blobs)");
        if (!used) return used.error();
        if (used->int64(0, 0) != 0) return make_error(Errc::already_exists, "the target database holds a store already");
        return copy_sqlite_to_postgres(**source, data_dir, **target, to, report);
    }));
    return report;
}

Result<MigrationReport> migrate_postgres_to_sqlite(const PostgresOptions& from, const std::filesystem::path& data_dir) {
    if (std::filesystem::exists(data_dir / "magpie.db")) {
        return make_error(Errc::already_exists, fmt::format("{} holds a store already", data_dir.string()));
    }
    auto source = PgConnection::open(from.dsn, from.password);
    if (!source) return source.error();
    auto version = postgres::schema_version(**source);
    if (!version) return version.error();
    if (*version != postgres::kSchemaVersion || postgres::kSchemaVersion != sqlite::kSchemaVersion) {
        return make_error(Errc::unavailable, fmt::format("the PostgreSQL store is at schema version {} and this magpie's "
                                                         "embedded schema at {}: migrate needs one version on both "
                                                         "sides", *version, sqlite::kSchemaVersion));
    }
    // The embedded store makes its own layout (directory, blobs/, schema); then the rows go in raw.
    {
        SqliteOptions options;
        options.data_dir = data_dir;
        auto created = open_sqlite_store(options);
        if (!created) return created.error();
    }
    auto target = SqliteConnection::open(data_dir / "magpie.db", SqliteConnection::Mode::read_write_create, 5000);
    if (!target) return target.error();
    MAGPIE_TRY((*target)->exec("PRAGMA foreign_keys = ON"));
    MigrationReport report;
    MAGPIE_TRY(postgres::in_transaction(**source, [&]() -> Result<void> {
        report = MigrationReport{};
        auto transaction = sqlite::Transaction::begin(**target);
        if (!transaction) return transaction.error();
        // The account-creation defaults of an empty store would collide with copied rows: there are none
        // (open_sqlite_store creates no accounts), but meta may hold a seed: replaced below.
        MAGPIE_TRY(copy_postgres_to_sqlite(**source, **target, data_dir, SqliteOptions{}.inline_blob_max,
                                           from.migrate_batch_rows, report));
        return transaction->commit();
    }, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
    return report;
}

}  // namespace magpie::store
