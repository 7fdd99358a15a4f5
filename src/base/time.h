// Wall-clock helpers. Protocol cores never read the clock themselves: the IO layer passes times in, so that
// state machines stay deterministic under test.
#pragma once

#include <cstdint>
#include <string>

namespace magpie {

// Seconds since the Unix epoch, now.
std::int64_t unix_now();

// An RFC 5322 3.3 date-time in UTC, "Mon, 23 Nov 2026 00:36:54 +0000".
std::string rfc5322_date(std::int64_t unix_seconds);

}  // namespace magpie
