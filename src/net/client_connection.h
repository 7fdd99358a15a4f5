// One outgoing TCP connection for the SMTP client (the outgoing queue): connect with a deadline, then plain
// TCP that can turn into TLS (STARTTLS, RFC 3207) or start as TLS (a smart host on 465), every read and write
// bounded by a deadline. Verification is off for opportunistic TLS (RFC 7435: encryption without
// authentication beats plaintext) and on, with the host name checked, where the configuration requires TLS.
#pragma once

#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"
#include "net/asio.h"

namespace magpie::net {

// Client contexts (TLS 1.2 or newer). `verify`: the system's CA store and peer verification.
std::shared_ptr<asio::ssl::context> make_client_tls_context(bool verify);

class ClientConnection {
public:
    explicit ClientConnection(asio::any_io_executor executor);
    ClientConnection(const ClientConnection&) = delete;
    ClientConnection& operator=(const ClientConnection&) = delete;

    // io_error with the system's words ("Connection refused", "timed out") on failure.
    awaitable<Result<void>> connect(const tcp::endpoint& endpoint, std::chrono::seconds timeout);
    // TLS client handshake on the connected socket. `server_name` goes in SNI and, with `verify`, must match
    // the certificate. io_error on failure (the connection is then unusable).
    awaitable<Result<void>> start_tls(std::shared_ptr<asio::ssl::context> context,
                                      const std::string& server_name, bool verify,
                                      std::chrono::seconds timeout);
    // At least one byte, or 0 when the peer closed, an error occurred or the deadline passed (timed_out()).
    awaitable<std::size_t> read_some(std::span<char> buffer, std::chrono::seconds timeout);
    awaitable<bool> write_all(std::string_view bytes, std::chrono::seconds timeout);

    bool timed_out() const { return timed_out_; }
    const std::string& last_error() const { return last_error_; }  // the failed read's or write's reason
    bool tls_active() const { return stream_ != nullptr; }
    std::string tls_description() const;  // "TLSv1.3 TLS_AES_256_GCM_SHA384"; empty without TLS
    // Closes now; wakes a pending read (it returns 0). Safe to call twice.
    void close();

private:
    void arm(std::chrono::seconds timeout);
    void disarm();

    tcp::socket socket_;
    std::shared_ptr<asio::ssl::context> context_;
    std::unique_ptr<asio::ssl::stream<tcp::socket&>> stream_;
    asio::steady_timer deadline_;
    std::uint64_t generation_ = 0;
    bool timed_out_ = false;
    std::string last_error_;
};

}  // namespace magpie::net
