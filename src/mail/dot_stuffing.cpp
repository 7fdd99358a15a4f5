#include "mail/dot_stuffing.h"

namespace magpie::mail {

void DotStuffer::feed(std::string_view chunk, std::string& out) {
    out.reserve(out.size() + chunk.size() + chunk.size() / 64 + 4);
    for (char c : chunk) {
        if (pending_cr_) {
            pending_cr_ = false;
            out.append("\r\n");
            at_line_start_ = true;
            if (c == '\n') continue;  // the CR's own LF
        }
        if (c == '\r') {
            pending_cr_ = true;
            continue;
        }
        if (c == '\n') {
            out.append("\r\n");
            at_line_start_ = true;
            continue;
        }
        if (at_line_start_ && c == '.') out.push_back('.');  // RFC 5321 4.5.2
        at_line_start_ = false;
        out.push_back(c);
    }
}

void DotStuffer::finish(std::string& out) {
    if (pending_cr_) {
        pending_cr_ = false;
        out.append("\r\n");
        at_line_start_ = true;
    }
    if (!at_line_start_) out.append("\r\n");
    out.append(".\r\n");
    at_line_start_ = true;
}

std::string dot_stuff(std::string_view message) {
    std::string out;
    DotStuffer stuffer;
    stuffer.feed(message, out);
    stuffer.finish(out);
    out.resize(out.size() - 3);  // drop the terminator
    return out;
}

std::string smtp_data_payload(std::string_view message) {
    std::string out;
    DotStuffer stuffer;
    stuffer.feed(message, out);
    stuffer.finish(out);
    return out;
}

}  // namespace magpie::mail
