// imap::client::Command: one client command being written (RFC 9051 2.2.1, 4): the name, then arguments
// each in the form it needs (atom, quoted string, literal, mailbox name in modified UTF-7), so nothing a
// caller passes can end the line early or start another command. A literal splits the command into
// pieces: the client sends the next piece only after the server's "+" unless LITERAL+ allows {n+}.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace magpie::imap::client {

class Command {
public:
    // One stretch of the command: text and then, optionally, a literal's bytes. The text stops where the
    // literal announcement would go: the client writes "{n}" or "{n+}" itself (RFC 7888), knowing what the
    // server allows.
    struct Piece {
        std::string text;
        std::optional<std::string> literal;
    };

    // `name` is an IMAP atom such as "SELECT" or "UID FETCH".
    explicit Command(std::string_view name);

    // Adds an argument as it is ("1:*", "(FLAGS UID)", "\\Seen"): it must hold no CR, LF or NUL, else
    // the command becomes invalid (see error()).
    Command& raw(std::string_view text);
    // The shortest form that carries `value` exactly: an atom, a quoted string, or a literal (for CR, LF,
    // NUL or 8-bit octets, or when longer than 1000 octets).
    Command& astring(std::string_view value);
    // A string that is never an atom (RFC 9051 string): quoted or a literal.
    Command& string(std::string_view value);
    // A literal, always (APPEND's message).
    Command& literal(std::string_view bytes);
    // A mailbox name given in UTF-8: modified UTF-7 (RFC 3501 5.1.3) unless `utf8` (RFC 9051, UTF8=ACCEPT),
    // then an astring. Invalid UTF-8 makes the command invalid.
    Command& mailbox(std::string_view utf8_name, bool utf8 = false);

    // The first problem met while building, if any; an invalid command is never sent.
    const std::optional<Error>& error() const { return error_; }
    const std::string& name() const { return name_; }
    // The pieces after "tag SP": the last piece's text ends the command with CRLF.
    std::vector<Piece> finish(std::string_view tag) const;

private:
    void append_text(std::string_view text);

    std::string name_;
    std::vector<Piece> pieces_;
    std::optional<Error> error_;
};

// True when `value` can go as an atom (RFC 9051 ASTRING-CHAR, non-empty, not "NIL").
bool is_astring_atom(std::string_view value);

}  // namespace magpie::imap::client
