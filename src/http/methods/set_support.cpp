#include "http/methods/set_support.h"

#include <algorithm>

#include <fmt/format.h>

namespace magpie::http {

using nlohmann::json;

json set_error(std::string_view type, std::string_view description, const std::vector<std::string>& properties) {
    json error = {{"type", type}};
    if (!description.empty()) error["description"] = description;
    if (!properties.empty()) error["properties"] = properties;
    return error;
}

std::variant<SetRequest, MethodError> parse_set_request(const json& args, const ApiLimits& limits) {
    SetRequest request;
    std::size_t count = 0;
    for (const char* key : {"create", "update"}) {
        auto it = args.find(key);
        if (it == args.end() || it->is_null()) continue;
        if (!it->is_object()) return MethodError{"invalidArguments", fmt::format("\"{}\" must be an object", key)};
        for (const auto& [id, value] : it->items()) {
            if (!value.is_object()) {
                return MethodError{"invalidArguments", fmt::format("\"{}\" must map ids to objects", key)};
            }
        }
        count += it->size();
        (std::string_view(key) == "create" ? request.create : request.update) = *it;
    }
    if (auto it = args.find("destroy"); it != args.end() && !it->is_null()) {
        if (!it->is_array()) return MethodError{"invalidArguments", "\"destroy\" must be an array"};
        for (const auto& id : *it) {
            if (!id.is_string()) return MethodError{"invalidArguments", "\"destroy\" must hold ids"};
            request.destroy.push_back(id.get<std::string>());
        }
        count += it->size();
    }
    if (count > limits.max_objects_in_set) {
        return MethodError{"requestTooLarge", fmt::format("more than {} objects in one /set", limits.max_objects_in_set)};
    }
    if (auto it = args.find("ifInState"); it != args.end() && !it->is_null()) {
        if (!it->is_string()) return MethodError{"invalidArguments", "\"ifInState\" must be a string"};
        request.if_in_state = it->get<std::string>();
    }
    return request;
}

std::variant<std::optional<std::vector<std::string>>, MethodError> parse_get_ids(const json& args,
                                                                                 const ApiLimits& limits) {
    auto it = args.find("ids");
    if (it == args.end() || it->is_null()) return std::optional<std::vector<std::string>>();
    if (!it->is_array()) return MethodError{"invalidArguments", "\"ids\" must be null or an array"};
    if (it->size() > limits.max_objects_in_get) {
        return MethodError{"requestTooLarge", fmt::format("more than {} ids", limits.max_objects_in_get)};
    }
    std::vector<std::string> ids;
    for (const auto& id : *it) {
        if (!id.is_string()) return MethodError{"invalidArguments", "\"ids\" must hold strings"};
        ids.push_back(id.get<std::string>());
    }
    return std::optional<std::vector<std::string>>(std::move(ids));
}

std::variant<std::optional<std::vector<std::string>>, MethodError> parse_properties(
    const json& args, const std::vector<std::string>& known) {
    auto it = args.find("properties");
    if (it == args.end() || it->is_null()) return std::optional<std::vector<std::string>>();
    if (!it->is_array()) return MethodError{"invalidArguments", "\"properties\" must be null or an array"};
    std::vector<std::string> properties;
    for (const auto& p : *it) {
        if (!p.is_string() || std::ranges::find(known, p.get<std::string>()) == known.end()) {
            return MethodError{"invalidArguments", fmt::format("unknown property {}", p.dump())};
        }
        properties.push_back(p.get<std::string>());
    }
    return std::optional<std::vector<std::string>>(std::move(properties));
}

std::optional<std::string> resolve_creation_id(const std::string& id, const CallContext& context) {
    if (id.empty() || id.front() != '#') return id;
    auto it = context.created_ids.find(id.substr(1));
    if (it == context.created_ids.end()) return std::nullopt;
    return it->second;
}

json select_properties(const json& object, const std::optional<std::vector<std::string>>& properties) {
    if (!properties) return object;
    json out = {{"id", object.at("id")}};
    for (const auto& p : *properties) {
        if (auto it = object.find(p); it != object.end()) out[p] = *it;
    }
    return out;
}

std::optional<std::int64_t> parse_object_id(std::string_view id, std::string_view prefix) {
    if (!id.starts_with(prefix)) return std::nullopt;
    id.remove_prefix(prefix.size());
    if (id.empty() || id.size() > 18 || id.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
    return std::stoll(std::string(id));
}

std::variant<std::size_t, MethodError> max_changes_of(const json& args, const ApiLimits& limits) {
    auto it = args.find("maxChanges");
    if (it == args.end() || it->is_null()) return limits.max_changes;
    if (!it->is_number_unsigned() || it->get<std::uint64_t>() == 0) {
        return MethodError{"invalidArguments", "\"maxChanges\" must be a positive integer"};
    }
    return static_cast<std::size_t>(std::min<std::uint64_t>(it->get<std::uint64_t>(), limits.max_changes));
}

MethodOutcome object_changes(const store::JmapObjectList& list, const json& args, std::string_view prefix,
                             const std::string& account_id, const ApiLimits& limits) {
    auto since_it = args.find("sinceState");
    if (since_it == args.end() || !since_it->is_string()) {
        return MethodError{"invalidArguments", "\"sinceState\" must be a string"};
    }
    auto max_changes_or = max_changes_of(args, limits);
    if (auto* error = std::get_if<MethodError>(&max_changes_or)) return *error;
    const std::optional<std::uint64_t> max_changes = std::get<std::size_t>(max_changes_or);
    const auto& since_text = since_it->get_ref<const std::string&>();
    auto since = parse_object_id(since_text, "");
    if (!since || static_cast<std::uint64_t>(*since) > list.state) {
        return MethodError{"cannotCalculateChanges", "not a state of this account"};
    }
    const std::uint64_t from = static_cast<std::uint64_t>(*since);
    // Changed objects by the state of their last change; a cut keeps whole states.
    std::vector<const store::JmapObject*> changed;
    for (const auto& object : list.objects) {
        if (object.updated_state > from && !(object.destroyed && object.created_state > from)) changed.push_back(&object);
    }
    std::ranges::sort(changed, {}, &store::JmapObject::updated_state);
    std::uint64_t new_state = list.state;
    bool more = false;
    if (max_changes && changed.size() > *max_changes) {
        new_state = changed[*max_changes]->updated_state - 1;
        if (new_state <= from) return MethodError{"cannotCalculateChanges", "one state holds more than maxChanges changes"};
        std::erase_if(changed, [&](const store::JmapObject* o) { return o->updated_state > new_state; });
        more = true;
    }
    json created = json::array(), updated = json::array(), destroyed = json::array();
    for (const auto* object : changed) {
        std::string id = fmt::format("{}{}", prefix, object->id);
        if (object->destroyed) {
            destroyed.push_back(id);
        } else if (object->created_state > from) {
            created.push_back(id);
        } else {
            updated.push_back(id);
        }
    }
    return json{{"accountId", account_id},       {"oldState", since_text},
                {"newState", std::to_string(new_state)}, {"hasMoreChanges", more},
                {"created", created},             {"updated", updated},
                {"destroyed", destroyed}};
}

bool header_safe(std::string_view text) {
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
        // U+0080..U+009F are 0xC2 0x80..0x9F in UTF-8.
        if (c == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) <= 0x9f &&
            static_cast<unsigned char>(text[i + 1]) >= 0x80) {
            return false;
        }
    }
    return true;
}

bool header_safe_strings(const nlohmann::json& value) {
    if (value.is_string()) return header_safe(value.get_ref<const std::string&>());
    if (value.is_array() || value.is_object()) {
        return std::ranges::all_of(value, [](const nlohmann::json& item) { return header_safe_strings(item); });
    }
    return true;
}

}  // namespace magpie::http
