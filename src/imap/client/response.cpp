#include "imap/client/response.h"

#include <algorithm>

#include "base/strings.h"

namespace magpie::imap::client {
namespace {

// A literal announced at the end of `line` ("{12}", "{12+}", "~{12}"): its size, nullopt when the line
// announces none, or -1 (as an error) when the size cannot be read.
struct LiteralAnnouncement {
    bool present = false;
    bool readable = true;
    std::uint64_t size = 0;
};

LiteralAnnouncement trailing_literal(std::string_view line) {
    LiteralAnnouncement result;
    if (line.empty() || line.back() != '}') return result;
    std::size_t open = line.rfind('{');
    if (open == std::string_view::npos) return result;
    std::string_view digits = line.substr(open + 1, line.size() - open - 2);
    if (!digits.empty() && digits.back() == '+') digits.remove_suffix(1);
    if (digits.empty() || !std::ranges::all_of(digits, [](char c) { return c >= '0' && c <= '9'; }))
        return result;
    result.present = true;
    auto size = digits.size() <= 19 ? parse_uint(digits) : std::nullopt;
    if (!size) {
        result.readable = false;
        return result;
    }
    result.size = *size;
    return result;
}

std::optional<Status> status_from(std::string_view word) {
    if (iequals(word, "OK")) return Status::ok;
    if (iequals(word, "NO")) return Status::no;
    if (iequals(word, "BAD")) return Status::bad;
    if (iequals(word, "BYE")) return Status::bye;
    if (iequals(word, "PREAUTH")) return Status::preauth;
    return std::nullopt;
}

// Reads one framed response. `end_` is where the final line end starts; literal bytes are skipped by count,
// so a CRLF inside a literal never ends anything.
class Reader {
public:
    Reader(std::string_view s, const ResponseLimits& limits) : s_(s), limits_(limits) {
        end_ = s.size();
        if (end_ > 0 && s[end_ - 1] == '\n') --end_;
        if (end_ > 0 && s[end_ - 1] == '\r') --end_;
    }

    Response read() {
        if (s_.empty() || end_ == 0) return malformed("empty response");
        if (s_[0] == '+') {
            pos_ = 1;
            if (pos_ < end_ && s_[pos_] == ' ') ++pos_;
            return Continuation{std::string(s_.substr(pos_, end_ - pos_))};
        }
        if (s_[0] == '*') return read_untagged();
        return read_tagged();
    }

private:
    bool at_end() const { return pos_ >= end_; }
    char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }

    Response malformed(std::string reason) const {
        std::string_view first = s_.substr(0, std::min<std::size_t>({s_.find('\n'), s_.size(), 200}));
        if (!first.empty() && first.back() == '\r') first.remove_suffix(1);
        return Malformed{std::move(reason), std::string(first)};
    }

    bool space() {
        if (peek() != ' ') return false;
        while (peek() == ' ' && pos_ < end_) ++pos_;
        return true;
    }

    // A word of letters, digits and the few punctuation marks names use ("ESEARCH", "LIST-STATUS").
    std::string_view word() {
        std::size_t start = pos_;
        while (pos_ < end_) {
            char c = s_[pos_];
            if (c == ' ' || c == '(' || c == ')' || c == '[' || c == ']' || c == '"' || c == '{' ||
                static_cast<unsigned char>(c) < 0x20)
                break;
            ++pos_;
        }
        return s_.substr(start, pos_ - start);
    }

    Response read_untagged() {
        pos_ = 1;
        if (!space()) return malformed("no space after *");
        Untagged u;
        std::string_view first = word();
        if (first.empty()) return malformed("untagged response without a name");
        if (auto n = parse_uint(first)) {
            if (*n > UINT32_MAX) return malformed("message number out of range");
            u.number = static_cast<std::uint32_t>(*n);
            if (!space()) return malformed("no name after the message number");
            first = word();
            if (first.empty()) return malformed("no name after the message number");
        }
        u.name = to_upper(first);
        if (!u.number) u.status = status_from(u.name);
        if (u.status) {
            if (!read_text(u.text)) return malformed(error_);
            return u;
        }
        if (!read_values(u.data)) return malformed(error_);
        return u;
    }

