// check_store (`magpie check`): verifies an embedded store without changing it. It opens the database with
// SQLITE_OPEN_READONLY and reads everything inside one snapshot, so it is safe beside a running magpied:
// a WAL reader never blocks the writer. Blob files are read after the snapshot's rows name them; a file
// newer than the snapshot is in flight and counted as garbage, never as corruption.
#include <sqlite3.h>

#include <system_error>
#include <unordered_set>

#include <fmt/format.h>

#include "store/blob.h"
#include "store/sqlite/db.h"
#include "store/sqlite/inline_content.h"
#include "store/sqlite/rows.h"
#include "store/sqlite/schema.h"
#include "store/store.h"

namespace magpie::store {
namespace {

using sqlite::Connection;
using sqlite::Statement;
using sqlite::expand_inline;
using sqlite::kLocationFile;

constexpr std::size_t kMaxReportedProblems = 1000;  // beyond this, problems are counted, not listed
constexpr int kCheckBusyTimeoutMs = 5000;

class Checker {
public:
    Checker(Connection& db, const std::filesystem::path& data_dir) : db_(db), files_(data_dir) {}

    Result<CheckReport> run() {
        auto snapshot = sqlite::ReadSnapshot::begin(db_);
        if (!snapshot) return snapshot.error();
        MAGPIE_TRY(check_sqlite());
        MAGPIE_TRY(check_blobs());
        MAGPIE_TRY(check_messages());
        MAGPIE_TRY(check_mailboxes());
        MAGPIE_TRY(check_change_log());
        MAGPIE_TRY(check_emails());
        check_blob_files();
        return finish();
    }

private:
    template <class... Args>
    void problem(fmt::format_string<Args...> format, Args&&... args) {
        ++problem_count_;
        if (report_.problems.size() < kMaxReportedProblems) {
            report_.problems.push_back(fmt::format(format, std::forward<Args>(args)...));
        }
    }

    // Runs a query and calls `row` for each result row.
    template <class Row>
    Result<void> each(const std::string& sql, Row&& row) {
        auto statement = db_.prepare(sql);
        if (!statement) return statement.error();
        for (;;) {
            auto next = statement->step();
            if (!next) return next.error();
            if (!*next) return {};
            row(*statement);
        }
    }

    Result<void> check_sqlite() {
        MAGPIE_TRY(each("PRAGMA integrity_check", [&](const Statement& row) {
            std::string line = row.column_text(0);
            if (line != "ok") problem("sqlite integrity: {}", line);
        }));
        return each("PRAGMA foreign_key_check", [&](const Statement& row) {
            problem("foreign key: {} row {} refers to a missing {} row", row.column_text(0), row.column_int64(1),
                    row.column_text(2));
        });
    }

    // Every referenced blob (by an Email, and so by its messages, whose blob check_emails matches with the
    // Email's; by a queue entry or a kept DSN envelope) is present with the right size and SHA-256;
    // unreferenced ones are garbage.
    Result<void> check_blobs() {
        return each(
            "SELECT b.id, b.size, b.location, EXISTS(SELECT 1 FROM emails m WHERE m.blob_id = b.id) OR "
            "EXISTS(SELECT 1 FROM queue_messages q WHERE q.blob_id = b.id) OR "
            "EXISTS(SELECT 1 FROM envelopes e WHERE e.blob_id = b.id) FROM blobs b",
            [&](const Statement& row) {
                std::string id = row.column_text(0);
                auto size = static_cast<std::uint64_t>(row.column_int64(1));
                const std::int64_t location = row.column_int64(2);
                const bool in_file = location == kLocationFile;
                bool referenced = row.column_int64(3) != 0;
                if (in_file) known_files_.insert(id);
                if (!referenced) {
                    ++report_.garbage_blobs;
                    return;
                }
                ++report_.blobs;
                if (!is_valid_blob_id(id)) return problem("blob row with a malformed id '{}'", id);
                if (in_file) {
                    verify_file(id, size);
                } else {
                    inline_blobs_.push_back({std::move(id), size, location});  // read after this statement finishes
                }
            });
    }

    void verify_file(const std::string& id, std::uint64_t size) {
        auto digest = files_.digest(id);
        if (!digest) {
            if (digest.error().code == Errc::not_found) return problem("blob {}: file missing", id);
            return problem("blob {}: {}", id, digest.error().message);
        }
        if (digest->size != size) problem("blob {}: file is {} bytes, expected {}", id, digest->size, size);
        else if (digest->sha256_hex != id) problem("blob {}: file content does not match its SHA-256", id);
    }

