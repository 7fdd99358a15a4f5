#include "mail/subject.h"

#include "base/strings.h"

namespace magpie::mail {
namespace {

// subj-blob = "[" *BLOBCHAR "]" *WSP, at `pos`; its length, or 0 when there is none.
std::size_t blob_length(std::string_view s, std::size_t pos) {
    if (pos >= s.size() || s[pos] != '[') return 0;
    std::size_t end = pos + 1;
    while (end < s.size() && s[end] != ']' && s[end] != '[') ++end;
    if (end >= s.size() || s[end] != ']') return 0;
    ++end;
    while (end < s.size() && s[end] == ' ') ++end;
    return end - pos;
}

// subj-leader = (*subj-blob subj-refwd) / WSP, with subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":".
std::size_t leader_length(std::string_view s) {
    if (!s.empty() && s[0] == ' ') return 1;
    std::size_t pos = 0;
    while (std::size_t blob = blob_length(s, pos)) pos += blob;
    std::string_view rest = s.substr(pos);
    std::size_t word = 0;
    if (istarts_with(rest, "re")) {
        word = 2;
    } else if (istarts_with(rest, "fwd")) {
        word = 3;
    } else if (istarts_with(rest, "fw")) {
        word = 2;
    } else {
        return 0;
    }
    pos += word;
    while (pos < s.size() && s[pos] == ' ') ++pos;
    pos += blob_length(s, pos);
    if (pos >= s.size() || s[pos] != ':') return 0;
    return pos + 1;
}

}  // namespace

std::string base_subject(std::string_view subject) {
    // (1) White space (folding included) becomes single spaces.
    std::string s;
    bool space = false;
    for (char c : subject) {
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            space = true;
            continue;
        }
        if (space && !s.empty()) s += ' ';
        space = false;
        s += c;
    }
    for (;;) {
        // (2) Trailing "(fwd)" and white space.
        for (bool changed = true; changed;) {
            changed = false;
            while (!s.empty() && s.back() == ' ') {
                s.pop_back();
                changed = true;
            }
            constexpr std::string_view kTrailer = "(fwd)";
            if (s.size() >= kTrailer.size() && iequals(std::string_view(s).substr(s.size() - kTrailer.size()), kTrailer)) {
                s.resize(s.size() - kTrailer.size());
                changed = true;
            }
        }
        // (3)-(5) Leaders ("Re:", "[list] Fwd:", white space), then a leading blob unless it is all there is.
        for (bool changed = true; changed;) {
            changed = false;
            if (std::size_t leader = leader_length(s)) {
                s.erase(0, leader);
                changed = true;
                continue;
            }
            std::size_t blob = blob_length(s, 0);
            if (blob != 0 && blob < s.size()) {
                s.erase(0, blob);
                changed = true;
            }
        }
        // (6) "[Fwd: ...]" wraps a forwarded subject: unwrap it and start again.
        constexpr std::string_view kForwardHeader = "[fwd:";
        if (s.size() > kForwardHeader.size() && istarts_with(s, kForwardHeader) && s.back() == ']') {
            s = s.substr(kForwardHeader.size(), s.size() - kForwardHeader.size() - 1);
            continue;
        }
        return s;
    }
}

}  // namespace magpie::mail
