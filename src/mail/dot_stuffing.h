// Preparing message bytes for SMTP DATA (RFC 5321 4.5.2): a '.' that starts a line gets a second one, every
// line ends with CRLF (RFC 5321 2.3.8 forbids bare CR and LF), and the data ends with CRLF "." CRLF.
#pragma once

#include <string>
#include <string_view>

namespace magpie::mail {

// Streaming form, for a message sent in chunks: state carries line starts and a CR split across chunks.
class DotStuffer {
public:
    // Appends the stuffed form of `chunk` to `out`. A bare LF or bare CR becomes CRLF.
    void feed(std::string_view chunk, std::string& out);
    // Ends the data: a final CRLF if the message lacked one, then the terminating ".\r\n".
    void finish(std::string& out);

private:
    bool at_line_start_ = true;
    bool pending_cr_ = false;
};

// The whole message stuffed, CRLF line ends, ending with CRLF, without the terminating ".\r\n".
std::string dot_stuff(std::string_view message);

// dot_stuff(message) followed by ".\r\n": the bytes to send after the 354 reply.
std::string smtp_data_payload(std::string_view message);

}  // namespace magpie::mail
