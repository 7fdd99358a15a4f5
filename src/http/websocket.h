// The WebSocket protocol (RFC 6455) as the JMAP WebSocket transport (RFC 8887) needs it, sans-IO: the
// opening handshake's checks and accept key, a bounded frame reader that turns a client's bytes into whole
// messages (defragmented, unmasked, control frames apart), and the server's frames. No socket, no clock:
// src/server/http_service.cpp pumps bytes through it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace magpie::http::websocket {

// RFC 6455 4.2.2 5.4: base64(SHA-1(key + GUID)), the Sec-WebSocket-Accept value for a Sec-WebSocket-Key.
std::string accept_key(std::string_view client_key);
// RFC 6455 4.1: a Sec-WebSocket-Key is the base64 of 16 octets (24 characters, "==" at the end).
bool valid_key(std::string_view key);
// Whether a comma-separated header value holds `token` (Connection: keep-alive, Upgrade; Upgrade: websocket;
// Sec-WebSocket-Protocol: jmap). Connection and Upgrade compare case-insensitively, subprotocols exactly.
bool has_token(std::string_view list, std::string_view token, bool ignore_case);

enum class Opcode : std::uint8_t { continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 };

// RFC 6455 7.4.1 status codes this server sends.
inline constexpr std::uint16_t kCloseNormal = 1000;
inline constexpr std::uint16_t kCloseGoingAway = 1001;     // shutdown, idle timeout
inline constexpr std::uint16_t kCloseProtocolError = 1002;
inline constexpr std::uint16_t kCloseUnsupportedData = 1003;  // a binary message: JMAP speaks text
inline constexpr std::uint16_t kCloseInvalidData = 1007;   // text that is not UTF-8
inline constexpr std::uint16_t kCloseTooBig = 1009;        // a message over the bound

// One whole message from the client: text or binary (fragments joined), or one control frame (close:
// payload is the 2-octet code and reason, as sent).
struct Message {
    Opcode opcode = Opcode::text;
    std::string payload;
};

// Reads client frames (RFC 6455 5.2): each must be masked; control frames are at most 125 octets and never
// fragmented; a data message is at most `max_message_octets` (checked from the frame header, before its
// payload is held), so the buffer never holds more than one message and a frame header.
class Reader {
public:
    explicit Reader(std::uint64_t max_message_octets) : max_message_octets_(max_message_octets) {}

    void feed(std::string_view bytes) { buffer_.append(bytes); }
    // The next complete message, or nullopt when more bytes are needed or the stream failed (see error()).
    std::optional<Message> next();
    // 0 while the stream is sound; else the close code to fail it with (RFC 6455 7.1.7) and why.
    std::uint16_t error() const { return error_; }
    const std::string& error_reason() const { return error_reason_; }

private:
    std::optional<Message> fail(std::uint16_t code, std::string reason);

    std::uint64_t max_message_octets_;
    std::string buffer_;                 // bytes not yet consumed
    std::optional<Opcode> fragmented_;   // the opcode of a data message whose first fragment arrived
    std::string partial_;                // that message's payload so far
    std::uint16_t error_ = 0;
    std::string error_reason_;
};

// One unmasked, final server frame (RFC 6455 5.2, 5.1: a server never masks).
std::string frame(Opcode opcode, std::string_view payload);
// A close frame with its status code and a reason (cut to fit the 125-octet control frame bound).
std::string close_frame(std::uint16_t code, std::string_view reason);

}  // namespace magpie::http::websocket
