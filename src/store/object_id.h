// The ids clients see for the store's objects, one spelling for every protocol: JMAP's Email, Thread and
// Mailbox ids and IMAP OBJECTID's EMAILID, THREADID and MAILBOXID (RFC 8474: "objectid" is 1 to 255 of
// ALPHA / DIGIT / "_" / "-"), so a client that speaks both sees one object under one name. The numbers are
// the store's own ids (positive, never reused, and an Email's survives COPY and MOVE within its account).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace magpie::store {

inline std::string email_object_id(std::int64_t id) { return "e" + std::to_string(id); }
inline std::string thread_object_id(std::int64_t id) { return "t" + std::to_string(id); }
inline std::string mailbox_object_id(std::int64_t id) { return "m" + std::to_string(id); }

// The number in an object id of that kind ('e', 't' or 'm'); none for anything else (a client's typo,
// another server's id, a number with leading zeros, which no id given out has): such an id names no object
// here. At most 18 digits, so the number always fits.
inline std::optional<std::int64_t> parse_object_id(std::string_view text, char kind) {
    if (text.size() < 2 || text.size() > 19 || text[0] != kind || text[1] == '0') return std::nullopt;
    std::int64_t n = 0;
    for (char c : text.substr(1)) {
        if (c < '0' || c > '9') return std::nullopt;
        n = n * 10 + (c - '0');
    }
    return n;
}

}  // namespace magpie::store
