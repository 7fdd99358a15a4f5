#include "server/change_hub.h"

#include <algorithm>

namespace magpie::server {

void ChangeHub::watch(std::int64_t account_id, const std::shared_ptr<net::Connection>& connection) {
    std::lock_guard lock(mutex_);
    watchers_[account_id].push_back(connection);
}

void ChangeHub::unwatch(std::int64_t account_id, const net::Connection* connection) {
    std::lock_guard lock(mutex_);
    auto it = watchers_.find(account_id);
    if (it == watchers_.end()) return;
    auto& list = it->second;
    list.erase(std::remove_if(list.begin(), list.end(),
                              [connection](const std::weak_ptr<net::Connection>& weak) {
                                  auto strong = weak.lock();
                                  return !strong || strong.get() == connection;
                              }),
               list.end());
    if (list.empty()) watchers_.erase(it);
}

void ChangeHub::notify(std::int64_t account_id) {
    notifications_.fetch_add(1, std::memory_order_acq_rel);
    std::vector<std::shared_ptr<net::Connection>> woken;
    {
        std::lock_guard lock(mutex_);
        auto it = watchers_.find(account_id);
        if (it == watchers_.end()) return;
        for (auto& weak : it->second) {
            if (auto strong = weak.lock()) woken.push_back(std::move(strong));
        }
    }
    for (auto& connection : woken) connection->wake();
}

}  // namespace magpie::server
