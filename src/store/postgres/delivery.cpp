// The group committer of the PostgreSQL backend, where "durable before acknowledged" is kept for deliveries:
//   deliver()      checks the delivery, hashes content up to one chunk on the calling thread and queues it,
//                  never waiting for the database;
//   the committer  takes everything queued (up to max_batch), hashes what is left and commits the batch in ONE
//                  transaction, in three round trips whatever its size (libpq's pipeline mode, pipeline.h):
//                    1. BEGIN and the row locks of every account and mailbox of the batch, in id order (UIDs
//                       are allocated under them; the one order keeps two nodes' batches from deadlocking),
//                       which also tell each mailbox's account;
//                    2. every delivery's statements back to back (blob, Email with its thread and log entry,
//                       each membership with its UID and MODSEQ: three for a message to one mailbox);
//                    3. the NOTIFYs and COMMIT (synchronous_commit = on: the WAL flush);
//                  and only after COMMIT returned runs each `done`.
// A delivery that fails on its own (a mailbox deleted meanwhile, no UIDs left, a bad row) makes the attempt roll
// back and the batch run again without it: it alone is refused, as with a savepoint each, but without a
// savepoint's round trips. A deadlock with another node (PostgreSQL aborts one side) runs the whole batch again;
// a lost connection fails the batch (the senders retry) and the next batch reconnects. A blob goes in as chunks
// of chunk_bytes, each a binary parameter pointing into the delivery's own buffer: no copy of the message is
// made on the heap, nor a hex-encoded one (libpq's send buffer holds one chunk at a time).
#include <libpq-fe.h>

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <variant>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/time.h"
#include "store/blob.h"
#include "store/postgres/postgres_store.h"
#include "store/postgres/emails.h"
#include "store/postgres/pipeline.h"
#include "store/postgres/rows.h"

