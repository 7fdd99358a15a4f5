// The webmail's HTTP side without a socket: the built app (web/dist) served from memory with its security
// headers, and the pieces of the webmail's cookie sign-in (cookie parsing, Set-Cookie, the login body).
// The session table itself is in methods/web_session.h; the IO and the routes in src/server/http_webmail.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "http/message.h"

namespace magpie::http {

// The app's Content-Security-Policy (CSP Level 3). Scripts only from the app's own files (no inline script,
// no eval); connections only to this origin (JMAP, EventSource). Message HTML is rendered in a sandboxed
// srcdoc frame, which inherits this policy (CSP3 4.2.3 "policy container" of about:srcdoc) and adds its own
// meta policy, so the two intersect: images may come from http(s) here only so that the frame can show remote
// images once the user asks, and inline styles are allowed so that a message's own styling works in the frame.
// The app itself never puts untrusted HTML into its own document.
inline constexpr std::string_view kWebmailContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob: http: "
    "https:; font-src 'self'; connect-src 'self'; frame-src 'self'; child-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'; manifest-src 'self'";

// The headers every webmail response carries (CSP, no framing, no referrer to remote sites, no sniffing).
void add_webmail_security_headers(Response& response);

// Content-Type of a built file by its extension; application/octet-stream when unknown.
std::string_view content_type_for(std::string_view path);

// The built app, held in memory (a few hundred kilobytes): served without touching the disk on a network thread.
class StaticSite {
public:
    // `path` is the URL path ("/index.html", "/assets/index-3f9a.js"). Files under /assets/ carry a content
    // hash in their names (Vite's build), so they are cached for a year as immutable; everything else is
    // revalidated on every load (no-cache with an ETag), so a new build is picked up at once.
    void add(std::string path, std::string body);
    // GET or HEAD of `path` ("/" is "/index.html"): 200 with the file, 304 when `if_none_match` names its
    // ETag, nullopt when there is no such file.
    std::optional<Response> serve(std::string_view path, std::string_view if_none_match) const;
    bool empty() const { return files_.empty(); }
    std::size_t octets() const { return octets_; }
    std::size_t size() const { return files_.size(); }

private:
    struct File {
        std::string body;
        std::string content_type;
        std::string etag;  // strong validator: a digest of the body, quoted
        bool immutable = false;
    };
    std::map<std::string, File, std::less<>> files_;
    std::size_t octets_ = 0;
};

// The session cookie's name: with TLS the "__Host-" prefix (RFC 6265bis 4.1.3.2: Secure, Path=/, no Domain),
// so that no other host or plain-HTTP page can plant or overwrite it.
std::string_view session_cookie_name(bool tls);
// The value of cookie `name` in a Cookie header (RFC 6265 4.2.1: "a=b; c=d"); nullopt when absent.
std::optional<std::string_view> cookie_value(std::string_view cookie_header, std::string_view name);
// Set-Cookie for a new session: HttpOnly, SameSite=Strict, Path=/, Secure when `tls`, Max-Age in seconds.
std::string session_set_cookie(std::string_view id, bool tls, std::uint32_t max_age_seconds);
// Set-Cookie that removes the session cookie (Max-Age=0).
std::string session_clear_cookie(bool tls);

// The webmail's login body: JSON {"username": "...", "password": "..."}, each a non-empty string of at most
// 1024 octets without NUL. nullopt otherwise.
struct LoginForm {
    std::string username;
    std::string password;
};
std::optional<LoginForm> parse_login_form(std::string_view body);

// A request that changes state with cookie credentials must come from the app's own origin: Origin absent
// (same-origin GET/HEAD and old browsers) or equal to "http(s)://" + Host.
bool same_origin(std::string_view origin, std::string_view host, bool tls);

// The webmail's own routes beside JMAP.
enum class WebmailRoute { none, login, logout, session, file };
WebmailRoute webmail_route(std::string_view path);

}  // namespace magpie::http
