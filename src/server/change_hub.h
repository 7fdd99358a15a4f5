// Fans the store's one change listener out to every connection that watches an account (IMAP IDLE now,
// JMAP push later): a commit that touched a mailbox wakes the watchers' pending reads, and each protocol
// loop then asks its session what changed. Watchers are weak: a closed connection simply drops out.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "net/connection.h"

namespace magpie::server {

class ChangeHub {
public:
    void watch(std::int64_t account_id, const std::shared_ptr<net::Connection>& connection);
    void unwatch(std::int64_t account_id, const net::Connection* connection);
    // Called by the store after a commit (on its committer thread): wakes every watcher of the account.
    void notify(std::int64_t account_id);
    // How many notify() calls were made so far (any account). A loop that starts watching only after it read the
    // store compares this with its value from before that read: a change in between woke no one.
    std::uint64_t notifications() const { return notifications_.load(std::memory_order_acquire); }

private:
    std::atomic<std::uint64_t> notifications_{0};
    std::mutex mutex_;
    std::unordered_map<std::int64_t, std::vector<std::weak_ptr<net::Connection>>> watchers_;
};

// Unwatches `connection` for `account_id` when it leaves scope (a protocol loop's coroutine frame), however the
// loop ends; unwatching a connection that is not (or no longer) watched does nothing.
class Unwatch {
public:
    Unwatch(ChangeHub& hub, std::int64_t account_id, const net::Connection* connection)
        : hub_(hub), account_id_(account_id), connection_(connection) {}
    Unwatch(const Unwatch&) = delete;
    Unwatch& operator=(const Unwatch&) = delete;
    ~Unwatch() { hub_.unwatch(account_id_, connection_); }

private:
    ChangeHub& hub_;
    std::int64_t account_id_;
    const net::Connection* connection_;
};

}  // namespace magpie::server
