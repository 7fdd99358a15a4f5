// Fuzzes both ends of SMTP DATA (RFC 5321 4.5.2) against each other: any message, stuffed by the sender's
// DotStuffer in input-chosen chunks, is read back by the receiver's DataReader exactly up to its terminator
// (no early end: the SMTP smuggling class), with the same lines the sender meant (bare CR and LF become
// CRLF); the streamed and whole stuffing agree; and raw receiver input never ends the data except at a
// real <CRLF>.<CRLF>.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mail/dot_stuffing.h"
#include "smtp/data_reader.h"

namespace {

using namespace magpie;

void check_at(bool condition, int line) {
    if (condition) return;
    std::fprintf(stderr, "check failed at line %d\n", line);
    std::abort();
}
#define check(condition) check_at((condition), __LINE__)

// The lines the sender means: every CRLF, bare CR and bare LF is one line end, and a last line is ended.
std::string canonical_lines(std::string_view message) {
    std::string out;
    for (std::size_t i = 0; i < message.size(); ++i) {
        char c = message[i];
        if (c == '\r' || c == '\n') {
            if (c == '\r' && i + 1 < message.size() && message[i + 1] == '\n') ++i;
            out += "\r\n";
        } else {
            out.push_back(c);
        }
    }
    if (!out.empty() && !out.ends_with("\r\n")) out += "\r\n";
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    if (size < 1 || size > 1 << 16) return 0;
    const std::size_t chunk = 1 + bytes[0] % 13;
    std::string_view message(reinterpret_cast<const char*>(bytes) + 1, size - 1);

    mail::DotStuffer stuffer;
    std::string streamed;
    for (std::size_t at = 0; at < message.size(); at += chunk) stuffer.feed(message.substr(at, chunk), streamed);
    stuffer.finish(streamed);
    check(streamed == mail::smtp_data_payload(message));

    for (auto mode : {smtp::BareLineEnding::reject, smtp::BareLineEnding::normalize}) {
        smtp::DataReader reader({.max_text_line = 1 << 20, .max_message_size = 1 << 20, .bare_line_ending = mode,
                                 .dot_stuffed = true});
        std::size_t used = 0;
        for (std::size_t at = 0; at < streamed.size() && !reader.done(); at += chunk) {
            std::string_view piece = std::string_view(streamed).substr(at, chunk);
            std::size_t n = reader.consume(piece);
            used += n;
            if (n < piece.size()) break;
        }
        check(reader.done() && used == streamed.size());
        check(!reader.saw_bare_line_ending());
        check(reader.data() == canonical_lines(message));
    }

    // The raw bytes as a receiver would get them from a client: the data ends only after a real
    // <CRLF>.<CRLF> (or a "." line first), never at a bare LF or CR dressed as one.
    smtp::DataReader raw({.max_text_line = 1 << 20, .max_message_size = 1 << 20,
                          .bare_line_ending = smtp::BareLineEnding::normalize, .dot_stuffed = true});
    std::size_t used = raw.consume(message);
    if (raw.done()) {
        std::string_view read = message.substr(0, used);
        check(read == ".\r\n" || read.ends_with("\r\n.\r\n"));
        check(read == ".\r\n" || read.find("\r\n.\r\n") == read.size() - 5);
    } else {
        check(used == message.size());
    }
    return 0;
}
