#include "server/delivery_service.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <random>

#include "base/strings.h"
#include "base/time.h"
#include "delivery/store_queue.h"
#include "delivery/wake.h"
#include "mailauth/dane.h"
#include "mailauth/tlsrpt.h"
#include "net/client_connection.h"
#include "server/mta_sts_fetch.h"
#include "smtp/client_session.h"
#include "store/summary.h"

namespace magpie::server {

namespace asio = net::asio;
using delivery::AttemptResult;

// One leased entry in this round: the results of its due recipients, filled by whoever delivers them.
struct DeliveryService::EntryJob {
    delivery::QueueEntry entry;
    std::vector<Result<store::RecipientResult>> resolved;  // per recipient: local, unknown or remote
    std::vector<std::optional<AttemptResult>> results;
    std::vector<std::optional<delivery::Attempt>> attempts;
    std::size_t open = 0;
};

// The recipients of one entry that go to one destination domain.
struct DeliveryService::Work {
    std::shared_ptr<EntryJob> job;
    std::vector<std::size_t> recipients;  // indices into job->entry.recipients
};

// A destination domain: work waiting for a connection, and the connections serving it.
struct DeliveryService::Destination {
    std::string domain;
    std::deque<Work> pending;
    std::size_t connections = 0;
    std::list<asio::steady_timer*> idle;  // connections waiting for more work
    std::string last_failure;             // why the last connection attempt failed
    std::string last_host;
    bool mta_sts_enforced = false;        // RFC 8461 enforce: policy MX only, verified TLS only
    std::optional<mailauth::StsPolicy> mta_sts;  // the policy applied (enforce or testing), for TLS-RPT
    mailauth::DanePolicy dane;                   // RFC 7672: per MX host, when the MX answer was validated
};

namespace {

// Persistent connections first: another connection to the same destination opens only when the ones open
// have a long line of messages waiting (more than extra_connection_backlog each).
constexpr std::size_t extra_connection_backlog = 10;

// Threads of the recorder pool: records that can share one group commit (they mostly sleep on it).
constexpr std::size_t record_threads = 16;

// Messages handed to a connection's session at once: the one running and the next, which a peer offering
// PIPELINING gets right behind the end of the running one's content (smtp::ClientSession), one round trip
// per message instead of two.
constexpr std::size_t session_depth = 2;

std::uint64_t random64() {
    static thread_local std::mt19937_64 engine{std::random_device{}()};
    return engine();
}

AttemptResult from_smtp(const smtp::RecipientResult& r, const std::string& host) {
    AttemptResult a;
    a.kind = r.outcome == smtp::Outcome::delivered ? AttemptResult::Kind::delivered
             : r.outcome == smtp::Outcome::failed  ? AttemptResult::Kind::permanent
                                                   : AttemptResult::Kind::temporary;
    a.status = r.enhanced;
    if (r.code != 0) {
        a.reply = r.enhanced.empty() ? fmt::format("{} {}", r.code, r.text)
                                     : fmt::format("{} {} {}", r.code, r.enhanced, r.text);
        a.remote_mta = host;
        a.dsn_passed_on = r.dsn_passed_on;
    } else {
        a.reply = r.text;
    }
    return a;
}

}  // namespace

dns::ResolverConfig resolver_config(const Config& config) {
    const auto& q = config.queue;
    dns::ResolverConfig r;
    r.servers = q.resolver;
    r.tries = 2;
    r.timeout_ms = static_cast<int>(q.dns_timeout * 1000 / 2);
    r.max_mx_hosts = q.max_mx_hosts;
    r.max_addresses_per_host = q.max_addresses_per_host;
    for (const auto& route : q.routing.routes)
        r.static_routes[route.domain].push_back({route.host, route.port});
    return r;
}

namespace {

// The queue's lease owner: stable across restarts of this node (so a restarted node frees its own leases at
// once) and distinct between nodes sharing one store even when they share a hostname behind one MX name:
// the hostname, this machine's id (machine-id(5)) and the data directory.
std::string lease_owner(const Config& config) {
    std::string machine;
    if (std::ifstream in("/etc/machine-id"); in) std::getline(in, machine);
    machine = std::string(trim(machine));
    return fmt::format("{} {} {}", config.hostname, machine.empty() ? "-" : machine, config.data_dir.string());
}

}  // namespace

DeliveryService::DeliveryService(std::shared_ptr<const Config> config, store::Store& store,
                                 delivery::QueueStore& queue, StoreExecutor& executor,
                                 asio::io_context& context)
    : config_(std::move(config)),
      store_(store),
      queue_(queue),
      executor_(executor),
      context_(context),
      wakeup_(context),
      watcher_(context),
      node_(lease_owner(*config_)),
      recorder_(record_threads) {}

DeliveryService::~DeliveryService() = default;

void DeliveryService::start(const std::filesystem::path& data_dir) {
    asio::co_spawn(context_, schedule(), asio::detached);
    asio::co_spawn(context_, watch(data_dir), asio::detached);
}

awaitable<void> DeliveryService::watch(const std::filesystem::path& data_dir) {
    int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0 || ::inotify_add_watch(fd, data_dir.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
        if (fd >= 0) ::close(fd);
        spdlog::warn("delivery: cannot watch {} ({}); the queue is polled only", data_dir.string(),
                     std::strerror(errno));
        co_return;
    }
    watcher_.assign(fd);
    alignas(inotify_event) std::array<char, 4096> buffer;
    for (;;) {
        boost::system::error_code ec;
        std::size_t n = co_await watcher_.async_read_some(asio::buffer(buffer),
                                                          asio::redirect_error(net::use_awaitable, ec));
        if (ec) co_return;  // closed by stop()
        for (std::size_t offset = 0; offset + sizeof(inotify_event) <= n;) {
            const auto* event = reinterpret_cast<const inotify_event*>(buffer.data() + offset);
            if (event->len > 0 && std::string_view(event->name) == delivery::wake_file_name) wake();
            offset += sizeof(inotify_event) + event->len;
        }
    }
}

void DeliveryService::wake() {
    asio::post(context_, [this] {
        woken_ = true;
        wakeup_.cancel();
    });
}

void DeliveryService::stop() {
    stopping_ = true;
    asio::post(context_, [this] {
        wakeup_.cancel();
        boost::system::error_code ignored;
        watcher_.close(ignored);
        for (auto& [domain, destination] : destinations_) {
            for (auto* timer : destination->idle) timer->cancel();
        }
    });
}

void DeliveryService::reconfigure(std::shared_ptr<const Config> config) {
    std::atomic_store(&config_, std::move(config));
}

// ---- the scheduler ---------------------------------------------------------------------------------------

awaitable<void> DeliveryService::schedule() {
    // A previous process of this node died holding leases: nobody else is delivering those entries.
    auto released_op = executor_.run([this] { return queue_.release_leases(node_); });
    auto released = co_await std::move(released_op);
    if (!released) spdlog::error("delivery: cannot take back old leases: {}", released.error().message);
    spdlog::info("delivery: queue scheduler started");

    while (!stopping_) {
        auto cfg = config();
        const std::int64_t now = unix_now();
        woken_ = false;
        // The recipients are resolved (local account, unknown, or another server's) in the same trip to the
        // executor: one thread hop per look at the queue rather than one per recipient.
        using Leased = std::vector<EntryJob>;
        auto lease_op = executor_.run([this, now, cfg]() -> Result<Leased> {
            auto entries = queue_.lease_due(now, cfg->queue.batch, cfg->queue.lease_time, node_);
            if (!entries) return entries.error();
            Leased jobs;
            for (auto& entry : *entries) {
                EntryJob job;
                for (const auto& r : entry.recipients)
                    job.resolved.push_back(store_.resolve_recipient(r.address));
                job.entry = std::move(entry);
                jobs.push_back(std::move(job));
            }
            return jobs;
        });
        auto leased = co_await std::move(lease_op);
        std::size_t taken = 0;
        if (!leased) {
            spdlog::error("delivery: cannot read the queue: {}", leased.error().message);
        } else {
            taken = leased->size();
            for (auto& leased_job : *leased) {
                // Recipients still being delivered from an earlier lease that ran out (a slow peer, a long
                // line for one host): leasing them again only renewed the lease; a second delivery would
                // duplicate them.
                auto job = std::make_shared<EntryJob>();
                job->entry = std::move(leased_job.entry);
                auto& recipients = job->entry.recipients;
                std::vector<delivery::QueueRecipient> kept;
                for (std::size_t i = 0; i < recipients.size(); ++i) {
                    if (!in_flight_.insert(recipients[i].id).second) continue;
                    kept.push_back(std::move(recipients[i]));
                    job->resolved.push_back(std::move(leased_job.resolved[i]));
                }
                if (kept.empty()) continue;
                recipients = std::move(kept);
                dispatch(std::move(job));
            }
        }
        co_await success_notices();
        if (now - last_purge_ >= 3600) {
            last_purge_ = now;
            auto purge_op = executor_.run(
                [this, now, cfg] { return queue_.purge_finished(now - cfg->queue.keep_finished); });
            auto purged = co_await std::move(purge_op);
            if (purged && *purged > 0)
                spdlog::info("delivery: removed {} finished entries from the tracker", *purged);
        }
        if (taken == cfg->queue.batch || woken_) continue;

        auto next_op = executor_.run([this] { return queue_.next_due(); });
        auto next = co_await std::move(next_op);
        std::int64_t wait = cfg->queue.poll_interval;
        if (next && *next) wait = std::clamp<std::int64_t>(**next - unix_now(), 1, wait);
        if (woken_ || stopping_) continue;
        wakeup_.expires_after(std::chrono::seconds(wait));
        boost::system::error_code ec;
        co_await wakeup_.async_wait(asio::redirect_error(net::use_awaitable, ec));
    }
}

void DeliveryService::dispatch(std::shared_ptr<EntryJob> job) {
    auto& recipients = job->entry.recipients;
    job->results.resize(recipients.size());
    job->attempts.resize(recipients.size());
    job->open = recipients.size();
    std::map<std::string, Work> remote;
    for (std::size_t i = 0; i < recipients.size(); ++i) {
        const std::string address = recipients[i].address;
        const auto& resolved = job->resolved[i];
        if (!resolved) {
            complete(job, i,
                     AttemptResult{AttemptResult::Kind::temporary, "4.3.0",
                                   "local recipient lookup failed: " + resolved.error().message, "", false},
                     std::nullopt);
            continue;
        }
        switch (resolved->status) {
            case store::RecipientStatus::local:
                asio::co_spawn(context_, deliver_local(job, i, resolved->account_id), asio::detached);
                break;
            case store::RecipientStatus::unknown_user: {
                AttemptResult result{AttemptResult::Kind::permanent, "5.1.1",
                                     fmt::format("550 5.1.1 <{}>: no such user here", address), "", true};
                complete(job, i, result,
                         delivery::Attempt{unix_now(), "local", "", "", result.reply, "", ""});
                break;
            }
            case store::RecipientStatus::not_local_domain: {
                auto& work = remote[delivery::recipient_domain(address)];
                work.job = job;
                work.recipients.push_back(i);
                break;
            }
        }
    }
    for (auto& [domain, work] : remote) add_work(domain, std::move(work));
}

awaitable<void> DeliveryService::deliver_local(std::shared_ptr<EntryJob> job, std::size_t index,
                                               std::int64_t account_id) {
    auto find = executor_.run([this, account_id] { return store_.find_mailbox(account_id, "INBOX"); });
    auto inbox = co_await std::move(find);
    if (!inbox) {
        std::string reason = "local mailbox unavailable: " + inbox.error().message;
        complete(job, index, AttemptResult{AttemptResult::Kind::temporary, "4.2.0", reason, "", true},
                 delivery::Attempt{unix_now(), "local", "", "", reason, "", ""});
        co_return;
    }
    store::Delivery d;
    // RFC 5321 4.4: the final delivery adds Return-Path.
    d.content = fmt::format("Return-Path: <{}>\r\n", job->entry.reverse_path) + job->entry.content;
    d.summary = store::summarize(d.content);
    d.internal_date = unix_now();
    d.targets.push_back(store::DeliveryTarget{inbox->id, {}});
    auto commit = executor_.deliver(store_, std::move(d));
    auto delivered = co_await std::move(commit);
    AttemptResult result;
    if (delivered) {
        result = AttemptResult{AttemptResult::Kind::delivered, "2.0.0",
                               "250 2.0.0 delivered to the local mailbox", "", true};
    } else {
        result = AttemptResult{AttemptResult::Kind::temporary, "4.2.0",
                               "local delivery failed: " + delivered.error().message, "", true};
    }
    complete(job, index, result, delivery::Attempt{unix_now(), "local", "", "", result.reply, "", ""});
}

void DeliveryService::complete(const std::shared_ptr<EntryJob>& job, std::size_t index, AttemptResult result,
                               std::optional<delivery::Attempt> attempt) {
    if (job->results[index]) return;
    job->results[index] = std::move(result);
    job->attempts[index] = std::move(attempt);
    if (--job->open == 0) asio::co_spawn(context_, finish(job), asio::detached);
}

void DeliveryService::fail_work(Work& work, const AttemptResult& result, const delivery::Attempt* attempt) {
    auto job = work.job;
    for (std::size_t index : work.recipients) {
        complete(job, index, result, attempt ? std::optional<delivery::Attempt>(*attempt) : std::nullopt);
    }
}

// ---- destinations and connections ------------------------------------------------------------------------

void DeliveryService::add_work(const std::string& domain, Work work) {
    auto& destination = destinations_[domain];
    if (!destination) {
        destination = std::make_shared<Destination>();
        destination->domain = domain;
    }
    destination->pending.push_back(std::move(work));
    for (auto* timer : destination->idle) timer->cancel();
    start_connections();
}

void DeliveryService::start_connections() {
    auto cfg = config();
    for (auto& [domain, destination] : destinations_) {
        while (!stopping_ && !destination->pending.empty() &&
               total_connections_ < cfg->queue.max_connections &&
               destination->connections < cfg->queue.max_connections_per_host &&
               (destination->connections == 0 ||
                destination->pending.size() > extra_connection_backlog * destination->connections)) {
            ++destination->connections;
            ++total_connections_;
            asio::co_spawn(context_, serve_destination(destination), asio::detached);
        }
    }
}

awaitable<void> DeliveryService::serve_destination(std::shared_ptr<Destination> destination) {
    auto cfg = config();
    const std::string& domain = destination->domain;
    std::optional<delivery::StaticRoute> route = delivery::static_route(cfg->queue.routing, domain);
    // src/dns finds the hosts (the static route's, or MX / implicit MX) and their addresses; a Resolver is
    // used by one thread at a time, so each lookup has its own.
    auto lookup = executor_.run([resolver_config = resolver_config(*cfg), domain]() -> Result<dns::Route> {
        auto resolver = dns::Resolver::create(resolver_config);
        if (!resolver) return resolver.error();
        return (*resolver)->resolve_blocking(domain);
    });
    auto resolved = co_await std::move(lookup);
    if (!resolved) {
        const bool permanent = dns::is_permanent(resolved.error());
        AttemptResult result{permanent ? AttemptResult::Kind::permanent : AttemptResult::Kind::temporary,
                             std::string(dns::enhanced_status(resolved.error())), resolved.error().message,
                             "", true};
        delivery::Attempt attempt{unix_now(), domain, "", "", result.reply, "", ""};
        while (!destination->pending.empty()) {
            Work work = std::move(destination->pending.front());
            destination->pending.pop_front();
            fail_work(work, result, &attempt);
        }
    } else {
        if (!resolved->static_route && cfg->queue.dane) co_await apply_dane(*destination, *resolved);
        // RFC 8461 2: a domain with DNSSEC-validated TLSA records for its MX hosts is DANE's, not MTA-STS's.
        if (!resolved->static_route && cfg->mta_sts.enabled && !destination->dane.applies())
            co_await apply_mta_sts(*destination, *resolved);
        for (const auto& target : resolved->targets) {
            if (destination->pending.empty() || stopping_) break;
            const std::uint16_t port = resolved->static_route ? target.port : cfg->queue.mx_port;
            for (const auto& address : target.addresses) {
                // A connection that worked and ended (message limit, the peer closed an idle connection) is
                // followed by a fresh one to the same address while work remains.
                while (!destination->pending.empty() && !stopping_) {
                    if (!co_await try_address(*destination, target.host, address, port,
                                              route ? &*route : nullptr))
                        break;
                }
                if (destination->pending.empty() || stopping_) break;
            }
        }
    }

    // Nothing reachable: what is left waits for its next retry (RFC 5321 4.5.4.1).
    if (!stopping_) {
        std::string reason = destination->last_failure.empty()
                                 ? fmt::format("no mail host for {} reachable", domain)
                                 : destination->last_failure;
        if (destination->mta_sts_enforced && !reason.starts_with("MTA-STS"))
            reason = fmt::format("MTA-STS policy of {} (enforce): {}", domain, reason);
        AttemptResult result{AttemptResult::Kind::temporary, "4.4.1", reason, "", true};
        delivery::Attempt attempt{unix_now(), destination->last_host, "", "", reason, "", ""};
        while (!destination->pending.empty() && destination->connections == 1) {
            Work work = std::move(destination->pending.front());
            destination->pending.pop_front();
            fail_work(work, result, &attempt);
        }
    }
    --destination->connections;
    --total_connections_;
    if (destination->connections == 0 && destination->pending.empty()) destinations_.erase(domain);
    start_connections();
}

// RFC 8461 4: under an enforce policy only the MX hosts it lists are tried, each with STARTTLS and a
// certificate valid for its name (try_address); none listed leaves the mail deferred with that reason.
// testing and none are logged only. The policy lookup (DNS, HTTPS, cache) blocks: it runs on the executor.
awaitable<void> DeliveryService::apply_mta_sts(Destination& destination, dns::Route& route) {
    auto cfg = config();
    auto lookup = executor_.run([cfg, domain = destination.domain] {
        std::string note;
        auto policy = mta_sts_policy(*cfg, domain, note);
        return std::make_pair(policy, note);
    });
    auto [policy, note] = co_await std::move(lookup);
    spdlog::debug("delivery: {}: MTA-STS: {}", destination.domain, note);
    if (!policy || policy->mode == mailauth::StsMode::none) co_return;
    destination.mta_sts = policy;
    if (policy->mode != mailauth::StsMode::enforce) co_return;
    destination.mta_sts_enforced = true;
    std::vector<std::string> refused;
    std::erase_if(route.targets, [&](const dns::Target& target) {
        if (mailauth::sts_mx_matches(*policy, target.host)) return false;
        refused.push_back(target.host);
        return true;
    });
    if (route.targets.empty()) {
        destination.last_failure = fmt::format("MTA-STS policy of {} (enforce) lists none of its MX hosts ({})",
                                               destination.domain, fmt::join(refused, ", "));
    }
}

// RFC 7672 2.2: when the MX answer is DNSSEC-validated, each host's TLSA records (behind a validated address)
// decide its TLS: usable records make STARTTLS mandatory with a certificate matching one of them
// (try_address); a failed TLSA lookup takes the host out of this round, so that a forged answer cannot
// downgrade it. The lookups block: they run on the executor.
awaitable<void> DeliveryService::apply_dane(Destination& destination, dns::Route& route) {
    auto cfg = config();
    std::vector<std::string> hosts;
    for (const auto& target : route.targets) hosts.push_back(target.host);
    auto lookup = executor_.run([resolver_config = resolver_config(*cfg), domain = destination.domain, hosts,
                                 port = cfg->queue.mx_port]() -> mailauth::DanePolicy {
        auto resolver = dns::Resolver::create(resolver_config);
        if (!resolver) return {};
        mailauth::ResolverDns dns(**resolver);
        return mailauth::dane_policy(dns, domain, hosts, port);
    });
    destination.dane = co_await std::move(lookup);
    for (const auto& [host, decision] : destination.dane.hosts)
        spdlog::debug("delivery: {}: DANE {} for {}: {}", destination.domain,
                      mailauth::dane_level_name(decision.level), host, decision.note);
    std::vector<std::string> unreachable;
    std::erase_if(route.targets, [&](const dns::Target& target) {
        const auto* host = destination.dane.host(target.host);
        if (!host || host->level != mailauth::DaneLevel::unreachable) return false;
        unreachable.push_back(host->note);
        if (cfg->tlsrpt.record) {
            mailauth::TlsSessionResult r;
            r.time = unix_now();
            r.policy_domain = destination.domain;
            r.policy_type = mailauth::TlsPolicyType::tlsa;
            r.success = false;
            r.result_type = mailauth::TlsResultType::dnssec_invalid;
            r.receiving_mx_hostname = target.host;
            r.failure_reason_code = host->note;
            record_tls_result(std::move(r));
        }
        return true;
    });
    if (!unreachable.empty()) {
        destination.last_failure = fmt::format("DANE: {}", fmt::join(unreachable, "; "));
    }
}

void DeliveryService::record_tls_result(mailauth::TlsSessionResult result) {
    asio::co_spawn(context_, write_tls_result(std::move(result)), asio::detached);
}

awaitable<void> DeliveryService::write_tls_result(mailauth::TlsSessionResult result) {
    auto cfg = config();
    // One O_APPEND write, off the network thread.
    auto op = executor_.run([cfg, result] {
        return mailauth::append_tls_result(cfg->data_dir.string(), result, cfg->tlsrpt.max_day_octets);
    });
    auto written = co_await std::move(op);
    if (!written && written.error().code != Errc::limit_exceeded)
        spdlog::warn("delivery: TLS result for {} not recorded: {}", result.policy_domain,
                     written.error().message);
}

awaitable<bool> DeliveryService::wait_for_work(Destination& destination) {
    if (!destination.pending.empty()) co_return true;
    auto cfg = config();
    asio::steady_timer timer(context_);
    timer.expires_after(std::chrono::seconds(cfg->queue.idle_keep));
    destination.idle.push_back(&timer);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(net::use_awaitable, ec));
    destination.idle.remove(&timer);
    co_return !destination.pending.empty() && !stopping_;
}

