// imap::client::ResponseParser: the client side's reader of server responses (RFC 9051 7, RFC 3501 7),
// sans-IO and incremental. The IO loop feeds whatever bytes arrived (any split) and pulls one Response at a
// time: untagged data ("* 3 FETCH (...)", "* LIST ...", "* OK [CAPABILITY ...]"), tagged completions
// ("a1 OK ...") and continuation requests ("+ ..."). Literals ({n} CRLF and n octets, also literal8 ~{n})
// may appear anywhere a string may; their bytes are kept as they are (FETCH BODY[] is a literal).
// Data is kept generic (atoms, numbers, strings, NIL, parenthesised lists); fetch.h gives it types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace magpie::imap::client {

// Bounds on what one response may make the parser hold. Exceeding a framing bound (line, literal,
// response) is fatal: nothing after it can be trusted to start a response, so the connection must close.
struct ResponseLimits {
    // Response text outside literals, per line (a line ends at CRLF or at a literal announcement). SEARCH
    // results are one line: 8 MiB holds about a million message numbers.
    std::size_t max_line_octets = 8u << 20;
    // One literal (a message fetched whole is one).
    std::size_t max_literal_octets = 256u << 20;
    // One response, every line and literal together.
    std::size_t max_response_octets = 512u << 20;
    // Parenthesised lists nested in one response (BODYSTRUCTURE nests two per multipart level).
    std::size_t max_depth = 100;
};

// One data item of a response. Strings from quoted strings and literals are both `string` (bytes as
// sent, quoting undone); a number is an atom of digits (see as_number).
struct Value {
    enum class Kind : std::uint8_t { atom, string, nil, list };
    Kind kind = Kind::nil;
    std::string text;          // atom or string bytes
    std::vector<Value> items;  // list members
    bool literal = false;      // the string came as a literal

    bool is_atom() const { return kind == Kind::atom; }
    bool is_string() const { return kind == Kind::string; }
    bool is_nil() const { return kind == Kind::nil; }
    bool is_list() const { return kind == Kind::list; }
    // An atom or string's text; "" for NIL and lists (RFC 9051 nstring: NIL reads as absent).
    std::string_view str() const {
        return kind == Kind::atom || kind == Kind::string ? text : std::string_view{};
    }
    // The atom as a number (RFC 9051 number64), or nullopt.
    std::optional<std::uint64_t> as_number() const;
};

// A status response's text: an optional response code ("[CAPABILITY IMAP4rev1 ...]") and human text.
struct ResponseText {
    std::string code;       // the code's name, upper case, e.g. "APPENDUID"; empty for none
    std::string code_args;  // what follows the name up to "]", as sent, e.g. "38505 3955"
    std::string text;
};

enum class Status : std::uint8_t { ok, no, bad, bye, preauth };

// "* ..." data. Status responses (OK/NO/BAD/BYE/PREAUTH) carry `status` and `text`; message data
// ("* 3 EXISTS", "* 3 FETCH (...)") carries `number`; the rest is in `data`, in order.
struct Untagged {
    std::string name;  // upper case: "FETCH", "LIST", "CAPABILITY", "OK", ...
    std::optional<std::uint32_t> number;
    std::vector<Value> data;
    std::optional<Status> status;
    ResponseText text;
};

// "tag OK|NO|BAD resp-text": the end of the command with that tag.
struct Tagged {
    std::string tag;
    Status status = Status::bad;
    ResponseText text;
};

// "+ text": the server is ready for a literal's bytes (or a SASL challenge, base64 in `text`).
struct Continuation {
    std::string text;
};

// A response that could not be read. Not fatal: the parser skipped the whole response (its framing held)
// and goes on with the next. Fatal ones are reported by `fatal()` instead.
struct Malformed {
    std::string reason;
    std::string line;  // the response's first line, at most 200 octets, for a log
};

using Response = std::variant<Untagged, Tagged, Continuation, Malformed>;

class ResponseParser {
public:
    explicit ResponseParser(ResponseLimits limits = {});

    // Bytes from the server; any split.
    void feed(std::string_view bytes);
    // The next complete response, or nullopt when more bytes are needed (or after a fatal error).
    std::optional<Response> next();
    // Why reading stopped for good (a bound passed, an unreadable literal size); the connection must close.
    const std::optional<std::string>& fatal() const { return fatal_; }
    // Octets held: received but not yet returned as responses.
    std::size_t buffered() const { return buffer_.size() - consumed_; }

private:
    // Finds the end of the next response from scan_, keeping state across feeds so a large response is
    // scanned once. True when [consumed_, response_end_) is one whole response.
    bool frame();

    ResponseLimits limits_;
    std::string buffer_;
    std::size_t consumed_ = 0;    // responses before this offset were returned
    std::size_t scan_ = 0;        // where framing resumes
    std::size_t line_start_ = 0;  // start of the line being framed
    std::size_t response_end_ = 0;
    std::optional<std::string> fatal_;
};

// Parses one framed response (CRLF or LF line ends, literals inline). Exposed for tests and the fuzzer.
Response parse_response(std::string_view response, const ResponseLimits& limits = {});

// The response code args as words ("IMAP4rev1 IDLE LITERAL+"), upper-cased when `upper`.
std::vector<std::string> split_words(std::string_view text, bool upper);

}  // namespace magpie::imap::client
