// The Public Suffix List (publicsuffix.org; Debian's `publicsuffix` package) and the organizational domain
// DMARC aligns on (RFC 7489 3.2): the public suffix of a name plus one label. Rules are normal
// ("co.uk"), wildcard ("*.ck") and exception ("!www.ck"); the longest matching rule wins, an exception
// over the wildcard it exempts, and a name no rule matches has its last label as its suffix (the "*"
// default). Names are ASCII (A-labels); the list's UTF-8 rules cannot match them and are skipped.
#pragma once

#include <string>
#include <string_view>
#include <unordered_set>

#include "base/result.h"

namespace magpie::mailauth {

class PublicSuffixList {
public:
    static constexpr const char* kDebianPath = "/usr/share/publicsuffix/public_suffix_list.dat";
    static constexpr std::size_t kMaxFileOctets = 16 << 20;  // the 2023 list is about 230 KiB

    // Reads the list once (at start-up). Errors: not_found / io_error for the file, limit_exceeded above
    // kMaxFileOctets, invalid_argument for a file without any rule.
    static Result<PublicSuffixList> load(const std::string& path = kDebianPath);
    // Rules from the list's text format: one rule a line, "//" comments, blank lines ignored.
    static PublicSuffixList parse(std::string_view text);

    // "example.co.uk" for "mail.example.co.uk" -> "co.uk"; lower case, without a trailing dot.
    std::string public_suffix(std::string_view domain) const;
    // RFC 7489 3.2: the public suffix plus one label; a public suffix itself is its own organizational
    // domain.
    std::string organizational_domain(std::string_view domain) const;

    std::size_t rule_count() const { return rules_.size() + wildcards_.size() + exceptions_.size(); }

private:
    std::unordered_set<std::string> rules_;       // "co.uk"
    std::unordered_set<std::string> wildcards_;   // "*.ck" stored as "ck"
    std::unordered_set<std::string> exceptions_;  // "!www.ck" stored as "www.ck"
};

}  // namespace magpie::mailauth