// One TCP connection: returns true when the peer took us as far as a transaction (the address works).
awaitable<bool> DeliveryService::try_address(Destination& destination, const std::string& host,
                                             const std::string& address, std::uint16_t port,
                                             const delivery::StaticRoute* route) {
    auto cfg = config();
    const auto& q = cfg->queue;
    // What TLS this host gets: DANE's verdict for it first (RFC 7672; MTA-STS was not applied when DANE
    // was, RFC 8461 2), then a configured or MTA-STS requirement (a certificate valid for the host name),
    // else opportunistic TLS. Under MTA-STS testing the certificate is checked for TLS-RPT only.
    // A copy: another connection to this destination may look the policy up again while this one waits.
    std::optional<mailauth::DaneHost> dane;
    if (const auto* found = route ? nullptr : destination.dane.host(host)) dane = *found;
    const bool dane_verify = dane && dane->level == mailauth::DaneLevel::verify;
    const bool dane_encrypt = dane && dane->level == mailauth::DaneLevel::encrypt;
    const bool require_tls = (route && route->require_tls) ||
                             delivery::tls_required(q.routing, destination.domain) || destination.mta_sts_enforced;
    const bool mandatory_tls = require_tls || dane_verify || dane_encrypt;
    net::PeerCheck check;
    if (dane_verify) {
        for (const auto& r : dane->usable)
            check.dane.push_back(net::TlsaData{r.usage, r.selector, r.matching_type, r.data});
        check.also_names = {destination.domain};  // RFC 7672 3.2.2: the next-hop domain is a name too
        check.enforce = true;
    } else {
        check.pkix = require_tls || (!route && destination.mta_sts.has_value());
        check.enforce = require_tls;
    }
    mailauth::TlsSessionObservation observed;
    observed.dane = dane_verify;
    std::string local_address;
    const std::string peer = fmt::format("{}[{}]", host, address);
    const std::string where = address.find(':') != std::string::npos ? fmt::format("[{}]:{}", address, port)
                                                                     : fmt::format("{}:{}", address, port);
    destination.last_host = host;

    boost::system::error_code parse_error;
    auto ip = asio::ip::make_address(address, parse_error);
    if (parse_error) {
        destination.last_failure = fmt::format("{}: not an IP address", peer);
        co_return false;
    }
    net::ClientConnection connection(context_.get_executor());
    auto connected =
        co_await connection.connect(net::tcp::endpoint(ip, port), std::chrono::seconds(q.connect_timeout));
    if (!connected) {
        destination.last_failure =
            fmt::format("connection to {} port {} failed: {}", peer, port, connected.error().message);
        spdlog::info("delivery: {}", destination.last_failure);
        co_return false;
    }
    local_address = connection.local_address();
    const auto timeout = std::chrono::seconds(q.command_timeout);
    if (route && route->implicit_tls) {
        auto secured = co_await connection.start_tls(net::make_client_tls_context(require_tls), host,
                                                     require_tls, timeout);
        if (!secured) {
            destination.last_failure = fmt::format("{}: {}", peer, secured.error().message);
            co_return false;
        }
    }

    smtp::ClientConfig sc;
    sc.helo_name = cfg->hostname;
    sc.peer_name = peer;
    sc.limits.max_transcript = q.max_transcript;
    sc.tls = mandatory_tls ? smtp::TlsMode::required : smtp::TlsMode::opportunistic;
    sc.tls_active = connection.tls_active();
    if (route && !route->username.empty())
        sc.auth = smtp::ClientCredentials{route->username, route->password};
    smtp::ClientSession session(sc);

    // Shown by the tracker: messages that shared one TCP connection share this id (hostname.serial).
    const std::string connection_id = fmt::format("{}.{}", cfg->hostname, ++connection_serial_);
    std::map<std::string, Work> in_flight;
    std::size_t sent = 0;
    std::size_t serial = 0;
    bool ready = false;
    bool done = false;
    bool reused = false;  // the message in flight went out after the connection waited idle
    auto enqueue_next = [&]() -> bool {
        if (destination.pending.empty()) return false;
        Work work = std::move(destination.pending.front());
        destination.pending.pop_front();
        smtp::OutgoingMessage message;
        message.id = std::to_string(++serial);
        const auto& entry = work.job->entry;
        message.reverse_path = entry.reverse_path;
        message.data = entry.content;
        message.smtputf8 = entry.smtputf8;
        message.dsn_ret = entry.dsn_ret;
        message.dsn_envid = entry.dsn_envid;
        for (std::size_t index : work.recipients) {
            const auto& r = entry.recipients[index];
            message.recipients.push_back(smtp::OutgoingRecipient{r.address, r.notify, r.orcpt});
        }
        in_flight.emplace(message.id, std::move(work));
        session.enqueue(std::move(message));
        return true;
    };
    enqueue_next();
    // Once greeted, the session holds the next message too, until the connection has carried its share. (A
    // connection back from idle that the peer closed meanwhile costs nothing more: the messages handed over
    // were never answered, and they go on a fresh connection.)
    auto top_up = [&]() -> bool {
        bool added = false;
        while (session.ready() && !stopping_ && in_flight.size() < session_depth &&
               sent + in_flight.size() < q.max_messages_per_connection && enqueue_next())
            added = true;
        return added;
    };

    std::array<char, 16384> buffer;
    std::string output;
    while (!done) {
        while (auto event = session.poll_event()) {
            if (auto* result = std::get_if<smtp::MessageResult>(&*event)) {
                auto it = in_flight.find(result->id);
                if (it == in_flight.end()) continue;
                Work work = std::move(it->second);
                in_flight.erase(it);
                const bool all_deferred = std::ranges::all_of(
                    result->recipients, [](const auto& r) { return r.outcome == smtp::Outcome::deferred; });
                const bool connection_lost =
                    all_deferred &&
                    std::ranges::all_of(result->recipients, [](const auto& r) { return r.code == 0; });
                if ((!result->answered && all_deferred) || (reused && connection_lost)) {
                    // RFC 5321 5.1: a host that cannot be reached or greets with 4xx sends us to the next
                    // one. A message the connection ended before it was tried (the next one, handed over
                    // early), or a connection kept idle that the peer closed meanwhile: the message goes on
                    // a fresh one.
                    destination.last_failure =
                        result->recipients.empty() ? peer : result->recipients.front().text;
                    destination.pending.push_front(std::move(work));
                    reused = false;
                    continue;
                }
                reused = false;
                ready = true;
                ++sent;
                const std::int64_t now = unix_now();
                for (std::size_t k = 0; k < result->recipients.size() && k < work.recipients.size(); ++k) {
                    AttemptResult outcome = from_smtp(result->recipients[k], host);
                    delivery::Attempt attempt{now,
                                              host,
                                              where,
                                              connection.tls_description(),
                                              outcome.reply,
                                              connection_id,
                                              result->transcript};
                    complete(work.job, work.recipients[k], std::move(outcome), std::move(attempt));
                }
                spdlog::info("delivery: connection {} to {} carried message {} (entry {})", connection_id,
                             peer, sent, work.job->entry.id);
            } else if (std::holds_alternative<smtp::TlsHandshake>(*event)) {
                output = session.take_output();
                if (!co_await connection.write_all(output, timeout)) {
                    session.connection_failed(connection.last_error());
                    continue;
                }
                auto secured = co_await connection.start_tls(net::make_client_tls_context(check.pkix), host,
                                                             check, timeout);
                observed.tls_attempted = true;
                observed.tls_established = static_cast<bool>(secured);
                observed.verify_result = connection.verify_result();
                if (!secured) {
                    observed.reason = secured.error().message;
                    session.connection_failed(secured.error().message);
                    continue;
                }
                session.tls_started();
            } else if (std::holds_alternative<smtp::Idle>(*event)) {
                ready = true;
                if (stopping_ || sent >= q.max_messages_per_connection) {
                    session.quit();
                } else if (enqueue_next()) {
                } else {
                    // Persistent connection: say what is pending, then wait a moment for more for this host.
                    while (session.has_output()) {
                        output = session.take_output();
                        if (!co_await connection.write_all(output, timeout)) break;
                    }
                    if (co_await wait_for_work(destination) && enqueue_next()) {
                        reused = true;
                        continue;
                    }
                    session.quit();
                }
            } else if (std::holds_alternative<smtp::Disconnect>(*event)) {
                done = true;
            }
        }
        // Handing a message over may produce events at once (a recipient refused before sending): they are
        // polled before the next read.
        if (!done && top_up()) continue;
        bool write_failed = false;
        while (session.has_output()) {
            output = session.take_output();
            if (!co_await connection.write_all(output, timeout)) {
                write_failed = true;
                break;
            }
        }
        if (done || session.closed()) break;
        if (write_failed) {
            session.connection_failed(connection.last_error());
            continue;
        }
        // RFC 5321 4.5.3.2: the end of the data may take the peer longer (it checks and stores the message).
        const auto read_timeout = session.awaiting() == smtp::ClientSession::Awaiting::data_end
                                      ? std::chrono::seconds(q.data_timeout)
                                      : timeout;
        std::size_t n = co_await connection.read_some(buffer, read_timeout);
        if (n == 0) {
            session.connection_failed(connection.last_error().empty() ? "the server closed the connection"
                                                                      : connection.last_error());
            continue;
        }
        session.feed(std::string_view(buffer.data(), n));
    }
    connection.close();
    observed.greeted = observed.greeted || ready || session.extensions().esmtp;
    auto outcome = mailauth::classify_tls_session(observed);
    if ((dane_verify || dane_encrypt) && outcome && !outcome->success && !ready &&
        !destination.last_failure.starts_with("DANE")) {
        // The mail waits (RFC 7672 2.2): say which policy refused this host.
        destination.last_failure = fmt::format("DANE policy of {} ({} at {}): {}", host,
                                               dane_verify ? "usable TLSA records" : "unusable TLSA records",
                                               mailauth::tlsa_name(host, port), destination.last_failure);
    }
    if (outcome && !route && cfg->tlsrpt.record) {
        mailauth::TlsSessionResult r;
        r.time = unix_now();
        r.policy_domain = destination.domain;
        if (dane_verify || dane_encrypt) {
            r.policy_type = mailauth::TlsPolicyType::tlsa;
            r.policy_string = dane->records;
        } else if (destination.mta_sts) {
            r.policy_type = mailauth::TlsPolicyType::sts;
            const auto& policy = *destination.mta_sts;
            const std::string text = mailauth::sts_policy_text(policy.mode, policy.mx, policy.max_age);
            for (auto line : split(text, '\n')) {
                if (line.ends_with('\r')) line.remove_suffix(1);
                if (!trim(line).empty()) r.policy_string.emplace_back(trim(line));
            }
            r.mx_host = policy.mx;
        }
        r.success = outcome->success;
        r.result_type = outcome->result_type;
        r.failure_reason_code = outcome->failure_reason_code;
        r.sending_mta_ip = local_address;
        r.receiving_mx_hostname = host;
        r.receiving_ip = address;
        record_tls_result(std::move(r));
    }
    // Messages never answered (cannot happen with a well-behaved session) go back for another connection.
    for (auto& [id, work] : in_flight) destination.pending.push_front(std::move(work));
    if (sent > 0)
        spdlog::info("delivery: connection {} to {} closed after {} messages", connection_id, peer, sent);
    co_return ready;
}

