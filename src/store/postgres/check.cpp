// `magpie check` on PostgreSQL, read-only in one REPEATABLE READ snapshot (safe beside running nodes): the
// same promises check_store makes of the embedded store, asked as set queries so that the database does
// the walking, plus each blob's bytes hashed chunk by chunk against its id.
#include <openssl/evp.h>

#include <memory>

#include <fmt/format.h>

#include "base/strings.h"
#include "store/postgres/pg.h"
#include "store/postgres/postgres.h"
#include "store/postgres/schema.h"

namespace magpie::store {
namespace {

using postgres::Connection;
using postgres::Params;

constexpr std::size_t kMaxProblems = 100;  // a badly broken store is summarized, not listed in full

struct Probe {
    const char* what;  // the problem, with {} for the count
    const char* sql;   // returns one count
};

// Each counts rows that break one invariant.
constexpr Probe kProbes[] = {
    {"{} messages at or above their mailbox's UIDNEXT",
     "SELECT count(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE m.uid >= b.uidnext"},
    {"{} messages with a MODSEQ above their mailbox's HIGHESTMODSEQ",
     "SELECT count(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE m.modseq > b.highest_modseq"},
    {"{} change log rows above their mailbox's HIGHESTMODSEQ",
     "SELECT count(*) FROM change_log c JOIN mailboxes b ON b.id = c.mailbox_id WHERE c.modseq > b.highest_modseq"},
    {"{} messages whose blob row is missing",
     "SELECT count(*) FROM messages m WHERE NOT EXISTS(SELECT 1 FROM blobs b WHERE b.id = m.blob_id)"},
    {"{} messages whose size differs from their blob's",
     "SELECT count(*) FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.size <> b.size"},
    {"{} mailboxes whose kept counters differ from their messages",
     "SELECT count(*) FROM mailboxes b LEFT JOIN LATERAL (SELECT count(*) AS n, coalesce(sum(size), 0) AS octets, "
     "count(*) FILTER (WHERE (system_flags & 1) = 0) AS unseen, count(*) FILTER (WHERE (system_flags & 8) <> 0) AS deleted "
     "FROM messages m WHERE m.mailbox_id = b.id) c ON true WHERE b.message_count <> c.n OR b.total_size <> c.octets "
     "OR b.unseen_count <> c.unseen OR b.deleted_count <> c.deleted"},
    {"{} mailboxes with HIGHESTMODSEQ below 1", "SELECT count(*) FROM mailboxes WHERE highest_modseq < 1"},
    {"{} blobs whose chunks do not add up to their size",
     "SELECT count(*) FROM blobs b WHERE b.size <> (SELECT coalesce(sum(length(c.data)), 0) FROM blob_chunks c "
     "WHERE c.blob_id = b.id)"},
    {"{} queue entries whose blob row is missing",
     "SELECT count(*) FROM queue_messages q WHERE NOT EXISTS(SELECT 1 FROM blobs b WHERE b.id = q.blob_id)"},
    // Message identity (schema 7), as the embedded check: every membership belongs to an Email of its
    // mailbox's account and mirrors its blob, size and flags (\Deleted, 8, is the membership's own); every
    // Email has a membership and a thread no younger than itself; states stay within the account's counter
    // and the Email log explains each Email's state.
    {"{} messages whose email is missing",
     "SELECT count(*) FROM messages m WHERE m.email_id IS NULL OR NOT EXISTS(SELECT 1 FROM emails e WHERE e.id = m.email_id)"},
    {"{} messages that differ from their email (account, blob, size or flags)",
     "SELECT count(*) FROM messages m JOIN mailboxes mb ON mb.id = m.mailbox_id JOIN emails e ON e.id = m.email_id "
     "WHERE e.account_id <> mb.account_id OR e.blob_id <> m.blob_id OR e.size <> m.size "
     "OR e.system_flags <> (m.system_flags & ~8) OR e.keywords <> m.keywords OR (e.system_flags & 8) <> 0"},
    {"{} emails in no mailbox",
     "SELECT count(*) FROM emails e WHERE NOT EXISTS(SELECT 1 FROM messages m WHERE m.email_id = e.id)"},
    {"{} emails whose thread is not an earlier email's id",
     "SELECT count(*) FROM emails WHERE thread_id < 1 OR thread_id > id"},
    {"{} emails with a state above their account's",
     "SELECT count(*) FROM emails e JOIN accounts a ON a.id = e.account_id WHERE e.state > a.email_state"},
    {"{} email log rows beyond their account's counter or of an unknown kind",
     "SELECT count(*) FROM email_log l JOIN accounts a ON a.id = l.account_id "
     "WHERE l.state > a.email_state OR l.state < 1 OR l.kind NOT IN (1, 2, 3)"},
    {"{} emails without an email log row at their state",
     "SELECT count(*) FROM emails e WHERE e.state > 0 AND NOT EXISTS(SELECT 1 FROM email_log l WHERE "
     "l.account_id = e.account_id AND l.state = e.state AND l.email_id = e.id AND l.kind <> 3)"},
    {"{} emails logged as destroyed but present",
     "SELECT count(*) FROM email_log l JOIN emails e ON e.id = l.email_id WHERE l.kind = 3"},
};

std::string hex_digest(EVP_MD_CTX* context) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_DigestFinal_ex(context, digest, &length);
    return to_hex(std::string_view(reinterpret_cast<const char*>(digest), length));
}

// Hashes every blob chunk by chunk (ordered by blob, then seq: one pass over blob_chunks).
Result<void> check_blob_hashes(Connection& db, CheckReport& report) {
    auto cursor = db.run(
        "DECLARE chunks NO SCROLL CURSOR FOR SELECT blob_id, data FROM blob_chunks ORDER BY blob_id, seq");
    if (!cursor) return cursor.error();
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    std::string current;
    auto finish = [&] {
        if (current.empty()) return;
        std::string digest = hex_digest(context.get());
        if (digest != current && report.problems.size() < kMaxProblems) {
            report.problems.push_back(fmt::format("blob {} does not hash to its id", current));
        }
        if (digest != current) report.clean = false;
    };
    for (;;) {
        auto rows = db.exec("FETCH 64 FROM chunks", Params(), /*binary_results=*/true);
        if (!rows) return rows.error();
        if (rows->empty()) break;
        for (int i = 0; i < rows->size(); ++i) {
            std::string blob(rows->raw(i, 0));
            if (blob != current) {
                finish();
                current = blob;
                EVP_DigestInit_ex(context.get(), EVP_sha256(), nullptr);
            }
            std::string_view data = rows->raw(i, 1);
            EVP_DigestUpdate(context.get(), data.data(), data.size());
        }
    }
    finish();
    return db.run("CLOSE chunks");
}

}  // namespace

