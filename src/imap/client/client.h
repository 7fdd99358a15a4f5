// imap::client::Client: the client side of an IMAP connection as a sans-IO state machine (RFC 9051 2.2,
// 5.5): commands in, command bytes out; server bytes in, events out. It tags commands, sends literals as
// the server allows (waiting for "+" unless LITERAL+ or, up to 4096 octets, LITERAL- is offered, RFC 7888),
// pipelines commands that hold no synchronising literal, gathers the untagged data that arrives before each
// completion, and tracks the capabilities announced. No socket, clock or TLS: the IO layer writes
// take_output(), feeds what it reads, does STARTTLS's handshake itself, and reports a closed connection.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/result.h"
#include "imap/client/command.h"
#include "imap/client/response.h"

namespace magpie::imap::client {

struct ClientLimits {
    ResponseLimits response;
    // Untagged responses held for one command (a FETCH of 1:* gets one per message).
    std::size_t max_untagged_per_command = 2'000'000;
};

// The server's first response: OK (log in next), PREAUTH (logged in already) or BYE (refused).
struct Greeting {
    Status status = Status::ok;
    ResponseText text;
};

// A command ended: its tagged status and the untagged data received since the previous completion.
struct Completed {
    std::string tag;
    Status status = Status::bad;
    ResponseText text;
    std::vector<Untagged> untagged;
    std::vector<std::string> malformed;  // responses that could not be read meanwhile (reasons)
};

// The connection is over: the server's BYE text, a fatal read error, or the IO layer's reason. Commands
// still outstanding never complete.
struct Closed {
    std::string reason;
};

using ClientEvent = std::variant<Greeting, Completed, Closed>;

class Client {
public:
    explicit Client(ClientLimits limits = {});

    // Bytes from the server; any split.
    void feed(std::string_view bytes);
    // Bytes to write now. Nothing is written before the greeting.
    std::string take_output();
    bool has_output() const;
    std::optional<ClientEvent> poll_event();

    // Queues a command and returns its tag; an invalid command (see Command::error) is refused here.
    Result<std::string> submit(const Command& command);
    // The IO layer finished the TLS handshake after STARTTLS's OK. False when the server had sent bytes
    // after that OK (they were written in plaintext and could be injected: the caller must close).
    // Capabilities are forgotten: the server announces them anew under TLS (RFC 9051 6.2.1).
    bool tls_started();
    // The IO layer's connection ended (read 0, reset, timeout).
    void connection_closed(std::string_view reason);

    bool greeted() const { return greeted_; }
    bool closed() const { return closed_; }
    // Names upper case, from the greeting's code, a CAPABILITY response or a completion's code. A server
    // changes them after STARTTLS and login (RFC 9051 6.2.1), and the latest announcement wins.
    const std::vector<std::string>& capabilities() const { return capabilities_; }
    bool has_capability(std::string_view name) const;
    // The number of commands sent or queued without a completion yet.
    std::size_t outstanding() const { return in_flight_.size(); }

private:
    struct Outgoing {
        std::string tag;
        std::deque<Command::Piece> pieces;
        bool waiting = false;  // sent "{n}" CRLF, waiting for "+"
    };

    void handle(Response response);
    void on_untagged(Untagged u);
    void on_tagged(Tagged t);
    void on_continuation();
    void close(std::string reason);
    bool may_send_non_sync(std::size_t size) const;

    ClientLimits limits_;
    ResponseParser parser_;
    std::deque<Outgoing> sending_;        // commands with pieces still to write, in order
    std::vector<std::string> in_flight_;  // tags without completion
    std::vector<Untagged> untagged_;      // since the last completion
    std::vector<std::string> malformed_;
    std::vector<std::string> capabilities_;
    std::deque<ClientEvent> events_;
    std::string output_;
    std::string bye_;
    unsigned long serial_ = 0;
    std::string starttls_tag_;
    bool starttls_ok_ = false;  // STARTTLS was accepted: read nothing more until tls_started()
    bool greeted_ = false;
    bool closed_ = false;
};

}  // namespace magpie::imap::client
