// Helpers shared by the session's handler files: IMAP date formats, flag tests, mailbox-name checks and
// the process-wide \Recent registry (RFC 3501 2.3.2). Private to src/imap/session.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "store/store.h"

namespace magpie::imap::session_support {

// RFC 9051 9 date-time for INTERNALDATE: "17-Jul-1996 09:44:25 +0000" (without quotes), in UTC.
std::string internal_date(std::int64_t unix_seconds);


// True when `flags` holds `flag`, compared ASCII case-insensitively (flags and keywords are atoms).
bool has_flag(const std::vector<std::string>& flags, std::string_view flag);

// A mailbox name a client may create or name: UTF-8 without controls, no empty level, no wildcard,
// within max_octets. INBOX/x names a child of INBOX.
bool valid_mailbox_name(std::string_view name, std::size_t max_octets);

// INBOX's children spelled with INBOX in upper case ("inbox/x" is "INBOX/x"), as the store names them.
std::string canonical_mailbox(std::string_view name);

// Every proper prefix "a", "a/b" of "a/b/c" (the superiors CREATE and RENAME make, LIST implies).
std::vector<std::string> parents_of(std::string_view name);

// The RFC 6154 attribute of a special-use role ("\\Sent"), empty for none.
std::string_view special_use_attribute(store::SpecialUse use);

// LIST pattern matching (RFC 9051 6.3.9): "*" matches anything, "%" anything but the delimiter "/".
// INBOX in any case matches INBOX.
bool list_match(std::string_view pattern, std::string_view name);

}  // namespace magpie::imap::session_support