Result<CheckReport> check_postgres_store(const PostgresOptions& options) {
    auto opened = Connection::open(options.dsn, options.password);
    if (!opened) return opened.error();
    Connection& db = **opened;
    auto version = postgres::schema_version(db);
    if (!version) return version.error();
    if (*version == 0) return make_error(Errc::not_found, "no Magpie store in this database");
    if (*version != postgres::kSchemaVersion) {
        return make_error(Errc::unavailable, fmt::format("store schema version {} (this magpie knows {})", *version,
                                                         postgres::kSchemaVersion));
    }
    CheckReport report;
    MAGPIE_TRY(postgres::in_transaction(db, [&]() -> Result<void> {
        report = CheckReport{};
        for (const Probe& probe : kProbes) {
            auto rows = db.exec(probe.sql);
            if (!rows) return rows.error();
            if (std::int64_t n = rows->int64(0, 0); n > 0) {
                report.clean = false;
                report.problems.push_back(fmt::format(fmt::runtime(probe.what), n));
            }
        }
        MAGPIE_TRY(check_blob_hashes(db, report));
        auto counts = db.exec(
            "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM blobs), (SELECT count(*) FROM blobs b "
            "WHERE NOT EXISTS(SELECT 1 FROM emails e WHERE e.blob_id = b.id) "
            "AND NOT EXISTS(SELECT 1 FROM queue_messages q WHERE q.blob_id = b.id) "
            "AND NOT EXISTS(SELECT 1 FROM envelopes e WHERE e.blob_id = b.id)), (SELECT count(*) FROM emails)");
        if (!counts) return counts.error();
        report.messages = static_cast<std::size_t>(counts->int64(0, 0));
        report.blobs = static_cast<std::size_t>(counts->int64(0, 1));
        report.garbage_blobs = static_cast<std::size_t>(counts->int64(0, 2));
        report.emails = static_cast<std::size_t>(counts->int64(0, 3));
        return {};
    }, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
    if (report.clean) {
        report.summary = fmt::format("clean: {} messages, {} blobs, {} garbage blobs", report.messages, report.blobs,
                                     report.garbage_blobs);
    } else {
        report.summary = fmt::format("{} problems (first: {}); {} messages, {} blobs, {} garbage blobs",
                                     report.problems.size(), report.problems.front(), report.messages, report.blobs,
                                     report.garbage_blobs);
    }
    return report;
}

}  // namespace magpie::store
