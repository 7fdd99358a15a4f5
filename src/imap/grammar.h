// The command grammar of RFC 9051 9 (and the extensions in README.md) over one complete command: its text,
// with a NUL octet where each literal stood (NUL cannot occur in IMAP command text), and the literals in
// order. imap::Parser frames commands and calls this; tests may call it directly.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "imap/command.h"
#include "imap/parser.h"

namespace magpie::imap {

struct CommandText {
    std::string_view text;
    struct Literal {
        std::string data;
        bool binary = false;  // sent as literal8 "~{n}"
        std::shared_ptr<LiteralSink> sink;  // the octets went here instead of `data` (APPEND only)
        bool has_nul = false;               // with a sink: a NUL octet was among them
    };
    std::vector<Literal> literals;
};

// The error message is fit for "tag BAD <message>". Literal data may be moved out of command (APPEND's
// message is not copied).
Result<Command> parse_command(CommandText& command, const Limits& limits, bool utf8_mailbox_names);

// tag = 1*<any ASTRING-CHAR except "+"> (RFC 9051 9).
bool is_valid_tag(std::string_view tag);

}  // namespace magpie::imap
