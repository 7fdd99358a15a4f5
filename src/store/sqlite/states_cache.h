// The UID, MODSEQ and flags of recently opened mailboxes (issue 17: SELECT of a 10,000-message mailbox read
// every row, about 8 ms, against Dovecot's 2 ms from its mmapped index). A snapshot is tagged with the
// mailbox's UIDVALIDITY and HIGHESTMODSEQ (RFC 7162 3.1.1) as read in the same transaction; a later reader
// brings it forward with only the rows whose MODSEQ is above it and the UIDs expunged since (apply_changes),
// which is exact because every change to a message, its arrival or its removal raises HIGHESTMODSEQ, and
// UIDVALIDITY is never reused by a new mailbox. Thread-safe; snapshots are immutable and shared.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "store/store.h"

namespace magpie::store::sqlite {

struct StatesSnapshot {
    std::uint32_t uidvalidity = 0;
    std::uint64_t highest_modseq = 0;
    std::vector<MessageState> states;  // ascending UID
};

class StatesCache {
public:
    // At most `max_messages` states in all (`[store] states_cache_messages`; 0 keeps nothing).
    explicit StatesCache(std::size_t max_messages) : max_messages_(max_messages) {}

    // The snapshot kept for `mailbox_id`, or null.
    std::shared_ptr<const StatesSnapshot> find(std::int64_t mailbox_id);
    // Keeps `snapshot` for `mailbox_id` unless a newer one of the same UIDVALIDITY is kept already; the least
    // recently used go first when the total would pass max_messages. One larger than that is not kept.
    void keep(std::int64_t mailbox_id, std::shared_ptr<const StatesSnapshot> snapshot);
    void forget(std::int64_t mailbox_id);

    std::size_t cached_messages() const;

private:
    struct Entry {
        std::shared_ptr<const StatesSnapshot> snapshot;
        std::list<std::int64_t>::iterator use;  // its place in uses_ (front: most recent)
    };
    void erase(std::unordered_map<std::int64_t, Entry>::iterator it);

    const std::size_t max_messages_;
    mutable std::mutex mutex_;
    std::unordered_map<std::int64_t, Entry> entries_;
    std::list<std::int64_t> uses_;
    std::size_t cached_ = 0;
};

// `base` (ascending UID) brought forward: a state in `changed` replaces the one of its UID or joins in UID
// order, and the UIDs in `expunged` leave. The result is in ascending UID order.
std::vector<MessageState> apply_changes(const std::vector<MessageState>& base, std::vector<MessageState> changed,
                                        std::vector<std::uint32_t> expunged);

}  // namespace magpie::store::sqlite
