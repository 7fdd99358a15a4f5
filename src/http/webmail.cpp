#include "http/webmail.h"

#include <array>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/strings.h"

namespace magpie::http {

void add_webmail_security_headers(Response& response) {
    response.headers.emplace_back("Content-Security-Policy", std::string(kWebmailContentSecurityPolicy));
    response.headers.emplace_back("Referrer-Policy", "no-referrer");
    response.headers.emplace_back("X-Frame-Options", "DENY");
    response.headers.emplace_back("Cross-Origin-Opener-Policy", "same-origin");
    response.headers.emplace_back("Cross-Origin-Resource-Policy", "same-origin");
}

std::string_view content_type_for(std::string_view path) {
    static constexpr std::array<std::pair<std::string_view, std::string_view>, 14> types{{
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".webmanifest", "application/manifest+json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".woff2", "font/woff2"},
        {".woff", "font/woff"},
        {".txt", "text/plain; charset=utf-8"},
        {".map", "application/json"},
        {".wasm", "application/wasm"},
    }};
    auto dot = path.rfind('.');
    if (dot == std::string_view::npos || path.find('/', dot) != std::string_view::npos) {
        return "application/octet-stream";
    }
    std::string ext = to_lower(path.substr(dot));
    for (const auto& [suffix, type] : types) {
        if (ext == suffix) return type;
    }
    return "application/octet-stream";
}

namespace {

std::string digest_etag(std::string_view body) {
    // FNV-1a over the body twice with different seeds: a validator, not a security property.
    std::uint64_t a = 0xcbf29ce484222325ull, b = 0x84222325cbf29ce4ull;
    for (unsigned char c : body) {
        a = (a ^ c) * 0x100000001b3ull;
        b = (b ^ c) * 0x100000001b3ull;
    }
    return fmt::format("\"{:016x}{:016x}\"", a, b);
}

// RFC 9110 13.1.2: a list of entity tags or "*"; weak comparison.
bool etag_matches(std::string_view if_none_match, std::string_view etag) {
    for (auto item : split(if_none_match, ',')) {
        item = trim(item);
        if (item == "*") return true;
        if (item.starts_with("W/")) item.remove_prefix(2);
        if (item == etag) return true;
    }
    return false;
}

}  // namespace

void StaticSite::add(std::string path, std::string body) {
    File file;
    file.content_type = std::string(content_type_for(path));
    file.etag = digest_etag(body);
    file.immutable = path.starts_with("/assets/");
    octets_ += body.size();
    file.body = std::move(body);
    if (auto it = files_.find(path); it != files_.end()) octets_ -= it->second.body.size();
    files_[std::move(path)] = std::move(file);
}

std::optional<Response> StaticSite::serve(std::string_view path, std::string_view if_none_match) const {
    if (path == "/") path = "/index.html";
    auto it = files_.find(path);
    if (it == files_.end()) return std::nullopt;
    const File& file = it->second;
    Response response;
    response.content_type = file.content_type;
    response.cache_control = file.immutable ? "public, max-age=31536000, immutable" : "no-cache";
    response.headers.emplace_back("ETag", file.etag);
    add_webmail_security_headers(response);
    if (!if_none_match.empty() && etag_matches(if_none_match, file.etag)) {
        response.status = 304;
        return response;
    }
    response.body = file.body;
    return response;
}

std::string_view session_cookie_name(bool tls) { return tls ? "__Host-magpie_session" : "magpie_session"; }

std::optional<std::string_view> cookie_value(std::string_view cookie_header, std::string_view name) {
    for (auto pair : split(cookie_header, ';')) {
        pair = trim(pair);
        auto eq = pair.find('=');
        if (eq == std::string_view::npos) continue;
        if (trim(pair.substr(0, eq)) != name) continue;
        std::string_view value = trim(pair.substr(eq + 1));
        if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
        return value;
    }
    return std::nullopt;
}

std::string session_set_cookie(std::string_view id, bool tls, std::uint32_t max_age_seconds) {
    return fmt::format("{}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}", session_cookie_name(tls), id,
                       max_age_seconds, tls ? "; Secure" : "");
}

std::string session_clear_cookie(bool tls) {
    return fmt::format("{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{}", session_cookie_name(tls),
                       tls ? "; Secure" : "");
}

std::optional<LoginForm> parse_login_form(std::string_view body) {
    if (body.size() > 4096) return std::nullopt;
    auto parsed = nlohmann::json::parse(body, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object()) return std::nullopt;
    auto field = [&](const char* name) -> std::optional<std::string> {
        auto it = parsed.find(name);
        if (it == parsed.end() || !it->is_string()) return std::nullopt;
        const auto& value = it->get_ref<const std::string&>();
        if (value.empty() || value.size() > 1024 || value.find('\0') != std::string::npos) return std::nullopt;
        return value;
    };
    auto username = field("username");
    auto password = field("password");
    if (!username || !password) return std::nullopt;
    return LoginForm{std::move(*username), std::move(*password)};
}

bool same_origin(std::string_view origin, std::string_view host, bool tls) {
    if (origin.empty()) return true;
    if (host.empty()) return false;
    return origin == fmt::format("{}://{}", tls ? "https" : "http", host);
}

WebmailRoute webmail_route(std::string_view path) {
    if (path == "/webmail/login") return WebmailRoute::login;
    if (path == "/webmail/logout") return WebmailRoute::logout;
    if (path == "/webmail/session") return WebmailRoute::session;
    if (path.starts_with("/jmap/") || path.starts_with("/.well-known/") || path == "/jmap") return WebmailRoute::none;
    if (path.starts_with("/webmail/")) return WebmailRoute::none;
    return WebmailRoute::file;
}

}  // namespace magpie::http
