#include "net/limiter.h"

namespace magpie::net {

std::unique_ptr<ConnectionLimiter::Slot> ConnectionLimiter::try_acquire(const std::string& ip) {
    std::lock_guard lock(mutex_);
    if (total_ >= max_total_) return nullptr;
    auto& count = per_ip_[ip];
    if (count >= max_per_ip_) {
        if (count == 0) per_ip_.erase(ip);
        return nullptr;
    }
    ++count;
    ++total_;
    return std::make_unique<Slot>(shared_from_this(), ip);
}

void ConnectionLimiter::release(const std::string& ip) {
    std::lock_guard lock(mutex_);
    --total_;
    auto it = per_ip_.find(ip);
    if (it != per_ip_.end() && --it->second == 0) per_ip_.erase(it);
}

void ConnectionLimiter::set_limits(std::size_t max_total, std::size_t max_per_ip) {
    std::lock_guard lock(mutex_);
    max_total_ = max_total;
    max_per_ip_ = max_per_ip;
}

std::size_t ConnectionLimiter::active() const {
    std::lock_guard lock(mutex_);
    return total_;
}

}  // namespace magpie::net