// ---- outcomes and reports --------------------------------------------------------------------------------

awaitable<void> DeliveryService::finish(std::shared_ptr<EntryJob> job) {
    auto cfg = config();
    const std::int64_t now = unix_now();
    const auto& entry = job->entry;
    std::vector<AttemptResult> results;
    for (const auto& result : job->results) results.push_back(*result);
    delivery::Round round = delivery::settle(cfg->queue.retry, entry, results, now);
    delivery::EntryOutcome outcome;
    outcome.entry_id = entry.id;
    for (std::size_t i = 0; i < round.updates.size(); ++i) {
        auto& update = round.updates[i];
        if (results[i].tried) update.attempt = job->attempts[i];
        spdlog::info("delivery: entry {} to=<{}> {} {}", entry.id, entry.recipients[i].address,
                     delivery::state_name(update.state), results[i].reply);
        outcome.updates.push_back(std::move(update));
    }
    delivery::ReportContext context{cfg->hostname, now, random64, {}};
    for (const auto* list : {&round.failed, &round.delayed, &round.delivered}) {
        if (list->empty()) continue;
        auto report = delivery::make_report(entry, *list, context);
        if (!report) {
            spdlog::error("delivery: entry {}: no report: {}", entry.id, report.error().message);
        } else if (*report) {
            outcome.reports.push_back(std::move(**report));
        }
    }
    const bool reports = !outcome.reports.empty();
    const std::size_t updates = outcome.updates.size();
    // The outcomes and the reports they produce commit together (store::Store::record_attempts).
    auto record_op =
        recorder_.run([this, outcome = std::move(outcome)] { return queue_.record(node_, outcome); });
    auto recorded = co_await std::move(record_op);
    if (!recorded) {
        // The lease runs out and the entry is tried again: delivered at least once, never lost.
        spdlog::error("delivery: entry {}: cannot record the attempt: {}", entry.id,
                      recorded.error().message);
    } else if (*recorded < updates) {
        spdlog::warn("delivery: entry {}: {} of {} recipients were no longer leased to {} (deleted, or taken "
                     "after the lease ran out); their results and reports were not recorded",
                     entry.id, updates - *recorded, updates, node_);
    }
    for (const auto& r : entry.recipients) in_flight_.erase(r.id);
    if (reports) wake();
}

