#include "http/jmap_websocket.h"

#include <fmt/format.h>

namespace magpie::http {

using nlohmann::json;

namespace {

WsRefused refused(json id, std::string type, std::string detail) {
    return WsRefused{std::move(id), Problem{400, std::move(type), std::move(detail), {}}};
}

}  // namespace

WsInbound parse_ws_message(std::string_view text, const JsonLimits& limits) {
    auto parsed = parse_json(text, limits);
    if (!parsed) return refused(nullptr, kProblemNotJson, parsed.error().message);
    json& message = *parsed;
    if (!message.is_object()) return refused(nullptr, kProblemNotRequest, "a message is a JSON object");
    json id = nullptr;
    if (auto it = message.find("id"); it != message.end() && it->is_string()) id = *it;
    auto type = message.find("@type");
    if (type == message.end() || !type->is_string()) {
        return refused(id, kProblemNotRequest, "a message needs \"@type\" (Request, WebSocketPushEnable, ...)");
    }
    const auto& name = type->get_ref<const std::string&>();
    if (name == "Request") {
        if (auto it = message.find("id"); it != message.end() && !it->is_string()) {
            return refused(nullptr, kProblemNotRequest, "\"id\" must be a string");
        }
        return WsRequest{std::move(id), std::move(message)};
    }
    if (name == "WebSocketPushEnable") {
        WsPushEnable enable;
        if (auto it = message.find("dataTypes"); it != message.end() && !it->is_null()) {
            if (!it->is_array()) return refused(id, kProblemNotRequest, "\"dataTypes\" must be an array or null");
            for (const auto& data_type : *it) {
                if (!data_type.is_string()) return refused(id, kProblemNotRequest, "\"dataTypes\" holds strings");
                enable.data_types.push_back(data_type.get<std::string>());
            }
            // An empty list asks for nothing: keep it apart from "every type" (empty data_types).
            if (enable.data_types.empty()) enable.data_types.push_back("");
        }
        if (auto it = message.find("pushState"); it != message.end() && !it->is_null()) {
            if (!it->is_string()) return refused(id, kProblemNotRequest, "\"pushState\" must be a string");
            enable.push_state = it->get<std::string>();
        }
        return enable;
    }
    if (name == "WebSocketPushDisable") return WsPushDisable{};
    return refused(id, kProblemNotRequest, fmt::format("unknown \"@type\" \"{}\"", name));
}

std::string ws_response(json response, const json& id) {
    json out = {{"@type", "Response"}};
    if (!id.is_null()) out["requestId"] = id;
    for (auto& [key, value] : response.items()) out[key] = std::move(value);
    return to_json_text(out);
}

std::string ws_request_error(const Problem& problem, const json& id) {
    json out = {{"@type", "RequestError"}, {"type", problem.type}, {"status", problem.status}, {"detail", problem.detail}};
    if (!id.is_null()) out["requestId"] = id;
    if (!problem.limit.empty()) out["limit"] = problem.limit;
    return to_json_text(out);
}

std::string ws_state_change(json change, std::string_view push_state) {
    change["pushState"] = std::string(push_state);
    return to_json_text(change);
}

}  // namespace magpie::http
