#include "net/connection.h"

#include <openssl/ssl.h>

namespace magpie::net {

std::shared_ptr<asio::ssl::context> placeholder_tls_context() {
    static auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    return ctx;
}

Connection::Connection(tcp::socket socket, std::shared_ptr<asio::ssl::context> tls)
    : tls_context_(std::move(tls)),
      stream_(std::move(socket), tls_context_ ? *tls_context_ : *placeholder_tls_context()),
      deadline_(stream_.get_executor()) {
    boost::system::error_code ec;
    auto endpoint = stream_.next_layer().remote_endpoint(ec);
    if (!ec) {
        auto address = endpoint.address();
        if (address.is_v6() && address.to_v6().is_v4_mapped()) {
            address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
        }
        peer_ip_ = address.to_string();
    }
    stream_.next_layer().set_option(tcp::no_delay(true), ec);
}

void Connection::arm(std::chrono::milliseconds timeout) {
    timed_out_ = false;
    std::uint64_t generation = ++deadline_generation_;
    deadline_.expires_after(timeout);
    deadline_.async_wait([this, generation](boost::system::error_code ec) {
        // A handler that completed just as the operation finished belongs to an older generation.
        if (ec || generation != deadline_generation_) return;
        timed_out_ = true;
        boost::system::error_code ignored;
        stream_.next_layer().cancel(ignored);
    });
}

void Connection::disarm() {
    ++deadline_generation_;
    deadline_.cancel();
}

awaitable<std::size_t> Connection::read_some(std::span<char> buffer, std::chrono::milliseconds timeout) {
    boost::system::error_code ec;
    std::size_t n = 0;
    if (shutdown_requested_ || wake_requested_) co_return 0;
    arm(timeout);
    reading_ = true;
    if (tls_active_) {
        n = co_await stream_.async_read_some(asio::buffer(buffer.data(), buffer.size()),
                                             asio::redirect_error(use_awaitable, ec));
    } else {
        n = co_await stream_.next_layer().async_read_some(asio::buffer(buffer.data(), buffer.size()),
                                                          asio::redirect_error(use_awaitable, ec));
    }
    reading_ = false;
    disarm();
    co_return ec ? 0 : n;
}

awaitable<bool> Connection::write_all(std::string_view bytes, std::chrono::milliseconds timeout) {
    if (bytes.empty()) co_return true;
    boost::system::error_code ec;
    arm(timeout);
    if (tls_active_) {
        co_await asio::async_write(stream_, asio::buffer(bytes.data(), bytes.size()),
                                   asio::redirect_error(use_awaitable, ec));
    } else {
        co_await asio::async_write(stream_.next_layer(), asio::buffer(bytes.data(), bytes.size()),
                                   asio::redirect_error(use_awaitable, ec));
    }
    disarm();
    co_return !ec;
}

awaitable<Result<void>> Connection::start_tls(std::chrono::milliseconds timeout) {
    if (!tls_context_) co_return make_error(Errc::unavailable, "TLS is not configured");
    if (tls_active_) co_return make_error(Errc::invalid_argument, "TLS is already active");
    boost::system::error_code ec;
    arm(timeout);
    co_await stream_.async_handshake(asio::ssl::stream_base::server, asio::redirect_error(use_awaitable, ec));
    disarm();
    if (ec) co_return make_error(Errc::io_error, "TLS handshake: " + ec.message());
    tls_active_ = true;
    co_return Result<void>{};
}

std::string Connection::tls_description() const {
    if (!tls_active_) return {};
    SSL* ssl = const_cast<asio::ssl::stream<tcp::socket>&>(stream_).native_handle();
    return std::string(SSL_get_version(ssl)) + " " + SSL_get_cipher_name(ssl);
}

void Connection::request_shutdown() {
    shutdown_requested_ = true;
    interrupt_read();
}

void Connection::wake() {
    wake_requested_ = true;
    interrupt_read();
}

void Connection::interrupt_read() {
    // Runs on the connection's own thread, so reading_ is read where it is written.
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
        // Nothing to interrupt, or the loop already saw the request (a read that started since then must go on):
        // the flags are checked before every read.
        if (!self->reading_ || !(self->wake_requested_ || self->shutdown_requested_)) return;
        boost::system::error_code ignored;
        self->stream_.next_layer().cancel(ignored);
    });
}

void Connection::close() {
    disarm();
    boost::system::error_code ignored;
    stream_.next_layer().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.next_layer().close(ignored);
}

}  // namespace magpie::net
