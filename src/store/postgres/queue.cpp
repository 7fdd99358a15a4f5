// The shared outgoing queue: entries written by a delivery's transaction, leases of due recipients taken
// with FOR UPDATE SKIP LOCKED (two nodes leasing at once take disjoint rows, neither waits) and an expiry
// (a dead node's recipients are free again once it lapses), attempt records with bounded transcripts, and
// the tracker's reads.
#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "base/time.h"
#include "store/postgres/postgres_store.h"
#include "store/postgres/rows.h"

namespace magpie::store::postgres {
namespace {

constexpr std::string_view kCut = "[...]";

std::string cut_to(std::string_view text, std::size_t max) {
    if (text.size() <= max) return std::string(text);
    std::size_t keep = max > kCut.size() ? max - kCut.size() : 0;
    while (keep > 0 && (static_cast<unsigned char>(text[keep]) & 0xc0) == 0x80) --keep;
    return std::string(text.substr(0, keep)) + std::string(kCut.substr(0, std::min(kCut.size(), max)));
}

constexpr const char* kRecipientColumns =
    "r.id, r.address, r.notify, r.orcpt, r.state, r.last_reply, r.next_attempt_at, r.attempts, r.message_id";

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
    return recipient;
}

Result<QueueEntry> select_entry(Connection& db, std::int64_t id) {
    auto rows = db.exec("SELECT id, blob_id, reverse_path, dsn_ret, dsn_envid, created_at FROM queue_messages WHERE id = $1",
                        Params().add(id));
    if (!rows) return rows.error();
    if (rows->empty()) return make_error(Errc::not_found, fmt::format("no queue entry {}", id));
    return QueueEntry{rows->int64(0, 0), rows->text(0, 1), rows->text(0, 2), rows->text(0, 3),
                      rows->text(0, 4),  rows->int64(0, 5), {}};
}

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
        "SELECT at, host, address, tls, reply, transcript FROM queue_attempts WHERE recipient_id = $1 ORDER BY id",
        Params().add(recipient.id));
    if (!rows) return rows.error();
    for (int i = 0; i < rows->size(); ++i) {
        recipient.attempts.push_back(QueueAttempt{rows->int64(i, 0), rows->bytes(i, 1), rows->bytes(i, 2),
                                                  rows->bytes(i, 3), rows->bytes(i, 4), rows->bytes(i, 5)});
    }
    return {};
}

}  // namespace

QueueAttempt PostgresStore::bounded(const QueueAttempt& attempt) const {
    const std::size_t field = options_.max_attempt_field_bytes;
    return QueueAttempt{attempt.at,
                        cut_to(attempt.host, field),
                        cut_to(attempt.address, field),
                        cut_to(attempt.tls, field),
                        cut_to(attempt.reply, field),
                        cut_to(attempt.transcript, options_.max_transcript_bytes)};
}

Result<std::int64_t> PostgresStore::insert_queue_entry(Connection& db, const std::string& blob_id,
                                                       const OutgoingMessage& outgoing) {
    const std::int64_t now = unix_now();
    const std::int64_t first_attempt = outgoing.first_attempt_at != 0 ? outgoing.first_attempt_at : now;
    std::vector<std::string> addresses, notifies, orcpts;
    for (const EnvelopeRecipient& r : outgoing.recipients) {
        addresses.push_back(r.address);
        notifies.push_back(r.notify);
        orcpts.push_back(r.orcpt);
    }
    // The entry and its recipients in one round trip; recipients keep RCPT order (ids ascend with it).
    auto rows = db.exec(
        "WITH q AS (INSERT INTO queue_messages(blob_id, reverse_path, dsn_ret, dsn_envid, created_at) "
        "VALUES($1, $2, $3, $4, $5) RETURNING id), "
        "r AS (INSERT INTO queue_recipients(message_id, address, notify, orcpt, state, next_attempt_at) "
        "SELECT q.id, r.address, r.notify, r.orcpt, 0, $6::bigint FROM q, "
        "unnest($7::text[], $8::text[], $9::text[]) WITH ORDINALITY r(address, notify, orcpt, ord) ORDER BY r.ord) "
        "SELECT id FROM q",
        Params()
            .add(blob_id)
            .add(outgoing.reverse_path)
            .add(outgoing.dsn_ret)
            .add(outgoing.dsn_envid)
            .add(now)
            .add(first_attempt)
            .add(text_array(addresses))
            .add(text_array(notifies))
            .add(text_array(orcpts)));
    if (!rows) return rows.error();
    return rows->int64(0, 0);
}

