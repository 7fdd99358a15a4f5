// Listening sockets and the threads that serve them. IoPool is "one io_context per core": each accepted
// connection lives on one context for its whole life, so a connection's handlers never run concurrently.
// A Listener accepts, applies the connection limits, does the implicit TLS handshake where configured, and
// hands the connection to its service's coroutine.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "net/asio.h"
#include "net/connection.h"
#include "net/keepalive.h"
#include "net/limiter.h"
#include "net/proxy_protocol.h"

namespace magpie::net {

class IoPool {
public:
    explicit IoPool(std::size_t threads);
    asio::io_context& next();                // round robin
    asio::io_context& first() { return *contexts_.front(); }
    void start();                            // one thread per context
    void stop();
    void join();

private:
    std::vector<std::unique_ptr<asio::io_context>> contexts_;
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
    std::vector<std::thread> threads_;
    std::size_t next_ = 0;
    std::mutex mutex_;
};

// Every live connection, so that a graceful shutdown can ask each one to finish.
class ConnectionRegistry {
public:
    void add(const std::shared_ptr<Connection>& connection);
    void remove(const Connection* connection);
    void request_shutdown_all();
    std::size_t size() const;

private:
    mutable std::mutex mutex_;
    std::list<std::weak_ptr<Connection>> connections_;
};

struct ListenerOptions {
    std::string service;       // "smtp", "imap", ...: for logs
    std::string address;       // "127.0.0.1", "::", "0.0.0.0"
    std::uint16_t port = 0;    // 0 picks a free port (tests)
    bool implicit_tls = false;
    std::string busy_reply;    // written to a connection refused by the limiter
    std::chrono::seconds handshake_timeout{30};
    KeepAlive keepalive;  // set on every accepted socket
    // Load balancers: a connection from one of these must begin with a PROXY protocol header, whose client
    // address then stands for the connection's (limits, logs, SPF); read within handshake_timeout.
    std::vector<IpNetwork> proxy_trusted_networks;
};

class Listener {
public:
    using Handler = std::function<awaitable<void>(std::shared_ptr<Connection>)>;
    using TlsProvider = std::function<std::shared_ptr<asio::ssl::context>()>;

    static Result<std::unique_ptr<Listener>> bind(IoPool& pool, ListenerOptions options);

    // Starts the accept loop on the pool's first context.
    void start(Handler handler, std::shared_ptr<ConnectionLimiter> limiter, TlsProvider tls,
               std::shared_ptr<ConnectionRegistry> registry);
    void close();
    tcp::endpoint local_endpoint() const;
    const ListenerOptions& options() const { return options_; }

private:
    Listener(IoPool& pool, ListenerOptions options, tcp::acceptor acceptor);
    awaitable<void> accept_loop();
    awaitable<void> serve(tcp::socket socket);

    IoPool& pool_;
    ListenerOptions options_;
    tcp::acceptor acceptor_;
    Handler handler_;
    std::shared_ptr<ConnectionLimiter> limiter_;
    TlsProvider tls_;
    std::shared_ptr<ConnectionRegistry> registry_;
};

}  // namespace magpie::net
