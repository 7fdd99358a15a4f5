// The webmail's sans-IO pieces: static files and their cache headers, cookies, the login body, the
// same-origin check, and the session table over a real embedded store (expiry, restart, revocation, bound,
// CSRF token).
#include "http/webmail.h"

#include <gtest/gtest.h>

#include "http/methods/api_token.h"
#include "http/methods/web_session.h"
#include "store_test_support.h"

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

// The session table over a real embedded store: what survives a reopen is what survives a restart.
class WebSessionsTest : public store::StoreTest {
protected:
    void SetUp() override {
        store::StoreTest::SetUp();
        ASSERT_TRUE(store_->add_domain("b.test"));
        alice_ = make_account("alice@b.test");
    }
    Result<WebSessions::Found> find(WebSessions& sessions, std::string_view id, std::int64_t now) {
        return sessions.find(*store_, id, now, limits_);
    }
    WebSessions::Created create(WebSessions& sessions, std::int64_t now) {
        auto created = sessions.create(*store_, alice_, now, limits_);
        EXPECT_TRUE(created) << created.error().message;
        return created ? *created : WebSessions::Created{};
    }
    store::Account alice_;
    WebSessionLimits limits_;
    WebSessions sessions_;
};

TEST_F(WebSessionsTest, FindsALiveSessionAndChecksItsCsrfToken) {
    auto created = create(sessions_, 1000);
    EXPECT_EQ(created.id.size(), 64u);
    EXPECT_EQ(created.session.csrf_token.size(), 64u);
    EXPECT_NE(created.id, created.session.csrf_token);
    auto found = find(sessions_, created.id, 1001);
    ASSERT_TRUE(found) << found.error().message;
    EXPECT_EQ(found->session.account_id, alice_.id);
    EXPECT_EQ(found->account.address, "alice@b.test");
    EXPECT_TRUE(csrf_token_matches(found->session, created.session.csrf_token));
    EXPECT_FALSE(csrf_token_matches(found->session, ""));
    EXPECT_FALSE(csrf_token_matches(found->session, std::string(64, '0')));
    EXPECT_EQ(find(sessions_, std::string(64, 'a'), 1001).error().code, Errc::auth_failed);
    EXPECT_FALSE(find(sessions_, created.session.csrf_token, 1001));
}

TEST_F(WebSessionsTest, SurviveAReopenedStoreAndANewTableWithTheSameCsrfToken) {
    auto created = create(sessions_, 1000);
    open();  // what a restart of magpied does: a new store connection, an empty table in memory
    WebSessions after_restart;
    auto found = find(after_restart, created.id, 2000);
    ASSERT_TRUE(found) << found.error().message;
    EXPECT_TRUE(csrf_token_matches(found->session, created.session.csrf_token));
    EXPECT_EQ(found->account.id, alice_.id);
}

TEST_F(WebSessionsTest, StoreKeepsNeitherTheIdNorAnythingABearerTokenMatches) {
    auto created = create(sessions_, 1000);
    auto tokens = store_->list_api_tokens(alice_.id);
    ASSERT_TRUE(tokens);
    ASSERT_EQ(tokens->size(), 1u);
    EXPECT_TRUE((*tokens)[0].name.starts_with("webmail:"));
    EXPECT_EQ((*tokens)[0].name.find(created.id.substr(0, 16)), std::string::npos);
    EXPECT_EQ((*tokens)[0].expires_at, 1000 + limits_.lifetime_seconds);
    // The cookie's value presented as a Bearer token finds nothing.
    EXPECT_EQ(store_->find_api_token(hash_api_token(created.id)).error().code, Errc::not_found);
}

TEST_F(WebSessionsTest, ExpireWhenIdleAndAfterTheirLifetime) {
    limits_ = WebSessionLimits{100, 1000, 10};
    auto created = create(sessions_, 0);
    for (std::int64_t t = 90; t < 1000; t += 90) EXPECT_TRUE(find(sessions_, created.id, t)) << t;
    EXPECT_EQ(find(sessions_, created.id, 1000).error().code, Errc::auth_failed);
    auto idle = create(sessions_, 2000);
    EXPECT_FALSE(find(sessions_, idle.id, 2100));
    // Expired sessions leave the store: only the one made now is left.
    create(sessions_, 3000);
    EXPECT_EQ(store_->list_api_tokens(alice_.id)->size(), 1u);
}

