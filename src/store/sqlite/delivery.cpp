// The group committer, the one place where "durable before acknowledged" is kept, for deliveries and for
// every other write alike:
//   deliver()       checks the delivery, hashes small content and queues it, never waiting for the disk;
//   a blob writer   hashes a large content and writes it to its own file (fsync, rename, fsync dir), then
//                   queues it for the committer;
//   write()         (IMAP, JMAP, admin) queues a WriteJob behind the deliveries and waits for its commit;
//   the committer   takes everything queued (up to max_batch), runs it in ONE transaction, each item under
//                   its own savepoint, commits it (the WAL fsync, synchronous=FULL), and only then runs
//                   each `done`.
// Small blobs ride inside that transaction, so one fsync covers a whole batch of messages and writes. A long
// write (STORE on 100,000 messages) is split by its caller into jobs of max_messages_per_transaction, so
// deliveries queued meanwhile commit between its chunks instead of after it.
#include <sqlite3.h>

#include <algorithm>
#include <future>
#include <optional>
#include <thread>
#include <type_traits>
#include <variant>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/time.h"
#include "store/sqlite/inline_content.h"
#include "store/sqlite/rows.h"
#include "store/sqlite/schema.h"
#include "store/sqlite/sqlite_store.h"

namespace magpie::store::sqlite {
namespace {

std::uint64_t content_size(const Delivery& delivery) {
    return delivery.spooled ? delivery.spooled->size() : delivery.content.size();
}

// WAL checkpoints (frames of the log, one page each). SQLite checkpoints after the commit that takes the log
// past 1000 frames, inside that COMMIT: on the committer thread, before the batch's `done` callbacks, so a
// batch every 1000 frames (about 70 messages of 4 KiB, 50 of 64 KiB) waited for pages to be copied into the
// database and for its fsync (issue 17). The same PASSIVE checkpoint now runs on a thread of its own, every
// options_.checkpoint_frames new frames.
// A checkpoint running beside the commits rarely finds the log all copied (commits keep appending), and the
// log starts again from its beginning only then: past this many checkpoint intervals the committer
// checkpoints itself, between two transactions, where it copies what the background one left (and the log
// then restarts).
constexpr int kInlineCheckpointIntervals = 4;

}  // namespace

void SqliteStore::start_checkpointer() {
    auto db = Connection::open(options_.data_dir / "magpie.db", Connection::Mode::read_write_create,
                               options_.busy_timeout_ms);
    // FULL: a checkpoint fsyncs the log before it copies and the database after, as the writer's would; the
    // read opens the log (a connection that never read has none to checkpoint).
    Result<void> ready = db ? (*db)->exec("PRAGMA synchronous = FULL") : Result<void>(db.error());
    if (ready) ready = (*db)->exec("PRAGMA user_version");
    if (!ready) {
        spdlog::warn("store: no checkpoint connection ({}); checkpoints stay in the commits", ready.error().message);
        return;
    }
    checkpoint_db_ = std::move(*db);
    checkpoint_frames_ = static_cast<int>(std::clamp<std::size_t>(options_.checkpoint_frames, 100, 1'000'000));
    next_checkpoint_ = checkpoint_frames_;
    sqlite3_wal_hook(writer_->handle(), &SqliteStore::on_wal_commit, this);  // replaces SQLite's autocheckpoint
    checkpointer_ = std::thread([this] { checkpointer_loop(); });
}

void SqliteStore::stop_checkpointer() {
    if (!checkpointer_.joinable()) return;
    {
        std::lock_guard lock(checkpoint_mutex_);
        checkpoint_stop_ = true;
    }
    checkpoint_wanted_.notify_one();
    checkpointer_.join();
    checkpoint_db_.reset();  // the writer, closing last, makes the final checkpoint
}

// Called by SQLite on the writer's thread after each commit, with the frames now in the log.
int SqliteStore::on_wal_commit(void* store, sqlite3* db, const char* name, int frames) {
    auto* self = static_cast<SqliteStore*>(store);
    if (frames < self->wal_frames_) self->next_checkpoint_ = self->checkpoint_frames_;  // the log started again
    self->wal_frames_ = frames;
    if (frames >= kInlineCheckpointIntervals * self->checkpoint_frames_) {
        // Busy when the background one is running: then the next commit tries again.
        (void)sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    } else if (frames >= self->next_checkpoint_) {
        self->next_checkpoint_ = frames + self->checkpoint_frames_;
        {
            std::lock_guard lock(self->checkpoint_mutex_);
            self->checkpoint_due_ = true;
        }
        self->checkpoint_wanted_.notify_one();
    }
    return SQLITE_OK;
}

void SqliteStore::checkpointer_loop() {
    for (;;) {
        {
            std::unique_lock lock(checkpoint_mutex_);
            checkpoint_wanted_.wait(lock, [&] { return checkpoint_stop_ || checkpoint_due_; });
            if (checkpoint_stop_) return;
            checkpoint_due_ = false;
        }
        // PASSIVE: copies what no reader still needs, waiting for no one (SQLITE_BUSY: another is running).
        int rc = sqlite3_wal_checkpoint_v2(checkpoint_db_->handle(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                                           nullptr);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            spdlog::warn("store: checkpoint failed: {}", sqlite3_errmsg(checkpoint_db_->handle()));
    }
}

Result<SqliteStore::Pending> SqliteStore::admit(Delivery delivery) const {
    if (!writer_) return make_error(Errc::permission_denied, "the store is open read-only");
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
    pending.size = content_size(delivery);
    // A spooled message is a file already: it stays one whatever its size (it never enters memory).
    pending.in_file = pending.size > options_.inline_blob_max || delivery.spooled != nullptr;
    // Small content is hashed here, on the caller's thread, so that hashing spreads over the callers instead
    // of lengthening the committer's critical path; large content is left to a blob writer.
    // Compressed here too, for the same reason (a zstd frame of a 4 KiB body takes about 10 microseconds).
    if (!pending.in_file) {
        pending.blob_id = blob_id_of(delivery.content);
        pending.compressed = compress_inline(delivery.content, options_.compression_level);
    }
    pending.delivery = std::move(delivery);
    return pending;
}

void SqliteStore::deliver(Delivery delivery, std::function<void(Result<Delivered>)> done) {
    auto refuse = [&](Error error) {
        ++failed_deliveries_;
        done(std::move(error));
    };
    auto admitted = admit(std::move(delivery));
    if (!admitted) return refuse(admitted.error());
    Pending pending = std::move(*admitted);
    pending.done = std::move(done);
    const bool large = pending.in_file;
    {
        std::unique_lock lock(queue_mutex_);
        if (stopping_ || queued_deliveries_ + large_queue_.size() >= options_.max_queued) {
            bool closing = stopping_;
            lock.unlock();
            done = std::move(pending.done);
            return refuse(make_error(Errc::unavailable, closing ? "the store is closing"
                                                                : "delivery queue full, try again later"));
        }
        if (large) {
            large_queue_.push_back(std::move(pending));
        } else {
            queue_.push_back(std::move(pending));
            ++queued_deliveries_;
        }
    }
    if (large) {
        large_ready_.notify_one();
    } else {
        queue_ready_.notify_one();
    }
}

// A large blob is written to its own file and fsynced (with its directory) before its delivery can join a
// batch, so the transaction that references the file never commits ahead of it.
void SqliteStore::blob_writer_loop() {
    for (;;) {
        Pending pending;
        {
            std::unique_lock lock(queue_mutex_);
            large_ready_.wait(lock, [&] { return stopping_ || !large_queue_.empty(); });
            if (large_queue_.empty()) return;  // stopping, and every large blob taken has been handled
            pending = std::move(large_queue_.front());
            large_queue_.pop_front();
        }
        Result<bool> written = false;
        if (pending.delivery.spooled) {
            // Hashed from the file, fsynced and renamed into place: the same promise as a write.
            auto persisted = pending.delivery.spooled->persist();
            if (persisted) {
                pending.blob_id = std::move(persisted->blob_id);
                written = persisted->written;
            } else {
                written = persisted.error();
            }
            pending.delivery.spooled.reset();
        } else {
            pending.blob_id = blob_id_of(pending.delivery.content);
            written = blobs_->write(pending.blob_id, pending.delivery.content);
        }
        if (!written) {
            spdlog::error("store: blob {} not written: {}", pending.blob_id, written.error().message);
            ++failed_deliveries_;
            pending.done(written.error());
            continue;
        }
        if (*written) ++blob_files_written_;
        pending.delivery.content.clear();
        pending.delivery.content.shrink_to_fit();
        enqueue_for_commit(std::move(pending));
    }
}

void SqliteStore::enqueue_for_commit(Pending pending) {
    {
        std::lock_guard lock(queue_mutex_);
        queue_.push_back(std::move(pending));  // already accepted and counted: no second admission check
        ++queued_deliveries_;
    }
    queue_ready_.notify_one();
}

Result<void> SqliteStore::run_write(std::function<Result<void>(Connection&, Changes&)> apply) {
    if (!writer_) return make_error(Errc::permission_denied, "the store is open read-only");
    if (std::this_thread::get_id() == committer_.get_id()) {
        // A `done` callback or the listener writes: the committer is between batches, and queueing would
        // wait for itself. The write gets a transaction (and an fsync) of its own.
        Changes changes;
        auto transaction = Transaction::begin(*writer_);
        if (!transaction) return transaction.error();
        MAGPIE_TRY(apply(*writer_, changes));
        MAGPIE_TRY(transaction->commit());
        own_writes_.fetch_add(1, std::memory_order_release);
        ++commits_;
        ++writes_;
        notify(changes);
        return {};
    }
    std::promise<Result<void>> committed;
    auto answer = committed.get_future();
    {
        std::lock_guard lock(queue_mutex_);
        if (stopping_) return make_error(Errc::unavailable, "the store is closing");
        queue_.push_back(WriteJob{std::move(apply), [&committed](Result<void> result) {
                                      committed.set_value(std::move(result));
                                  }});
    }
    queue_ready_.notify_one();
    return answer.get();
}

void SqliteStore::committer_loop() {
    for (;;) {
        std::vector<Work> batch;
        {
            std::unique_lock lock(queue_mutex_);
            queue_ready_.wait(lock, [&] { return writers_done_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping, and everything accepted has been answered
            std::size_t take = std::min(queue_.size(), std::max<std::size_t>(options_.max_batch, 1));
            batch.reserve(take);
            for (std::size_t i = 0; i < take; ++i) {
                if (std::holds_alternative<Pending>(queue_.front())) --queued_deliveries_;
                batch.push_back(std::move(queue_.front()));
                queue_.pop_front();
            }
        }
        commit_batch(batch);
    }
}

void SqliteStore::commit_batch(std::vector<Work>& batch) {
    // One result per item; a write job's success is an empty Delivered.
    std::vector<Result<Delivered>> results;
    results.reserve(batch.size());
    Changes changes;
    // Set when the batch as a whole cannot commit; then every item in it fails with this error.
    std::optional<Error> batch_error;
    {
        auto transaction = Transaction::begin(*writer_);
        if (!transaction) batch_error = transaction.error();
        for (Work& work : batch) {
            if (batch_error) break;
            // A savepoint per item: one bad delivery (a mailbox deleted meanwhile) or refused write fails alone.
            auto savepoint = writer_->exec("SAVEPOINT item");
            if (!savepoint) {
                batch_error = savepoint.error();
                break;
            }
            Changes item_changes;
            Result<Delivered> result = std::visit(
                [&](auto& item) -> Result<Delivered> {
                    if constexpr (std::is_same_v<std::decay_t<decltype(item)>, Pending>) {
                        return apply_delivery(item, item_changes);
                    } else {
                        auto applied = item.apply(*writer_, item_changes);
                        if (!applied) return applied.error();
                        return Delivered{};
                    }
                },
                work);
            if (result) {
                auto released = writer_->exec("RELEASE item");
                if (!released) {
                    batch_error = released.error();
                    break;
                }
                for (const auto& [mailbox, change] : item_changes) changes[mailbox] = change;
            } else {
                (void)writer_->exec("ROLLBACK TO item; RELEASE item");
                // Some errors (disk full, I/O) make SQLite roll the whole transaction back; going on would
                // run the rest of the batch in autocommit mode, outside the one commit we answer for.
                if (sqlite3_get_autocommit(writer_->handle()) != 0) {
                    batch_error = result.error();
                    break;
                }
            }
            results.push_back(std::move(result));
        }
        if (!batch_error) {
            auto committed = transaction->commit();  // the fsync that makes the whole batch durable
            if (!committed) batch_error = committed.error();
        }
        if (batch_error) {
            spdlog::error("store: batch of {} writes failed: {}", batch.size(), batch_error->message);
            results.assign(batch.size(), Result<Delivered>(*batch_error));
            changes.clear();
        } else {
            ++commits_;
            // Before any answer: whoever learns of the write finds the directory's number read again.
            if (std::any_of(batch.begin(), batch.end(),
                            [](const Work& w) { return std::holds_alternative<WriteJob>(w); }))
                own_writes_.fetch_add(1, std::memory_order_release);
        }
    }

    for (std::size_t i = 0; i < batch.size(); ++i) {
        if (auto* pending = std::get_if<Pending>(&batch[i])) {
            if (results[i]) {
                ++deliveries_;
            } else {
                ++failed_deliveries_;
            }
            pending->done(std::move(results[i]));
        } else {
            auto& job = std::get<WriteJob>(batch[i]);
            if (results[i]) {
                ++writes_;
                job.done(Result<void>{});
            } else {
                job.done(results[i].error());
            }
        }
    }
    notify(changes);
}

Result<Delivered> SqliteStore::apply_delivery(const Pending& pending, Changes& changes) {
    Connection& db = *writer_;
    const Delivery& delivery = pending.delivery;
    if (delivery.directory_version) {
        // The one writer: nothing can change the directory between this read and the commit.
        auto version = read_directory_version(db);
        if (!version) return version.error();
        if (*version != *delivery.directory_version)
            return make_error(Errc::conflict, "the directory changed since the recipients were resolved");
    }

    // The blob row (and inline bytes) once per distinct content; a second delivery of the same bytes
    // references the first.
    const std::int64_t location = pending.in_file      ? kLocationFile
                                  : pending.compressed ? kLocationInlineZstd
                                                       : kLocationInline;
    const std::string_view stored = pending.in_file      ? std::string_view{}
                                    : pending.compressed ? std::string_view(*pending.compressed)
                                                         : std::string_view(delivery.content);
    MAGPIE_TRY(insert_blob(db, pending.blob_id, pending.size, location, delivery.summary, stored));

    if (delivery.envelope) {
        const EnvelopeRecord& envelope = *delivery.envelope;
        auto row = db.prepare(
            "INSERT INTO envelopes(received_at, blob_id, reverse_path, dsn_ret, dsn_envid) VALUES(?1, ?2, ?3, ?4, ?5)");
        if (!row) return row.error();
        MAGPIE_TRY(row->bind(1, unix_now())
                       .bind_text(2, pending.blob_id)
                       .bind_text(3, envelope.reverse_path)
                       .bind_text(4, envelope.dsn_ret)
                       .bind_text(5, envelope.dsn_envid)
                       .run());
        std::int64_t envelope_id = db.last_insert_rowid();
        for (std::size_t i = 0; i < envelope.recipients.size(); ++i) {
            const auto& r = envelope.recipients[i];
            // Prepared per row: a statement returns to the connection's cache, reset, when it goes.
            auto recipient = db.prepare(
                "INSERT INTO envelope_recipients(envelope_id, position, address, notify, orcpt) "
                "VALUES(?1, ?2, ?3, ?4, ?5)");
            if (!recipient) return recipient.error();
            MAGPIE_TRY(recipient->bind(1, envelope_id)
                           .bind(2, static_cast<std::int64_t>(i))
                           .bind_text(3, r.address)
                           .bind_text(4, r.notify)
                           .bind_text(5, r.orcpt)
                           .run());
        }
    }

    if (delivery.answers_envelope) {
        auto answered = db.prepare("DELETE FROM envelopes WHERE id = ?1");
        if (!answered) return answered.error();
        MAGPIE_TRY(answered->bind(1, *delivery.answers_envelope).run());
        if (db.changes() == 0)
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
    const ThreadLimits limits{options_.max_thread_references, options_.thread_subject_window_seconds};
    const EmailKeys keys = email_keys(delivery.summary, limits);
    // The Emails this delivery makes: one per account, unless its targets there differ in flags (an Email
    // has one set) or name a mailbox twice (an Email is in a mailbox once).
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
        std::int64_t mailbox_id = delivery.targets[i].mailbox_id;
        auto allocated = allocate_message(db, mailbox_id, pending.size, pending.flags[i].system);
        if (!allocated) return allocated.error();
        std::string keywords = join_keywords(pending.flags[i].keywords);
        const std::uint32_t email_system = pending.flags[i].system & ~kMembershipFlags;
        auto same = std::ranges::find_if(made, [&](const Made& m) {
            return m.account_id == allocated->account_id && m.system == email_system &&
                   m.keywords == keywords && std::ranges::find(m.mailboxes, mailbox_id) == m.mailboxes.end();
        });
        if (same == made.end()) {
            auto earlier = std::ranges::find(made, allocated->account_id, &Made::account_id);
            std::int64_t thread_id = 0;
            if (earlier != made.end()) {
                thread_id = earlier->email.thread_id;
            } else {
                auto found = find_thread(db, allocated->account_id, keys, internal_date, limits);
                if (!found) return found.error();
                thread_id = *found;
            }
            auto email = insert_email(db,
                                      EmailRow{allocated->account_id, pending.blob_id, thread_id, internal_date,
                                               pending.size, email_system, keywords},
                                      keys);
            if (!email) return email.error();
            MAGPIE_TRY(log.record(db, allocated->account_id, email->id, email->thread_id, EmailChange::created));
            made.push_back(Made{allocated->account_id, email_system, keywords, *email, {}});
            same = made.end() - 1;
        }
        same->mailboxes.push_back(mailbox_id);
        MAGPIE_TRY(insert_message(db, MessageRow{mailbox_id, same->email.id, allocated->uid, allocated->modseq,
                                                 pending.blob_id, pending.size, internal_date,
                                                 pending.flags[i].system, std::move(keywords)}));
        MAGPIE_TRY(log_change(db, mailbox_id, allocated->modseq, allocated->uid, ChangeKind::appended));
        delivered.placed.push_back(
            Delivered::Placed{mailbox_id, allocated->uid, allocated->modseq, same->email.id, same->email.thread_id});
        changes[mailbox_id] = MailboxChange{allocated->account_id, allocated->modseq};
    }
    return delivered;
}

Result<std::vector<std::pair<std::int64_t, EnvelopeRecord>>> SqliteStore::pending_envelopes(std::size_t limit) {
    using Records = std::vector<std::pair<std::int64_t, EnvelopeRecord>>;
    return read<Records>([&](Connection& db) -> Result<Records> {
        auto envelopes = db.prepare(
            "SELECT id, reverse_path, dsn_ret, dsn_envid FROM envelopes ORDER BY id LIMIT ?1");
        if (!envelopes) return envelopes.error();
        envelopes->bind(1, static_cast<std::int64_t>(limit));
        Records records;
        for (;;) {
            auto row = envelopes->step();
            if (!row) return row.error();
            if (!*row) break;
            EnvelopeRecord record;
            record.reverse_path = envelopes->column_text(1);
            record.dsn_ret = envelopes->column_text(2);
            record.dsn_envid = envelopes->column_text(3);
            records.emplace_back(envelopes->column_int64(0), std::move(record));
        }
        for (auto& [id, record] : records) {
            auto recipients = db.prepare(
                "SELECT address, notify, orcpt FROM envelope_recipients WHERE envelope_id = ?1 ORDER BY position");
            if (!recipients) return recipients.error();
            recipients->bind(1, id);
            for (;;) {
                auto row = recipients->step();
                if (!row) return row.error();
                if (!*row) break;
                record.recipients.push_back(EnvelopeRecipient{recipients->column_text(0), recipients->column_text(1),
                                                              recipients->column_text(2)});
            }
        }
        return records;
    });
}

Result<void> SqliteStore::delete_envelope(std::int64_t id) {
    return write<void>([&](Connection& db) -> Result<void> {
        auto statement = db.prepare("DELETE FROM envelopes WHERE id = ?1");
        if (!statement) return statement.error();
        MAGPIE_TRY(statement->bind(1, id).run());
        if (db.changes() == 0) return make_error(Errc::not_found, fmt::format("no envelope {}", id));
        return {};
    });
}

}  // namespace magpie::store::sqlite