awaitable<void> DeliveryService::success_notices() {
    auto read = executor_.run([this] { return store_.pending_envelopes(50); });
    auto envelopes = co_await std::move(read);
    if (!envelopes) co_return;  // a backend without kept envelopes: nothing was asked
    auto cfg = config();
    bool queued = false;
    for (auto& [id, record] : *envelopes) {
        delivery::QueueEntry entry;
        entry.reverse_path = record.reverse_path;
        entry.dsn_ret = record.dsn_ret;
        entry.dsn_envid = record.dsn_envid;
        entry.queued_at = unix_now();
        for (const auto& r : record.recipients) {
            delivery::QueueRecipient recipient;
            recipient.address = r.address;
            recipient.notify = r.notify;
            recipient.orcpt = r.orcpt;
            entry.recipients.push_back(std::move(recipient));
        }
        std::vector<delivery::ReportedRecipient> delivered;
        for (const auto& r : entry.recipients) {
            delivered.push_back({&r, mail::DsnAction::delivered, "2.0.0",
                                 "250 2.0.0 delivered to the mailbox", "", std::nullopt});
        }
        auto report = delivery::make_report(entry, delivered,
                                            delivery::ReportContext{cfg->hostname, unix_now(), random64, {}});
        std::int64_t envelope_id = id;
        if (!report) {
            spdlog::error("delivery: success notice for envelope {}: {}", envelope_id, report.error().message);
        }
        Result<bool> done = false;
        if (report && *report) {
            // The notice is queued and the envelope removed in one transaction: sent once, never lost.
            store::Delivery notice = delivery::queue_delivery(**report);
            notice.answers_envelope = envelope_id;
            auto commit = executor_.deliver(store_, std::move(notice));
            auto committed = co_await std::move(commit);
            done = committed ? Result<bool>(true) : Result<bool>(committed.error());
        } else {
            auto op = executor_.run([this, envelope_id] { return store_.delete_envelope(envelope_id); });
            auto deleted = co_await std::move(op);
            done = deleted ? Result<bool>(false) : Result<bool>(deleted.error());
        }
        if (!done) {
            spdlog::error("delivery: success notice for envelope {}: {}", envelope_id, done.error().message);
            break;
        }
        queued = queued || *done;
    }
    if (queued) wake();
}

}  // namespace magpie::server
