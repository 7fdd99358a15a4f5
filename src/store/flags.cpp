#include "store/flags.h"

#include <array>
#include <utility>

#include <fmt/format.h>

#include "base/strings.h"

namespace magpie::store {
namespace {

constexpr std::array<std::pair<std::string_view, std::uint32_t>, 5> kSystemFlags{{
    {"\\Seen", flag_seen},
    {"\\Answered", flag_answered},
    {"\\Flagged", flag_flagged},
    {"\\Deleted", flag_deleted},
    {"\\Draft", flag_draft},
}};

// RFC 9051 9: atom-specials are "(" ")" "{" SP CTL list-wildcards quoted-specials resp-specials.
bool is_atom_char(char c) {
    auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte >= 0x7f) return false;
    switch (c) {
        case '(': case ')': case '{': case '%': case '*': case '"': case '\\': case ']': return false;
        default: return true;
    }
}

}  // namespace

Result<FlagSet> parse_flags(const std::vector<std::string>& flags, const FlagLimits& limits) {
    FlagSet set;
    for (const std::string& flag : flags) {
        if (flag.starts_with('\\')) {
            std::uint32_t bit = 0;
            for (const auto& [name, value] : kSystemFlags) {
                if (iequals(flag, name)) bit = value;
            }
            if (bit == 0) return make_error(Errc::invalid_argument, fmt::format("cannot store flag {}", flag));
            set.system |= bit;
            continue;
        }
        if (flag.empty() || flag.size() > limits.max_keyword_bytes) {
            return make_error(Errc::invalid_argument, "keyword empty or too long");
        }
        for (char c : flag) {
            if (!is_atom_char(c)) return make_error(Errc::invalid_argument, "keyword is not an IMAP atom");
        }
        bool duplicate = false;
        for (const std::string& seen : set.keywords) duplicate = duplicate || iequals(seen, flag);
        if (duplicate) continue;
        if (set.keywords.size() >= limits.max_keywords) {
            return make_error(Errc::limit_exceeded, fmt::format("more than {} keywords", limits.max_keywords));
        }
        set.keywords.push_back(flag);
    }
    return set;
}

std::vector<std::string> flag_list(std::uint32_t system, std::string_view keywords_joined) {
    std::vector<std::string> flags;
    for (const auto& [name, value] : kSystemFlags) {
        if ((system & value) != 0) flags.emplace_back(name);
    }
    if (!keywords_joined.empty()) {
        for (std::string_view keyword : split(keywords_joined, ' ')) {
            if (!keyword.empty()) flags.emplace_back(keyword);
        }
    }
    return flags;
}

std::string join_keywords(const std::vector<std::string>& keywords) {
    std::string joined;
    for (const std::string& keyword : keywords) {
        if (!joined.empty()) joined += ' ';
        joined += keyword;
    }
    return joined;
}

namespace {
constexpr std::array<std::pair<std::string_view, std::string_view>, 5> kJmapKeywords{{
    {"\\Seen", "$seen"},
    {"\\Answered", "$answered"},
    {"\\Flagged", "$flagged"},
    {"\\Deleted", "$deleted"},
    {"\\Draft", "$draft"},
}};

}  // namespace

std::string jmap_keyword(std::string_view imap_flag) {
    for (const auto& [flag, keyword] : kJmapKeywords) {
        if (iequals(flag, imap_flag)) return std::string(keyword);
    }
    return to_lower(imap_flag);
}

std::string imap_flag_of_keyword(std::string_view jmap_keyword) {
    for (const auto& [flag, keyword] : kJmapKeywords) {
        if (iequals(keyword, jmap_keyword)) return std::string(flag);
    }
    return to_lower(jmap_keyword);
}

}  // namespace magpie::store
