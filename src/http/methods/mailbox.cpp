#include "http/methods/mailbox.h"

#include <algorithm>

#include <fmt/format.h>

#include "base/strings.h"
#include "http/methods/session.h"

namespace magpie::http {
namespace {

using nlohmann::json;

// One mailbox as JMAP sees it, read in one pass so that get, query and the state agree.
struct View {
    store::Mailbox mailbox;
    store::MailboxStatus status;
    std::string id;
    std::string name;       // the last level of the store's '/'-separated name
    json parent_id;         // the parent's id, or null
    json role;              // "inbox", "sent", ... or null
};

json role_of(const store::Mailbox& mailbox) {
    if (iequals(mailbox.name, "INBOX")) return "inbox";
    switch (mailbox.special_use) {
        case store::SpecialUse::sent: return "sent";
        case store::SpecialUse::drafts: return "drafts";
        case store::SpecialUse::trash: return "trash";
        case store::SpecialUse::junk: return "junk";
        case store::SpecialUse::archive: return "archive";
        case store::SpecialUse::none: break;
    }
    return nullptr;
}

std::string mailbox_id(const store::Mailbox& mailbox) { return fmt::format("m{}", mailbox.id); }

Result<std::vector<View>> read_views(store::Store& store, const store::Account& account) {
    auto mailboxes = store.list_mailboxes(account.id);
    if (!mailboxes) return mailboxes.error();
    std::vector<View> views;
    views.reserve(mailboxes->size());
    for (auto& mailbox : *mailboxes) {
        auto status = store.mailbox_status(mailbox.id);
        if (!status) return status.error();
        View view{mailbox, *status, mailbox_id(mailbox), mailbox.name, nullptr, role_of(mailbox)};
        if (auto slash = mailbox.name.rfind('/'); slash != std::string::npos) {
            view.name = mailbox.name.substr(slash + 1);
            std::string parent = mailbox.name.substr(0, slash);
            for (const auto& other : *mailboxes) {
                if (other.name == parent) view.parent_id = mailbox_id(other);
            }
        }
        views.push_back(std::move(view));
    }
    return views;
}

std::string state_of(const std::vector<View>& views) {
    std::string text;
    for (const auto& v : views) {
        text += fmt::format("{}\t{}\t{}\t{}\t{}\t{}\t{}\n", v.mailbox.id, v.mailbox.name,
                            static_cast<int>(v.mailbox.special_use), v.mailbox.subscribed, v.status.highest_modseq,
                            v.status.messages, v.status.unseen);
    }
    return state_digest(text);
}

json to_json(const View& v) {
    bool inbox = v.role == "inbox";
    // The store keeps no threads yet: each message counts as its own thread.
    return json{{"id", v.id},
                {"name", v.name},
                {"parentId", v.parent_id},
                {"role", v.role},
                {"sortOrder", inbox ? 0 : 10},
                {"totalEmails", v.status.messages},
                {"unreadEmails", v.status.unseen},
                {"totalThreads", v.status.messages},
                {"unreadThreads", v.status.unseen},
                {"myRights",
                 {{"mayReadItems", true},
                  {"mayAddItems", true},
                  {"mayRemoveItems", true},
                  {"maySetSeen", true},
                  {"maySetKeywords", true},
                  {"mayCreateChild", true},
                  {"mayRename", !inbox},
                  {"mayDelete", !inbox},
                  {"maySubmit", true}}},
                {"isSubscribed", v.mailbox.subscribed}};
}

MethodError server_fail(const Error& error) { return MethodError{"serverFail", error.message}; }

const std::vector<std::string> kProperties = {"id",           "name",        "parentId",      "role",
                                              "sortOrder",    "totalEmails", "unreadEmails",  "totalThreads",
                                              "unreadThreads", "myRights",   "isSubscribed"};

MethodOutcome mailbox_get(store::Store& store, const store::Account& account, const json& args,
                          CallContext& context) {
    if (auto error = check_account_id(args, account)) return *error;
    const json ids = args.value("ids", json());
    if (!ids.is_null() && !ids.is_array()) return MethodError{"invalidArguments", "\"ids\" must be null or an array"};
    if (ids.is_array()) {
        if (ids.size() > context.limits.max_objects_in_get) {
            return MethodError{"requestTooLarge", fmt::format("more than {} ids", context.limits.max_objects_in_get)};
        }
        for (const auto& id : ids) {
            if (!id.is_string()) return MethodError{"invalidArguments", "\"ids\" must hold strings"};
        }
    }
    const json properties = args.value("properties", json());
    if (!properties.is_null()) {
        if (!properties.is_array()) return MethodError{"invalidArguments", "\"properties\" must be null or an array"};
        for (const auto& p : properties) {
            if (!p.is_string() || std::ranges::find(kProperties, p.get<std::string>()) == kProperties.end()) {
                return MethodError{"invalidArguments", fmt::format("unknown property {}", p.dump())};
            }
        }
    }
    auto views = read_views(store, account);
    if (!views) return server_fail(views.error());
    auto shaped = [&](const View& v) {
        json object = to_json(v);
        if (properties.is_null()) return object;
        json out = {{"id", object["id"]}};
        for (const auto& p : properties) out[p.get<std::string>()] = object[p.get<std::string>()];
        return out;
    };
    json list = json::array();
    json not_found = json::array();
    if (ids.is_null()) {
        if (views->size() > context.limits.max_objects_in_get) {
            return MethodError{"requestTooLarge", "more mailboxes than maxObjectsInGet: ask by id"};
        }
        for (const auto& v : *views) list.push_back(shaped(v));
    } else {
        for (const auto& id : ids) {
            auto it = std::ranges::find_if(*views, [&](const View& v) { return v.id == id; });
            if (it == views->end()) {
                not_found.push_back(id);
            } else {
                list.push_back(shaped(*it));
            }
        }
    }
    return json{{"accountId", jmap_account_id(account)}, {"state", state_of(*views)}, {"list", list},
                {"notFound", not_found}};
}

MethodOutcome mailbox_changes(store::Store& store, const store::Account& account, const json& args) {
    if (auto error = check_account_id(args, account)) return *error;
    auto since = args.find("sinceState");
    if (since == args.end() || !since->is_string()) {
        return MethodError{"invalidArguments", "\"sinceState\" must be a string"};
    }
    auto views = read_views(store, account);
    if (!views) return server_fail(views.error());
    std::string state = state_of(*views);
    if (since->get_ref<const std::string&>() != state) {
        return MethodError{"cannotCalculateChanges", "mailbox changes are not logged; fetch the mailboxes again"};
    }
    return json{{"accountId", jmap_account_id(account)}, {"oldState", state}, {"newState", state},
                {"hasMoreChanges", false}, {"created", json::array()}, {"updated", json::array()},
                {"destroyed", json::array()}, {"updatedProperties", nullptr}};
}

// RFC 8621 2.3: FilterCondition parentId, name, role, hasAnyRole, isSubscribed.
std::optional<MethodError> matches(const json& filter, const View& v, bool& out) {
    out = true;
    if (filter.is_null()) return std::nullopt;
    if (!filter.is_object()) return MethodError{"invalidArguments", "\"filter\" must be an object"};
    if (filter.contains("operator")) return MethodError{"unsupportedFilter", "filter operators are not supported"};
    for (const auto& [key, value] : filter.items()) {
        if (key == "parentId") {
            out = out && value == v.parent_id;
        } else if (key == "role") {
            out = out && value == v.role;
        } else if (key == "hasAnyRole" && value.is_boolean()) {
            out = out && value.get<bool>() == !v.role.is_null();
        } else if (key == "isSubscribed" && value.is_boolean()) {
            out = out && value.get<bool>() == v.mailbox.subscribed;
        } else if (key == "name" && value.is_string()) {
            out = out && to_lower(v.name).find(to_lower(value.get<std::string>())) != std::string::npos;
        } else {
            return MethodError{"unsupportedFilter", fmt::format("unsupported filter condition \"{}\"", key)};
        }
    }
    return std::nullopt;
}

MethodOutcome mailbox_query(store::Store& store, const store::Account& account, const json& args) {
    if (auto error = check_account_id(args, account)) return *error;
    auto views = read_views(store, account);
    if (!views) return server_fail(views.error());
    std::vector<const View*> found;
    const json filter = args.value("filter", json());
    for (const auto& v : *views) {
        bool match = false;
        if (auto error = matches(filter, v, match)) return *error;
        if (match) found.push_back(&v);
    }
    const json sort = args.value("sort", json());
    if (!sort.is_null()) {
        if (!sort.is_array()) return MethodError{"invalidArguments", "\"sort\" must be an array"};
        for (auto it = sort.rbegin(); it != sort.rend(); ++it) {
            if (!it->is_object() || !it->contains("property") || !(*it)["property"].is_string()) {
                return MethodError{"invalidArguments", "a Comparator needs a \"property\""};
            }
            std::string property = (*it)["property"];
            bool ascending = it->value("isAscending", true);
            auto key = [&](const View* v) {
                return property == "name" ? to_lower(v->name) : fmt::format("{:04}", v->role == "inbox" ? 0 : 10);
            };
            if (property != "name" && property != "sortOrder") {
                return MethodError{"unsupportedSort", fmt::format("cannot sort by \"{}\"", property)};
            }
            std::ranges::stable_sort(found, [&](const View* a, const View* b) {
                return ascending ? key(a) < key(b) : key(b) < key(a);
            });
        }
    }
    std::int64_t position = 0;
    if (auto p = args.find("position"); p != args.end() && !p->is_null()) {
        if (!p->is_number_integer()) return MethodError{"invalidArguments", "\"position\" must be an integer"};
        position = p->get<std::int64_t>();
        if (position < 0) position = std::max<std::int64_t>(0, static_cast<std::int64_t>(found.size()) + position);
    }
    std::size_t limit = found.size();
    if (auto l = args.find("limit"); l != args.end() && !l->is_null()) {
        if (!l->is_number_unsigned()) return MethodError{"invalidArguments", "\"limit\" must be a non-negative integer"};
        limit = l->get<std::size_t>();
    }
    json ids = json::array();
    for (std::size_t i = static_cast<std::size_t>(position); i < found.size() && ids.size() < limit; ++i) {
        ids.push_back(found[i]->id);
    }
    json result = {{"accountId", jmap_account_id(account)}, {"queryState", state_of(*views)},
                   {"canCalculateChanges", false}, {"position", position}, {"ids", ids}};
    if (args.value("calculateTotal", false)) result["total"] = found.size();
    return result;
}

}  // namespace

Result<std::string> mailbox_state(store::Store& store, const store::Account& account) {
    auto views = read_views(store, account);
    if (!views) return views.error();
    return state_of(*views);
}

void add_mailbox_methods(Dispatcher& dispatcher, store::Store& store, const store::Account& account) {
    const std::string mail(kCapabilityMail);
    dispatcher.add("Mailbox/get", mail, [&store, account](const json& args, CallContext& context) {
        return mailbox_get(store, account, args, context);
    });
    dispatcher.add("Mailbox/changes", mail, [&store, account](const json& args, CallContext&) {
        return mailbox_changes(store, account, args);
    });
    dispatcher.add("Mailbox/query", mail, [&store, account](const json& args, CallContext&) {
        return mailbox_query(store, account, args);
    });
    dispatcher.add("Mailbox/queryChanges", mail, [account](const json& args, CallContext&) -> MethodOutcome {
        if (auto error = check_account_id(args, account)) return *error;
        return MethodError{"cannotCalculateChanges", "Mailbox/query results are not tracked between states"};
    });
}

}  // namespace magpie::http
