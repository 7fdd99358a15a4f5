// Push (RFC 8620 7.1) shared by both transports: the StateChange a client gets when the account's states
// (http::push_states, one string per data type) moved, for EventSource (7.3) and WebSocket (RFC 8887 4.3.5)
// (which types moved is PushStateTracker's to say, http/push_state.h), and the WebSocket pushState token that carries the states a client last saw. Sans-IO.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace magpie::http {

// A StateChange object {"@type": "StateChange", "changed": {account_id: changed}} for the TypeState
// `changed` (RFC 8620 7.1) that PushStateTracker::next (http/push_state.h) found.
nlohmann::json state_change(std::string_view account_id, nlohmann::json changed);

// RFC 8887 4.3.5.3 pushState: an opaque token that holds the states themselves (base64 of their JSON), so
// a client that reconnects with it is told what changed meanwhile without the server keeping anything.
std::string push_state_token(const nlohmann::json& states);
// The states of a token this server made; nullopt for anything else (too long, not base64 of an object
// of strings).
std::optional<nlohmann::json> parse_push_state(std::string_view token);

}  // namespace magpie::http
