// HTTP/1.1 pieces the JMAP server needs without a socket: the response it writes (RFC 9112), the
// Authorization header's schemes (RFC 7617 Basic, RFC 6750 Bearer) and the EventSource query (RFC 8620 7.3).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/problem.h"

namespace magpie::http {

struct Response {
    int status = 200;
    std::string content_type = "application/json";
    std::vector<std::pair<std::string, std::string>> headers;  // extra headers
    std::string body;
    bool close = false;  // "Connection: close" and close after writing
    std::string cache_control = "no-store";  // API answers are never cached; the webmail's files are
};

// "HTTP/1.1 <status> <reason>" with Content-Length and the headers; `head_only` leaves the body out.
// A 204 or 304 has neither body nor Content-Length (RFC 9110 8.6, 15.4.5).
std::string serialize(const Response& response, bool head_only = false);
Response problem_response(const Problem& problem);

struct Credentials {
    enum class Scheme { basic, bearer } scheme;
    std::string user;      // basic only
    std::string secret;    // the password or the token
};

// nullopt when the header is absent, not Basic/Bearer, or malformed (strict base64, one ':' separator,
// no NUL). The caller decides whether a scheme is acceptable on this connection.
std::optional<Credentials> parse_authorization(std::string_view header);

// RFC 8620 7.3: types ("*" or a comma list of type names), closeafter ("state" or "no"), ping (seconds,
// 0 = none; at least 30 if not 0 is the server's choice, see the caller).
struct EventSourceQuery {
    std::vector<std::string> types;  // empty = all
    bool close_after_state = false;
    std::uint32_t ping_seconds = 0;
};
std::optional<EventSourceQuery> parse_event_source_query(std::string_view query);

// Splits "path?query"; decodes nothing.
std::pair<std::string_view, std::string_view> split_target(std::string_view target);

// Percent-decodes a path segment or query value (RFC 3986 2.1); nullopt on a bad escape or a NUL.
std::optional<std::string> percent_decode(std::string_view text);

// RFC 6266 4.3 for a download named by the client: "attachment; filename=\"x\"; filename*=UTF-8''x".
// The quoted fallback keeps printable ASCII but '"', '\\' and '%' (each becomes '_'); the RFC 8187 form
// percent-encodes every octet outside attr-char. No name can break out of the header (CR, LF, NUL and
// every other control octet are encoded or replaced), and an empty name becomes "download".
std::string content_disposition(std::string_view filename);

// A download's Content-Type from the client's "type" parameter (RFC 8620 6.2): "type/subtype" of RFC 9110
// token characters, lower-cased, with parameters dropped; anything else is application/octet-stream.
std::string safe_media_type(std::string_view type);

}  // namespace magpie::http
