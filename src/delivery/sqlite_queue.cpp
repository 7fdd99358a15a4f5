#include "delivery/sqlite_queue.h"

#include <fmt/format.h>

#include <algorithm>

#include "store/sqlite/db.h"

namespace magpie::delivery {

using store::sqlite::Connection;
using store::sqlite::Transaction;

namespace {

constexpr std::string_view schema = R"sql(
CREATE TABLE IF NOT EXISTS queue_entry(
  id INTEGER PRIMARY KEY,
  reverse_path TEXT NOT NULL,
  dsn_ret TEXT NOT NULL,
  dsn_envid TEXT NOT NULL,
  smtputf8 INTEGER NOT NULL,
  queued_at INTEGER NOT NULL,
  held INTEGER NOT NULL DEFAULT 0,
  size INTEGER NOT NULL,
  content BLOB NOT NULL,
  lease_owner TEXT,
  lease_until INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS queue_recipient(
  id INTEGER PRIMARY KEY,
  entry_id INTEGER NOT NULL REFERENCES queue_entry(id) ON DELETE CASCADE,
  address TEXT NOT NULL,
  notify TEXT NOT NULL,
  orcpt TEXT NOT NULL,
  state TEXT NOT NULL,
  next_attempt_at INTEGER NOT NULL,
  failed_attempts INTEGER NOT NULL DEFAULT 0,
  status TEXT NOT NULL DEFAULT '',
  last_reply TEXT NOT NULL DEFAULT '',
  remote_mta TEXT NOT NULL DEFAULT '',
  last_attempt_at INTEGER NOT NULL DEFAULT 0,
  delay_notified INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS queue_recipient_due ON queue_recipient(state, next_attempt_at);
CREATE INDEX IF NOT EXISTS queue_recipient_entry ON queue_recipient(entry_id);
CREATE TABLE IF NOT EXISTS queue_attempt(
  id INTEGER PRIMARY KEY,
  recipient_id INTEGER NOT NULL REFERENCES queue_recipient(id) ON DELETE CASCADE,
  at INTEGER NOT NULL,
  host TEXT NOT NULL,
  address TEXT NOT NULL,
  tls TEXT NOT NULL,
  reply TEXT NOT NULL,
  connection TEXT NOT NULL,
  transcript TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS queue_attempt_recipient ON queue_attempt(recipient_id);
)sql";

// Waiting = not final: the states the scheduler still works on.
constexpr std::string_view waiting = "state IN ('queued','deferred')";

std::string clip(std::string_view text, std::size_t limit) {
    if (text.size() <= limit) return std::string(text);
    std::string out(text.substr(0, limit));
    out += "\n[... cut at " + std::to_string(limit) + " octets]";
    return out;
}

QueueRecipient recipient_from(const store::sqlite::Statement& s) {
    QueueRecipient r;
    r.id = s.column_int64(0);
    r.address = s.column_text(1);
    r.notify = s.column_text(2);
    r.orcpt = s.column_text(3);
    r.state = parse_state(s.column_text(4)).value_or(RecipientState::queued);
    r.next_attempt_at = s.column_int64(5);
    r.failed_attempts = static_cast<std::uint32_t>(s.column_int64(6));
    r.status = s.column_text(7);
    r.last_reply = s.column_text(8);
    r.remote_mta = s.column_text(9);
    r.last_attempt_at = s.column_int64(10);
    r.delay_notified = s.column_int64(11) != 0;
    return r;
}

constexpr const char* recipient_columns =
    "id, address, notify, orcpt, state, next_attempt_at, failed_attempts, status, last_reply, remote_mta, "
    "last_attempt_at, delay_notified";

}  // namespace

std::string_view state_name(RecipientState state) {
    switch (state) {
        case RecipientState::queued:
            return "queued";
        case RecipientState::deferred:
            return "deferred";
        case RecipientState::delivered:
            return "delivered";
        case RecipientState::failed:
            return "failed";
    }
    return "queued";
}

std::optional<RecipientState> parse_state(std::string_view name) {
    for (auto s : {RecipientState::queued, RecipientState::deferred, RecipientState::delivered,
                   RecipientState::failed}) {
        if (state_name(s) == name) return s;
    }
    return std::nullopt;
}

SqliteQueue::SqliteQueue(std::unique_ptr<Connection> db, QueueLimits limits)
    : db_(std::move(db)), limits_(limits) {}
SqliteQueue::~SqliteQueue() = default;

Result<std::unique_ptr<SqliteQueue>> SqliteQueue::open(const std::filesystem::path& data_dir,
                                                       QueueLimits limits) {
    auto db = Connection::open(data_dir / "queue.db", Connection::Mode::read_write_create, 5000);
    if (!db) return db.error();
    // synchronous=FULL: a queued message is on disk before anyone is told it is queued.
    MAGPIE_TRY((*db)->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"));
    MAGPIE_TRY((*db)->exec(schema));
    return std::unique_ptr<SqliteQueue>(new SqliteQueue(std::move(*db), limits));
}

Result<std::int64_t> SqliteQueue::insert(const NewEntry& entry) {
    if (entry.recipients.empty())
        return make_error(Errc::invalid_argument, "a queue entry needs a recipient");
    if (entry.recipients.size() > limits_.max_recipients) {
        return make_error(Errc::limit_exceeded,
                          fmt::format("more than {} recipients", limits_.max_recipients));
    }
    if (entry.content.size() > limits_.max_content) {
        return make_error(Errc::limit_exceeded, fmt::format("message over {} octets", limits_.max_content));
    }
    for (const auto& r : entry.recipients) {
        if (r.address.find('@') == std::string::npos) {
            return make_error(Errc::invalid_argument, fmt::format("'{}' is not an address", r.address));
        }
    }
    auto s = db_->prepare(
        "INSERT INTO queue_entry(reverse_path, dsn_ret, dsn_envid, smtputf8, queued_at, size, content) "
        "VALUES(?,?,?,?,?,?,?)");
    if (!s) return s.error();
    s->bind_text(1, entry.reverse_path).bind_text(2, entry.dsn_ret).bind_text(3, entry.dsn_envid);
    s->bind(4, entry.smtputf8 ? 1 : 0)
        .bind(5, entry.queued_at)
        .bind(6, static_cast<std::int64_t>(entry.content.size()));
    s->bind_blob(7, entry.content);
    MAGPIE_TRY(s->run());
    std::int64_t id = db_->last_insert_rowid();
    for (const auto& r : entry.recipients) {
        auto ins = db_->prepare(
            "INSERT INTO queue_recipient(entry_id, address, notify, orcpt, state, next_attempt_at) "
            "VALUES(?,?,?,?,'queued',?)");
        if (!ins) return ins.error();
        ins->bind(1, id)
            .bind_text(2, r.address)
            .bind_text(3, r.notify)
            .bind_text(4, r.orcpt)
            .bind(5, entry.queued_at);
        MAGPIE_TRY(ins->run());
    }
    return id;
}

Result<std::int64_t> SqliteQueue::enqueue(const NewEntry& entry) {
    std::lock_guard lock(mutex_);
    auto tx = Transaction::begin(*db_);
    if (!tx) return tx.error();
    auto id = insert(entry);
    if (!id) return id;
    MAGPIE_TRY(tx->commit());
    return id;
}

Result<QueueEntry> SqliteQueue::read_entry(std::int64_t id, bool content, bool attempts, bool only_due,
                                           std::int64_t now) {
    auto s = db_->prepare(
        "SELECT id, reverse_path, dsn_ret, dsn_envid, smtputf8, queued_at, held, size, "
        "CASE WHEN ? THEN content ELSE '' END FROM queue_entry WHERE id = ?");
    if (!s) return s.error();
    s->bind(1, content ? 1 : 0).bind(2, id);
    auto row = s->step();
    if (!row) return row.error();
    if (!*row) return make_error(Errc::not_found, fmt::format("no queue entry {}", id));
    QueueEntry e;
    e.id = s->column_int64(0);
    e.reverse_path = s->column_text(1);
    e.dsn_ret = s->column_text(2);
    e.dsn_envid = s->column_text(3);
    e.smtputf8 = s->column_int64(4) != 0;
    e.queued_at = s->column_int64(5);
    e.held = s->column_int64(6) != 0;
    e.size = static_cast<std::uint64_t>(s->column_int64(7));
    e.content = s->column_text(8);

    std::string sql =
        fmt::format("SELECT {} FROM queue_recipient WHERE entry_id = ?{} ORDER BY id", recipient_columns,
                    only_due ? fmt::format(" AND {} AND next_attempt_at <= ?", waiting) : "");
    auto rs = db_->prepare(sql);
    if (!rs) return rs.error();
    rs->bind(1, id);
    if (only_due) rs->bind(2, now);
    for (;;) {
        auto more = rs->step();
        if (!more) return more.error();
        if (!*more) break;
        e.recipients.push_back(recipient_from(*rs));
    }
    if (attempts) {
        for (auto& r : e.recipients) {
            auto as = db_->prepare(
                "SELECT at, host, address, tls, reply, connection, transcript FROM queue_attempt "
                "WHERE recipient_id = ? ORDER BY id");
            if (!as) return as.error();
            as->bind(1, r.id);
            for (;;) {
                auto more = as->step();
                if (!more) return more.error();
                if (!*more) break;
                r.attempts.push_back(Attempt{as->column_int64(0), as->column_text(1), as->column_text(2),
                                             as->column_text(3), as->column_text(4), as->column_text(5),
                                             as->column_text(6)});
            }
        }
    }
    return e;
}

Result<std::vector<QueueEntry>> SqliteQueue::lease_due(std::int64_t now, std::size_t limit,
                                                       std::uint32_t lease_seconds, std::string_view owner) {
    std::lock_guard lock(mutex_);
    auto tx = Transaction::begin(*db_);
    if (!tx) return tx.error();
    auto s = db_->prepare(
        fmt::format("SELECT DISTINCT e.id FROM queue_entry e JOIN queue_recipient r ON r.entry_id = e.id "
                    "WHERE r.{} AND r.next_attempt_at <= ? AND e.held = 0 AND (e.lease_owner IS NULL OR "
                    "e.lease_until <= ?) "
                    "ORDER BY e.id LIMIT ?",
                    waiting));
    if (!s) return s.error();
    s->bind(1, now).bind(2, now).bind(3, static_cast<std::int64_t>(limit));
    std::vector<std::int64_t> ids;
    for (;;) {
        auto more = s->step();
        if (!more) return more.error();
        if (!*more) break;
        ids.push_back(s->column_int64(0));
    }
    std::vector<QueueEntry> out;
    for (auto id : ids) {
        auto u = db_->prepare("UPDATE queue_entry SET lease_owner = ?, lease_until = ? WHERE id = ?");
        if (!u) return u.error();
        u->bind_text(1, owner).bind(2, now + lease_seconds).bind(3, id);
        MAGPIE_TRY(u->run());
        auto e = read_entry(id, true, false, true, now);
        if (!e) return e.error();
        out.push_back(std::move(*e));
    }
    MAGPIE_TRY(tx->commit());
    return out;
}

Result<void> SqliteQueue::release_leases(std::string_view owner) {
    std::lock_guard lock(mutex_);
    auto u = db_->prepare("UPDATE queue_entry SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = ?");
    if (!u) return u.error();
    u->bind_text(1, owner);
    return u->run();
}

Result<void> SqliteQueue::record(const EntryOutcome& outcome) {
    std::lock_guard lock(mutex_);
    auto tx = Transaction::begin(*db_);
    if (!tx) return tx.error();
    for (const auto& u : outcome.updates) {
        auto s = db_->prepare(
            "UPDATE queue_recipient SET state = ?, next_attempt_at = ?, failed_attempts = failed_attempts + "
            "?, "
            "status = ?, last_reply = CASE WHEN ? THEN ? ELSE last_reply END, "
            "remote_mta = CASE WHEN ? = '' THEN remote_mta ELSE ? END, "
            "last_attempt_at = CASE WHEN ? THEN ? ELSE last_attempt_at END, "
            "delay_notified = delay_notified OR ? WHERE id = ? AND entry_id = ?");
        if (!s) return s.error();
        const bool tried = u.attempt.has_value();
        s->bind_text(1, state_name(u.state)).bind(2, u.next_attempt_at).bind(3, u.count_failure ? 1 : 0);
        s->bind_text(4, u.status).bind(5, tried ? 1 : 0).bind_text(6, tried ? u.attempt->reply : "");
        s->bind_text(7, u.remote_mta).bind_text(8, u.remote_mta);
        s->bind(9, tried ? 1 : 0).bind(10, tried ? u.attempt->at : 0);
        s->bind(11, u.delay_notified ? 1 : 0).bind(12, u.recipient_id).bind(13, outcome.entry_id);
        MAGPIE_TRY(s->run());
        if (!tried) continue;
        const Attempt& a = *u.attempt;
        auto ins = db_->prepare(
            "INSERT INTO queue_attempt(recipient_id, at, host, address, tls, reply, connection, transcript) "
            "VALUES(?,?,?,?,?,?,?,?)");
        if (!ins) return ins.error();
        ins->bind(1, u.recipient_id)
            .bind(2, a.at)
            .bind_text(3, a.host)
            .bind_text(4, a.address)
            .bind_text(5, a.tls);
        ins->bind_text(6, a.reply)
            .bind_text(7, a.connection)
            .bind_text(8, clip(a.transcript, limits_.max_transcript));
        MAGPIE_TRY(ins->run());
        // The tracker keeps the newest attempts; a recipient retried for days does not grow without bound.
        auto trim = db_->prepare(
            "DELETE FROM queue_attempt WHERE recipient_id = ? AND id NOT IN "
            "(SELECT id FROM queue_attempt WHERE recipient_id = ? ORDER BY id DESC LIMIT ?)");
        if (!trim) return trim.error();
        trim->bind(1, u.recipient_id)
            .bind(2, u.recipient_id)
            .bind(3, static_cast<std::int64_t>(limits_.max_attempts_kept));
        MAGPIE_TRY(trim->run());
    }
    for (const auto& report : outcome.reports) {
        auto id = insert(report);
        if (!id) return id.error();
    }
    auto release = db_->prepare("UPDATE queue_entry SET lease_owner = NULL, lease_until = 0 WHERE id = ?");
    if (!release) return release.error();
    release->bind(1, outcome.entry_id);
    MAGPIE_TRY(release->run());
    return tx->commit();
}

Result<std::optional<std::int64_t>> SqliteQueue::next_due() {
    std::lock_guard lock(mutex_);
    auto s = db_->prepare(fmt::format(
        "SELECT MIN(MAX(r.next_attempt_at, CASE WHEN e.lease_owner IS NULL THEN 0 ELSE e.lease_until END)) "
        "FROM queue_recipient r JOIN queue_entry e ON e.id = r.entry_id WHERE r.{} AND e.held = 0",
        waiting));
    if (!s) return s.error();
    auto row = s->step();
    if (!row) return row.error();
    if (!*row || s->column_is_null(0)) return std::optional<std::int64_t>{};
    return std::optional<std::int64_t>{s->column_int64(0)};
}

Result<std::vector<QueueEntry>> SqliteQueue::list(bool all, std::size_t limit) {
    std::lock_guard lock(mutex_);
    std::string sql = all ? "SELECT id FROM queue_entry ORDER BY id LIMIT ?"
                          : fmt::format(
                                "SELECT DISTINCT e.id FROM queue_entry e JOIN queue_recipient r ON "
                                "r.entry_id = e.id WHERE r.{} ORDER BY e.id LIMIT ?",
                                waiting);
    auto s = db_->prepare(sql);
    if (!s) return s.error();
    s->bind(1, static_cast<std::int64_t>(limit));
    std::vector<std::int64_t> ids;
    for (;;) {
        auto more = s->step();
        if (!more) return more.error();
        if (!*more) break;
        ids.push_back(s->column_int64(0));
    }
    std::vector<QueueEntry> out;
    for (auto id : ids) {
        auto e = read_entry(id, false, false, false, 0);
        if (!e) return e.error();
        out.push_back(std::move(*e));
    }
    return out;
}

Result<QueueEntry> SqliteQueue::get(std::int64_t id) {
    std::lock_guard lock(mutex_);
    return read_entry(id, true, true, false, 0);
}

Result<std::size_t> SqliteQueue::retry_now(std::optional<std::int64_t> id, std::int64_t now) {
    std::lock_guard lock(mutex_);
    auto s =
        db_->prepare(fmt::format("UPDATE queue_recipient SET next_attempt_at = ? WHERE {} AND "
                                 "next_attempt_at > ? AND (? OR entry_id = ?)",
                                 waiting));
    if (!s) return s.error();
    s->bind(1, now).bind(2, now).bind(3, id ? 0 : 1).bind(4, id.value_or(0));
    MAGPIE_TRY(s->run());
    std::size_t changed = static_cast<std::size_t>(db_->changes());
    if (id && changed == 0) {
        auto exists = read_entry(*id, false, false, false, 0);
        if (!exists) return exists.error();
    }
    return changed;
}

Result<void> SqliteQueue::set_held(std::int64_t id, bool held) {
    std::lock_guard lock(mutex_);
    auto s = db_->prepare("UPDATE queue_entry SET held = ? WHERE id = ?");
    if (!s) return s.error();
    s->bind(1, held ? 1 : 0).bind(2, id);
    MAGPIE_TRY(s->run());
    if (db_->changes() == 0) return make_error(Errc::not_found, fmt::format("no queue entry {}", id));
    return {};
}

Result<void> SqliteQueue::remove(std::int64_t id) {
    std::lock_guard lock(mutex_);
    auto s = db_->prepare("DELETE FROM queue_entry WHERE id = ?");
    if (!s) return s.error();
    s->bind(1, id);
    MAGPIE_TRY(s->run());
    if (db_->changes() == 0) return make_error(Errc::not_found, fmt::format("no queue entry {}", id));
    return {};
}

Result<std::size_t> SqliteQueue::purge_finished(std::int64_t before) {
    std::lock_guard lock(mutex_);
    auto s = db_->prepare(
        fmt::format("DELETE FROM queue_entry WHERE queued_at < ? AND NOT EXISTS "
                    "(SELECT 1 FROM queue_recipient r WHERE r.entry_id = queue_entry.id AND r.{})",
                    waiting));
    if (!s) return s.error();
    s->bind(1, before);
    MAGPIE_TRY(s->run());
    return static_cast<std::size_t>(db_->changes());
}

}  // namespace magpie::delivery
