// The JMAP core without a network or a store: request shape, capabilities, limits, dispatch, result
// references (RFC 8620 3.7) and bounded JSON.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>

#include "http/api.h"

namespace magpie::http {
namespace {

using nlohmann::json;

Dispatcher make(ApiLimits limits = {}) {
    Dispatcher dispatcher(limits);
    dispatcher.add_capability("urn:test");
    dispatcher.add("Test/list", "urn:test", [](const json&, CallContext&) -> MethodOutcome {
        return json{{"ids", {"a", "b"}}, {"list", {{{"id", "a"}, {"tags", {"x", "y"}}}, {{"id", "b"}, {"tags", {"z"}}}}}};
    });
    dispatcher.add("Test/fail", "urn:test", [](const json&, CallContext&) -> MethodOutcome {
        return MethodError{"forbidden", "no"};
    });
    dispatcher.add("Test/misread", "urn:test", [](const json& args, CallContext&) -> MethodOutcome {
        return json{{"n", args.at("n").get<int>()}};
    });
    return dispatcher;
}

json run(const Dispatcher& dispatcher, const json& request) {
    auto outcome = dispatcher.handle(request.dump(), "s1");
    EXPECT_TRUE(std::holds_alternative<json>(outcome));
    return std::holds_alternative<json>(outcome) ? std::get<json>(outcome) : json();
}

Problem problem(const Dispatcher& dispatcher, std::string_view body) {
    auto outcome = dispatcher.handle(body, "s1");
    EXPECT_TRUE(std::holds_alternative<Problem>(outcome));
    return std::holds_alternative<Problem>(outcome) ? std::get<Problem>(outcome) : Problem{};
}

TEST(HttpApi, EchoReturnsItsArgumentsUnderItsCallId) {
    auto response = run(make(), {{"using", {"urn:ietf:params:jmap:core"}},
                                 {"methodCalls", {{"Core/echo", {{"a", 1}}, "c1"}}}});
    EXPECT_EQ(response["methodResponses"], json::parse(R"([["Core/echo",{"a":1},"c1"]])"));
    EXPECT_EQ(response["sessionState"], "s1");
    EXPECT_FALSE(response.contains("createdIds"));
}

TEST(HttpApi, CreatedIdsAreEchoedWhenGiven) {
    auto response = run(make(), {{"using", json::array()}, {"methodCalls", json::array()},
                                 {"createdIds", {{"k", "v"}}}});
    EXPECT_EQ(response["createdIds"], json({{"k", "v"}}));
}

TEST(HttpApi, UnknownCapabilityIsARequestLevelProblem) {
    auto p = problem(make(), R"({"using":["urn:nope"],"methodCalls":[]})");
    EXPECT_EQ(p.type, kProblemUnknownCapability);
    EXPECT_EQ(p.status, 400);
}

TEST(HttpApi, MalformedRequestsAreNotJsonOrNotRequest) {
    auto d = make();
    EXPECT_EQ(problem(d, "{").type, kProblemNotJson);
    EXPECT_EQ(problem(d, "\xff").type, kProblemNotJson);
    EXPECT_EQ(problem(d, "[]").type, kProblemNotRequest);
    EXPECT_EQ(problem(d, R"({"using":[1],"methodCalls":[]})").type, kProblemNotRequest);
    EXPECT_EQ(problem(d, R"({"using":[],"methodCalls":[["a",{},1]]})").type, kProblemNotRequest);
    EXPECT_EQ(problem(d, R"({"using":[],"methodCalls":[["a",[],"c"]]})").type, kProblemNotRequest);
    EXPECT_EQ(problem(d, R"({"using":[],"methodCalls":[],"createdIds":{"a":1}})").type, kProblemNotRequest);
}

TEST(HttpApi, TooManyCallsIsTheLimitProblem) {
    ApiLimits limits;
    limits.max_calls_in_request = 2;
    json calls = json::array();
    for (int i = 0; i < 3; ++i) calls.push_back({"Core/echo", json::object(), std::to_string(i)});
    auto p = problem(make(limits), json{{"using", json::array()}, {"methodCalls", calls}}.dump());
    EXPECT_EQ(p.type, kProblemLimit);
    EXPECT_EQ(p.limit, "maxCallsInRequest");
}

TEST(HttpApi, OversizedBodyIsTheLimitProblem) {
    ApiLimits limits;
    limits.max_size_request = 10;
    auto p = problem(make(limits), R"({"using":[],"methodCalls":[]})");
    EXPECT_EQ(p.limit, "maxSizeRequest");
}

TEST(HttpApi, DeepNestingAndLongStringsAreRefusedBeforeParsing) {
    ApiLimits limits;
    limits.json.max_depth = 8;
    limits.json.max_string_octets = 16;
    auto d = make(limits);
    EXPECT_EQ(problem(d, std::string(9, '[') + std::string(9, ']')).type, kProblemNotJson);
    EXPECT_EQ(problem(d, "\"" + std::string(17, 'a') + "\"").type, kProblemNotJson);
    // Brackets and escaped quotes inside strings do not count as nesting.
    auto ok = d.handle(R"({"using":[],"methodCalls":[["Core/echo",{"a":"[[[[\"[[[["},"c"]]})", "s");
    EXPECT_TRUE(std::holds_alternative<json>(ok));
}

TEST(HttpApi, MethodOutsideTheCapabilitiesInUseIsUnknownMethod) {
    auto response = run(make(), {{"using", json::array()},
                                 {"methodCalls", {{"Test/list", json::object(), "a"}, {"Nope/x", json::object(), "b"}}}});
    EXPECT_EQ(response["methodResponses"][0], json::parse(R"(["error",{"type":"unknownMethod","description":"\"Test/list\" is not a method of the capabilities in use"},"a"])"));
    EXPECT_EQ(response["methodResponses"][1][1]["type"], "unknownMethod");
}

TEST(HttpApi, MethodErrorsKeepTheirCallIdAndLaterCallsStillRun) {
    auto response = run(make(), {{"using", {"urn:test", "urn:ietf:params:jmap:core"}},
                                 {"methodCalls", {{"Test/fail", json::object(), "a"}, {"Core/echo", {{"x", 1}}, "b"}}}});
    EXPECT_EQ(response["methodResponses"][0], json::parse(R"(["error",{"type":"forbidden","description":"no"},"a"])"));
    EXPECT_EQ(response["methodResponses"][1], json::parse(R"(["Core/echo",{"x":1},"b"])"));
}

TEST(HttpApi, AMethodThatMisreadsItsArgumentsFailsAloneWithServerFail) {
    auto response = run(make(), {{"using", {"urn:test", "urn:ietf:params:jmap:core"}}, {"methodCalls", {{"Test/misread", {{"n", "x"}}, "a"}}}});
    EXPECT_EQ(response["methodResponses"][0][1]["type"], "serverFail");
}

// A method that waits for work done elsewhere (EmailSubmission's group commit) pauses the request: the caller
// starts the work, nothing runs until it is done, then the request resumes where it stopped, and later calls
// see the deferred call's created ids and can refer to its response.
TEST(HttpApi, ADeferredMethodPausesTheRequestUntilItsWorkIsDone) {
    Dispatcher dispatcher = make();
    std::function<void()> finish_work;
    dispatcher.add("Test/send", "urn:test", [&](const json& args, CallContext&) -> MethodOutcome {
        auto sent = std::make_shared<int>(0);
        return Deferred{[&finish_work, sent](std::function<void()> done) {
                            finish_work = [sent, done] {
                                *sent = 7;
                                done();
                            };
                        },
                        [sent, args](CallContext& context) -> MethodResult {
                            context.created_ids["k"] = "s" + std::to_string(*sent);
                            context.implicit_responses.emplace_back("Test/implicit", json{{"n", *sent}});
                            return json{{"sent", *sent}, {"asked", args}};
                        }};
    });
    RequestRun run("s9");
    json request = {{"using", {"urn:test", "urn:ietf:params:jmap:core"}},
                    {"methodCalls", {{"Core/echo", {{"a", 1}}, "0"},
                                     {"Test/send", {{"x", 2}}, "1"},
                                     {"Core/echo", {{"#sent", {{"resultOf", "1"}, {"name", "Test/send"}, {"path", "/sent"}}}}, "2"}}},
                    {"createdIds", json::object()}};
    auto answer = dispatcher.begin(run, request.dump());
    ASSERT_FALSE(answer);
    ASSERT_TRUE(run.pending);
    bool done = false;
    run.pending->start([&done] { done = true; });
    EXPECT_FALSE(done);
    finish_work();  // e.g. the group committer's callback, later and on another thread
    ASSERT_TRUE(done);
    answer = dispatcher.resume(run);
    ASSERT_TRUE(answer);
    const json& response = std::get<json>(*answer);
    EXPECT_EQ(response["methodResponses"], json::parse(R"([["Core/echo",{"a":1},"0"],
        ["Test/send",{"sent":7,"asked":{"x":2}},"1"],["Test/implicit",{"n":7},"1"],["Core/echo",{"sent":7},"2"]])"));
    EXPECT_EQ(response["createdIds"], (json{{"k", "s7"}}));
    EXPECT_EQ(response["sessionState"], "s9");
    // handle() runs such work inline and refuses work that does not finish there.
    auto inline_answer = dispatcher.handle(request.dump(), "s1");
    ASSERT_TRUE(std::holds_alternative<Problem>(inline_answer));
    EXPECT_EQ(std::get<Problem>(inline_answer).status, 500);
}

TEST(HttpApi, ResultReferencesResolveWithWildcards) {
    auto response = run(make(), {{"using", {"urn:test", "urn:ietf:params:jmap:core"}},
                                 {"methodCalls",
                                  {{"Test/list", json::object(), "a"},
                                   {"Core/echo", {{"#ids", {{"resultOf", "a"}, {"name", "Test/list"}, {"path", "/ids"}}}}, "b"},
                                   {"Core/echo", {{"#tags", {{"resultOf", "a"}, {"name", "Test/list"}, {"path", "/list/*/tags"}}}}, "c"},
                                   {"Core/echo", {{"#first", {{"resultOf", "a"}, {"name", "Test/list"}, {"path", "/list/1/id"}}}}, "d"}}}});
    const auto& r = response["methodResponses"];
    EXPECT_EQ(r[1][1], json({{"ids", {"a", "b"}}}));
    EXPECT_EQ(r[2][1], json({{"tags", {"x", "y", "z"}}}));
    EXPECT_EQ(r[3][1], json({{"first", "b"}}));
}

TEST(HttpApi, BrokenResultReferencesAreMethodErrors) {
    auto ref = [](json reference) {
        return run(make(), {{"using", {"urn:test", "urn:ietf:params:jmap:core"}},
                            {"methodCalls", {{"Test/list", json::object(), "a"}, {"Core/echo", reference, "b"}}}})
            ["methodResponses"][1][1]["type"];
    };
    EXPECT_EQ(ref({{"#x", {{"resultOf", "z"}, {"name", "Test/list"}, {"path", "/ids"}}}}), "invalidResultReference");
    EXPECT_EQ(ref({{"#x", {{"resultOf", "a"}, {"name", "Other/get"}, {"path", "/ids"}}}}), "invalidResultReference");
    EXPECT_EQ(ref({{"#x", {{"resultOf", "a"}, {"name", "Test/list"}, {"path", "/nope"}}}}), "invalidResultReference");
    EXPECT_EQ(ref({{"#x", {{"resultOf", "a"}, {"name", "Test/list"}, {"path", "/ids/07"}}}}), "invalidResultReference");
    EXPECT_EQ(ref({{"#x", "not an object"}}), "invalidArguments");
    EXPECT_EQ(ref({{"x", 1}, {"#x", {{"resultOf", "a"}, {"name", "Test/list"}, {"path", "/ids"}}}}), "invalidArguments");
}

TEST(HttpApi, PointerUnescapesTildes) {
    json value = {{"a/b", {{"~c", 5}}}};
    EXPECT_EQ(evaluate_pointer(value, "/a~1b/~0c"), json(5));
    EXPECT_EQ(evaluate_pointer(value, ""), value);
    EXPECT_FALSE(evaluate_pointer(value, "a"));
}

TEST(HttpApi, SerialisingInvalidUtf8ReplacesInsteadOfThrowing) {
    EXPECT_EQ(to_json_text(json(std::string("a\xff"))), "\"a\xEF\xBF\xBD\"");
}

}  // namespace
}  // namespace magpie::http
