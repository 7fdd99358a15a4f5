// Wall-clock helpers. Protocol cores never read the clock themselves: the IO layer passes times in, so that
// state machines stay deterministic under test.
#pragma once

#include <cstdint>
#include <string>

namespace magpie {

// Seconds since the Unix epoch, now.
std::int64_t unix_now();

// The proleptic Gregorian calendar, for the date parsers of every protocol (RFC 5322, IMAP date-time).
bool is_leap_year(std::int64_t year);
unsigned days_in_month(std::int64_t year, unsigned month);  // month 1..12
// Days from 1970-01-01 to a date (Howard Hinnant's days_from_civil); month 1..12, day 1..31.
std::int64_t days_from_civil(std::int64_t year, unsigned month, unsigned day);

// An RFC 5322 3.3 date-time in UTC, "Mon, 23 Nov 2026 00:36:54 +0000".
std::string rfc5322_date(std::int64_t unix_seconds);

}  // namespace magpie