    Result<void> verify_inline_blobs() {
        for (const auto& [id, size, location] : inline_blobs_) {
            auto statement = db_.prepare("SELECT content FROM blob_contents WHERE blob_id = ?1");
            if (!statement) return statement.error();
            auto row = statement->bind_text(1, id).step();
            if (!row) return row.error();
            if (!*row) {
                problem("blob {}: inline content missing", id);
                continue;
            }
            // `magpie check` runs without the daemon's config: the default limit bounds what it allocates.
            auto content =
                expand_inline(location, statement->column_text(0), size, SqliteOptions{}.max_message_bytes);
            if (!content) problem("blob {}: {}", id, content.error().message);
            else if (blob_id_of(*content) != id) problem("blob {}: content does not match its SHA-256", id);
        }
        return {};
    }

    Result<void> check_messages() {
        MAGPIE_TRY(verify_inline_blobs());
        MAGPIE_TRY(each("SELECT count(*) FROM messages",
                        [&](const Statement& row) { report_.messages = static_cast<std::size_t>(row.column_int64(0)); }));
        MAGPIE_TRY(each(
            "SELECT m.mailbox_id, m.uid, m.blob_id FROM messages m WHERE NOT EXISTS "
            "(SELECT 1 FROM blobs b WHERE b.id = m.blob_id)",
            [&](const Statement& row) {
                problem("message uid {} in mailbox {}: blob {} missing", row.column_int64(1), row.column_int64(0),
                        row.column_text(2));
            }));
        return each(
            "SELECT m.mailbox_id, m.uid, m.size, b.size FROM messages m JOIN blobs b ON b.id = m.blob_id "
            "WHERE m.size <> b.size",
            [&](const Statement& row) {
                problem("message uid {} in mailbox {}: size {} but its blob has {}", row.column_int64(1),
                        row.column_int64(0), row.column_int64(2), row.column_int64(3));
            });
    }

    // UIDs unique, positive and below UIDNEXT; MODSEQs at most HIGHESTMODSEQ (itself at least 1); the kept
    // counters (messages, octets, unseen, deleted, recent) match the rows.
    Result<void> check_mailboxes() {
        MAGPIE_TRY(each(
            "SELECT mailbox_id, uid, count(*) FROM messages GROUP BY mailbox_id, uid HAVING count(*) > 1",
            [&](const Statement& row) {
                problem("mailbox {}: uid {} used by {} messages", row.column_int64(0), row.column_int64(1),
                        row.column_int64(2));
            }));
        return each(
            "SELECT mb.id, mb.name, mb.uidnext, mb.highest_modseq, mb.message_count, mb.total_size, "
            "count(m.id), coalesce(min(m.uid), 1), coalesce(max(m.uid), 0), coalesce(max(m.modseq), 0), "
            "coalesce(sum(m.size), 0), mb.unseen_count, mb.deleted_count, mb.deleted_size, mb.recent_count, "
            "mb.first_recent_uid, coalesce(sum((m.system_flags & 1) = 0), 0), coalesce(sum((m.system_flags & 8) <> 0), 0), "
            "coalesce(sum(CASE WHEN (m.system_flags & 8) <> 0 THEN m.size ELSE 0 END), 0), "
            "coalesce(sum(m.uid >= mb.first_recent_uid), 0) "
            "FROM mailboxes mb LEFT JOIN messages m ON m.mailbox_id = mb.id GROUP BY mb.id",
            [&](const Statement& row) {
                std::int64_t id = row.column_int64(0);
                std::string name = row.column_text(1);
                std::int64_t uidnext = row.column_int64(2), highest_modseq = row.column_int64(3);
                if (row.column_int64(7) < 1) problem("mailbox {} ({}): uid below 1", id, name);
                if (row.column_int64(8) >= uidnext) {
                    problem("mailbox {} ({}): uid {} not below uidnext {}", id, name, row.column_int64(8), uidnext);
                }
                if (row.column_int64(9) > highest_modseq) {
                    problem("mailbox {} ({}): modseq {} above highest modseq {}", id, name, row.column_int64(9),
                            highest_modseq);
                }
                if (highest_modseq < 1) problem("mailbox {} ({}): highest modseq {} below 1", id, name, highest_modseq);
                if (row.column_int64(6) != row.column_int64(4) || row.column_int64(10) != row.column_int64(5)) {
                    problem("mailbox {} ({}): counts {} messages / {} bytes but holds {} / {}", id, name,
                            row.column_int64(4), row.column_int64(5), row.column_int64(6), row.column_int64(10));
                }
                if (row.column_int64(11) != row.column_int64(16) || row.column_int64(12) != row.column_int64(17) ||
                    row.column_int64(13) != row.column_int64(18) || row.column_int64(14) != row.column_int64(19)) {
                    problem("mailbox {} ({}): counts {} unseen / {} deleted ({} bytes) / {} recent but holds "
                            "{} / {} ({}) / {}",
                            id, name, row.column_int64(11), row.column_int64(12), row.column_int64(13),
                            row.column_int64(14), row.column_int64(16), row.column_int64(17), row.column_int64(18),
                            row.column_int64(19));
                }
                if (row.column_int64(15) < 1 || row.column_int64(15) > uidnext) {
                    problem("mailbox {} ({}): first recent uid {} outside 1..uidnext {}", id, name,
                            row.column_int64(15), uidnext);
                }
            });
    }

