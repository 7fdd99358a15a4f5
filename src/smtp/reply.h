// SMTP replies as a client reads them (RFC 5321 4.2): one- and multi-line replies, their code and the
// enhanced status code of RFC 3463 / RFC 2034. The reader is incremental and bounded: it keeps at most one
// partial line and one reply's lines, so a peer that never ends a line or a reply costs a fixed amount of
// memory and gets a clear error, never a crash.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace magpie::smtp {

struct ReplyLimits {
    // Octets in one reply line, CRLF included. RFC 5321 4.5.3.1.5 says 512; real servers send longer text
    // (URLs in 5xx replies, long EHLO lines), so the default is Postfix's line limit.
    std::size_t max_line = 2048;
    std::size_t max_lines = 100;  // lines in one multi-line reply (an EHLO reply has about 15)
};

struct Reply {
    int code = 0;                    // 200..559 (RFC 5321 4.2.1: 2yz..5yz; 1yz is not used by SMTP)
    std::string enhanced;            // "5.1.1" when the first line starts with one of the code's class
    std::vector<std::string> lines;  // the text after "NNN-" / "NNN " per line; control octets become '?'

    bool positive() const { return code >= 200 && code < 300; }
    bool intermediate() const { return code >= 300 && code < 400; }
    bool transient() const { return code >= 400 && code < 500; }
    bool permanent() const { return code >= 500; }
    // The text of every line joined by one space, each line's enhanced code prefix removed: for results,
    // logs and Diagnostic-Code fields.
    std::string text() const;
    // "550 5.1.1 text" on one line.
    std::string summary() const;
};

// Reads replies from the peer's bytes, one at a time. Line ends are CRLF; a bare LF is accepted as one
// (lenient where real servers are sloppy), anything else about the syntax is strict: a line must be three
// digits and then nothing, a space or a hyphen; every line of a reply carries the same code.
class ReplyReader {
public:
    explicit ReplyReader(ReplyLimits limits = {}) : limits_(limits) {}

    // Consumes bytes from the front of `input` up to the end of one reply (or up to the end of `input`),
    // returns how many. Once ready() the caller takes the reply before feeding more.
    std::size_t consume(std::string_view input);
    bool ready() const { return ready_; }
    // The reply, or an error (invalid_argument: malformed; limit_exceeded: a line or line count over its
    // limit) whose message is fit for a delivery report. After an error the reader stays failed.
    Result<Reply> take();
    // Octets of an unfinished line or reply held: nothing is held between replies.
    bool idle() const { return partial_.empty() && reply_.lines.empty() && !failed_; }

private:
    void end_line();
    void fail(Errc code, std::string message);

    ReplyLimits limits_;
    std::string partial_;  // the current line, without its line end, at most max_line octets
    Reply reply_;
    bool ready_ = false;
    bool failed_ = false;
    Error error_{Errc::internal, ""};
};

}  // namespace magpie::smtp
