// The webmail's side of HttpService (issue 15): the built app served from memory at "/", the sign-in that
// turns a password into an HttpOnly session cookie, sign-out, and the cookie's authentication of JMAP
// requests with a CSRF token. Kept apart from http_service.cpp, which is the JMAP API's.
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "auth/authenticator.h"
#include "base/strings.h"
#include "base/time.h"
#include "http/methods/session.h"
#include "server/http_request.h"
#include "server/http_service.h"

#ifndef MAGPIE_WEBMAIL_DIR
#define MAGPIE_WEBMAIL_DIR ""
#endif

namespace magpie::server {
namespace {

namespace fs = std::filesystem;

// Where the built app is: the configured directory, else the build's web/dist, else the installed copy.
fs::path webmail_directory(const HttpConfig& config) {
    if (!config.webmail_dir.empty()) return config.webmail_dir;
    std::error_code ec;
    if (fs::path built = MAGPIE_WEBMAIL_DIR; !built.empty() && fs::is_regular_file(built / "index.html", ec)) {
        return built;
    }
    return "/usr/share/magpie/webmail";
}

// Every regular file under `dir` (symbolic links are not followed out of it), within `max_octets` in total.
Result<http::StaticSite> load_site(const fs::path& dir, std::uint64_t max_octets) {
    http::StaticSite site;
    std::error_code ec;
    fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec);
    if (ec) return make_error(Errc::not_found, fmt::format("{}: {}", dir.string(), ec.message()));
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (ec) return make_error(Errc::io_error, fmt::format("{}: {}", dir.string(), ec.message()));
        if (!it->is_regular_file(ec) || it->is_symlink(ec)) continue;
        std::ifstream in(it->path(), std::ios::binary);
        std::ostringstream body;
        body << in.rdbuf();
        if (!in) return make_error(Errc::io_error, fmt::format("cannot read {}", it->path().string()));
        if (site.octets() + body.str().size() > max_octets) {
            return make_error(Errc::limit_exceeded,
                              fmt::format("the webmail's files exceed [http] webmail_max_octets ({})", max_octets));
        }
        site.add("/" + it->path().lexically_relative(dir).generic_string(), std::move(body).str());
    }
    return site;
}

http::WebSessionLimits session_limits(const HttpConfig& c) {
    return http::WebSessionLimits{c.webmail_session_idle, c.webmail_session_lifetime, c.webmail_max_sessions,
                                  c.webmail_max_sessions_per_account};
}

http::Response json_answer(int status, const nlohmann::json& body) {
    http::Response response;
    response.status = status;
    response.body = http::to_json_text(body);
    http::add_webmail_security_headers(response);
    return response;
}

http::Response problem_answer(int status, std::string detail) {
    auto response = http::problem_response(http::Problem{status, "about:blank", std::move(detail), {}});
    http::add_webmail_security_headers(response);
    return response;
}

// What the app needs to know about its session: who, which JMAP account, and the CSRF token for its POSTs.
nlohmann::json session_answer(const http::WebSession& session) {
    return {{"username", session.address},
            {"accountId", fmt::format("a{}", session.account_id)},
            {"csrfToken", session.csrf_token}};
}

}  // namespace

http::Response HttpService::webmail_unauthorized(std::string detail) {
    auto response = problem_answer(401, std::move(detail));
    // RFC 9110 11.6.1 asks for a challenge; a scheme browsers do not know keeps them from prompting.
    response.headers.emplace_back("WWW-Authenticate", "MagpieSession realm=\"magpie\"");
    return response;
}

void HttpService::load_webmail(const Config& config) {
    const fs::path dir = webmail_directory(config.http);
    auto site = load_site(dir, config.http.webmail_max_octets);
    if (!site) {
        if (!config.http.listen.empty() || !config.http.listen_tls.empty()) {
            spdlog::warn("webmail: {} (build it with make); / answers 404", site.error().message);
        }
        std::atomic_store(&site_, std::make_shared<const http::StaticSite>());
        return;
    }
    spdlog::debug("webmail: {} files, {} octets from {}", site->size(), site->octets(), dir.string());
    std::atomic_store(&site_, std::make_shared<const http::StaticSite>(std::move(*site)));
}

awaitable<Result<http::WebSessions::Found>> HttpService::find_web_session(const Request& request,
                                                                          const Config& config) {
    auto id = http::cookie_value(request.cookie, http::session_cookie_name(request.secure));
    if (!id) co_return make_error(Errc::auth_failed, "not signed in");
    // The store keeps the sessions (a restart keeps them); the account is looked up in the same trip, so a
    // deleted, disabled or re-passworded account stops working at once.
    auto& store = services_.store;
    // Not yet authenticated: the login pool, as a password check.
    auto lookup = services_.login_executor.run([this, &store, id = std::string(*id), limits = session_limits(config.http)]() {
        return web_sessions_.find(store, id, unix_now(), limits);
    });
    co_return co_await std::move(lookup);
}

awaitable<Result<store::Account>> HttpService::authenticate_cookie(const Request& request,
                                                                   const Config& config) {
    auto found = co_await find_web_session(request, config);
    if (!found) {
        if (found.error().code == Errc::auth_failed) {
            co_return make_error(Errc::auth_failed, "not signed in, or the session expired");
        }
        co_return found.error();
    }
    if (request.method != "GET" && request.method != "HEAD") {
        // SameSite=Strict already keeps the cookie off cross-site requests; the token and the Origin check
        // make a forged POST fail even where a browser does not honour SameSite.
        if (!http::csrf_token_matches(found->session, request.csrf_token) ||
            !http::same_origin(request.origin, request.host, request.secure)) {
            co_return make_error(Errc::auth_failed, "missing or wrong X-Magpie-CSRF token for this session");
        }
    }
    co_return std::move(found->account);
}

