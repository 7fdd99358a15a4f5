#include "server/recipient_cache.h"

namespace magpie::server {

std::optional<RecipientMemo> RecipientCache::find(std::string_view address, std::int64_t now) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(address);
    if (it == entries_.end()) return std::nullopt;
    if (it->second.expires_at <= now || it->second.memo.directory_version < newest_version_) {
        entries_.erase(it);
        return std::nullopt;
    }
    return it->second.memo;
}

void RecipientCache::remember(std::string_view address, const RecipientMemo& memo, std::int64_t now) {
    if (memo.recipient.status != store::RecipientStatus::local || memo.inbox_id == 0) return;
    std::lock_guard lock(mutex_);
    if (options_.ttl_seconds == 0 || options_.max_entries == 0) return;
    if (memo.directory_version < newest_version_) return;
    if (memo.directory_version > newest_version_) {
        newest_version_ = memo.directory_version;
        entries_.clear();  // all older
    }
    if (entries_.size() >= options_.max_entries && !entries_.contains(address)) entries_.clear();
    entries_.insert_or_assign(std::string(address), Entry{memo, now + options_.ttl_seconds});
}

void RecipientCache::saw_version(std::uint64_t version) {
    std::lock_guard lock(mutex_);
    if (version <= newest_version_) return;
    newest_version_ = version;
    // Everything kept is older now.
    entries_.clear();
}

void RecipientCache::reset(RecipientCacheOptions options) {
    std::lock_guard lock(mutex_);
    options_ = options;
    entries_.clear();
}

std::size_t RecipientCache::size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

}  // namespace magpie::server
