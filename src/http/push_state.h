// What a push stream, EventSource (RFC 8620 7.3) or WebSocket (RFC 8887 4.3.5), sends after each read of the account's states (push_states in
// methods/session.h): the StateChange "changed" object of the wanted types that differ from the last state
// the client was told, or nothing. Sans-IO, so the stream's IO loop stays a dozen lines.
//
// A read that failed (the store unreachable: PostgreSQL restarting, a timeout) ends nothing: the last known
// states stay, and the caller reads again on its next wake-up or ping (retry_pending), so the connection,
// which the client would otherwise reopen in a loop, survives a store outage. A change made during the
// outage is reported by the first read that succeeds. Until one read succeeds no state is known, and the
// first success reports every wanted type (a client that is told too much only asks /changes once more).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"

namespace magpie::http {

class PushStateTracker {
public:
    explicit PushStateTracker(std::vector<std::string> types) : types_(std::move(types)) {}  // empty: all

    // The initial read, whose states the client is assumed to know (it has just fetched them or will).
    void start(const Result<nlohmann::json>& states);
    // Instead of start(): the states the client says it knows (RFC 8887 4.3.5.3 pushState); the next read
    // reports what differs from them.
    void assume(nlohmann::json states);
    // A later read: the changed states of the wanted types (a TypeState object, RFC 8620 7.1) to send in a
    // StateChange, or nullopt when there is nothing to send (no change, or the read failed).
    std::optional<nlohmann::json> next(const Result<nlohmann::json>& states);
    // The last read failed (or none succeeded yet): read again at the next wake-up or ping.
    bool retry_pending() const { return !known_ || failed_; }
    // The states of every type last read (for a WebSocket pushState token); nullopt before one succeeded.
    const std::optional<nlohmann::json>& known() const { return known_; }

private:
    bool wanted(const std::string& type) const;

    std::vector<std::string> types_;
    std::optional<nlohmann::json> known_;  // the states last reported (or assumed known)
    bool failed_ = false;
};

}  // namespace magpie::http
