// Pieces every /get, /changes and /set method shares (RFC 8620 5.1-5.3): argument checks with the RFC's
// errors, SetError objects, and creation-id references ("#c1") resolved through the request's createdIds.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "http/api.h"
#include "store/jmap_objects.h"

namespace magpie::http {

// A SetError (RFC 8620 5.3): {"type", "description"?, "properties"?}.
nlohmann::json set_error(std::string_view type, std::string_view description = {},
                         const std::vector<std::string>& properties = {});

// The parts of a /set request, checked: create (object of objects), update (object of objects), destroy
// (array of strings), ifInState; requestTooLarge above maxObjectsInSet.
struct SetRequest {
    nlohmann::json create = nlohmann::json::object();
    nlohmann::json update = nlohmann::json::object();
    std::vector<std::string> destroy;
    std::optional<std::string> if_in_state;
};
std::variant<SetRequest, MethodError> parse_set_request(const nlohmann::json& args, const ApiLimits& limits);

// The ids of a /get ("ids": null or array of strings, at most maxObjectsInGet); nullopt = all.
std::variant<std::optional<std::vector<std::string>>, MethodError> parse_get_ids(const nlohmann::json& args,
                                                                                 const ApiLimits& limits);
// "properties": null or array of strings, each in `known`; nullopt = all.
std::variant<std::optional<std::vector<std::string>>, MethodError> parse_properties(
    const nlohmann::json& args, const std::vector<std::string>& known);

// An id that may be a creation reference: "#c1" becomes the id created for "c1" in this request (nullopt
// when none was), anything else is itself.
std::optional<std::string> resolve_creation_id(const std::string& id, const CallContext& context);

// The object with only the asked properties (and "id" always).
nlohmann::json select_properties(const nlohmann::json& object, const std::optional<std::vector<std::string>>& properties);

// /changes (RFC 8620 5.2) over a store object list: created, updated and destroyed ids (each `prefix` +
// the store id) after `sinceState` (the decimal counter). cannotCalculateChanges for a state that is not
// one the counter has had; at most `maxChanges` ids, cut at a state boundary (hasMoreChanges), and
// cannotCalculateChanges when one state alone holds more.
MethodOutcome object_changes(const store::JmapObjectList& list, const nlohmann::json& args, std::string_view prefix,
                             const std::string& account_id, const ApiLimits& limits);

// RFC 8620 5.2 "maxChanges" of a /changes call: the client's, which must be a positive integer (else
// invalidArguments), capped at the server's limits.max_changes (the server may return fewer); the server's
// when the client gives none.
std::variant<std::size_t, MethodError> max_changes_of(const nlohmann::json& args, const ApiLimits& limits);

// RFC 5322 2.2, RFC 8621 4.6: a string that becomes part of a header field carries no CR, LF or other
// control (C0 but HT, DEL, and the C1 controls U+0080..U+009F): a CR or LF would end the field and start
// another (header injection), so the property is invalidProperties rather than cleaned.
bool header_safe(std::string_view text);
// Every string in `value` (an Address, an array of them, or any JSON) is header_safe.
bool header_safe_strings(const nlohmann::json& value);

// The store id in a JMAP id made of `prefix` + decimal; nullopt for anything else.
std::optional<std::int64_t> parse_object_id(std::string_view id, std::string_view prefix);

}  // namespace magpie::http
