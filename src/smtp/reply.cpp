#include "smtp/reply.h"

#include <fmt/format.h>

#include <utility>

#include "base/strings.h"

namespace magpie::smtp {
namespace {

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// A reply line quoted in an error: short and printable, so the error fits a log line and a report.
std::string quote(std::string_view line) {
    std::string out;
    for (char c : line.substr(0, 40)) {
        auto u = static_cast<unsigned char>(c);
        out.push_back(u >= 0x20 && u < 0x7f ? c : '?');
    }
    if (line.size() > 40) out += "...";
    return out;
}

// Reply text goes into transcripts, logs and delivery reports: control octets never pass, and octets
// >= 0x80 only as valid UTF-8 (RFC 6531 lets an SMTPUTF8 server send UTF-8 text).
std::string clean_text(std::string_view text) {
    bool utf8 = is_valid_utf8(text);
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        auto u = static_cast<unsigned char>(c);
        bool ok = (u >= 0x20 && u != 0x7f && (u < 0x80 || utf8)) || u == '\t';
        out.push_back(ok ? c : '?');
    }
    return out;
}

// RFC 3463 2: class "." subject "." detail, class 2, 4 or 5, subject 1-3 digits, detail 1-3 digits.
std::size_t enhanced_code_length(std::string_view text, char reply_class) {
    if (text.size() < 5 || text[0] != reply_class || text[1] != '.') return 0;
    std::size_t pos = 2;
    for (int part = 0; part < 2; ++part) {
        std::size_t start = pos;
        while (pos < text.size() && is_digit(text[pos]) && pos - start < 4) ++pos;
        if (pos == start || pos - start > 3) return 0;
        if (part == 0) {
            if (pos >= text.size() || text[pos] != '.') return 0;
            ++pos;
        }
    }
    if (pos < text.size() && text[pos] != ' ') return 0;
    return pos;
}

}  // namespace

std::string Reply::text() const {
    std::string out;
    const char reply_class = static_cast<char>('0' + code / 100);
    for (const std::string& line : lines) {
        std::string_view rest = line;
        if (std::size_t n = enhanced_code_length(rest, reply_class)) rest = trim(rest.substr(n));
        if (rest.empty()) continue;
        if (!out.empty()) out.push_back(' ');
        out.append(rest);
    }
    return out;
}

std::string Reply::summary() const {
    std::string out = std::to_string(code);
    if (!enhanced.empty()) out += " " + enhanced;
    std::string body = text();
    if (!body.empty()) out += " " + body;
    return out;
}

std::size_t ReplyReader::consume(std::string_view input) {
    std::size_t pos = 0;
    while (pos < input.size() && !ready_ && !failed_) {
        std::size_t newline = input.find('\n', pos);
        std::size_t end = newline == std::string_view::npos ? input.size() : newline;
        // RFC 5321 4.5.3.1.5: the line, its line end included, stays within max_line octets.
        if (partial_.size() + (end - pos) + 1 > limits_.max_line) {
            fail(Errc::limit_exceeded, fmt::format("reply line longer than {} octets", limits_.max_line));
            return input.size();
        }
        partial_.append(input.substr(pos, end - pos));
        if (newline == std::string_view::npos) return input.size();
        pos = newline + 1;
        end_line();
    }
    return failed_ ? input.size() : pos;
}

void ReplyReader::end_line() {
    std::string line = std::exchange(partial_, std::string());
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (reply_.lines.size() >= limits_.max_lines) {
        fail(Errc::limit_exceeded, fmt::format("reply longer than {} lines", limits_.max_lines));
        return;
    }
    // RFC 5321 4.2: Reply-line = *( Reply-code "-" [ textstring ] CRLF ) Reply-code [ SP textstring ] CRLF,
    // Reply-code = %x32-35 %x30-35 %x30-39.
    bool code_ok = line.size() >= 3 && line[0] >= '2' && line[0] <= '5' && line[1] >= '0' && line[1] <= '5' &&
                   is_digit(line[2]);
    bool separator_ok = line.size() == 3 || line[3] == ' ' || line[3] == '-';
    if (!code_ok || !separator_ok) {
        fail(Errc::invalid_argument, fmt::format("malformed reply line \"{}\"", quote(line)));
        return;
    }
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (!reply_.lines.empty() && code != reply_.code) {
        fail(Errc::invalid_argument,
             fmt::format("inconsistent codes in a multi-line reply ({} then {})", reply_.code, code));
        return;
    }
    bool last = line.size() == 3 || line[3] == ' ';
    std::string text = clean_text(line.size() > 4 ? std::string_view(line).substr(4) : std::string_view());
    if (reply_.lines.empty()) {
        reply_.code = code;
        // RFC 2034 3 / RFC 3463 2: the enhanced code opens the text and shares the reply's class.
        if (std::size_t n = enhanced_code_length(text, line[0])) reply_.enhanced = text.substr(0, n);
    }
    reply_.lines.push_back(std::move(text));
    if (last) ready_ = true;
}

void ReplyReader::fail(Errc code, std::string message) {
    failed_ = true;
    ready_ = true;
    partial_.clear();
    reply_ = Reply{};
    error_ = Error{code, std::move(message)};
}

Result<Reply> ReplyReader::take() {
    if (failed_) return error_;
    ready_ = false;
    return std::exchange(reply_, Reply{});
}

}  // namespace magpie::smtp
