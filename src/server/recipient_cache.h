// What RCPT TO resolved for local recipients, kept across SMTP connections (issue 17: a message to an address
// seen a moment ago costs no look-up on the store's threads). Each memo carries the store's directory version
// (Store::directory_version) read before its look-ups. The SMTP service uses a memo only while the store still
// reports that version (Store::directory_version_if_ready), and the delivery of a message whose recipients came
// from memos names the oldest of their versions, so a change made in between (by this process, the CLI or
// another node) is caught in the delivery's own transaction (Errc::conflict) and the recipients are resolved
// again. Only local recipients with an INBOX are kept: unknown addresses always ask the store. Memos live
// `ttl_seconds` (steady clock); at most `max_entries` are kept, and a full cache starts again empty.
// Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "store/store.h"

namespace magpie::server {

// What RCPT learned of one recipient.
struct RecipientMemo {
    store::RecipientResult recipient;
    std::int64_t inbox_id = 0;       // the account's INBOX; 0 when it has none
    bool vacation = true;            // whether a VacationResponse of the account may be on
    std::uint64_t directory_version = 0;  // Store::directory_version, read before the look-ups
};

struct RecipientCacheOptions {
    std::uint32_t ttl_seconds = 60;  // 0 turns the cache off
    std::size_t max_entries = 10000;
};

class RecipientCache {
public:
    explicit RecipientCache(RecipientCacheOptions options = {}) : options_(options) {}

    // The memo kept for exactly this address (as the client spelled it) if it is younger than ttl_seconds at
    // `now` (steady seconds) and no newer directory version has been seen since it was made.
    std::optional<RecipientMemo> find(std::string_view address, std::int64_t now);
    // Keeps a local recipient's memo (others are ignored); a memo older than the newest version seen is too.
    void remember(std::string_view address, const RecipientMemo& memo, std::int64_t now);
    // A look-up or a delivery saw this directory version: every memo made before it is stale.
    void saw_version(std::uint64_t version);
    // Forgets everything (new options, e.g. after SIGHUP).
    void reset(RecipientCacheOptions options);

    std::size_t size() const;

private:
    struct Entry {
        RecipientMemo memo;
        std::int64_t expires_at = 0;
    };
    struct Hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };

    mutable std::mutex mutex_;
    RecipientCacheOptions options_;
    std::uint64_t newest_version_ = 0;
    std::unordered_map<std::string, Entry, Hash, std::equal_to<>> entries_;
};

}  // namespace magpie::server
