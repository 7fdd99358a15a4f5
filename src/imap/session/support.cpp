#include "imap/session/support.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>

#include "base/strings.h"

namespace magpie::imap::session_support {
namespace {

constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

}  // namespace

std::string internal_date(std::int64_t unix_seconds) {
    std::time_t t = static_cast<std::time_t>(unix_seconds);
    std::tm tm{};
    gmtime_r(&t, &tm);
    return fmt::format("{:02}-{}-{:04} {:02}:{:02}:{:02} +0000", tm.tm_mday, kMonths[tm.tm_mon],
                       tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

bool has_flag(const std::vector<std::string>& flags, std::string_view flag) {
    return std::ranges::any_of(flags, [&](const std::string& f) { return iequals(f, flag); });
}

bool valid_mailbox_name(std::string_view name, std::size_t max_octets) {
    if (name.empty() || name.size() > max_octets || !is_valid_utf8(name)) return false;
    if (name.front() == '/' || name.back() == '/' || name.find("//") != std::string_view::npos) return false;
    for (char c : name) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f || c == '*' || c == '%') return false;
    }
    return true;
}

std::string canonical_mailbox(std::string_view name) {
    std::string out(name);
    if (out.size() >= 5 && iequals(name.substr(0, 5), "INBOX") && (out.size() == 5 || out[5] == '/'))
        for (std::size_t i = 0; i < 5; ++i) out[i] = ascii_upper(out[i]);
    return out;
}

std::string_view special_use_attribute(store::SpecialUse use) {
    switch (use) {
        case store::SpecialUse::sent:
            return "\\Sent";
        case store::SpecialUse::drafts:
            return "\\Drafts";
        case store::SpecialUse::trash:
            return "\\Trash";
        case store::SpecialUse::junk:
            return "\\Junk";
        case store::SpecialUse::archive:
            return "\\Archive";
        case store::SpecialUse::none:
            return {};
    }
    return {};
}

bool list_match(std::string_view pattern, std::string_view name) {
    // INBOX is case-insensitive (RFC 9051 5.1), also as the first level of a hierarchy.
    const std::string p = canonical_mailbox(pattern);
    const std::string n = canonical_mailbox(name);
    // Iterative wildcard match with backtracking to the last star; "%" backtracks only within a level.
    std::size_t pi = 0, ni = 0;
    std::size_t star_p = std::string::npos, star_n = 0;
    std::size_t pct_p = std::string::npos, pct_n = 0;
    while (ni < n.size()) {
        if (pi < p.size() && p[pi] == '*') {
            star_p = pi++;
            star_n = ni;
            pct_p = std::string::npos;
        } else if (pi < p.size() && p[pi] == '%') {
            pct_p = pi++;
            pct_n = ni;
        } else if (pi < p.size() && p[pi] == n[ni]) {
            ++pi;
            ++ni;
        } else if (pct_p != std::string::npos && n[pct_n] != '/') {
            pi = pct_p + 1;
            ni = ++pct_n;
        } else if (star_p != std::string::npos) {
            pi = star_p + 1;
            ni = ++star_n;
            pct_p = std::string::npos;
        } else {
            return false;
        }
    }
    while (pi < p.size() && (p[pi] == '*' || p[pi] == '%')) ++pi;
    return pi == p.size();
}

std::vector<std::string> parents_of(std::string_view name) {
    std::vector<std::string> out;
    for (std::size_t i = name.find('/'); i != std::string_view::npos; i = name.find('/', i + 1))
        out.emplace_back(name.substr(0, i));
    return out;
}

}  // namespace magpie::imap::session_support
