#include "http/methods/mailbox.h"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "base/strings.h"
#include "http/methods/session.h"
#include "http/methods/set_support.h"
#include "store/object_id.h"

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

std::string mailbox_id(const store::Mailbox& mailbox) { return store::mailbox_object_id(mailbox.id); }

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

// A Mailbox state is a snapshot of what a client caches (RFC 8620 5.1 lets a state be any string): per
// mailbox its id, a digest of its properties (name, parent by name, role, subscription) and one of its
// counts. Mailbox/changes compares any earlier state with now, so it needs no log and never loses track.
// Written "s" + ".<id hex>:<properties 8 hex><counts 8 hex>" per mailbox in id order; an account with more
// than kMaxSnapshotMailboxes gets a plain digest ("d...") and /changes answers cannotCalculateChanges.
constexpr std::size_t kMaxSnapshotMailboxes = 256;

struct SnapshotEntry {
    std::int64_t id = 0;
    std::string properties;  // 8 hex digits
    std::string counts;      // 8 hex digits
    bool operator==(const SnapshotEntry&) const = default;
};

std::vector<SnapshotEntry> snapshot_of(const std::vector<View>& views) {
    std::vector<SnapshotEntry> entries;
    for (const auto& v : views) {
        entries.push_back(SnapshotEntry{
            v.mailbox.id,
            state_digest(fmt::format("{}\t{}\t{}", v.mailbox.name, static_cast<int>(v.mailbox.special_use), v.mailbox.subscribed))
                .substr(0, 8),
            state_digest(fmt::format("{}\t{}", v.status.messages, v.status.unseen)).substr(0, 8)});
    }
    std::ranges::sort(entries, {}, &SnapshotEntry::id);
    return entries;
}

std::string encode_snapshot(const std::vector<SnapshotEntry>& entries) {
    std::string text = "s";
    for (const auto& e : entries) text += fmt::format(".{:x}:{}{}", e.id, e.properties, e.counts);
    return text;
}

std::optional<std::vector<SnapshotEntry>> decode_snapshot(std::string_view text) {
    if (text.empty() || text.front() != 's' || text.size() > kMaxSnapshotMailboxes * 40) return std::nullopt;
    text.remove_prefix(1);
    std::vector<SnapshotEntry> entries;
    while (!text.empty()) {
        if (text.front() != '.') return std::nullopt;
        text.remove_prefix(1);
        auto colon = text.find(':');
        if (colon == std::string_view::npos || colon == 0 || colon > 15 || text.size() < colon + 17) return std::nullopt;
        std::string_view id = text.substr(0, colon), hashes = text.substr(colon + 1, 16);
        auto hex = [](std::string_view digits) {
            return digits.find_first_not_of("0123456789abcdef") == std::string_view::npos;
        };
        if (!hex(id) || !hex(hashes)) return std::nullopt;
        entries.push_back(SnapshotEntry{static_cast<std::int64_t>(std::stoull(std::string(id), nullptr, 16)),
                                        std::string(hashes.substr(0, 8)), std::string(hashes.substr(8))});
        text.remove_prefix(colon + 17);
    }
    return entries;
}