namespace magpie::store::postgres {
namespace {

constexpr int kBatchAttempts = 3;

std::uint64_t content_size(const Delivery& delivery) {
    return delivery.spooled ? delivery.spooled->size() : delivery.content.size();
}

// What one delivery sent into a pipeline: the indexes of its statements, to read their answers back.
struct Sent {
    std::optional<std::size_t> answer;  // DELETE of the envelope it answers
    std::int64_t queue_id = 0;          // its queue entry, inserted between pipelines (queue.cpp)
    std::vector<std::size_t> emails;    // one statement per Email made
    struct Member {
        std::size_t statement = 0;
        std::size_t email = 0;  // index into `emails`
    };
    std::vector<Member> members;  // one per target, in target order
};

// The blob row and its first chunk in one statement; the row is inserted once per distinct content, and a
// second delivery of the same bytes finds it and adds no bytes. It does touch it (created_at = now), which
// locks the row until this transaction ends: the collector (gc.cpp, FOR UPDATE SKIP LOCKED, created_at
// before the grace period) skips a blob being reused, and if the collector locked it first this waits, finds
// it deleted and inserts it again. So a blob referenced by a committed row is never collected, and a
// delivery never fails on one collected under it. Further chunks are inserted unless present (a blob stored
// before has them all; one inserted again after the collector has none).
Result<void> send_blob(Pipeline& pipe, const std::string& blob_id, std::string_view content,
                       const MessageSummary& summary, std::size_t chunk_bytes) {
    const std::size_t chunk = std::max<std::size_t>(chunk_bytes, 1);
    auto first = pipe.send(
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
    std::int64_t seq = 1;
    for (std::size_t offset = chunk; offset < content.size(); offset += chunk, ++seq) {
        auto more = pipe.send(
            "INSERT INTO blob_chunks(blob_id, seq, data) VALUES($1, $2, $3) ON CONFLICT(blob_id, seq) DO NOTHING",
            Params().add(blob_id).add(seq).add_bytes(content.substr(offset, chunk)));
        if (!more) return more.error();
    }
    return {};
}

// One statement per Email: its thread (as find_thread in emails.cpp: parents nearest first, then its own
// Message-ID, then the latest same-subject Email within the window; a later Email of this delivery in the
// same account joins the first one's thread), its row stamped with the account's new state, and its
// "created" log entry. The account's state goes up once per delivery (`first_in_account`).
Result<std::size_t> send_email(Pipeline& pipe, std::int64_t account_id, const std::string& blob_id,
                               const EmailKeys& keys, std::int64_t internal_date, std::int64_t size,
                               std::uint32_t system, const std::string& keywords, bool first_in_account,
                               const ThreadLimits& limits) {
    std::vector<std::string> ids = keys.parents;
    if (!keys.message_id.empty()) ids.push_back(keys.message_id);
    const std::string state = first_in_account
                                  ? "UPDATE accounts SET email_state = email_state + 1 WHERE id = $1 RETURNING email_state"
                                  : "SELECT email_state FROM accounts WHERE id = $1";
    const std::string thread =
        first_in_account
            ? "coalesce((SELECT e.thread_id FROM unnest($10::bytea[]) WITH ORDINALITY j(mid, n) JOIN emails e "
              "ON e.account_id = $1 AND e.message_id = j.mid AND e.message_id <> ''::bytea ORDER BY j.n, e.id LIMIT 1), "
              "(SELECT thread_id FROM emails WHERE account_id = $1 AND base_subject = $9 AND $9 <> ''::bytea "
              "AND internal_date BETWEEN $11::bigint AND $12::bigint ORDER BY internal_date DESC, id DESC LIMIT 1), 0)"
            : "coalesce((SELECT thread_id FROM emails WHERE account_id = $1 AND blob_id = $2 ORDER BY id DESC LIMIT 1), 0)";
    // A new thread is named after its first Email (the id from the sequence, in the same statement), so thread
    // ids are never reused either.
    const std::string sql = fmt::format(
        "WITH s AS ({}), n AS (SELECT nextval(pg_get_serial_sequence('emails', 'id')) AS id), t AS (SELECT {} AS id), "
        "e AS (INSERT INTO emails(id, account_id, blob_id, thread_id, internal_date, sent_at, size, system_flags, "
        "keywords, message_id, base_subject, state) SELECT n.id, $1::bigint, $2::text, "
        "CASE WHEN t.id = 0 THEN n.id ELSE t.id END, $3::bigint, $4::bigint, $5::bigint, $6::integer, $7::text, "
        "$8::bytea, $9::bytea, s.email_state FROM s, n, t RETURNING id, thread_id, state), "
        "l AS (INSERT INTO email_log(account_id, state, email_id, thread_id, kind) "
        "SELECT $1::bigint, e.state, e.id, e.thread_id, 1 FROM e ON CONFLICT DO NOTHING) "
        "SELECT id, thread_id FROM e",
        state, thread);
    Params params;
    params.add(account_id)
        .add(blob_id)
        .add(internal_date)
        .add(keys.sent_at)
        .add(size)
        .add(std::int64_t{system})
        .add(keywords)
        .add_bytes(keys.message_id)
        .add_bytes(keys.base_subject);
    if (first_in_account) {
        params.add(bytea_array(ids))
            .add(internal_date - limits.subject_window_seconds)
            .add(internal_date + limits.subject_window_seconds);
    }
    return pipe.send(sql, params);
}

// A membership of the Email just inserted (the sequence's current value: its statement comes right before):
// UID and MODSEQ taken from the mailbox (its row is locked), counters, the row and its change-log entry.
// No row back: the mailbox has no UIDs left.
Result<std::size_t> send_member(Pipeline& pipe, std::int64_t mailbox_id, const std::string& blob_id, std::int64_t size,
                                std::int64_t internal_date, std::uint32_t system, const std::string& keywords) {
    const bool deleted = (system & flag_deleted) != 0;
    return pipe.send(
        "WITH a AS (UPDATE mailboxes SET uidnext = uidnext + 1, highest_modseq = highest_modseq + 1, "
        "message_count = message_count + 1, total_size = total_size + $2, unseen_count = unseen_count + $3, "
        "deleted_count = deleted_count + $4, deleted_size = deleted_size + $5, recent_count = recent_count + 1 "
        "WHERE id = $1 AND uidnext < 4294967295 RETURNING account_id, uidnext - 1 AS uid, highest_modseq AS modseq), "
        "m AS (INSERT INTO messages(mailbox_id, uid, modseq, blob_id, size, internal_date, system_flags, keywords, "
        "email_id) SELECT $1::bigint, a.uid, a.modseq, $6::text, $2::bigint, $7::bigint, $8::integer, $9::text, "
        "currval(pg_get_serial_sequence('emails', 'id')) FROM a), "
        "c AS (INSERT INTO change_log(mailbox_id, modseq, uid, kind) SELECT $1::bigint, a.modseq, a.uid, 1 FROM a) "
        "SELECT account_id, uid, modseq FROM a",
        Params()
            .add(mailbox_id)
            .add(size)
            .add(std::int64_t{(system & flag_seen) == 0 ? 1 : 0})
            .add(std::int64_t{deleted ? 1 : 0})
            .add(deleted ? size : 0)
            .add(blob_id)
            .add(internal_date)
            .add(std::int64_t{system})
            .add(keywords));
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

namespace {

using Owners = std::map<std::int64_t, std::int64_t>;  // mailbox id -> account id

// Every statement of one delivery, into `pipe`. `insert_queue` writes its queue entry on the connection
// itself (the pipeline flushed first: the entry names the blob sent before it). An error: nothing more was
// sent for this delivery (a target's mailbox is gone, or the connection's or an earlier statement's error).
Result<Sent> send_delivery(Pipeline& pipe, const Delivery& delivery, const std::string& blob_id,
                           std::string_view content, const std::vector<FlagSet>& flags, const Owners& owners,
                           const PostgresOptions& options,
                           const std::function<Result<std::int64_t>()>& insert_queue) {
    for (const DeliveryTarget& target : delivery.targets) {
        if (!owners.contains(target.mailbox_id))
            return make_error(Errc::not_found, fmt::format("no mailbox {}", target.mailbox_id));
    }
    Sent sent;
    MAGPIE_TRY(send_blob(pipe, blob_id, content, delivery.summary, options.chunk_bytes));
    if (delivery.envelope) {
        const EnvelopeRecord& envelope = *delivery.envelope;
        std::vector<std::string> addresses, notifies, orcpts;
        for (const auto& r : envelope.recipients) {
            addresses.push_back(r.address);
            notifies.push_back(r.notify);
            orcpts.push_back(r.orcpt);
        }
        auto stored = pipe.send(
            "WITH e AS (INSERT INTO envelopes(received_at, blob_id, reverse_path, dsn_ret, dsn_envid) "
            "VALUES($1, $2, $3, $4, $5) RETURNING id) "
            "INSERT INTO envelope_recipients(envelope_id, position, address, notify, orcpt) "
            "SELECT e.id, r.ord - 1, r.address, r.notify, r.orcpt FROM e, "
            "unnest($6::text[], $7::text[], $8::text[]) WITH ORDINALITY r(address, notify, orcpt, ord)",
            Params()
                .add(unix_now())
                .add(blob_id)
                .add(envelope.reverse_path)
                .add(envelope.dsn_ret)
                .add(envelope.dsn_envid)
                .add(text_array(addresses))
                .add(text_array(notifies))
                .add(text_array(orcpts)));
        if (!stored) return stored.error();
    }
    if (delivery.answers_envelope) {
        auto answered = pipe.send("DELETE FROM envelopes WHERE id = $1", Params().add(*delivery.answers_envelope));
        if (!answered) return answered.error();
        sent.answer = *answered;
    }
    if (delivery.outgoing && !delivery.outgoing->recipients.empty()) {
        MAGPIE_TRY(pipe.flush());
        if (pipe.first_failure()) return make_error(Errc::internal, "an earlier statement failed");
        auto queued = insert_queue();
        if (!queued) return queued.error();
        sent.queue_id = *queued;
    }

    // The Emails this delivery makes: one per account, unless its targets there differ in flags (an Email has
    // one set) or name a mailbox twice (an Email is in a mailbox once), as the embedded store does.
    struct Made {
        std::int64_t account_id = 0;
        std::uint32_t system = 0;
        std::string keywords;
        std::vector<std::size_t> targets;
    };
    std::vector<Made> made;
    std::vector<std::size_t> made_of(delivery.targets.size());
    for (std::size_t i = 0; i < delivery.targets.size(); ++i) {
        const std::int64_t mailbox_id = delivery.targets[i].mailbox_id;
        const std::int64_t account_id = owners.at(mailbox_id);
        const std::uint32_t system = flags[i].system & ~kMembershipFlags;
        std::string keywords = join_keywords(flags[i].keywords);
        auto same = std::ranges::find_if(made, [&](const Made& m) {
            return m.account_id == account_id && m.system == system && m.keywords == keywords &&
                   std::ranges::none_of(m.targets, [&](std::size_t t) { return delivery.targets[t].mailbox_id == mailbox_id; });
        });
        if (same == made.end()) {
            made.push_back(Made{account_id, system, std::move(keywords), {}});
            same = made.end() - 1;
        }
        same->targets.push_back(i);
        made_of[i] = static_cast<std::size_t>(same - made.begin());
    }
    const std::int64_t internal_date = delivery.internal_date != 0 ? delivery.internal_date : unix_now();
    const auto size = static_cast<std::int64_t>(content.size());
    const ThreadLimits limits{options.max_thread_references, options.thread_subject_window_seconds};
    const EmailKeys keys = email_keys(delivery.summary, limits);
    sent.members.resize(delivery.targets.size());
    for (std::size_t k = 0; k < made.size(); ++k) {
        const Made& m = made[k];
        const bool first_in_account = std::ranges::none_of(
            made.begin(), made.begin() + static_cast<std::ptrdiff_t>(k), [&](const Made& e) { return e.account_id == m.account_id; });
        auto email = send_email(pipe, m.account_id, blob_id, keys, internal_date, size, m.system, m.keywords,
                                first_in_account, limits);
        if (!email) return email.error();
        sent.emails.push_back(*email);
        for (std::size_t t : m.targets) {
            auto member = send_member(pipe, delivery.targets[t].mailbox_id, blob_id, size, internal_date,
                                      flags[t].system, join_keywords(flags[t].keywords));
            if (!member) return member.error();
            sent.members[t] = Sent::Member{*member, k};
        }
    }
    return sent;
}

// The answers of one delivery's statements (all of them ran without error): its Delivered, and its changes
// into `changes`. An error here is the delivery's own (the transaction must not commit with it).
Result<Delivered> read_delivery(Pipeline& pipe, const Sent& sent, const Delivery& delivery, const std::string& blob_id,
                                PostgresStore::Changes& changes) {
    if (sent.answer && pipe.result(*sent.answer)->affected() == 0)
        return make_error(Errc::not_found, fmt::format("no envelope {}", *delivery.answers_envelope));
    Delivered delivered;
    delivered.blob_id = blob_id;
    delivered.queue_id = sent.queue_id;
    std::vector<InsertedEmail> emails;
    for (std::size_t statement : sent.emails) {
        const Rows& rows = *pipe.result(statement);
        if (rows.empty()) return make_error(Errc::not_found, "the account of a target is gone");
        emails.push_back(InsertedEmail{rows.int64(0, 0), rows.int64(0, 1)});
    }
    PostgresStore::Changes mine;
    for (std::size_t i = 0; i < sent.members.size(); ++i) {
        const std::int64_t mailbox_id = delivery.targets[i].mailbox_id;
        const Rows& rows = *pipe.result(sent.members[i].statement);
        if (rows.empty()) return make_error(Errc::limit_exceeded, fmt::format("mailbox {} has no UIDs left", mailbox_id));
        const auto uid = static_cast<std::uint32_t>(rows.int64(0, 1));
        const auto modseq = static_cast<std::uint64_t>(rows.int64(0, 2));
        const InsertedEmail& email = emails[sent.members[i].email];
        delivered.placed.push_back(Delivered::Placed{mailbox_id, uid, modseq, email.id, email.thread_id});
        PostgresStore::MailboxChange& change = mine[mailbox_id];
        if (modseq >= change.modseq) change = PostgresStore::MailboxChange{rows.int64(0, 0), modseq};
    }
    for (const auto& [mailbox, change] : mine) changes[mailbox] = change;
    return delivered;
}

// The owners of these mailboxes, from a statement that returned (id, account_id) rows.
Owners owners_from(const Rows& rows) {
    Owners owners;
    for (int i = 0; i < rows.size(); ++i) owners[rows.int64(i, 0)] = rows.int64(i, 1);
    return owners;
}

}  // namespace

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
    // A delivery's own outcome once known: refused alone (and left out of the attempts after), or stored.
    std::vector<std::optional<Result<Delivered>>> outcome(batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
        if (batch[i].spool_error) outcome[i] = Result<Delivered>(*batch[i].spool_error);
    }
    Changes changes;
    std::optional<Error> batch_error;
    struct Alone {
        std::size_t index;
        Error error;
    };
    // One attempt at committing every delivery without an outcome. An Alone: that delivery failed by itself
    // (the transaction is rolled back, the rest runs again). An Error: the whole batch failed this time.
    bool commit_sent = false;
    auto attempt = [&](Connection& db, const std::vector<std::size_t>& live,
                       std::vector<Result<Delivered>>& stored) -> std::variant<std::monostate, Alone, Error> {
        std::vector<std::int64_t> ids;
        for (std::size_t i : live) {
            for (const DeliveryTarget& target : batch[i].delivery.targets) ids.push_back(target.mailbox_id);
        }
        std::ranges::sort(ids);
        ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
        const std::string id_array = int_array(ids);
        Owners owners;
        {
            // As lock_mailboxes (rows.h): the accounts, then the mailboxes, each in id order. Then the directory
            // version (Delivery::directory_version). A change committed between this read and our COMMIT goes
            // unseen, as it would by a look-up made just before the delivery; it cannot remove or rename the
            // mailboxes these locks hold.
            Pipeline locks(db);
            for (auto sent : {locks.send("BEGIN"),
                              locks.send("SELECT id FROM accounts WHERE id IN (SELECT account_id FROM mailboxes "
                                         "WHERE id = ANY($1::bigint[])) ORDER BY id FOR NO KEY UPDATE",
                                         Params().add(id_array)),
                              locks.send("SELECT id, account_id FROM mailboxes WHERE id = ANY($1::bigint[]) "
                                         "ORDER BY id FOR UPDATE",
                                         Params().add(id_array)),
                              locks.send("SELECT value FROM meta WHERE key = 'directory_version'")}) {
                if (!sent) return sent.error();
            }
            if (auto flushed = locks.flush(); !flushed) return flushed.error();
            if (auto failed = locks.first_failure()) return locks.result(*failed).error();
            owners = owners_from(*locks.result(2));
            const Rows& version = *locks.result(3);
            for (std::size_t i : live) {
                const auto& expected = batch[i].delivery.directory_version;
                if (expected && (version.empty() || static_cast<std::uint64_t>(version.int64(0, 0)) != *expected)) {
                    return Alone{i, make_error(Errc::conflict,
                                               "the directory changed since the recipients were resolved")};
                }
            }
        }
        Pipeline pipe(db);
        std::vector<Sent> sent;
        std::vector<std::size_t> starts;  // each live delivery's first statement
        for (std::size_t i : live) {
            Pending& pending = batch[i];
            starts.push_back(pipe.size());
            auto one = send_delivery(pipe, pending.delivery, pending.blob_id, pending.content, pending.flags, owners,
                                     options_, [&] { return insert_queue_entry(db, pending.blob_id, *pending.delivery.outgoing); });
            if (!one) {
                if (auto flushed = pipe.flush(); !flushed) return flushed.error();
                if (pipe.first_failure()) break;  // an earlier delivery's statement failed: found below
                if (is_retryable(one.error()) || db.broken()) return one.error();
                return Alone{i, one.error()};
            }
            sent.push_back(std::move(*one));
        }
        if (auto flushed = pipe.flush(); !flushed) return flushed.error();
        if (auto failed = pipe.first_failure()) {
            const Error& error = pipe.result(*failed).error();
            if (is_retryable(error) || db.broken()) return error;
            const auto k = static_cast<std::size_t>(std::upper_bound(starts.begin(), starts.end(), *failed) - starts.begin()) - 1;
            return Alone{live[k], error};
        }
        stored.clear();
        for (std::size_t k = 0; k < live.size(); ++k) {
            auto delivered = read_delivery(pipe, sent[k], batch[live[k]].delivery, batch[live[k]].blob_id, changes);
            if (!delivered) return Alone{live[k], delivered.error()};
            stored.push_back(std::move(*delivered));
        }
        if (auto notified = send_notifications(db, changes); !notified) return notified.error();
        commit_sent = true;
        if (auto committed = db.run("COMMIT"); !committed) return committed.error();  // the WAL flush
        return std::monostate{};
    };

    for (int attempts = 0; attempts < kBatchAttempts;) {
        std::vector<std::size_t> live;
        for (std::size_t i = 0; i < batch.size(); ++i) {
            if (!outcome[i]) live.push_back(i);
        }
        batch_error.reset();
        changes.clear();
        commit_sent = false;
        if (live.empty()) break;
        if (!committer_db_ || committer_db_->broken()) {
            committer_db_.reset();
            auto opened = Connection::open(options_.dsn, options_.password, options_.prepared_statements);
            if (!opened) {
                batch_error = opened.error();
                break;
            }
            committer_db_ = std::move(*opened);
        }
        Connection& db = *committer_db_;
        std::vector<Result<Delivered>> stored;
        auto result = attempt(db, live, stored);
        if (std::holds_alternative<std::monostate>(result)) {
            for (std::size_t k = 0; k < live.size(); ++k) outcome[live[k]] = std::move(stored[k]);
            break;
        }
        if (auto* alone = std::get_if<Alone>(&result)) {
            // Not an attempt of the batch's: it runs again without this one (at most once per delivery).
            if (!db.run("ROLLBACK")) committer_db_.reset();
            outcome[alone->index] = Result<Delivered>(alone->error);
            continue;
        }
        batch_error = std::get<Error>(result);
        ++attempts;
        if (db.broken() || PQpipelineStatus(db.handle()) != PQ_PIPELINE_OFF) {
            // PostgreSQL restarted or the network dropped. Before COMMIT nothing can have been kept: run the
            // batch again on a new connection. A COMMIT cut off has an unknown outcome: fail the batch (the
            // senders retry; at worst a message arrives twice, never zero times).
            committer_db_.reset();
            if (commit_sent) break;
            continue;
        }
        if (!db.run("ROLLBACK")) committer_db_.reset();
        if (!is_retryable(*batch_error)) break;
    }
    if (batch_error) {
        spdlog::error("store: batch of {} deliveries failed: {}", batch.size(), batch_error->message);
        changes.clear();
    } else {
        ++commits_;
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
        Result<Delivered> result = outcome[i] ? std::move(*outcome[i]) : Result<Delivered>(*batch_error);
        if (result) {
            ++deliveries_;
        } else {
            ++failed_deliveries_;
        }
        batch[i].done(std::move(result));
    }
    notify(changes);
}

Result<Delivered> PostgresStore::apply_delivery(Connection& db, Pending& pending, Changes& changes) {
    // Inside the caller's transaction, which holds the mailboxes' locks (lock_mailboxes).
    if (pending.spool_error) return *pending.spool_error;
    std::vector<std::int64_t> ids;
    for (const DeliveryTarget& target : pending.delivery.targets) ids.push_back(target.mailbox_id);
    auto owned = db.exec("SELECT id, account_id FROM mailboxes WHERE id = ANY($1::bigint[])", Params().add(int_array(ids)));
    if (!owned) return owned.error();
    Pipeline pipe(db);
    auto sent = send_delivery(pipe, pending.delivery, pending.blob_id, pending.content, pending.flags,
                              owners_from(*owned), options_,
                              [&] { return insert_queue_entry(db, pending.blob_id, *pending.delivery.outgoing); });
    MAGPIE_TRY(pipe.flush());
    if (auto failed = pipe.first_failure()) return pipe.result(*failed).error();
    if (!sent) return sent.error();
    return read_delivery(pipe, *sent, pending.delivery, pending.blob_id, changes);
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
