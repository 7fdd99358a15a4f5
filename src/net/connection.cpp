#include "net/connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "net/proxy_protocol.h"

namespace magpie::net {

Connection::Connection(tcp::socket socket, std::shared_ptr<asio::ssl::context> tls)
    : tls_context_(std::move(tls)), socket_(std::move(socket)), deadline_(socket_.get_executor(), socket_) {
    boost::system::error_code ec;
    auto endpoint = socket_.remote_endpoint(ec);
    if (!ec) {
        auto address = endpoint.address();
        if (address.is_v6() && address.to_v6().is_v4_mapped()) {
            address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
        }
        peer_ip_ = address.to_string();
    }
    // Reads and writes are tried at once and wait only when the socket has nothing (or no room): OpenSSL
    // reads the descriptor itself too, and neither may ever block the thread. A socket that refuses is closed,
    // so that every operation on it fails.
    socket_.non_blocking(true, ec);
    if (ec) socket_.close(ec);
}

namespace {

using Clock = std::chrono::steady_clock;

// Rounded up: a timer armed with it never expires before `until`, so a caller that compares its own deadline
// with the clock after a timeout finds it passed (truncating let an SMTP transaction limit read as the idle
// timeout, up to a millisecond early).
std::chrono::milliseconds left(Clock::time_point until) {
    return std::max(std::chrono::milliseconds(0), std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now()));
}

// Ciphertext OpenSSL writes goes into the std::string the BIO points at; the connection sends it when it can.
// The BIO always accepts, so SSL_write never wants to write more later.
int output_write(BIO* bio, const char* data, int size) {
    static_cast<std::string*>(BIO_get_data(bio))->append(data, static_cast<std::size_t>(size));
    return size;
}

long output_ctrl(BIO*, int command, long, void*) {
    return command == BIO_CTRL_FLUSH ? 1 : 0;
}

int output_create(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
}

const BIO_METHOD* output_method() {
    static BIO_METHOD* method = [] {
        BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "magpie tls output");
        BIO_meth_set_write(m, output_write);
        BIO_meth_set_ctrl(m, output_ctrl);
        BIO_meth_set_create(m, output_create);
        return m;
    }();
    return method;
}

// A TLS record carries at most 16 KiB of plaintext (RFC 8446 5.1): SSL_write is fed that much at a time, and
// the ciphertext is sent once this much has gathered.
constexpr std::size_t tls_write_piece = 16384;
constexpr std::size_t tls_output_flush_octets = 65536;

// read_available reads into this thread's scratch first and keeps a copy of what came. Looked up by a call
// each time: a coroutine must not keep a thread-local's address across a suspension.
[[gnu::noinline]] char* read_scratch() {
    thread_local std::unique_ptr<char[]> scratch(new char[Connection::read_chunk_octets]);
    return scratch.get();
}

}  // namespace

void Connection::SslFree::operator()(ssl_st* ssl) const {
    SSL_free(ssl);
}

awaitable<bool> Connection::wait_readable(Clock::time_point until, bool interruptible) {
    if (interruptible && (shutdown_requested_ || wake_requested_)) co_return false;
    if (unanswered_input_) acknowledge_input();
    boost::system::error_code ec;
    deadline_.arm(left(until));
    reading_ = interruptible;
    octets_since_yield_ = 0;  // a wait goes through the event loop
    co_await socket_.async_wait(tcp::socket::wait_read, asio::redirect_error(use_awaitable, ec));
    reading_ = false;
    deadline_.disarm();
    co_return !ec;
}

void Connection::acknowledge_input() {
    unanswered_input_ = false;
#ifdef TCP_QUICKACK
    // Not a lasting mode: the kernel goes back to delaying ACKs as the exchange goes on, so this is set again
    // before each such wait. A failure (not TCP) costs nothing but the ACK's delay.
    int on = 1;
    (void)::setsockopt(socket_.native_handle(), IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on);
#endif
}

awaitable<bool> Connection::send_all(std::string_view bytes, Clock::time_point until) {
    // Most writes fit the socket's send buffer: sent here at once, with no deadline to arm and no trip
    // through the event loop; only the rest of a write the socket could not take waits.
    boost::system::error_code ec;
    std::size_t sent = socket_.send(asio::buffer(bytes.data(), bytes.size()), 0, ec);
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) co_return false;
    bytes.remove_prefix(ec ? 0 : sent);
    if (bytes.empty()) {
        co_await share_thread(sent);
        co_return true;
    }
    octets_since_yield_ = 0;
    deadline_.arm(left(until));
    co_await asio::async_write(socket_, asio::buffer(bytes.data(), bytes.size()),
                               asio::redirect_error(use_awaitable, ec));
    deadline_.disarm();
    co_return !ec;
}

