// RFC 5322 3.3 date-time, with the obsolete forms of 4.3 (two- and three-digit years, zone names, military
// zones, comments and white space anywhere) and the common deviations seen in real mail (no weekday, no
// seconds, asctime order, missing zone).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace magpie::mail {

struct DateTime {
    std::int64_t unix_seconds = 0;  // the instant, UTC
    int zone_minutes = 0;           // the writer's offset from UTC (+0100 -> 60)
};

// nullopt when no day, month, year and time can be found or a field is out of range.
std::optional<DateTime> parse_date(std::string_view value);

}  // namespace magpie::mail
