// The JMAP session resource (RFC 8620 2) of one account and the Dispatcher holding that account's methods.
// Ids: the account id is "a" followed by the store's account number.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "http/api.h"
#include "http/methods/submission.h"
#include "store/store.h"

namespace magpie::http {

std::string jmap_account_id(const store::Account& account);

// The capabilities this server advertises and serves: core, mail, submission, vacationresponse and websocket
// (RFC 8887 4.1: its url is ws(s):// on the same host, "/jmap/ws" when `base_url` is empty).
// `base_url` ("https://host:port", or "" for relative URLs) prefixes apiUrl, downloadUrl, uploadUrl and
// eventSourceUrl: many clients (jmap-jam among them) resolve nothing themselves.
nlohmann::json session_resource(const store::Account& account, const ApiLimits& limits,
                                const std::string& base_url = {});
// Changes when the session resource would (the account's identity): RFC 8620 2 "state".
std::string session_state(const store::Account& account);

// A Dispatcher with every method of `account`; `store` must outlive it. EmailSubmission/* are served when a
// `submitter` is given (the server's outgoing path).
std::unique_ptr<Dispatcher> make_dispatcher(store::Store& store, const store::Account& account,
                                            const ApiLimits& limits, Submitter submitter = {});

// Checks a method's "accountId" argument (RFC 8620 3.6.2): invalidArguments when absent or not a string,
// accountNotFound when it names any account but this one.
std::optional<MethodError> check_account_id(const nlohmann::json& arguments, const store::Account& account);

// A stable 64-bit FNV-1a digest in hex, for state strings built from what they summarise.
std::string state_digest(std::string_view text);

// The states push reports (RFC 8620 7.1 TypeState): Mailbox, Email and Thread (the account state), Identity,
// EmailSubmission and VacationResponse, as their /get methods report them.
Result<nlohmann::json> push_states(store::Store& store, const store::Account& account);

}  // namespace magpie::http
