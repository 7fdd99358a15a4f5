// What delivery stores beside a message so that readers never re-parse it (ARCHITECTURE rule 4): the key
// header fields decoded to UTF-8 and the serialized MIME structure (see structure.h). Every text field is
// valid UTF-8 (raw 8-bit octets outside encoded words are read as UTF-8, else Windows-1252).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "mail/message.h"

namespace magpie::mail {

struct Summary {
    std::string subject;      // RFC 2047 decoded
    std::string from;         // "Name <a@b>, ..." with names decoded
    std::string to;
    std::string cc;
    std::string date;         // the Date field as written, unfolded
    std::string message_id;   // "<id@host>", the first msg-id of Message-ID
    std::string in_reply_to;  // msg-ids separated by one space
    std::string references;   // msg-ids separated by one space
    std::string structure;    // serialize_structure() of the message; empty only if the message is empty
    std::int64_t sent_at = 0; // Date as Unix seconds; 0 when missing or unreadable
};

// Parses the message once and extracts the summary. Never fails: an unreadable field is left empty.
Summary summarize(std::string_view message, const ParseLimits& limits = {});

}  // namespace magpie::mail