TEST_F(WebSessionsTest, DestroyEndsTheSessionInTheStore) {
    auto a = create(sessions_, 1);
    auto b = create(sessions_, 1);
    ASSERT_TRUE(sessions_.destroy(*store_, a.id));
    EXPECT_FALSE(find(sessions_, a.id, 2));
    WebSessions after_restart;
    EXPECT_FALSE(find(after_restart, a.id, 2));
    EXPECT_TRUE(find(after_restart, b.id, 2));
    EXPECT_TRUE(sessions_.destroy(*store_, a.id));  // twice is fine
}

TEST_F(WebSessionsTest, APasswordChangeRevokesEverySessionOfTheAccount) {
    auto a = create(sessions_, 1);
    auto b = create(sessions_, 1);
    store::ScramCredentials scram{"other-salt", 4096, std::string(32, 't'), std::string(32, 'l')};
    ASSERT_TRUE(store_->set_password("alice@b.test", "$argon2id$v=19$m=65536,t=2,p=1$changed", scram));
    EXPECT_EQ(find(sessions_, a.id, 2).error().code, Errc::auth_failed);
    EXPECT_EQ(find(sessions_, b.id, 2).error().code, Errc::auth_failed);
    EXPECT_TRUE(store_->list_api_tokens(alice_.id)->empty());
}

TEST_F(WebSessionsTest, ADisabledAccountIsRefusedWithoutEndingTheSession) {
    auto a = create(sessions_, 1);
    ASSERT_TRUE(store_->set_disabled("alice@b.test", true));
    EXPECT_EQ(find(sessions_, a.id, 2).error().code, Errc::permission_denied);
    ASSERT_TRUE(store_->set_disabled("alice@b.test", false));
    EXPECT_TRUE(find(sessions_, a.id, 3));
}

TEST_F(WebSessionsTest, AnAccountHoldsABoundedNumberOfSessionsTheOldestGoingFirst) {
    const std::size_t bound = WebSessionLimits{}.max_sessions_per_account;
    EXPECT_EQ(bound, 100u);  // the documented default of [http] webmail_max_sessions_per_account
    auto first = create(sessions_, 1);
    for (std::size_t i = 1; i < bound; ++i) create(sessions_, 2);
    EXPECT_TRUE(find(sessions_, first.id, 3));
    auto last = create(sessions_, 4);
    EXPECT_EQ(store_->list_api_tokens(alice_.id)->size(), bound);
    EXPECT_FALSE(find(sessions_, first.id, 5));
    EXPECT_TRUE(find(sessions_, last.id, 5));
}

TEST_F(WebSessionsTest, TheSessionsPerAccountBoundIsTheConfiguredOne) {
    limits_.max_sessions_per_account = 3;
    auto first = create(sessions_, 1);
    auto second = create(sessions_, 2);
    create(sessions_, 3);
    EXPECT_EQ(store_->list_api_tokens(alice_.id)->size(), 3u);
    create(sessions_, 4);
    EXPECT_EQ(store_->list_api_tokens(alice_.id)->size(), 3u);
    EXPECT_FALSE(find(sessions_, first.id, 5));
    EXPECT_TRUE(find(sessions_, second.id, 5));
}

TEST_F(WebSessionsTest, IdleClocksInMemoryStayWithinTheirBound) {
    limits_.max_sessions = 3;
    std::vector<WebSessions::Created> made;
    for (int i = 0; i < 5; ++i) made.push_back(create(sessions_, 10 + i));
    EXPECT_LE(sessions_.idle_clocks(), 3u);
    for (const auto& m : made) EXPECT_TRUE(find(sessions_, m.id, 20));  // still live: a new idle period
}

}  // namespace
}  // namespace magpie::http
