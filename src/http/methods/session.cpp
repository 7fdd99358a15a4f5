#include "http/methods/session.h"

#include <fmt/format.h>

#include "http/methods/blob.h"
#include "http/methods/email.h"
#include "http/methods/identity.h"
#include "http/jmap_websocket.h"
#include "http/methods/mailbox.h"

namespace magpie::http {

using nlohmann::json;

std::string jmap_account_id(const store::Account& account) { return fmt::format("a{}", account.id); }

std::string state_digest(std::string_view text) {
    std::uint64_t hash = 0xcbf29ce484222325ull;
    for (unsigned char c : text) {
        hash ^= c;
        hash *= 0x100000001b3ull;
    }
    return fmt::format("{:016x}", hash);
}

std::string session_state(const store::Account& account) {
    return state_digest(fmt::format("{}\n{}\ncore,mail,submission,vacationresponse,websocket", account.id, account.address));
}

json session_resource(const store::Account& account, const ApiLimits& limits, const std::string& base_url) {
    const std::string id = jmap_account_id(account);
    json core = {{"maxSizeUpload", limits.max_size_upload},
                 {"maxConcurrentUpload", limits.max_concurrent_upload},
                 {"maxSizeRequest", limits.max_size_request},
                 {"maxConcurrentRequests", limits.max_concurrent_requests},
                 {"maxCallsInRequest", limits.max_calls_in_request},
                 {"maxObjectsInGet", limits.max_objects_in_get},
                 {"maxObjectsInSet", limits.max_objects_in_set},
                 {"collationAlgorithms", json::array({"i;ascii-casemap"})}};
    // RFC 8621 1.3.1: the account's mail capability.
    json mail = {{"maxMailboxesPerEmail", nullptr},
                 {"maxMailboxDepth", nullptr},
                 {"maxSizeMailboxName", 490},
                 {"maxSizeAttachmentsPerEmail", limits.max_size_upload},
                 {"emailQuerySortOptions", json::array({"receivedAt", "sentAt", "size", "from", "subject"})},
                 // Mailbox/set creates with a null parentId (as IMAP CREATE does at the top level).
                 {"mayCreateTopLevelMailbox", true}};
    // RFC 8621 7.1: no delayed sending (FUTURERELEASE is not offered).
    json submission = {{"maxDelayedSend", 0}, {"submissionExtensions", json::object()}};
    // RFC 8887 4.1: the WebSocket URL beside the HTTP ones (ws: or wss: as the session was fetched).
    std::string websocket_url = "/jmap/ws";
    if (base_url.starts_with("http")) websocket_url = "ws" + base_url.substr(4) + websocket_url;
    json websocket = {{"url", websocket_url}, {"supportsPush", true}};
    return json{
        {"capabilities",
         {{std::string(kCapabilityCore), core},
          {std::string(kCapabilityWebSocket), websocket},
          {std::string(kCapabilityMail), json::object()},
          {std::string(kCapabilitySubmission), json::object()},
          {std::string(kCapabilityVacationResponse), json::object()}}},
        {"accounts",
         {{id,
           {{"name", account.address},
            {"isPersonal", true},
            {"isReadOnly", false},
            {"accountCapabilities",
             {{std::string(kCapabilityMail), mail},
              {std::string(kCapabilitySubmission), submission},
              {std::string(kCapabilityVacationResponse), json::object()}}}}}}},
        {"primaryAccounts",
         {{std::string(kCapabilityMail), id},
          {std::string(kCapabilitySubmission), id},
          {std::string(kCapabilityVacationResponse), id}}},
        {"username", account.address},
        {"apiUrl", base_url + "/jmap/api"},
        {"downloadUrl", base_url + "/jmap/download/{accountId}/{blobId}/{name}?type={type}"},
        {"uploadUrl", base_url + "/jmap/upload/{accountId}/"},
        {"eventSourceUrl", base_url + "/jmap/eventsource?types={types}&closeafter={closeafter}&ping={ping}"},
        {"state", session_state(account)}};
}

std::optional<MethodError> check_account_id(const json& arguments, const store::Account& account) {
    auto it = arguments.find("accountId");
    if (it == arguments.end() || !it->is_string()) {
        return MethodError{"invalidArguments", "\"accountId\" must be a string"};
    }
    if (it->get_ref<const std::string&>() != jmap_account_id(account)) {
        return MethodError{"accountNotFound", "no such account for this user"};
    }
    return std::nullopt;
}

std::unique_ptr<Dispatcher> make_dispatcher(store::Store& store, const store::Account& account,
                                            const ApiLimits& limits, Submitter submitter) {
    auto dispatcher = std::make_unique<Dispatcher>(limits);
    dispatcher->add_capability(std::string(kCapabilityMail));
    dispatcher->add_capability(std::string(kCapabilityWebSocket));
    add_mailbox_methods(*dispatcher, store, account);
    add_blob_methods(*dispatcher, store, account);
    add_email_methods(*dispatcher, store, account);
    dispatcher->add_capability(std::string(kCapabilitySubmission));
    dispatcher->add_capability(std::string(kCapabilityVacationResponse));
    add_identity_methods(*dispatcher, store, account);
    add_vacation_response_methods(*dispatcher, store, account);
    if (submitter) add_submission_methods(*dispatcher, store, account, std::move(submitter));
    return dispatcher;
}

Result<json> push_states(store::Store& store, const store::Account& account) {
    auto mailboxes = mailbox_state(store, account);
    if (!mailboxes) return mailboxes.error();
    json states = {{"Mailbox", *mailboxes}};
    auto emails = store.account_state(account.id);
    if (emails) {
        states["Email"] = std::to_string(*emails);
        states["Thread"] = std::to_string(*emails);
    } else if (emails.error().code != Errc::unavailable) {
        return emails.error();
    }
    for (const char* type : {"Identity", "EmailSubmission", "VacationResponse"}) {
        auto objects = store.list_jmap_objects(account.id, type);
        if (!objects) return objects.error();
        states[type] = std::to_string(objects->state);
    }
    return states;
}

}  // namespace magpie::http
