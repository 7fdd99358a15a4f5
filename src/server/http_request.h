// One HTTP request as HttpService sees it after Beast's parser: the fields its handlers read, copied out of
// the parser's message (http_service.cpp builds it; http_webmail.cpp reads it too).
#pragma once

#include <string>

#include "server/http_service.h"

namespace magpie::server {

struct HttpService::Request {
    std::string method;
    std::string target;
    std::string authorization;
    std::string body;
    // For the webmail's cookie sessions (http_webmail.cpp).
    std::string cookie;          // Cookie
    std::string csrf_token;      // X-Magpie-CSRF: the session's token, on every cookie-authenticated POST
    std::string content_type;    // Content-Type
    std::string origin;          // Origin
    std::string host;            // Host
    std::string if_none_match;   // If-None-Match
};

}  // namespace magpie::server
