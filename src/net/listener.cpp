#include "net/listener.h"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace magpie::net {

IoPool::IoPool(std::size_t threads) {
    threads = std::max<std::size_t>(threads, 1);
    for (std::size_t i = 0; i < threads; ++i) {
        contexts_.push_back(std::make_unique<asio::io_context>(1));
        guards_.push_back(asio::make_work_guard(*contexts_.back()));
    }
}

asio::io_context& IoPool::next() {
    std::lock_guard lock(mutex_);
    auto& ctx = *contexts_[next_];
    next_ = (next_ + 1) % contexts_.size();
    return ctx;
}

void IoPool::start() {
    for (auto& ctx : contexts_) {
        threads_.emplace_back([&ctx] { ctx->run(); });
    }
}

void IoPool::stop() {
    guards_.clear();
    for (auto& ctx : contexts_) ctx->stop();
}

void IoPool::join() {
    for (auto& t : threads_) {
        if (t.joinable()) t.join();
    }
    threads_.clear();
}

void ConnectionRegistry::add(const std::shared_ptr<Connection>& connection) {
    std::lock_guard lock(mutex_);
    connections_.push_back(connection);
}

void ConnectionRegistry::remove(const Connection* connection) {
    std::lock_guard lock(mutex_);
    connections_.remove_if([connection](const std::weak_ptr<Connection>& weak) {
        auto strong = weak.lock();
        return !strong || strong.get() == connection;
    });
}

void ConnectionRegistry::request_shutdown_all() {
    std::lock_guard lock(mutex_);
    for (auto& weak : connections_) {
        if (auto strong = weak.lock()) strong->request_shutdown();
    }
}

std::size_t ConnectionRegistry::size() const {
    std::lock_guard lock(mutex_);
    return connections_.size();
}

Listener::Listener(IoPool& pool, ListenerOptions options, tcp::acceptor acceptor)
    : pool_(pool), options_(std::move(options)), acceptor_(std::move(acceptor)) {}

Result<std::unique_ptr<Listener>> Listener::bind(IoPool& pool, ListenerOptions options) {
    boost::system::error_code ec;
    auto address = asio::ip::make_address(options.address, ec);
    if (ec) return make_error(Errc::invalid_argument, fmt::format("bad listen address '{}'", options.address));
    tcp::endpoint endpoint(address, options.port);
    tcp::acceptor acceptor(pool.first());
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec && address.is_v6()) acceptor.set_option(asio::ip::v6_only(address.to_v6().is_unspecified() ? false : true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    // What every accepted socket inherits (keepalive.h): replies go out at once (no Nagle delay behind a
    // client's unacknowledged data), and a connection that goes quiet behind a NAT stays known.
    if (!ec) acceptor.set_option(tcp::no_delay(true), ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        return make_error(Errc::io_error, fmt::format("cannot listen on {}:{} ({}): {}", options.address,
                                                      options.port, options.service, ec.message()));
    }
    if (auto keepalive = enable_keepalive(acceptor.native_handle(), options.keepalive); !keepalive) {
        return make_error(Errc::io_error, fmt::format("cannot listen on {}:{} ({}): {}", options.address,
                                                      options.port, options.service, keepalive.error().message));
    }
    return std::unique_ptr<Listener>(new Listener(pool, std::move(options), std::move(acceptor)));
}

void Listener::start(Handler handler, std::shared_ptr<ConnectionLimiter> limiter, TlsProvider tls,
                     std::shared_ptr<ConnectionRegistry> registry) {
    handler_ = std::move(handler);
    limiter_ = std::move(limiter);
    tls_ = std::move(tls);
    registry_ = std::move(registry);
    auto endpoint = local_endpoint();
    spdlog::info("listening on {} ({})",
                 endpoint.address().is_v6() ? fmt::format("[{}]:{}", endpoint.address().to_string(), endpoint.port())
                                            : fmt::format("{}:{}", endpoint.address().to_string(), endpoint.port()),
                 options_.service);
    asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached);
}

void Listener::close() {
    asio::post(acceptor_.get_executor(), [this] {
        boost::system::error_code ignored;
        acceptor_.close(ignored);
    });
}

tcp::endpoint Listener::local_endpoint() const {
    boost::system::error_code ec;
    return acceptor_.local_endpoint(ec);
}

awaitable<void> Listener::accept_loop() {
    for (;;) {
        auto& ctx = pool_.next();
        boost::system::error_code ec;
        tcp::socket socket = co_await acceptor_.async_accept(ctx, asio::redirect_error(use_awaitable, ec));
        if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
        if (ec) {
            // EMFILE and friends: back off briefly instead of spinning.
            spdlog::warn("{}: accept failed: {}", options_.service, ec.message());
            asio::steady_timer pause(acceptor_.get_executor(), std::chrono::milliseconds(100));
            co_await pause.async_wait(asio::redirect_error(use_awaitable, ec));
            continue;
        }
        auto executor = socket.get_executor();
        asio::co_spawn(executor, serve(std::move(socket)), asio::detached);
    }
}

awaitable<void> Listener::serve(tcp::socket socket) {
    auto tls = tls_ ? tls_() : nullptr;  // the current context: SIGHUP may have reloaded it
    auto connection = std::make_shared<Connection>(std::move(socket), tls);
    if (in_networks(options_.proxy_trusted_networks, connection->peer_ip())) {
        const auto balancer = connection->peer_ip();
        if (auto proxied = co_await connection->accept_proxy_header(options_.handshake_timeout); !proxied) {
            spdlog::info("{}: {}: {}", options_.service, balancer, proxied.error().message);
            connection->close();
            co_return;
        }
        spdlog::debug("{}: {} speaks for {} (PROXY protocol)", options_.service, balancer,
                      connection->peer_ip());
    }
    auto slot = limiter_->try_acquire(connection->peer_ip());
    if (!slot) {
        spdlog::info("{}: refusing {}: too many connections", options_.service, connection->peer_ip());
        if (!options_.implicit_tls) co_await connection->write_all(options_.busy_reply, std::chrono::seconds(5));
        connection->close();
        co_return;
    }
    if (options_.implicit_tls) {
        auto handshake = co_await connection->start_tls(options_.handshake_timeout);
        if (!handshake) {
            spdlog::info("{}: {}: {}", options_.service, connection->peer_ip(), handshake.error().message);
            connection->close();
            co_return;
        }
    }
    connection->set_limiter_slot(slot.get());
    registry_->add(connection);
    try {
        auto session = handler_(connection);  // not a temporary inside co_await: see g++ 12 note in server
        co_await std::move(session);
    } catch (const std::exception& e) {
        spdlog::error("{}: session with {} failed: {}", options_.service, connection->peer_ip(), e.what());
    }
    registry_->remove(connection.get());
    connection->set_limiter_slot(nullptr);  // the slot ends with this frame; the connection may outlive it
    connection->close();
}

}  // namespace magpie::net
