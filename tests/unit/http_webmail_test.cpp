// The webmail's sans-IO pieces: static files and their cache headers, cookies, the login body, the
// same-origin check, and the session table (expiry, bound, CSRF token).
#include "http/webmail.h"

#include <gtest/gtest.h>

#include "http/methods/web_session.h"

namespace magpie::http {
namespace {

std::string header(const Response& response, std::string_view name) {
    for (const auto& [n, v] : response.headers) {
        if (n == name) return v;
    }
    return {};
}

TEST(WebmailSite, ServesIndexAtRootWithNoCacheAndStrictPolicy) {
    StaticSite site;
    site.add("/index.html", "<!doctype html>");
    auto response = site.serve("/", "");
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->content_type, "text/html; charset=utf-8");
    EXPECT_EQ(response->cache_control, "no-cache");
    EXPECT_EQ(response->body, "<!doctype html>");
    const auto csp = header(*response, "Content-Security-Policy");
    EXPECT_NE(csp.find("script-src 'self';"), std::string::npos);
    EXPECT_EQ(csp.find("unsafe-eval"), std::string::npos);
    EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos);
    EXPECT_EQ(header(*response, "Referrer-Policy"), "no-referrer");
}

TEST(WebmailSite, HashedAssetsAreImmutableAndTyped) {
    StaticSite site;
    site.add("/assets/index-4f2a9c.js", "console.log(1)");
    site.add("/assets/index-77aa01.css", "body{}");
    auto js = site.serve("/assets/index-4f2a9c.js", "");
    ASSERT_TRUE(js);
    EXPECT_EQ(js->content_type, "text/javascript; charset=utf-8");
    EXPECT_EQ(js->cache_control, "public, max-age=31536000, immutable");
    EXPECT_EQ(site.serve("/assets/index-77aa01.css", "")->content_type, "text/css; charset=utf-8");
}

TEST(WebmailSite, AnswersNotModifiedToItsOwnEtag) {
    StaticSite site;
    site.add("/index.html", "v1");
    auto first = site.serve("/index.html", "");
    const auto etag = header(*first, "ETag");
    ASSERT_FALSE(etag.empty());
    auto again = site.serve("/index.html", "\"other\", " + etag);
    EXPECT_EQ(again->status, 304);
    EXPECT_TRUE(again->body.empty());
    site.add("/index.html", "v2");
    EXPECT_EQ(site.serve("/index.html", etag)->status, 200);
    EXPECT_EQ(site.octets(), 2u);
}

TEST(WebmailSite, UnknownPathsAreNotServed) {
    StaticSite site;
    site.add("/index.html", "x");
    EXPECT_FALSE(site.serve("/../etc/passwd", ""));
    EXPECT_FALSE(site.serve("/assets/", ""));
}

TEST(WebmailSite, ResponsesWithoutBodyOmitLengthAndBody) {
    Response response;
    response.status = 304;
    response.body = "ignored";
    auto text = serialize(response);
    EXPECT_EQ(text.find("Content-Length"), std::string::npos);
    EXPECT_EQ(text.find("ignored"), std::string::npos);
}

TEST(WebmailRoutes, JmapPathsAreNotTheWebmails) {
    EXPECT_EQ(webmail_route("/"), WebmailRoute::file);
    EXPECT_EQ(webmail_route("/assets/a.js"), WebmailRoute::file);
    EXPECT_EQ(webmail_route("/webmail/login"), WebmailRoute::login);
    EXPECT_EQ(webmail_route("/webmail/logout"), WebmailRoute::logout);
    EXPECT_EQ(webmail_route("/webmail/session"), WebmailRoute::session);
    EXPECT_EQ(webmail_route("/jmap/api"), WebmailRoute::none);
    EXPECT_EQ(webmail_route("/jmap/upload/a1/"), WebmailRoute::none);
    EXPECT_EQ(webmail_route("/.well-known/jmap"), WebmailRoute::none);
    EXPECT_EQ(webmail_route("/webmail/other"), WebmailRoute::none);
}

TEST(WebmailCookies, FindsTheNamedCookieAmongOthers) {
    EXPECT_EQ(cookie_value("a=1; magpie_session=abc; b=2", "magpie_session"), "abc");
    EXPECT_EQ(cookie_value("magpie_session=\"q\"", "magpie_session"), "q");
    EXPECT_FALSE(cookie_value("xmagpie_session=abc", "magpie_session"));
    EXPECT_FALSE(cookie_value("", "magpie_session"));
}

