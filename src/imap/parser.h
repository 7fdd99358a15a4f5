// imap::Parser: the sans-IO, incremental IMAP command parser. The IO loop feeds whatever bytes arrived (any
// split, one byte at a time too) and pulls events: complete typed commands, requests to write the literal
// continuation "+", SASL response lines, IDLE's DONE, and parse errors ready to become "tag BAD ..." replies.
// Every input is bounded by Limits; no input makes it crash, hang or hold more than the limits allow.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "imap/command.h"

namespace magpie::imap {

struct Limits {
    // Command text without its literals, summed over all the lines of one command.
    std::size_t max_line_octets = 64 * 1024;
    // One literal, and all literals of one command together: the APPENDLIMIT (RFC 7889).
    std::size_t max_literal_octets = 64 * 1024 * 1024;
    // Largest non-synchronising literal. At or above max_literal_octets (the default) the session offers
    // LITERAL+ (RFC 7888), which some clients insist on; 4096 is LITERAL- (RFC 7888 4). Either way a
    // non-synchronising literal over a limit is read and dropped, never held, then refused [TOOBIG].
    std::size_t max_non_sync_literal_octets = std::numeric_limits<std::size_t>::max();
    // Parentheses and NOT/OR operands nested in one command.
    std::size_t max_nesting_depth = 32;
    // Comma-separated elements of one sequence set.
    std::size_t max_sequence_set_ranges = 1024;
    // Search keys in one SEARCH, counted at every level of the tree.
    std::size_t max_search_keys = 256;
};

// The IO loop writes continuation_line() before the client may send a synchronising literal.
struct ContinuationRequest {
    static constexpr std::string_view line = "+ Ready for literal data\r\n";
};

// One client line while a SASL exchange runs (after expect_sasl_response()): base64 text, or "*" to cancel.
struct SaslResponse {
    std::string text;
};

// The DONE line that ends IDLE (after expect_idle_done()).
struct IdleDone {};

// A command that cannot run. The reply is "<tag> BAD [code] message" (or NO, which RFC 7889 asks for an
// APPEND over the APPENDLIMIT); tag is "*" when the line had no readable tag. close_connection is set
// when the parser cannot find where the next command starts (the IO loop then sends BYE and closes).
struct ParseError {
    enum class Status { bad, no };
    std::string tag = "*";
    Status status = Status::bad;
    std::string code;  // response code without brackets, e.g. "TOOBIG"; empty for none
    std::string message;
    bool close_connection = false;
};

using Event = std::variant<Command, ContinuationRequest, SaslResponse, IdleDone, ParseError>;

class Parser {
public:
    explicit Parser(Limits limits = {});

    // Appends bytes from the client. Nothing is parsed until next() is called.
    void feed(std::string_view bytes);

    // The next event, or nullopt when more bytes are needed. Returns at most one command per call, so the
    // caller can switch modes (SASL, IDLE, UTF-8 names) between a command and the bytes after it.
    std::optional<Event> next();

    // The next line is a SASL response (RFC 9051 6.2.2), not a command. Call after writing "+ challenge".
    // A response line over max_line_octets yields a ParseError tagged "*"; the session then ends the
    // exchange with its own tagged reply.
    void expect_sasl_response();

    // The next line must be DONE (RFC 2177). Any other line yields a ParseError and ends the IDLE.
    void expect_idle_done();

    // APPEND literals of at least `min_octets` go to a sink from `open(size, binary)` as they arrive, never
    // into memory (Append::spooled); when `open` returns nullptr the literal is held in memory as before.
    using SinkFactory = std::function<std::unique_ptr<LiteralSink>(std::uint64_t size, bool binary)>;
    void spool_appends(std::size_t min_octets, SinkFactory open) {
        spool_min_octets_ = min_octets;
        open_sink_ = std::move(open);
    }

    // Mailbox names are UTF-8 (after ENABLE IMAP4rev2 or UTF8=ACCEPT) rather than modified UTF-7.
    void set_utf8_mailbox_names(bool on) { utf8_names_ = on; }

    // What the session advertises comes from here: APPENDLIMIT = max_literal_octets, and LITERAL+ when
    // max_non_sync_literal_octets == max_literal_octets, else LITERAL-.
    const Limits& limits() const { return limits_; }

    // Bytes fed but not yet consumed plus the command being assembled; the IO loop stops reading when
    // this grows (a client pipelining faster than commands are served).
    std::size_t buffered_octets() const;
    // Octets of buffer capacity the parser holds (input, command text, dropped line tail): after a large
    // literal or a long line has been consumed, at most about kKeptCapacity each (issue 17: an idle
    // connection holds no big buffer).
    std::size_t held_octets() const;
    static constexpr std::size_t kKeptCapacity = 64 * 1024;

private:
    enum class Mode { command, sasl, idle };
    enum class State { line, literal, skip_literal, skip_line };

    struct Literal {
        std::string data;
        bool binary = false;
        std::unique_ptr<LiteralSink> sink;  // instead of data, for a spooled APPEND literal
        bool has_nul = false;
    };

    std::optional<Event> scan();  // next() before release_consumed()
    void release_consumed();
    std::optional<Event> on_line(std::string_view line);
    std::optional<Event> on_command_line(std::string_view line);
    std::optional<Event> on_discarded_line(std::string_view line, bool truncated);
    std::optional<Event> finish_command();
    void fail(ParseError::Status status, std::string code, std::string message);
    void remember_tag(std::string_view text, bool complete);
    ParseError take_error();
    void reset_command();
    void compact();

    Limits limits_;
    bool utf8_names_ = false;
    std::size_t spool_min_octets_ = 0;
    SinkFactory open_sink_;
    Mode mode_ = Mode::command;
    State state_ = State::line;

    std::string input_;
    std::size_t pos_ = 0;      // first unconsumed octet of input_
    std::size_t scanned_ = 0;  // input_ before this holds no LF after pos_

    // The command being assembled: its text with a NUL where each literal stood, and the literals.
    std::string text_;
    std::vector<Literal> literals_;
    std::size_t literal_octets_ = 0;
    std::size_t literal_remaining_ = 0;
    std::size_t line_octets_ = 0;  // the command's lines as sent (literal announcements included)
    std::string tag_;
    bool append_ = false;  // the command is APPEND: an oversized literal gets NO [TOOBIG]

    // Set once the command is known to fail: the rest of it is read and dropped, then the error is yielded.
    std::optional<ParseError> error_;
    std::string tail_;  // the last octets of a line being dropped, to see a literal announced at its end
    bool tail_truncated_ = false;  // tail_ lost the line's beginning
};

}  // namespace magpie::imap
