// Fans the store's one change listener out to every connection that watches an account (IMAP IDLE now,
// JMAP push later): a commit that touched a mailbox wakes the watchers' pending reads, and each protocol
// loop then asks its session what changed. Watchers are weak: a closed connection simply drops out.
#pragma once

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

private:
    std::mutex mutex_;
    std::unordered_map<std::int64_t, std::vector<std::weak_ptr<net::Connection>>> watchers_;
};

}  // namespace magpie::server
