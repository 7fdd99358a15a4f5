// JMAP over WebSocket (RFC 8887), sans-IO: what one text message from the client asks for (a Request, push
// on or off) and the text of what the server sends back (Response, RequestError, StateChange). The frames
// are http/websocket.h's; the loop that joins them to the dispatcher and the ChangeHub is HttpService's.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "http/api.h"
#include "http/problem.h"

namespace magpie::http {

inline constexpr std::string_view kCapabilityWebSocket = "urn:ietf:params:jmap:websocket";
inline constexpr std::string_view kWebSocketSubprotocol = "jmap";  // RFC 8887 4.2

// 4.3.1: a Request object ("@type": "Request") to run; `id` is its string id, or null when it has none.
struct WsRequest {
    nlohmann::json id;
    nlohmann::json request;
};
// 4.3.5.2: push StateChanges of these types (empty: all), first those since `push_state` when given.
struct WsPushEnable {
    std::vector<std::string> data_types;
    std::optional<std::string> push_state;
};
// 4.3.5.3
struct WsPushDisable {};
// A message that is none of those: answered with this RequestError (4.3.4), the connection stays.
struct WsRefused {
    nlohmann::json id;
    Problem problem;
};
using WsInbound = std::variant<WsRequest, WsPushEnable, WsPushDisable, WsRefused>;

// Reads one text message, within the request's JSON bounds (its size the frame reader already bounded).
WsInbound parse_ws_message(std::string_view text, const JsonLimits& limits);

// 4.3.3: the dispatcher's Response object as a WebSocket Response, with "requestId" when the request had one.
std::string ws_response(nlohmann::json response, const nlohmann::json& id);
// 4.3.4: a request-level error (RFC 8620 3.6.1's problem) as a RequestError.
std::string ws_request_error(const Problem& problem, const nlohmann::json& id);
// 4.3.5.1: a StateChange (http/push.h) with the pushState token of the states it brings the client to.
std::string ws_state_change(nlohmann::json change, std::string_view push_state);

}  // namespace magpie::http
