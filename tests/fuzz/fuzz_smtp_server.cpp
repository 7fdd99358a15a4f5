// Fuzzes smtp::ServerSession with arbitrary client bytes, cut into feeds of input-chosen sizes, answering
// every event with a verdict drawn from the input. Checks the invariants the IO layer relies on: replies
// are CRLF-terminated lines starting with a reply code, stored messages are CRLF lines within the size
// limit, nothing happens after Close.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "smtp/server_session.h"

namespace {

using namespace magpie;
using namespace magpie::smtp;

void check(bool condition) {
    if (!condition) std::abort();
}

void check_replies(std::string_view out) {
    while (!out.empty()) {
        auto end = out.find("\r\n");
        check(end != std::string_view::npos);
        std::string_view line = out.substr(0, end);
        check(line.size() >= 4);
        for (int i = 0; i < 3; ++i) check(line[i] >= '0' && line[i] <= '9');
        check(line[3] == ' ' || line[3] == '-');
        check(line.find('\r') == std::string_view::npos && line.find('\n') == std::string_view::npos);
        out.remove_prefix(end + 2);
    }
}

void check_message(const MessageReceived& message, std::uint64_t max_size) {
    const std::string& data = message.data;
    check(data.size() <= max_size);
    for (std::size_t i = 0; i < data.size(); ++i) {
        if (data[i] == '\r') check(i + 1 < data.size() && data[i + 1] == '\n');
        if (data[i] == '\n') check(i > 0 && data[i - 1] == '\r');
    }
    check(data.empty() || data.ends_with("\r\n"));
    check(!message.envelope.recipients.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    if (size < 2) return 0;
    std::string_view input(reinterpret_cast<const char*>(bytes), size);
    const auto flags = static_cast<unsigned char>(input[0]);
    const auto seed = static_cast<unsigned char>(input[1]);
    input.remove_prefix(2);

    ServerConfig config;
    config.hostname = "mx.fuzz.test";
    config.limits.max_command_line = 128;
    config.limits.max_text_line = 100;
    config.limits.max_message_size = 2000;
    config.limits.max_recipients = 5;
    config.limits.max_buffered_input = 4096;
    config.starttls_offered = (flags & 1) != 0;
    config.tls_active = (flags & 2) != 0;
    config.bare_line_ending = (flags & 4) != 0 ? BareLineEnding::normalize : BareLineEnding::reject;
    config.vrfy_enabled = (flags & 8) != 0;
    ServerSession session(config, (flags & 16) != 0 ? "2001:db8::1" : "192.0.2.1");

    std::uint32_t state = seed;
    auto next = [&state]() {
        state = state * 1103515245u + 12345u;
        return (state >> 16) & 0x7fff;
    };
    bool closed = false;
    std::string output = session.take_output();
    while (!input.empty() && !closed) {
        std::size_t piece = 1 + next() % 64;
        if (piece > input.size()) piece = input.size();
        session.feed(input.substr(0, piece));
        input.remove_prefix(piece);
        while (auto event = session.poll_event()) {
            check(!closed);
            if (auto* rcpt = std::get_if<RcptCheck>(&*event)) {
                check(!rcpt->address.empty());
                session.rcpt_checked(static_cast<RcptVerdict>(next() % 5));
            } else if (auto* message = std::get_if<MessageReceived>(&*event)) {
                check_message(*message, config.limits.max_message_size);
                (void)received_header(message->envelope, "192.0.2.1", config.hostname, "Q1", next());
                if (next() % 4 == 0) {
                    session.stored(make_error(static_cast<Errc>(next() % 10), "refused\r\nby fuzz"));
                } else {
                    session.stored(std::string("Q") + std::to_string(next()));
                }
            } else if (std::holds_alternative<StartTls>(*event)) {
                if (next() % 2 == 0) session.tls_started();
            } else {
                closed = true;
            }
        }
        output += session.take_output();
        if (next() % 97 == 0) session.idle_timeout();
        if (next() % 89 == 0) session.shutting_down();
    }
    output += session.take_output();
    check_replies(output);
    return 0;
}
