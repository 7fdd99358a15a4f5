// The deadline that bounds a socket's waits: armed before a wait and disarmed after it. When it passes
// first, the socket's pending operations are cancelled (they complete with operation_aborted) and
// timed_out() is true.
//
// Its timer's handler touches only a small state it shares with the Deadline, never the Deadline's owner. A
// timer that expires in the same turn of the event loop as the wait it bounds has its handler queued behind
// that wait's completion; the completion can end the session and free the connection before the handler runs
// (reads and writes that need no wait never return to the event loop in between). The handler then finds the
// state retired (its generation moved on, no socket) and does nothing.
//
// Not thread-safe: used on the socket's own executor, as the socket is.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "net/asio.h"

namespace magpie::net {

class Deadline {
public:
    // `socket` must outlive the Deadline (declare the Deadline after it).
    Deadline(const asio::any_io_executor& executor, tcp::socket& socket);
    ~Deadline();
    Deadline(const Deadline&) = delete;
    Deadline& operator=(const Deadline&) = delete;

    // Starts the countdown for one wait (any armed before is disarmed); clears timed_out().
    void arm(std::chrono::milliseconds timeout);
    // Stops it; a handler already queued for this or an earlier arm() does nothing.
    void disarm();
    // Whether the last armed wait was ended by the deadline; clear_timed_out() forgets it.
    bool timed_out() const { return state_->timed_out; }
    void clear_timed_out() { state_->timed_out = false; }

private:
    struct State {
        tcp::socket* socket;  // null once the Deadline is gone
        std::uint64_t generation = 0;
        bool timed_out = false;
    };
    asio::steady_timer timer_;
    std::shared_ptr<State> state_;
};

}  // namespace magpie::net
