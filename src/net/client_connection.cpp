#include "net/client_connection.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace magpie::net {

std::shared_ptr<asio::ssl::context> make_client_tls_context(bool verify) {
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
    SSL_CTX_set_options(ctx->native_handle(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    // Enables DANE for the SSL objects that ask for it (SSL_dane_enable); nothing changes for the others.
    SSL_CTX_dane_enable(ctx->native_handle());
    if (verify) {
        boost::system::error_code ignored;
        ctx->set_default_verify_paths(ignored);
        ctx->set_verify_mode(asio::ssl::verify_peer);
    } else {
        ctx->set_verify_mode(asio::ssl::verify_none);
    }
    return ctx;
}

ClientConnection::ClientConnection(asio::any_io_executor executor)
    : socket_(executor), deadline_(executor, socket_) {}

awaitable<Result<void>> ClientConnection::connect(const tcp::endpoint& endpoint,
                                                  std::chrono::seconds timeout) {
    boost::system::error_code ec;
    deadline_.arm(timeout);
    co_await socket_.async_connect(endpoint, asio::redirect_error(use_awaitable, ec));
    deadline_.disarm();
    if (deadline_.timed_out()) co_return make_error(Errc::io_error, "connect timed out");
    if (ec) co_return make_error(Errc::io_error, ec.message());
    socket_.set_option(tcp::no_delay(true), ec);
    co_return Result<void>{};
}

awaitable<Result<void>> ClientConnection::start_tls(std::shared_ptr<asio::ssl::context> context,
                                                    const std::string& server_name, bool verify,
                                                    std::chrono::seconds timeout) {
    co_return co_await start_tls(std::move(context), server_name, PeerCheck{verify, {}, {}, verify}, timeout);
}

awaitable<Result<void>> ClientConnection::start_tls(std::shared_ptr<asio::ssl::context> context,
                                                    const std::string& server_name, const PeerCheck& check,
                                                    std::chrono::seconds timeout) {
    context_ = std::move(context);
    stream_ = std::make_unique<asio::ssl::stream<tcp::socket&>>(socket_, *context_);
    verify_result_ = -1;
    SSL* ssl = stream_->native_handle();
    SSL_set_tlsext_host_name(ssl, server_name.c_str());
    const bool checked = check.pkix || !check.dane.empty();
    if (!check.dane.empty()) {
        // RFC 7672 3.2: the MX host name is the base domain (SNI, DANE-TA name checks); DANE-EE(3) matches
        // the key alone (3.1.1), so its name is not checked. PKIX usages never get here (3.1.3).
        if (SSL_dane_enable(ssl, server_name.c_str()) <= 0)
            co_return make_error(Errc::io_error, "DANE cannot be enabled for " + server_name);
        SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
        for (const auto& name : check.also_names) SSL_add1_host(ssl, name.c_str());
        int added = 0;
        for (const auto& r : check.dane) {
            // OpenSSL refuses a record it cannot use (an unknown digest, malformed full data): it is skipped.
            int ok = SSL_dane_tlsa_add(ssl, r.usage, r.selector, r.matching_type, r.data.data(), r.data.size());
            if (ok > 0) ++added;
        }
        if (added == 0)
            co_return make_error(Errc::io_error,
                                 "OpenSSL accepted none of the TLSA records of " + server_name);
    } else if (check.pkix) {
        // RFC 6125 host name check by OpenSSL, against the name we looked up (the MX host, or the route's).
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        SSL_set1_host(ssl, server_name.c_str());
    }
    // Without `enforce` the chain is still checked (SSL_VERIFY_NONE only keeps a failure from ending the
    // handshake), so verify_result() reports it. Without a check of ours the context's own mode stands: a
    // caller that verifies in its context (the CLI checks an IP address there) keeps verifying.
    if (checked) SSL_set_verify(ssl, check.enforce ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
    boost::system::error_code ec;
    deadline_.arm(timeout);
    co_await stream_->async_handshake(asio::ssl::stream_base::client,
                                      asio::redirect_error(use_awaitable, ec));
    deadline_.disarm();
    if (checked) {
        long result = SSL_get_verify_result(ssl);
        // A handshake that never saw a certificate leaves X509_V_OK behind: that is no check.
        if (result != X509_V_OK || !ec) verify_result_ = result;
    }
    if (deadline_.timed_out()) co_return make_error(Errc::io_error, "TLS handshake timed out");
    if (ec) {
        std::string reason = "TLS handshake failed: " + ec.message();
        if (verify_result_ > 0)
            reason += std::string(" (") + X509_verify_cert_error_string(verify_result_) + ")";
        co_return make_error(Errc::io_error, reason);
    }
    co_return Result<void>{};
}

awaitable<std::size_t> ClientConnection::read_some(std::span<char> buffer, std::chrono::seconds timeout) {
    boost::system::error_code ec;
    std::size_t n = 0;
    deadline_.arm(timeout);
    if (stream_) {
        n = co_await stream_->async_read_some(asio::buffer(buffer.data(), buffer.size()),
                                              asio::redirect_error(use_awaitable, ec));
    } else {
        n = co_await socket_.async_read_some(asio::buffer(buffer.data(), buffer.size()),
                                             asio::redirect_error(use_awaitable, ec));
    }
    deadline_.disarm();
    if (ec)
        last_error_ = deadline_.timed_out() ? "timed out waiting for the server"
                      : ec == asio::error::eof ? "the server closed the connection"
                                               : ec.message();
    co_return ec ? 0 : n;
}

awaitable<bool> ClientConnection::write_all(std::string_view bytes, std::chrono::seconds timeout) {
    if (bytes.empty()) co_return true;
    boost::system::error_code ec;
    deadline_.arm(timeout);
    if (stream_) {
        co_await asio::async_write(*stream_, asio::buffer(bytes.data(), bytes.size()),
                                   asio::redirect_error(use_awaitable, ec));
    } else {
        co_await asio::async_write(socket_, asio::buffer(bytes.data(), bytes.size()),
                                   asio::redirect_error(use_awaitable, ec));
    }
    deadline_.disarm();
    if (ec) last_error_ = deadline_.timed_out() ? "timed out writing to the server" : ec.message();
    co_return !ec;
}

std::string ClientConnection::tls_description() const {
    if (!stream_) return {};
    SSL* ssl = stream_->native_handle();
    return std::string(SSL_get_version(ssl)) + " " + SSL_get_cipher_name(ssl);
}

std::string ClientConnection::local_address() const {
    boost::system::error_code ec;
    auto endpoint = socket_.local_endpoint(ec);
    return ec ? std::string() : endpoint.address().to_string();
}

void ClientConnection::close() {
    deadline_.disarm();
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
}

}  // namespace magpie::net
