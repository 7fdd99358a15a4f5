#include "net/limiter.h"

namespace magpie::net {

std::unique_ptr<ConnectionLimiter::Slot> ConnectionLimiter::try_acquire(const std::string& ip) {
    std::lock_guard lock(mutex_);
    if (total_ >= max_total_) return nullptr;
    auto& count = per_key_[ip];
    if (count >= max_per_ip_ && !in_networks(proxies_, ip)) {
        if (count == 0) per_key_.erase(ip);
        return nullptr;
    }
    ++count;
    ++total_;
    return std::make_unique<Slot>(shared_from_this(), ip);
}

void ConnectionLimiter::release(const std::string& key) {
    std::lock_guard lock(mutex_);
    --total_;
    auto it = per_key_.find(key);
    if (it != per_key_.end() && --it->second == 0) per_key_.erase(it);
}

bool ConnectionLimiter::Slot::move_to(std::string key, std::size_t max_for_key) {
    if (key == key_) return true;
    ConnectionLimiter& limiter = *owner_;
    std::lock_guard lock(limiter.mutex_);
    auto [to, inserted] = limiter.per_key_.try_emplace(key, 0);
    if (to->second >= max_for_key) {
        if (inserted) limiter.per_key_.erase(to);
        return false;
    }
    ++to->second;
    auto from = limiter.per_key_.find(key_);
    if (from != limiter.per_key_.end() && --from->second == 0) limiter.per_key_.erase(from);
    key_ = std::move(key);
    moved_ = true;
    return true;
}

void ConnectionLimiter::set_limits(std::size_t max_total, std::size_t max_per_ip) {
    std::lock_guard lock(mutex_);
    max_total_ = max_total;
    max_per_ip_ = max_per_ip;
}

void ConnectionLimiter::set_proxies(std::vector<IpNetwork> proxies) {
    std::lock_guard lock(mutex_);
    proxies_ = std::move(proxies);
}

std::size_t ConnectionLimiter::active() const {
    std::lock_guard lock(mutex_);
    return total_;
}

}  // namespace magpie::net