awaitable<void> Connection::share_thread(std::size_t octets) {
    octets_since_yield_ += octets;
    if (octets_since_yield_ < fair_share_octets) co_return;
    octets_since_yield_ = 0;
    auto yielded = asio::post(socket_.get_executor(), use_awaitable);  // built first: see g++ 12 in server
    co_await std::move(yielded);
}

awaitable<std::size_t> Connection::read_some(std::span<char> buffer, std::chrono::milliseconds timeout) {
    boost::system::error_code ec;
    std::size_t n = 0;
    if (shutdown_requested_ || wake_requested_) co_return 0;
    if (tls_active_) co_return co_await tls_read_some(buffer, Clock::now() + timeout);
    if (unanswered_input_) acknowledge_input();
    deadline_.arm(timeout);
    reading_ = true;
    n = co_await socket_.async_read_some(asio::buffer(buffer.data(), buffer.size()),
                                         asio::redirect_error(use_awaitable, ec));
    reading_ = false;
    deadline_.disarm();
    if (ec) co_return 0;
    unanswered_input_ = true;
    co_return n;
}

awaitable<std::string_view> Connection::read_available(std::chrono::milliseconds timeout) {
    // The buffer exists only from the arrival of bytes until the next read: a connection waiting for its
    // client holds none. Bytes OpenSSL already holds (the rest of a record) need no wait.
    read_buffer_.reset();
    const auto until = Clock::now() + timeout;
    deadline_.clear_timed_out();
    auto keep = [this](std::size_t n) {
        read_buffer_.reset(new char[n]);
        std::memcpy(read_buffer_.get(), read_scratch(), n);
        return std::string_view(read_buffer_.get(), n);
    };
    if (tls_active_) {
        // SSL_read into the scratch, which is copied before anything can suspend (another connection of this
        // thread reads into it meanwhile); it waits only when OpenSSL found the socket empty (WANT_READ).
        for (;;) {
            if (shutdown_requested_ || wake_requested_) co_return std::string_view();
            std::size_t got = 0;
            ERR_clear_error();
            int r = SSL_read_ex(ssl_.get(), read_scratch(), read_chunk_octets, &got);
            int error = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_.get(), r);
            std::string_view bytes = r == 1 ? keep(got) : std::string_view();
            if (!co_await flush_tls(until)) co_return std::string_view();  // reading may have written
            if (r == 1) {
                unanswered_input_ = true;
                co_await share_thread(got);
                co_return bytes;
            }
            if (error != SSL_ERROR_WANT_READ) co_return std::string_view();
            if (!co_await wait_readable(until, true)) co_return std::string_view();
        }
    }
    // Plain TCP: read at once into this thread's scratch and keep a copy the size of what came; wait only when
    // nothing had (a client's next command is often here already, and a wait costs a deadline and a trip
    // through the event loop).
    for (;;) {
        if (shutdown_requested_ || wake_requested_) co_return std::string_view();
        boost::system::error_code ec;
        std::size_t n = socket_.receive(asio::buffer(read_scratch(), read_chunk_octets), 0, ec);
        if (!ec) {
            std::string_view bytes = keep(n);
            unanswered_input_ = true;
            co_await share_thread(n);
            co_return bytes;
        }
        if (ec != asio::error::would_block && ec != asio::error::try_again) co_return std::string_view();  // closed
        // Nothing to read just now: wait for bytes.
        if (!co_await wait_readable(until, true)) co_return std::string_view();
    }
}

awaitable<bool> Connection::write_all(std::string_view bytes, std::chrono::milliseconds timeout) {
    if (bytes.empty()) co_return true;
    unanswered_input_ = false;  // an answer: the ACK rides on it
    if (tls_active_) co_return co_await tls_write_all(bytes, Clock::now() + timeout);
    co_return co_await send_all(bytes, Clock::now() + timeout);
}

awaitable<bool> Connection::flush_tls(Clock::time_point until) {
    while (!tls_output_.empty()) {
        std::string out = std::exchange(tls_output_, std::string());
        if (!co_await send_all(out, until)) co_return false;
    }
    co_return true;
}

awaitable<std::size_t> Connection::tls_read_some(std::span<char> buffer, Clock::time_point until) {
    for (;;) {
        std::size_t got = 0;
        ERR_clear_error();  // SSL_get_error reads this thread's queue, which other connections share
        int r = SSL_read_ex(ssl_.get(), buffer.data(), buffer.size(), &got);
        int error = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_.get(), r);
        // Reading may have written (TLS 1.3 session tickets, key updates, alerts).
        if (!co_await flush_tls(until)) co_return 0;
        if (r == 1) {
            unanswered_input_ = true;
            co_return got;
        }
        if (error != SSL_ERROR_WANT_READ) co_return 0;  // close_notify, a bad record, the peer gone
        if (!co_await wait_readable(until, true)) co_return 0;
    }
}