awaitable<http::Response> HttpService::webmail_login(const Request& request, const Config& config) {
    // A JSON body: a cross-site HTML form cannot send one without a CORS preflight, which this server never
    // grants, so no other site can sign a visitor in to an account of its choosing (login CSRF).
    if (!istarts_with(request.content_type, "application/json") ||
        !http::same_origin(request.origin, request.host, request.secure)) {
        co_return problem_answer(403, "sign-in is accepted from the webmail's own page only");
    }
    if (!request.secure && !config.http.allow_plaintext_login) {
        co_return problem_answer(403, "passwords are accepted over TLS only");
    }
    auto form = http::parse_login_form(request.body);
    if (!form) co_return problem_answer(400, "the body must be {\"username\": ..., \"password\": ...}");
    auto& s = services_;
    // The same check, lockouts and argon2id pool as IMAP and SMTP logins.
    auto check = s.login_executor.run([&s, form = std::move(*form), ip = request.client_ip]() {
        return auth::authenticate_plain(s.store, s.hash_limiter, s.throttle, form.username, form.password, ip,
                                        unix_now(), s.verified_cache);
    });
    auto account = co_await std::move(check);
    if (!account) {
        switch (account.error().code) {
            case Errc::limit_exceeded: co_return problem_answer(429, account.error().message);
            case Errc::unavailable: co_return problem_answer(503, account.error().message);
            case Errc::permission_denied: co_return problem_answer(403, account.error().message);
            case Errc::auth_failed:
            case Errc::not_found:
            case Errc::invalid_argument: co_return webmail_unauthorized("wrong address or password");
            default: co_return problem_answer(500, "sign-in failed on the server's side");
        }
    }
    const bool tls = request.secure;
    // Durable before the cookie is handed out: a restart right after still finds the session.
    auto start = s.executor.run([this, &s, account = *account, limits = session_limits(config.http)]() {
        return web_sessions_.create(s.store, account, unix_now(), limits);
    });
    auto created = co_await std::move(start);
    if (!created) {
        spdlog::warn("webmail: cannot start a session for {}: {}", account->address, created.error().message);
        co_return problem_answer(503, "cannot start a session now; try again");
    }
    spdlog::info("webmail: {} signed in from {}", account->address, request.client_ip);
    auto response = json_answer(200, session_answer(created->session));
    response.headers.emplace_back("Set-Cookie",
                                  http::session_set_cookie(created->id, tls, config.http.webmail_session_lifetime));
    co_return response;
}

awaitable<http::Response> HttpService::webmail(const Request& request, const Config& config,
                                               http::WebmailRoute route) {
    const bool tls = request.secure;
    auto [path, query] = http::split_target(request.target);
    auto only = [](std::string_view allow) {
        auto response = problem_answer(405, "method not allowed here");
        response.headers.emplace_back("Allow", std::string(allow));
        return response;
    };
    switch (route) {
        case http::WebmailRoute::none: break;
        case http::WebmailRoute::file: {
            if (request.method != "GET" && request.method != "HEAD") co_return only("GET, HEAD");
            auto site = std::atomic_load(&site_);
            if (auto response = site->serve(path, request.if_none_match)) co_return std::move(*response);
            co_return problem_answer(404, site->empty() ? "the webmail is not built (run make)" : "no such file");
        }
        case http::WebmailRoute::login: {
            if (request.method != "POST") co_return only("POST");
            auto response = co_await webmail_login(request, config);
            co_return response;
        }
        case http::WebmailRoute::session: {
            if (request.method != "GET") co_return only("GET");
            auto found = co_await find_web_session(request, config);
            if (!found && found.error().code == Errc::permission_denied) co_return problem_answer(403, found.error().message);
            if (!found) co_return webmail_unauthorized("not signed in");
            co_return json_answer(200, session_answer(found->session));
        }
        case http::WebmailRoute::logout: {
            if (request.method != "POST") co_return only("POST");
            auto found = co_await find_web_session(request, config);
            if (found && (!http::csrf_token_matches(found->session, request.csrf_token) ||
                          !http::same_origin(request.origin, request.host, tls))) {
                co_return problem_answer(403, "missing or wrong X-Magpie-CSRF token for this session");
            }
            if (auto id = http::cookie_value(request.cookie, http::session_cookie_name(tls)); id && found) {
                auto& store = services_.store;
                auto end = services_.executor.run([this, &store, id = std::string(*id)]() {
                    return web_sessions_.destroy(store, id);
                });
                if (auto ended = co_await std::move(end); !ended) {
                    spdlog::warn("webmail: sign-out of {} failed: {}", found->session.address, ended.error().message);
                    co_return problem_answer(503, "cannot sign out now; try again");
                }
            }
            http::Response response;
            response.status = 204;
            http::add_webmail_security_headers(response);
            response.headers.emplace_back("Set-Cookie", http::session_clear_cookie(tls));
            co_return response;
        }
    }
    co_return problem_answer(404, "no such resource");
}

}  // namespace magpie::server
