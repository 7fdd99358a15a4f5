// Resolver over c-ares (1.18): MX, A and AAAA queries to the system's resolvers or to one configured address
// (tests point it at a local dnsmasq). Each call runs its own channel and blocks until answered or timed out,
// so it belongs on a worker thread. Interim: issue 13's src/dns module takes this over.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "base/result.h"
#include "delivery/routing.h"

namespace magpie::delivery {

class CaresResolver final : public Resolver {
public:
    // `server`: "" for /etc/resolv.conf, else "IP" or "IP:port" ("[v6]:port"). invalid_argument when c-ares
    // refuses the address.
    static Result<std::shared_ptr<CaresResolver>> create(std::string server, std::chrono::seconds timeout);

    MxAnswer mx(const std::string& domain) override;
    // IPv4 first, then IPv6: loopback-only and IPv4-only hosts are the common case for port 25.
    AddressAnswer addresses(const std::string& host) override;

private:
    CaresResolver(std::string server, std::chrono::seconds timeout) : server_(std::move(server)), timeout_(timeout) {}
    std::string server_;
    std::chrono::seconds timeout_;
};

}  // namespace magpie::delivery
