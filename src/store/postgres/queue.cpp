// The shared outgoing queue (schema version 6, the twin of store/sqlite/queue.cpp): entries written by a
// delivery's transaction, leases of due recipients taken with FOR UPDATE SKIP LOCKED (two nodes leasing at
// once take disjoint rows, neither waits) and an expiry (a dead node's recipients are free again once it
// lapses; a restarted node frees its own at once), attempt records with bounded transcripts committed with
// the reports they produce, and the tracker's reads and changes (`magpie queue`: hold, retry, purge).
#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "base/time.h"
#include "store/blob.h"
#include "store/postgres/postgres_store.h"
#include "store/postgres/rows.h"

namespace magpie::store::postgres {
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
    "r.id, r.address, r.notify, r.orcpt, r.state, r.last_reply, r.next_attempt_at, r.attempts, "
    "r.failed_attempts, r.status, r.remote_mta, r.last_attempt_at, r.delay_notified";

const char* boolean(bool value) { return value ? "true" : "false"; }

QueueRecipient recipient_from_row(const Rows& rows, int i) {
    QueueRecipient recipient;
    recipient.id = rows.int64(i, 0);
    recipient.address = rows.text(i, 1);
    recipient.notify = rows.text(i, 2);
    recipient.orcpt = rows.text(i, 3);
    recipient.state = static_cast<QueueState>(rows.int64(i, 4));
    recipient.last_reply = rows.bytes(i, 5);
    recipient.next_attempt_at = rows.int64(i, 6);
    recipient.attempt_count = static_cast<std::uint32_t>(rows.int64(i, 7));
    recipient.failed_attempts = static_cast<std::uint32_t>(rows.int64(i, 8));
    recipient.status = rows.text(i, 9);
    recipient.remote_mta = rows.bytes(i, 10);
    recipient.last_attempt_at = rows.int64(i, 11);
    recipient.delay_notified = rows.boolean(i, 12);
    return recipient;
}

// The entry's own row (no recipients); not_found.
Result<QueueEntry> select_entry(Connection& db, std::int64_t id) {
    auto rows = db.exec(
        "SELECT q.id, q.blob_id, q.reverse_path, q.dsn_ret, q.dsn_envid, q.created_at, q.smtputf8, q.held, "
        "q.send_offset, b.size FROM queue_messages q JOIN blobs b ON b.id = q.blob_id WHERE q.id = $1",
        Params().add(id));
    if (!rows) return rows.error();
    if (rows->empty()) return make_error(Errc::not_found, fmt::format("no queue entry {}", id));
    QueueEntry entry;
    entry.id = rows->int64(0, 0);
    entry.blob_id = rows->text(0, 1);
    entry.reverse_path = rows->text(0, 2);
    entry.dsn_ret = rows->text(0, 3);
    entry.dsn_envid = rows->text(0, 4);
    entry.created_at = rows->int64(0, 5);
    entry.smtputf8 = rows->boolean(0, 6);
    entry.held = rows->boolean(0, 7);
    entry.send_offset = static_cast<std::uint64_t>(rows->int64(0, 8));
    const auto blob_size = static_cast<std::uint64_t>(rows->int64(0, 9));
    entry.size = blob_size > entry.send_offset ? blob_size - entry.send_offset : 0;
    return entry;
}

// Appends the recipients of the entry (all, or only those in `only`, sorted) to `entry`.
Result<void> add_recipients(Connection& db, QueueEntry& entry, const std::vector<std::int64_t>* only) {
    auto rows = db.exec(fmt::format("SELECT {} FROM queue_recipients r WHERE r.message_id = $1 ORDER BY r.id",
                                    kRecipientColumns),
                        Params().add(entry.id));
    if (!rows) return rows.error();
    for (int i = 0; i < rows->size(); ++i) {
        QueueRecipient recipient = recipient_from_row(*rows, i);
        if (only != nullptr && !std::ranges::binary_search(*only, recipient.id)) continue;
        entry.recipients.push_back(std::move(recipient));
    }
    return {};
}

Result<void> add_attempts(Connection& db, QueueRecipient& recipient) {
    auto rows = db.exec(
        "SELECT at, host, address, tls, reply, transcript, connection FROM queue_attempts WHERE recipient_id = $1 "
        "ORDER BY id",
        Params().add(recipient.id));
    if (!rows) return rows.error();
    for (int i = 0; i < rows->size(); ++i) {
        recipient.attempts.push_back(QueueAttempt{rows->int64(i, 0), rows->bytes(i, 1), rows->bytes(i, 2),
                                                  rows->bytes(i, 3), rows->bytes(i, 4), rows->bytes(i, 5),
                                                  rows->text(i, 6)});
    }
    return {};
}

// Adds one attempt to a recipient's history and drops the oldest beyond `keep`.
Result<void> insert_attempt(Connection& db, std::int64_t recipient_id, const QueueAttempt& attempt, std::size_t keep) {
    auto inserted = db.exec(
        "INSERT INTO queue_attempts(recipient_id, at, host, address, tls, reply, transcript, connection) "
        "VALUES($1, $2, $3, $4, $5, $6, $7, $8)",
        Params()
            .add(recipient_id)
            .add(attempt.at)
            .add_bytes(attempt.host)
            .add_bytes(attempt.address)
            .add_bytes(attempt.tls)
            .add_bytes(attempt.reply)
            .add_bytes(attempt.transcript)
            .add(attempt.connection));
    if (!inserted) return inserted.error();
    // Bounded history: a recipient retried for days keeps only its newest attempts.
    auto pruned = db.exec(
        "DELETE FROM queue_attempts WHERE recipient_id = $1 AND id NOT IN (SELECT id FROM queue_attempts "
        "WHERE recipient_id = $1 ORDER BY id DESC LIMIT $2)",
        Params().add(recipient_id).add(static_cast<std::int64_t>(std::max<std::size_t>(keep, 1))));
    if (!pruned) return pruned.error();
    return {};
}

Result<std::vector<QueueEntry>> entries_with_recipients(Connection& db, const Rows& ids) {
    std::vector<QueueEntry> entries;
    for (int i = 0; i < ids.size(); ++i) {
        auto entry = select_entry(db, ids.int64(i, 0));
        if (!entry) return entry.error();
        MAGPIE_TRY(add_recipients(db, *entry, nullptr));
        entries.push_back(std::move(*entry));
    }
    return entries;
}

}  // namespace

