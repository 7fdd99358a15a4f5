#include "http/websocket.h"

#include <array>
#include <cstring>

#include <fmt/format.h>

#include "base/strings.h"
#include "mail/base64.h"

namespace magpie::http::websocket {
namespace {

// SHA-1 (RFC 3174), only for the handshake's accept key (RFC 6455 4.2.2), where it carries no security.
std::array<unsigned char, 20> sha1(std::string_view data) {
    std::uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
    std::string message(data);
    const std::uint64_t bit_length = static_cast<std::uint64_t>(data.size()) * 8;
    message.push_back(static_cast<char>(0x80));
    while (message.size() % 64 != 56) message.push_back('\0');
    for (int i = 7; i >= 0; --i) message.push_back(static_cast<char>((bit_length >> (i * 8)) & 0xff));
    auto rotl = [](std::uint32_t x, int n) { return (x << n) | (x >> (32 - n)); };
    for (std::size_t chunk = 0; chunk < message.size(); chunk += 64) {
        std::uint32_t w[80];
        for (int i = 0; i < 16; ++i) {
            const auto* p = reinterpret_cast<const unsigned char*>(message.data() + chunk + 4 * i);
            w[i] = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
        }
        for (int i = 16; i < 80; ++i) w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; ++i) {
            std::uint32_t f, k;
            if (i < 20) {
                f = (b & c) | (~b & d), k = 0x5A827999u;
            } else if (i < 40) {
                f = b ^ c ^ d, k = 0x6ED9EBA1u;
            } else if (i < 60) {
                f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDCu;
            } else {
                f = b ^ c ^ d, k = 0xCA62C1D6u;
            }
            std::uint32_t t = rotl(a, 5) + f + e + k + w[i];
            e = d, d = c, c = rotl(b, 30), b = a, a = t;
        }
        h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
    }
    std::array<unsigned char, 20> out;
    for (int i = 0; i < 20; ++i) out[i] = static_cast<unsigned char>(h[i / 4] >> (24 - 8 * (i % 4)));
    return out;
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool equal(std::string_view a, std::string_view b, bool ignore_case) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (ignore_case ? lower(a[i]) != lower(b[i]) : a[i] != b[i]) return false;
    }
    return true;
}

bool is_control(Opcode opcode) { return static_cast<std::uint8_t>(opcode) >= 8; }

}  // namespace

std::string accept_key(std::string_view client_key) {
    auto digest = sha1(std::string(client_key) + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    return mail::base64_encode(std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()), 0);
}

bool valid_key(std::string_view key) {
    if (key.size() != 24 || !key.ends_with("==")) return false;
    for (char c : key.substr(0, 22)) {
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/')) {
            return false;
        }
    }
    return true;
}