    Response read_tagged() {
        std::size_t start = pos_;
        while (pos_ < end_) {
            char c = s_[pos_];
            if (c == ' ' || c == '+' || c == '(' || c == ')' || c == '{' || c == '"' || c == '%' ||
                c == '*' || static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7F)
                break;
            ++pos_;
        }
        if (pos_ == start) return malformed("no tag");
        Tagged t;
        t.tag = std::string(s_.substr(start, pos_ - start));
        if (!space()) return malformed("no status after the tag");
        auto status = status_from(word());
        if (!status || *status == Status::preauth) return malformed("tagged response without OK, NO or BAD");
        t.status = *status;
        if (!read_text(t.text)) return malformed(error_);
        return t;
    }

    // resp-text: [SP] ["[" code [SP args] "]" [SP]] text (RFC 9051 7.1). Lenient about the spaces.
    bool read_text(ResponseText& text) {
        space();
        if (peek() == '[' && pos_ < end_) {
            ++pos_;
            std::string_view name = word();
            if (name.empty()) return fail("empty response code");
            text.code = to_upper(name);
            space();
            std::size_t close = s_.find(']', pos_);
            if (close == std::string_view::npos || close > end_) return fail("response code not closed");
            text.code_args = std::string(s_.substr(pos_, close - pos_));
            pos_ = close + 1;
            space();
        }
        text.text = std::string(s_.substr(std::min(pos_, end_), end_ - std::min(pos_, end_)));
        return true;
    }

    bool read_values(std::vector<Value>& out) {
        while (true) {
            space();
            if (at_end()) return true;
            Value v;
            if (!read_value(v, 0)) return false;
            out.push_back(std::move(v));
        }
    }

    bool fail(std::string reason) {
        error_ = std::move(reason);
        return false;
    }

    bool read_value(Value& v, std::size_t depth) {
        char c = peek();
        if (c == '(') return read_list(v, depth + 1);
        if (c == '"') return read_quoted(v);
        if (c == '{' || (c == '~' && pos_ + 1 < s_.size() && s_[pos_ + 1] == '{')) return read_literal(v);
        return read_atom(v);
    }

    bool read_list(Value& v, std::size_t depth) {
        if (depth > limits_.max_depth) return fail("lists nested too deep");
        ++pos_;
        v.kind = Value::Kind::list;
        while (true) {
            space();
            if (at_end()) return fail("list not closed");
            if (peek() == ')') {
                ++pos_;
                return true;
            }
            Value item;
            if (!read_value(item, depth)) return false;
            v.items.push_back(std::move(item));
        }
    }

    bool read_quoted(Value& v) {
        ++pos_;
        v.kind = Value::Kind::string;
        while (true) {
            if (at_end()) return fail("quoted string not closed");
            char c = s_[pos_++];
            if (c == '"') return true;
            if (c == '\r' || c == '\n') return fail("line end in a quoted string");
            if (c == '\\') {
                if (at_end()) return fail("quoted string not closed");
                c = s_[pos_++];
            }
            v.text += c;
        }
    }

    bool read_literal(Value& v) {
        if (peek() == '~') ++pos_;
        std::size_t close = s_.find('}', pos_);
        if (close == std::string_view::npos) return fail("literal size not closed");
        std::string_view digits = s_.substr(pos_ + 1, close - pos_ - 1);
        if (!digits.empty() && digits.back() == '+') digits.remove_suffix(1);
        auto size = digits.size() <= 19 ? parse_uint(digits) : std::nullopt;
        if (!size) return fail("unreadable literal size");
        pos_ = close + 1;
        if (peek() == '\r') ++pos_;
        if (peek() != '\n') return fail("no line end after a literal size");
        ++pos_;
        if (*size > s_.size() - pos_) return fail("literal longer than the response");
        v.kind = Value::Kind::string;
        v.literal = true;
        v.text = std::string(s_.substr(pos_, *size));
        pos_ += *size;
        // The literal may have ended the last line but one: the final line end moved past it.
        return true;
    }

    // An atom, where BODY[HEADER.FIELDS (A B)]<0> counts as one: brackets hold anything but a line end.
    bool read_atom(Value& v) {
        std::size_t start = pos_;
        while (pos_ < end_) {
            char c = s_[pos_];
            if (c == '[') {
                int nesting = 0;
                while (pos_ < end_) {
                    char d = s_[pos_++];
                    if (d == '[') ++nesting;
                    if (d == ']' && --nesting == 0) break;
                }
                if (nesting != 0) return fail("section not closed");
                continue;
            }
            if (c == ' ' || c == '(' || c == ')' || c == '"' || c == '{' ||
                static_cast<unsigned char>(c) < 0x20 || c == 0x7F)
                break;
            ++pos_;
        }
        if (pos_ == start) return fail(fmt_unexpected());
        v.text = std::string(s_.substr(start, pos_ - start));
        v.kind = iequals(v.text, "NIL") ? Value::Kind::nil : Value::Kind::atom;
        if (v.kind == Value::Kind::nil) v.text.clear();
        return true;
    }

