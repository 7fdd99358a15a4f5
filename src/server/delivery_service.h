// The outgoing queue's IO side: a scheduler coroutine that leases due recipients (delivery::QueueStore over
// the store's queue), hands local recipients to the store and groups the rest by destination domain, and per
// destination a few connection coroutines that route (static route, smart host, MX, A/AAAA), connect, pump
// bytes between the socket and a sans-IO smtp::ClientSession (STARTTLS included), keep the connection open a
// short time for more mail to the same host, and record each attempt with its outcome and reports in one
// commit.
// The decisions are delivery::decide / make_report / plan_mx_route; this file only moves bytes and waits.
// Everything here runs on one io_context, so its state needs no lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <list>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "delivery/outcome.h"
#include "delivery/queue.h"
#include "delivery/routing.h"
#include "dns/resolver.h"
#include "mailauth/tlsrpt.h"
#include "net/asio.h"
#include "server/config.h"
#include "server/store_executor.h"
#include "store/store.h"

namespace magpie::server {

// What src/dns needs from [queue]: servers, timeouts, bounds and the static routes' hosts and ports.
dns::ResolverConfig resolver_config(const Config& config);

class DeliveryService {
public:
    DeliveryService(std::shared_ptr<const Config> config, store::Store& store, delivery::QueueStore& queue,
                    StoreExecutor& executor, net::asio::io_context& context);
    ~DeliveryService();

    // Takes back this node's leases (a previous process died with them) and starts the scheduler; watches
    // `data_dir` for delivery::wake_file_name so that `magpie queue add` is seen at once.
    void start(const std::filesystem::path& data_dir);
    // Something was queued: look now rather than at the next poll. Any thread.
    void wake();
    // Stops leasing and closes idle connections; transactions in flight finish (or their lease expires).
    // Any thread.
    void stop();
    void reconfigure(std::shared_ptr<const Config> config);
    // Outgoing connections open now (tests, drain).
    std::size_t connections() const { return total_connections_.load(); }

private:
    struct EntryJob;
    struct Work;
    struct Destination;

    awaitable<void> schedule();
    awaitable<void> watch(const std::filesystem::path& data_dir);
    // Hands a leased entry's recipients, resolved with the lease, to local delivery or their destinations.
    void dispatch(std::shared_ptr<EntryJob> job);
    awaitable<void> deliver_local(std::shared_ptr<EntryJob> job, std::size_t index, std::int64_t account_id);
    void add_work(const std::string& domain, Work work);
    void start_connections();
    awaitable<void> serve_destination(std::shared_ptr<Destination> destination);
    awaitable<bool> try_address(Destination& destination, const std::string& host, const std::string& address,
                                std::uint16_t port, const delivery::StaticRoute* route);
    awaitable<bool> wait_for_work(Destination& destination);
    awaitable<void> apply_mta_sts(Destination& destination, dns::Route& route);
    awaitable<void> apply_dane(Destination& destination, dns::Route& route);
    // Appends one session's RFC 8460 result to <data_dir>/tlsrpt (on the executor; never waited for).
    void record_tls_result(mailauth::TlsSessionResult result);
    awaitable<void> write_tls_result(mailauth::TlsSessionResult result);
    void complete(const std::shared_ptr<EntryJob>& job, std::size_t index, delivery::AttemptResult result,
                  std::optional<delivery::Attempt> attempt);
    void fail_work(Work& work, const delivery::AttemptResult& result, const delivery::Attempt* attempt);
    awaitable<void> finish(std::shared_ptr<EntryJob> job);
    awaitable<void> success_notices();

    std::shared_ptr<const Config> config() const { return std::atomic_load(&config_); }

    std::shared_ptr<const Config> config_;
    store::Store& store_;
    delivery::QueueStore& queue_;
    StoreExecutor& executor_;
    net::asio::io_context& context_;
    net::asio::steady_timer wakeup_;
    net::asio::posix::stream_descriptor watcher_;
    std::string node_;  // lease owner: hostname, machine id and data directory (lease_owner)
    std::map<std::string, std::shared_ptr<Destination>> destinations_;
    std::set<std::int64_t> in_flight_;  // recipients being delivered now
    std::atomic<std::size_t> total_connections_ = 0;
    std::uint64_t connection_serial_ = 0;
    std::atomic<bool> stopping_ = false;
    bool woken_ = false;
    std::int64_t last_purge_ = 0;
    // Where attempts are recorded: a record waits for its group commit (an fsync) on the thread that asked,
    // so the records that share one commit are at most as many as the threads waiting here. On the two
    // threads of executor_ relaying ran at two records per fsync, behind which the next lease and every
    // recipient lookup queued (issue 17, relay). Last: its threads finish before the members they use go.
    StoreExecutor recorder_;
};

}  // namespace magpie::server
