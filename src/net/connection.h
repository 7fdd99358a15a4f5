// One accepted client connection: plain TCP that can turn into TLS (STARTTLS) or start as TLS (implicit
// TLS ports), with one deadline that bounds every read and write. Protocol loops own a Connection and pump
// bytes between it and their sans-IO session.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"
#include "net/asio.h"
#include "net/deadline.h"
#include "net/limiter.h"

struct ssl_st;

namespace magpie::net {

class Connection : public std::enable_shared_from_this<Connection> {
public:
    // `tls` may be null when no certificate is configured; start_tls then fails.
    Connection(tcp::socket socket, std::shared_ptr<asio::ssl::context> tls);
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Reads what is available (at least one byte). 0 means the peer closed, an error occurred or the deadline
    // passed; timed_out() tells the last apart.
    awaitable<std::size_t> read_some(std::span<char> buffer, std::chrono::milliseconds timeout);
    // The same into a buffer of this connection's, made only once bytes have arrived (the wait for them holds
    // none) and freed at the next call: returns a view of the bytes, valid until the next read. Empty as
    // read_some's 0. An idle connection then holds no read buffer, in its coroutine frame or here (issue 17).
    awaitable<std::string_view> read_available(std::chrono::milliseconds timeout);
    // Writes all of `bytes`; false when the peer is gone or the deadline passed.
    awaitable<bool> write_all(std::string_view bytes, std::chrono::milliseconds timeout);
    // Server side TLS handshake on this connection.
    awaitable<Result<void>> start_tls(std::chrono::milliseconds timeout);
    // Reads the PROXY protocol header (net/proxy_protocol.h) a load balancer sends first, exactly its octets
    // (what follows stays on the socket for the protocol), and names the peer by the client it carries
    // (peer_ip; unchanged for a v1 UNKNOWN or a v2 LOCAL). Before any other read and before start_tls.
    // invalid_argument for bytes that are no header; io_error when none came in time or the peer closed.
    awaitable<Result<void>> accept_proxy_header(std::chrono::milliseconds timeout);

    bool tls_active() const { return tls_active_; }
    bool tls_available() const { return tls_context_ != nullptr; }
    // Bytes read_available reads at most at once.
    static constexpr std::size_t read_chunk_octets = 16384;
    // Octets a connection reads and writes without suspending before it lets the thread's other connections
    // run: reads and writes that need no wait never return to the event loop on their own, so a client that
    // streams a large message (or reads a large FETCH) as fast as the socket goes would hold the thread.
    static constexpr std::size_t fair_share_octets = 256 * 1024;
    bool timed_out() const { return deadline_.timed_out(); }
    const std::string& peer_ip() const { return peer_ip_; }
    // TLS version and cipher for trace headers and logs, e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384".
    std::string tls_description() const;
    void close();

    // Asks the protocol loop to say goodbye and close (graceful shutdown): the pending read returns 0 and
    // shutdown_requested() turns true. Safe to call from any thread.
    void request_shutdown();
    bool shutdown_requested() const { return shutdown_requested_; }

    // Interrupts a pending read so the protocol loop can act on news (IMAP IDLE: a mailbox changed): the read
    // returns 0 and take_wake() is true once. A write in progress is never interrupted. Any thread.
    void wake();
    bool take_wake() { return wake_requested_.exchange(false); }

    // The limiter's place this connection holds, set by the listener for as long as the protocol loop runs
    // (null outside it), so the loop can move it (ConnectionLimiter::Slot::move_to).
    ConnectionLimiter::Slot* limiter_slot() const { return limiter_slot_; }
    void set_limiter_slot(ConnectionLimiter::Slot* slot) { limiter_slot_ = slot; }

private:
    struct SslFree {
        void operator()(ssl_st* ssl) const;
    };
    void interrupt_read();
    // Waits until the socket is readable (Asio re-arms the descriptor for the wait, EPOLL_CTL_MOD, so bytes
    // that came before it count). Reads call it only after finding the socket empty: bytes already there are
    // read without the wait, its deadline and its trip through the event loop. `interruptible`: a wake or
    // shutdown ends the wait (false).
    awaitable<bool> wait_readable(std::chrono::steady_clock::time_point until, bool interruptible);
    // Sends now the ACK the kernel holds back for bytes read (TCP_QUICKACK, tcp(7)). Called when a wait for
    // more input follows input that has had no answer: the peer's request is not complete yet, and a client
    // without TCP_NODELAY (Python's imaplib, which writes an APPEND's literal and its CRLF apart) holds its
    // next small write until that ACK comes, which Linux delays by up to 40 ms on an interactive connection.
    // Dovecot sets the option after each answer for the same reason.
    void acknowledge_input();
    // Sends `bytes` at once as far as the socket takes them, waiting for room only for the rest.
    awaitable<bool> send_all(std::string_view bytes, std::chrono::steady_clock::time_point until);
    // Sends the ciphertext OpenSSL has written into tls_output_ and frees it.
    awaitable<bool> flush_tls(std::chrono::steady_clock::time_point until);
    awaitable<std::size_t> tls_read_some(std::span<char> buffer, std::chrono::steady_clock::time_point until);
    awaitable<bool> tls_write_all(std::string_view bytes, std::chrono::steady_clock::time_point until);
    // Counts `octets` moved without a wait; past fair_share_octets, suspends once through the event loop.
    awaitable<void> share_thread(std::size_t octets);

    std::shared_ptr<asio::ssl::context> tls_context_;
    tcp::socket socket_;
    // Made by start_tls only. OpenSSL reads the socket itself (a socket BIO on the non-blocking descriptor) and
    // writes into tls_output_, which write_all sends and frees; with SSL_MODE_RELEASE_BUFFERS it frees its
    // record buffers between records. An idle TLS connection thus holds the SSL object and its keys only: no
    // Asio ssl::stream (two zero-filled 17 KiB buffers plus a 2 x 17 KiB BIO pair) and no record buffers.
    std::unique_ptr<ssl_st, SslFree> ssl_;
    std::string tls_output_;
    std::unique_ptr<char[]> read_buffer_;  // read_available's, from the arrival of bytes until the next read
    Deadline deadline_;  // after socket_, which it cancels
    std::string peer_ip_;
    bool tls_active_ = false;
    std::atomic<bool> shutdown_requested_ = false;
    std::atomic<bool> wake_requested_ = false;
    bool reading_ = false;  // a read is pending: only then may a wake or shutdown cancel socket operations
    bool unanswered_input_ = false;  // bytes read and nothing written since: acknowledge before a wait
    std::size_t octets_since_yield_ = 0;
    ConnectionLimiter::Slot* limiter_slot_ = nullptr;
};

}  // namespace magpie::net