    // The change log explains every message's current MODSEQ and stays within the mailbox's counters.
    Result<void> check_change_log() {
        MAGPIE_TRY(each(
            "SELECT c.mailbox_id, c.modseq, c.uid FROM change_log c JOIN mailboxes mb ON mb.id = c.mailbox_id "
            "WHERE c.modseq > mb.highest_modseq OR c.uid >= mb.uidnext OR c.uid < 1",
            [&](const Statement& row) {
                problem("change log: mailbox {} modseq {} uid {} beyond the mailbox's counters", row.column_int64(0),
                        row.column_int64(1), row.column_int64(2));
            }));
        MAGPIE_TRY(each(fmt::format("SELECT mailbox_id, modseq, uid, kind FROM change_log WHERE kind NOT IN ({}, {}, {})",
                                    static_cast<std::int64_t>(sqlite::ChangeKind::appended),
                                    static_cast<std::int64_t>(sqlite::ChangeKind::flags),
                                    static_cast<std::int64_t>(sqlite::ChangeKind::expunged)),
                        [&](const Statement& row) {
                            problem("change log: mailbox {} modseq {} uid {} has unknown kind {}", row.column_int64(0),
                                    row.column_int64(1), row.column_int64(2), row.column_int64(3));
                        }));
        MAGPIE_TRY(each(
            fmt::format("SELECT m.mailbox_id, m.uid, m.modseq FROM messages m WHERE NOT EXISTS (SELECT 1 FROM "
                        "change_log c WHERE c.mailbox_id = m.mailbox_id AND c.uid = m.uid AND c.modseq = m.modseq "
                        "AND c.kind <> {})",
                        static_cast<std::int64_t>(sqlite::ChangeKind::expunged)),
            [&](const Statement& row) {
                problem("change log: no entry for mailbox {} uid {} at modseq {}", row.column_int64(0),
                        row.column_int64(1), row.column_int64(2));
            }));
        return each(
            fmt::format("SELECT m.mailbox_id, m.uid, c.modseq, c.kind FROM messages m JOIN change_log c ON "
                        "c.mailbox_id = m.mailbox_id AND c.uid = m.uid WHERE c.modseq > m.modseq OR c.kind = {}",
                        static_cast<std::int64_t>(sqlite::ChangeKind::expunged)),
            [&](const Statement& row) {
                problem("change log: mailbox {} uid {} changed at modseq {} (kind {}) after the message's modseq",
                        row.column_int64(0), row.column_int64(1), row.column_int64(2), row.column_int64(3));
            });
    }

