// HTTP pieces of the JMAP server without a socket: Authorization parsing, EventSource queries, responses.
#include <gtest/gtest.h>

#include "http/message.h"

namespace magpie::http {
namespace {

TEST(HttpMessage, BasicCredentialsSplitAtTheFirstColon) {
    auto c = parse_authorization("Basic YWxpY2VAZXhhbXBsZS50ZXN0OnNlY3I6ZXQ=");  // alice@example.test:secr:et
    ASSERT_TRUE(c);
    EXPECT_EQ(c->scheme, Credentials::Scheme::basic);
    EXPECT_EQ(c->user, "alice@example.test");
    EXPECT_EQ(c->secret, "secr:et");
}

TEST(HttpMessage, MalformedAuthorizationIsRefused) {
    EXPECT_FALSE(parse_authorization(""));
    EXPECT_FALSE(parse_authorization("Basic"));
    EXPECT_FALSE(parse_authorization("Basic !!!!"));
    EXPECT_FALSE(parse_authorization("Basic YWxpY2U="));    // no colon
    EXPECT_FALSE(parse_authorization("Basic YQ"));          // not a multiple of 4
    EXPECT_FALSE(parse_authorization("Basic YTpiAA=="));    // NUL inside
    EXPECT_FALSE(parse_authorization("Digest abc"));
    EXPECT_FALSE(parse_authorization("Bearer a b"));
}

TEST(HttpMessage, BearerTokensAreTakenVerbatim) {
    auto c = parse_authorization("bearer abc-DEF_123.~+/=");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->scheme, Credentials::Scheme::bearer);
    EXPECT_EQ(c->secret, "abc-DEF_123.~+/=");
}

TEST(HttpMessage, EventSourceQueryFollowsRfc8620Section7_3) {
    auto q = parse_event_source_query("types=Mailbox%2CEmail&closeafter=state&ping=30");
    ASSERT_TRUE(q);
    EXPECT_EQ(q->types, (std::vector<std::string>{"Mailbox", "Email"}));
    EXPECT_TRUE(q->close_after_state);
    EXPECT_EQ(q->ping_seconds, 30u);
    auto all = parse_event_source_query("types=*&closeafter=no&ping=0");
    ASSERT_TRUE(all);
    EXPECT_TRUE(all->types.empty());
    EXPECT_FALSE(parse_event_source_query("closeafter=no"));          // types is required
    EXPECT_FALSE(parse_event_source_query("types=*&closeafter=x"));
    EXPECT_FALSE(parse_event_source_query("types=*&ping=-1"));
    EXPECT_FALSE(parse_event_source_query("types=%2"));
    EXPECT_FALSE(parse_event_source_query("types=%00"));
}

TEST(HttpMessage, ResponsesCarryLengthAndClose) {
    Response r;
    r.status = 404;
    r.body = "{}";
    r.close = true;
    std::string text = serialize(r);
    EXPECT_EQ(text.rfind("HTTP/1.1 404 Not Found\r\n", 0), 0u);
    EXPECT_NE(text.find("Content-Length: 2\r\n"), std::string::npos);
    EXPECT_NE(text.find("Connection: close\r\n"), std::string::npos);
    EXPECT_EQ(text.substr(text.size() - 6), "\r\n\r\n{}");
}

TEST(HttpMessage, ProblemsAreProblemJson) {
    auto r = problem_response(Problem{400, kProblemLimit, "too many", "maxCallsInRequest"});
    EXPECT_EQ(r.content_type, "application/problem+json");
    EXPECT_EQ(r.body, R"({"detail":"too many","limit":"maxCallsInRequest","status":400,"type":"urn:ietf:params:jmap:error:limit"})");
}

}  // namespace
}  // namespace magpie::http