QueueAttempt PostgresStore::bounded(const QueueAttempt& attempt) const {
    const std::size_t field = options_.max_attempt_field_bytes;
    return QueueAttempt{attempt.at,
                        cut_to(attempt.host, field),
                        cut_to(attempt.address, field),
                        cut_to(attempt.tls, field),
                        cut_to(attempt.reply, field),
                        cut_to(attempt.transcript, options_.max_transcript_bytes),
                        cut_to(attempt.connection, field)};
}

Result<std::int64_t> PostgresStore::insert_queue_entry(Connection& db, const std::string& blob_id,
                                                       const OutgoingMessage& outgoing) {
    const std::int64_t now = unix_now();
    const std::int64_t queued_at = outgoing.queued_at != 0 ? outgoing.queued_at : now;
    const std::int64_t first_attempt = outgoing.first_attempt_at != 0 ? outgoing.first_attempt_at : now;
    const std::size_t field = options_.max_attempt_field_bytes;
    std::vector<std::string> addresses, notifies, orcpts;
    for (const EnvelopeRecipient& r : outgoing.recipients) {
        addresses.push_back(r.address);
        notifies.push_back(cut_to(r.notify, field));
        orcpts.push_back(cut_to(r.orcpt, field));
    }
    auto entry = db.exec(
        "INSERT INTO queue_messages(blob_id, reverse_path, dsn_ret, dsn_envid, created_at, smtputf8, held, "
        "send_offset) VALUES($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        Params()
            .add(blob_id)
            .add(outgoing.reverse_path)
            .add(outgoing.dsn_ret)
            .add(outgoing.dsn_envid)
            .add(queued_at)
            .add(boolean(outgoing.smtputf8))
            .add(boolean(outgoing.held))
            .add(static_cast<std::int64_t>(outgoing.send_offset)));
    if (!entry) return entry.error();
    const std::int64_t id = entry->int64(0, 0);
    if (outgoing.carried_over.empty()) {
        // A new message: every recipient fresh, in one round trip; ids ascend in RCPT order.
        auto recipients = db.exec(
            "INSERT INTO queue_recipients(message_id, address, notify, orcpt, state, next_attempt_at) "
            "SELECT $1::bigint, r.address, r.notify, r.orcpt, 0, $2::bigint FROM "
            "unnest($3::text[], $4::text[], $5::text[]) WITH ORDINALITY r(address, notify, orcpt, ord) ORDER BY r.ord",
            Params().add(id).add(first_attempt).add(text_array(addresses)).add(text_array(notifies)).add(text_array(orcpts)));
        if (!recipients) return recipients.error();
        return id;
    }
    // A queue carried over (the import of an old queue.db): each recipient with its state and history.
    for (std::size_t i = 0; i < outgoing.recipients.size(); ++i) {
        const QueueRecipient& state = outgoing.carried_over[i];
        const std::string last_reply = cut_to(state.last_reply, field);
        const std::string remote_mta = cut_to(state.remote_mta, field);
        auto recipient = db.exec(
            "INSERT INTO queue_recipients(message_id, address, notify, orcpt, state, next_attempt_at, last_reply, "
            "attempts, failed_attempts, status, remote_mta, last_attempt_at, delay_notified) "
            "VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
            Params()
                .add(id)
                .add(addresses[i])
                .add(notifies[i])
                .add(orcpts[i])
                .add(static_cast<std::int64_t>(state.state))
                .add(state.next_attempt_at)
                .add_bytes(last_reply)
                .add(static_cast<std::int64_t>(state.attempt_count))
                .add(static_cast<std::int64_t>(state.failed_attempts))
                .add(cut_to(state.status, field))
                .add_bytes(remote_mta)
                .add(state.last_attempt_at)
                .add(boolean(state.delay_notified)));
        if (!recipient) return recipient.error();
        const std::int64_t recipient_id = recipient->int64(0, 0);
        for (const QueueAttempt& attempt : state.attempts)
            MAGPIE_TRY(insert_attempt(db, recipient_id, bounded(attempt), options_.max_attempts_kept));
    }
    return id;
}

