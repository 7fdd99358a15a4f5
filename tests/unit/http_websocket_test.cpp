// JMAP over WebSocket without a socket: RFC 6455 framing (handshake key, masked client frames, fragments,
// bounds, control frames) and RFC 8887 messages (Request, push on/off, RequestError, StateChange).
#include <gtest/gtest.h>

#include <string>

#include "http/jmap_websocket.h"
#include "http/push.h"
#include "http/push_state.h"
#include "http/websocket.h"

namespace magpie::http {
namespace {

using nlohmann::json;
namespace ws = websocket;

// A client frame (RFC 6455 5.2), masked with a fixed key.
std::string client_frame(std::uint8_t first, std::string_view payload, bool mask = true) {
    std::string out;
    out.push_back(static_cast<char>(first));
    const char mask_bit = mask ? static_cast<char>(0x80) : 0;
    if (payload.size() < 126) {
        out.push_back(static_cast<char>(mask_bit | static_cast<char>(payload.size())));
    } else if (payload.size() <= 0xffff) {
        out.push_back(static_cast<char>(mask_bit | 126));
        out.push_back(static_cast<char>(payload.size() >> 8));
        out.push_back(static_cast<char>(payload.size() & 0xff));
    } else {
        out.push_back(static_cast<char>(mask_bit | 127));
        for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((payload.size() >> (8 * i)) & 0xff));
    }
    const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
    if (mask) out.append(reinterpret_cast<const char*>(key), 4);
    for (std::size_t i = 0; i < payload.size(); ++i) {
        out.push_back(mask ? static_cast<char>(payload[i] ^ key[i % 4]) : payload[i]);
    }
    return out;
}

TEST(WebSocketHandshake, AcceptKeyIsTheRfcExample) {
    // RFC 6455 1.3.
    EXPECT_EQ(ws::accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    EXPECT_TRUE(ws::valid_key("dGhlIHNhbXBsZSBub25jZQ=="));
    EXPECT_FALSE(ws::valid_key("dGhlIHNhbXBsZSBub25jZQ"));
    EXPECT_FALSE(ws::valid_key("dGhlIHNhbXBsZSBub25j*Q=="));
}

TEST(WebSocketHandshake, TokensInHeaderLists) {
    EXPECT_TRUE(ws::has_token("keep-alive, Upgrade", "upgrade", true));
    EXPECT_TRUE(ws::has_token("chat, jmap", "jmap", false));
    EXPECT_FALSE(ws::has_token("JMAP", "jmap", false));
    EXPECT_FALSE(ws::has_token("jmapx", "jmap", false));
    EXPECT_FALSE(ws::has_token("", "jmap", false));
}

TEST(WebSocketReader, ReadsAMaskedTextFrameFedByteByByte) {
    ws::Reader reader(1000);
    const std::string bytes = client_frame(0x81, "Hello");
    for (std::size_t i = 0; i + 1 < bytes.size(); ++i) {
        reader.feed(bytes.substr(i, 1));
        EXPECT_FALSE(reader.next());
    }
    reader.feed(bytes.substr(bytes.size() - 1));
    auto message = reader.next();
    ASSERT_TRUE(message);
    EXPECT_EQ(message->opcode, ws::Opcode::text);
    EXPECT_EQ(message->payload, "Hello");
    EXPECT_EQ(reader.error(), 0);
}

TEST(WebSocketReader, JoinsFragmentsAroundAPing) {
    ws::Reader reader(1000);
    reader.feed(client_frame(0x01, "Hel") + client_frame(0x89, "p") + client_frame(0x80, "lo"));
    auto ping = reader.next();
    ASSERT_TRUE(ping);
    EXPECT_EQ(ping->opcode, ws::Opcode::ping);
    EXPECT_EQ(ping->payload, "p");
    auto text = reader.next();
    ASSERT_TRUE(text);
    EXPECT_EQ(text->payload, "Hello");
}

TEST(WebSocketReader, ReadsSixteenAndSixtyFourBitLengths) {
    ws::Reader reader(1 << 20);
    const std::string medium(300, 'm'), large(70000, 'l');
    reader.feed(client_frame(0x81, medium) + client_frame(0x81, large));
    EXPECT_EQ(reader.next()->payload, medium);
    EXPECT_EQ(reader.next()->payload, large);
}

TEST(WebSocketReader, RefusesAMessageOverTheBoundFromItsHeader) {
    ws::Reader reader(100);
    std::string frame = client_frame(0x81, std::string(200, 'x'));
    reader.feed(frame.substr(0, 8));  // the header only: refused before the payload arrives
    EXPECT_FALSE(reader.next());
    EXPECT_EQ(reader.error(), ws::kCloseTooBig);
}

TEST(WebSocketReader, RefusesFragmentsThatTogetherExceedTheBound) {
    ws::Reader reader(100);
    reader.feed(client_frame(0x01, std::string(60, 'x')) + client_frame(0x80, std::string(60, 'y')));
    EXPECT_FALSE(reader.next());
    EXPECT_EQ(reader.error(), ws::kCloseTooBig);
}

TEST(WebSocketReader, RefusesUnmaskedFramesAndBadControlFrames) {
    ws::Reader unmasked(100);
    unmasked.feed(client_frame(0x81, "hi", false));
    EXPECT_FALSE(unmasked.next());
    EXPECT_EQ(unmasked.error(), ws::kCloseProtocolError);

    ws::Reader fragmented_ping(100);
    fragmented_ping.feed(client_frame(0x09, "p"));
    EXPECT_FALSE(fragmented_ping.next());
    EXPECT_EQ(fragmented_ping.error(), ws::kCloseProtocolError);

    ws::Reader stray(100);
    stray.feed(client_frame(0x80, "x"));
    EXPECT_FALSE(stray.next());
    EXPECT_EQ(stray.error(), ws::kCloseProtocolError);

    ws::Reader reserved(100);
    reserved.feed(client_frame(0xc1, "x"));
    EXPECT_FALSE(reserved.next());
    EXPECT_EQ(reserved.error(), ws::kCloseProtocolError);
}

TEST(WebSocketReader, RefusesTextThatIsNotUtf8) {
    ws::Reader reader(100);
    reader.feed(client_frame(0x81, "\xc3\x28"));
    EXPECT_FALSE(reader.next());
    EXPECT_EQ(reader.error(), ws::kCloseInvalidData);
}

TEST(WebSocketWriter, FramesAreUnmaskedWithTheShortestLength) {
    EXPECT_EQ(ws::frame(ws::Opcode::text, "Hi"), std::string("\x81\x02Hi", 4));
    std::string medium = ws::frame(ws::Opcode::text, std::string(300, 'a'));
    EXPECT_EQ(medium.substr(0, 4), std::string("\x81\x7e\x01\x2c", 4));
    EXPECT_EQ(medium.size(), 304u);
    std::string large = ws::frame(ws::Opcode::binary, std::string(70000, 'a'));
    EXPECT_EQ(large.substr(0, 2), std::string("\x82\x7f", 2));
    EXPECT_EQ(large.size(), 70010u);
    std::string close = ws::close_frame(ws::kCloseTooBig, std::string(200, 'r'));
    EXPECT_EQ(close.size(), 2u + 125u);
    EXPECT_EQ(close.substr(0, 4), std::string("\x88\x7d\x03\xf1", 4));
}

TEST(JmapWebSocket, ParsesTheRfc8887RequestExample) {
    // RFC 8887 5: a Request with an id.
    auto inbound = parse_ws_message(
        R"({"@type":"Request","id":"R1","using":["urn:ietf:params:jmap:core","urn:ietf:params:jmap:mail"],)"
        R"("methodCalls":[["Email/get",{"accountId":"ue150411c","properties":["blobId"]},"c1"]]})",
        JsonLimits{});
    auto* request = std::get_if<WsRequest>(&inbound);
    ASSERT_TRUE(request);
    EXPECT_EQ(request->id, "R1");
    EXPECT_EQ(request->request["methodCalls"][0][0], "Email/get");
}

TEST(JmapWebSocket, ResponsesCarryTheRequestId) {
    json answer = json::parse(ws_response(json{{"methodResponses", json::array()}, {"sessionState", "75128aab4b1b"}}, "R1"));
    EXPECT_EQ(answer["@type"], "Response");
    EXPECT_EQ(answer["requestId"], "R1");
    EXPECT_EQ(answer["sessionState"], "75128aab4b1b");
    json anonymous = json::parse(ws_response(json{{"methodResponses", json::array()}}, nullptr));
    EXPECT_FALSE(anonymous.contains("requestId"));
}

TEST(JmapWebSocket, BadMessagesAreRequestErrors) {
    auto not_json = parse_ws_message("{", JsonLimits{});
    ASSERT_TRUE(std::holds_alternative<WsRefused>(not_json));
    json error = json::parse(ws_request_error(std::get<WsRefused>(not_json).problem, nullptr));
    EXPECT_EQ(error["@type"], "RequestError");
    EXPECT_EQ(error["type"], kProblemNotJson);
    EXPECT_EQ(error["status"], 400);

    auto untyped = parse_ws_message(R"({"id":"R2","using":[],"methodCalls":[]})", JsonLimits{});
    ASSERT_TRUE(std::holds_alternative<WsRefused>(untyped));
    EXPECT_EQ(std::get<WsRefused>(untyped).id, "R2");
    EXPECT_EQ(std::get<WsRefused>(untyped).problem.type, kProblemNotRequest);

    auto deep = parse_ws_message(std::string(100, '['), JsonLimits{8, 100});
    ASSERT_TRUE(std::holds_alternative<WsRefused>(deep));
    json limit = json::parse(ws_request_error(Problem{400, kProblemLimit, "too many", "maxConcurrentRequests"}, "R3"));
    EXPECT_EQ(limit["limit"], "maxConcurrentRequests");
    EXPECT_EQ(limit["requestId"], "R3");
}

TEST(JmapWebSocket, PushEnableAndDisable) {
    auto enable = parse_ws_message(R"({"@type":"WebSocketPushEnable","dataTypes":["Email","Mailbox"],"pushState":"x"})",
                                   JsonLimits{});
    auto* on = std::get_if<WsPushEnable>(&enable);
    ASSERT_TRUE(on);
    EXPECT_EQ(on->data_types, (std::vector<std::string>{"Email", "Mailbox"}));
    EXPECT_EQ(on->push_state, "x");
    auto all = parse_ws_message(R"({"@type":"WebSocketPushEnable","dataTypes":null})", JsonLimits{});
    ASSERT_TRUE(std::holds_alternative<WsPushEnable>(all));
    EXPECT_TRUE(std::get<WsPushEnable>(all).data_types.empty());
    EXPECT_FALSE(std::get<WsPushEnable>(all).push_state);
    EXPECT_TRUE(std::holds_alternative<WsPushDisable>(parse_ws_message(R"({"@type":"WebSocketPushDisable"})", JsonLimits{})));
    EXPECT_TRUE(std::holds_alternative<WsRefused>(
        parse_ws_message(R"({"@type":"WebSocketPushEnable","dataTypes":"Email"})", JsonLimits{})));
}

TEST(Push, StateChangeWrapsTheChangedTypesOfOneAccount) {
    json change = state_change("a1", json{{"Email", "2"}});
    EXPECT_EQ(change["@type"], "StateChange");
    EXPECT_EQ(change["changed"]["a1"], (json{{"Email", "2"}}));
}

// RFC 8887 4.3.5.3: a client that reconnects with a pushState is told what moved since, and a store outage
// (a failed read) ends nothing: the next good read reports the change.
TEST(Push, APushStateIsTheBaselineAndAnOutageIsReadAgain) {
    PushStateTracker tracker({"Email", "Mailbox"});
    tracker.assume(json{{"Email", "1"}, {"Mailbox", "a"}, {"Thread", "1"}});
    EXPECT_FALSE(tracker.next(Result<json>(make_error(Errc::unavailable, "restarting"))));
    EXPECT_TRUE(tracker.retry_pending());
    auto changed = tracker.next(json{{"Email", "2"}, {"Mailbox", "a"}, {"Thread", "2"}});
    ASSERT_TRUE(changed);
    EXPECT_EQ(*changed, (json{{"Email", "2"}}));
    EXPECT_FALSE(tracker.retry_pending());
    EXPECT_EQ(*tracker.known(), (json{{"Email", "2"}, {"Mailbox", "a"}, {"Thread", "2"}}));  // for the token
}

TEST(Push, PushStateTokensRoundTripAndRefuseOthers) {
    json states = {{"Email", "42"}, {"Mailbox", "0123abcd"}};
    auto token = push_state_token(states);
    EXPECT_EQ(parse_push_state(token), states);
    EXPECT_FALSE(parse_push_state(""));
    EXPECT_FALSE(parse_push_state("not a token"));
    EXPECT_FALSE(parse_push_state(push_state_token(json{{"Email", 42}})));
    EXPECT_FALSE(parse_push_state(std::string(5000, 'A')));
    json change = json::parse(ws_state_change(state_change("a1", states), token));
    EXPECT_EQ(change["pushState"], token);
}

}  // namespace
}  // namespace magpie::http