TEST(WebmailCookies, SessionCookieIsHttpOnlyStrictAndSecureWithTls) {
    auto tls = session_set_cookie("id", true, 60);
    EXPECT_EQ(tls, "__Host-magpie_session=id; Path=/; Max-Age=60; HttpOnly; SameSite=Strict; Secure");
    auto plain = session_set_cookie("id", false, 60);
    EXPECT_EQ(plain, "magpie_session=id; Path=/; Max-Age=60; HttpOnly; SameSite=Strict");
    EXPECT_NE(session_clear_cookie(true).find("Max-Age=0"), std::string::npos);
}

TEST(WebmailLogin, ParsesTheJsonBodyAndRefusesAnythingElse) {
    auto form = parse_login_form(R"({"username":"a@b.test","password":"pw"})");
    ASSERT_TRUE(form);
    EXPECT_EQ(form->username, "a@b.test");
    EXPECT_EQ(form->password, "pw");
    EXPECT_FALSE(parse_login_form("username=a&password=b"));
    EXPECT_FALSE(parse_login_form(R"({"username":"a@b.test"})"));
    EXPECT_FALSE(parse_login_form(R"({"username":"","password":"x"})"));
    EXPECT_FALSE(parse_login_form(R"({"username":1,"password":"x"})"));
    EXPECT_FALSE(parse_login_form(std::string(5000, ' ')));
}

TEST(WebmailOrigin, AcceptsOwnOriginOrNoneAndRefusesOthers) {
    EXPECT_TRUE(same_origin("", "mail.example.test", true));
    EXPECT_TRUE(same_origin("https://mail.example.test", "mail.example.test", true));
    EXPECT_TRUE(same_origin("http://127.0.0.1:8080", "127.0.0.1:8080", false));
    EXPECT_FALSE(same_origin("http://mail.example.test", "mail.example.test", true));
    EXPECT_FALSE(same_origin("https://evil.test", "mail.example.test", true));
    EXPECT_FALSE(same_origin("null", "mail.example.test", true));
}

TEST(WebSessions, FindsALiveSessionAndChecksItsCsrfToken) {
    WebSessions sessions;
    WebSessionLimits limits;
    auto created = sessions.create(7, "alice@example.test", 1000, limits);
    EXPECT_EQ(created.id.size(), 64u);
    EXPECT_EQ(created.session.csrf_token.size(), 64u);
    EXPECT_NE(created.id, created.session.csrf_token);
    auto found = sessions.find(created.id, 1001, limits);
    ASSERT_TRUE(found);
    EXPECT_EQ(found->account_id, 7);
    EXPECT_EQ(found->address, "alice@example.test");
    EXPECT_TRUE(csrf_token_matches(*found, created.session.csrf_token));
    EXPECT_FALSE(csrf_token_matches(*found, ""));
    EXPECT_FALSE(csrf_token_matches(*found, std::string(64, '0')));
    EXPECT_FALSE(sessions.find(std::string(64, 'a'), 1001, limits));
    EXPECT_FALSE(sessions.find(created.session.csrf_token, 1001, limits));
}

TEST(WebSessions, ExpireWhenIdleAndAfterTheirLifetime) {
    WebSessions sessions;
    WebSessionLimits limits{100, 1000, 10};
    auto created = sessions.create(1, "a@b.test", 0, limits);
    for (std::int64_t t = 90; t < 1000; t += 90) EXPECT_TRUE(sessions.find(created.id, t, limits)) << t;
    EXPECT_FALSE(sessions.find(created.id, 1000, limits));
    auto idle = sessions.create(1, "a@b.test", 2000, limits);
    EXPECT_FALSE(sessions.find(idle.id, 2100, limits));
}

TEST(WebSessions, StayWithinTheBoundDroppingTheLeastRecentlyUsed) {
    WebSessions sessions;
    WebSessionLimits limits{1000, 10000, 3};
    auto a = sessions.create(1, "a@b.test", 1, limits);
    auto b = sessions.create(1, "a@b.test", 2, limits);
    auto c = sessions.create(1, "a@b.test", 3, limits);
    EXPECT_TRUE(sessions.find(a.id, 4, limits));  // b is now the least recently used
    auto d = sessions.create(1, "a@b.test", 5, limits);
    EXPECT_EQ(sessions.size(), 3u);
    EXPECT_FALSE(sessions.find(b.id, 6, limits));
    EXPECT_TRUE(sessions.find(a.id, 6, limits));
    EXPECT_TRUE(sessions.find(c.id, 6, limits));
    EXPECT_TRUE(sessions.find(d.id, 6, limits));
}

TEST(WebSessions, DestroyEndsTheSession) {
    WebSessions sessions;
    WebSessionLimits limits;
    auto a = sessions.create(1, "a@b.test", 1, limits);
    sessions.destroy(a.id);
    EXPECT_FALSE(sessions.find(a.id, 2, limits));
}

}  // namespace
}  // namespace magpie::http