awaitable<bool> Connection::tls_write_all(std::string_view bytes, Clock::time_point until) {
    while (!bytes.empty()) {
        std::size_t written = 0;
        ERR_clear_error();
        if (SSL_write_ex(ssl_.get(), bytes.data(), std::min(bytes.size(), tls_write_piece), &written) != 1) {
            co_return false;  // the output BIO never refuses, so this is a broken session
        }
        bytes.remove_prefix(written);
        if ((bytes.empty() || tls_output_.size() >= tls_output_flush_octets) && !co_await flush_tls(until)) {
            co_return false;
        }
    }
    co_return true;
}

awaitable<Result<void>> Connection::accept_proxy_header(std::chrono::milliseconds timeout) {
    const auto until = Clock::now() + timeout;
    // The header's octets read so far: bytes are consumed only once they are known to be the header's (all of
    // an incomplete one's are), and the last step peeks, so nothing after the header is taken off the socket.
    std::string header;
    std::string peeked(kMaxProxyHeaderOctets, '\0');
    for (;;) {
        boost::system::error_code ec;
        const std::size_t room = kMaxProxyHeaderOctets - header.size();
        std::size_t n = socket_.receive(asio::buffer(peeked.data(), room), tcp::socket::message_peek, ec);
        if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
            co_return make_error(Errc::io_error, "PROXY header: " + ec.message());
        }
        if (!ec && n == 0)
            co_return make_error(Errc::io_error, "PROXY header: the peer closed the connection");
        if (!ec) {
            auto parsed = parse_proxy_header(header + std::string(peeked.data(), n));
            if (parsed.status == ProxyParse::Status::invalid)
                co_return make_error(Errc::invalid_argument, parsed.error);
            const std::size_t take =
                parsed.status == ProxyParse::Status::complete ? parsed.header.length - header.size() : n;
            std::size_t got = socket_.receive(asio::buffer(peeked.data(), take), 0, ec);
            if (ec || got != take)
                co_return make_error(Errc::io_error, "PROXY header: the peeked bytes could not be read");
            header.append(peeked.data(), got);
            if (parsed.status == ProxyParse::Status::complete) {
                if (parsed.header.source) peer_ip_ = *parsed.header.source;
                co_return Result<void>{};
            }
        }
        if (!co_await wait_readable(until, false)) {
            co_return make_error(Errc::io_error, deadline_.timed_out() ? "PROXY header: none came in time"
                                                                       : "PROXY header: the wait failed");
        }
    }
}

awaitable<Result<void>> Connection::start_tls(std::chrono::milliseconds timeout) {
    if (!tls_context_) co_return make_error(Errc::unavailable, "TLS is not configured");
    if (tls_active_ || ssl_) co_return make_error(Errc::invalid_argument, "TLS is already active");
    const auto until = Clock::now() + timeout;
    if (!socket_.is_open()) co_return make_error(Errc::io_error, "TLS: the connection is closed");
    ssl_.reset(SSL_new(tls_context_->native_handle()));
    BIO* input = ssl_ ? BIO_new_socket(socket_.native_handle(), BIO_NOCLOSE) : nullptr;
    BIO* output = input ? BIO_new(output_method()) : nullptr;
    if (!output) {
        if (input) BIO_free(input);
        co_return make_error(Errc::internal, "TLS: cannot make a session");
    }
    BIO_set_data(output, &tls_output_);
    SSL_set_bio(ssl_.get(), input, output);
    SSL_set_mode(ssl_.get(), SSL_MODE_RELEASE_BUFFERS);
    SSL_set_accept_state(ssl_.get());
    for (;;) {
        ERR_clear_error();
        int r = SSL_do_handshake(ssl_.get());
        int error = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_.get(), r);
        if (!co_await flush_tls(until)) co_return make_error(Errc::io_error, "TLS handshake: write failed");
        if (r == 1) break;
        if (error != SSL_ERROR_WANT_READ) {
            char reason[256] = "the peer closed the connection";
            if (unsigned long code = ERR_get_error()) ERR_error_string_n(code, reason, sizeof reason);
            co_return make_error(Errc::io_error, std::string("TLS handshake: ") + reason);
        }
        if (!co_await wait_readable(until, false)) {
            co_return make_error(Errc::io_error, deadline_.timed_out() ? "TLS handshake: timed out"
                                                            : "TLS handshake: the peer closed the connection");
        }
    }
    tls_active_ = true;
    co_return Result<void>{};
}

std::string Connection::tls_description() const {
    if (!tls_active_) return {};
    return std::string(SSL_get_version(ssl_.get())) + " " + SSL_get_cipher_name(ssl_.get());
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

// close() alone sends the FIN (the descriptor is never shared, so shutdown() first would only add a
// system call, one that mostly fails with ENOTCONN after the client has gone).
void Connection::close() {
    deadline_.disarm();
    boost::system::error_code ignored;
    socket_.close(ignored);
}

}  // namespace magpie::net