Result<std::vector<QueueEntry>> PostgresStore::lease_due(std::string_view owner, std::int64_t now,
                                                         std::int64_t lease_seconds, std::size_t limit) {
    if (owner.empty() || owner.size() > options_.max_attempt_field_bytes) {
        return make_error(Errc::invalid_argument, "lease owner empty or too long");
    }
    if (lease_seconds <= 0) return make_error(Errc::invalid_argument, "lease of no time");
    using Entries = std::vector<QueueEntry>;
    return write<Entries>([&](Connection& db) -> Result<Entries> {
        // SKIP LOCKED: rows another node is leasing right now are passed over, not waited for; a row whose
        // lease another node committed meanwhile is re-checked against the predicate and left out. The lease
        // (owner, expiry) then keeps them ours after this transaction ends.
        auto leased_rows = db.exec(
            fmt::format(
                "UPDATE queue_recipients SET lease_owner = $1, lease_expires_at = $2::bigint + $3::bigint WHERE id IN ("
                "SELECT r.id FROM queue_recipients r WHERE r.{} AND r.next_attempt_at <= $2 "
                "AND r.lease_expires_at <= $2 "
                "AND NOT EXISTS(SELECT 1 FROM queue_messages q WHERE q.id = r.message_id AND q.held) "
                "ORDER BY r.next_attempt_at, r.id LIMIT $4 FOR UPDATE OF r SKIP LOCKED) "
                "RETURNING id, message_id",
                kWaiting),
            Params().add(owner).add(now).add(lease_seconds).add(static_cast<std::int64_t>(limit)));
        if (!leased_rows) return leased_rows.error();
        std::map<std::int64_t, std::vector<std::int64_t>> leased;  // message -> recipients
        for (int i = 0; i < leased_rows->size(); ++i) {
            leased[leased_rows->int64(i, 1)].push_back(leased_rows->int64(i, 0));
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

Result<std::size_t> PostgresStore::record_attempts(std::string_view owner, const std::vector<AttemptOutcome>& outcomes,
                                                   std::vector<Delivery> reports) {
    for (const AttemptOutcome& outcome : outcomes) {
        if (outcome.state == QueueState::queued) {
            return make_error(Errc::invalid_argument, "an attempt cannot leave a recipient queued");
        }
    }
    // Reports are checked and hashed here, as deliver() would; they are written in the outcomes' transaction.
    std::vector<Pending> pending;
    std::vector<std::int64_t> mailboxes;
    for (Delivery& report : reports) {
        auto admitted = admit(std::move(report));
        if (!admitted) return admitted.error();
        if (admitted->delivery.spooled) return make_error(Errc::invalid_argument, "a report is never spooled");
        if (admitted->blob_id.empty()) admitted->blob_id = blob_id_of(admitted->delivery.content);
        for (const DeliveryTarget& target : admitted->delivery.targets) mailboxes.push_back(target.mailbox_id);
        pending.push_back(std::move(*admitted));
    }
    for (Pending& report : pending) report.content = report.delivery.content;  // the vector moves no more
    return write<std::size_t>([&](Connection& db, Changes& changes) -> Result<std::size_t> {
        std::size_t recorded = 0;
        const std::size_t field = options_.max_attempt_field_bytes;
        for (const AttemptOutcome& outcome : outcomes) {
            const bool tried = outcome.attempt.has_value();
            const QueueAttempt attempt = tried ? bounded(*outcome.attempt) : QueueAttempt{};
            const std::string remote_mta = cut_to(outcome.remote_mta, field);
            auto updated = db.exec(
                "UPDATE queue_recipients SET state = $3, next_attempt_at = $4, status = $5, "
                "last_reply = CASE WHEN $6::boolean THEN $7::bytea ELSE last_reply END, "
                "remote_mta = CASE WHEN $8::bytea = ''::bytea THEN remote_mta ELSE $8::bytea END, "
                "last_attempt_at = CASE WHEN $6::boolean THEN $9::bigint ELSE last_attempt_at END, "
                "attempts = attempts + CASE WHEN $6::boolean THEN 1 ELSE 0 END, "
                "failed_attempts = failed_attempts + $10, delay_notified = delay_notified OR $11::boolean, "
                "lease_owner = '', lease_expires_at = 0 "
                "WHERE id = $1 AND lease_owner = $2 AND state IN (0, 1)",
                Params()
                    .add(outcome.recipient_id)
                    .add(owner)
                    .add(static_cast<std::int64_t>(outcome.state))
                    .add(outcome.state == QueueState::deferred ? outcome.next_attempt_at : 0)
                    .add(cut_to(outcome.status, field))
                    .add(boolean(tried))
                    .add_bytes(attempt.reply)
                    .add_bytes(remote_mta)
                    .add(attempt.at)
                    .add(std::int64_t{outcome.count_failure ? 1 : 0})
                    .add(boolean(outcome.delay_notified)));
            if (!updated) return updated.error();
            if (updated->affected() == 0) continue;  // not (or no longer) ours: leave it to its holder
            if (tried) MAGPIE_TRY(insert_attempt(db, outcome.recipient_id, attempt, options_.max_attempts_kept));
            ++recorded;
        }
        // A report about a skipped outcome would be sent again by the recipient's new holder: none then.
        if (recorded == outcomes.size() && !pending.empty()) {
            MAGPIE_TRY(lock_mailboxes(db, mailboxes));
            for (Pending& report : pending) {
                auto applied = apply_delivery(db, report, changes);
                if (!applied) return applied.error();
            }
        }
        return recorded;
    });
}

Result<std::size_t> PostgresStore::release_leases(std::string_view owner) {
    return write<std::size_t>([&](Connection& db) -> Result<std::size_t> {
        auto released = db.exec(
            "UPDATE queue_recipients SET lease_owner = '', lease_expires_at = 0 WHERE lease_owner = $1 AND "
            "lease_owner <> ''",
            Params().add(owner));
        if (!released) return released.error();
        return static_cast<std::size_t>(released->affected());
    });
}

Result<std::optional<std::int64_t>> PostgresStore::next_queue_due() {
    using Due = std::optional<std::int64_t>;
    return read<Due>([&](Connection& db) -> Result<Due> {
        auto rows = db.exec(fmt::format(
            "SELECT min(greatest(r.next_attempt_at, r.lease_expires_at)) FROM queue_recipients r "
            "JOIN queue_messages q ON q.id = r.message_id WHERE r.{} AND NOT q.held",
            kWaiting));
        if (!rows) return rows.error();
        if (rows->empty() || rows->null(0, 0)) return Due{};
        return Due{rows->int64(0, 0)};
    });
}

Result<std::vector<QueueEntry>> PostgresStore::list_queue(std::size_t limit, bool waiting_only) {
    using Entries = std::vector<QueueEntry>;
    return read<Entries>([&](Connection& db) -> Result<Entries> {
        auto ids = db.exec(waiting_only ? fmt::format("SELECT DISTINCT message_id FROM queue_recipients WHERE {} "
                                                      "ORDER BY message_id LIMIT $1",
                                                      kWaiting)
                                        : std::string("SELECT id FROM queue_messages ORDER BY id LIMIT $1"),
                           Params().add(static_cast<std::int64_t>(limit)));
        if (!ids) return ids.error();
        return entries_with_recipients(db, *ids);
    });
}

Result<QueueEntry> PostgresStore::find_queue_entry(std::int64_t id) {
    return read<QueueEntry>([&](Connection& db) -> Result<QueueEntry> {
        auto entry = select_entry(db, id);
        if (!entry) return entry.error();
        MAGPIE_TRY(add_recipients(db, *entry, nullptr));
        for (QueueRecipient& recipient : entry->recipients) MAGPIE_TRY(add_attempts(db, recipient));
        return entry;
    });
}

Result<void> PostgresStore::delete_queue_entry(std::int64_t id) {
    return write<void>([&](Connection& db) -> Result<void> {
        auto done = db.exec("DELETE FROM queue_messages WHERE id = $1", Params().add(id));
        if (!done) return done.error();
        if (done->affected() == 0) return make_error(Errc::not_found, fmt::format("no queue entry {}", id));
        return {};
    });
}

Result<void> PostgresStore::set_queue_held(std::int64_t id, bool held) {
    return write<void>([&](Connection& db) -> Result<void> {
        auto done = db.exec("UPDATE queue_messages SET held = $2 WHERE id = $1", Params().add(id).add(boolean(held)));
        if (!done) return done.error();
        if (done->affected() == 0) return make_error(Errc::not_found, fmt::format("no queue entry {}", id));
        return {};
    });
}

Result<std::size_t> PostgresStore::retry_queue_now(std::optional<std::int64_t> id, std::int64_t now) {
    return write<std::size_t>([&](Connection& db) -> Result<std::size_t> {
        if (id) MAGPIE_TRY(select_entry(db, *id));  // not_found
        Params params;
        params.add(now);
        if (id) {
            params.add(*id);
        } else {
            params.add_null();
        }
        auto done = db.exec(fmt::format("UPDATE queue_recipients SET next_attempt_at = $1 WHERE {} AND "
                                        "next_attempt_at > $1 AND ($2::bigint IS NULL OR message_id = $2::bigint)",
                                        kWaiting),
                            params);
        if (!done) return done.error();
        return static_cast<std::size_t>(done->affected());
    });
}

Result<std::size_t> PostgresStore::purge_finished_queue(std::int64_t before) {
    return write<std::size_t>([&](Connection& db) -> Result<std::size_t> {
        auto done = db.exec(fmt::format("DELETE FROM queue_messages q WHERE q.created_at < $1 AND NOT EXISTS("
                                        "SELECT 1 FROM queue_recipients r WHERE r.message_id = q.id AND r.{})",
                                        kWaiting),
                            Params().add(before));
        if (!done) return done.error();
        return static_cast<std::size_t>(done->affected());
    });
}

}  // namespace magpie::store::postgres
