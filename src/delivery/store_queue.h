// QueueStore over store::Store: the scheduler's and `magpie queue`'s view of the one outgoing queue, which
// lives in the store (schema version 6). Why an adapter rather than the scheduler calling the store: the
// scheduler's decisions (outcome.h, tracker.h) work on entries with their content loaded and states named,
// while the store keeps backend-neutral objects that reference a blob; this file is the one translation,
// and holds no SQL. Thread-safe as the store is. Not for the store's committer thread (it waits for
// commits).
#pragma once

#include "delivery/queue.h"
#include "store/store.h"

namespace magpie::delivery {

class StoreQueue final : public QueueStore {
public:
    explicit StoreQueue(store::Store& store) : store_(store) {}

    Result<std::int64_t> enqueue(const NewEntry& entry) override;
    Result<std::vector<QueueEntry>> lease_due(std::int64_t now, std::size_t limit, std::uint32_t lease_seconds,
                                              std::string_view owner) override;
    Result<void> release_leases(std::string_view owner) override;
    Result<std::size_t> record(std::string_view owner, const EntryOutcome& outcome) override;
    Result<std::optional<std::int64_t>> next_due() override;
    Result<std::vector<QueueEntry>> list(bool all, std::size_t limit) override;
    Result<QueueEntry> get(std::int64_t id) override;
    Result<std::size_t> retry_now(std::optional<std::int64_t> id, std::int64_t now) override;
    Result<void> set_held(std::int64_t id, bool held) override;
    Result<void> remove(std::int64_t id) override;
    Result<std::size_t> purge_finished(std::int64_t before) override;

private:
    // The store's entry in the scheduler's terms; `content` true reads the message from its blob.
    Result<QueueEntry> view(const store::QueueEntry& entry, bool content);

    store::Store& store_;
};

// A message queued by itself (a report, `magpie queue add`): the store's delivery with no local target.
store::Delivery queue_delivery(const NewEntry& entry);

}  // namespace magpie::delivery
