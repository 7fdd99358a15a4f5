#include "mail/date.h"

#include <array>
#include <string>
#include <vector>

#include "base/strings.h"
#include "base/time.h"

namespace magpie::mail {
namespace {

int month_number(std::string_view word) {
    static constexpr std::array<std::string_view, 12> names{"jan", "feb", "mar", "apr", "may", "jun",
                                                            "jul", "aug", "sep", "oct", "nov", "dec"};
    if (word.size() < 3) return 0;
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (istarts_with(word, names[i])) return static_cast<int>(i) + 1;
    }
    return 0;
}

bool is_weekday(std::string_view word) {
    static constexpr std::array<std::string_view, 7> names{"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    if (word.size() < 3) return false;
    for (auto n : names) {
        if (istarts_with(word, n)) return true;
    }
    return false;
}

// RFC 5322 4.3 obs-zone. Military zones are "-0000" (unknown) because RFC 822 got their signs wrong.
std::optional<int> named_zone(std::string_view word) {
    struct Zone {
        std::string_view name;
        int minutes;
    };
    static constexpr std::array<Zone, 11> zones{{{"UT", 0}, {"UTC", 0}, {"GMT", 0}, {"Z", 0},
                                                 {"EST", -300}, {"EDT", -240}, {"CST", -360}, {"CDT", -300},
                                                 {"MST", -420}, {"MDT", -360}, {"PST", -480}}};
    if (iequals(word, "PDT")) return -420;
    for (const auto& z : zones) {
        if (iequals(word, z.name)) return z.minutes;
    }
    if (word.size() == 1 && ((word[0] >= 'A' && word[0] <= 'I') || (word[0] >= 'K' && word[0] <= 'Z') ||
                             (word[0] >= 'a' && word[0] <= 'i') || (word[0] >= 'k' && word[0] <= 'z'))) {
        return 0;
    }
    return std::nullopt;
}

bool all_digits(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
    }
    return true;
}

// Splits into words, dropping comments (RFC 5322 3.2.2, nested) and the separators ',' and white space.
std::vector<std::string> words_of(std::string_view value) {
    std::vector<std::string> words;
    std::string current;
    int depth = 0;
    auto finish = [&] {
        if (!current.empty()) words.push_back(std::move(current));
        current.clear();
    };
    for (char c : value) {
        if (depth > 0) {
            if (c == '(') ++depth;
            if (c == ')') --depth;
            continue;
        }
        if (c == '(') {
            finish();
            depth = 1;
        } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ',') {
            finish();
        } else if ((c == '+' || c == '-') && !current.empty() && current.find(':') != std::string::npos) {
            finish();  // "10:00:00+0100"
            current.push_back(c);
        } else {
            current.push_back(c);
        }
        if (words.size() > 16) break;  // a date has at most 7 words; anything longer is not a date
    }
    finish();
    return words;
}

}  // namespace

std::optional<DateTime> parse_date(std::string_view value) {
    int day = -1;
    int month = 0;
    std::int64_t year = -1;
    int hour = -1, minute = -1, second = 0;
    std::optional<int> zone;
    std::vector<std::string> numbers;
    for (const std::string& w : words_of(value)) {
        if (hour < 0 && w.find(':') != std::string::npos) {
            auto parts = split(w, ':');
            if (parts.size() < 2 || parts.size() > 3) return std::nullopt;
            auto h = parse_uint(parts[0]);
            auto m = parse_uint(parts[1]);
            auto s = parts.size() == 3 ? parse_uint(parts[2]) : std::optional<std::uint64_t>(0);
            if (!h || !m || !s || *h > 23 || *m > 59 || *s > 60) return std::nullopt;
            hour = static_cast<int>(*h);
            minute = static_cast<int>(*m);
            second = static_cast<int>(std::min<std::uint64_t>(*s, 59));  // leap second, RFC 5322 3.3
        } else if ((w[0] == '+' || w[0] == '-') && w.size() == 5 && all_digits(w.substr(1))) {
            int hh = (w[1] - '0') * 10 + (w[2] - '0');
            int mm = (w[3] - '0') * 10 + (w[4] - '0');
            if (mm > 59) return std::nullopt;
            zone = (w[0] == '-' ? -1 : 1) * (hh * 60 + mm);
        } else if (all_digits(w)) {
            numbers.push_back(w);
        } else if (int m = month_number(w); m != 0 && month == 0 && !is_weekday(w)) {
            month = m;
        } else if (auto z = named_zone(w); z && hour >= 0 && !zone) {
            zone = *z;
        } else if (is_weekday(w)) {
            continue;
        }
        // Anything else (a stray word) is ignored.
    }
    // The day is the first number that fits; the year is the other (4.3: 2-digit and 3-digit years).
    for (const std::string& n : numbers) {
        auto v = parse_uint(n);
        if (!v || n.size() > 9) return std::nullopt;
        if (day < 0 && n.size() <= 2 && *v >= 1 && *v <= 31) {
            day = static_cast<int>(*v);
        } else if (year < 0) {
            year = static_cast<std::int64_t>(*v);
            if (n.size() == 2) year += year < 50 ? 2000 : 1900;
            else if (n.size() == 3) year += 1900;
        }
    }
    if (day < 0 || month == 0 || year < 1900 || year > 9999 || hour < 0) return std::nullopt;
    if (static_cast<unsigned>(day) > days_in_month(year, static_cast<unsigned>(month))) return std::nullopt;
    DateTime out;
    out.zone_minutes = zone.value_or(0);
    out.unix_seconds = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * 86400 +
                       hour * 3600 + minute * 60 + second - out.zone_minutes * 60;
    return out;
}

}  // namespace magpie::mail
