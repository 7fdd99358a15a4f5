#include "http/methods/identity.h"

#include <algorithm>

#include <fmt/format.h>

#include "base/strings.h"
#include "http/methods/session.h"
#include "http/methods/set_support.h"
#include "store/senders.h"

namespace magpie::http {
namespace {

using nlohmann::json;

constexpr std::string_view kIdentity = "Identity";
constexpr std::string_view kVacation = "VacationResponse";
constexpr std::string_view kIdentityPrefix = "i";
constexpr std::size_t kMaxSignatureOctets = 64 * 1024;
constexpr std::size_t kMaxNameOctets = 1024;
constexpr std::size_t kMaxAddressesInList = 100;  // replyTo, bcc

const std::vector<std::string> kIdentityProperties = {"id",  "name",          "email",         "replyTo",
                                                      "bcc", "textSignature", "htmlSignature", "mayDelete"};

json parse_data(const std::string& text) {
    json data = json::parse(text, nullptr, false);
    return data.is_object() ? data : json::object();
}

// Sender addresses, and which of the live identities is each one's own (the first for its address).
struct Identities {
    store::JmapObjectList list;
    std::vector<std::string> senders;
};

Result<Identities> load(store::Store& store, const store::Account& account) {
    auto senders = store::sender_addresses(store, account.address);
    if (!senders) return senders.error();
    for (int attempt = 0; attempt < 3; ++attempt) {
        auto list = store.list_jmap_objects(account.id, kIdentity);
        if (!list) return list.error();
        store::JmapObjectWrite missing;
        missing.if_in_state = list->state;  // two requests making the same identity: one wins, one re-reads
        for (const auto& address : *senders) {
            bool present = std::ranges::any_of(list->objects, [&](const store::JmapObject& o) {
                return !o.destroyed && iequals(parse_data(o.data).value("email", ""), address);
            });
            if (!present) {
                missing.create.push_back(json{{"name", ""},
                                              {"email", address},
                                              {"replyTo", nullptr},
                                              {"bcc", nullptr},
                                              {"textSignature", ""},
                                              {"htmlSignature", ""}}
                                             .dump());
            }
        }
        if (missing.create.empty()) return Identities{std::move(*list), std::move(*senders)};
        auto written = store.write_jmap_objects(account.id, kIdentity, missing);
        if (!written) return written.error();
    }
    return make_error(Errc::unavailable, "identities kept changing; try again");
}

json identity_json(const Identities& identities, const store::JmapObject& object) {
    json data = parse_data(object.data);
    data["id"] = fmt::format("{}{}", kIdentityPrefix, object.id);
    // The first identity of a sender address is the account's own: it comes back if destroyed, so it cannot be.
    bool first = true;
    for (const auto& other : identities.list.objects) {
        if (other.id == object.id) break;
        if (!other.destroyed && iequals(parse_data(other.data).value("email", ""), data.value("email", ""))) first = false;
    }
    bool sender = std::ranges::any_of(identities.senders, [&](const std::string& a) { return iequals(a, data.value("email", "")); });
    data["mayDelete"] = !(first && sender);
    return data;
}

bool valid_address_list(const json& value) {
    if (value.is_null()) return true;
    if (!value.is_array() || value.size() > kMaxAddressesInList) return false;
    for (const auto& address : value) {
        if (!address.is_object() || !address.contains("email") || !address["email"].is_string()) return false;
        for (const auto& [key, part] : address.items()) {
            if ((key != "name" && key != "email") || !(part.is_string() || (key == "name" && part.is_null()))) return false;
        }
    }
    return true;
}

// The settable properties of an Identity in `object`, checked; the name of the first bad one.
std::optional<std::string> check_identity_properties(const json& object, bool creating) {
    for (const auto& [key, value] : object.items()) {
        // name, email, replyTo and bcc become header fields of what is sent (RFC 8621 6): no controls.
        if (key == "name") {
            if (!value.is_string() || value.get_ref<const std::string&>().size() > kMaxNameOctets || !header_safe_strings(value)) {
                return key;
            }
        } else if (key == "email") {
            if (!creating || !value.is_string() || !header_safe_strings(value)) return key;  // immutable once created
        } else if (key == "replyTo" || key == "bcc") {
            if (!valid_address_list(value) || !header_safe_strings(value)) return key;
        } else if (key == "textSignature" || key == "htmlSignature") {
            if (!value.is_string() || value.get_ref<const std::string&>().size() > kMaxSignatureOctets) return key;
        } else {
            return key;  // id, mayDelete (server-set) and unknown properties
        }
    }
    return std::nullopt;
}

MethodOutcome identity_get(store::Store& store, const store::Account& account, const json& args, CallContext& context) {
    if (auto error = check_account_id(args, account)) return *error;
    auto ids = parse_get_ids(args, context.limits);
    if (auto* error = std::get_if<MethodError>(&ids)) return *error;
    auto properties = parse_properties(args, kIdentityProperties);
    if (auto* error = std::get_if<MethodError>(&properties)) return *error;
    auto identities = load(store, account);
    if (!identities) return MethodError{"serverFail", identities.error().message};
    json list = json::array(), not_found = json::array();
    const auto& wanted = std::get<std::optional<std::vector<std::string>>>(ids);
    const auto& props = std::get<std::optional<std::vector<std::string>>>(properties);
    for (const auto& object : identities->list.objects) {
        if (object.destroyed) continue;
        std::string id = fmt::format("{}{}", kIdentityPrefix, object.id);
        if (wanted && std::ranges::find(*wanted, id) == wanted->end()) continue;
        list.push_back(select_properties(identity_json(*identities, object), props));
    }
    if (wanted) {
        for (const auto& id : *wanted) {
            if (std::ranges::none_of(list, [&](const json& o) { return o["id"] == id; })) not_found.push_back(id);
        }
    }
    return json{{"accountId", jmap_account_id(account)},
                {"state", std::to_string(identities->list.state)},
                {"list", list},
                {"notFound", not_found}};
}

MethodOutcome identity_changes(store::Store& store, const store::Account& account, const json& args,
                               const ApiLimits& limits) {
    if (auto error = check_account_id(args, account)) return *error;
    auto identities = load(store, account);
    if (!identities) return MethodError{"serverFail", identities.error().message};
    return object_changes(identities->list, args, kIdentityPrefix, jmap_account_id(account), limits);
}

MethodOutcome identity_set(store::Store& store, const store::Account& account, const json& args, CallContext& context) {
    if (auto error = check_account_id(args, account)) return *error;
    auto parsed = parse_set_request(args, context.limits);
    if (auto* error = std::get_if<MethodError>(&parsed)) return *error;
    auto& request = std::get<SetRequest>(parsed);
    auto identities = load(store, account);
    if (!identities) return MethodError{"serverFail", identities.error().message};
    const std::string old_state = std::to_string(identities->list.state);
    if (request.if_in_state && *request.if_in_state != old_state) {
        return MethodError{"stateMismatch", "the identities changed since that state"};
    }
    json created = json::object(), not_created = json::object(), updated = json::object(),
         not_updated = json::object(), destroyed = json::array(), not_destroyed = json::object();
    store::JmapObjectWrite write;
    write.if_in_state = identities->list.state;
    std::vector<std::string> creation_ids;
    for (const auto& [creation_id, object] : request.create.items()) {
        if (auto bad = check_identity_properties(object, true)) {
            not_created[creation_id] = set_error("invalidProperties", "", {*bad});
            continue;
        }
        if (!object.contains("email")) {
            not_created[creation_id] = set_error("invalidProperties", "an identity needs an email", {"email"});
            continue;
        }
        const auto& email = object["email"].get_ref<const std::string&>();
        if (std::ranges::none_of(identities->senders, [&](const std::string& a) { return iequals(a, email); })) {
            not_created[creation_id] = set_error("forbiddenFrom", "not an address this account may send as");
            continue;
        }
        json data = {{"name", ""}, {"replyTo", nullptr}, {"bcc", nullptr}, {"textSignature", ""}, {"htmlSignature", ""}};
        data.update(object);
        write.create.push_back(data.dump());
        creation_ids.push_back(creation_id);
    }
    auto find_live = [&](const std::string& id) -> const store::JmapObject* {
        auto number = parse_object_id(id, kIdentityPrefix);
        if (!number) return nullptr;
        auto it = std::ranges::find_if(identities->list.objects,
                                       [&](const store::JmapObject& o) { return o.id == *number && !o.destroyed; });
        return it == identities->list.objects.end() ? nullptr : &*it;
    };
    for (const auto& [id, patch] : request.update.items()) {
        const store::JmapObject* object = find_live(id);
        if (!object) {
            not_updated[id] = set_error("notFound");
            continue;
        }
        json data = parse_data(object->data);
        json changes = patch;
        // The immutable email may be "set" to what it is (RFC 8620 5.3).
        if (changes.contains("email") && changes["email"] == data.value("email", json())) changes.erase("email");
        if (auto bad = check_identity_properties(changes, false)) {
            not_updated[id] = set_error("invalidProperties", "", {*bad});
            continue;
        }
        data.update(changes);
        write.update.emplace_back(object->id, data.dump());
        updated[id] = nullptr;
    }
    for (const auto& id : request.destroy) {
        const store::JmapObject* object = find_live(id);
        if (!object) {
            not_destroyed[id] = set_error("notFound");
            continue;
        }
        if (!identity_json(*identities, *object)["mayDelete"].get<bool>()) {
            not_destroyed[id] = set_error("forbidden", "the account's own identity for this address (mayDelete is false)");
            continue;
        }
        write.destroy.push_back(object->id);
        destroyed.push_back(id);
    }
    auto written = store.write_jmap_objects(account.id, kIdentity, write);
    if (!written) return MethodError{"serverFail", written.error().message};
    if (written->state_mismatch) return MethodError{"stateMismatch", "the identities changed meanwhile; try again"};
    for (std::size_t i = 0; i < creation_ids.size(); ++i) {
        std::string id = fmt::format("{}{}", kIdentityPrefix, written->created[i]);
        context.created_ids[creation_ids[i]] = id;
        created[creation_ids[i]] = json{{"id", id}, {"mayDelete", true}};
    }
    auto or_null = [](json& object) { return object.empty() ? json() : object; };
    return json{{"accountId", jmap_account_id(account)},
                {"oldState", old_state},
                {"newState", std::to_string(written->new_state)},
                {"created", or_null(created)},
                {"updated", or_null(updated)},
                {"destroyed", destroyed.empty() ? json() : destroyed},
                {"notCreated", or_null(not_created)},
                {"notUpdated", or_null(not_updated)},
                {"notDestroyed", or_null(not_destroyed)}};
}

// ---- VacationResponse (RFC 8621 8): one object, id "singleton", stored once first set.

const std::vector<std::string> kVacationProperties = {"id",     "isEnabled", "fromDate", "toDate",
                                                      "subject", "textBody", "htmlBody"};

json default_vacation() {
    return json{{"id", "singleton"}, {"isEnabled", false}, {"fromDate", nullptr}, {"toDate", nullptr},
                {"subject", nullptr}, {"textBody", nullptr}, {"htmlBody", nullptr}};
}

// RFC 3339 UTCDate "YYYY-MM-DDTHH:MM:SSZ" (fractions allowed), as RFC 8620 1.4 defines it.
bool is_utc_date(const json& value) {
    if (value.is_null()) return true;
    if (!value.is_string()) return false;
    const auto& s = value.get_ref<const std::string&>();
    if (s.size() < 20 || s.size() > 30 || s.back() != 'Z') return false;
    const std::string_view shape = "dddd-dd-ddTdd:dd:dd";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (shape[i] == 'd' ? !std::isdigit(static_cast<unsigned char>(s[i])) : s[i] != shape[i]) return false;
    }
    return s.size() == 20 || s[19] == '.';
}

std::optional<std::string> check_vacation_patch(const json& patch) {
    for (const auto& [key, value] : patch.items()) {
        if (key == "id") {
            if (value != "singleton") return key;
        } else if (key == "isEnabled") {
            if (!value.is_boolean()) return key;
        } else if (key == "fromDate" || key == "toDate") {
            if (!is_utc_date(value)) return key;
        } else if (key == "subject" || key == "textBody" || key == "htmlBody") {
            if (!value.is_null() && (!value.is_string() || value.get_ref<const std::string&>().size() > kMaxSignatureOctets)) {
                return key;
            }
            // The subject is the automatic reply's Subject field (RFC 8621 8): no controls.
            if (key == "subject" && !header_safe_strings(value)) return key;
        } else {
            return key;
        }
    }
    return std::nullopt;
}

MethodOutcome vacation_get(store::Store& store, const store::Account& account, const json& args, CallContext& context) {
    if (auto error = check_account_id(args, account)) return *error;
    auto ids = parse_get_ids(args, context.limits);
    if (auto* error = std::get_if<MethodError>(&ids)) return *error;
    auto properties = parse_properties(args, kVacationProperties);
    if (auto* error = std::get_if<MethodError>(&properties)) return *error;
    auto list = store.list_jmap_objects(account.id, kVacation);
    if (!list) return MethodError{"serverFail", list.error().message};
    json object = default_vacation();
    for (const auto& stored : list->objects) {
        if (!stored.destroyed) object.update(parse_data(stored.data));
    }
    json found = json::array(), not_found = json::array();
    const auto& wanted = std::get<std::optional<std::vector<std::string>>>(ids);
    if (!wanted) {
        found.push_back(select_properties(object, std::get<std::optional<std::vector<std::string>>>(properties)));
    } else {
        for (const auto& id : *wanted) {
            if (id == "singleton") {
                found.push_back(select_properties(object, std::get<std::optional<std::vector<std::string>>>(properties)));
            } else {
                not_found.push_back(id);
            }
        }
    }
    return json{{"accountId", jmap_account_id(account)}, {"state", std::to_string(list->state)},
                {"list", found}, {"notFound", not_found}};
}

MethodOutcome vacation_set(store::Store& store, const store::Account& account, const json& args, CallContext& context) {
    if (auto error = check_account_id(args, account)) return *error;
    auto parsed = parse_set_request(args, context.limits);
    if (auto* error = std::get_if<MethodError>(&parsed)) return *error;
    auto& request = std::get<SetRequest>(parsed);
    auto list = store.list_jmap_objects(account.id, kVacation);
    if (!list) return MethodError{"serverFail", list.error().message};
    const std::string old_state = std::to_string(list->state);
    if (request.if_in_state && *request.if_in_state != old_state) {
        return MethodError{"stateMismatch", "the vacation response changed since that state"};
    }
    json not_created = json::object(), not_updated = json::object(), not_destroyed = json::object(),
         updated = json::object();
    for (const auto& [creation_id, object] : request.create.items()) {
        not_created[creation_id] = set_error("singleton", "there is exactly one VacationResponse, \"singleton\"");
    }
    for (const auto& id : request.destroy) {
        not_destroyed[id] = set_error("singleton", "the VacationResponse cannot be destroyed");
    }
    store::JmapObjectWrite write;
    write.if_in_state = list->state;
    for (const auto& [id, patch] : request.update.items()) {
        if (id != "singleton") {
            not_updated[id] = set_error("notFound");
            continue;
        }
        if (auto bad = check_vacation_patch(patch)) {
            not_updated[id] = set_error("invalidProperties", "", {*bad});
            continue;
        }
        json object = default_vacation();
        const store::JmapObject* stored = nullptr;
        for (const auto& o : list->objects) {
            if (!o.destroyed) stored = &o;
        }
        if (stored) object.update(parse_data(stored->data));
        object.update(patch);
        object.erase("id");
        if (stored) {
            write.update.emplace_back(stored->id, object.dump());
        } else {
            write.create.push_back(object.dump());
        }
        updated[id] = nullptr;
    }
    auto written = store.write_jmap_objects(account.id, kVacation, write);
    if (!written) return MethodError{"serverFail", written.error().message};
    if (written->state_mismatch) return MethodError{"stateMismatch", "the vacation response changed meanwhile"};
    auto or_null = [](json& object) { return object.empty() ? json() : object; };
    return json{{"accountId", jmap_account_id(account)},
                {"oldState", old_state},
                {"newState", std::to_string(written->new_state)},
                {"created", nullptr},
                {"updated", or_null(updated)},
                {"destroyed", nullptr},
                {"notCreated", or_null(not_created)},
                {"notUpdated", or_null(not_updated)},
                {"notDestroyed", or_null(not_destroyed)}};
}

}  // namespace

