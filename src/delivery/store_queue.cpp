#include "delivery/store_queue.h"

#include <future>

#include "store/summary.h"

namespace magpie::delivery {
namespace {

Attempt attempt_from(const store::QueueAttempt& a) {
    return Attempt{a.at, a.host, a.address, a.tls, a.reply, a.connection, a.transcript};
}

store::QueueAttempt attempt_to(const Attempt& a) {
    return store::QueueAttempt{a.at, a.host, a.address, a.tls, a.reply, a.transcript, a.connection};
}

// The two enums list the same states in the same order (RFC 5321 4.5.4.1's life of a recipient).
RecipientState state_from(store::QueueState s) { return static_cast<RecipientState>(static_cast<int>(s)); }
store::QueueState state_to(RecipientState s) { return static_cast<store::QueueState>(static_cast<int>(s)); }

QueueRecipient recipient_from(const store::QueueRecipient& r) {
    QueueRecipient out;
    out.id = r.id;
    out.address = r.address;
    out.notify = r.notify;
    out.orcpt = r.orcpt;
    out.state = state_from(r.state);
    out.next_attempt_at = r.next_attempt_at;
    out.failed_attempts = r.failed_attempts;
    out.status = r.status;
    out.last_reply = r.last_reply;
    out.remote_mta = r.remote_mta;
    out.last_attempt_at = r.last_attempt_at;
    out.delay_notified = r.delay_notified;
    for (const auto& a : r.attempts) out.attempts.push_back(attempt_from(a));
    return out;
}

}  // namespace

store::Delivery queue_delivery(const NewEntry& entry) {
    store::Delivery delivery;
    delivery.content = entry.content;
    delivery.summary = store::summarize(entry.content);
    delivery.internal_date = entry.queued_at;
    store::OutgoingMessage outgoing;
    outgoing.reverse_path = entry.reverse_path;
    outgoing.dsn_ret = entry.dsn_ret;
    outgoing.dsn_envid = entry.dsn_envid;
    outgoing.smtputf8 = entry.smtputf8;
    outgoing.queued_at = entry.queued_at;
    outgoing.first_attempt_at = entry.queued_at;
    for (const auto& r : entry.recipients) outgoing.recipients.push_back({r.address, r.notify, r.orcpt});
    delivery.outgoing = std::move(outgoing);
    return delivery;
}

Result<QueueEntry> StoreQueue::view(const store::QueueEntry& entry, bool content) {
    QueueEntry out;
    out.id = entry.id;
    out.reverse_path = entry.reverse_path;
    out.dsn_ret = entry.dsn_ret;
    out.dsn_envid = entry.dsn_envid;
    out.smtputf8 = entry.smtputf8;
    out.queued_at = entry.created_at;
    out.held = entry.held;
    out.size = entry.size;
    if (content) {
        auto bytes = store_.read_blob(entry.blob_id);
        if (!bytes) return bytes.error();
        // The local copies' Return-Path stays behind (RFC 5321 4.4: only the final delivery adds it).
        out.content = bytes->substr(std::min<std::size_t>(entry.send_offset, bytes->size()));
    }
    for (const auto& r : entry.recipients) out.recipients.push_back(recipient_from(r));
    return out;
}

Result<std::int64_t> StoreQueue::enqueue(const NewEntry& entry) {
    if (entry.recipients.empty()) return make_error(Errc::invalid_argument, "a queue entry needs a recipient");
    std::promise<Result<store::Delivered>> committed;
    store_.deliver(queue_delivery(entry),
                   [&committed](Result<store::Delivered> result) { committed.set_value(std::move(result)); });
    auto delivered = committed.get_future().get();
    if (!delivered) return delivered.error();
    return delivered->queue_id;
}

Result<std::vector<QueueEntry>> StoreQueue::lease_due(std::int64_t now, std::size_t limit,
                                                      std::uint32_t lease_seconds, std::string_view owner) {
    auto leased = store_.lease_due(owner, now, lease_seconds, limit);
    if (!leased) return leased.error();
    std::vector<QueueEntry> out;
    for (const auto& entry : *leased) {
        auto loaded = view(entry, true);
        if (!loaded) return loaded.error();  // the leases lapse; the entries come back
        out.push_back(std::move(*loaded));
    }
    return out;
}

Result<void> StoreQueue::release_leases(std::string_view owner) {
    auto released = store_.release_leases(owner);
    if (!released) return released.error();
    return {};
}

Result<std::size_t> StoreQueue::record(std::string_view owner, const EntryOutcome& outcome) {
    std::vector<store::AttemptOutcome> outcomes;
    for (const auto& u : outcome.updates) {
        store::AttemptOutcome o;
        o.recipient_id = u.recipient_id;
        o.state = state_to(u.state);
        o.next_attempt_at = u.next_attempt_at;
        if (u.attempt) o.attempt = attempt_to(*u.attempt);
        o.status = u.status;
        o.remote_mta = u.remote_mta;
        o.count_failure = u.count_failure;
        o.delay_notified = u.delay_notified;
        outcomes.push_back(std::move(o));
    }
    std::vector<store::Delivery> reports;
    for (const auto& report : outcome.reports) reports.push_back(queue_delivery(report));
    return store_.record_attempts(owner, outcomes, std::move(reports));
}

Result<std::optional<std::int64_t>> StoreQueue::next_due() { return store_.next_queue_due(); }

Result<std::vector<QueueEntry>> StoreQueue::list(bool all, std::size_t limit) {
    auto entries = store_.list_queue(limit, !all);
    if (!entries) return entries.error();
    std::vector<QueueEntry> out;
    for (const auto& entry : *entries) {
        auto listed = view(entry, false);
        if (!listed) return listed.error();
        out.push_back(std::move(*listed));
    }
    return out;
}

Result<QueueEntry> StoreQueue::get(std::int64_t id) {
    auto entry = store_.find_queue_entry(id);
    if (!entry) return entry.error();
    return view(*entry, true);
}

Result<std::size_t> StoreQueue::retry_now(std::optional<std::int64_t> id, std::int64_t now) {
    return store_.retry_queue_now(id, now);
}

Result<void> StoreQueue::set_held(std::int64_t id, bool held) { return store_.set_queue_held(id, held); }

Result<void> StoreQueue::remove(std::int64_t id) { return store_.delete_queue_entry(id); }

Result<std::size_t> StoreQueue::purge_finished(std::int64_t before) { return store_.purge_finished_queue(before); }

}  // namespace magpie::delivery
