#include "mail/dkim_canon.h"

#include "base/strings.h"

namespace magpie::mail::dkim {

namespace {

bool is_wsp(char c) {
    return c == ' ' || c == '\t';
}

// Splits off one line of `text` at `pos`: returns its content without the line end and moves `pos` past
// the line end. `had_end` says whether a line end was there (the last line may lack one).
std::string_view next_line(std::string_view text, std::size_t& pos, bool& had_end) {
    std::size_t eol = text.find('\n', pos);
    std::size_t stop = eol == std::string_view::npos ? text.size() : eol;
    std::size_t content_end = stop;
    if (content_end > pos && text[content_end - 1] == '\r') --content_end;
    std::string_view line = text.substr(pos, content_end - pos);
    had_end = eol != std::string_view::npos;
    pos = had_end ? eol + 1 : text.size();
    return line;
}

// Appends `line` with every run of WSP as one SP and trailing WSP dropped.
void append_relaxed_line(std::string& out, std::string_view line) {
    bool pending_space = false;
    for (char c : line) {
        if (is_wsp(c)) {
            pending_space = true;
            continue;
        }
        if (pending_space) out += ' ';
        pending_space = false;
        out += c;
    }
}

}  // namespace

const char* canon_name(Canon canon) {
    return canon == Canon::simple ? "simple" : "relaxed";
}

std::string canonicalize_header(std::string_view field, Canon canon) {
    std::string out;
    out.reserve(field.size() + 2);
    std::size_t pos = 0;
    bool had_end = false;
    if (canon == Canon::simple) {
        while (pos < field.size()) {
            out += next_line(field, pos, had_end);
            out += "\r\n";
        }
        if (out.empty()) out = "\r\n";
        return out;
    }
    std::size_t colon = field.find(':');
    std::string_view name = trim(field.substr(0, colon));
    out += to_lower(name);
    out += ':';
    if (colon == std::string_view::npos) return out + "\r\n";
    // Unfold first (3.4.2: remove CRLF in folds), then compress WSP and trim both ends of the value.
    std::string value;
    std::string_view rest = field.substr(colon + 1);
    pos = 0;
    while (pos < rest.size()) value += next_line(rest, pos, had_end);
    std::string compressed;
    append_relaxed_line(compressed, value);
    std::string_view v = compressed;
    if (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    out += v;
    out += "\r\n";
    return out;
}

std::string canonicalize_body(std::string_view body, Canon canon, std::size_t max_octets) {
    std::string out;
    std::size_t pending_empty = 0;  // empty lines seen but not yet written: dropped if nothing follows
    std::size_t pos = 0;
    bool had_end = false;
    while (pos < body.size() && out.size() < max_octets) {
        std::string_view line = next_line(body, pos, had_end);
        std::string canonical;
        if (canon == Canon::simple) {
            canonical = line;
        } else {
            append_relaxed_line(canonical, line);
        }
        if (canonical.empty()) {
            ++pending_empty;
            continue;
        }
        for (; pending_empty > 0; --pending_empty) out += "\r\n";
        out += canonical;
        out += "\r\n";  // 3.4.3 / 3.4.4: a last line without CRLF gets one
    }
    if (out.empty() && canon == Canon::simple) out = "\r\n";
    if (out.size() > max_octets) out.resize(max_octets);
    return out;
}

}  // namespace magpie::mail::dkim
