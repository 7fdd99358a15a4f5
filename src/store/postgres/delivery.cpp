// The group committer of the PostgreSQL backend, where "durable before acknowledged" is kept for deliveries:
//   deliver()      checks the delivery, hashes content up to one chunk on the calling thread and queues it,
//                  never waiting for the database;
//   the committer  takes everything queued (up to max_batch), hashes what is left, locks the batch's
//                  mailboxes in id order, runs each delivery under its own savepoint in ONE transaction,
//                  COMMITs it (synchronous_commit = on: the WAL flush), and only then runs each `done`.
// A deadlock with another node (PostgreSQL aborts one side) runs the whole batch again; a lost connection
// fails the batch (the senders retry) and the next batch reconnects. A blob goes in as chunks of
// chunk_bytes, each a binary parameter that points into the delivery's own buffer: no copy of the message
// is ever made on the way to the socket, nor a hex-encoded one.
#include <algorithm>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/time.h"
#include "store/blob.h"
#include "store/postgres/postgres_store.h"
#include "store/postgres/emails.h"
#include "store/postgres/rows.h"

namespace magpie::store::postgres {
namespace {

constexpr int kBatchAttempts = 3;

std::uint64_t content_size(const Delivery& delivery) {
    return delivery.spooled ? delivery.spooled->size() : delivery.content.size();
}

}  // namespace

Result<PostgresStore::Pending> PostgresStore::admit(Delivery delivery) const {
    if (options_.read_only) return make_error(Errc::permission_denied, "the store is open read-only");
    const bool remote = delivery.outgoing && !delivery.outgoing->recipients.empty();
    if (delivery.targets.empty() && !remote) return make_error(Errc::invalid_argument, "delivery has no target");
    if (delivery.outgoing) {
        const OutgoingMessage& outgoing = *delivery.outgoing;
        if (outgoing.recipients.size() > options_.max_remote_recipients) {
            return make_error(Errc::limit_exceeded,
                              fmt::format("more than {} remote recipients", options_.max_remote_recipients));
        }
        for (const EnvelopeRecipient& r : outgoing.recipients) {
            if (r.address.find('@') == std::string::npos || r.address.size() > options_.max_attempt_field_bytes)
                return make_error(Errc::invalid_argument, fmt::format("'{}' is not an address", r.address));
        }
        if (!outgoing.carried_over.empty() && outgoing.carried_over.size() != outgoing.recipients.size())
            return make_error(Errc::invalid_argument, "carried-over state does not match the recipients");
        if (outgoing.send_offset > content_size(delivery))
            return make_error(Errc::invalid_argument, "send offset beyond the content");
    }
    if (delivery.targets.size() > options_.max_targets) {
        return make_error(Errc::limit_exceeded, fmt::format("more than {} targets", options_.max_targets));
    }
    if (content_size(delivery) > options_.max_message_bytes) {
        return make_error(Errc::limit_exceeded, fmt::format("message of {} bytes above {}", content_size(delivery),
                                                            options_.max_message_bytes));
    }
    if (delivery.spooled && !delivery.content.empty())
        return make_error(Errc::invalid_argument, "a delivery has content or a spool, not both");
    Pending pending;
    for (const DeliveryTarget& target : delivery.targets) {
        auto flags = parse_flags(target.flags, options_.flag_limits);
        if (!flags) return flags.error();
        pending.flags.push_back(std::move(*flags));
    }
    // Small content is hashed here, spread over the callers; a large or spooled one by the committer.
    if (!delivery.spooled && delivery.content.size() <= options_.chunk_bytes) pending.blob_id = blob_id_of(delivery.content);
    pending.delivery = std::move(delivery);
    return pending;
}

void PostgresStore::deliver(Delivery delivery, std::function<void(Result<Delivered>)> done) {
    auto refuse = [&](Error error) {
        ++failed_deliveries_;
        done(std::move(error));
    };
    auto admitted = admit(std::move(delivery));
    if (!admitted) return refuse(admitted.error());
    Pending pending = std::move(*admitted);
    pending.done = std::move(done);
    {
        std::unique_lock lock(queue_mutex_);
        if (stopping_ || queue_.size() >= options_.max_queued) {
            bool closing = stopping_;
            lock.unlock();
            done = std::move(pending.done);
            return refuse(make_error(Errc::unavailable, closing ? "the store is closing"
                                                                : "delivery queue full, try again later"));
        }
        queue_.push_back(std::move(pending));
    }
    queue_ready_.notify_one();
}

void PostgresStore::committer_loop() {
    for (;;) {
        std::vector<Pending> batch;
        {
            std::unique_lock lock(queue_mutex_);
            queue_ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping, and everything accepted has been answered
            std::size_t take = std::min(queue_.size(), std::max<std::size_t>(options_.max_batch, 1));
            for (std::size_t i = 0; i < take; ++i) {
                batch.push_back(std::move(queue_.front()));
                queue_.pop_front();
            }
        }
        commit_batch(batch);
    }
}

void PostgresStore::commit_batch(std::vector<Pending>& batch) {
    for (Pending& pending : batch) {
        if (pending.delivery.spooled) {
            // The spool is read mapped (page cache, not heap), hashed, and sent as chunks pointing into it.
            auto mapped = pending.delivery.spooled->map();
            if (!mapped) {
                pending.spool_error = mapped.error();
                continue;
            }
            pending.content = *mapped;
        } else {
            pending.content = pending.delivery.content;
        }
        if (pending.blob_id.empty()) pending.blob_id = blob_id_of(pending.content);
    }
    std::vector<std::int64_t> mailboxes;
    for (const Pending& pending : batch) {
        for (const DeliveryTarget& target : pending.delivery.targets) mailboxes.push_back(target.mailbox_id);
    }
    std::vector<Result<Delivered>> results;
    Changes changes;
    std::optional<Error> batch_error;
    for (int attempt = 1; attempt <= kBatchAttempts; ++attempt) {
        results.clear();
        changes.clear();
        batch_error.reset();
        bool commit_sent = false;
        if (!committer_db_ || committer_db_->broken()) {
            committer_db_.reset();
            auto opened = Connection::open(options_.dsn, options_.password);
            if (!opened) {
                batch_error = opened.error();
                break;
            }
            committer_db_ = std::move(*opened);
        }
        Connection& db = *committer_db_;
        if (auto begun = db.run("BEGIN"); !begun) {
            batch_error = begun.error();
            if (!db.broken()) break;
            committer_db_.reset();  // a connection PostgreSQL dropped while idle: the next round reconnects
            continue;
        }
        // Every mailbox of the batch, locked in id order before anything else: UIDs are allocated under
        // these locks, and the one order keeps two nodes' batches from deadlocking on each other.
        if (auto locked = lock_mailboxes(db, mailboxes); !locked) batch_error = locked.error();
        for (Pending& pending : batch) {
            if (batch_error) break;
            if (auto savepoint = db.run("SAVEPOINT item"); !savepoint) {
                batch_error = savepoint.error();
                break;
            }
            Changes item_changes;
            Result<Delivered> result = apply_delivery(db, pending, item_changes);
            if (result) {
                if (auto released = db.run("RELEASE item"); !released) {
                    batch_error = released.error();
                    break;
                }
                for (const auto& [mailbox, change] : item_changes) changes[mailbox] = change;
            } else {
                // A deadlock or a lost connection is the batch's failure, not this delivery's.
                if (is_retryable(result.error()) || db.broken()) {
                    batch_error = result.error();
                    break;
                }
                if (auto undone = db.run("ROLLBACK TO item; RELEASE item"); !undone) {
                    batch_error = undone.error();
                    break;
                }
            }
            results.push_back(std::move(result));
        }
        if (!batch_error) {
            if (auto sent = send_notifications(db, changes); !sent) batch_error = sent.error();
        }
        if (!batch_error) {
            commit_sent = true;
            auto committed = db.run("COMMIT");  // the WAL flush that makes the whole batch durable
            if (!committed) batch_error = committed.error();
        }
        if (!batch_error) break;
        if (db.broken()) {
            // PostgreSQL restarted or the network dropped. Before COMMIT nothing can have been kept: run the
            // batch again on a new connection. A COMMIT cut off has an unknown outcome: fail the batch (the
            // senders retry; at worst a message arrives twice, never zero times).
            if (commit_sent) break;
            committer_db_.reset();
            continue;
        }
        (void)db.run("ROLLBACK");
        if (!is_retryable(*batch_error)) break;
    }
    if (batch_error) {
        spdlog::error("store: batch of {} deliveries failed: {}", batch.size(), batch_error->message);
        results.assign(batch.size(), Result<Delivered>(*batch_error));
        changes.clear();
    } else {
        ++commits_;
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
        if (results[i]) {
            ++deliveries_;
        } else {
            ++failed_deliveries_;
        }
        batch[i].done(std::move(results[i]));
    }
    notify(changes);
}

Result<void> PostgresStore::insert_blob(Connection& db, const std::string& blob_id, std::string_view content,
                                        const MessageSummary& summary) {
    // The blob row and its first chunk in one statement: a small message costs one round trip. The row is
    // inserted once per distinct content; a second delivery of the same bytes finds it and adds no bytes.
    // It does touch it (created_at = now), which locks the row until this transaction ends: the collector
    // (gc.cpp, FOR UPDATE SKIP LOCKED, created_at before the grace period) skips a blob being reused, and
    // if the collector locked it first this waits, finds it deleted and inserts it again. So a blob
    // referenced by a committed row is never collected, and a delivery never fails on one collected under it.
    const std::size_t chunk = std::max<std::size_t>(options_.chunk_bytes, 1);
    auto first = db.exec(
        "WITH b AS (INSERT INTO blobs(id, size, created_at, subject, from_header, to_header, cc_header, "
        "date_header, message_id, in_reply_to, refs, structure) "
        "VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
        "ON CONFLICT(id) DO UPDATE SET created_at = greatest(blobs.created_at, excluded.created_at) "
        "RETURNING id, xmax = 0 AS inserted) "
        "INSERT INTO blob_chunks(blob_id, seq, data) SELECT id, 0, $13::bytea FROM b WHERE inserted",
        Params()
            .add(blob_id)
            .add(static_cast<std::int64_t>(content.size()))
            .add(unix_now())
            .add_bytes(summary.subject)
            .add_bytes(summary.from)
            .add_bytes(summary.to)
            .add_bytes(summary.cc)
            .add_bytes(summary.date)
            .add_bytes(summary.message_id)
            .add_bytes(summary.in_reply_to)
            .add_bytes(summary.references)
            .add_bytes(summary.structure)
            .add_bytes(content.substr(0, chunk)));
    if (!first) return first.error();
    if (first->affected() == 0) return {};  // stored before
    std::int64_t seq = 1;
    for (std::size_t offset = chunk; offset < content.size(); offset += chunk, ++seq) {
        auto more = db.exec("INSERT INTO blob_chunks(blob_id, seq, data) VALUES($1, $2, $3)",
                            Params().add(blob_id).add(seq).add_bytes(content.substr(offset, chunk)));
        if (!more) return more.error();
    }
    return {};
}

Result<Delivered> PostgresStore::apply_delivery(Connection& db, Pending& pending, Changes& changes) {
    const Delivery& delivery = pending.delivery;
    if (pending.spool_error) return *pending.spool_error;
    MAGPIE_TRY(insert_blob(db, pending.blob_id, pending.content, delivery.summary));

    if (delivery.envelope) {
        const EnvelopeRecord& envelope = *delivery.envelope;
        std::vector<std::string> addresses, notifies, orcpts;
        for (const auto& r : envelope.recipients) {
            addresses.push_back(r.address);
            notifies.push_back(r.notify);
            orcpts.push_back(r.orcpt);
        }
        auto stored = db.exec(
            "WITH e AS (INSERT INTO envelopes(received_at, blob_id, reverse_path, dsn_ret, dsn_envid) "
            "VALUES($1, $2, $3, $4, $5) RETURNING id) "
            "INSERT INTO envelope_recipients(envelope_id, position, address, notify, orcpt) "
            "SELECT e.id, r.ord - 1, r.address, r.notify, r.orcpt FROM e, "
            "unnest($6::text[], $7::text[], $8::text[]) WITH ORDINALITY r(address, notify, orcpt, ord)",
            Params()
                .add(unix_now())
                .add(pending.blob_id)
                .add(envelope.reverse_path)
                .add(envelope.dsn_ret)
                .add(envelope.dsn_envid)
                .add(text_array(addresses))
                .add(text_array(notifies))
                .add(text_array(orcpts)));
        if (!stored) return stored.error();
    }

    if (delivery.answers_envelope) {
        auto answered = db.exec("DELETE FROM envelopes WHERE id = $1", Params().add(*delivery.answers_envelope));
        if (!answered) return answered.error();
        if (answered->affected() == 0)
            return make_error(Errc::not_found, fmt::format("no envelope {}", *delivery.answers_envelope));
    }

    Delivered delivered;
    delivered.blob_id = pending.blob_id;
    if (delivery.outgoing && !delivery.outgoing->recipients.empty()) {
        auto queued = insert_queue_entry(db, pending.blob_id, *delivery.outgoing);
        if (!queued) return queued.error();
        delivered.queue_id = *queued;
    }
    const std::int64_t internal_date = delivery.internal_date != 0 ? delivery.internal_date : unix_now();
    const auto size = static_cast<std::int64_t>(pending.content.size());
    const ThreadLimits limits{options_.max_thread_references, options_.thread_subject_window_seconds};
    const EmailKeys keys = email_keys(delivery.summary, limits);
    // The owners of the targets (their rows are locked by the batch), so each Email is made in its account.
    std::map<std::int64_t, std::int64_t> owner_of;
    {
        std::vector<std::int64_t> ids;
        for (const DeliveryTarget& target : delivery.targets) ids.push_back(target.mailbox_id);
        auto owners = db.exec("SELECT id, account_id FROM mailboxes WHERE id = ANY($1::bigint[])",
                              Params().add(int_array(ids)));
        if (!owners) return owners.error();
        for (int i = 0; i < owners->size(); ++i) owner_of[owners->int64(i, 0)] = owners->int64(i, 1);
    }
    // The Emails this delivery makes: one per account, unless its targets there differ in flags (an Email
    // has one set) or name a mailbox twice (an Email is in a mailbox once), as the embedded store does.
    struct Made {
        std::int64_t account_id = 0;
        std::uint32_t system = 0;
        std::string keywords;
        InsertedEmail email;
        std::vector<std::int64_t> mailboxes;
    };
    std::vector<Made> made;
    EmailLog log;
    for (std::size_t i = 0; i < delivery.targets.size(); ++i) {
        const std::int64_t mailbox_id = delivery.targets[i].mailbox_id;
        auto owner = owner_of.find(mailbox_id);
        if (owner == owner_of.end()) return make_error(Errc::not_found, fmt::format("no mailbox {}", mailbox_id));
        const std::int64_t account_id = owner->second;
        const std::uint32_t system = pending.flags[i].system;
        const bool deleted = (system & flag_deleted) != 0;
        std::string keywords = join_keywords(pending.flags[i].keywords);
        const std::uint32_t email_system = system & ~kMembershipFlags;
        auto same = std::ranges::find_if(made, [&](const Made& m) {
            return m.account_id == account_id && m.system == email_system && m.keywords == keywords &&
                   std::ranges::find(m.mailboxes, mailbox_id) == m.mailboxes.end();
        });
        if (same == made.end()) {
            auto earlier = std::ranges::find(made, account_id, &Made::account_id);
            std::int64_t thread_id = 0;
            if (earlier != made.end()) {
                thread_id = earlier->email.thread_id;
            } else {
                auto found = find_thread(db, account_id, keys, internal_date, limits);
                if (!found) return found.error();
                thread_id = *found;
            }
            auto email = insert_email(db,
                                      EmailRow{account_id, pending.blob_id, thread_id, internal_date,
                                               static_cast<std::uint64_t>(size), email_system, keywords},
                                      keys);
            if (!email) return email.error();
            MAGPIE_TRY(log.record(db, account_id, email->id, email->thread_id, EmailChange::created));
            made.push_back(Made{account_id, email_system, keywords, *email, {}});
            same = made.end() - 1;
        }
        same->mailboxes.push_back(mailbox_id);
        // Allocate UID and MODSEQ (the row is already locked), insert the membership and log it: one statement.
        auto placed = db.exec(
            "WITH a AS (UPDATE mailboxes SET uidnext = uidnext + 1, highest_modseq = highest_modseq + 1, "
            "message_count = message_count + 1, total_size = total_size + $2, unseen_count = unseen_count + $3, "
            "deleted_count = deleted_count + $4, deleted_size = deleted_size + $5, recent_count = recent_count + 1 "
            "WHERE id = $1 AND uidnext < 4294967295 RETURNING account_id, uidnext - 1 AS uid, highest_modseq AS modseq), "
            "m AS (INSERT INTO messages(mailbox_id, uid, modseq, blob_id, size, internal_date, system_flags, keywords, "
            "email_id) SELECT $1::bigint, a.uid, a.modseq, $6::text, $2::bigint, $7::bigint, $8::integer, $9::text, "
            "$10::bigint FROM a), "
            "c AS (INSERT INTO change_log(mailbox_id, modseq, uid, kind) SELECT $1::bigint, a.modseq, a.uid, 1 FROM a) "
            "SELECT account_id, uid, modseq FROM a",
            Params()
                .add(mailbox_id)
                .add(size)
                .add(std::int64_t{(system & flag_seen) == 0 ? 1 : 0})
                .add(std::int64_t{deleted ? 1 : 0})
                .add(deleted ? size : 0)
                .add(pending.blob_id)
                .add(internal_date)
                .add(std::int64_t{system})
                .add(keywords)
                .add(same->email.id));
        if (!placed) return placed.error();
        if (placed->empty()) {
            auto exists = select_mailbox(db, mailbox_id);
            if (!exists) return exists.error();
            return make_error(Errc::limit_exceeded, fmt::format("mailbox {} has no UIDs left", mailbox_id));
        }
        const auto uid = static_cast<std::uint32_t>(placed->int64(0, 1));
        const auto modseq = static_cast<std::uint64_t>(placed->int64(0, 2));
        delivered.placed.push_back(
            Delivered::Placed{mailbox_id, uid, modseq, same->email.id, same->email.thread_id});
        changes[mailbox_id] = MailboxChange{placed->int64(0, 0), modseq};
    }
    return delivered;
}

Result<std::vector<std::pair<std::int64_t, EnvelopeRecord>>> PostgresStore::pending_envelopes(std::size_t limit) {
    using Records = std::vector<std::pair<std::int64_t, EnvelopeRecord>>;
    return read<Records>([&](Connection& db) -> Result<Records> {
        auto envelopes = db.exec("SELECT id, reverse_path, dsn_ret, dsn_envid FROM envelopes ORDER BY id LIMIT $1",
                                 Params().add(static_cast<std::int64_t>(limit)));
        if (!envelopes) return envelopes.error();
        Records records;
        for (int i = 0; i < envelopes->size(); ++i) {
            EnvelopeRecord record;
            record.reverse_path = envelopes->text(i, 1);
            record.dsn_ret = envelopes->text(i, 2);
            record.dsn_envid = envelopes->text(i, 3);
            records.emplace_back(envelopes->int64(i, 0), std::move(record));
        }
        for (auto& [id, record] : records) {
            auto recipients = db.exec(
                "SELECT address, notify, orcpt FROM envelope_recipients WHERE envelope_id = $1 ORDER BY position",
                Params().add(id));
            if (!recipients) return recipients.error();
            for (int i = 0; i < recipients->size(); ++i) {
                record.recipients.push_back(
                    EnvelopeRecipient{recipients->text(i, 0), recipients->text(i, 1), recipients->text(i, 2)});
            }
        }
        return records;
    });
}

Result<void> PostgresStore::delete_envelope(std::int64_t id) {
    return write<void>([&](Connection& db) -> Result<void> {
        auto done = db.exec("DELETE FROM envelopes WHERE id = $1", Params().add(id));
        if (!done) return done.error();
        if (done->affected() == 0) return make_error(Errc::not_found, fmt::format("no envelope {}", id));
        return {};
    });
}

}  // namespace magpie::store::postgres
