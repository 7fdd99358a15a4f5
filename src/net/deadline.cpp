#include "net/deadline.h"

namespace magpie::net {

Deadline::Deadline(const asio::any_io_executor& executor, tcp::socket& socket)
    : timer_(executor), state_(std::make_shared<State>(State{&socket})) {}

Deadline::~Deadline() {
    ++state_->generation;
    state_->socket = nullptr;
}

void Deadline::arm(std::chrono::milliseconds timeout) {
    state_->timed_out = false;
    const std::uint64_t generation = ++state_->generation;
    timer_.expires_after(timeout);
    timer_.async_wait([state = state_, generation](boost::system::error_code ec) {
        // Cancelled, or queued before a disarm() or the owner's end: it belongs to a wait that is over.
        if (ec || generation != state->generation || state->socket == nullptr) return;
        state->timed_out = true;
        boost::system::error_code ignored;
        state->socket->cancel(ignored);
    });
}

void Deadline::disarm() {
    ++state_->generation;
    timer_.cancel();
}

}  // namespace magpie::net
