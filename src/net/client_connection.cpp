#include "net/client_connection.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace magpie::net {

std::shared_ptr<asio::ssl::context> make_client_tls_context(bool verify) {
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
    SSL_CTX_set_options(ctx->native_handle(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (verify) {
        boost::system::error_code ignored;
        ctx->set_default_verify_paths(ignored);
        ctx->set_verify_mode(asio::ssl::verify_peer);
    } else {
        ctx->set_verify_mode(asio::ssl::verify_none);
    }
    return ctx;
}

ClientConnection::ClientConnection(asio::any_io_executor executor) : socket_(executor), deadline_(executor) {}

void ClientConnection::arm(std::chrono::seconds timeout) {
    timed_out_ = false;
    std::uint64_t generation = ++generation_;
    deadline_.expires_after(timeout);
    deadline_.async_wait([this, generation](boost::system::error_code ec) {
        if (ec || generation != generation_) return;
        timed_out_ = true;
        boost::system::error_code ignored;
        socket_.cancel(ignored);
    });
}

void ClientConnection::disarm() {
    ++generation_;
    deadline_.cancel();
}

awaitable<Result<void>> ClientConnection::connect(const tcp::endpoint& endpoint,
                                                  std::chrono::seconds timeout) {
    boost::system::error_code ec;
    arm(timeout);
    co_await socket_.async_connect(endpoint, asio::redirect_error(use_awaitable, ec));
    disarm();
    if (timed_out_) co_return make_error(Errc::io_error, "connect timed out");
    if (ec) co_return make_error(Errc::io_error, ec.message());
    socket_.set_option(tcp::no_delay(true), ec);
    co_return Result<void>{};
}

awaitable<Result<void>> ClientConnection::start_tls(std::shared_ptr<asio::ssl::context> context,
                                                    const std::string& server_name, bool verify,
                                                    std::chrono::seconds timeout) {
    context_ = std::move(context);
    stream_ = std::make_unique<asio::ssl::stream<tcp::socket&>>(socket_, *context_);
    SSL* ssl = stream_->native_handle();
    SSL_set_tlsext_host_name(ssl, server_name.c_str());
    if (verify) {
        // RFC 6125 host name check by OpenSSL, against the name we looked up (the MX host, or the route's).
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        SSL_set1_host(ssl, server_name.c_str());
    }
    boost::system::error_code ec;
    arm(timeout);
    co_await stream_->async_handshake(asio::ssl::stream_base::client,
                                      asio::redirect_error(use_awaitable, ec));
    disarm();
    if (timed_out_) co_return make_error(Errc::io_error, "TLS handshake timed out");
    if (ec) {
        std::string reason = "TLS handshake failed: " + ec.message();
        if (verify) {
            long result = SSL_get_verify_result(ssl);
            if (result != X509_V_OK)
                reason += std::string(" (") + X509_verify_cert_error_string(result) + ")";
        }
        co_return make_error(Errc::io_error, reason);
    }
    co_return Result<void>{};
}

awaitable<std::size_t> ClientConnection::read_some(std::span<char> buffer, std::chrono::seconds timeout) {
    boost::system::error_code ec;
    std::size_t n = 0;
    arm(timeout);
    if (stream_) {
        n = co_await stream_->async_read_some(asio::buffer(buffer.data(), buffer.size()),
                                              asio::redirect_error(use_awaitable, ec));
    } else {
        n = co_await socket_.async_read_some(asio::buffer(buffer.data(), buffer.size()),
                                             asio::redirect_error(use_awaitable, ec));
    }
    disarm();
    if (ec)
        last_error_ = timed_out_               ? "timed out waiting for the server"
                      : ec == asio::error::eof ? "the server closed the connection"
                                               : ec.message();
    co_return ec ? 0 : n;
}

awaitable<bool> ClientConnection::write_all(std::string_view bytes, std::chrono::seconds timeout) {
    if (bytes.empty()) co_return true;
    boost::system::error_code ec;
    arm(timeout);
    if (stream_) {
        co_await asio::async_write(*stream_, asio::buffer(bytes.data(), bytes.size()),
                                   asio::redirect_error(use_awaitable, ec));
    } else {
        co_await asio::async_write(socket_, asio::buffer(bytes.data(), bytes.size()),
                                   asio::redirect_error(use_awaitable, ec));
    }
    disarm();
    if (ec) last_error_ = timed_out_ ? "timed out writing to the server" : ec.message();
    co_return !ec;
}

std::string ClientConnection::tls_description() const {
    if (!stream_) return {};
    SSL* ssl = stream_->native_handle();
    return std::string(SSL_get_version(ssl)) + " " + SSL_get_cipher_name(ssl);
}

void ClientConnection::close() {
    disarm();
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
}

}  // namespace magpie::net
