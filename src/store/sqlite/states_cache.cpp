#include "store/sqlite/states_cache.h"

#include <algorithm>

namespace magpie::store::sqlite {

std::shared_ptr<const StatesSnapshot> StatesCache::find(std::int64_t mailbox_id) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(mailbox_id);
    if (it == entries_.end()) return nullptr;
    uses_.splice(uses_.begin(), uses_, it->second.use);
    return it->second.snapshot;
}

void StatesCache::keep(std::int64_t mailbox_id, std::shared_ptr<const StatesSnapshot> snapshot) {
    if (!snapshot) return;
    std::lock_guard lock(mutex_);
    auto it = entries_.find(mailbox_id);
    if (it != entries_.end()) {
        const auto& kept = *it->second.snapshot;
        // Two readers may finish out of order: the older snapshot never replaces the newer.
        if (kept.uidvalidity == snapshot->uidvalidity && kept.highest_modseq >= snapshot->highest_modseq) return;
        erase(it);
    }
    if (snapshot->states.size() > max_messages_) return;
    while (cached_ + snapshot->states.size() > max_messages_ && !uses_.empty()) erase(entries_.find(uses_.back()));
    cached_ += snapshot->states.size();
    uses_.push_front(mailbox_id);
    entries_.emplace(mailbox_id, Entry{std::move(snapshot), uses_.begin()});
}

void StatesCache::forget(std::int64_t mailbox_id) {
    std::lock_guard lock(mutex_);
    if (auto it = entries_.find(mailbox_id); it != entries_.end()) erase(it);
}

std::size_t StatesCache::cached_messages() const {
    std::lock_guard lock(mutex_);
    return cached_;
}

void StatesCache::erase(std::unordered_map<std::int64_t, Entry>::iterator it) {
    cached_ -= it->second.snapshot->states.size();
    uses_.erase(it->second.use);
    entries_.erase(it);
}

std::vector<MessageState> apply_changes(const std::vector<MessageState>& base, std::vector<MessageState> changed,
                                        std::vector<std::uint32_t> expunged) {
    std::ranges::sort(changed, {}, &MessageState::uid);
    std::ranges::sort(expunged);
    std::vector<MessageState> result;
    result.reserve(base.size() + changed.size());
    auto change = changed.begin();
    auto gone = expunged.begin();
    for (const auto& state : base) {
        while (change != changed.end() && change->uid < state.uid) result.push_back(std::move(*change++));
        while (gone != expunged.end() && *gone < state.uid) ++gone;
        if (gone != expunged.end() && *gone == state.uid) continue;
        if (change != changed.end() && change->uid == state.uid) {
            result.push_back(std::move(*change++));
        } else {
            result.push_back(state);
        }
    }
    for (; change != changed.end(); ++change) result.push_back(std::move(*change));
    return result;
}

}  // namespace magpie::store::sqlite
