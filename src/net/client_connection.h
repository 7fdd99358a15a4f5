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
#include <vector>

#include "base/result.h"
#include "net/asio.h"
#include "net/deadline.h"

namespace magpie::net {

// Client contexts (TLS 1.2 or newer), DANE-capable (SSL_CTX_dane_enable). `verify`: the system's CA store
// and peer verification.
std::shared_ptr<asio::ssl::context> make_client_tls_context(bool verify);

// One DANE TLSA record (RFC 6698 2.1) for OpenSSL's DANE verification: usage, selector, matching type, data.
struct TlsaData {
    std::uint8_t usage = 0;
    std::uint8_t selector = 0;
    std::uint8_t matching_type = 0;
    std::vector<unsigned char> data;
};

// What the handshake checks of the peer's certificate.
//   pkix:  the context's CA store and the host name (RFC 6125 with `server_name`).
//   dane:  non-empty: OpenSSL's DANE verification instead (RFC 7672 3: DANE-EE(3) without a name check,
//          DANE-TA(2) with `server_name` and `also_names` as reference identifiers).
//   enforce: a failed check fails the handshake; otherwise it is only reported by verify_result() (MTA-STS
//          testing mode, TLS-RPT).
struct PeerCheck {
    bool pkix = false;
    std::vector<TlsaData> dane;
    std::vector<std::string> also_names;
    bool enforce = false;
};

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
    // The same with the check spelled out (the above is PeerCheck{verify, {}, {}, verify}). io_error when the
    // handshake fails or the check fails under `enforce`, or when OpenSSL refuses every TLSA record.
    awaitable<Result<void>> start_tls(std::shared_ptr<asio::ssl::context> context,
                                      const std::string& server_name, const PeerCheck& check,
                                      std::chrono::seconds timeout);
    // At least one byte, or 0 when the peer closed, an error occurred or the deadline passed (timed_out()).
    awaitable<std::size_t> read_some(std::span<char> buffer, std::chrono::seconds timeout);
    awaitable<bool> write_all(std::string_view bytes, std::chrono::seconds timeout);

    bool timed_out() const { return deadline_.timed_out(); }
    const std::string& last_error() const { return last_error_; }  // the failed read's or write's reason
    bool tls_active() const { return stream_ != nullptr; }
    std::string tls_description() const;  // "TLSv1.3 TLS_AES_256_GCM_SHA384"; empty without TLS
    // After start_tls: X509_V_OK or the X509_V_ERR_* of the certificate check; -1 when nothing was checked
    // or no handshake got as far as a certificate.
    long verify_result() const { return verify_result_; }
    // The local address of the connected socket ("192.0.2.25"), for TLS-RPT's sending-mta-ip; empty when
    // not connected.
    std::string local_address() const;
    // Closes now; wakes a pending read (it returns 0). Safe to call twice.
    void close();

private:

    tcp::socket socket_;
    std::shared_ptr<asio::ssl::context> context_;
    std::unique_ptr<asio::ssl::stream<tcp::socket&>> stream_;
    Deadline deadline_;  // after socket_, which it cancels
    long verify_result_ = -1;
    std::string last_error_;
};

}  // namespace magpie::net