std::string state_of(const std::vector<View>& views) {
    if (views.size() > kMaxSnapshotMailboxes) {
        std::string text;
        for (const auto& v : views) {
            text += fmt::format("{}\t{}\t{}\t{}\t{}\t{}\n", v.mailbox.id, v.mailbox.name,
                                static_cast<int>(v.mailbox.special_use), v.mailbox.subscribed, v.status.messages,
                                v.status.unseen);
        }
        return "d" + state_digest(text);
    }
    return encode_snapshot(snapshot_of(views));
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

// RFC 8620 5.2 over snapshot states: created, updated and destroyed by comparing the two snapshots. At most
// maxChanges ids: then the new state is the old snapshot with those changes applied (a state the account
// never had as a whole, which the next call compares with now just the same). updatedProperties lists the
// counts when nothing but counts changed (RFC 8621 2.2).
MethodOutcome mailbox_changes(store::Store& store, const store::Account& account, const json& args,
                              const ApiLimits& limits) {
    if (auto error = check_account_id(args, account)) return *error;
    auto since = args.find("sinceState");
    if (since == args.end() || !since->is_string()) {
        return MethodError{"invalidArguments", "\"sinceState\" must be a string"};
    }
    auto max_changes_or = max_changes_of(args, limits);
    if (auto* error = std::get_if<MethodError>(&max_changes_or)) return *error;
    const std::optional<std::size_t> max_changes = std::get<std::size_t>(max_changes_or);
    auto views = read_views(store, account);
    if (!views) return server_fail(views.error());
    const std::string state = state_of(*views);
    const std::string& old_state = since->get_ref<const std::string&>();
    auto old_entries = decode_snapshot(old_state);
    if (!old_entries || state.front() != 's') {
        return MethodError{"cannotCalculateChanges", "not a Mailbox state this server can compare; fetch the mailboxes again"};
    }
    const auto now = snapshot_of(*views);
    std::map<std::int64_t, SnapshotEntry> before, after;
    for (const auto& e : *old_entries) before[e.id] = e;
    for (const auto& e : now) after[e.id] = e;
    // Every change in id order; each applied to `reached` as it is taken.
    std::map<std::int64_t, SnapshotEntry> reached = before;
    json created = json::array(), updated = json::array(), destroyed = json::array();
    bool counts_only = true, more = false;
    std::size_t taken = 0;
    std::set<std::int64_t> ids;
    for (const auto& [id, e] : before) ids.insert(id);
    for (const auto& [id, e] : after) ids.insert(id);
    for (auto id : ids) {
        auto was = before.find(id);
        auto is = after.find(id);
        if (was != before.end() && is != after.end() && was->second == is->second) continue;
        if (max_changes && taken == *max_changes) {
            more = true;
            break;
        }
        ++taken;
        const std::string jmap_id = store::mailbox_object_id(id);
        if (was == before.end()) {
            created.push_back(jmap_id);
            reached[id] = is->second;
        } else if (is == after.end()) {
            destroyed.push_back(jmap_id);
            reached.erase(id);
        } else {
            updated.push_back(jmap_id);
            if (was->second.properties != is->second.properties) counts_only = false;
            reached[id] = is->second;
        }
    }
    std::vector<SnapshotEntry> reached_entries;
    for (const auto& [id, e] : reached) reached_entries.push_back(e);
    const bool counts_changed_only = counts_only && created.empty() && destroyed.empty() && !updated.empty();
    json updated_properties = counts_changed_only
                                  ? json::array({"totalEmails", "unreadEmails", "totalThreads", "unreadThreads"})
                                  : json();
    return json{{"accountId", jmap_account_id(account)}, {"oldState", old_state},
                {"newState", more ? encode_snapshot(reached_entries) : state}, {"hasMoreChanges", more},
                {"created", created}, {"updated", updated}, {"destroyed", destroyed},
                {"updatedProperties", updated_properties}};
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


// ---- Mailbox/set (RFC 8621 2.5). Names are the last level of the store's '/'-separated names, so a name
// holds no '/'; a parent is the mailbox one level up. Each change is its own store write, so a failure
// leaves the ones before it done, as the per-object answers say.

constexpr std::size_t kMaxMailboxNameOctets = 490;  // maxSizeMailboxName in the session resource

std::optional<store::SpecialUse> special_use_of_role(const json& role) {
    if (role.is_null()) return store::SpecialUse::none;
    if (!role.is_string()) return std::nullopt;
    const auto& name = role.get_ref<const std::string&>();
    if (name == "sent") return store::SpecialUse::sent;
    if (name == "drafts") return store::SpecialUse::drafts;
    if (name == "trash") return store::SpecialUse::trash;
    if (name == "junk") return store::SpecialUse::junk;
    if (name == "archive") return store::SpecialUse::archive;
    return std::nullopt;  // "inbox" is INBOX's alone; other IANA roles have no IMAP special-use here
}

bool valid_name(const json& name) {
    if (!name.is_string()) return false;
    const auto& text = name.get_ref<const std::string&>();
    if (text.empty() || text.size() > kMaxMailboxNameOctets || text.find('/') != std::string::npos) return false;
    return std::ranges::none_of(text, [](unsigned char c) { return c < 0x20 || c == 0x7f; });
}

const View* find_view(const std::vector<View>& views, std::string_view id) {
    auto it = std::ranges::find_if(views, [&](const View& v) { return v.id == id; });
    return it == views.end() ? nullptr : &*it;
}

bool is_descendant(const View& candidate, const View& ancestor) {
    return candidate.mailbox.name.starts_with(ancestor.mailbox.name + "/");
}

struct SetOutcome {
    json answer;     // the created/updated object (or null)
    json error;      // a SetError, or null
};

SetOutcome failed(std::string_view type, std::string_view description, std::vector<std::string> properties = {}) {
    return SetOutcome{nullptr, set_error(type, description, properties)};
}

const std::vector<std::string> kSettable = {"name", "parentId", "role", "isSubscribed", "sortOrder"};

// The parent's full name for a parentId value, "" for none; nullopt when it names no mailbox.
std::optional<std::string> parent_name(const json& parent_id, const std::vector<View>& views, const CallContext& context) {
    if (parent_id.is_null()) return std::string();
    if (!parent_id.is_string()) return std::nullopt;
    auto resolved = resolve_creation_id(parent_id.get<std::string>(), context);
    if (!resolved) return std::nullopt;
    const View* parent = find_view(views, *resolved);
    if (!parent) return std::nullopt;
    return parent->mailbox.name;
}

std::optional<SetOutcome> check_role(const json& role, const std::vector<View>& views, const View* self) {
    auto use = special_use_of_role(role);
    if (!use) return failed("invalidProperties", "this role cannot be given here", {"role"});
    if (*use == store::SpecialUse::none) return std::nullopt;
    for (const auto& v : views) {
        if (&v != self && v.role == role) {
            return failed("invalidProperties", "another mailbox has this role", {"role"});
        }
    }
    return std::nullopt;
}

SetOutcome create_one(store::Store& store, const store::Account& account, const json& object,
                      const CallContext& context) {
    for (const auto& [key, value] : object.items()) {
        if (std::ranges::find(kSettable, key) == kSettable.end()) {
            return failed("invalidProperties", fmt::format("\"{}\" cannot be set", key), {key});
        }
    }
    auto views = read_views(store, account);
    if (!views) return failed("serverFail", views.error().message);
    if (!object.contains("name") || !valid_name(object["name"])) {
        return failed("invalidProperties", "a name of 1 to 490 octets, without '/' or control characters", {"name"});
    }
    auto parent = parent_name(object.value("parentId", json()), *views, context);
    if (!parent) return failed("invalidProperties", "no such parent mailbox", {"parentId"});
    const json role = object.value("role", json());
    if (auto refused = check_role(role, *views, nullptr)) return *refused;
    const json subscribed = object.value("isSubscribed", json(false));
    if (!subscribed.is_boolean()) return failed("invalidProperties", "\"isSubscribed\" is a boolean", {"isSubscribed"});
    if (auto order = object.find("sortOrder"); order != object.end() && !order->is_number_unsigned()) {
        return failed("invalidProperties", "\"sortOrder\" is an unsigned integer", {"sortOrder"});
    }
    std::string full = parent->empty() ? object["name"].get<std::string>() : *parent + "/" + object["name"].get<std::string>();
    auto created = store.create_mailbox(account.id, full);
    if (!created) {
        if (created.error().code == Errc::already_exists || created.error().code == Errc::invalid_argument) {
            return failed("invalidProperties", created.error().message, {"name"});
        }
        return failed("serverFail", created.error().message);
    }
    if (auto use = special_use_of_role(role); use && *use != store::SpecialUse::none) {
        if (auto set = store.set_special_use(account.id, created->id, *use); !set) return failed("serverFail", set.error().message);
    }
    if (subscribed.get<bool>()) {
        if (auto set = store.set_subscribed(account.id, full, true); !set) return failed("serverFail", set.error().message);
    }
    // What the server chose: counts, rights, and the sortOrder it keeps (it stores none of its own).
    return SetOutcome{json{{"id", mailbox_id(*created)},
                           {"sortOrder", 10},
                           {"totalEmails", 0},
                           {"unreadEmails", 0},
                           {"totalThreads", 0},
                           {"unreadThreads", 0},
                           {"isSubscribed", subscribed.get<bool>()},
                           {"myRights", to_json(View{*created, {}, mailbox_id(*created), "", nullptr, nullptr})["myRights"]}},
                      nullptr};
}

SetOutcome update_one(store::Store& store, const store::Account& account, const std::string& id, const json& patch,
                      const CallContext& context) {
    auto views = read_views(store, account);
    if (!views) return failed("serverFail", views.error().message);
    const View* self = find_view(*views, id);
    if (!self) return failed("notFound", "no such mailbox");
    const bool inbox = self->role == "inbox";
    for (const auto& [key, value] : patch.items()) {
        if (std::ranges::find(kSettable, key) == kSettable.end()) {
            return failed("invalidProperties", fmt::format("\"{}\" cannot be set", key), {key});
        }
    }
    json answer = nullptr;
    if (patch.contains("name") || patch.contains("parentId")) {
        const json name = patch.value("name", json(self->name));
        if (!valid_name(name)) {
            return failed("invalidProperties", "a name of 1 to 490 octets, without '/' or control characters", {"name"});
        }
        auto parent = parent_name(patch.value("parentId", self->parent_id), *views, context);
        if (!parent) return failed("invalidProperties", "no such parent mailbox", {"parentId"});
        if (!parent->empty() && (*parent == self->mailbox.name || parent->starts_with(self->mailbox.name + "/"))) {
            return failed("invalidProperties", "a mailbox cannot move under itself", {"parentId"});
        }
        std::string full = parent->empty() ? name.get<std::string>() : *parent + "/" + name.get<std::string>();
        if (full != self->mailbox.name) {
            if (inbox) return failed("forbidden", "INBOX cannot be renamed or moved (mayRename is false)");
            auto renamed = store.rename_mailbox(account.id, self->mailbox.name, full);
            if (!renamed) {
                if (renamed.error().code == Errc::already_exists || renamed.error().code == Errc::invalid_argument) {
                    return failed("invalidProperties", renamed.error().message, {"name"});
                }
                return failed("serverFail", renamed.error().message);
            }
        }
    }
    if (auto role = patch.find("role"); role != patch.end() && *role != self->role) {
        if (inbox) return failed("forbidden", "INBOX keeps the inbox role");
        if (auto refused = check_role(*role, *views, self)) return *refused;
        auto set = store.set_special_use(account.id, self->mailbox.id, *special_use_of_role(*role));
        if (!set) return failed("serverFail", set.error().message);
    }
    if (auto subscribed = patch.find("isSubscribed"); subscribed != patch.end()) {
        if (!subscribed->is_boolean()) {
            return failed("invalidProperties", "\"isSubscribed\" is a boolean", {"isSubscribed"});
        }
        auto refreshed = read_views(store, account);
        if (!refreshed) return failed("serverFail", refreshed.error().message);
        const View* now = find_view(*refreshed, id);
        if (now && now->mailbox.subscribed != subscribed->get<bool>()) {
            auto set = store.set_subscribed(account.id, now->mailbox.name, subscribed->get<bool>());
            if (!set) return failed("serverFail", set.error().message);
        }
    }
    if (auto order = patch.find("sortOrder"); order != patch.end()) {
        if (!order->is_number_unsigned()) {
            return failed("invalidProperties", "\"sortOrder\" is an unsigned integer", {"sortOrder"});
        }
        // The order is the server's (INBOX first, then by name): tell the client what it is.
        answer = json{{"sortOrder", inbox ? 0 : 10}};
    }
    return SetOutcome{answer, nullptr};
}

SetOutcome destroy_one(store::Store& store, const store::Account& account, const std::string& id, bool remove_emails) {
    auto views = read_views(store, account);
    if (!views) return failed("serverFail", views.error().message);
    const View* self = find_view(*views, id);
    if (!self) return failed("notFound", "no such mailbox");
    if (self->role == "inbox") return failed("forbidden", "INBOX cannot be destroyed (mayDelete is false)");
    for (const auto& v : *views) {
        if (is_descendant(v, *self)) return failed("mailboxHasChild", "destroy or move its child mailboxes first");
    }
    if (self->status.messages > 0 && !remove_emails) {
        return failed("mailboxHasEmail", "the mailbox holds emails and onDestroyRemoveEmails is false");
    }
    auto deleted = store.delete_mailbox(account.id, self->mailbox.name);
    if (!deleted) {
        if (deleted.error().code == Errc::permission_denied) return failed("forbidden", deleted.error().message);
        return failed("serverFail", deleted.error().message);
    }
    return SetOutcome{nullptr, nullptr};
}

MethodOutcome mailbox_set(store::Store& store, const store::Account& account, const json& args, CallContext& context) {
    if (auto error = check_account_id(args, account)) return *error;
    auto parsed = parse_set_request(args, context.limits);
    if (auto* error = std::get_if<MethodError>(&parsed)) return *error;
    auto& request = std::get<SetRequest>(parsed);
    const json remove = args.value("onDestroyRemoveEmails", json(false));
    if (!remove.is_boolean()) return MethodError{"invalidArguments", "\"onDestroyRemoveEmails\" must be a boolean"};
    auto before = mailbox_state(store, account);
    if (!before) return server_fail(before.error());
    if (request.if_in_state && *request.if_in_state != *before) {
        return MethodError{"stateMismatch", "the mailboxes changed since that state"};
    }
    json created = json::object(), not_created = json::object();
    json updated = json::object(), not_updated = json::object();
    json destroyed = json::array(), not_destroyed = json::object();
    auto server_failure = [](const SetOutcome& outcome) {
        return outcome.error.is_object() && outcome.error["type"] == "serverFail";
    };
    // A parent made in this request ("#c1") is made first, whatever the order of the keys.
    std::vector<std::string> pending;
    for (const auto& [creation_id, object] : request.create.items()) pending.push_back(creation_id);
    std::vector<std::string> order;
    while (!pending.empty()) {
        std::vector<std::string> waiting;
        for (const auto& creation_id : pending) {
            const json parent = request.create[creation_id].value("parentId", json());
            const bool waits = parent.is_string() && parent.get<std::string>().starts_with("#") &&
                               std::ranges::find(pending, parent.get<std::string>().substr(1)) != pending.end();
            (waits ? waiting : order).push_back(creation_id);
        }
        if (waiting.size() == pending.size()) {  // a cycle of references: each fails on its missing parent
            order.insert(order.end(), waiting.begin(), waiting.end());
            break;
        }
        pending = std::move(waiting);
    }
    for (const auto& creation_id : order) {
        const json& object = request.create[creation_id];
        auto outcome = create_one(store, account, object, context);
        if (server_failure(outcome)) return MethodError{"serverFail", outcome.error.value("description", "")};
        if (!outcome.error.is_null()) {
            not_created[creation_id] = outcome.error;
        } else {
            context.created_ids[creation_id] = outcome.answer["id"];
            created[creation_id] = outcome.answer;
        }
    }
    for (const auto& [id, patch] : request.update.items()) {
        auto outcome = update_one(store, account, id, patch, context);
        if (server_failure(outcome)) return MethodError{"serverFail", outcome.error.value("description", "")};
        if (!outcome.error.is_null()) {
            not_updated[id] = outcome.error;
        } else {
            updated[id] = outcome.answer;
        }
    }
    // Children before parents, so destroying a mailbox with its children in one request works.
    auto views = read_views(store, account);
    if (!views) return server_fail(views.error());
    auto depth = [&](const std::string& id) {
        const View* v = find_view(*views, id);
        return v ? std::ranges::count(v->mailbox.name, '/') : -1;
    };
    std::vector<std::string> destroy_order = request.destroy;
    std::ranges::stable_sort(destroy_order, [&](const std::string& a, const std::string& b) { return depth(a) > depth(b); });
    for (const auto& id : destroy_order) {
        auto outcome = destroy_one(store, account, id, remove.get<bool>());
        if (server_failure(outcome)) return MethodError{"serverFail", outcome.error.value("description", "")};
        if (!outcome.error.is_null()) {
            not_destroyed[id] = outcome.error;
        } else {
            destroyed.push_back(id);
        }
    }
    auto after = mailbox_state(store, account);
    if (!after) return server_fail(after.error());
    auto or_null = [](json& object) { return object.empty() ? json() : object; };
    return json{{"accountId", jmap_account_id(account)},
                {"oldState", *before},
                {"newState", *after},
                {"created", or_null(created)},
                {"updated", or_null(updated)},
                {"destroyed", destroyed.empty() ? json() : destroyed},
                {"notCreated", or_null(not_created)},
                {"notUpdated", or_null(not_updated)},
                {"notDestroyed", or_null(not_destroyed)}};
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
    dispatcher.add("Mailbox/changes", mail, [&store, account](const json& args, CallContext& context) {
        return mailbox_changes(store, account, args, context.limits);
    });
    dispatcher.add("Mailbox/query", mail, [&store, account](const json& args, CallContext&) {
        return mailbox_query(store, account, args);
    });
    dispatcher.add("Mailbox/set", mail, [&store, account](const json& args, CallContext& context) {
        return mailbox_set(store, account, args, context);
    });
    dispatcher.add("Mailbox/queryChanges", mail, [account](const json& args, CallContext&) -> MethodOutcome {
        if (auto error = check_account_id(args, account)) return *error;
        return MethodError{"cannotCalculateChanges", "Mailbox/query results are not tracked between states"};
    });
}

}  // namespace magpie::http
