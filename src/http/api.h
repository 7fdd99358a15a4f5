// The JMAP API endpoint's core (RFC 8620 3): parses a Request object, checks the capabilities it uses and
// the session limits, resolves result references between calls (3.7) and dispatches each call to a
// registered method. Sans-IO: no socket, no store, no clock; methods over the store are registered by the
// caller, so this core is unit-tested and fuzzed on its own.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "http/json_limits.h"
#include "http/problem.h"

namespace magpie::http {

inline constexpr std::string_view kCapabilityCore = "urn:ietf:params:jmap:core";
inline constexpr std::string_view kCapabilityMail = "urn:ietf:params:jmap:mail";
inline constexpr std::string_view kCapabilitySubmission = "urn:ietf:params:jmap:submission";

// The limits RFC 8620 2 publishes in the session resource's core capability, plus the JSON bounds.
struct ApiLimits {
    std::uint64_t max_size_upload = 50ull << 20;       // octets
    std::size_t max_concurrent_upload = 4;
    std::uint64_t max_size_request = 10ull << 20;      // octets of a request body
    std::size_t max_concurrent_requests = 4;
    std::size_t max_calls_in_request = 32;
    std::size_t max_objects_in_get = 500;
    std::size_t max_objects_in_set = 500;
    // Content checks (a message read for a body, text, bcc, header or hasAttachment condition; each condition
    // on each message counts one) in one Email/query or SearchSnippet/get; beyond: unsupportedFilter.
    std::size_t max_query_message_reads = 100000;
    // Search terms (words, or quoted phrases) one Email/query "text" or "body" value may hold, each a condition
    // of its own; beyond: invalidArguments.
    std::size_t max_search_terms = 64;
    // rcptTo entries of one EmailSubmission (RFC 8621 7.5); beyond: the SetError tooManyRecipients.
    std::size_t max_submission_recipients = 1000;
    // Ids one /changes answers at most, whatever maxChanges the client asks (RFC 8620 5.2 lets it be fewer).
    std::size_t max_changes = 5000;
    JsonLimits json;
};

// A method-level error (RFC 8620 3.6.2): `type` is the RFC's exact name ("invalidArguments", ...).
struct MethodError {
    std::string type;
    std::string description;
};

// The "error" response of a call, as the invocation's arguments.
nlohmann::json method_error_arguments(const MethodError& error);

struct CallContext;

// What a method answers once it is done: its response arguments or its error.
using MethodResult = std::variant<nlohmann::json, MethodError>;

// What a method returns when it must wait for work that completes elsewhere (EmailSubmission/set waits for the
// group committer, RFC 8621 7.5): the caller runs start(done), which begins that work and calls done() exactly
// once, from any thread, when it is over; the caller then runs finish() (on a thread that may do store work)
// for the method's answer. Nothing waits on a thread in between.
struct Deferred {
    std::function<void(std::function<void()> done)> start;
    std::function<MethodResult(CallContext& context)> finish;
};

using MethodOutcome = std::variant<nlohmann::json, MethodError, Deferred>;

// What a method sees of the request: the capabilities it declared, the ids created so far (3.3
// createdIds, for creation references) and the limits.
struct CallContext {
    const std::set<std::string>& using_capabilities;
    std::map<std::string, std::string>& created_ids;
    const ApiLimits& limits;
    // Responses of implicit calls a method made (RFC 8621 7.5: EmailSubmission/set's onSuccessUpdateEmail
    // answers as an "Email/set"), placed after the method's own response with the same call id.
    std::vector<std::pair<std::string, nlohmann::json>> implicit_responses = {};
};

using Method = std::function<MethodOutcome(const nlohmann::json& arguments, CallContext& context)>;

// A Response object (RFC 8620 3.4) or a request-level Problem (3.6.1).
using Answer = std::variant<nlohmann::json, Problem>;

// One request under way (RFC 8620 3.3): Dispatcher::begin() and resume() run its calls in order until the
// end or until a method defers (`pending` set); the caller then runs pending->start and, once it is done,
// resume(). Holds what the calls share: the capabilities in use, the created ids and the responses so far.
struct RequestRun {
    explicit RequestRun(std::string state) : session_state(std::move(state)) {}

    std::string session_state;
    nlohmann::json request;
    std::set<std::string> using_capabilities;
    std::map<std::string, std::string> created_ids;
    bool echo_created_ids = false;
    nlohmann::json responses = nlohmann::json::array();
    std::size_t next = 0;                // the next call to run
    std::optional<Deferred> pending;     // the deferred call `next - 1`, set while paused
};

class Dispatcher {
public:
    // Registers the core capability and Core/echo (RFC 8620 4.1).
    explicit Dispatcher(ApiLimits limits);

    // `capability` must be in the request's "using" for the method to be callable (else unknownMethod).
    void add(std::string name, std::string capability, Method method);
    // Capabilities this server supports; a request using any other is refused (unknownCapability).
    void add_capability(std::string capability) { capabilities_.insert(std::move(capability)); }
    const ApiLimits& limits() const { return limits_; }

    // Runs one request body. The Response object (3.4) on success, with `session_state`; a Problem for the
    // request-level errors of 3.6.1 (notJSON, notRequest, unknownCapability, limit).
    std::variant<nlohmann::json, Problem> handle(std::string_view body, std::string_view session_state) const;
    // The same for a Request object already parsed within the limits (RFC 8887 4.3.1: a WebSocket message,
    // whose "@type" and "id" are left for the caller).
    std::variant<nlohmann::json, Problem> handle_request(nlohmann::json request, std::string_view session_state) const;
    // handle() and handle_request() run a deferred method's work inline and need it to call done() before
    // start() returns (the unit tests' and fuzzers' methods do); the server uses these instead, which return
    // nullopt while `run.pending` waits (`run.session_state` is set by the caller).
    std::optional<Answer> begin(RequestRun& run, std::string_view body) const;
    std::optional<Answer> begin_request(RequestRun& run, nlohmann::json request) const;
    std::optional<Answer> resume(RequestRun& run) const;

private:
    struct Entry {
        std::string capability;
        Method method;
    };
    MethodOutcome call(const std::string& name, const nlohmann::json& arguments, CallContext& context) const;
    // Runs calls from `run.next` on; nullopt when one deferred.
    std::optional<Answer> proceed(RequestRun& run) const;
    // Records one call's answer (and its implicit responses) in `run.responses`.
    static void record(RequestRun& run, MethodResult outcome, CallContext& context);
    // Runs a deferred method's work inline (handle()); a Problem when it did not finish before start() returned.
    Answer run_inline(RequestRun& run, std::optional<Answer> answer) const;

    ApiLimits limits_;
    std::set<std::string> capabilities_;
    std::map<std::string, Entry, std::less<>> methods_;
};

// Replaces every "#name" argument by the value its ResultReference points at (RFC 8620 3.7), looking in the
// responses so far. invalidArguments when both "name" and "#name" are given or the reference is malformed;
// invalidResultReference when it points nowhere.
std::optional<MethodError> resolve_result_references(nlohmann::json& arguments,
                                                     const nlohmann::json& responses);

// RFC 8620 3.7's JSON Pointer with the "*" extension: "*" maps the rest of the path over an array and
// flattens arrays in the result. nullopt when the path does not resolve.
std::optional<nlohmann::json> evaluate_pointer(const nlohmann::json& value, std::string_view pointer);

// Serialises without throwing: invalid UTF-8 from stored data is replaced, never an exception.
std::string to_json_text(const nlohmann::json& value);

}  // namespace magpie::http