Result<std::vector<std::pair<std::string, json>>> account_identities(store::Store& store, const store::Account& account) {
    auto identities = load(store, account);
    if (!identities) return identities.error();
    std::vector<std::pair<std::string, json>> out;
    for (const auto& object : identities->list.objects) {
        if (!object.destroyed) out.emplace_back(fmt::format("{}{}", kIdentityPrefix, object.id), identity_json(*identities, object));
    }
    return out;
}

void add_identity_methods(Dispatcher& dispatcher, store::Store& store, const store::Account& account) {
    const std::string submission(kCapabilitySubmission);
    dispatcher.add("Identity/get", submission, [&store, account](const json& args, CallContext& context) {
        return identity_get(store, account, args, context);
    });
    dispatcher.add("Identity/changes", submission, [&store, account](const json& args, CallContext& context) {
        return identity_changes(store, account, args, context.limits);
    });
    dispatcher.add("Identity/set", submission, [&store, account](const json& args, CallContext& context) {
        return identity_set(store, account, args, context);
    });
}

void add_vacation_response_methods(Dispatcher& dispatcher, store::Store& store, const store::Account& account) {
    const std::string vacation(kCapabilityVacationResponse);
    dispatcher.add("VacationResponse/get", vacation, [&store, account](const json& args, CallContext& context) {
        return vacation_get(store, account, args, context);
    });
    dispatcher.add("VacationResponse/set", vacation, [&store, account](const json& args, CallContext& context) {
        return vacation_set(store, account, args, context);
    });
}

}  // namespace magpie::http