    std::string fmt_unexpected() const {
        unsigned char c = static_cast<unsigned char>(peek());
        if (c >= 0x21 && c < 0x7F) return std::string("unexpected '") + static_cast<char>(c) + "'";
        return "unexpected octet " + std::to_string(c);
    }

    std::string_view s_;
    const ResponseLimits& limits_;
    std::size_t pos_ = 0;
    std::size_t end_ = 0;
    std::string error_;
};

}  // namespace

std::optional<std::uint64_t> Value::as_number() const {
    if (kind != Kind::atom || text.empty() || text.size() > 19) return std::nullopt;
    return parse_uint(text);
}

Response parse_response(std::string_view response, const ResponseLimits& limits) {
    // A literal inside moves the real end of the last line: find it after the last literal. The framer
    // guarantees the response ends with the one line end that is not followed by literal bytes.
    return Reader(response, limits).read();
}

std::vector<std::string> split_words(std::string_view text, bool upper) {
    std::vector<std::string> words;
    for (auto part : split(text, ' ')) {
        if (part.empty()) continue;
        words.push_back(upper ? to_upper(part) : std::string(part));
    }
    return words;
}

ResponseParser::ResponseParser(ResponseLimits limits) : limits_(limits) {}

void ResponseParser::feed(std::string_view bytes) {
    if (fatal_) return;
    // Compact once the returned responses are half the buffer: amortised linear.
    if (consumed_ > 0 && consumed_ >= buffer_.size() / 2) {
        buffer_.erase(0, consumed_);
        scan_ -= consumed_;
        line_start_ -= consumed_;
        consumed_ = 0;
    }
    buffer_.append(bytes);
}

bool ResponseParser::frame() {
    while (true) {
        if (scan_ > buffer_.size()) return false;  // literal bytes still to come
        std::size_t nl = buffer_.find('\n', scan_);
        if (nl == std::string::npos) {
            if (buffer_.size() - line_start_ > limits_.max_line_octets + 2) {
                fatal_ = "response line longer than " + std::to_string(limits_.max_line_octets) + " octets";
            } else if (buffer_.size() - consumed_ > limits_.max_response_octets) {
                fatal_ = "response longer than " + std::to_string(limits_.max_response_octets) + " octets";
            }
            scan_ = buffer_.size();
            return false;
        }
        if (nl - line_start_ > limits_.max_line_octets + 1) {
            fatal_ = "response line longer than " + std::to_string(limits_.max_line_octets) + " octets";
            return false;
        }
        if (nl + 1 - consumed_ > limits_.max_response_octets) {
            fatal_ = "response longer than " + std::to_string(limits_.max_response_octets) + " octets";
            return false;
        }
        std::size_t end = nl;
        if (end > line_start_ && buffer_[end - 1] == '\r') --end;
        auto literal = trailing_literal(std::string_view(buffer_).substr(line_start_, end - line_start_));
        if (!literal.present) {
            response_end_ = nl + 1;
            scan_ = line_start_ = response_end_;
            return true;
        }
        if (!literal.readable || literal.size > limits_.max_literal_octets) {
            fatal_ = literal.readable
                         ? "literal larger than " + std::to_string(limits_.max_literal_octets) + " octets"
                         : "unreadable literal size";
            return false;
        }
        if (nl + 1 - consumed_ + literal.size > limits_.max_response_octets) {
            fatal_ = "response longer than " + std::to_string(limits_.max_response_octets) + " octets";
            return false;
        }
        scan_ = line_start_ = nl + 1 + static_cast<std::size_t>(literal.size);
    }
}

std::optional<Response> ResponseParser::next() {
    if (fatal_ || !frame()) return std::nullopt;
    std::string_view response = std::string_view(buffer_).substr(consumed_, response_end_ - consumed_);
    consumed_ = response_end_;
    return parse_response(response, limits_);
}

}  // namespace magpie::imap::client
