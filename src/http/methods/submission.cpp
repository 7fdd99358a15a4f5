#include "http/methods/submission.h"

#include <algorithm>
#include <atomic>
#include <memory>

#include <fmt/format.h>

#include "base/strings.h"
#include "base/time.h"
#include "http/email_view.h"
#include "http/methods/email.h"
#include "http/methods/identity.h"
#include "http/methods/session.h"
#include "http/methods/set_support.h"
#include "mail/address.h"
#include "mail/message.h"
#include "mail/submission.h"
#include "store/senders.h"

namespace magpie::http {
namespace {

using nlohmann::json;

constexpr std::string_view kType = "EmailSubmission";
constexpr std::string_view kPrefix = "s";

const std::vector<std::string> kProperties = {"id",     "identityId", "emailId",        "threadId",      "envelope",
                                              "sendAt", "undoStatus", "deliveryStatus", "dsnBlobIds",    "mdnBlobIds"};

json parse_data(const std::string& text) {
    json data = json::parse(text, nullptr, false);
    return data.is_object() ? data : json::object();
}

bool owns(const std::vector<std::string>& senders, std::string_view address) {
    return std::ranges::any_of(senders, [&](const std::string& a) { return iequals(a, address); });
}

// RFC 8621 7.1 DeliveryStatus per recipient, from the queue entry (remote) or the local delivery.
json delivery_status(store::Store& store, const json& data) {
    json status = json::object();
    for (const auto& local : data.value("local", json::array())) {
        status[local.get<std::string>()] = {{"smtpReply", "250 2.0.0 delivered to a local mailbox"},
                                            {"delivered", "yes"}, {"displayed", "unknown"}};
    }
    const std::int64_t queue_id = data.value("queueId", std::int64_t{0});
    if (queue_id == 0) return status;
    auto entry = store.find_queue_entry(queue_id);
    if (!entry) {
        // Finished entries are purged after the tracker's retention: what they said is no longer known.
        for (const auto& r : data["envelope"]["rcptTo"]) {
            const std::string address = r["email"];
            if (!status.contains(address)) status[address] = {{"smtpReply", "250 2.0.0 queued"}, {"delivered", "unknown"},
                                                              {"displayed", "unknown"}};
        }
        return status;
    }
    for (const auto& recipient : entry->recipients) {
        std::string delivered = "queued";
        switch (recipient.state) {
            case store::QueueState::queued: delivered = "queued"; break;
            case store::QueueState::deferred: delivered = "queued"; break;
            case store::QueueState::delivered: delivered = "yes"; break;
            case store::QueueState::failed: delivered = "no"; break;
        }
        std::string reply = recipient.last_reply.empty() ? "250 2.0.0 queued for delivery" : recipient.last_reply;
        status[recipient.address] = {{"smtpReply", reply}, {"delivered", delivered}, {"displayed", "unknown"}};
    }
    return status;
}

json submission_json(store::Store& store, const store::JmapObject& object) {
    json data = parse_data(object.data);
    return json{{"id", fmt::format("{}{}", kPrefix, object.id)},
                {"identityId", data.value("identityId", json())},
                {"emailId", data.value("emailId", json())},
                {"threadId", data.value("threadId", json())},
                {"envelope", data.value("envelope", json())},
                {"sendAt", data.value("sendAt", json())},
                {"undoStatus", "final"},
                {"deliveryStatus", delivery_status(store, data)},
                {"dsnBlobIds", json::array()},
                {"mdnBlobIds", json::array()}};
}

MethodOutcome submission_get(store::Store& store, const store::Account& account, const json& args, CallContext& context) {
    if (auto error = check_account_id(args, account)) return *error;
    auto ids = parse_get_ids(args, context.limits);
    if (auto* error = std::get_if<MethodError>(&ids)) return *error;
    auto properties = parse_properties(args, kProperties);
    if (auto* error = std::get_if<MethodError>(&properties)) return *error;
    auto list = store.list_jmap_objects(account.id, kType);
    if (!list) return MethodError{"serverFail", list.error().message};
    const auto& wanted = std::get<std::optional<std::vector<std::string>>>(ids);
    json found = json::array(), not_found = json::array();
    std::size_t live = 0;
    for (const auto& object : list->objects) {
        if (object.destroyed) continue;
        std::string id = fmt::format("{}{}", kPrefix, object.id);
        if (wanted && std::ranges::find(*wanted, id) == wanted->end()) continue;
        if (!wanted && ++live > context.limits.max_objects_in_get) {
            return MethodError{"requestTooLarge", "more submissions than maxObjectsInGet: ask by id"};
        }
        found.push_back(select_properties(submission_json(store, object),
                                          std::get<std::optional<std::vector<std::string>>>(properties)));
    }
    if (wanted) {
        for (const auto& id : *wanted) {
            if (std::ranges::none_of(found, [&](const json& o) { return o["id"] == id; })) not_found.push_back(id);
        }
    }
    return json{{"accountId", jmap_account_id(account)}, {"state", std::to_string(list->state)}, {"list", found},
                {"notFound", not_found}};
}

// RFC 8621 7.3: filter identityIds, emailIds, threadIds, undoStatus, before, after; sort emailId,
// threadId, sentAt.
MethodOutcome submission_query(store::Store& store, const store::Account& account, const json& args) {
    if (auto error = check_account_id(args, account)) return *error;
    auto list = store.list_jmap_objects(account.id, kType);
    if (!list) return MethodError{"serverFail", list.error().message};
    const json filter = args.value("filter", json::object());
    if (!filter.is_object() && !filter.is_null()) return MethodError{"invalidArguments", "\"filter\" must be an object"};
    const json filter_object = filter.is_object() ? filter : json::object();
    std::vector<json> found;
    for (const auto& object : list->objects) {
        if (object.destroyed) continue;
        json s = parse_data(object.data);
        s["id"] = fmt::format("{}{}", kPrefix, object.id);
        bool match = true;
        for (const auto& item : filter_object.items()) {
            const std::string& key = item.key();
            const json& value = item.value();
            auto in = [&](const char* property) {
                return value.is_array() && std::find(value.begin(), value.end(), s.value(property, json())) != value.end();
            };
            if (key == "identityIds") {
                match = match && in("identityId");
            } else if (key == "emailIds") {
                match = match && in("emailId");
            } else if (key == "threadIds") {
                match = match && in("threadId");
            } else if (key == "undoStatus") {
                match = match && value == "final";
            } else if ((key == "before" || key == "after") && value.is_string() && parse_utc_date(value.get<std::string>())) {
                auto at = parse_utc_date(s.value("sendAt", ""));
                auto limit = *parse_utc_date(value.get<std::string>());
                match = match && at && (key == "before" ? *at < limit : *at >= limit);
            } else {
                return MethodError{"unsupportedFilter", fmt::format("unsupported filter condition \"{}\"", key)};
            }
        }
        if (match) found.push_back(std::move(s));
    }
    if (auto sort = args.find("sort"); sort != args.end() && sort->is_array()) {
        for (auto it = sort->rbegin(); it != sort->rend(); ++it) {
            std::string property = it->value("property", "");
            if (property == "sentAt") property = "sendAt";
            if (property != "emailId" && property != "threadId" && property != "sendAt") {
                return MethodError{"unsupportedSort", fmt::format("cannot sort by \"{}\"", property)};
            }
            bool ascending = it->value("isAscending", true);
            std::ranges::stable_sort(found, [&](const json& a, const json& b) {
                return ascending ? a.value(property, json()) < b.value(property, json())
                                 : b.value(property, json()) < a.value(property, json());
            });
        }
    }
    std::int64_t position = args.value("position", json(0)).is_number_integer() ? args.value("position", std::int64_t{0}) : 0;
    if (position < 0) position = std::max<std::int64_t>(0, static_cast<std::int64_t>(found.size()) + position);
    std::size_t limit = args.value("limit", json()).is_number_unsigned() ? args["limit"].get<std::size_t>() : found.size();
    json ids = json::array();
    for (std::size_t i = static_cast<std::size_t>(position); i < found.size() && ids.size() < limit; ++i) ids.push_back(found[i]["id"]);
    json answer = {{"accountId", jmap_account_id(account)}, {"queryState", std::to_string(list->state)},
                   {"canCalculateChanges", false}, {"position", position}, {"ids", ids}};
    if (args.value("calculateTotal", false)) answer["total"] = found.size();
    return answer;
}

struct Plan {
    json data;                  // the record to store
    OutgoingSubmission outgoing;
};

// Checks one EmailSubmission create; a SetError JSON, or what to send.
std::variant<Plan, json> plan_submission(store::Store& store, const store::Account& account, const json& object,
                                         const CallContext& context) {
    for (const auto& [key, value] : object.items()) {
        if (key != "identityId" && key != "emailId" && key != "envelope" && key != "sendAt") {
            return set_error("invalidProperties", fmt::format("\"{}\" cannot be set", key), {key});
        }
    }
    if (object.contains("sendAt")) return set_error("invalidProperties", "delayed sending is not offered (maxDelayedSend 0)", {"sendAt"});
    if (!object.contains("identityId") || !object["identityId"].is_string()) {
        return set_error("invalidProperties", "an identityId is needed", {"identityId"});
    }
    auto identity_id = resolve_creation_id(object["identityId"].get<std::string>(), context);
    auto identities = account_identities(store, account);
    if (!identities) return set_error("serverFail", identities.error().message);
    auto identity = identity_id ? std::ranges::find(*identities, *identity_id, &std::pair<std::string, json>::first)
                                : identities->end();
    if (identity == identities->end()) return set_error("invalidProperties", "no such identity", {"identityId"});

    auto email_ref = object.value("emailId", json());
    auto resolved_email = email_ref.is_string() ? resolve_creation_id(email_ref.get<std::string>(), context) : std::nullopt;
    auto number = resolved_email ? email_number(*resolved_email) : std::nullopt;
    if (!number) return set_error("invalidProperties", "no such Email", {"emailId"});
    auto emails = store.find_emails(account.id, {*number});
    if (!emails) return set_error("serverFail", emails.error().message);
    if (emails->empty()) return set_error("invalidProperties", "no such Email", {"emailId"});
    const store::Email& email = emails->front();
    auto bytes = store.read_blob(email.blob_id);
    if (!bytes) return set_error("serverFail", bytes.error().message);

    auto senders = store::sender_addresses(store, account.address);
    if (!senders) return set_error("serverFail", senders.error().message);
    // The same rule as SMTP submission: every author address is the user's own or an alias.
    auto authors = mail::author_addresses(*bytes);
    if (authors.empty()) return set_error("invalidEmail", "the message has no From: address (RFC 5322 3.6)");
    for (const auto& author : authors) {
        if (!owns(*senders, author)) {
            return set_error("forbiddenFrom", fmt::format("{} is not an address of this account", author));
        }
    }
    Plan plan;
    json envelope = object.value("envelope", json());
    if (envelope.is_null()) {
        // RFC 8621 7.5: mailFrom from Sender:/From:, rcptTo from To:, Cc: and Bcc:, without duplicates.
        envelope = {{"mailFrom", {{"email", authors.front()}, {"parameters", nullptr}}}, {"rcptTo", json::array()}};
        std::vector<mail::HeaderField> fields;
        mail::scan_header(*bytes, 0, bytes->size(), mail::ParseLimits{}, fields);
        mail::Header header(fields);
        std::vector<std::string> seen;
        for (const char* name : {"To", "Cc", "Bcc"}) {
            for (const auto* field : header.find_all(name)) {
                for (const auto& m : mail::mailboxes(mail::parse_address_list(field->unfolded()))) {
                    std::string address = m.local_part + "@" + m.domain;
                    if (std::ranges::any_of(seen, [&](const std::string& s) { return iequals(s, address); })) continue;
                    seen.push_back(address);
                    envelope["rcptTo"].push_back({{"email", address}, {"parameters", nullptr}});
                }
            }
        }
    }
    if (!envelope.is_object() || !envelope.contains("mailFrom") || !envelope["mailFrom"].is_object() ||
        !envelope["mailFrom"].contains("email") || !envelope["mailFrom"]["email"].is_string() ||
        !envelope.contains("rcptTo") || !envelope["rcptTo"].is_array()) {
        return set_error("invalidProperties", "envelope is {mailFrom: Address, rcptTo: [Address]}", {"envelope"});
    }
    const std::string mail_from = envelope["mailFrom"]["email"];
    if (!owns(*senders, mail_from)) {
        return set_error("forbiddenMailFrom", fmt::format("{} is not an address of this account", mail_from));
    }
    if (envelope["rcptTo"].empty()) return set_error("noRecipients", "the message has no recipients");
    if (envelope["rcptTo"].size() > context.limits.max_submission_recipients) {
        return set_error("tooManyRecipients",
                         fmt::format("at most {} recipients ([http] max_submission_recipients)",
                                     context.limits.max_submission_recipients),
                         {});
    }
    json invalid = json::array();
    for (const auto& r : envelope["rcptTo"]) {
        const std::string address = r.is_object() && r.contains("email") && r["email"].is_string() ? r["email"].get<std::string>() : "";
        auto at = address.rfind('@');
        if (at == std::string::npos || at == 0 || at + 1 == address.size() ||
            address.find_first_of(" \t\r\n<>,") != std::string::npos) {
            invalid.push_back(address);
        } else {
            plan.outgoing.rcpt_to.push_back(address);
        }
    }
    if (!invalid.empty()) {
        json error = set_error("invalidRecipients", "these recipients are not addresses");
        error["invalidRecipients"] = invalid;
        return error;
    }
    plan.outgoing.message = std::move(*bytes);
    plan.outgoing.mail_from = mail_from;
    plan.data = {{"identityId", identity->first}, {"emailId", email_id(email.id)}, {"threadId", thread_id(email.thread_id)},
                 {"envelope", envelope}};
    return plan;
}

// One EmailSubmission/set between its two halves: what was checked and prepared before the sends, and the sends'
// outcomes once the group committer has answered.
struct SetRun {
    store::Store* store = nullptr;
    store::Account account;
    json args;
    SetRequest request;
    store::JmapObjectList list;
    json not_created = json::object();
    struct Send {
        std::string creation_id;
        Plan plan;
        SubmissionSend send;
        std::optional<Result<SubmissionOutcome>> outcome;
    };
    std::vector<Send> sends;
};

MethodResult finish_submission_set(SetRun& run, CallContext& context);

// RFC 8621 7.5. Checks every create and prepares its message here; the messages are then sent together as a
// Deferred (no thread waits for their commit) and finish_submission_set records the EmailSubmissions.
MethodOutcome submission_set(store::Store& store, const store::Account& account, const Submitter& submitter,
                             const json& args, CallContext& context) {
    if (auto error = check_account_id(args, account)) return *error;
    auto parsed = parse_set_request(args, context.limits);
    if (auto* error = std::get_if<MethodError>(&parsed)) return *error;
    auto run = std::make_shared<SetRun>();
    run->store = &store;
    run->account = account;
    run->args = args;
    run->request = std::move(std::get<SetRequest>(parsed));
    auto list = store.list_jmap_objects(account.id, kType);
    if (!list) return MethodError{"serverFail", list.error().message};
    run->list = std::move(*list);
    if (run->request.if_in_state && *run->request.if_in_state != std::to_string(run->list.state)) {
        return MethodError{"stateMismatch", "the submissions changed since that state"};
    }
    for (const char* key : {"onSuccessUpdateEmail", "onSuccessDestroyEmail"}) {
        if (auto it = args.find(key); it != args.end() && !it->is_null() &&
                                      !(std::string_view(key) == "onSuccessUpdateEmail" ? it->is_object() : it->is_array())) {
            return MethodError{"invalidArguments", fmt::format("\"{}\" has the wrong type", key)};
        }
    }
    for (const auto& [creation_id, object] : run->request.create.items()) {
        auto plan = plan_submission(store, account, object, context);
        if (auto* error = std::get_if<json>(&plan)) {
            if ((*error)["type"] == "serverFail") return MethodError{"serverFail", error->value("description", "")};
            run->not_created[creation_id] = *error;
            continue;
        }
        auto& p = std::get<Plan>(plan);
        auto send = submitter(account, p.outgoing);
        if (!send) {
            if (send.error().code == Errc::invalid_argument) {
                run->not_created[creation_id] = set_error("invalidEmail", send.error().message);
                continue;
            }
            if (send.error().code == Errc::limit_exceeded) {
                run->not_created[creation_id] = set_error("tooLarge", send.error().message);
                continue;
            }
            return MethodError{"serverFail", send.error().message};
        }
        run->sends.push_back(SetRun::Send{creation_id, std::move(p), std::move(*send), std::nullopt});
    }
    if (run->sends.empty()) {
        auto result = finish_submission_set(*run, context);
        if (auto* error = std::get_if<MethodError>(&result)) return std::move(*error);
        return std::move(std::get<json>(result));
    }
    Deferred deferred;
    deferred.start = [run](std::function<void()> done) {
        auto left = std::make_shared<std::atomic<std::size_t>>(run->sends.size());
        auto shared_done = std::make_shared<std::function<void()>>(std::move(done));
        for (auto& send : run->sends) {
            send.send([run, left, shared_done, slot = &send](Result<SubmissionOutcome> outcome) {
                slot->outcome = std::move(outcome);
                if (left->fetch_sub(1) == 1) (*shared_done)();
            });
        }
    };
    deferred.finish = [run](CallContext& context) { return finish_submission_set(*run, context); };
    return deferred;
}

MethodResult finish_submission_set(SetRun& run, CallContext& context) {
    store::Store& store = *run.store;
    const store::Account& account = run.account;
    const json& args = run.args;
    const SetRequest& request = run.request;
    const store::JmapObjectList* list = &run.list;
    const std::string old_state = std::to_string(list->state);
    json created = json::object(), not_created = std::move(run.not_created), not_updated = json::object(),
         destroyed = json::array(), not_destroyed = json::object();
    std::map<std::string, std::string> email_of;  // submission id (and "#creation id") -> its emailId
    std::uint64_t new_state = list->state;
    for (auto& [creation_id, p, send, sent] : run.sends) {
        if (!sent) return MethodError{"serverFail", "a message was not sent"};
        if (!*sent) {
            if (sent->error().code == Errc::invalid_argument) {
                not_created[creation_id] = set_error("invalidEmail", sent->error().message);
                continue;
            }
            return MethodError{"serverFail", sent->error().message};
        }
        p.data["sendAt"] = utc_date(unix_now());
        p.data["queueId"] = (*sent)->queue_id;
        p.data["local"] = (*sent)->local;
        auto written = store.write_jmap_objects(account.id, kType, store::JmapObjectWrite{std::nullopt, {p.data.dump()}, {}, {}});
        if (!written) return MethodError{"serverFail", written.error().message};
        new_state = written->new_state;
        std::string id = fmt::format("{}{}", kPrefix, written->created.front());
        context.created_ids[creation_id] = id;
        email_of["#" + creation_id] = p.data["emailId"];
        email_of[id] = p.data["emailId"];
        created[creation_id] = {{"id", id}, {"sendAt", p.data["sendAt"]}, {"undoStatus", "final"}};
    }
    for (const auto& [id, patch] : request.update.items()) {
        // Sent at once: nothing is left to cancel (RFC 8621 7.5 cannotUnsend).
        bool known = std::ranges::any_of(list->objects, [&](const store::JmapObject& o) {
            return !o.destroyed && fmt::format("{}{}", kPrefix, o.id) == id;
        });
        if (!known) {
            not_updated[id] = set_error("notFound");
        } else if (patch.contains("undoStatus") && patch["undoStatus"] == "canceled") {
            not_updated[id] = set_error("cannotUnsend", "the message has been sent");
        } else {
            not_updated[id] = set_error("invalidProperties", "only undoStatus may change", {});
        }
    }
    store::JmapObjectWrite destroy;
    for (const auto& id : request.destroy) {
        auto n = parse_object_id(id, kPrefix);
        auto it = n ? std::ranges::find_if(list->objects, [&](const store::JmapObject& o) { return o.id == *n && !o.destroyed; })
                    : list->objects.end();
        if (it == list->objects.end()) {
            not_destroyed[id] = set_error("notFound");
            continue;
        }
        email_of[id] = parse_data(it->data).value("emailId", "");
        destroy.destroy.push_back(*n);
        destroyed.push_back(id);
    }
    if (!destroy.destroy.empty()) {
        auto written = store.write_jmap_objects(account.id, kType, destroy);
        if (!written) return MethodError{"serverFail", written.error().message};
        new_state = written->new_state;
    }
    // RFC 8621 7.5: on success, an implicit Email/set on the submitted Emails.
    json email_updated = json::object(), email_not_updated = json::object(), email_destroyed = json::array(),
         email_not_destroyed = json::object();
    bool implicit = false;
    if (auto updates = args.find("onSuccessUpdateEmail"); updates != args.end() && updates->is_object()) {
        for (const auto& [key, patch] : updates->items()) {
            auto it = email_of.find(key);
            if (it == email_of.end() || (!key.starts_with("#") && std::find(destroyed.begin(), destroyed.end(), json(key)) != destroyed.end())) continue;
            implicit = true;
            auto n = email_number(it->second);
            json error = n ? update_email(store, account, *n, patch, context) : set_error("notFound");
            if (error.is_null()) {
                email_updated[it->second] = nullptr;
            } else {
                email_not_updated[it->second] = error;
            }
        }
    }
    if (auto destroys = args.find("onSuccessDestroyEmail"); destroys != args.end() && destroys->is_array()) {
        std::vector<std::int64_t> numbers;
        std::vector<std::string> asked;
        for (const auto& key : *destroys) {
            auto it = key.is_string() ? email_of.find(key.get<std::string>()) : email_of.end();
            if (it == email_of.end()) continue;
            if (auto n = email_number(it->second)) {
                numbers.push_back(*n);
                asked.push_back(it->second);
            }
        }
        if (!numbers.empty()) {
            implicit = true;
            auto results = store.destroy_emails(account.id, numbers);
            if (!results) return MethodError{"serverFail", results.error().message};
            for (std::size_t i = 0; i < asked.size(); ++i) {
                if ((*results)[i]) {
                    email_destroyed.push_back(asked[i]);
                } else {
                    email_not_destroyed[asked[i]] = set_error("notFound", (*results)[i].error().message);
                }
            }
        }
    }
    auto or_null = [](json& object) { return object.empty() ? json() : object; };
    if (implicit) {
        auto state = store.account_state(account.id);
        if (!state) return MethodError{"serverFail", state.error().message};
        context.implicit_responses.emplace_back(
            "Email/set", json{{"accountId", jmap_account_id(account)}, {"oldState", nullptr},
                              {"newState", std::to_string(*state)}, {"created", nullptr},
                              {"updated", or_null(email_updated)},
                              {"destroyed", email_destroyed.empty() ? json() : email_destroyed},
                              {"notCreated", nullptr}, {"notUpdated", or_null(email_not_updated)},
                              {"notDestroyed", or_null(email_not_destroyed)}});
    }
    return json{{"accountId", jmap_account_id(account)}, {"oldState", old_state},
                {"newState", std::to_string(new_state)}, {"created", or_null(created)},
                {"updated", nullptr},                 {"destroyed", destroyed.empty() ? json() : destroyed},
                {"notCreated", or_null(not_created)},  {"notUpdated", or_null(not_updated)},
                {"notDestroyed", or_null(not_destroyed)}};
}

}  // namespace

void add_submission_methods(Dispatcher& dispatcher, store::Store& store, const store::Account& account,
                            Submitter submitter) {
    const std::string submission(kCapabilitySubmission);
    dispatcher.add("EmailSubmission/get", submission, [&store, account](const json& args, CallContext& context) {
        return submission_get(store, account, args, context);
    });
    dispatcher.add("EmailSubmission/changes", submission, [&store, account](const json& args, CallContext& context) -> MethodOutcome {
        if (auto error = check_account_id(args, account)) return *error;
        auto list = store.list_jmap_objects(account.id, kType);
        if (!list) return MethodError{"serverFail", list.error().message};
        return object_changes(*list, args, kPrefix, jmap_account_id(account), context.limits);
    });
    dispatcher.add("EmailSubmission/query", submission, [&store, account](const json& args, CallContext&) {
        return submission_query(store, account, args);
    });
    dispatcher.add("EmailSubmission/queryChanges", submission, [account](const json& args, CallContext&) -> MethodOutcome {
        if (auto error = check_account_id(args, account)) return *error;
        return MethodError{"cannotCalculateChanges", "EmailSubmission/query results are not tracked between states"};
    });
    dispatcher.add("EmailSubmission/set", submission,
                   [&store, account, submitter = std::move(submitter)](const json& args, CallContext& context) {
                       return submission_set(store, account, submitter, args, context);
                   });
}

}  // namespace magpie::http
