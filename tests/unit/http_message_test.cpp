// HTTP pieces of the JMAP server without a socket: Authorization parsing, EventSource queries and what a
// stream sends after each state read, responses.
#include <gtest/gtest.h>

#include "http/message.h"
#include "http/push_state.h"

namespace magpie::http {
namespace {

// RFC 8620 7.3 during a store outage: a failed state read sends nothing and ends nothing; the next read
// (at the next change or ping) reports what changed meanwhile.
Result<nlohmann::json> states(std::string mailbox, std::string email) {
    return nlohmann::json{{"Mailbox", mailbox}, {"Email", email}, {"Thread", email}};
}
Result<nlohmann::json> outage() { return make_error(Errc::unavailable, "the store is restarting"); }

TEST(PushState, ReportsOnlyWantedTypesThatChanged) {
    PushStateTracker tracker({"Email", "Mailbox"});
    tracker.start(states("m1", "1"));
    EXPECT_FALSE(tracker.retry_pending());
    EXPECT_FALSE(tracker.next(states("m1", "1")));
    auto changed = tracker.next(states("m1", "2"));
    ASSERT_TRUE(changed);
    EXPECT_EQ(*changed, (nlohmann::json{{"Email", "2"}}));  // Thread changed too but was not asked for
}

TEST(PushState, AFailedReadKeepsTheStreamAndTheNextReadReportsTheChange) {
    PushStateTracker tracker({});
    tracker.start(states("m1", "1"));
    EXPECT_FALSE(tracker.next(outage()));
    EXPECT_TRUE(tracker.retry_pending());
    EXPECT_FALSE(tracker.next(outage()));
    auto changed = tracker.next(states("m1", "5"));
    ASSERT_TRUE(changed);
    EXPECT_EQ(*changed, (nlohmann::json{{"Email", "5"}, {"Thread", "5"}}));
    EXPECT_FALSE(tracker.retry_pending());
    EXPECT_FALSE(tracker.next(states("m1", "5")));
}

TEST(PushState, WithoutAnInitialStateTheFirstGoodReadReportsEveryWantedType) {
    PushStateTracker tracker({"Mailbox"});
    tracker.start(outage());
    EXPECT_TRUE(tracker.retry_pending());
    auto changed = tracker.next(states("m1", "1"));
    ASSERT_TRUE(changed);
    EXPECT_EQ(*changed, (nlohmann::json{{"Mailbox", "m1"}}));
    EXPECT_FALSE(tracker.next(states("m1", "2")));
}

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

namespace magpie::http {
namespace {

TEST(HttpMessage, ContentDispositionCannotBreakOutOfTheHeader) {
    EXPECT_EQ(content_disposition("report.pdf"), "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf");
    std::string hostile = "a\"b\r\nSet-Cookie: x=1\\%00.html";
    std::string header = content_disposition(hostile);
    EXPECT_EQ(header.find('\r'), std::string::npos);
    EXPECT_EQ(header.find('\n'), std::string::npos);
    EXPECT_EQ(header, "attachment; filename=\"a_b__Set-Cookie: x=1__00.html\"; "
                      "filename*=UTF-8''a%22b%0D%0ASet-Cookie%3A%20x%3D1%5C%2500.html");
    EXPECT_EQ(content_disposition("Grüße.txt"),
              "attachment; filename=\"Gr____e.txt\"; filename*=UTF-8''Gr%C3%BC%C3%9Fe.txt");
    EXPECT_EQ(content_disposition(""), "attachment; filename=\"download\"; filename*=UTF-8''download");
}

TEST(HttpMessage, DownloadTypesAreTokensOrOctetStream) {
    EXPECT_EQ(safe_media_type("Text/Plain; charset=utf-8"), "text/plain");
    EXPECT_EQ(safe_media_type("image/png"), "image/png");
    EXPECT_EQ(safe_media_type("text/html\r\nX: y"), "application/octet-stream");
    EXPECT_EQ(safe_media_type("nonsense"), "application/octet-stream");
    EXPECT_EQ(safe_media_type("/x"), "application/octet-stream");
    EXPECT_EQ(safe_media_type(""), "application/octet-stream");
}

}  // namespace
}  // namespace magpie::http
