#include "http/api.h"

#include <fmt/format.h>

namespace magpie::http {
namespace {

using nlohmann::json;

Problem not_request(std::string detail) { return Problem{400, kProblemNotRequest, std::move(detail), {}}; }

// RFC 8620 3.3: the shape of a Request object, checked before anything runs.
std::optional<Problem> check_request_shape(const json& request) {
    if (!request.is_object()) return not_request("the request is not a JSON object");
    auto using_it = request.find("using");
    if (using_it == request.end() || !using_it->is_array()) return not_request("\"using\" must be an array");
    for (const auto& capability : *using_it) {
        if (!capability.is_string()) return not_request("\"using\" must hold strings");
    }
    auto calls = request.find("methodCalls");
    if (calls == request.end() || !calls->is_array()) return not_request("\"methodCalls\" must be an array");
    for (const auto& call : *calls) {
        if (!call.is_array() || call.size() != 3 || !call[0].is_string() || !call[1].is_object() ||
            !call[2].is_string()) {
            return not_request("each method call must be [name, arguments object, call id]");
        }
    }
    if (auto created = request.find("createdIds"); created != request.end()) {
        if (!created->is_object()) return not_request("\"createdIds\" must be an object");
        for (const auto& [key, value] : created->items()) {
            if (!value.is_string()) return not_request("\"createdIds\" values must be strings");
        }
    }
    return std::nullopt;
}

std::string unescape_token(std::string_view token) {
    std::string out;
    for (std::size_t i = 0; i < token.size(); ++i) {
        if (token[i] == '~' && i + 1 < token.size() && (token[i + 1] == '0' || token[i + 1] == '1')) {
            out.push_back(token[i + 1] == '0' ? '~' : '/');
            ++i;
        } else {
            out.push_back(token[i]);
        }
    }
    return out;
}

std::optional<json> evaluate_tokens(const json& value, const std::vector<std::string>& tokens, std::size_t at) {
    if (at == tokens.size()) return value;
    const std::string& token = tokens[at];
    if (value.is_array()) {
        if (token == "*") {
            json out = json::array();
            for (const auto& item : value) {
                auto mapped = evaluate_tokens(item, tokens, at + 1);
                if (!mapped) return std::nullopt;
                if (mapped->is_array()) {
                    for (auto& element : *mapped) out.push_back(std::move(element));
                } else {
                    out.push_back(std::move(*mapped));
                }
            }
            return out;
        }
        if (token.empty() || token.size() > 9 || token.find_first_not_of("0123456789") != std::string::npos ||
            (token.size() > 1 && token[0] == '0')) {
            return std::nullopt;
        }
        std::size_t index = std::stoul(token);
        if (index >= value.size()) return std::nullopt;
        return evaluate_tokens(value[index], tokens, at + 1);
    }
    if (value.is_object()) {
        auto it = value.find(token);
        if (it == value.end()) return std::nullopt;
        return evaluate_tokens(*it, tokens, at + 1);
    }
    return std::nullopt;
}

}  // namespace

json method_error_arguments(const MethodError& error) {
    json arguments = {{"type", error.type}};
    if (!error.description.empty()) arguments["description"] = error.description;
    return arguments;
}

std::string to_json_text(const json& value) {
    return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<json> evaluate_pointer(const json& value, std::string_view pointer) {
    if (pointer.empty()) return value;
    if (pointer.front() != '/') return std::nullopt;
    std::vector<std::string> tokens;
    std::size_t start = 1;
    for (;;) {
        std::size_t slash = pointer.find('/', start);
        tokens.push_back(unescape_token(pointer.substr(start, slash == std::string_view::npos ? slash : slash - start)));
        if (slash == std::string_view::npos) break;
        start = slash + 1;
    }
    return evaluate_tokens(value, tokens, 0);
}

std::optional<MethodError> resolve_result_references(json& arguments, const json& responses) {
    std::vector<std::string> references;
    for (const auto& [key, value] : arguments.items()) {
        if (!key.empty() && key.front() == '#') references.push_back(key);
    }
    for (const auto& key : references) {
        std::string plain = key.substr(1);
        if (arguments.contains(plain)) {
            return MethodError{"invalidArguments", fmt::format("both \"{}\" and \"{}\" are given", plain, key)};
        }
        const json& reference = arguments[key];
        if (!reference.is_object() || !reference.contains("resultOf") || !reference["resultOf"].is_string() ||
            !reference.contains("name") || !reference["name"].is_string() || !reference.contains("path") ||
            !reference["path"].is_string()) {
            return MethodError{"invalidArguments", fmt::format("\"{}\" is not a ResultReference", key)};
        }
        const auto& result_of = reference["resultOf"].get_ref<const std::string&>();
        const auto& name = reference["name"].get_ref<const std::string&>();
        const json* target = nullptr;
        for (const auto& response : responses) {
            if (response[2] == result_of && response[0] == name) {
                target = &response[1];
                break;
            }
        }
        if (!target) {
            return MethodError{"invalidResultReference",
                               fmt::format("no earlier \"{}\" response with call id \"{}\"", name, result_of)};
        }
        auto value = evaluate_pointer(*target, reference["path"].get_ref<const std::string&>());
        if (!value) {
            return MethodError{"invalidResultReference",
                               fmt::format("the path of \"{}\" does not resolve", key)};
        }
        arguments.erase(key);
        arguments[plain] = std::move(*value);
    }
    return std::nullopt;
}

Dispatcher::Dispatcher(ApiLimits limits) : limits_(std::move(limits)) {
    add_capability(std::string(kCapabilityCore));
    // RFC 8620 4.1: Core/echo answers with its own arguments.
    add("Core/echo", std::string(kCapabilityCore), [](const json& arguments, CallContext&) -> MethodOutcome {
        return arguments;
    });
}

void Dispatcher::add(std::string name, std::string capability, Method method) {
    methods_[std::move(name)] = Entry{std::move(capability), std::move(method)};
}

MethodOutcome Dispatcher::call(const std::string& name, const json& arguments, CallContext& context) const {
    auto it = methods_.find(name);
    if (it == methods_.end() || !context.using_capabilities.contains(it->second.capability)) {
        return MethodError{"unknownMethod", fmt::format("\"{}\" is not a method of the capabilities in use", name)};
    }
    try {
        return it->second.method(arguments, context);
    } catch (const json::exception& e) {
        // A method read an argument with the wrong JSON type without checking it first: a bug, but one
        // call's bug, not the request's.
        return MethodError{"serverFail", e.what()};
    }
}

std::variant<json, Problem> Dispatcher::handle(std::string_view body, std::string_view session_state) const {
    RequestRun run{std::string(session_state)};
    return run_inline(run, begin(run, body));
}

std::variant<json, Problem> Dispatcher::handle_request(json request, std::string_view session_state) const {
    RequestRun run{std::string(session_state)};
    return run_inline(run, begin_request(run, std::move(request)));
}

Answer Dispatcher::run_inline(RequestRun& run, std::optional<Answer> answer) const {
    while (!answer) {
        bool done = false;
        run.pending->start([&done] { done = true; });
        if (!done) return Problem{500, "about:blank", "a method's work did not finish inline", {}};
        answer = resume(run);
    }
    return std::move(*answer);
}

std::optional<Answer> Dispatcher::begin(RequestRun& run, std::string_view body) const {
    if (body.size() > limits_.max_size_request) {
        return Problem{400, kProblemLimit, fmt::format("the request is larger than {} octets", limits_.max_size_request),
                       "maxSizeRequest"};
    }
    auto parsed = parse_json(body, limits_.json);
    // Too deep or too long is refused as notJSON too: these bounds are not session limits (3.6.1).
    if (!parsed) return Problem{400, kProblemNotJson, parsed.error().message, {}};
    return begin_request(run, std::move(*parsed));
}

std::optional<Answer> Dispatcher::begin_request(RequestRun& run, json request) const {
    if (auto problem = check_request_shape(request)) return *problem;

    for (const auto& capability : request["using"]) {
        const auto& name = capability.get_ref<const std::string&>();
        if (!capabilities_.contains(name)) {
            return Problem{400, kProblemUnknownCapability,
                           fmt::format("the server does not support \"{}\"", name), {}};
        }
        run.using_capabilities.insert(name);
    }
    if (request["methodCalls"].size() > limits_.max_calls_in_request) {
        return Problem{400, kProblemLimit,
                       fmt::format("more than {} method calls in one request", limits_.max_calls_in_request),
                       "maxCallsInRequest"};
    }
    run.echo_created_ids = request.contains("createdIds");
    if (run.echo_created_ids) {
        for (const auto& [key, value] : request["createdIds"].items()) run.created_ids[key] = value.get<std::string>();
    }
    run.request = std::move(request);
    return proceed(run);
}

std::optional<Answer> Dispatcher::resume(RequestRun& run) const {
    if (run.pending) {
        CallContext context{run.using_capabilities, run.created_ids, limits_};
        auto finish = std::move(run.pending->finish);
        run.pending.reset();
        MethodResult outcome;
        try {
            outcome = finish(context);
        } catch (const json::exception& e) {
            outcome = MethodError{"serverFail", e.what()};
        }
        record(run, std::move(outcome), context);
    }
    return proceed(run);
}

void Dispatcher::record(RequestRun& run, MethodResult outcome, CallContext& context) {
    const json& call = run.request["methodCalls"][run.next - 1];
    if (auto* error = std::get_if<MethodError>(&outcome)) {
        run.responses.push_back(json::array({"error", method_error_arguments(*error), call[2]}));
        return;
    }
    run.responses.push_back(json::array({call[0], std::move(std::get<json>(outcome)), call[2]}));
    for (auto& [implicit_name, implicit] : context.implicit_responses) {
        run.responses.push_back(json::array({implicit_name, std::move(implicit), call[2]}));
    }
}

std::optional<Answer> Dispatcher::proceed(RequestRun& run) const {
    json& calls = run.request["methodCalls"];
    CallContext context{run.using_capabilities, run.created_ids, limits_};
    while (run.next < calls.size()) {
        json& call = calls[run.next++];
        const auto& name = call[0].get_ref<const std::string&>();
        json& arguments = call[1];
        if (auto error = resolve_result_references(arguments, run.responses)) {
            run.responses.push_back(json::array({"error", method_error_arguments(*error), call[2]}));
            continue;
        }
        context.implicit_responses.clear();
        auto outcome = this->call(name, arguments, context);
        if (auto* deferred = std::get_if<Deferred>(&outcome)) {
            run.pending = std::move(*deferred);
            return std::nullopt;
        }
        if (auto* error = std::get_if<MethodError>(&outcome)) {
            record(run, *error, context);
        } else {
            record(run, std::move(std::get<json>(outcome)), context);
        }
    }
    json response = {{"methodResponses", std::move(run.responses)}, {"sessionState", run.session_state}};
    if (run.echo_created_ids) response["createdIds"] = run.created_ids;
    return response;
}

}  // namespace magpie::http
