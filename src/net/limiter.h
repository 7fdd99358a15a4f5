// Concurrent connection limits, in total and per client IP, shared by every listener of one service. A
// connection over a limit is answered with the protocol's "busy" line and closed, never queued.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace magpie::net {

class ConnectionLimiter : public std::enable_shared_from_this<ConnectionLimiter> {
public:
    ConnectionLimiter(std::size_t max_total, std::size_t max_per_ip)
        : max_total_(max_total), max_per_ip_(max_per_ip) {}

    // Holds one admitted connection's place until destroyed.
    class Slot {
    public:
        Slot(std::shared_ptr<ConnectionLimiter> owner, std::string ip) : owner_(std::move(owner)), ip_(std::move(ip)) {}
        Slot(const Slot&) = delete;
        Slot& operator=(const Slot&) = delete;
        ~Slot() { owner_->release(ip_); }

    private:
        std::shared_ptr<ConnectionLimiter> owner_;
        std::string ip_;
    };

    // A slot when both limits allow one more connection from `ip`, else null.
    std::unique_ptr<Slot> try_acquire(const std::string& ip);
    void set_limits(std::size_t max_total, std::size_t max_per_ip);
    std::size_t active() const;

private:
    void release(const std::string& ip);

    mutable std::mutex mutex_;
    std::size_t max_total_;
    std::size_t max_per_ip_;
    std::size_t total_ = 0;
    std::unordered_map<std::string, std::size_t> per_ip_;
};

}  // namespace magpie::net
