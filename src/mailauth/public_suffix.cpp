#include "mailauth/public_suffix.h"

#include <fstream>
#include <sstream>

#include "base/strings.h"

namespace magpie::mailauth {

namespace {

std::string normalize(std::string_view domain) {
    std::string out = to_lower(trim(domain));
    while (out.ends_with('.')) out.pop_back();
    return out;
}

}  // namespace

Result<PublicSuffixList> PublicSuffixList::load(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return make_error(Errc::not_found, "cannot read the Public Suffix List " + path);
    std::string text;
    char buffer[65536];
    while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
        text.append(buffer, static_cast<std::size_t>(in.gcount()));
        if (text.size() > kMaxFileOctets) return make_error(Errc::limit_exceeded, path + " is too large");
    }
    if (in.bad()) return make_error(Errc::io_error, "error reading " + path);
    PublicSuffixList list = parse(text);
    if (list.rule_count() == 0) return make_error(Errc::invalid_argument, path + " holds no rules");
    return list;
}

PublicSuffixList PublicSuffixList::parse(std::string_view text) {
    PublicSuffixList list;
    for (std::string_view line : split(text, '\n')) {
        // The format: the rule is the line up to the first white space.
        line = trim(line);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        std::size_t space = line.find_first_of(" \t");
        if (space != std::string_view::npos) line = line.substr(0, space);
        if (line.empty() || line.starts_with("//") || !is_ascii(line)) continue;
        if (line.starts_with("!"))
            list.exceptions_.insert(normalize(line.substr(1)));
        else if (line.starts_with("*."))
            list.wildcards_.insert(normalize(line.substr(2)));
        else
            list.rules_.insert(normalize(line));
    }
    return list;
}

std::string PublicSuffixList::public_suffix(std::string_view domain_in) const {
    std::string domain = normalize(domain_in);
    // Candidates from the longest (the whole name) to the shortest: the first match is the longest rule.
    std::size_t start = 0;
    while (start < domain.size()) {
        std::string_view candidate = std::string_view(domain).substr(start);
        std::size_t dot = candidate.find('.');
        if (exceptions_.count(std::string(candidate)))
            return dot == std::string_view::npos ? std::string() : std::string(candidate.substr(dot + 1));
        if (rules_.count(std::string(candidate))) return std::string(candidate);
        if (dot != std::string_view::npos && wildcards_.count(std::string(candidate.substr(dot + 1))))
            return std::string(candidate);
        if (dot == std::string_view::npos) break;
        start += dot + 1;
    }
    std::size_t last = domain.rfind('.');
    return last == std::string::npos ? domain : domain.substr(last + 1);
}

std::string PublicSuffixList::organizational_domain(std::string_view domain_in) const {
    std::string domain = normalize(domain_in);
    std::string suffix = public_suffix(domain);
    if (suffix.size() >= domain.size()) return domain;
    std::string_view rest = std::string_view(domain).substr(0, domain.size() - suffix.size() - 1);
    std::size_t dot = rest.rfind('.');
    return std::string(dot == std::string_view::npos ? rest : rest.substr(dot + 1)) + "." + suffix;
}

}  // namespace magpie::mailauth
