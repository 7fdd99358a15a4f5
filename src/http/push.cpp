#include "http/push.h"

#include "http/json_limits.h"
#include "mail/base64.h"

namespace magpie::http {

using nlohmann::json;

json state_change(std::string_view account_id, json changed) {
    return json{{"@type", "StateChange"}, {"changed", {{std::string(account_id), std::move(changed)}}}};
}

std::string push_state_token(const json& states) { return mail::base64_encode(states.dump(), 0); }

std::optional<json> parse_push_state(std::string_view token) {
    constexpr std::size_t kMaxToken = 4096;  // a few types' decimal or hex states take a few hundred
    if (token.empty() || token.size() > kMaxToken) return std::nullopt;
    auto parsed = parse_json(mail::base64_decode(token), JsonLimits{2, 256});
    if (!parsed || !parsed->is_object()) return std::nullopt;
    json& states = *parsed;
    for (const auto& [type, value] : states.items()) {
        if (!value.is_string()) return std::nullopt;
    }
    return states;
}

}  // namespace magpie::http
