// Message flags as the store keeps them: the IMAP system flags (RFC 9051 2.3.2) as a bit set, so that
// "unseen" and "deleted" queries are integer tests, and keywords as a list of atoms. Shared by backends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace magpie::store {

enum SystemFlag : std::uint32_t {
    flag_seen = 1u << 0,
    flag_answered = 1u << 1,
    flag_flagged = 1u << 2,
    flag_deleted = 1u << 3,
    flag_draft = 1u << 4,
};

struct FlagSet {
    std::uint32_t system = 0;
    std::vector<std::string> keywords;  // distinct (ASCII case-insensitively), in first-seen order
};

struct FlagLimits {
    std::size_t max_keywords = 64;        // per message
    std::size_t max_keyword_bytes = 128;  // per keyword
};

// Splits flags into system bits and keywords. invalid_argument for an unknown "\\" flag (\Recent included:
// the server sets it, never a client, RFC 3501 2.3.2) or a keyword that is not an IMAP atom;
// limit_exceeded beyond `limits`.
Result<FlagSet> parse_flags(const std::vector<std::string>& flags, const FlagLimits& limits);

// The inverse: system flags first, in a fixed order, then keywords.
std::vector<std::string> flag_list(std::uint32_t system, std::string_view keywords_joined);

// JMAP keywords (RFC 8621 4.1.1) and IMAP flags are one thing: "$seen", "$answered", "$flagged" and
// "$draft" are the system flags, "$deleted" is \Deleted (JMAP has none; Stalwart spells it so), and any other
// keyword is the same atom. JMAP compares keywords case-insensitively, so jmap_keyword lower-cases.
std::string jmap_keyword(std::string_view imap_flag);
std::string imap_flag_of_keyword(std::string_view jmap_keyword);

// Keywords joined by single spaces (atoms contain no space) for storage, and back.
std::string join_keywords(const std::vector<std::string>& keywords);

}  // namespace magpie::store