    // Message identity (schema 7): every membership belongs to an Email of its mailbox's account and mirrors
    // its blob, size and flags; every Email has a membership and a thread no younger than itself; states stay
    // within the account's counter and the Email log explains each Email's state.
    Result<void> check_emails() {
        MAGPIE_TRY(each("SELECT count(*) FROM emails",
                        [&](const Statement& row) { report_.emails = static_cast<std::size_t>(row.column_int64(0)); }));
        MAGPIE_TRY(each(
            "SELECT m.mailbox_id, m.uid, coalesce(m.email_id, 0) FROM messages m WHERE m.email_id IS NULL OR "
            "NOT EXISTS(SELECT 1 FROM emails e WHERE e.id = m.email_id)",
            [&](const Statement& row) {
                problem("message uid {} in mailbox {}: its email {} is missing", row.column_int64(1),
                        row.column_int64(0), row.column_int64(2));
            }));
        MAGPIE_TRY(each(
            "SELECT m.mailbox_id, m.uid, m.email_id FROM messages m JOIN mailboxes mb ON mb.id = m.mailbox_id "
            "JOIN emails e ON e.id = m.email_id WHERE e.account_id <> mb.account_id OR e.blob_id <> m.blob_id "
            "OR e.size <> m.size OR e.system_flags <> (m.system_flags & ~8) OR e.keywords <> m.keywords "
            "OR (e.system_flags & 8) <> 0",  // \\Deleted (8) is the membership's own (emails.h)
            [&](const Statement& row) {
                problem("message uid {} in mailbox {}: differs from its email {} (account, blob, size or flags)",
                        row.column_int64(1), row.column_int64(0), row.column_int64(2));
            }));
        MAGPIE_TRY(each("SELECT e.id FROM emails e WHERE NOT EXISTS(SELECT 1 FROM messages m WHERE m.email_id = e.id)",
                        [&](const Statement& row) { problem("email {}: in no mailbox", row.column_int64(0)); }));
        MAGPIE_TRY(each("SELECT id, thread_id FROM emails WHERE thread_id < 1 OR thread_id > id",
                        [&](const Statement& row) {
                            problem("email {}: thread {} is not an earlier email's id", row.column_int64(0),
                                    row.column_int64(1));
                        }));
        MAGPIE_TRY(each(
            "SELECT e.id, e.state, a.email_state FROM emails e JOIN accounts a ON a.id = e.account_id "
            "WHERE e.state > a.email_state",
            [&](const Statement& row) {
                problem("email {}: state {} above its account's state {}", row.column_int64(0), row.column_int64(1),
                        row.column_int64(2));
            }));
        MAGPIE_TRY(each(
            "SELECT l.account_id, l.state, l.email_id, l.kind FROM email_log l JOIN accounts a ON a.id = l.account_id "
            "WHERE l.state > a.email_state OR l.state < 1 OR l.kind NOT IN (1, 2, 3)",
            [&](const Statement& row) {
                problem("email log: account {} state {} email {} kind {} beyond the account's counter or unknown",
                        row.column_int64(0), row.column_int64(1), row.column_int64(2), row.column_int64(3));
            }));
        MAGPIE_TRY(each(
            "SELECT e.id, e.state FROM emails e WHERE e.state > 0 AND NOT EXISTS(SELECT 1 FROM email_log l WHERE "
            "l.account_id = e.account_id AND l.state = e.state AND l.email_id = e.id AND l.kind <> 3)",
            [&](const Statement& row) {
                problem("email log: no entry for email {} at state {}", row.column_int64(0), row.column_int64(1));
            }));
        return each("SELECT l.email_id, l.state FROM email_log l JOIN emails e ON e.id = l.email_id WHERE l.kind = 3",
                    [&](const Statement& row) {
                        problem("email log: email {} destroyed at state {} but present", row.column_int64(0),
                                row.column_int64(1));
                    });
    }

    // Files not named by a blob row (a crash between file write and commit, or a temporary file) are garbage.
    void check_blob_files() {
        std::error_code error;
        std::filesystem::directory_iterator fanout(files_.root(), error);
        if (error) return problem("blob directory {}: {}", files_.root().string(), error.message());
        for (const auto& dir : fanout) {
            std::string prefix = dir.path().filename().string();
            if (!dir.is_directory(error)) {
                ++report_.garbage_blobs;
                continue;
            }
            std::filesystem::directory_iterator entries(dir.path(), error);
            if (error) {
                problem("blob directory {}: {}", dir.path().string(), error.message());
                continue;
            }
            for (const auto& entry : entries) {
                std::string id = prefix + entry.path().filename().string();
                if (BlobFiles::is_temporary(entry.path().filename().string()) || !is_valid_blob_id(id) ||
                    !known_files_.contains(id)) {
                    ++report_.garbage_blobs;
                }
            }
        }
    }

    Result<CheckReport> finish() {
        report_.clean = problem_count_ == 0;
        if (report_.clean) {
            report_.summary = fmt::format("clean: {} messages, {} blobs, {} garbage blobs", report_.messages,
                                          report_.blobs, report_.garbage_blobs);
        } else {
            report_.summary = fmt::format("{} problems (first: {}); {} messages, {} blobs, {} garbage blobs",
                                          problem_count_, report_.problems.front(), report_.messages, report_.blobs,
                                          report_.garbage_blobs);
        }
        return std::move(report_);
    }

    Connection& db_;
    BlobFiles files_;
    CheckReport report_;
    std::size_t problem_count_ = 0;
    std::unordered_set<std::string> known_files_;  // blob ids whose rows say "in a file"
    struct InlineBlob {
        std::string id;
        std::uint64_t size = 0;
        std::int64_t location = 0;  // kLocationInline or kLocationInlineZstd
    };
    std::vector<InlineBlob> inline_blobs_;
};

}  // namespace

Result<CheckReport> check_store(const std::filesystem::path& data_dir) {
    std::filesystem::path db_path = data_dir / "magpie.db";
    std::error_code error;
    if (!std::filesystem::exists(db_path, error)) {
        return make_error(Errc::not_found, fmt::format("no store at {}", data_dir.string()));
    }
    auto db = Connection::open(db_path, Connection::Mode::read_only, kCheckBusyTimeoutMs);
    if (!db) return db.error();
    auto version = sqlite::schema_version(**db);
    if (!version) return version.error();
    if (*version != sqlite::kSchemaVersion) {
        return make_error(Errc::unavailable, fmt::format("store schema version {} (this magpie knows {})", *version,
                                                         sqlite::kSchemaVersion));
    }
    return Checker(**db, data_dir).run();
}

}  // namespace magpie::store
