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
    // The WebSocket opening handshake (RFC 6455 4.1, RFC 8887 4.2).
    std::string upgrade;             // Upgrade
    std::string connection;          // Connection
    std::string websocket_key;       // Sec-WebSocket-Key
    std::string websocket_version;   // Sec-WebSocket-Version
    std::string websocket_protocol;  // Sec-WebSocket-Protocol
    std::string early_data;          // bytes read after an upgrade request: the client's first frames
    // Who sent it and how: the connection's address and TLS, or, when the connection comes from one of
    // [http] reverse_proxies, the client X-Forwarded-For names and the scheme X-Forwarded-Proto names.
    std::string client_ip;
    bool secure = false;
};

}  // namespace magpie::server
