#include "imap/client/client.h"

#include <algorithm>

#include "base/strings.h"

namespace magpie::imap::client {
namespace {

// RFC 7888 4: LITERAL- allows non-synchronising literals up to this size.
constexpr std::size_t kLiteralMinusMax = 4096;

}  // namespace

Client::Client(ClientLimits limits) : limits_(limits), parser_(limits.response) {}

bool Client::has_capability(std::string_view name) const {
    return std::ranges::any_of(capabilities_, [&](const std::string& c) { return iequals(c, name); });
}

bool Client::may_send_non_sync(std::size_t size) const {
    return has_capability("LITERAL+") || (has_capability("LITERAL-") && size <= kLiteralMinusMax);
}

Result<std::string> Client::submit(const Command& command) {
    if (command.error()) return *command.error();
    if (closed_) return make_error(Errc::unavailable, "the IMAP connection is closed");
    Outgoing out;
    out.tag = "a" + std::to_string(++serial_);
    for (auto& piece : command.finish(out.tag)) out.pieces.push_back(std::move(piece));
    in_flight_.push_back(out.tag);
    if (iequals(command.name(), "STARTTLS")) starttls_tag_ = out.tag;
    sending_.push_back(std::move(out));
    return in_flight_.back();
}

bool Client::has_output() const {
    if (!output_.empty()) return true;
    return greeted_ && !closed_ && !starttls_ok_ && !sending_.empty() && !sending_.front().waiting;
}

std::string Client::take_output() {
    // A command with a synchronising literal blocks everything behind it until "+" (RFC 9051 4.3).
    while (greeted_ && !closed_ && !starttls_ok_ && !sending_.empty() && !sending_.front().waiting) {
        Outgoing& out = sending_.front();
        while (!out.pieces.empty()) {
            Command::Piece& piece = out.pieces.front();
            output_ += piece.text;
            piece.text.clear();
            if (!piece.literal) {
                out.pieces.pop_front();
                continue;
            }
            if (may_send_non_sync(piece.literal->size())) {
                output_ += "{" + std::to_string(piece.literal->size()) + "+}\r\n";
                output_ += *piece.literal;
                out.pieces.pop_front();
                continue;
            }
            output_ += "{" + std::to_string(piece.literal->size()) + "}\r\n";
            out.waiting = true;
            break;
        }
        if (out.waiting) break;
        sending_.pop_front();
    }
    return std::exchange(output_, {});
}

void Client::feed(std::string_view bytes) {
    if (closed_) return;
    parser_.feed(bytes);
    while (!closed_ && !starttls_ok_) {
        auto response = parser_.next();
        if (!response) break;
        handle(std::move(*response));
    }
    if (!closed_ && parser_.fatal()) close("unreadable server response: " + *parser_.fatal());
}

void Client::handle(Response response) {
    if (auto* u = std::get_if<Untagged>(&response)) return on_untagged(std::move(*u));
    if (auto* t = std::get_if<Tagged>(&response)) return on_tagged(std::move(*t));
    if (std::holds_alternative<Continuation>(response)) return on_continuation();
    auto& m = std::get<Malformed>(response);
    if (!greeted_) return close("unreadable greeting: " + m.reason);
    if (malformed_.size() < 100) malformed_.push_back(m.reason + ": " + m.line);
}

void Client::on_untagged(Untagged u) {
    if (u.name == "CAPABILITY" && !u.status) {
        capabilities_.clear();
        for (const auto& v : u.data)
            if (v.is_atom()) capabilities_.push_back(to_upper(v.text));
    } else if (u.status && u.text.code == "CAPABILITY") {
        capabilities_ = split_words(u.text.code_args, true);
    }
    if (!greeted_) {
        if (!u.status || *u.status == Status::no || *u.status == Status::bad)
            return close("the server's first response is not a greeting");
        greeted_ = true;
        if (*u.status == Status::bye) return close("the server refused the connection: " + u.text.text);
        events_.push_back(Greeting{*u.status, u.text});
        return;
    }
    if (u.status == Status::bye) bye_ = u.text.text;
    if (untagged_.size() >= limits_.max_untagged_per_command)
        return close("more than " + std::to_string(limits_.max_untagged_per_command) + " untagged responses");
    untagged_.push_back(std::move(u));
}

void Client::on_tagged(Tagged t) {
    auto it = std::ranges::find(in_flight_, t.tag);
    if (!greeted_ || it == in_flight_.end()) {
        if (malformed_.size() < 100) malformed_.push_back("completion for unknown tag " + t.tag);
        return;
    }
    in_flight_.erase(it);
    // A command refused while its literal waited for "+": the rest of it is never sent (RFC 9051 7.5).
    auto sending = std::ranges::find_if(sending_, [&](const Outgoing& o) { return o.tag == t.tag; });
    if (sending != sending_.end()) sending_.erase(sending);
    if (t.tag == starttls_tag_ && t.status == Status::ok) starttls_ok_ = true;
    if (t.text.code == "CAPABILITY") capabilities_ = split_words(t.text.code_args, true);
    Completed done{std::move(t.tag), t.status, std::move(t.text), std::move(untagged_),
                   std::move(malformed_)};
    untagged_.clear();
    malformed_.clear();
    events_.push_back(std::move(done));
}

void Client::on_continuation() {
    if (sending_.empty() || !sending_.front().waiting) {
        if (malformed_.size() < 100) malformed_.push_back("continuation request nobody asked for");
        return;
    }
    Outgoing& out = sending_.front();
    output_ += *out.pieces.front().literal;
    out.pieces.pop_front();
    out.waiting = false;
    if (out.pieces.empty()) sending_.pop_front();
}

bool Client::tls_started() {
    bool clean = parser_.buffered() == 0;
    parser_ = ResponseParser(limits_.response);
    starttls_ok_ = false;
    starttls_tag_.clear();
    capabilities_.clear();
    return clean;
}

void Client::connection_closed(std::string_view reason) {
    if (closed_) return;
    close(bye_.empty() ? std::string(reason) : "the server said goodbye: " + bye_);
}

void Client::close(std::string reason) {
    closed_ = true;
    sending_.clear();
    output_.clear();
    events_.push_back(Closed{std::move(reason)});
}

std::optional<ClientEvent> Client::poll_event() {
    if (events_.empty()) return std::nullopt;
    ClientEvent event = std::move(events_.front());
    events_.pop_front();
    return event;
}

}  // namespace magpie::imap::client
