// The upgrade from the interim queue file: until schema version 6 the outgoing queue lived in
// <data_dir>/queue.db (its own SQLite database, written by src/delivery/sqlite_queue.cpp, now gone). Its
// unfinished entries are read here and queued in the store through deliver(), one entry per transaction, with
// every recipient's state, counters and attempts; then the file is renamed so the import runs once.
// The file is opened read-write so that SQLite recovers a WAL left by a magpied that was killed.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <future>

#include "store/sqlite/db.h"
#include "store/store.h"
#include "store/summary.h"

namespace magpie::store {
namespace {

using sqlite::Connection;
using sqlite::Statement;

QueueState state_from(std::string_view name) {
    if (name == "deferred") return QueueState::deferred;
    if (name == "delivered") return QueueState::delivered;
    if (name == "failed") return QueueState::failed;
    return QueueState::queued;
}

Result<void> read_attempts(Connection& db, std::int64_t recipient_id, QueueRecipient& recipient) {
    auto attempts = db.prepare(
        "SELECT at, host, address, tls, reply, transcript, connection FROM queue_attempt WHERE recipient_id = ?1 "
        "ORDER BY id");
    if (!attempts) return attempts.error();
    attempts->bind(1, recipient_id);
    for (;;) {
        auto row = attempts->step();
        if (!row) return row.error();
        if (!*row) return {};
        recipient.attempts.push_back(QueueAttempt{attempts->column_int64(0), attempts->column_text(1),
                                                  attempts->column_text(2), attempts->column_text(3),
                                                  attempts->column_text(4), attempts->column_text(5),
                                                  attempts->column_text(6)});
    }
}

// One entry of the old file as a delivery to the queue alone.
Result<Delivery> read_entry(Connection& db, std::int64_t id) {
    auto entry = db.prepare(
        "SELECT reverse_path, dsn_ret, dsn_envid, smtputf8, queued_at, held, content FROM queue_entry WHERE id = ?1");
    if (!entry) return entry.error();
    auto found = entry->bind(1, id).step();
    if (!found) return found.error();
    if (!*found) return make_error(Errc::not_found, fmt::format("queue.db entry {} vanished", id));
    Delivery delivery;
    OutgoingMessage outgoing;
    outgoing.reverse_path = entry->column_text(0);
    outgoing.dsn_ret = entry->column_text(1);
    outgoing.dsn_envid = entry->column_text(2);
    outgoing.smtputf8 = entry->column_int64(3) != 0;
    outgoing.queued_at = entry->column_int64(4);
    outgoing.held = entry->column_int64(5) != 0;
    delivery.content = entry->column_text(6);

    auto recipients = db.prepare(
        "SELECT id, address, notify, orcpt, state, next_attempt_at, failed_attempts, status, last_reply, remote_mta, "
        "last_attempt_at, delay_notified FROM queue_recipient WHERE entry_id = ?1 ORDER BY id");
    if (!recipients) return recipients.error();
    recipients->bind(1, id);
    std::vector<std::int64_t> old_ids;
    for (;;) {
        auto row = recipients->step();
        if (!row) return row.error();
        if (!*row) break;
        old_ids.push_back(recipients->column_int64(0));
        outgoing.recipients.push_back(
            EnvelopeRecipient{recipients->column_text(1), recipients->column_text(2), recipients->column_text(3)});
        QueueRecipient state;
        state.state = state_from(recipients->column_text(4));
        state.next_attempt_at = recipients->column_int64(5);
        state.failed_attempts = static_cast<std::uint32_t>(recipients->column_int64(6));
        state.status = recipients->column_text(7);
        state.last_reply = recipients->column_text(8);
        state.remote_mta = recipients->column_text(9);
        state.last_attempt_at = recipients->column_int64(10);
        state.delay_notified = recipients->column_int64(11) != 0;
        outgoing.carried_over.push_back(std::move(state));
    }
    for (std::size_t i = 0; i < old_ids.size(); ++i) {
        QueueRecipient& state = outgoing.carried_over[i];
        MAGPIE_TRY(read_attempts(db, old_ids[i], state));
        // The old file counted only temporary failures; the attempts it kept are the best count of all.
        state.attempt_count = static_cast<std::uint32_t>(std::max<std::size_t>(state.attempts.size(), state.failed_attempts));
    }
    delivery.summary = summarize(delivery.content);
    delivery.internal_date = outgoing.queued_at;
    delivery.outgoing = std::move(outgoing);
    return delivery;
}

Result<std::size_t> import_entries(Store& store, Connection& db) {
    // Unfinished: some recipient still queued or deferred. Finished entries were only the tracker's memory.
    auto ids = db.prepare(
        "SELECT e.id FROM queue_entry e WHERE EXISTS(SELECT 1 FROM queue_recipient r WHERE r.entry_id = e.id "
        "AND r.state IN ('queued', 'deferred')) ORDER BY e.id");
    if (!ids) return ids.error();
    std::vector<std::int64_t> unfinished;
    for (;;) {
        auto row = ids->step();
        if (!row) return row.error();
        if (!*row) break;
        unfinished.push_back(ids->column_int64(0));
    }
    std::size_t imported = 0;
    for (std::int64_t id : unfinished) {
        auto delivery = read_entry(db, id);
        if (!delivery) return delivery.error();
        std::promise<Result<Delivered>> committed;
        store.deliver(std::move(*delivery), [&committed](Result<Delivered> result) { committed.set_value(std::move(result)); });
        auto delivered = committed.get_future().get();
        if (!delivered) {
            return make_error(delivered.error().code,
                              fmt::format("queue.db entry {} not imported: {}", id, delivered.error().message));
        }
        spdlog::info("store: queue.db entry {} is queue entry {} now", id, delivered->queue_id);
        ++imported;
    }
    return imported;
}

}  // namespace

Result<std::size_t> import_queue_db(Store& store, const std::filesystem::path& data_dir) {
    const std::filesystem::path path = data_dir / "queue.db";
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return std::size_t{0};
    std::size_t imported = 0;
    {
        auto db = Connection::open(path, Connection::Mode::read_write_create, 5000);
        if (!db) return db.error();
        auto done = import_entries(store, **db);
        if (!done) return done.error();
        imported = *done;
    }
    // Closed (and checkpointed) above; the renamed files stay for the administrator to remove.
    for (const char* suffix : {"", "-wal", "-shm"}) {
        std::filesystem::path from = path;
        from += suffix;
        if (!std::filesystem::exists(from, ec)) continue;
        std::filesystem::path to = data_dir / "queue.db.imported";
        to += suffix;
        std::filesystem::rename(from, to, ec);
        if (ec) {
            return make_error(Errc::io_error,
                              fmt::format("cannot rename {} after importing it: {}", from.string(), ec.message()));
        }
    }
    return imported;
}

}  // namespace magpie::store
