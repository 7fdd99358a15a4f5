#include "server/server.h"

#include <sys/stat.h>

#include <csignal>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "auth/password.h"
#include "net/privileges.h"
#include "net/tls.h"
#include "server/store_factory.h"
#include "store/shared_login_counters.h"

namespace magpie::server {

namespace {
auth::ThrottleLimits throttle_limits(const AuthConfig& c) {
    auth::ThrottleLimits limits;
    limits.max_user_failures = c.max_user_failures;
    limits.max_ip_failures = c.max_ip_failures;
    limits.window_seconds = c.failure_window;
    limits.first_lockout_seconds = c.first_lockout;
    limits.max_lockout_seconds = c.max_lockout;
    return limits;
}

constexpr std::string_view demo_domain = "example.test";
constexpr std::string_view demo_user = "demo@example.test";
constexpr std::string_view demo_password = "demo";
}  // namespace

Server::Server(Config config, std::filesystem::path config_file)
    : config_(std::make_shared<const Config>(std::move(config))), config_file_(std::move(config_file)) {}

Server::~Server() {
    if (delivery_) delivery_->stop();
    if (pool_) {
        pool_->stop();
        pool_->join();
    }
    // The store's committer calls back into the change hub and the services: stop it before they go.
    store_.reset();
}

std::shared_ptr<net::asio::ssl::context> Server::tls_context() {
    std::lock_guard lock(tls_mutex_);
    return tls_;
}

Result<void> Server::load_tls() {
    if (config_->tls_certificate.empty()) {
        std::lock_guard lock(tls_mutex_);
        tls_.reset();
        return {};
    }
    auto ctx = net::make_server_tls_context(config_->tls_certificate, config_->tls_private_key);
    if (!ctx) return ctx.error();
    std::lock_guard lock(tls_mutex_);
    tls_ = *ctx;
    return {};
}

Result<void> Server::load_dkim() {
    auto loaded = mailauth::DkimSigner::load(config_->data_dir);
    if (!loaded) return loaded.error();
    std::lock_guard lock(dkim_mutex_);
    dkim_ = std::make_shared<const mailauth::DkimSigner>(std::move(*loaded));
    return {};
}

std::shared_ptr<const mailauth::DkimSigner> Server::dkim_signer() {
    std::lock_guard lock(dkim_mutex_);
    return dkim_;
}

Result<void> Server::prepare_demo() {
    const auto& c = *config_;
    // The demo owns its certificate: one that is missing, damaged (a power cut before it was written used to
    // leave empty files) or not a pair is made again; a configured one is never touched (load_tls refuses
    // it with a message naming the file).
    bool generate =
        !std::filesystem::exists(c.tls_certificate) || !std::filesystem::exists(c.tls_private_key);
    if (!generate) {
        if (auto usable = net::make_server_tls_context(c.tls_certificate, c.tls_private_key); !usable) {
            spdlog::warn("demo: {}; generating a new certificate", usable.error().message);
            generate = true;
        }
    }
    if (generate) {
        MAGPIE_TRY(net::generate_self_signed(c.tls_certificate, c.tls_private_key, c.hostname));
        spdlog::info("demo: generated a self-signed certificate for {}", c.hostname);
    }
    auto domains = store_->list_domains();
    if (!domains) return domains.error();
    if (domains->empty()) {
        auto domain = store_->add_domain(demo_domain);
        if (!domain) return domain.error();
    }
    if (!store_->find_account(demo_user)) {
        auto secrets = auth::make_password_secrets(demo_password);
        if (!secrets) return secrets.error();
        auto account = store_->add_account(demo_user, secrets->hash, secrets->scram);
        if (!account) return account.error();
        spdlog::info("demo: created user {} with password '{}'", demo_user, demo_password);
    }
    return {};
}

Result<void> Server::bind(const std::vector<ListenAddress>& addresses, const std::string& service,
                          bool implicit_tls, const std::string& busy_reply) {
    for (const auto& address : addresses) {
        if (implicit_tls && !tls_context()) {
            return make_error(Errc::invalid_argument, fmt::format("{} on {}:{} needs [tls] certificate and private_key",
                                                                  service, address.address, address.port));
        }
        net::ListenerOptions options;
        options.service = service;
        options.address = address.address;
        options.port = address.port;
        options.implicit_tls = implicit_tls;
        options.busy_reply = busy_reply;
        options.proxy_trusted_networks = config_->proxy_trusted_networks;
        auto listener = net::Listener::bind(*pool_, options);
        if (!listener) return listener.error();
        listeners_.push_back(std::move(*listener));
    }
    return {};
}

Result<void> Server::start() {
    const auto& c = *config_;
    std::error_code ec;
    std::filesystem::create_directories(c.data_dir, ec);
    if (ec) return make_error(Errc::io_error, fmt::format("cannot create {}: {}", c.data_dir.string(), ec.message()));
    ::chmod(c.data_dir.c_str(), 0700);

    auto opened = open_store(c);
    if (!opened) return opened.error();
    store_ = std::move(*opened);
    // Four pools, so that no kind of work can starve another: unauthenticated clients (argon2id costs about
    // 90 ms of CPU per try) never delay mail or logged-in users, and IMAP or JMAP searches never delay RCPT
    // checks or each other.
    store_executor_ = std::make_unique<StoreExecutor>(c.store.threads);
    imap_write_executor_ = std::make_unique<StoreExecutor>(c.imap.write_threads);
    lookup_executor_ = std::make_unique<StoreExecutor>(c.store.lookup_threads);
    login_executor_ = std::make_unique<StoreExecutor>(c.auth.login_threads);
    http_executor_ = std::make_unique<StoreExecutor>(c.http.api_threads);
    http_write_executor_ = std::make_unique<StoreExecutor>(c.http.write_threads);

    // An upgrade from the interim queue file: its unfinished entries join the store's queue before anything
    // is delivered or accepted; a file that cannot be read stops magpied rather than lose its mail.
    auto imported = store::import_queue_db(*store_, c.data_dir);
    if (!imported) return make_error(imported.error().code, "queue.db: " + imported.error().message);
    if (*imported > 0)
        spdlog::info("store: imported {} unfinished entries from queue.db (kept as queue.db.imported)", *imported);

    if (c.demo) MAGPIE_TRY(prepare_demo());
    MAGPIE_TRY(load_tls());
    MAGPIE_TRY(load_dkim());
    // Not fatal: the account may be created later with `magpie user add` while magpied runs.
    if (!c.smtp.postmaster.empty() && !store_->find_account(c.smtp.postmaster)) {
        spdlog::warn(
            "[smtp] postmaster {} is no account (yet): postmaster@ a domain reaches its catch-all or "
            "oldest account until it exists",
            c.smtp.postmaster);
    }

    std::size_t threads = c.threads ? c.threads : std::max(1u, std::thread::hardware_concurrency());
    pool_ = std::make_unique<net::IoPool>(threads);
    smtp_ = std::make_unique<SmtpService>(config_, *store_, *lookup_executor_);
    {
        auto inbound = InboundAuthenticator::create();
        if (!inbound) return make_error(inbound.error().code, "[mailauth] public suffix list: " + inbound.error().message);
        inbound_ = std::move(*inbound);
        inbound_executor_ = std::make_unique<StoreExecutor>(c.mailauth.threads);
        smtp_->set_inbound_authentication(*inbound_, *inbound_executor_);
    }
    {
        smtp_->set_auto_replies([this] { return dkim_signer(); }, [this] {
            if (delivery_) delivery_->wake();
        });
    }
    smtp_limiter_ = std::make_shared<net::ConnectionLimiter>(c.smtp.max_connections, c.smtp.max_connections_per_ip);

    auth::HashLimiterOptions hashing;
    hashing.max_concurrent = c.auth.max_concurrent_hashes;
    hashing.nice = c.auth.hash_nice;
    hash_limiter_ = std::make_unique<auth::HashLimiter>(hashing);
    // On a store shared by several nodes the failures are counted in it: guesses spread over the nodes add up.
    throttle_ = std::make_unique<auth::LoginThrottle>(throttle_limits(c.auth), store::shared_login_counters(*store_));
    verified_cache_ = std::make_unique<auth::VerifiedCache>(
        auth::VerifiedCacheOptions{c.auth.verified_cache_seconds, c.auth.verified_cache_entries});
    imap_services_ = std::make_unique<imap::SessionServices>(imap::SessionServices{
        .store = *store_, .hash_limiter = *hash_limiter_, .throttle = *throttle_, .verified_cache = verified_cache_.get(),
        .search_rows = c.imap.search_cache_messages == 0
                           ? nullptr
                           : std::make_shared<imap::SearchRowCache>(c.imap.search_cache_messages)});
    imap_ = std::make_unique<ImapService>(config_, *imap_services_, *store_executor_, *imap_write_executor_,
                                          *login_executor_, change_hub_);
    imap_limiter_ = std::make_shared<net::ConnectionLimiter>(c.imap.max_connections, c.imap.max_connections_per_ip);
    http_ = std::make_unique<HttpService>(
        config_, HttpServices{.store = *store_, .hash_limiter = *hash_limiter_, .throttle = *throttle_,
                              .verified_cache = verified_cache_.get(), .executor = *http_executor_,
                              .write_executor = *http_write_executor_,
                              .login_executor = *login_executor_, .hub = change_hub_,
                              .dkim_signer = [this] { return dkim_signer(); },
                              .queue_changed = [this] {
                                  if (delivery_) delivery_->wake();
                              }});
    http_limiter_ = std::make_shared<net::ConnectionLimiter>(c.http.max_connections, c.http.max_connections_per_ip);
    http_limiter_->set_proxies(c.http.reverse_proxies);
    store_->set_change_listener([this](std::int64_t account_id, std::int64_t, std::uint64_t) {
        change_hub_.notify(account_id);
    });

    MAGPIE_TRY(bind(c.smtp.listen, "smtp", false,
                    fmt::format("421 4.7.0 {} Too many connections, try again later\r\n", c.hostname)));
    MAGPIE_TRY(bind(c.submission.listen, "submission", false,
                    fmt::format("421 4.7.0 {} Too many connections, try again later\r\n", c.hostname)));
    MAGPIE_TRY(bind(c.submission.listen_tls, "submissions", true,
                    fmt::format("421 4.7.0 {} Too many connections, try again later\r\n", c.hostname)));
    MAGPIE_TRY(bind(c.imap.listen, "imap", false, "* BYE Too many connections, try again later\r\n"));
    MAGPIE_TRY(bind(c.imap.listen_tls, "imaps", true, "* BYE Too many connections, try again later\r\n"));
    const std::string http_busy =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\nContent-Length: 74\r\n"
        "Connection: close\r\n\r\n{\"type\":\"about:blank\",\"status\":503,\"detail\":\"too many connections, retry\"}";
    MAGPIE_TRY(bind(c.http.listen, "http", false, http_busy));
    MAGPIE_TRY(bind(c.http.listen_tls, "https", true, http_busy));
    http_->set_mail_endpoints(mail_endpoints({"imaps", "imap"}), mail_endpoints({"submissions", "submission"}));
    MAGPIE_TRY(net::drop_privileges(c.user, c.data_dir));
    // Submission queues remote recipients: delivery is started before it listens.
    MAGPIE_TRY(start_delivery());
    submission_ = std::make_unique<SmtpService>(
        config_, *store_, *lookup_executor_,
        SubmissionServices{.hash_limiter = *hash_limiter_,
                           .throttle = *throttle_,
                           .verified_cache = verified_cache_.get(),
                           .login_executor = *login_executor_,
                           .dkim_signer = [this] { return dkim_signer(); },
                           .queue_changed = [this] {
                               if (delivery_) delivery_->wake();
                           }});
    submission_limiter_ = std::make_shared<net::ConnectionLimiter>(c.submission.max_connections,
                                                                   c.submission.max_connections_per_ip);

    for (auto& listener : listeners_) {
        auto tls = [this] { return tls_context(); };
        const std::string& service = listener->options().service;
        if (service == "http" || service == "https") {
            listener->start([this](std::shared_ptr<net::Connection> connection) { return http_->serve(connection); },
                            http_limiter_, tls, registry_);
        } else if (service == "smtp") {
            listener->start([this](std::shared_ptr<net::Connection> connection) { return smtp_->serve(connection); },
                            smtp_limiter_, tls, registry_);
        } else if (service == "submission" || service == "submissions") {
            listener->start(
                [this](std::shared_ptr<net::Connection> connection) { return submission_->serve(connection); },
                submission_limiter_, tls, registry_);
        } else {
            listener->start([this](std::shared_ptr<net::Connection> connection) { return imap_->serve(connection); },
                            imap_limiter_, tls, registry_);
        }
    }

    signals_ = std::make_unique<net::asio::signal_set>(pool_->first(), SIGTERM, SIGINT, SIGHUP);
    signals_->async_wait([this](boost::system::error_code e, int s) { handle_signal(e, s); });
    return {};
}

std::vector<http::autoconfig::Endpoint> Server::mail_endpoints(std::pair<const char*, const char*> services) const {
    // Implicit TLS first (RFC 8314 3), each with the port it is bound to (0 in the configuration picks one).
    std::vector<http::autoconfig::Endpoint> out;
    for (const auto* service : {services.first, services.second}) {
        const bool implicit = service == services.first;
        for (const auto& listener : listeners_) {
            if (listener->options().service != service) continue;
            out.push_back({listener->local_endpoint().port(), implicit ? http::autoconfig::Endpoint::Security::implicit_tls
                                                                       : http::autoconfig::Endpoint::Security::starttls});
        }
    }
    return out;
}

Result<void> Server::start_delivery() {
    const auto& c = *config_;
    queue_ = std::make_unique<delivery::StoreQueue>(*store_);
    if (!c.queue.enabled) return {};
    // A bad resolver address stops magpied at start rather than deferring every message.
    auto resolver = dns::Resolver::create(resolver_config(c));
    if (!resolver) return make_error(Errc::invalid_argument, "[queue] resolver: " + resolver.error().message);
    // Its own small pool: DNS queries block a thread for up to dns_timeout and must not delay RCPT checks.
    queue_executor_ = std::make_unique<StoreExecutor>(2);
    delivery_ = std::make_unique<DeliveryService>(config_, *store_, *queue_, *queue_executor_, pool_->first());
    delivery_->start(c.data_dir);
    return {};
}

void Server::handle_signal(boost::system::error_code ec, int signal) {
    if (ec) return;
    if (signal == SIGHUP) {
        reload();
    } else {
        spdlog::info("received {}, draining", signal == SIGTERM ? "SIGTERM" : "SIGINT");
        drain();
    }
    signals_->async_wait([this](boost::system::error_code e, int s) { handle_signal(e, s); });
}

void Server::reload() {
    if (config_file_.empty()) {
        spdlog::info("SIGHUP: no configuration file to reload (--demo)");
        return;
    }
    auto loaded = load_config(config_file_);
    if (!loaded) {
        spdlog::error("SIGHUP: keeping the running configuration: {}", loaded.error().message);
        return;
    }
    const auto& old = *config_;
    if (loaded->smtp.listen.size() != old.smtp.listen.size() || loaded->imap.listen.size() != old.imap.listen.size() ||
        loaded->imap.listen_tls.size() != old.imap.listen_tls.size() ||
        loaded->http.listen.size() != old.http.listen.size() ||
        loaded->http.listen_tls.size() != old.http.listen_tls.size() || loaded->data_dir != old.data_dir ||
        loaded->user != old.user || loaded->threads != old.threads || loaded->store.threads != old.store.threads) {
        spdlog::warn("SIGHUP: listen addresses, data_dir, user and thread counts change only on restart");
    }
    auto next = std::make_shared<Config>(*loaded);
    next->smtp.listen = old.smtp.listen;
    next->imap.listen = old.imap.listen;
    next->imap.listen_tls = old.imap.listen_tls;
    next->submission.listen = old.submission.listen;
    next->submission.listen_tls = old.submission.listen_tls;
    next->http.listen = old.http.listen;
    next->http.listen_tls = old.http.listen_tls;
    next->data_dir = old.data_dir;
    next->user = old.user;
    config_ = next;
    spdlog::set_level(spdlog::level::from_str(next->log_level));
    if (auto tls = load_tls(); !tls) spdlog::error("SIGHUP: TLS not reloaded: {}", tls.error().message);
    if (auto dkim = load_dkim(); !dkim) spdlog::error("SIGHUP: DKIM keys not reloaded: {}", dkim.error().message);
    smtp_limiter_->set_limits(next->smtp.max_connections, next->smtp.max_connections_per_ip);
    if (submission_limiter_)
        submission_limiter_->set_limits(next->submission.max_connections, next->submission.max_connections_per_ip);
    imap_limiter_->set_limits(next->imap.max_connections, next->imap.max_connections_per_ip);
    smtp_->reconfigure(next);
    if (submission_) submission_->reconfigure(next);
    if (delivery_) delivery_->reconfigure(next);
    imap_->reconfigure(next);
    http_limiter_->set_limits(next->http.max_connections, next->http.max_connections_per_ip);
    http_limiter_->set_proxies(next->http.reverse_proxies);
    http_->reconfigure(next);
    spdlog::info("SIGHUP: configuration reloaded from {}", config_file_.string());
}

void Server::drain() {
    if (draining_) return;
    draining_ = true;
    for (auto& listener : listeners_) listener->close();
    registry_->request_shutdown_all();
    if (delivery_) delivery_->stop();
    net::asio::co_spawn(pool_->first(), [this]() -> awaitable<void> {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(config_->shutdown_timeout);
        net::asio::steady_timer timer(pool_->first());
        // Outgoing transactions in flight finish too (idle connections QUIT at once); one cut short is only
        // tried again after restart, never lost.
        while ((registry_->size() != 0 || (delivery_ && delivery_->connections() != 0)) &&
               std::chrono::steady_clock::now() < deadline) {
            timer.expires_after(std::chrono::milliseconds(50));
            co_await timer.async_wait(net::use_awaitable);
        }
        if (registry_->size() != 0) spdlog::warn("shutdown: closing {} sessions still open", registry_->size());
        pool_->stop();
    }, net::asio::detached);
}

int Server::run(const sigset_t& blocked) {
    // Network threads start with the signals unblocked; the store's threads, started earlier, keep them
    // blocked, so the handlers run only where Asio expects them.
    pthread_sigmask(SIG_UNBLOCK, &blocked, nullptr);
    pool_->start();
    pool_->join();
    login_executor_->stop();
    http_executor_->stop();
    http_write_executor_->stop();
    lookup_executor_->stop();
    if (inbound_executor_) inbound_executor_->stop();
    if (queue_executor_) queue_executor_->stop();
    imap_write_executor_->stop();
    store_executor_->stop();
    spdlog::info("magpied stopped");
    return 0;
}

}  // namespace magpie::server
