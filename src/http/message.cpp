#include "http/message.h"

#include <cctype>

#include <fmt/format.h>

#include "base/strings.h"
#include "mail/base64.h"

namespace magpie::http {
namespace {

std::string_view reason(int status) {
    switch (status) {
        case 200: return "OK";
        case 201: return "Created";
        case 204: return "No Content";
        case 301: return "Moved Permanently";
        case 304: return "Not Modified";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 413: return "Content Too Large";
        case 415: return "Unsupported Media Type";
        case 429: return "Too Many Requests";
        case 431: return "Request Header Fields Too Large";
        case 500: return "Internal Server Error";
        case 503: return "Service Unavailable";
        default: return "Unknown";
    }
}

// RFC 4648 4 strictly (RFC 7617 uses it): the alphabet, a length that is a multiple of 4, padding at the end.
std::optional<std::string> decode_strict_base64(std::string_view text) {
    if (text.size() % 4 != 0) return std::nullopt;
    std::size_t data = text.find_last_not_of('=');
    if (data == std::string_view::npos || text.size() - data - 1 > 2) return std::nullopt;
    if (text.substr(0, data + 1).find_first_not_of(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") != std::string_view::npos) {
        return std::nullopt;
    }
    return mail::base64_decode(text);
}

}  // namespace

std::string serialize(const Response& response, bool head_only) {
    const bool bodyless = response.status == 204 || response.status == 304;
    std::string out = fmt::format("HTTP/1.1 {} {}\r\n", response.status, reason(response.status));
    if (!bodyless) {
        out += fmt::format("Content-Type: {}\r\nContent-Length: {}\r\n", response.content_type, response.body.size());
    }
    out += fmt::format("Cache-Control: {}\r\nX-Content-Type-Options: nosniff\r\n", response.cache_control);
    for (const auto& [name, value] : response.headers) out += fmt::format("{}: {}\r\n", name, value);
    if (response.close) out += "Connection: close\r\n";
    out += "\r\n";
    if (!head_only && !bodyless) out += response.body;
    return out;
}

Response problem_response(const Problem& problem) {
    Response response;
    response.status = problem.status;
    response.content_type = "application/problem+json";
    response.body = problem_json(problem);
    return response;
}

std::optional<Credentials> parse_authorization(std::string_view header) {
    header = trim(header);
    auto space = header.find(' ');
    if (space == std::string_view::npos) return std::nullopt;
    std::string_view scheme = header.substr(0, space);
    std::string_view value = trim(header.substr(space + 1));
    if (value.empty()) return std::nullopt;
    if (iequals(scheme, "Bearer")) {
        // RFC 6750 2.1 b64token characters only.
        if (value.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=") !=
            std::string_view::npos) {
            return std::nullopt;
        }
        return Credentials{Credentials::Scheme::bearer, {}, std::string(value)};
    }
    if (!iequals(scheme, "Basic")) return std::nullopt;
    auto decoded = decode_strict_base64(value);
    if (!decoded) return std::nullopt;
    auto colon = decoded->find(':');
    if (colon == std::string::npos || decoded->find('\0') != std::string::npos) return std::nullopt;
    return Credentials{Credentials::Scheme::basic, decoded->substr(0, colon), decoded->substr(colon + 1)};
}

std::pair<std::string_view, std::string_view> split_target(std::string_view target) {
    auto q = target.find('?');
    if (q == std::string_view::npos) return {target, {}};
    return {target.substr(0, q), target.substr(q + 1)};
}

std::optional<std::string> percent_decode(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out.push_back(text[i]);
            continue;
        }
        if (i + 2 >= text.size()) return std::nullopt;
        auto hex = [](char c) -> int {
            if (c >= '0' && c <= '9') return c - '0';
            c = ascii_lower(c);
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            return -1;
        };
        int high = hex(text[i + 1]), low = hex(text[i + 2]);
        if (high < 0 || low < 0 || (high == 0 && low == 0)) return std::nullopt;
        out.push_back(static_cast<char>(high * 16 + low));
        i += 2;
    }
    return out;
}

std::optional<EventSourceQuery> parse_event_source_query(std::string_view query) {
    EventSourceQuery result;
    bool have_types = false;
    for (auto pair : split(query, '&')) {
        if (pair.empty()) continue;
        auto eq = pair.find('=');
        std::string_view key = pair.substr(0, eq);
        auto value = percent_decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
        if (!value) return std::nullopt;
        if (key == "types") {
            have_types = true;
            if (*value != "*") {
                for (auto type : split(*value, ',')) {
                    if (!type.empty()) result.types.emplace_back(type);
                }
            }
        } else if (key == "closeafter") {
            if (*value != "state" && *value != "no") return std::nullopt;
            result.close_after_state = *value == "state";
        } else if (key == "ping") {
            auto seconds = parse_uint(*value);
            if (!seconds || *seconds > 86400) return std::nullopt;
            result.ping_seconds = static_cast<std::uint32_t>(*seconds);
        }
    }
    if (!have_types) return std::nullopt;
    return result;
}

std::string content_disposition(std::string_view filename) {
    if (filename.empty()) filename = "download";
    std::string fallback;
    std::string encoded;
    for (unsigned char c : filename) {
        fallback.push_back(c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '%' ? static_cast<char>(c) : '_');
        // RFC 8187 3.2.1 attr-char: ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" / "-" / "." / "^" / "_" / "`" /
        // "|" / "~".
        if (std::isalnum(c) || std::string_view("!#$&+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos) {
            encoded.push_back(static_cast<char>(c));
        } else {
            encoded += fmt::format("%{:02X}", c);
        }
    }
    return fmt::format("attachment; filename=\"{}\"; filename*=UTF-8''{}", fallback, encoded);
}

std::string safe_media_type(std::string_view type) {
    constexpr std::string_view kDefault = "application/octet-stream";
    if (auto semicolon = type.find(';'); semicolon != std::string_view::npos) type = type.substr(0, semicolon);
    while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
    auto slash = type.find('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 1 == type.size() || type.size() > 127) {
        return std::string(kDefault);
    }
    // RFC 9110 5.6.2 tchar, with one '/'.
    for (std::size_t i = 0; i < type.size(); ++i) {
        unsigned char c = type[i];
        if (i == slash) continue;
        if (!std::isalnum(c) && std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) == std::string_view::npos) {
            return std::string(kDefault);
        }
    }
    return to_lower(type);
}

}  // namespace magpie::http