Result<std::vector<QueueEntry>> PostgresStore::lease_due(std::string_view owner, std::int64_t now,
                                                         std::int64_t lease_seconds, std::size_t limit) {
    if (owner.empty() || owner.size() > options_.max_attempt_field_bytes) {
        return make_error(Errc::invalid_argument, "lease owner empty or too long");
    }
    if (lease_seconds <= 0) return make_error(Errc::invalid_argument, "lease of no time");
    using Entries = std::vector<QueueEntry>;
    return write<Entries>([&](Connection& db) -> Result<Entries> {
        // SKIP LOCKED: rows another node is leasing right now are passed over, not waited for; the lease
        // (owner, expiry) then keeps them ours after this transaction ends.
        auto leased_rows = db.exec(
            "UPDATE queue_recipients SET lease_owner = $1, lease_expires_at = $2::bigint + $3::bigint WHERE id IN ("
            "SELECT id FROM queue_recipients WHERE state IN (0, 1) AND next_attempt_at <= $2 "
            "AND lease_expires_at <= $2 ORDER BY next_attempt_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) "
            "RETURNING id, message_id",
            Params().add(owner).add(now).add(lease_seconds).add(static_cast<std::int64_t>(limit)));
        if (!leased_rows) return leased_rows.error();
        std::map<std::int64_t, std::vector<std::int64_t>> leased;
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
        std::ranges::stable_sort(entries, {}, [](const QueueEntry& e) { return e.recipients.front().next_attempt_at; });
        return entries;
    });
}

Result<std::size_t> PostgresStore::record_attempts(std::string_view owner, const std::vector<AttemptOutcome>& outcomes) {
    for (const AttemptOutcome& outcome : outcomes) {
        if (outcome.state == QueueState::queued) {
            return make_error(Errc::invalid_argument, "an attempt cannot leave a recipient queued");
        }
    }
    return write<std::size_t>([&](Connection& db) -> Result<std::size_t> {
        std::size_t recorded = 0;
        for (const AttemptOutcome& outcome : outcomes) {
            QueueAttempt attempt = bounded(outcome.attempt);
            auto updated = db.exec(
                "UPDATE queue_recipients SET state = $3, last_reply = $4, next_attempt_at = $5, "
                "attempts = attempts + 1, lease_owner = '', lease_expires_at = 0 "
                "WHERE id = $1 AND lease_owner = $2 AND state IN (0, 1)",
                Params()
                    .add(outcome.recipient_id)
                    .add(owner)
                    .add(static_cast<std::int64_t>(outcome.state))
                    .add_bytes(attempt.reply)
                    .add(outcome.state == QueueState::deferred ? outcome.next_attempt_at : 0));
            if (!updated) return updated.error();
            if (updated->affected() == 0) continue;  // not (or no longer) ours
            auto inserted = db.exec(
                "INSERT INTO queue_attempts(recipient_id, at, host, address, tls, reply, transcript) "
                "VALUES($1, $2, $3, $4, $5, $6, $7)",
                Params()
                    .add(outcome.recipient_id)
                    .add(attempt.at)
                    .add_bytes(attempt.host)
                    .add_bytes(attempt.address)
                    .add_bytes(attempt.tls)
                    .add_bytes(attempt.reply)
                    .add_bytes(attempt.transcript));
            if (!inserted) return inserted.error();
            auto pruned = db.exec(
                "DELETE FROM queue_attempts WHERE recipient_id = $1 AND id NOT IN (SELECT id FROM queue_attempts "
                "WHERE recipient_id = $1 ORDER BY id DESC LIMIT $2)",
                Params().add(outcome.recipient_id)
                    .add(static_cast<std::int64_t>(std::max<std::size_t>(options_.max_attempts_kept, 1))));
            if (!pruned) return pruned.error();
            ++recorded;
        }
        return recorded;
    });
}

Result<std::vector<QueueEntry>> PostgresStore::list_queue(std::size_t limit) {
    using Entries = std::vector<QueueEntry>;
    return read<Entries>([&](Connection& db) -> Result<Entries> {
        auto ids = db.exec("SELECT id FROM queue_messages ORDER BY id LIMIT $1", Params().add(static_cast<std::int64_t>(limit)));
        if (!ids) return ids.error();
        Entries entries;
        for (int i = 0; i < ids->size(); ++i) {
            auto entry = select_entry(db, ids->int64(i, 0));
            if (!entry) return entry.error();
            MAGPIE_TRY(add_recipients(db, *entry, nullptr));
            entries.push_back(std::move(*entry));
        }
        return entries;
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

}  // namespace magpie::store::postgres
