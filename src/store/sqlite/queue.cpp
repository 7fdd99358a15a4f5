// The outgoing queue of the embedded backend (issues 11 and 13): entries written by a delivery's transaction,
// leases of due recipients, attempt records with bounded transcripts together with the reports they produce,
// and the reads and changes of the delivery tracker (`magpie queue`). Leases and records are writes of the
// group committer like any other; the lease query takes rows whose lease is free or lapsed, which on
// PostgreSQL becomes SELECT ... FOR UPDATE SKIP LOCKED with the same expiry.
#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "base/time.h"
#include "store/sqlite/rows.h"
#include "store/sqlite/sqlite_store.h"

namespace magpie::store::sqlite {
namespace {

constexpr std::string_view kCut = "[...]";

// Keeps at most `max` bytes of `text`, marking a cut; never splits a UTF-8 sequence.
std::string cut_to(std::string_view text, std::size_t max) {
    if (text.size() <= max) return std::string(text);
    std::size_t keep = max > kCut.size() ? max - kCut.size() : 0;
    while (keep > 0 && (static_cast<unsigned char>(text[keep]) & 0xc0) == 0x80) --keep;
    return std::string(text.substr(0, keep)) + std::string(kCut.substr(0, std::min(kCut.size(), max)));
}

// "Waiting" = queued or deferred. The partial index queue_recipients_due needs this term verbatim.
constexpr const char* kWaiting = "state IN (0, 1)";

constexpr const char* kRecipientColumns =
    "r.id, r.address, r.notify, r.orcpt, r.state, r.last_reply, r.next_attempt_at, r.attempts, r.failed_attempts, "
    "r.status, r.remote_mta, r.last_attempt_at, r.delay_notified";

QueueRecipient recipient_from_row(const Statement& row) {
    QueueRecipient recipient;
    recipient.id = row.column_int64(0);
    recipient.address = row.column_text(1);
    recipient.notify = row.column_text(2);
    recipient.orcpt = row.column_text(3);
    recipient.state = static_cast<QueueState>(row.column_int64(4));
    recipient.last_reply = row.column_text(5);
    recipient.next_attempt_at = row.column_int64(6);
    recipient.attempt_count = static_cast<std::uint32_t>(row.column_int64(7));
    recipient.failed_attempts = static_cast<std::uint32_t>(row.column_int64(8));
    recipient.status = row.column_text(9);
    recipient.remote_mta = row.column_text(10);
    recipient.last_attempt_at = row.column_int64(11);
    recipient.delay_notified = row.column_int64(12) != 0;
    return recipient;
}

// The entry's own row (no recipients); not_found.
Result<QueueEntry> select_entry(Connection& db, std::int64_t id) {
    auto statement = db.prepare(
        "SELECT q.id, q.blob_id, q.reverse_path, q.dsn_ret, q.dsn_envid, q.created_at, q.smtputf8, q.held, "
        "q.send_offset, b.size FROM queue_messages q JOIN blobs b ON b.id = q.blob_id WHERE q.id = ?1");
    if (!statement) return statement.error();
    auto row = statement->bind(1, id).step();
    if (!row) return row.error();
    if (!*row) return make_error(Errc::not_found, fmt::format("no queue entry {}", id));
    QueueEntry entry;
    entry.id = statement->column_int64(0);
    entry.blob_id = statement->column_text(1);
    entry.reverse_path = statement->column_text(2);
    entry.dsn_ret = statement->column_text(3);
    entry.dsn_envid = statement->column_text(4);
    entry.created_at = statement->column_int64(5);
    entry.smtputf8 = statement->column_int64(6) != 0;
    entry.held = statement->column_int64(7) != 0;
    entry.send_offset = static_cast<std::uint64_t>(statement->column_int64(8));
    const auto blob_size = static_cast<std::uint64_t>(statement->column_int64(9));
    entry.size = blob_size > entry.send_offset ? blob_size - entry.send_offset : 0;
    return entry;
}

// Appends the recipients of entry `id` (all, or only those in `only`, sorted) to `entry`.
Result<void> add_recipients(Connection& db, QueueEntry& entry, const std::vector<std::int64_t>* only) {
    auto statement = db.prepare(fmt::format(
        "SELECT {} FROM queue_recipients r WHERE r.message_id = ?1 ORDER BY r.id", kRecipientColumns));
    if (!statement) return statement.error();
    statement->bind(1, entry.id);
    for (;;) {
        auto row = statement->step();
        if (!row) return row.error();
        if (!*row) return {};
        QueueRecipient recipient = recipient_from_row(*statement);
        if (only != nullptr && !std::ranges::binary_search(*only, recipient.id)) continue;
        entry.recipients.push_back(std::move(recipient));
    }
}

Result<void> add_attempts(Connection& db, QueueRecipient& recipient) {
    auto statement = db.prepare(
        "SELECT at, host, address, tls, reply, transcript, connection FROM queue_attempts WHERE recipient_id = ?1 "
        "ORDER BY id");
    if (!statement) return statement.error();
    statement->bind(1, recipient.id);
    for (;;) {
        auto row = statement->step();
        if (!row) return row.error();
        if (!*row) return {};
        recipient.attempts.push_back(QueueAttempt{statement->column_int64(0), statement->column_text(1),
                                                  statement->column_text(2), statement->column_text(3),
                                                  statement->column_text(4), statement->column_text(5),
                                                  statement->column_text(6)});
    }
}

// Adds one attempt to a recipient's history and drops the oldest beyond `keep`.
Result<void> insert_attempt(Connection& db, std::int64_t recipient_id, const QueueAttempt& attempt, std::size_t keep) {
    auto insert = db.prepare(
        "INSERT INTO queue_attempts(recipient_id, at, host, address, tls, reply, transcript, connection) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    if (!insert) return insert.error();
    MAGPIE_TRY(insert->bind(1, recipient_id)
                   .bind(2, attempt.at)
                   .bind_text(3, attempt.host)
                   .bind_text(4, attempt.address)
                   .bind_text(5, attempt.tls)
                   .bind_text(6, attempt.reply)
                   .bind_text(7, attempt.transcript)
                   .bind_text(8, attempt.connection)
                   .run());
    // Bounded history: a recipient retried for days keeps only its newest attempts.
    auto prune = db.prepare(
        "DELETE FROM queue_attempts WHERE recipient_id = ?1 AND id NOT IN (SELECT id FROM queue_attempts "
        "WHERE recipient_id = ?1 ORDER BY id DESC LIMIT ?2)");
    if (!prune) return prune.error();
    return prune->bind(1, recipient_id).bind(2, static_cast<std::int64_t>(std::max<std::size_t>(keep, 1))).run();
}

Result<std::vector<std::int64_t>> column_ids(Statement& statement) {
    std::vector<std::int64_t> ids;
    for (;;) {
        auto row = statement.step();
        if (!row) return row.error();
        if (!*row) return ids;
        ids.push_back(statement.column_int64(0));
    }
}

}  // namespace

QueueAttempt SqliteStore::bounded(const QueueAttempt& attempt) const {
    const std::size_t field = options_.max_attempt_field_bytes;
    return QueueAttempt{attempt.at,
                        cut_to(attempt.host, field),
                        cut_to(attempt.address, field),
                        cut_to(attempt.tls, field),
                        cut_to(attempt.reply, field),
                        cut_to(attempt.transcript, options_.max_transcript_bytes),
                        cut_to(attempt.connection, field)};
}

Result<std::int64_t> SqliteStore::insert_queue_entry(Connection& db, const std::string& blob_id,
                                                     const OutgoingMessage& outgoing) {
    const std::int64_t now = unix_now();
    const std::int64_t queued_at = outgoing.queued_at != 0 ? outgoing.queued_at : now;
    auto message = db.prepare(
        "INSERT INTO queue_messages(blob_id, reverse_path, dsn_ret, dsn_envid, created_at, smtputf8, held, "
        "send_offset) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    if (!message) return message.error();
    MAGPIE_TRY(message->bind_text(1, blob_id)
                   .bind_text(2, outgoing.reverse_path)
                   .bind_text(3, outgoing.dsn_ret)
                   .bind_text(4, outgoing.dsn_envid)
                   .bind(5, queued_at)
                   .bind(6, outgoing.smtputf8 ? 1 : 0)
                   .bind(7, outgoing.held ? 1 : 0)
                   .bind(8, static_cast<std::int64_t>(outgoing.send_offset))
                   .run());
    const std::int64_t id = db.last_insert_rowid();
    const std::int64_t first_attempt = outgoing.first_attempt_at != 0 ? outgoing.first_attempt_at : now;
    for (std::size_t i = 0; i < outgoing.recipients.size(); ++i) {
        const EnvelopeRecipient& r = outgoing.recipients[i];
        QueueRecipient state;
        state.next_attempt_at = first_attempt;
        if (!outgoing.carried_over.empty()) state = outgoing.carried_over[i];
        auto recipient = db.prepare(
            "INSERT INTO queue_recipients(message_id, address, notify, orcpt, state, next_attempt_at, last_reply, "
            "attempts, failed_attempts, status, remote_mta, last_attempt_at, delay_notified) "
            "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)");
        if (!recipient) return recipient.error();
        const std::size_t field = options_.max_attempt_field_bytes;
        MAGPIE_TRY(recipient->bind(1, id)
                       .bind_text(2, r.address)
                       .bind_text(3, cut_to(r.notify, field))
                       .bind_text(4, cut_to(r.orcpt, field))
                       .bind(5, static_cast<std::int64_t>(state.state))
                       .bind(6, state.next_attempt_at)
                       .bind_text(7, cut_to(state.last_reply, field))
                       .bind(8, static_cast<std::int64_t>(state.attempt_count))
                       .bind(9, static_cast<std::int64_t>(state.failed_attempts))
                       .bind_text(10, cut_to(state.status, field))
                       .bind_text(11, cut_to(state.remote_mta, field))
                       .bind(12, state.last_attempt_at)
                       .bind(13, state.delay_notified ? 1 : 0)
                       .run());
        const std::int64_t recipient_id = db.last_insert_rowid();
        for (const QueueAttempt& attempt : state.attempts)
            MAGPIE_TRY(insert_attempt(db, recipient_id, bounded(attempt), options_.max_attempts_kept));
    }
    return id;
}

Result<std::vector<QueueEntry>> SqliteStore::lease_due(std::string_view owner, std::int64_t now,
                                                       std::int64_t lease_seconds, std::size_t limit) {
    if (owner.empty() || owner.size() > options_.max_attempt_field_bytes) {
        return make_error(Errc::invalid_argument, "lease owner empty or too long");
    }
    if (lease_seconds <= 0) return make_error(Errc::invalid_argument, "lease of no time");
    using Entries = std::vector<QueueEntry>;
    return write<Entries>([&](Connection& db) -> Result<Entries> {
        // One statement picks and marks: the writer is serialized, so no two owners take one recipient.
        auto lease = db.prepare(fmt::format(
            "UPDATE queue_recipients SET lease_owner = ?1, lease_expires_at = ?2 + ?3 WHERE id IN ("
            "SELECT id FROM queue_recipients WHERE {} AND next_attempt_at <= ?2 AND lease_expires_at <= ?2 "
            "AND NOT EXISTS(SELECT 1 FROM queue_messages q WHERE q.id = message_id AND q.held <> 0) "
            "ORDER BY next_attempt_at, id LIMIT ?4) RETURNING id, message_id",
            kWaiting));
        if (!lease) return lease.error();
        lease->bind_text(1, owner).bind(2, now).bind(3, lease_seconds).bind(4, static_cast<std::int64_t>(limit));
        std::map<std::int64_t, std::vector<std::int64_t>> leased;  // message -> recipients
        for (;;) {
            auto row = lease->step();
            if (!row) return row.error();
            if (!*row) break;
            leased[lease->column_int64(1)].push_back(lease->column_int64(0));
        }
        Entries entries;
        for (auto& [message_id, recipients] : leased) {
            std::ranges::sort(recipients);
            auto entry = select_entry(db, message_id);
            if (!entry) return entry.error();
            MAGPIE_TRY(add_recipients(db, *entry, &recipients));
            entries.push_back(std::move(*entry));
        }
        // Oldest due first, as the lease chose them.
        std::ranges::stable_sort(entries, {}, [](const QueueEntry& e) { return e.recipients.front().next_attempt_at; });
        return entries;
    });
}

Result<std::size_t> SqliteStore::record_attempts(std::string_view owner, const std::vector<AttemptOutcome>& outcomes,
                                                 std::vector<Delivery> reports) {
    for (const AttemptOutcome& outcome : outcomes) {
        if (outcome.state == QueueState::queued) return make_error(Errc::invalid_argument, "an attempt cannot leave a recipient queued");
    }
    // Reports are checked and hashed here; a large one is written to its own file (and fsynced) before the
    // transaction that references it, as a blob writer would for deliver().
    std::vector<Pending> pending;
    for (Delivery& report : reports) {
        auto admitted = admit(std::move(report));
        if (!admitted) return admitted.error();
        if (admitted->in_file) {
            admitted->blob_id = blob_id_of(admitted->delivery.content);
            auto written = blobs_->write(admitted->blob_id, admitted->delivery.content);
            if (!written) return written.error();
            if (*written) ++blob_files_written_;
            admitted->delivery.content.clear();
        }
        pending.push_back(std::move(*admitted));
    }
    return write<std::size_t>([&](Connection& db, Changes& changes) -> Result<std::size_t> {
        std::size_t recorded = 0;
        for (const AttemptOutcome& outcome : outcomes) {
            const bool tried = outcome.attempt.has_value();
            QueueAttempt attempt = tried ? bounded(*outcome.attempt) : QueueAttempt{};
            const std::size_t field = options_.max_attempt_field_bytes;
            auto update = db.prepare(
                "UPDATE queue_recipients SET state = ?3, next_attempt_at = ?4, status = ?5, "
                "last_reply = CASE WHEN ?6 THEN ?7 ELSE last_reply END, "
                "remote_mta = CASE WHEN ?8 = '' THEN remote_mta ELSE ?8 END, "
                "last_attempt_at = CASE WHEN ?6 THEN ?9 ELSE last_attempt_at END, attempts = attempts + ?6, "
                "failed_attempts = failed_attempts + ?10, delay_notified = delay_notified OR ?11, "
                "lease_owner = '', lease_expires_at = 0 "
                "WHERE id = ?1 AND lease_owner = ?2 AND state IN (0, 1)");
            if (!update) return update.error();
            MAGPIE_TRY(update->bind(1, outcome.recipient_id)
                           .bind_text(2, owner)
                           .bind(3, static_cast<std::int64_t>(outcome.state))
                           .bind(4, outcome.state == QueueState::deferred ? outcome.next_attempt_at : 0)
                           .bind_text(5, cut_to(outcome.status, field))
                           .bind(6, tried ? 1 : 0)
                           .bind_text(7, attempt.reply)
                           .bind_text(8, cut_to(outcome.remote_mta, field))
                           .bind(9, attempt.at)
                           .bind(10, outcome.count_failure ? 1 : 0)
                           .bind(11, outcome.delay_notified ? 1 : 0)
                           .run());
            if (db.changes() == 0) continue;  // not (or no longer) ours: leave it to its holder
            if (tried) MAGPIE_TRY(insert_attempt(db, outcome.recipient_id, attempt, options_.max_attempts_kept));
            ++recorded;
        }
        if (recorded == outcomes.size()) {
            for (const Pending& report : pending) {
                auto applied = apply_delivery(report, changes);
                if (!applied) return applied.error();
            }
        }
        return recorded;
    });
}

Result<std::size_t> SqliteStore::release_leases(std::string_view owner) {
    return write<std::size_t>([&](Connection& db) -> Result<std::size_t> {
        auto statement = db.prepare(
            "UPDATE queue_recipients SET lease_owner = '', lease_expires_at = 0 WHERE lease_owner = ?1 AND lease_owner <> ''");
        if (!statement) return statement.error();
        MAGPIE_TRY(statement->bind_text(1, owner).run());
        return static_cast<std::size_t>(db.changes());
    });
}

Result<std::optional<std::int64_t>> SqliteStore::next_queue_due() {
    using Due = std::optional<std::int64_t>;
    return read<Due>([&](Connection& db) -> Result<Due> {
        auto statement = db.prepare(fmt::format(
            "SELECT min(max(r.next_attempt_at, r.lease_expires_at)) FROM queue_recipients r "
            "JOIN queue_messages q ON q.id = r.message_id WHERE r.{} AND q.held = 0",
            kWaiting));
        if (!statement) return statement.error();
        auto row = statement->step();
        if (!row) return row.error();
        if (!*row || statement->column_is_null(0)) return Due{};
        return Due{statement->column_int64(0)};
    });
}

Result<std::vector<QueueEntry>> SqliteStore::list_queue(std::size_t limit, bool waiting_only) {
    using Entries = std::vector<QueueEntry>;
    return read<Entries>([&](Connection& db) -> Result<Entries> {
        auto ids = db.prepare(waiting_only ? fmt::format("SELECT DISTINCT message_id FROM queue_recipients WHERE {} "
                                                         "ORDER BY message_id LIMIT ?1",
                                                         kWaiting)
                                           : std::string("SELECT id FROM queue_messages ORDER BY id LIMIT ?1"));
        if (!ids) return ids.error();
        ids->bind(1, static_cast<std::int64_t>(limit));
        auto found = column_ids(*ids);
        if (!found) return found.error();
        Entries entries;
        for (std::int64_t id : *found) {
            auto entry = select_entry(db, id);
            if (!entry) return entry.error();
            MAGPIE_TRY(add_recipients(db, *entry, nullptr));
            entries.push_back(std::move(*entry));
        }
        return entries;
    });
}

Result<QueueEntry> SqliteStore::find_queue_entry(std::int64_t id) {
    return read<QueueEntry>([&](Connection& db) -> Result<QueueEntry> {
        auto entry = select_entry(db, id);
        if (!entry) return entry.error();
        MAGPIE_TRY(add_recipients(db, *entry, nullptr));
        for (QueueRecipient& recipient : entry->recipients) MAGPIE_TRY(add_attempts(db, recipient));
        return entry;
    });
}

Result<void> SqliteStore::delete_queue_entry(std::int64_t id) {
    return write<void>([&](Connection& db) -> Result<void> {
        auto statement = db.prepare("DELETE FROM queue_messages WHERE id = ?1");
        if (!statement) return statement.error();
        MAGPIE_TRY(statement->bind(1, id).run());
        if (db.changes() == 0) return make_error(Errc::not_found, fmt::format("no queue entry {}", id));
        return {};
    });
}

Result<void> SqliteStore::set_queue_held(std::int64_t id, bool held) {
    return write<void>([&](Connection& db) -> Result<void> {
        auto statement = db.prepare("UPDATE queue_messages SET held = ?2 WHERE id = ?1");
        if (!statement) return statement.error();
        MAGPIE_TRY(statement->bind(1, id).bind(2, held ? 1 : 0).run());
        if (db.changes() == 0) return make_error(Errc::not_found, fmt::format("no queue entry {}", id));
        return {};
    });
}

Result<std::size_t> SqliteStore::retry_queue_now(std::optional<std::int64_t> id, std::int64_t now) {
    return write<std::size_t>([&](Connection& db) -> Result<std::size_t> {
        if (id) MAGPIE_TRY(select_entry(db, *id));  // not_found
        auto statement = db.prepare(fmt::format(
            "UPDATE queue_recipients SET next_attempt_at = ?1 WHERE {} AND next_attempt_at > ?1 "
            "AND (?2 IS NULL OR message_id = ?2)",
            kWaiting));
        if (!statement) return statement.error();
        statement->bind(1, now);
        if (id) {
            statement->bind(2, *id);
        } else {
            statement->bind_null(2);
        }
        MAGPIE_TRY(statement->run());
        return static_cast<std::size_t>(db.changes());
    });
}

Result<std::size_t> SqliteStore::purge_finished_queue(std::int64_t before) {
    return write<std::size_t>([&](Connection& db) -> Result<std::size_t> {
        auto statement = db.prepare(fmt::format(
            "DELETE FROM queue_messages WHERE created_at < ?1 AND NOT EXISTS("
            "SELECT 1 FROM queue_recipients r WHERE r.message_id = queue_messages.id AND r.{})",
            kWaiting));
        if (!statement) return statement.error();
        MAGPIE_TRY(statement->bind(1, before).run());
        return static_cast<std::size_t>(db.changes());
    });
}

}  // namespace magpie::store::sqlite
