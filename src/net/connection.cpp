#include "net/connection.h"

#include <openssl/ssl.h>

namespace magpie::net {

Connection::Connection(tcp::socket socket, std::shared_ptr<asio::ssl::context> tls)
    : tls_context_(std::move(tls)), socket_(std::move(socket)), deadline_(socket_.get_executor()) {
    boost::system::error_code ec;
    auto endpoint = socket_.remote_endpoint(ec);
    if (!ec) {
        auto address = endpoint.address();
        if (address.is_v6() && address.to_v6().is_v4_mapped()) {
            address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
        }
        peer_ip_ = address.to_string();
    }
    socket_.set_option(tcp::no_delay(true), ec);
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
        socket_.cancel(ignored);
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
        n = co_await tls_stream_->async_read_some(asio::buffer(buffer.data(), buffer.size()),
                                                  asio::redirect_error(use_awaitable, ec));
    } else {
        n = co_await socket_.async_read_some(asio::buffer(buffer.data(), buffer.size()),
                                             asio::redirect_error(use_awaitable, ec));
    }
    reading_ = false;
    disarm();
    co_return ec ? 0 : n;
}

awaitable<std::string_view> Connection::read_available(std::chrono::milliseconds timeout) {
    // The buffer is allocated without being written (new char[], not value-initialized): the pages a waiting
    // connection has not received anything into stay unbacked. A wait for readability with no buffer at all
    // (async_wait) is not speculative in Asio's edge-triggered epoll reactor: bytes that arrived before the wait
    // began would go unnoticed until more came, which stalled pipelining SMTP clients.
    if (!read_buffer_) read_buffer_.reset(new char[read_chunk_octets]);
    std::size_t n = co_await read_some(std::span<char>(read_buffer_.get(), read_chunk_octets), timeout);
    co_return std::string_view(read_buffer_.get(), n);
}

awaitable<bool> Connection::write_all(std::string_view bytes, std::chrono::milliseconds timeout) {
    if (bytes.empty()) co_return true;
    boost::system::error_code ec;
    arm(timeout);
    if (tls_active_) {
        co_await asio::async_write(*tls_stream_, asio::buffer(bytes.data(), bytes.size()),
                                   asio::redirect_error(use_awaitable, ec));
    } else {
        co_await asio::async_write(socket_, asio::buffer(bytes.data(), bytes.size()),
                                   asio::redirect_error(use_awaitable, ec));
    }
    disarm();
    co_return !ec;
}

awaitable<Result<void>> Connection::start_tls(std::chrono::milliseconds timeout) {
    if (!tls_context_) co_return make_error(Errc::unavailable, "TLS is not configured");
    if (tls_active_ || tls_stream_) co_return make_error(Errc::invalid_argument, "TLS is already active");
    tls_stream_ = std::make_unique<asio::ssl::stream<tcp::socket&>>(socket_, *tls_context_);
    boost::system::error_code ec;
    arm(timeout);
    co_await tls_stream_->async_handshake(asio::ssl::stream_base::server, asio::redirect_error(use_awaitable, ec));
    disarm();
    if (ec) co_return make_error(Errc::io_error, "TLS handshake: " + ec.message());
    tls_active_ = true;
    co_return Result<void>{};
}

std::string Connection::tls_description() const {
    if (!tls_active_) return {};
    SSL* ssl = tls_stream_->native_handle();
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
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
        // Nothing to interrupt, or the loop already saw the request (a read that started since then must go on):
        // the flags are checked before every read.
        if (!self->reading_ || !(self->wake_requested_ || self->shutdown_requested_)) return;
        boost::system::error_code ignored;
        self->socket_.cancel(ignored);
    });
}

void Connection::close() {
    disarm();
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
}

}  // namespace magpie::net
