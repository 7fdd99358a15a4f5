// The outgoing queue of the embedded backend (issue 13): entries written by a delivery's transaction, leases
// of due recipients, attempt records with bounded transcripts, and the tracker's reads. Leases and records
// are writes of the group committer like any other; the lease query takes rows whose lease is free or
// lapsed, which on PostgreSQL becomes SELECT ... FOR UPDATE SKIP LOCKED with the same expiry.
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

constexpr const char* kRecipientColumns =
    "r.id, r.address, r.notify, r.orcpt, r.state, r.last_reply, r.next_attempt_at, r.attempts";

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
    return recipient;
}

// The entry's own row (no recipients); not_found.
Result<QueueEntry> select_entry(Connection& db, std::int64_t id) {
    auto statement = db.prepare(
        "SELECT id, blob_id, reverse_path, dsn_ret, dsn_envid, created_at FROM queue_messages WHERE id = ?1");
    if (!statement) return statement.error();
    auto row = statement->bind(1, id).step();
    if (!row) return row.error();
    if (!*row) return make_error(Errc::not_found, fmt::format("no queue entry {}", id));
    return QueueEntry{statement->column_int64(0), statement->column_text(1), statement->column_text(2),
                      statement->column_text(3),  statement->column_text(4), statement->column_int64(5), {}};
}

// Appends the recipients of entry `id` (all, or only those in `only`) to `entry`.
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
        "SELECT at, host, address, tls, reply, transcript FROM queue_attempts WHERE recipient_id = ?1 ORDER BY id");
    if (!statement) return statement.error();
    statement->bind(1, recipient.id);
    for (;;) {
        auto row = statement->step();
        if (!row) return row.error();
        if (!*row) return {};
        recipient.attempts.push_back(QueueAttempt{statement->column_int64(0), statement->column_text(1),
                                                  statement->column_text(2), statement->column_text(3),
                                                  statement->column_text(4), statement->column_text(5)});
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
                        cut_to(attempt.transcript, options_.max_transcript_bytes)};
}

Result<std::int64_t> SqliteStore::insert_queue_entry(Connection& db, const std::string& blob_id,
                                                     const OutgoingMessage& outgoing) {
    const std::int64_t now = unix_now();
    auto message = db.prepare(
        "INSERT INTO queue_messages(blob_id, reverse_path, dsn_ret, dsn_envid, created_at) VALUES(?1, ?2, ?3, ?4, ?5)");
    if (!message) return message.error();
    MAGPIE_TRY(message->bind_text(1, blob_id)
                   .bind_text(2, outgoing.reverse_path)
                   .bind_text(3, outgoing.dsn_ret)
                   .bind_text(4, outgoing.dsn_envid)
                   .bind(5, now)
                   .run());
    const std::int64_t id = db.last_insert_rowid();
    const std::int64_t first_attempt = outgoing.first_attempt_at != 0 ? outgoing.first_attempt_at : now;
    for (const EnvelopeRecipient& r : outgoing.recipients) {
        auto recipient = db.prepare(
            "INSERT INTO queue_recipients(message_id, address, notify, orcpt, state, next_attempt_at) "
            "VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
        if (!recipient) return recipient.error();
        MAGPIE_TRY(recipient->bind(1, id)
                       .bind_text(2, r.address)
                       .bind_text(3, r.notify)
                       .bind_text(4, r.orcpt)
                       .bind(5, static_cast<std::int64_t>(QueueState::queued))
                       .bind(6, first_attempt)
                       .run());
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
        // The partial index queue_recipients_due needs "state IN (0, 1)" verbatim.
        auto lease = db.prepare(
            "UPDATE queue_recipients SET lease_owner = ?1, lease_expires_at = ?2 + ?3 WHERE id IN ("
            "SELECT id FROM queue_recipients WHERE state IN (0, 1) AND next_attempt_at <= ?2 "
            "AND lease_expires_at <= ?2 ORDER BY next_attempt_at, id LIMIT ?4) RETURNING id, message_id");
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

Result<std::size_t> SqliteStore::record_attempts(std::string_view owner, const std::vector<AttemptOutcome>& outcomes) {
    for (const AttemptOutcome& outcome : outcomes) {
        if (outcome.state == QueueState::queued) return make_error(Errc::invalid_argument, "an attempt cannot leave a recipient queued");
    }
    return write<std::size_t>([&](Connection& db) -> Result<std::size_t> {
        std::size_t recorded = 0;
        for (const AttemptOutcome& outcome : outcomes) {
            QueueAttempt attempt = bounded(outcome.attempt);
            auto update = db.prepare(
                "UPDATE queue_recipients SET state = ?3, last_reply = ?4, next_attempt_at = ?5, "
                "attempts = attempts + 1, lease_owner = '', lease_expires_at = 0 "
                "WHERE id = ?1 AND lease_owner = ?2 AND state IN (0, 1)");
            if (!update) return update.error();
            MAGPIE_TRY(update->bind(1, outcome.recipient_id)
                           .bind_text(2, owner)
                           .bind(3, static_cast<std::int64_t>(outcome.state))
                           .bind_text(4, attempt.reply)
                           .bind(5, outcome.state == QueueState::deferred ? outcome.next_attempt_at : 0)
                           .run());
            if (db.changes() == 0) continue;  // not (or no longer) ours: leave it to its holder
            auto insert = db.prepare(
                "INSERT INTO queue_attempts(recipient_id, at, host, address, tls, reply, transcript) "
                "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
            if (!insert) return insert.error();
            MAGPIE_TRY(insert->bind(1, outcome.recipient_id)
                           .bind(2, attempt.at)
                           .bind_text(3, attempt.host)
                           .bind_text(4, attempt.address)
                           .bind_text(5, attempt.tls)
                           .bind_text(6, attempt.reply)
                           .bind_text(7, attempt.transcript)
                           .run());
            // Bounded history: the newest max_attempts_kept attempts stay.
            auto prune = db.prepare(
                "DELETE FROM queue_attempts WHERE recipient_id = ?1 AND id NOT IN (SELECT id FROM queue_attempts "
                "WHERE recipient_id = ?1 ORDER BY id DESC LIMIT ?2)");
            if (!prune) return prune.error();
            MAGPIE_TRY(prune->bind(1, outcome.recipient_id)
                           .bind(2, static_cast<std::int64_t>(std::max<std::size_t>(options_.max_attempts_kept, 1)))
                           .run());
            ++recorded;
        }
        return recorded;
    });
}

Result<std::vector<QueueEntry>> SqliteStore::list_queue(std::size_t limit) {
    using Entries = std::vector<QueueEntry>;
    return read<Entries>([&](Connection& db) -> Result<Entries> {
        auto ids = db.prepare("SELECT id FROM queue_messages ORDER BY id LIMIT ?1");
        if (!ids) return ids.error();
        ids->bind(1, static_cast<std::int64_t>(limit));
        std::vector<std::int64_t> found;
        for (;;) {
            auto row = ids->step();
            if (!row) return row.error();
            if (!*row) break;
            found.push_back(ids->column_int64(0));
        }
        Entries entries;
        for (std::int64_t id : found) {
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

}  // namespace magpie::store::sqlite
