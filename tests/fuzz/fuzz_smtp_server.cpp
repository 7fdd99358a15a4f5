// Fuzzes smtp::ServerSession with arbitrary client bytes, cut into feeds of input-chosen sizes, answering
// every event with a verdict drawn from the input. Checks the invariants the IO layer relies on: replies
// are CRLF-terminated lines starting with a reply code, stored messages are CRLF lines within the size
// limit, the Received field made from the envelope is one well-formed field, nothing happens after Close,
// and how the stream is cut never changes the outcome.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mail/mime.h"
#include "smtp/server_session.h"

namespace {

using namespace magpie;
using namespace magpie::smtp;

void check_at(bool condition, int line) {
    if (condition) return;
    std::fprintf(stderr, "check failed at line %d\n", line);
    std::abort();
}
#define check(condition) check_at((condition), __LINE__)

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

// The Received field we prepend holds what the client said (HELO name, AUTH user, recipient): whatever it
// said, the field is one well-formed header field (RFC 5322 2.2: CRLF lines, folds start with white space,
// at most 998 octets a line) that a reader sees as exactly one Received field over the whole text.
void check_received(const std::string& field) {
    check(field.ends_with("\r\n"));
    std::size_t start = 0;
    while (start < field.size()) {
        std::size_t end = field.find("\r\n", start);
        check(end != std::string::npos);
        std::string_view line(field.data() + start, end - start);
        check(line.find_first_of("\r\n") == std::string_view::npos);
        check(line.size() <= 998);
        check(!line.empty() && (start == 0 || line[0] == ' ' || line[0] == '\t'));
        start = end + 2;
    }
    const std::string message = field + "\r\nbody\r\n";  // the parse's fields point into it
    mail::Message parsed = mail::Message::parse(message);
    check(parsed.fields().size() == 1 && parsed.fields()[0].name == "Received");
    check(parsed.fields()[0].length == field.size());
}

struct Rng {
    std::uint32_t state;
    std::uint32_t next() {
        state = state * 1103515245u + 12345u;
        return (state >> 16) & 0x7fff;
    }
};

// One session over `input`. Feeds pieces of random sizes (or everything at once when `whole`), answers
// events from `answers`; with `chaos` also fires timeouts, shutdowns and TLS handshakes at random.
std::string run(std::string_view input, const ServerConfig& config, std::uint32_t seed, bool whole,
                bool chaos) {
    ServerSession session(config, "192.0.2.1");
    Rng pieces{seed ^ 0x5a5a5a5au};
    Rng answers{seed};
    bool closed = false;
    std::string transcript = session.take_output();
    while (!input.empty() && !closed) {
        std::size_t piece = whole ? input.size() : 1 + pieces.next() % 64;
        if (piece > input.size()) piece = input.size();
        session.feed(input.substr(0, piece));
        input.remove_prefix(piece);
        while (auto event = session.poll_event()) {
            check(!closed);
            // Replies written before the event come first in the transcript, however the input was cut.
            std::string before = session.take_output();
            check_replies(before);
            transcript += before;
            if (auto* rcpt = std::get_if<RcptCheck>(&*event)) {
                check(!rcpt->address.empty());
                transcript += "[rcpt " + rcpt->address + "]";
                session.rcpt_checked(static_cast<RcptVerdict>(answers.next() % 5));
            } else if (auto* message = std::get_if<MessageReceived>(&*event)) {
                check_message(*message, config.limits.max_message_size);
                transcript += "[message " + message->data + "]";
                check_received(received_header(message->envelope, "2001:db8::1", config.hostname, "Q1",
                                               answers.next()));
                if (answers.next() % 4 == 0) {
                    session.stored(make_error(static_cast<Errc>(answers.next() % 10), "refused\r\nby fuzz"));
                } else {
                    session.stored(std::string("Q") + std::to_string(answers.next()));
                }
            } else if (std::holds_alternative<AuthBegin>(*event) || std::holds_alternative<AuthResponse>(*event)) {
                check(config.submission);
                transcript += "[auth]";
                // Any answer in any order: challenges keep the exchange going, success sets the sender.
                auto kind = static_cast<AuthAnswer::Kind>(answers.next() % 8);
                session.auth_answered(AuthAnswer{kind, "Y2hhbGxlbmdl", "a@fuzz.test", {"a@fuzz.test"}});
            } else if (std::holds_alternative<StartTls>(*event)) {
                transcript += "[starttls]";
                // Without chaos the handshake never happens, so both feeding styles discard the same bytes.
                if (chaos && pieces.next() % 2 == 0) session.tls_started();
            } else {
                transcript += "[close]";
                closed = true;
            }
        }
        if (chaos && pieces.next() % 97 == 0) session.idle_timeout();
        if (chaos && pieces.next() % 89 == 0) session.shutting_down();
        std::string out = session.take_output();
        check_replies(out);
        transcript += out;
    }
    return transcript;
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
    config.submission = (flags & 32) != 0;
    config.auth_plaintext_allowed = (flags & 64) != 0;
    config.limits.max_auth_line = 300;

    if ((flags & 16) != 0) {
        (void)run(input, config, seed, false, true);
    } else {
        // Pipelining: how the stream is cut must never change a reply, an event or a stored byte.
        check(run(input, config, seed, false, false) == run(input, config, seed, true, false));
    }
    return 0;
}