bool has_token(std::string_view list, std::string_view token, bool ignore_case) {
    while (!list.empty()) {
        std::size_t comma = list.find(',');
        std::string_view item = list.substr(0, comma);
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
        if (equal(item, token, ignore_case)) return true;
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

std::optional<Message> Reader::fail(std::uint16_t code, std::string reason) {
    error_ = code;
    error_reason_ = std::move(reason);
    buffer_.clear();
    partial_.clear();
    return std::nullopt;
}

std::optional<Message> Reader::next() {
    while (error_ == 0) {
        if (buffer_.size() < 2) return std::nullopt;
        const auto* p = reinterpret_cast<const unsigned char*>(buffer_.data());
        const bool fin = p[0] & 0x80;
        if (p[0] & 0x70) return fail(kCloseProtocolError, "reserved bits set: no extension was negotiated");
        const auto opcode = static_cast<Opcode>(p[0] & 0x0f);
        const bool masked = p[1] & 0x80;
        std::uint64_t length = p[1] & 0x7f;
        std::size_t header = 2;
        switch (opcode) {
            case Opcode::continuation:
            case Opcode::text:
            case Opcode::binary:
            case Opcode::close:
            case Opcode::ping:
            case Opcode::pong: break;
            default: return fail(kCloseProtocolError, "unknown opcode");
        }
        // RFC 6455 5.1: a client masks every frame.
        if (!masked) return fail(kCloseProtocolError, "client frames must be masked");
        if (is_control(opcode) && (!fin || length > 125)) {
            return fail(kCloseProtocolError, "control frames are at most 125 octets and never fragmented");
        }
        if (length == 126 || length == 127) {
            const std::size_t extra = length == 126 ? 2 : 8;
            if (buffer_.size() < 2 + extra) return std::nullopt;
            length = 0;
            for (std::size_t i = 0; i < extra; ++i) length = (length << 8) | p[2 + i];
            header += extra;
            if (length >> 63) return fail(kCloseProtocolError, "frame length with its top bit set");
        }
        if (opcode == Opcode::continuation && !fragmented_) return fail(kCloseProtocolError, "continuation of nothing");
        if ((opcode == Opcode::text || opcode == Opcode::binary) && fragmented_) {
            return fail(kCloseProtocolError, "a new message before the last one ended");
        }
        // Checked from the header, before the payload is held (5.4: the message is what the limit bounds).
        const std::uint64_t so_far = opcode == Opcode::continuation ? partial_.size() : 0;
        if (!is_control(opcode) && length > max_message_octets_ - std::min<std::uint64_t>(so_far, max_message_octets_)) {
            return fail(kCloseTooBig, fmt::format("a message is at most {} octets (maxSizeRequest)", max_message_octets_));
        }
        header += 4;
        if (buffer_.size() < header || buffer_.size() - header < length) return std::nullopt;
        const unsigned char* key = p + header - 4;
        std::string payload(buffer_.data() + header, static_cast<std::size_t>(length));
        for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(payload[i] ^ key[i % 4]);
        buffer_.erase(0, header + static_cast<std::size_t>(length));

        if (is_control(opcode)) {
            if (opcode == Opcode::close && payload.size() == 1) return fail(kCloseProtocolError, "a close payload of one octet");
            return Message{opcode, std::move(payload)};
        }
        if (opcode != Opcode::continuation) fragmented_ = opcode;
        partial_ += payload;
        if (!fin) continue;
        Message message{*fragmented_, std::move(partial_)};
        partial_.clear();
        fragmented_.reset();
        // RFC 6455 8.1: text is UTF-8, else the connection fails.
        if (message.opcode == Opcode::text && !is_valid_utf8(message.payload)) {
            return fail(kCloseInvalidData, "text message that is not UTF-8");
        }
        return message;
    }
    return std::nullopt;
}

std::string frame(Opcode opcode, std::string_view payload) {
    std::string out;
    out.push_back(static_cast<char>(0x80 | static_cast<std::uint8_t>(opcode)));
    if (payload.size() < 126) {
        out.push_back(static_cast<char>(payload.size()));
    } else if (payload.size() <= 0xffff) {
        out.push_back(static_cast<char>(126));
        out.push_back(static_cast<char>(payload.size() >> 8));
        out.push_back(static_cast<char>(payload.size() & 0xff));
    } else {
        out.push_back(static_cast<char>(127));
        for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((static_cast<std::uint64_t>(payload.size()) >> (8 * i)) & 0xff));
    }
    out.append(payload);
    return out;
}

std::string close_frame(std::uint16_t code, std::string_view reason) {
    std::string payload;
    payload.push_back(static_cast<char>(code >> 8));
    payload.push_back(static_cast<char>(code & 0xff));
    payload.append(reason.substr(0, 123));
    // A cut must not split a UTF-8 sequence (the reason is UTF-8 text, 5.5.1).
    while (payload.size() > 2 && !is_valid_utf8(std::string_view(payload).substr(2))) payload.pop_back();
    return frame(Opcode::close, payload);
}

}  // namespace magpie::http::websocket
