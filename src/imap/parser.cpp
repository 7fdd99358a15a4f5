#include "imap/parser.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "base/strings.h"
#include "imap/grammar.h"

namespace magpie::imap {
namespace {

// While a too-long line is dropped, its last octets are kept to see whether it announces a literal;
// "~{18446744073709551615+}" is 25 octets.
constexpr std::size_t kTailOctets = 32;

struct LiteralTrailer {
    std::size_t start = 0;  // where "{" (or "~{") begins in the line
    std::uint64_t size = 0;
    bool sync = true;
    bool binary = false;
    bool malformed = false;  // looks like a literal but its size cannot be read: resync is impossible
};

LiteralTrailer malformed_trailer() {
    LiteralTrailer trailer;
    trailer.malformed = true;
    return trailer;
}

// A line announces a literal when it ends with "{n}", "{n+}" or "~{n}" (RFC 9051 4.3, RFC 7888, RFC 3516).
// truncated says the line's beginning was dropped, so a "}" with no "{" in sight is treated as malformed.
std::optional<LiteralTrailer> find_literal_trailer(std::string_view line, bool truncated) {
    if (line.empty() || line.back() != '}') return std::nullopt;
    std::size_t open = line.rfind('{');
    if (open == std::string_view::npos) {
        if (truncated) return malformed_trailer();
        return std::nullopt;
    }
    std::string_view inner = line.substr(open + 1, line.size() - open - 2);
    LiteralTrailer trailer;
    if (!inner.empty() && inner.back() == '+') {
        trailer.sync = false;
        inner.remove_suffix(1);
    }
    if (inner.empty()) return std::nullopt;
    for (char c : inner) {
        if (c < '0' || c > '9') return std::nullopt;
    }
    auto size = parse_uint(inner);
    if (!size) return malformed_trailer();
    trailer.size = *size;
    trailer.binary = open > 0 && line[open - 1] == '~';
    trailer.start = trailer.binary ? open - 1 : open;
    return trailer;
}

std::string_view strip_cr(std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
}

}  // namespace

Parser::Parser(Limits limits) : limits_(limits) {}

void Parser::feed(std::string_view bytes) {
    compact();
    input_.append(bytes);
}

void Parser::compact() {
    if (pos_ == 0) return;
    input_.erase(0, pos_);
    scanned_ = scanned_ > pos_ ? scanned_ - pos_ : 0;
    pos_ = 0;
}

std::size_t Parser::buffered_octets() const {
    return input_.size() - pos_ + text_.size() + literal_octets_;
}

void Parser::expect_sasl_response() {
    mode_ = Mode::sasl;
}

void Parser::expect_idle_done() {
    mode_ = Mode::idle;
}

void Parser::remember_tag(std::string_view text, bool complete) {
    if (!tag_.empty()) return;
    // Only the first max_line_octets count, and in a partial line only a word ended by a space is a tag:
    // the outcome must not depend on how the bytes were split.
    text = text.substr(0, limits_.max_line_octets);
    std::size_t space = text.find(' ');
    if (space == std::string_view::npos && !complete) {
        tag_ = "*";
        return;
    }
    std::string_view first = text.substr(0, space);
    tag_ = is_valid_tag(first) ? std::string(first) : "*";
    if (space != std::string_view::npos) append_ = istarts_with(text.substr(space + 1), "APPEND ");
}

void Parser::fail(ParseError::Status status, std::string code, std::string message) {
    if (error_) return;
    ParseError error;
    error.status = status;
    error.code = std::move(code);
    error.message = std::move(message);
    error_ = std::move(error);
}

ParseError Parser::take_error() {
    ParseError error = error_ ? std::move(*error_) : ParseError{};
    if (mode_ == Mode::command) error.tag = tag_.empty() ? "*" : tag_;
    mode_ = Mode::command;
    reset_command();
    return error;
}

void Parser::reset_command() {
    if (text_.capacity() > kKeptCapacity)
        std::string().swap(text_);  // a long command line's capacity is not kept
    else
        text_.clear();
    literals_.clear();
    literal_octets_ = 0;
    literal_remaining_ = 0;
    line_octets_ = 0;
    tag_.clear();
    append_ = false;
    error_.reset();
    tail_.clear();
    tail_truncated_ = false;
    state_ = State::line;
}

std::optional<Event> Parser::next() {
    auto event = scan();
    release_consumed();
    return event;
}

void Parser::release_consumed() {
    // Issue 17: an idle connection holds no big buffer. Once everything fed is consumed, the capacity a
    // large literal (or a long pipeline) needed goes too; small buffers are kept for the next command.
    if (pos_ < input_.size() || input_.capacity() <= kKeptCapacity) return;
    std::string().swap(input_);
    pos_ = 0;
    scanned_ = 0;
}

std::size_t Parser::held_octets() const {
    return input_.capacity() + text_.capacity() + tail_.capacity();
}

std::optional<Event> Parser::scan() {
    for (;;) {
        std::size_t available = input_.size() - pos_;
        switch (state_) {
            case State::literal:
            case State::skip_literal: {
                if (available == 0) return std::nullopt;
                std::size_t n = std::min<std::size_t>(available, literal_remaining_);
                if (state_ == State::literal && literals_.back().sink) {
                    Literal& literal = literals_.back();
                    std::string_view octets = std::string_view(input_).substr(pos_, n);
                    literal.has_nul = literal.has_nul || octets.find('\0') != std::string_view::npos;
                    literal.sink->write(octets);
                } else if (state_ == State::literal) {
                    std::string& data = literals_.back().data;
                    // One buffer of the announced size (checked against the limits above) once the octets
                    // start to arrive: a large APPEND is held once, never twice while a growing buffer is
                    // copied. Its pages become resident only as octets fill them.
                    if (data.empty()) data.reserve(literal_remaining_);
                    data.append(input_, pos_, n);
                }
                pos_ += n;
                literal_remaining_ -= n;
                if (literal_remaining_ == 0) state_ = error_ ? State::skip_line : State::line;
                continue;
            }
            case State::skip_line: {
                std::size_t newline = input_.find('\n', pos_);
                std::size_t end = newline == std::string::npos ? input_.size() : newline;
                tail_.append(input_, pos_, end - pos_);
                if (tail_.size() > kTailOctets) {
                    tail_.erase(0, tail_.size() - kTailOctets);
                    tail_truncated_ = true;
                }
                if (newline == std::string::npos) {
                    pos_ = input_.size();
                    return std::nullopt;
                }
                pos_ = newline + 1;
                std::string line = std::move(tail_);
                bool truncated = tail_truncated_;
                tail_.clear();
                tail_truncated_ = false;
                state_ = State::line;
                if (auto event = on_discarded_line(strip_cr(line), truncated)) return event;
                continue;
            }
            case State::line: {
                // Octets before scanned_ were searched already: a line fed one octet at a time costs
                // linear time, not quadratic.
                std::size_t newline = input_.find('\n', std::max(pos_, scanned_));
                std::size_t length = newline == std::string::npos ? available : newline - pos_;
                if (line_octets_ + length > limits_.max_line_octets + 1) {  // +1: the CR
                    if (mode_ == Mode::command) {
                        remember_tag(text_.empty() ? std::string_view(input_).substr(pos_, length) : text_,
                                     false);
                    }
                    fail(ParseError::Status::bad, "", "command line too long");
                    state_ = State::skip_line;
                    continue;
                }
                if (newline == std::string::npos) {
                    scanned_ = input_.size();
                    return std::nullopt;
                }
                std::string_view line = strip_cr(std::string_view(input_).substr(pos_, length));
                pos_ = newline + 1;
                line_octets_ += line.size();
                if (auto event = on_line(line)) return event;
                continue;
            }
        }
    }
}

std::optional<Event> Parser::on_line(std::string_view line) {
    switch (mode_) {
        case Mode::sasl:
            mode_ = Mode::command;
            line_octets_ = 0;  // a response line is not part of the next command
            return SaslResponse{std::string(line)};
        case Mode::idle: {
            mode_ = Mode::command;
            line_octets_ = 0;
            if (iequals(line, "DONE")) return IdleDone{};
            ParseError error;
            error.message = "expected DONE";
            return error;
        }
        case Mode::command:
            return on_command_line(line);
    }
    return std::nullopt;
}

std::optional<Event> Parser::on_command_line(std::string_view line) {
    // Blank lines between commands carry nothing; some clients send a stray CRLF after a literal.
    if (text_.empty() && literals_.empty() && line.empty()) return std::nullopt;
    if (text_.empty()) remember_tag(line, true);
    // NUL marks a literal's place in text_, and CHAR excludes it anyway (RFC 9051 9).
    if (std::memchr(line.data(), 0, line.size()) != nullptr) {
        fail(ParseError::Status::bad, "", "NUL octet in command line");
        return on_discarded_line(line, false);
    }
    auto trailer = find_literal_trailer(line, false);
    if (!trailer) {
        text_.append(line);
        return finish_command();
    }
    if (trailer->malformed) return on_discarded_line(line, false);
    text_.append(line.substr(0, trailer->start));
    text_.push_back('\0');
    if (tag_ == "*") {
        // Never invite a literal for a line that is not a command at all.
        fail(ParseError::Status::bad, "", "invalid tag");
    } else if (trailer->size > limits_.max_literal_octets ||
               literal_octets_ + trailer->size > limits_.max_literal_octets) {
        // RFC 7889 4: an APPEND over the APPENDLIMIT gets NO [TOOBIG]; elsewhere the command is BAD.
        fail(append_ ? ParseError::Status::no : ParseError::Status::bad, "TOOBIG", "literal too large");
    } else if (!trailer->sync && trailer->size > limits_.max_non_sync_literal_octets) {
        // RFC 7888 4 (LITERAL-): the octets follow anyway; they are read and dropped, never run.
        fail(ParseError::Status::bad, "TOOBIG", "non-synchronizing literal too large, use {n}");
    }
    if (error_) return on_discarded_line(line, false);
    Literal literal{std::string(), trailer->binary, nullptr, false};
    if (append_ && open_sink_ && trailer->size >= spool_min_octets_) literal.sink = open_sink_(trailer->size, trailer->binary);
    literals_.push_back(std::move(literal));
    literal_octets_ += trailer->size;
    literal_remaining_ = trailer->size;
    if (literal_remaining_ > 0) state_ = State::literal;
    if (trailer->sync) return ContinuationRequest{};
    return std::nullopt;
}

std::optional<Event> Parser::on_discarded_line(std::string_view line, bool truncated) {
    if (!error_) fail(ParseError::Status::bad, "", "command line too long");
    if (mode_ != Mode::command) return take_error();
    auto trailer = find_literal_trailer(line, truncated);
    if (trailer && trailer->malformed) {
        error_->close_connection = true;
        error_->message = "unreadable literal size";
        return take_error();
    }
    if (trailer && !trailer->sync) {
        // The client sends these octets without waiting: drop them, then the rest of the command.
        literal_remaining_ = trailer->size;
        state_ = literal_remaining_ > 0 ? State::skip_literal : State::skip_line;
        return std::nullopt;
    }
    // A synchronising literal is refused by the error reply itself: the client never sends it
    // (RFC 9051 4.3), so the next line is a new command.
    return take_error();
}

std::optional<Event> Parser::finish_command() {
    if (error_) return take_error();
    CommandText command;
    command.text = text_;
    command.literals.reserve(literals_.size());
    for (Literal& literal : literals_) {
        command.literals.push_back(CommandText::Literal{std::move(literal.data), literal.binary,
                                                        std::shared_ptr<LiteralSink>(std::move(literal.sink)),
                                                        literal.has_nul});
    }
    auto parsed = parse_command(command, limits_, utf8_names_);
    if (!parsed) {
        ParseError error;
        error.tag = tag_.empty() ? "*" : tag_;
        error.message = parsed.error().message;
        reset_command();
        return error;
    }
    Command result = std::move(parsed).value();
    reset_command();
    return result;
}

}  // namespace magpie::imap
