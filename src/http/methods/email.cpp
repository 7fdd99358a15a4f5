#include "http/methods/email.h"

#include <algorithm>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <set>

#include <fmt/format.h>

#include "base/strings.h"
#include "base/time.h"
#include "http/email_search.h"
#include "http/email_view.h"
#include "http/methods/session.h"
#include "http/methods/set_support.h"
#include "mail/builder.h"
#include "store/blob.h"
#include "store/flags.h"
#include "store/object_id.h"
#include "store/summary.h"

namespace magpie::http {
namespace {

using nlohmann::json;

const std::vector<std::string> kMetadata = {"id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt"};
const std::vector<std::string> kDefaultProperties = {
    "id",      "blobId", "threadId", "mailboxIds", "keywords", "size",          "receivedAt", "messageId",
    "inReplyTo", "references", "sender", "from",   "to",       "cc",            "bcc",        "replyTo",
    "subject", "sentAt", "hasAttachment", "preview", "bodyValues", "textBody", "htmlBody", "attachments"};

MethodError server_fail(const Error& error) { return MethodError{"serverFail", error.message}; }

// An Email, Thread or Mailbox id ('e', 't', 'm'): the spelling IMAP's OBJECTID shows too (store/object_id.h).
std::optional<std::int64_t> number_with_prefix(std::string_view id, char prefix) {
    return store::parse_object_id(id, prefix);
}

std::string mailbox_jmap_id(std::int64_t id) { return store::mailbox_object_id(id); }

json keywords_json(const std::vector<std::string>& flags) {
    json out = json::object();
    for (const auto& flag : flags) {
        if (flag == "\\Recent") continue;
        out[store::jmap_keyword(flag)] = true;
    }
    return out;
}

json metadata_json(const store::Email& email, const std::string& name) {
    if (name == "id") return email_id(email.id);
    if (name == "blobId") return email.blob_id;
    if (name == "threadId") return thread_id(email.thread_id);
    if (name == "size") return email.size;
    if (name == "receivedAt") return utc_date(email.received_at);
    if (name == "keywords") return keywords_json(email.flags);
    json boxes = json::object();
    for (const auto& membership : email.mailboxes) boxes[mailbox_jmap_id(membership.mailbox_id)] = true;
    return boxes;
}

bool flag(const json& args, const char* name) { return args.value(name, json(false)) == json(true); }

std::variant<BodyValueOptions, MethodError> body_options(const json& args) {
    BodyValueOptions options;
    options.fetch_text = flag(args, "fetchTextBodyValues");
    options.fetch_html = flag(args, "fetchHTMLBodyValues");
    options.fetch_all = flag(args, "fetchAllBodyValues");
    if (auto it = args.find("maxBodyValueBytes"); it != args.end() && !it->is_null()) {
        if (!it->is_number_unsigned() || it->get<std::uint64_t>() == 0) {
            return MethodError{"invalidArguments", "\"maxBodyValueBytes\" must be a positive integer"};
        }
        options.max_bytes = it->get<std::size_t>();
    }
    if (auto it = args.find("bodyProperties"); it != args.end() && !it->is_null()) {
        if (!it->is_array()) return MethodError{"invalidArguments", "\"bodyProperties\" must be an array"};
        std::vector<std::string> properties;
        for (const auto& p : *it) {
            if (!p.is_string()) return MethodError{"invalidArguments", "\"bodyProperties\" must hold strings"};
            properties.push_back(p.get<std::string>());
        }
        options.body_properties = std::move(properties);
    }
    return options;
}

MethodOutcome email_get(store::Store& store, const store::Account& account, const json& args, CallContext& context) {
    if (auto error = check_account_id(args, account)) return *error;
    auto ids = parse_get_ids(args, context.limits);
    if (auto* error = std::get_if<MethodError>(&ids)) return *error;
    std::vector<std::string> properties = kDefaultProperties;
    if (auto it = args.find("properties"); it != args.end() && !it->is_null()) {
        if (!it->is_array()) return MethodError{"invalidArguments", "\"properties\" must be null or an array"};
        properties.clear();
        for (const auto& p : *it) {
            if (!p.is_string() || (std::ranges::find(kMetadata, p.get<std::string>()) == kMetadata.end() &&
                                   !is_message_property(p.get<std::string>()))) {
                return MethodError{"invalidArguments", fmt::format("unknown property {}", p.dump())};
            }
            properties.push_back(p.get<std::string>());
        }
    }
    auto options = body_options(args);
    if (auto* error = std::get_if<MethodError>(&options)) return *error;
    auto state = store.account_state(account.id);
    if (!state) return server_fail(state.error());

    std::vector<std::string> wanted;
    if (const auto& given = std::get<std::optional<std::vector<std::string>>>(ids)) {
        wanted = *given;
    } else {
        store::EmailQuery all;
        all.limit = context.limits.max_objects_in_get + 1;
        auto found = store.query_emails(account.id, all);
        if (!found) return server_fail(found.error());
        if (found->total > context.limits.max_objects_in_get) {
            return MethodError{"requestTooLarge", "more Emails than maxObjectsInGet: ask by id"};
        }
        for (auto id : found->ids) wanted.push_back(email_id(id));
    }
    std::vector<std::int64_t> numbers;
    for (const auto& id : wanted) {
        if (auto n = email_number(id)) numbers.push_back(*n);
    }
    auto emails = store.find_emails(account.id, numbers);
    if (!emails) return server_fail(emails.error());
    const bool needs_bytes = std::ranges::any_of(properties, [](const std::string& p) { return is_message_property(p); });
    json list = json::array(), not_found = json::array();
    for (const auto& id : wanted) {
        auto n = email_number(id);
        auto it = n ? std::ranges::find(*emails, *n, &store::Email::id) : emails->end();
        if (it == emails->end()) {
            not_found.push_back(id);
            continue;
        }
        json object = {{"id", id}};
        if (needs_bytes) {
            auto bytes = store.read_blob(it->blob_id);
            if (!bytes) return server_fail(bytes.error());
            object.update(email_view(*bytes, it->blob_id, properties, std::get<BodyValueOptions>(options)));
        }
        for (const auto& p : properties) {
            if (std::ranges::find(kMetadata, p) != kMetadata.end()) object[p] = metadata_json(*it, p);
        }
        list.push_back(std::move(object));
    }
    return json{{"accountId", jmap_account_id(account)}, {"state", std::to_string(*state)}, {"list", list},
                {"notFound", not_found}};
}

// ---- Email/query (RFC 8621 4.4).

// One FilterCondition (RFC 8621 4.4.1) as a store filter: its fields ANDed, with "text" as (the stored
// From/To/Cc/Subject OR the Bcc field and the body) and the conditions on the message bytes as content
// conditions (http/email_search.h) that the query's matcher answers.
// Every FilterCondition property of RFC 8621 4.4.1.
constexpr std::string_view kFilterConditions[] = {
    "inMailbox", "inMailboxOtherThan", "before", "after", "minSize", "maxSize", "allInThreadHaveKeyword",
    "someInThreadHaveKeyword", "noneInThreadHaveKeyword", "hasKeyword", "notKeyword", "hasAttachment", "text",
    "from", "to", "cc", "bcc", "subject", "body", "header"};

// `max_terms` ([http] max_search_terms): the most search terms one "text" or "body" value may hold. Each term is
// a condition of its own, so a value of a million one-letter words would otherwise make a million filters.
std::optional<MethodError> to_condition(const json& filter, store::EmailFilter& out, std::size_t max_terms) {
    store::EmailCondition condition;
    std::vector<store::EmailFilter> text_alternatives;
    for (const auto& item : filter.items()) {
        const std::string& key = item.key();
        const json& value = item.value();
        auto text = [&]() -> std::optional<std::string> {
            if (!value.is_string()) return std::nullopt;
            return value.get<std::string>();
        };
        auto date = [&]() { return value.is_string() ? parse_utc_date(value.get<std::string>()) : std::nullopt; };
        if (key == "inMailbox") {
            auto n = value.is_string() ? number_with_prefix(value.get<std::string>(), 'm') : std::nullopt;
            condition.in_mailbox = n ? *n : -1;  // an unknown mailbox matches nothing
        } else if (key == "inMailboxOtherThan" && value.is_array()) {
            for (const auto& id : value) {
                auto n = id.is_string() ? number_with_prefix(id.get<std::string>(), 'm') : std::nullopt;
                if (n) condition.in_mailbox_other_than.push_back(*n);
            }
        } else if ((key == "before" || key == "after") && date()) {
            (key == "before" ? condition.before : condition.after) = *date();
        } else if ((key == "minSize" || key == "maxSize") && value.is_number_unsigned()) {
            (key == "minSize" ? condition.min_size : condition.max_size) = value.get<std::uint64_t>();
        } else if ((key == "hasKeyword" || key == "notKeyword") && text()) {
            (key == "hasKeyword" ? condition.has_keyword : condition.not_keyword) = store::imap_flag_of_keyword(*text());
        } else if (key == "allInThreadHaveKeyword" && text()) {
            condition.all_in_thread_have_keyword = store::imap_flag_of_keyword(*text());
        } else if (key == "someInThreadHaveKeyword" && text()) {
            condition.some_in_thread_have_keyword = store::imap_flag_of_keyword(*text());
        } else if (key == "noneInThreadHaveKeyword" && text()) {
            condition.none_in_thread_have_keyword = store::imap_flag_of_keyword(*text());
        } else if ((key == "text" || key == "body") && text() && search_terms(*text()).size() > max_terms) {
            return MethodError{"invalidArguments",
                               fmt::format("\"{}\" holds more than {} search terms", key, max_terms)};
        } else if (key == "text" && text()) {
            // Every term somewhere: in the stored From/To/Cc/Subject or in the Bcc field and the body.
            for (auto& term : search_terms(*text())) {
                store::EmailFilter stored, content;
                content.condition.content.push_back(json{{"text", term}}.dump());
                stored.condition.text = std::move(term);
                store::EmailFilter either;
                either.op = store::EmailFilter::Operator::any_of;
                either.operands = {std::move(stored), std::move(content)};
                text_alternatives.push_back(std::move(either));
            }
        } else if (key == "body" && text()) {
            for (auto& term : search_terms(*text())) condition.content.push_back(json{{key, term}}.dump());
        } else if (key == "from" && text()) {
            condition.from = *text();
        } else if (key == "to" && text()) {
            condition.to = *text();
        } else if (key == "cc" && text()) {
            condition.cc = *text();
        } else if (key == "subject" && text()) {
            condition.subject = *text();
        } else if (key == "bcc" && text()) {
            condition.content.push_back(json{{key, value}}.dump());
        } else if (key == "hasAttachment" && value.is_boolean()) {
            condition.content.push_back(json{{key, value}}.dump());
        } else if (key == "header" && value.is_array() && (value.size() == 1 || value.size() == 2) &&
                   std::ranges::all_of(value, [](const json& v) { return v.is_string(); }) &&
                   !value[0].get_ref<const std::string&>().empty()) {
            condition.content.push_back(json{{key, value}}.dump());
        } else if (std::ranges::find(kFilterConditions, key) != std::end(kFilterConditions)) {
            // A condition this server knows, with a value of the wrong type or form (a date without its
            // time or "Z", a number for a string): the request is wrong, not the server (RFC 8620 3.6.2).
            return MethodError{"invalidArguments", fmt::format("the filter condition \"{}\" has an invalid value", key)};
        } else {
            return MethodError{"unsupportedFilter", fmt::format("the filter condition \"{}\" is not supported", key)};
        }
    }
    if (text_alternatives.empty()) {
        out.op = store::EmailFilter::Operator::condition;
        out.condition = std::move(condition);
        return std::nullopt;
    }
    out.op = store::EmailFilter::Operator::all_of;
    store::EmailFilter rest;
    rest.condition = std::move(condition);
    out.operands.push_back(std::move(rest));
    for (auto& alternative : text_alternatives) out.operands.push_back(std::move(alternative));
    return std::nullopt;
}

// The content matcher of one query: http/email_search.h's answers, at most `budget` of them.
struct ContentBudget {
    std::size_t left = 0;
    bool exhausted = false;
};
store::ContentMatcher content_matcher(const std::shared_ptr<ContentBudget>& budget) {
    return [budget](std::string_view bytes, std::string_view condition) -> Result<bool> {
        if (budget->left == 0) {
            budget->exhausted = true;
            return make_error(Errc::limit_exceeded, "the query would read more messages than max_query_message_reads");
        }
        --budget->left;
        auto answer = matches_content(bytes, json::parse(condition, nullptr, false));
        if (!answer) return make_error(Errc::invalid_argument, "not a content condition");
        return *answer;
    };
}

std::optional<MethodError> to_filter(const json& filter, store::EmailFilter& out, std::size_t depth,
                                     std::size_t max_terms) {
    if (!filter.is_object()) return MethodError{"invalidArguments", "a filter is an object"};
    if (depth > 16) return MethodError{"unsupportedFilter", "the filter is nested too deeply"};
    if (auto op = filter.find("operator"); op != filter.end()) {
        if (*op == "AND") {
            out.op = store::EmailFilter::Operator::all_of;
        } else if (*op == "OR") {
            out.op = store::EmailFilter::Operator::any_of;
        } else if (*op == "NOT") {
            out.op = store::EmailFilter::Operator::none_of;
        } else {
            return MethodError{"unsupportedFilter", "operator is AND, OR or NOT"};
        }
        auto conditions = filter.find("conditions");
        if (conditions == filter.end() || !conditions->is_array()) {
            return MethodError{"invalidArguments", "a FilterOperator needs \"conditions\""};
        }
        for (const auto& operand : *conditions) {
            store::EmailFilter child;
            if (auto error = to_filter(operand, child, depth + 1, max_terms)) return error;
            out.operands.push_back(std::move(child));
        }
        return std::nullopt;
    }
    return to_condition(filter, out, max_terms);
}

// Whether an Email's presence in the results depends on the other Emails of its thread (collapseThreads,
// or a thread keyword condition): Email/queryChanges then treats every Email of a changed thread as changed.
bool thread_bound(const store::EmailFilter& filter) {
    const auto& c = filter.condition;
    if (c.all_in_thread_have_keyword || c.some_in_thread_have_keyword || c.none_in_thread_have_keyword) return true;
    return std::ranges::any_of(filter.operands, [](const store::EmailFilter& f) { return thread_bound(f); });
}
bool thread_bound(const store::EmailQuery& query) { return query.collapse_threads || thread_bound(query.filter); }

bool has_content(const store::EmailFilter& filter) {
    if (!filter.condition.content.empty()) return true;
    return std::ranges::any_of(filter.operands, [](const store::EmailFilter& f) { return has_content(f); });
}

std::variant<store::EmailQuery, MethodError> to_query(const json& args, std::size_t max_terms) {
    store::EmailQuery query;
    if (auto it = args.find("filter"); it != args.end() && !it->is_null()) {
        if (auto error = to_filter(*it, query.filter, 0, max_terms)) return *error;
    }
    if (auto it = args.find("sort"); it != args.end() && !it->is_null()) {
        if (!it->is_array()) return MethodError{"invalidArguments", "\"sort\" must be an array"};
        for (const auto& comparator : *it) {
            if (!comparator.is_object() || !comparator.contains("property") || !comparator["property"].is_string()) {
                return MethodError{"invalidArguments", "a Comparator needs a \"property\""};
            }
            const std::string property = comparator["property"];
            store::EmailSort sort;
            sort.ascending = comparator.value("isAscending", json(true)) == json(true);
            if (property == "receivedAt") {
                sort.key = store::EmailSortKey::received_at;
            } else if (property == "sentAt") {
                sort.key = store::EmailSortKey::sent_at;
            } else if (property == "size") {
                sort.key = store::EmailSortKey::size;
            } else if (property == "from") {
                sort.key = store::EmailSortKey::from;
            } else if (property == "subject") {
                sort.key = store::EmailSortKey::subject;
            } else {
                return MethodError{"unsupportedSort", fmt::format("cannot sort by \"{}\"", property)};
            }
            query.sort.push_back(sort);
        }
    }
    query.collapse_threads = flag(args, "collapseThreads");
    if (auto it = args.find("position"); it != args.end() && !it->is_null()) {
        if (!it->is_number_integer()) return MethodError{"invalidArguments", "\"position\" must be an integer"};
        query.position = it->get<std::int64_t>();
    }
    if (auto it = args.find("anchor"); it != args.end() && !it->is_null()) {
        auto n = it->is_string() ? email_number(it->get<std::string>()) : std::nullopt;
        query.anchor = n ? *n : -1;
        if (auto offset = args.find("anchorOffset"); offset != args.end() && !offset->is_null()) {
            if (!offset->is_number_integer()) return MethodError{"invalidArguments", "\"anchorOffset\" must be an integer"};
            query.anchor_offset = offset->get<std::int64_t>();
        }
    }
    if (auto it = args.find("limit"); it != args.end() && !it->is_null()) {
        if (!it->is_number_unsigned()) return MethodError{"invalidArguments", "\"limit\" must be a non-negative integer"};
        query.limit = it->get<std::size_t>();
    }
    return query;
}

MethodOutcome email_query(store::Store& store, const store::Account& account, const json& args,
                          const CallContext& context) {
    if (auto error = check_account_id(args, account)) return *error;
    auto query = to_query(args, context.limits.max_search_terms);
    if (auto* error = std::get_if<MethodError>(&query)) return *error;
    auto& q = std::get<store::EmailQuery>(query);
    auto budget = std::make_shared<ContentBudget>(ContentBudget{context.limits.max_query_message_reads});
    if (has_content(q.filter)) q.content_matcher = content_matcher(budget);
    const bool zero_limit = args.contains("limit") && args["limit"] == json(0);
    auto result = store.query_emails(account.id, q);
    if (!result) {
        if (budget->exhausted) {
            return MethodError{"unsupportedFilter",
                               fmt::format("searching the message text would read more than {} messages: narrow the "
                                           "filter (inMailbox, before, after)", context.limits.max_query_message_reads)};
        }
        if (result.error().code == Errc::not_found) return MethodError{"anchorNotFound", "the anchor is not in the results"};
        if (result.error().code == Errc::limit_exceeded) return MethodError{"unsupportedFilter", result.error().message};
        return server_fail(result.error());
    }
    json ids = json::array();
    if (!zero_limit) {
        for (auto id : result->ids) ids.push_back(email_id(id));
    }
    json answer = {{"accountId", jmap_account_id(account)},
                   {"queryState", std::to_string(result->state)},
                   {"canCalculateChanges", true},
                   {"position", result->position},
                   {"ids", ids}};
    if (flag(args, "calculateTotal")) answer["total"] = result->total;
    if (q.limit) answer["limit"] = q.limit;
    return answer;
}

// ---- Email/queryChanges (RFC 8620 5.6) over the Email log: every Email changed since the old state is
// reported removed (the filter and sort may be on mutable properties, so its place may have moved: the RFC
// lets removed hold ids beyond those that left), and added back at its index when it is in the current
// results. The results are read before the log, so a change after them is reported again next time.
// With collapseThreads or a thread keyword condition (RFC 8621 4.4.3), a change to one Email can bring
// another of its thread in or out (a new first Email of the thread, a keyword now on all of them): every
// Email of a thread the log touched counts as changed too.

// The Emails of the threads changed since `since` (each touched by a row of the Email log), beside `changed`.
Result<std::set<std::int64_t>> thread_mates(store::Store& store, const store::Account& account, std::uint64_t since) {
    auto threads = store.thread_changes(account.id, since, std::numeric_limits<std::size_t>::max());
    if (!threads) return threads.error();
    std::vector<std::int64_t> live = threads->created;
    live.insert(live.end(), threads->updated.begin(), threads->updated.end());
    std::set<std::int64_t> mates;
    if (live.empty()) return mates;
    auto found = store.find_threads(account.id, live);
    if (!found) return found.error();
    for (const auto& thread : *found) mates.insert(thread.email_ids.begin(), thread.email_ids.end());
    return mates;
}

MethodOutcome email_query_changes(store::Store& store, const store::Account& account, const json& args,
                                  const CallContext& context) {
    if (auto error = check_account_id(args, account)) return *error;
    auto since_it = args.find("sinceQueryState");
    if (since_it == args.end() || !since_it->is_string()) {
        return MethodError{"invalidArguments", "\"sinceQueryState\" must be a string"};
    }
    std::optional<std::size_t> max_changes;
    if (auto it = args.find("maxChanges"); it != args.end() && !it->is_null()) {
        if (!it->is_number_unsigned() || it->get<std::uint64_t>() == 0) {
            return MethodError{"invalidArguments", "\"maxChanges\" must be a positive integer"};
        }
        max_changes = it->get<std::size_t>();
    }
    auto query = to_query(json{{"filter", args.value("filter", json())}, {"sort", args.value("sort", json())},
                               {"collapseThreads", args.value("collapseThreads", json(false))}},
                          context.limits.max_search_terms);
    if (auto* error = std::get_if<MethodError>(&query)) return *error;
    auto& q = std::get<store::EmailQuery>(query);
    auto since = parse_object_id(since_it->get_ref<const std::string&>(), "");
    if (!since) return MethodError{"cannotCalculateChanges", "not a query state of this account"};
    auto budget = std::make_shared<ContentBudget>(ContentBudget{context.limits.max_query_message_reads});
    if (has_content(q.filter)) q.content_matcher = content_matcher(budget);
    auto current = store.query_emails(account.id, q);
    if (!current) {
        if (budget->exhausted || current.error().code == Errc::limit_exceeded) {
            return MethodError{"unsupportedFilter", current.error().message};
        }
        return server_fail(current.error());
    }
    auto changed = store.email_changes(account.id, static_cast<std::uint64_t>(*since),
                                       std::numeric_limits<std::size_t>::max());
    if (!changed) {
        if (changed.error().code == Errc::invalid_argument) return MethodError{"cannotCalculateChanges", changed.error().message};
        return server_fail(changed.error());
    }
    std::map<std::int64_t, std::size_t> index_of;
    for (std::size_t i = 0; i < current->ids.size(); ++i) index_of[current->ids[i]] = i;
    const bool complete = current->ids.size() == current->total;
    json removed = json::array();
    std::vector<std::pair<std::size_t, std::int64_t>> added;
    auto place = [&](std::int64_t id) -> bool {
        if (auto it = index_of.find(id); it != index_of.end()) {
            added.emplace_back(it->second, id);
            return true;
        }
        return complete;  // absent from complete results: not in them
    };
    for (auto id : changed->created) {
        if (!place(id)) return MethodError{"cannotCalculateChanges", "a changed Email lies beyond the results read"};
    }
    for (auto id : changed->updated) {
        removed.push_back(email_id(id));
        if (!place(id)) return MethodError{"cannotCalculateChanges", "a changed Email lies beyond the results read"};
    }
    for (auto id : changed->destroyed) removed.push_back(email_id(id));
    if (thread_bound(q)) {
        auto mates = thread_mates(store, account, static_cast<std::uint64_t>(*since));
        if (!mates) {
            if (mates.error().code == Errc::invalid_argument) return MethodError{"cannotCalculateChanges", mates.error().message};
            return server_fail(mates.error());
        }
        std::set<std::int64_t> seen(changed->created.begin(), changed->created.end());
        seen.insert(changed->updated.begin(), changed->updated.end());
        seen.insert(changed->destroyed.begin(), changed->destroyed.end());
        for (auto id : *mates) {
            if (seen.contains(id)) continue;
            removed.push_back(email_id(id));
            if (!place(id)) return MethodError{"cannotCalculateChanges", "a changed Email lies beyond the results read"};
        }
    }
    if (max_changes && removed.size() + added.size() > *max_changes) {
        return MethodError{"tooManyChanges", fmt::format("{} changes, more than maxChanges", removed.size() + added.size())};
    }
    std::ranges::sort(added);
    json added_json = json::array();
    for (const auto& [index, id] : added) added_json.push_back({{"id", email_id(id)}, {"index", index}});
    json answer = {{"accountId", jmap_account_id(account)},
                   {"oldQueryState", since_it->get<std::string>()},
                   {"newQueryState", std::to_string(current->state)},
                   {"removed", removed},
                   {"added", added_json}};
    if (flag(args, "calculateTotal")) answer["total"] = current->total;
    return answer;
}

// ---- SearchSnippet/get (RFC 8621 5.1): the filter's text, subject and body strings (not those under NOT)
// highlighted in each Email's subject and body.

void collect_terms(const json& filter, std::vector<std::string>& terms) {
    if (!filter.is_object()) return;
    if (auto op = filter.find("operator"); op != filter.end()) {
        if (*op == "NOT") return;  // what must not match is nothing to highlight
        if (auto conditions = filter.find("conditions"); conditions != filter.end() && conditions->is_array()) {
            for (const auto& operand : *conditions) collect_terms(operand, terms);
        }
        return;
    }
    for (const char* key : {"text", "subject", "body"}) {
        if (auto it = filter.find(key); it != filter.end() && it->is_string() && !it->get_ref<const std::string&>().empty()) {
            if (std::string_view(key) == "subject") {
                terms.push_back(it->get<std::string>());
            } else {
                for (auto& term : search_terms(it->get_ref<const std::string&>())) {
                    if (term.find_first_not_of(" \t\r\n") != std::string::npos) terms.push_back(std::move(term));
                }
            }
        }
    }
}

MethodOutcome search_snippet_get(store::Store& store, const store::Account& account, const json& args,
                                 const CallContext& context) {
    if (auto error = check_account_id(args, account)) return *error;
    auto ids = args.find("emailIds");
    if (ids == args.end() || !ids->is_array()) return MethodError{"invalidArguments", "\"emailIds\" must be an array"};
    if (ids->size() > context.limits.max_objects_in_get) {
        return MethodError{"requestTooLarge", fmt::format("more than {} emailIds", context.limits.max_objects_in_get)};
    }
    json filter = args.value("filter", json());
    if (!filter.is_null()) {
        store::EmailFilter checked;
        if (auto error = to_filter(filter, checked, 0, context.limits.max_search_terms)) return *error;
    }
    std::vector<std::string> terms;
    collect_terms(filter, terms);
    std::vector<std::int64_t> numbers;
    for (const auto& id : *ids) {
        if (!id.is_string()) return MethodError{"invalidArguments", "\"emailIds\" must hold strings"};
        if (auto n = email_number(id.get<std::string>())) numbers.push_back(*n);
    }
    auto emails = store.find_emails(account.id, numbers);
    if (!emails) return server_fail(emails.error());
    json list = json::array(), not_found = json::array();
    std::size_t reads = 0;
    for (const auto& id : *ids) {
        auto n = email_number(id.get<std::string>());
        auto it = n ? std::ranges::find(*emails, *n, &store::Email::id) : emails->end();
        if (it == emails->end()) {
            not_found.push_back(id);
            continue;
        }
        json snippet = {{"emailId", id}, {"subject", nullptr}, {"preview", nullptr}};
        if (!terms.empty()) {
            if (++reads > context.limits.max_query_message_reads) {
                return MethodError{"requestTooLarge", "more Emails than max_query_message_reads"};
            }
            auto bytes = store.read_blob(it->blob_id);
            if (!bytes) return server_fail(bytes.error());
            auto found = search_snippet(*bytes, terms);
            snippet["subject"] = found.subject;
            snippet["preview"] = found.preview;
        }
        list.push_back(std::move(snippet));
    }
    return json{{"accountId", jmap_account_id(account)}, {"list", list},
                {"notFound", not_found.empty() ? json() : not_found}};
}

MethodOutcome changes(store::Store& store, const store::Account& account, const json& args, bool threads,
                      const ApiLimits& limits) {
    if (auto error = check_account_id(args, account)) return *error;
    auto since = args.find("sinceState");
    if (since == args.end() || !since->is_string()) return MethodError{"invalidArguments", "\"sinceState\" must be a string"};
    auto state = parse_object_id(since->get<std::string>(), "");
    if (!state) return MethodError{"cannotCalculateChanges", "not a state of this account"};
    auto max_changes_or = max_changes_of(args, limits);
    if (auto* error = std::get_if<MethodError>(&max_changes_or)) return *error;
    const std::size_t max_changes = std::get<std::size_t>(max_changes_or);
    auto found = threads ? store.thread_changes(account.id, static_cast<std::uint64_t>(*state), max_changes)
                         : store.email_changes(account.id, static_cast<std::uint64_t>(*state), max_changes);
    if (!found) {
        if (found.error().code == Errc::invalid_argument) return MethodError{"cannotCalculateChanges", found.error().message};
        return server_fail(found.error());
    }
    auto ids = [&](const std::vector<std::int64_t>& numbers) {
        json out = json::array();
        for (auto n : numbers) out.push_back(threads ? thread_id(n) : email_id(n));
        return out;
    };
    return json{{"accountId", jmap_account_id(account)}, {"oldState", since->get<std::string>()},
                {"newState", std::to_string(found->new_state)}, {"hasMoreChanges", found->has_more_changes},
                {"created", ids(found->created)}, {"updated", ids(found->updated)},
                {"destroyed", ids(found->destroyed)}};
}

MethodOutcome thread_get(store::Store& store, const store::Account& account, const json& args, CallContext& context) {
    if (auto error = check_account_id(args, account)) return *error;
    auto ids = parse_get_ids(args, context.limits);
    if (auto* error = std::get_if<MethodError>(&ids)) return *error;
    const auto& wanted = std::get<std::optional<std::vector<std::string>>>(ids);
    if (!wanted) return MethodError{"requestTooLarge", "ask for threads by id"};
    std::vector<std::int64_t> numbers;
    for (const auto& id : *wanted) {
        if (auto n = number_with_prefix(id, 't')) numbers.push_back(*n);
    }
    auto state = store.account_state(account.id);
    if (!state) return server_fail(state.error());
    auto threads = store.find_threads(account.id, numbers);
    if (!threads) return server_fail(threads.error());
    json list = json::array(), not_found = json::array();
    for (const auto& id : *wanted) {
        auto n = number_with_prefix(id, 't');
        auto it = n ? std::ranges::find(*threads, *n, &store::EmailThread::id) : threads->end();
        if (it == threads->end()) {
            not_found.push_back(id);
            continue;
        }
        json emails = json::array();
        for (auto e : it->email_ids) emails.push_back(email_id(e));
        list.push_back({{"id", id}, {"emailIds", emails}});
    }
    return json{{"accountId", jmap_account_id(account)}, {"state", std::to_string(*state)}, {"list", list},
                {"notFound", not_found}};
}

// ---- Email/set, Email/import: making Emails goes through deliver(), durable before the answer.

Result<store::Delivered> deliver_now(store::Store& store, store::Delivery delivery) {
    std::promise<Result<store::Delivered>> promise;
    auto future = promise.get_future();
    store.deliver(std::move(delivery), [&promise](Result<store::Delivered> result) { promise.set_value(std::move(result)); });
    return future.get();
}

// mailboxIds and keywords of a new Email as delivery targets; a SetError JSON on a bad value.
std::variant<std::vector<store::DeliveryTarget>, json> targets_of(store::Store& store, const store::Account& account,
                                                               const json& object, const CallContext& context) {
    auto boxes = object.find("mailboxIds");
    if (boxes == object.end() || !boxes->is_object() || boxes->empty()) {
        return set_error("invalidProperties", "an Email is in at least one mailbox", {"mailboxIds"});
    }
    std::vector<std::string> flags;
    if (auto keywords = object.find("keywords"); keywords != object.end() && !keywords->is_null()) {
        if (!keywords->is_object()) return set_error("invalidProperties", "", {"keywords"});
        for (const auto& [keyword, value] : keywords->items()) {
            if (value != json(true)) return set_error("invalidProperties", "keyword values are true", {"keywords"});
            flags.push_back(store::imap_flag_of_keyword(keyword));
        }
    }
    auto mailboxes = store.list_mailboxes(account.id);
    if (!mailboxes) return set_error("serverFail", mailboxes.error().message);
    std::vector<store::DeliveryTarget> targets;
    for (const auto& [id, value] : boxes->items()) {
        auto resolved = resolve_creation_id(id, context);
        auto n = resolved ? number_with_prefix(*resolved, 'm') : std::nullopt;
        if (value != json(true) || !n || std::ranges::find(*mailboxes, *n, &store::Mailbox::id) == mailboxes->end()) {
            return set_error("invalidProperties", fmt::format("no mailbox {}", id), {"mailboxIds"});
        }
        targets.push_back(store::DeliveryTarget{*n, flags});
    }
    return targets;
}

json created_json(const store::Delivered& delivered, std::uint64_t size) {
    const auto& placed = delivered.placed.front();
    return json{{"id", email_id(placed.email_id)}, {"blobId", delivered.blob_id}, {"threadId", thread_id(placed.thread_id)},
                {"size", size}};
}

json store_message(store::Store& store, std::string content, std::vector<store::DeliveryTarget> targets,
                   std::int64_t received_at) {
    store::Delivery delivery;
    delivery.summary = store::summarize(content);
    const std::uint64_t size = content.size();
    delivery.content = std::move(content);
    delivery.internal_date = received_at;
    delivery.targets = std::move(targets);
    auto delivered = deliver_now(store, std::move(delivery));
    if (!delivered) {
        if (delivered.error().code == Errc::limit_exceeded) return set_error("tooLarge", delivered.error().message);
        return set_error("serverFail", delivered.error().message);
    }
    return created_json(*delivered, size);
}

std::vector<mail::MailboxSpec> address_list(const json& value) {
    std::vector<mail::MailboxSpec> out;
    if (!value.is_array()) return out;
    for (const auto& address : value) {
        if (!address.is_object() || !address.contains("email") || !address["email"].is_string()) continue;
        out.push_back({address.value("name", json("")).is_string() ? address.value("name", "") : "",
                       address["email"].get<std::string>()});
    }
    return out;
}

std::string joined_ids(const json& value) {
    std::string out;
    if (!value.is_array()) return out;
    for (const auto& id : value) {
        if (!id.is_string()) continue;
        if (!out.empty()) out += ' ';
        out += "<" + id.get<std::string>() + ">";
    }
    return out;
}

// The text of a body part given as {"partId": ..., "type": ...} with its value in bodyValues.
std::optional<std::string> body_value(const json& object, const json& parts) {
    if (!parts.is_array() || parts.size() != 1 || !parts[0].is_object()) return std::nullopt;
    auto id = parts[0].find("partId");
    auto values = object.find("bodyValues");
    if (id == parts[0].end() || !id->is_string() || values == object.end() || !values->is_object()) return std::nullopt;
    auto value = values->find(id->get<std::string>());
    if (value == values->end() || !value->is_object() || !value->contains("value") || !(*value)["value"].is_string()) {
        return std::nullopt;
    }
    return (*value)["value"].get<std::string>();
}

// RFC 5322 2.2: a field name is printable US-ASCII but ':'.
bool valid_field_name(std::string_view name) {
    return !name.empty() && std::ranges::all_of(name, [](char c) { return c > 32 && c < 127 && c != ':'; });
}

// A raw header value (RFC 8621 4.1.2.1) may be folded: CRLF followed by a space or tab. Nothing else may
// break the line.
bool raw_header_value_safe(std::string_view value) {
    std::string unfolded;
    for (std::size_t i = 0; i < value.size(); ++i) {
        if (value[i] == '\r' && i + 2 < value.size() && value[i + 1] == '\n' && (value[i + 2] == ' ' || value[i + 2] == '\t')) {
            ++i;
            continue;
        }
        unfolded += value[i];
    }
    return header_safe(unfolded);
}

std::string unfold(std::string_view value) {
    std::string out;
    for (std::size_t i = 0; i < value.size(); ++i) {
        if (value[i] == '\r' && i + 1 < value.size() && value[i + 1] == '\n') {
            ++i;
            continue;
        }
        out += value[i];
    }
    return out;
}

// The first Email/set create property whose value would go into a header field with a CR, LF or other
// control in it (RFC 8621 4.6 invalidProperties): every address, id, the subject, header:* values and the
// attachments' name, type, cid and disposition (their part headers).
std::optional<std::string> header_unsafe_property(const json& object) {
    static const std::vector<std::string> kHeaderBound = {"subject", "from",       "sender",    "to",       "cc",
                                                          "bcc",     "replyTo",    "messageId", "inReplyTo", "references"};
    for (const auto& [key, value] : object.items()) {
        if (std::ranges::find(kHeaderBound, key) != kHeaderBound.end()) {
            if (!header_safe_strings(value)) return key;
        } else if (key.starts_with("header:")) {
            std::string_view name = std::string_view(key).substr(7);
            // "header:Name:asText": the form is no part of the name, and text (unlike raw) is never folded.
            bool text = name.ends_with(":asText");
            name = name.substr(0, name.find(':'));
            if (!valid_field_name(name) ||
                (value.is_string() && !(text ? header_safe(value.get_ref<const std::string&>())
                                             : raw_header_value_safe(value.get_ref<const std::string&>())))) {
                return key;
            }
        } else if (key == "attachments" && value.is_array()) {
            for (const auto& part : value) {
                if (!part.is_object()) continue;
                for (const char* field : {"name", "type", "cid", "disposition", "charset", "language", "location"}) {
                    if (auto it = part.find(field); it != part.end() && !header_safe_strings(*it)) return key;
                }
            }
        }
    }
    return std::nullopt;
}

// Email/set create (RFC 8621 4.6): a message built from the properties, stored as a new Email.
json create_email(store::Store& store, const store::Account& account, const json& object, const CallContext& context,
                  std::int64_t now) {
    static const std::vector<std::string> kCreatable = {
        "mailboxIds", "keywords", "receivedAt", "messageId", "inReplyTo", "references", "sender",   "from",
        "to",         "cc",       "bcc",        "replyTo",   "subject",   "sentAt",     "textBody", "htmlBody",
        "attachments", "bodyValues"};
    for (const auto& [key, value] : object.items()) {
        if (std::ranges::find(kCreatable, key) == kCreatable.end() && !key.starts_with("header:")) {
            return set_error("invalidProperties", fmt::format("\"{}\" cannot be set here", key), {key});
        }
    }
    if (auto bad = header_unsafe_property(object)) {
        return set_error("invalidProperties", "a header field value holds CR, LF or another control character", {*bad});
    }
    auto targets = targets_of(store, account, object, context);
    if (auto* error = std::get_if<json>(&targets)) return *error;
    mail::Draft draft;
    auto from = address_list(object.value("from", json()));
    if (!from.empty()) draft.from = from.front();
    auto sender = address_list(object.value("sender", json()));
    if (!sender.empty()) draft.sender = sender.front();
    draft.to = address_list(object.value("to", json()));
    draft.cc = address_list(object.value("cc", json()));
    draft.bcc = address_list(object.value("bcc", json()));
    draft.reply_to = address_list(object.value("replyTo", json()));
    if (object.contains("subject") && object["subject"].is_string()) draft.subject = object["subject"];
    draft.in_reply_to = joined_ids(object.value("inReplyTo", json()));
    draft.references = joined_ids(object.value("references", json()));
    auto message_ids = object.value("messageId", json());
    if (message_ids.is_array() && !message_ids.empty()) draft.message_id = joined_ids(json::array({message_ids[0]}));
    if (auto sent = object.find("sentAt"); sent != object.end() && sent->is_string()) {
        // A Date with an offset: its instant (RFC 8621 4.1.2.6), written in UTC.
        std::string text = sent->get<std::string>();
        auto instant = parse_utc_date(text.size() > 19 ? text.substr(0, 19) + "Z" : text);
        if (!instant) return set_error("invalidProperties", "", {"sentAt"});
        if (text.size() == 25 && (text[19] == '+' || text[19] == '-')) {
            int offset = (std::stoi(text.substr(20, 2)) * 60 + std::stoi(text.substr(23, 2))) * 60;
            *instant += text[19] == '+' ? -offset : offset;
        }
        draft.date = *instant;
    }
    if (object.contains("textBody")) {
        auto text = body_value(object, object["textBody"]);
        if (!text) return set_error("invalidProperties", "textBody is one part whose value is in bodyValues", {"textBody"});
        draft.text = *text;
    }
    if (object.contains("htmlBody")) {
        auto html = body_value(object, object["htmlBody"]);
        if (!html) return set_error("invalidProperties", "htmlBody is one part whose value is in bodyValues", {"htmlBody"});
        draft.html = *html;
    }
    if (auto attachments = object.find("attachments"); attachments != object.end() && attachments->is_array()) {
        json missing = json::array();
        for (const auto& part : *attachments) {
            if (!part.is_object() || !part.contains("blobId") || !part["blobId"].is_string()) {
                return set_error("invalidProperties", "an attachment needs a blobId", {"attachments"});
            }
            auto data = read_jmap_blob(store, account, part["blobId"].get<std::string>());
            if (!data) {
                missing.push_back(part["blobId"]);
                continue;
            }
            mail::Attachment attachment;
            attachment.data = std::move(*data);
            if (part.contains("name") && part["name"].is_string()) attachment.filename = part["name"];
            if (part.contains("type") && part["type"].is_string()) attachment.content_type = to_lower(part["type"].get<std::string>());
            attachment.inline_disposition = part.value("disposition", json()) == json("inline");
            if (part.contains("cid") && part["cid"].is_string()) attachment.content_id = part["cid"];
            draft.attachments.push_back(std::move(attachment));
        }
        if (!missing.empty()) {
            json error = set_error("blobNotFound", "attachments name blobs this account does not have");
            error["notFound"] = missing;
            return error;
        }
    }
    if (!draft.text && !draft.html) draft.text = "";
    for (const auto& [key, value] : object.items()) {
        if (!key.starts_with("header:")) continue;
        // RFC 8621 4.1.2: "header:Name", "header:Name:asRaw" (the same) or "header:Name:asText" (unstructured
        // text, written as UTF-8 like the Subject). The parsed forms are not taken apart here.
        std::string_view name = std::string_view(key).substr(7);
        std::string_view form = "asRaw";
        if (auto colon = name.find(':'); colon != std::string_view::npos) {
            form = name.substr(colon + 1);
            name = name.substr(0, colon);
        }
        if (name.empty() || (form != "asRaw" && form != "asText") || !value.is_string()) {
            return set_error("invalidProperties",
                             "header:Name, header:Name:asRaw or header:Name:asText, with a string value",
                             {key});
        }
        const auto& text = value.get_ref<const std::string&>();
        draft.extra_fields.emplace_back(std::string(name),
                                        form == "asText" ? trim(text) : trim(unfold(text)));
    }
    mail::BuildOptions options;
    options.transport = mail::Transport::eight_bit;
    options.utf8_headers = true;
    options.write_bcc = true;  // a draft keeps its Bcc; submission takes it out when the message leaves
    std::string domain = account.address.substr(account.address.rfind('@') + 1);
    auto env = mail::system_build_env(domain);
    env.now = now;
    auto built = mail::build_message(draft, options, env);
    if (!built) return set_error("invalidProperties", built.error().message);
    std::int64_t received_at = now;
    if (auto it = object.find("receivedAt"); it != object.end() && it->is_string()) {
        auto parsed = parse_utc_date(it->get<std::string>());
        if (!parsed) return set_error("invalidProperties", "", {"receivedAt"});
        received_at = *parsed;
    }
    return store_message(store, std::move(*built), std::move(std::get<std::vector<store::DeliveryTarget>>(targets)),
                         received_at);
}

MethodOutcome email_set(store::Store& store, const store::Account& account, const json& args, CallContext& context,
                        std::int64_t now) {
    if (auto error = check_account_id(args, account)) return *error;
    auto parsed = parse_set_request(args, context.limits);
    if (auto* error = std::get_if<MethodError>(&parsed)) return *error;
    auto& request = std::get<SetRequest>(parsed);
    auto before = store.account_state(account.id);
    if (!before) return server_fail(before.error());
    if (request.if_in_state && *request.if_in_state != std::to_string(*before)) {
        return MethodError{"stateMismatch", "the Emails changed since that state"};
    }
    json created = json::object(), not_created = json::object(), updated = json::object(),
         not_updated = json::object(), destroyed = json::array(), not_destroyed = json::object();
    for (const auto& [creation_id, object] : request.create.items()) {
        json outcome = create_email(store, account, object, context, now);
        if (outcome.contains("type")) {
            if (outcome["type"] == "serverFail") return MethodError{"serverFail", outcome.value("description", "")};
            not_created[creation_id] = outcome;
        } else {
            context.created_ids[creation_id] = outcome["id"];
            created[creation_id] = outcome;
        }
    }
    for (const auto& [id, patch] : request.update.items()) {
        auto resolved = resolve_creation_id(id, context);
        auto n = resolved ? email_number(*resolved) : std::nullopt;
        json error = n ? update_email(store, account, *n, patch, context) : set_error("notFound");
        if (error.is_null()) {
            updated[id] = nullptr;
        } else {
            not_updated[id] = error;
        }
    }
    std::vector<std::int64_t> numbers;
    std::vector<std::string> asked;
    for (const auto& id : request.destroy) {
        auto resolved = resolve_creation_id(id, context);
        auto n = resolved ? email_number(*resolved) : std::nullopt;
        if (!n) {
            not_destroyed[id] = set_error("notFound");
            continue;
        }
        numbers.push_back(*n);
        asked.push_back(id);
    }
    if (!numbers.empty()) {
        auto results = store.destroy_emails(account.id, numbers);
        if (!results) return server_fail(results.error());
        for (std::size_t i = 0; i < asked.size(); ++i) {
            if ((*results)[i]) {
                destroyed.push_back(asked[i]);
            } else {
                not_destroyed[asked[i]] = set_error((*results)[i].error().code == Errc::not_found ? "notFound" : "forbidden",
                                                    (*results)[i].error().message);
            }
        }
    }
    auto after = store.account_state(account.id);
    if (!after) return server_fail(after.error());
    auto or_null = [](json& object) { return object.empty() ? json() : object; };
    return json{{"accountId", jmap_account_id(account)}, {"oldState", std::to_string(*before)},
                {"newState", std::to_string(*after)},    {"created", or_null(created)},
                {"updated", or_null(updated)},           {"destroyed", destroyed.empty() ? json() : destroyed},
                {"notCreated", or_null(not_created)},    {"notUpdated", or_null(not_updated)},
                {"notDestroyed", or_null(not_destroyed)}};
}

MethodOutcome email_import(store::Store& store, const store::Account& account, const json& args, CallContext& context,
                           std::int64_t now) {
    if (auto error = check_account_id(args, account)) return *error;
    auto emails = args.find("emails");
    if (emails == args.end() || !emails->is_object()) return MethodError{"invalidArguments", "\"emails\" must be an object"};
    if (emails->size() > context.limits.max_objects_in_set) {
        return MethodError{"requestTooLarge", fmt::format("more than {} emails", context.limits.max_objects_in_set)};
    }
    auto before = store.account_state(account.id);
    if (!before) return server_fail(before.error());
    if (auto in_state = args.find("ifInState"); in_state != args.end() && !in_state->is_null() &&
                                                *in_state != json(std::to_string(*before))) {
        return MethodError{"stateMismatch", "the Emails changed since that state"};
    }
    json created = json::object(), not_created = json::object();
    for (const auto& [creation_id, object] : emails->items()) {
        if (!object.is_object() || !object.contains("blobId") || !object["blobId"].is_string()) {
            not_created[creation_id] = set_error("invalidProperties", "", {"blobId"});
            continue;
        }
        auto targets = targets_of(store, account, object, context);
        if (auto* error = std::get_if<json>(&targets)) {
            not_created[creation_id] = *error;
            continue;
        }
        auto bytes = read_jmap_blob(store, account, object["blobId"].get<std::string>());
        if (!bytes) {
            json error = set_error("blobNotFound", "no such blob for this account");
            error["notFound"] = json::array({object["blobId"]});
            not_created[creation_id] = error;
            continue;
        }
        std::int64_t received_at = now;
        if (auto it = object.find("receivedAt"); it != object.end() && it->is_string()) {
            auto parsed = parse_utc_date(it->get<std::string>());
            if (!parsed) {
                not_created[creation_id] = set_error("invalidProperties", "", {"receivedAt"});
                continue;
            }
            received_at = *parsed;
        }
        json outcome = store_message(store, std::move(*bytes),
                                     std::move(std::get<std::vector<store::DeliveryTarget>>(targets)), received_at);
        if (outcome.contains("type")) {
            not_created[creation_id] = outcome;
        } else {
            context.created_ids[creation_id] = outcome["id"];
            created[creation_id] = outcome;
        }
    }
    auto after = store.account_state(account.id);
    if (!after) return server_fail(after.error());
    return json{{"accountId", jmap_account_id(account)}, {"oldState", std::to_string(*before)},
                {"newState", std::to_string(*after)},    {"created", created.empty() ? json() : created},
                {"notCreated", not_created.empty() ? json() : not_created}};
}

MethodOutcome email_parse(store::Store& store, const store::Account& account, const json& args, CallContext& context) {
    if (auto error = check_account_id(args, account)) return *error;
    auto blobs = args.find("blobIds");
    if (blobs == args.end() || !blobs->is_array()) return MethodError{"invalidArguments", "\"blobIds\" must be an array"};
    if (blobs->size() > context.limits.max_objects_in_get) {
        return MethodError{"requestTooLarge", fmt::format("more than {} blobs", context.limits.max_objects_in_get)};
    }
    std::vector<std::string> properties;
    if (auto it = args.find("properties"); it != args.end() && !it->is_null()) {
        if (!it->is_array()) return MethodError{"invalidArguments", "\"properties\" must be an array"};
        for (const auto& p : *it) {
            if (!p.is_string()) return MethodError{"invalidArguments", "\"properties\" must hold strings"};
            properties.push_back(p.get<std::string>());
        }
    } else {
        for (const auto& p : kDefaultProperties) {
            if (std::ranges::find(kMetadata, p) == kMetadata.end() || p == "blobId" || p == "size") properties.push_back(p);
        }
    }
    auto options = body_options(args);
    if (auto* error = std::get_if<MethodError>(&options)) return *error;
    json parsed = json::object(), not_parsable = json::array(), not_found = json::array();
    for (const auto& blob : *blobs) {
        if (!blob.is_string()) return MethodError{"invalidArguments", "\"blobIds\" must hold strings"};
        auto bytes = read_jmap_blob(store, account, blob.get<std::string>());
        if (!bytes) {
            not_found.push_back(blob);
            continue;
        }
        json object = email_view(*bytes, blob.get<std::string>(), properties, std::get<BodyValueOptions>(options));
        // RFC 8621 4.9: the metadata of a parsed message is null, but for its blob and size.
        for (const auto& p : properties) {
            if (p == "blobId") {
                object[p] = blob;
            } else if (p == "size") {
                object[p] = bytes->size();
            } else if (std::ranges::find(kMetadata, p) != kMetadata.end()) {
                object[p] = nullptr;
            }
        }
        parsed[blob.get<std::string>()] = object;
    }
    return json{{"accountId", jmap_account_id(account)}, {"parsed", parsed.empty() ? json() : parsed},
                {"notParsable", not_parsable.empty() ? json() : not_parsable},
                {"notFound", not_found.empty() ? json() : not_found}};
}

MethodOutcome email_copy(const store::Account& account, const json& args) {
    if (auto error = check_account_id(args, account)) return *error;
    auto from = args.find("fromAccountId");
    if (from == args.end() || !from->is_string()) return MethodError{"invalidArguments", "\"fromAccountId\" must be a string"};
    if (*from == jmap_account_id(account)) {
        // RFC 8620 5.4: /copy is between two different accounts; within one, Email/set mailboxIds does it.
        return MethodError{"invalidArguments", "fromAccountId and accountId are the same account"};
    }
    return MethodError{"fromAccountNotFound", "this user has access to no other account"};
}

}  // namespace

std::optional<std::int64_t> email_number(std::string_view id) { return store::parse_object_id(id, 'e'); }
std::string email_id(std::int64_t id) { return store::email_object_id(id); }
std::string thread_id(std::int64_t id) { return store::thread_object_id(id); }

Result<std::string> read_jmap_blob(store::Store& store, const store::Account& account, std::string_view blob_id) {
    if (auto part = split_part_blob_id(blob_id)) {
        auto message = store.read_account_blob(account.id, part->first);
        if (!message) return message.error();
        auto content = part_content(*message, part->second);
        if (!content) return make_error(Errc::not_found, "no such part");
        return std::move(*content);
    }
    return store.read_account_blob(account.id, blob_id);
}

namespace {

// RFC 8620 5.3: a patch key is a JSON Pointer (RFC 6901) without its leading '/': "~1" is '/', "~0" is '~'.
// The one token after "keywords/" or "mailboxIds/" is unescaped; a second level ('/' left after it, as in
// "keywords/a/b") or a bare '~' is no valid path into a map of booleans.
std::optional<std::string> pointer_token(std::string_view escaped) {
    std::string out;
    for (std::size_t i = 0; i < escaped.size(); ++i) {
        char c = escaped[i];
        if (c == '/') return std::nullopt;
        if (c == '~') {
            if (i + 1 == escaped.size() || (escaped[i + 1] != '0' && escaped[i + 1] != '1'))
                return std::nullopt;
            c = escaped[++i] == '0' ? '~' : '/';
        }
        out.push_back(c);
    }
    if (out.empty()) return std::nullopt;
    return out;
}

// RFC 8620 5.3: a patch in which one path is a prefix of another ("keywords" and "keywords/$seen") is
// invalid.
bool has_prefix_conflict(const json& patch) {
    for (const char* whole : {"keywords", "mailboxIds"}) {
        if (!patch.contains(whole)) continue;
        std::string prefix = std::string(whole) + "/";
        for (const auto& [key, value] : patch.items()) {
            if (key.starts_with(prefix)) return true;
        }
    }
    return false;
}

}  // namespace

json update_email(store::Store& store, const store::Account& account, std::int64_t email, const json& patch,
                  const CallContext& context) {
    store::EmailUpdate update;
    update.email_id = email;
    auto mailbox_of = [&](const std::string& id) {
        auto resolved = resolve_creation_id(id, context);
        return resolved ? number_with_prefix(*resolved, 'm') : std::nullopt;
    };
    if (!patch.is_object() || has_prefix_conflict(patch)) return set_error("invalidPatch");
    for (const auto& [key, value] : patch.items()) {
        if (key == "keywords") {
            if (!value.is_object()) return set_error("invalidProperties", "", {"keywords"});
            std::vector<std::string> flags;
            for (const auto& [keyword, on] : value.items()) {
                if (on != json(true)) return set_error("invalidProperties", "keyword values are true", {"keywords"});
                flags.push_back(store::imap_flag_of_keyword(keyword));
            }
            update.set_flags = std::move(flags);
        } else if (key.starts_with("keywords/")) {
            auto keyword = pointer_token(std::string_view(key).substr(9));
            if (!keyword || (value != json(true) && !value.is_null()))
                return set_error("invalidPatch", "", {key});
            (value.is_null() ? update.remove_flags : update.add_flags)
                .push_back(store::imap_flag_of_keyword(*keyword));
        } else if (key == "mailboxIds") {
            if (!value.is_object() || value.empty()) return set_error("invalidProperties", "", {"mailboxIds"});
            std::vector<std::int64_t> boxes;
            for (const auto& [id, on] : value.items()) {
                auto n = mailbox_of(id);
                if (!n || on != json(true)) return set_error("invalidProperties", fmt::format("no mailbox {}", id), {"mailboxIds"});
                boxes.push_back(*n);
            }
            update.set_mailboxes = std::move(boxes);
        } else if (key.starts_with("mailboxIds/")) {
            auto token = pointer_token(std::string_view(key).substr(11));
            auto n = token ? mailbox_of(*token) : std::nullopt;
            if (!n || (value != json(true) && !value.is_null())) return set_error("invalidPatch", "", {key});
            (value.is_null() ? update.remove_mailboxes : update.add_mailboxes).push_back(*n);
        } else {
            return set_error("invalidProperties", fmt::format("\"{}\" cannot be changed", key), {key});
        }
    }
    auto results = store.update_emails(account.id, {update});
    if (!results) return set_error("serverFail", results.error().message);
    const auto& result = results->front();
    if (result) return nullptr;
    switch (result.error().code) {
        case Errc::not_found: return set_error("notFound", result.error().message);
        case Errc::limit_exceeded: return set_error("tooManyKeywords", result.error().message);
        default: return set_error("invalidProperties", result.error().message);
    }
}

void add_email_methods(Dispatcher& dispatcher, store::Store& store, const store::Account& account) {
    const std::string mail(kCapabilityMail);
    dispatcher.add("Email/get", mail, [&store, account](const json& args, CallContext& context) {
        return email_get(store, account, args, context);
    });
    dispatcher.add("Email/query", mail, [&store, account](const json& args, CallContext& context) {
        return email_query(store, account, args, context);
    });
    dispatcher.add("Email/changes", mail, [&store, account](const json& args, CallContext& context) {
        return changes(store, account, args, false, context.limits);
    });
    dispatcher.add("Email/queryChanges", mail, [&store, account](const json& args, CallContext& context) {
        return email_query_changes(store, account, args, context);
    });
    dispatcher.add("SearchSnippet/get", mail, [&store, account](const json& args, CallContext& context) {
        return search_snippet_get(store, account, args, context);
    });
    dispatcher.add("Email/set", mail, [&store, account](const json& args, CallContext& context) {
        return email_set(store, account, args, context, unix_now());
    });
    dispatcher.add("Email/import", mail, [&store, account](const json& args, CallContext& context) {
        return email_import(store, account, args, context, unix_now());
    });
    dispatcher.add("Email/parse", mail, [&store, account](const json& args, CallContext& context) {
        return email_parse(store, account, args, context);
    });
    dispatcher.add("Email/copy", mail, [account](const json& args, CallContext&) { return email_copy(account, args); });
    dispatcher.add("Thread/get", mail, [&store, account](const json& args, CallContext& context) {
        return thread_get(store, account, args, context);
    });
    dispatcher.add("Thread/changes", mail, [&store, account](const json& args, CallContext& context) {
        return changes(store, account, args, true, context.limits);
    });
}

}  // namespace magpie::http
