// Concurrent connection limits, in total and per client IP, shared by every listener of one service. A
// connection over a limit is answered with the protocol's "busy" line and closed, never queued. A slot can
// move to another key (IMAP after login: the account and the address), so that a key's count bounds only
// the connections that hold it. Connections from an HTTP reverse proxy carry many clients' requests and count
// toward the total only.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "net/proxy_protocol.h"

namespace magpie::net {

class ConnectionLimiter : public std::enable_shared_from_this<ConnectionLimiter> {
public:
    ConnectionLimiter(std::size_t max_total, std::size_t max_per_ip)
        : max_total_(max_total), max_per_ip_(max_per_ip) {}

    // Holds one admitted connection's place until destroyed.
    class Slot {
    public:
        Slot(std::shared_ptr<ConnectionLimiter> owner, std::string key)
            : owner_(std::move(owner)), key_(std::move(key)) {}
        Slot(const Slot&) = delete;
        Slot& operator=(const Slot&) = delete;
        ~Slot() { owner_->release(key_); }

        // Counts this connection under `key` instead of the key it holds, when fewer than `max_for_key`
        // connections hold `key`; false, and the slot unchanged, when that many do already. The total is
        // unchanged either way.
        bool move_to(std::string key, std::size_t max_for_key);
        // Whether move_to has moved this slot off the client's address.
        bool moved() const { return moved_; }

    private:
        std::shared_ptr<ConnectionLimiter> owner_;
        std::string key_;  // the client's IP address, until move_to
        bool moved_ = false;
    };

    // A slot when both limits allow one more connection from `ip`, else null; from an address in the
    // proxies' networks, when the total allows one more.
    std::unique_ptr<Slot> try_acquire(const std::string& ip);
    void set_limits(std::size_t max_total, std::size_t max_per_ip);
    // Reverse proxies ([http] reverse_proxies): each of their connections may carry any client's requests, so
    // the per-address limit would bound a whole site's traffic; the total still bounds them.
    void set_proxies(std::vector<IpNetwork> proxies);
    std::size_t active() const;

private:
    void release(const std::string& key);

    mutable std::mutex mutex_;
    std::size_t max_total_;
    std::size_t max_per_ip_;
    std::vector<IpNetwork> proxies_;
    std::size_t total_ = 0;
    std::unordered_map<std::string, std::size_t> per_key_;  // IP addresses, and the keys slots moved to
};

}  // namespace magpie::net
