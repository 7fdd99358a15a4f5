#include "mailauth/spf.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <optional>

#include "base/strings.h"

namespace magpie::mailauth {

namespace {

// A client address; IPv4 (and IPv4-mapped IPv6, RFC 7208 5) in the first four octets.
struct Ip {
    bool v6 = false;
    std::array<unsigned char, 16> bytes{};
};

std::optional<Ip> parse_ip(std::string_view text, bool want_v6) {
    std::string s(text);
    Ip ip;
    if (!want_v6 && inet_pton(AF_INET, s.c_str(), ip.bytes.data()) == 1) return ip;
    if (want_v6 && inet_pton(AF_INET6, s.c_str(), ip.bytes.data()) == 1) {
        ip.v6 = true;
        return ip;
    }
    return std::nullopt;
}

std::optional<Ip> parse_client_ip(std::string_view text) {
    if (auto v4 = parse_ip(text, false)) return v4;
    auto v6 = parse_ip(text, true);
    if (!v6) return std::nullopt;
    static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::equal(kMapped, kMapped + 12, v6->bytes.begin())) {
        Ip v4;
        std::copy(v6->bytes.begin() + 12, v6->bytes.end(), v4.bytes.begin());
        return v4;
    }
    return v6;
}

bool in_network(const Ip& ip, const Ip& network, int prefix) {
    if (ip.v6 != network.v6) return false;
    for (int bit = 0; bit < prefix; ++bit) {
        int byte = bit / 8, mask = 0x80 >> (bit % 8);
        if ((ip.bytes[byte] & mask) != (network.bytes[byte] & mask)) return false;
    }
    return true;
}

std::string ip_readable(const Ip& ip) {
    char out[INET6_ADDRSTRLEN];
    inet_ntop(ip.v6 ? AF_INET6 : AF_INET, ip.bytes.data(), out, sizeof out);
    return out;
}

// %{i}: dotted quad, or 32 dot-separated nibbles for IPv6 (7.3).
std::string ip_macro(const Ip& ip) {
    if (!ip.v6) return ip_readable(ip);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (int i = 0; i < 16; ++i) {
        if (i) out += '.';
        out += kHex[ip.bytes[i] >> 4];
        out += '.';
        out += kHex[ip.bytes[i] & 0xf];
    }
    return out;
}

enum class Mechanism { all, include, a, mx, ptr, ip4, ip6, exists };

struct Term {
    char qualifier = '+';
    Mechanism mechanism = Mechanism::all;
    std::string domain_spec;  // empty: the current domain
    int cidr4 = 32;
    int cidr6 = 128;
    Ip network;
    std::string text;  // as written, for SpfOutcome::mechanism
};

struct Record {
    std::vector<Term> terms;
    std::optional<std::string> redirect;
    std::optional<std::string> exp;
};

Error permerror(std::string message) {
    return make_error(Errc::invalid_argument, std::move(message));
}

bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// Checks macro-string syntax (7.1) without expanding.
Result<void> check_macro_string(std::string_view text, bool explanation) {
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c != '%') {
            if ((static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e) &&
                !(explanation && c == ' '))
                return permerror("bad character in macro-string");
            continue;
        }
        if (i + 1 >= text.size()) return permerror("'%' at the end of a macro-string");
        char next = text[++i];
        if (next == '%' || next == '_' || next == '-') continue;
        if (next != '{') return permerror("bad macro after '%'");
        std::size_t close = text.find('}', i);
        if (close == std::string_view::npos) return permerror("unterminated macro");
        std::string_view body = text.substr(i + 1, close - i - 1);
        if (body.empty()) return permerror("empty macro");
        char letter = ascii_lower(body[0]);
        if (std::string_view("slodiphvcrt").find(letter) == std::string_view::npos)
            return permerror("unknown macro letter");
        if (!explanation && (letter == 'c' || letter == 'r' || letter == 't'))
            return permerror("macro %{" + std::string(1, letter) + "} is only for explanations");
        std::size_t j = 1;
        std::size_t digits_start = j;
        while (j < body.size() && is_digit(body[j])) ++j;
        if (j > digits_start && parse_uint(body.substr(digits_start, j - digits_start)).value_or(0) == 0)
            return permerror("macro transformer of zero parts");
        if (j < body.size() && ascii_lower(body[j]) == 'r') ++j;
        for (; j < body.size(); ++j)
            if (std::string_view(".-+,/_=").find(body[j]) == std::string_view::npos)
                return permerror("bad macro delimiter");
        i = close;
    }
    return {};
}

// domain-spec (4.8, 7.1): a macro-string ending in a macro or a top label with a letter in it.
Result<void> check_domain_spec(std::string_view spec) {
    if (spec.empty()) return permerror("empty domain-spec");
    MAGPIE_TRY(check_macro_string(spec, false));
    std::string_view s = spec;
    if (s.back() == '.') s.remove_suffix(1);
    if (!s.empty() && s.back() == '}') return {};
    std::size_t dot = s.rfind('.');
    if (dot == std::string_view::npos) return permerror("domain-spec without a top label");
    std::string_view top = s.substr(dot + 1);
    bool letter = false;
    for (char c : top) {
        if (is_alpha(c))
            letter = true;
        else if (!is_digit(c) && c != '-')
            return permerror("bad top label in domain-spec");
    }
    if (top.empty() || !letter || top.front() == '-' || top.back() == '-')
        return permerror("bad top label in domain-spec");
    return {};
}

// "/24", "//64", "/24//64" at the end of an a/mx argument (5.6 dual-cidr-length).
Result<void> split_cidr(std::string& arg, Term& term, bool allow_v6) {
    auto take = [&](int& out, int max) -> Result<void> {
        std::size_t slash = arg.rfind('/');
        std::string_view digits = std::string_view(arg).substr(slash + 1);
        auto value = parse_uint(digits);
        if (!value || *value > static_cast<std::uint64_t>(max) || (digits.size() > 1 && digits[0] == '0'))
            return permerror("bad CIDR length");
        out = static_cast<int>(*value);
        arg.resize(slash);
        return {};
    };
    auto ends_with_number_after = [&](std::string_view marker) {
        std::size_t pos = arg.rfind(marker);
        if (pos == std::string::npos) return false;
        std::string_view digits = std::string_view(arg).substr(pos + marker.size());
        if (digits.empty()) return false;
        for (char c : digits)
            if (!is_digit(c)) return false;
        return true;
    };
    if (allow_v6 && ends_with_number_after("//")) {
        MAGPIE_TRY(take(term.cidr6, 128));
        arg.pop_back();  // the first '/' of "//"
    }
    if (ends_with_number_after("/")) MAGPIE_TRY(take(term.cidr4, 32));
    if (!arg.empty() && arg.back() == '/') return permerror("bad CIDR length");
    return {};
}

Result<Term> parse_mechanism(std::string_view text) {
    Term term;
    term.text = std::string(text);
    if (!text.empty() && std::string_view("+-~?").find(text[0]) != std::string_view::npos) {
        term.qualifier = text[0];
        text.remove_prefix(1);
    }
    std::size_t end = text.find_first_of(":/");
    std::string name = to_lower(text.substr(0, end));
    std::string rest = end == std::string_view::npos ? std::string() : std::string(text.substr(end));
    bool has_arg = !rest.empty() && rest[0] == ':';
    std::string arg = has_arg ? rest.substr(1) : rest;  // "/24" stays as a CIDR suffix

    if (name == "all") {
        if (!rest.empty()) return permerror("'all' takes no argument");
        term.mechanism = Mechanism::all;
    } else if (name == "include" || name == "exists") {
        if (!has_arg) return permerror(name + " needs a domain");
        MAGPIE_TRY(check_domain_spec(arg));
        term.mechanism = name == "include" ? Mechanism::include : Mechanism::exists;
        term.domain_spec = arg;
    } else if (name == "a" || name == "mx") {
        term.mechanism = name == "a" ? Mechanism::a : Mechanism::mx;
        MAGPIE_TRY(split_cidr(arg, term, true));
        if (has_arg)
            MAGPIE_TRY(check_domain_spec(arg));
        else if (!arg.empty())
            return permerror("bad argument to " + name);
        term.domain_spec = arg;
    } else if (name == "ptr") {
        term.mechanism = Mechanism::ptr;
        if (!rest.empty() && !has_arg) return permerror("bad argument to ptr");
        if (has_arg) MAGPIE_TRY(check_domain_spec(arg));
        term.domain_spec = arg;
    } else if (name == "ip4" || name == "ip6") {
        bool v6 = name == "ip6";
        term.mechanism = v6 ? Mechanism::ip6 : Mechanism::ip4;
        if (!has_arg) return permerror(name + " needs an address");
        std::size_t slash = arg.find('/');
        if (slash != std::string::npos) {
            std::string_view digits = std::string_view(arg).substr(slash + 1);
            auto value = parse_uint(digits);
            if (!value || *value > (v6 ? 128u : 32u) || (digits.size() > 1 && digits[0] == '0'))
                return permerror("bad CIDR length");
            (v6 ? term.cidr6 : term.cidr4) = static_cast<int>(*value);
            arg.resize(slash);
        }
        auto ip = parse_ip(arg, v6);
        if (!ip) return permerror("bad address in " + name);
        term.network = *ip;
    } else {
        return permerror("unknown mechanism " + name);
    }
    return term;
}

bool is_modifier_name(std::string_view name) {
    if (name.empty() || !is_alpha(name[0])) return false;
    for (char c : name)
        if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '_' && c != '.') return false;
    return true;
}

// RFC 7208 4.6: the whole record is checked before anything is evaluated.
Result<Record> parse_record(std::string_view text) {
    Record record;
    auto pieces = split(text, ' ');
    for (std::size_t i = 1; i < pieces.size(); ++i) {  // pieces[0] is "v=spf1"
        std::string_view piece = pieces[i];
        if (piece.empty()) continue;
        std::size_t eq = piece.find('=');
        std::size_t colon_or_slash = piece.find_first_of(":/");
        if (eq != std::string_view::npos && eq < colon_or_slash) {
            std::string name = to_lower(piece.substr(0, eq));
            if (!is_modifier_name(name)) return permerror("bad modifier name");
            std::string value(piece.substr(eq + 1));
            if (name == "redirect" || name == "exp") {
                auto& slot = name == "redirect" ? record.redirect : record.exp;
                if (slot) return permerror(name + "= given twice");
                MAGPIE_TRY(check_domain_spec(value));
                slot = value;
            } else {
                MAGPIE_TRY(check_macro_string(value, false));  // unknown modifiers: ignored, but well-formed
            }
            continue;
        }
        auto term = parse_mechanism(piece);
        if (!term) return term.error();
        record.terms.push_back(std::move(*term));
    }
    return record;
}

bool is_spf_record(std::string_view txt) {
    return istarts_with(txt, "v=spf1") && (txt.size() == 6 || txt[6] == ' ');
}

// 4.3: names check_host() can look up at all. Anything else is "none".
bool is_valid_domain(std::string_view domain) {
    if (domain.empty() || domain.size() > 253 || domain.find('.') == std::string_view::npos) return false;
    for (std::string_view label : split(domain, '.')) {
        if (label.empty() || label.size() > 63) return false;
        for (char c : label)
            if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '_') return false;
    }
    return true;
}

struct Evaluation {
    SpfResult result = SpfResult::neutral;
    std::string mechanism;
    std::string reason;
    std::string explanation;
};

class Checker {
public:
    Checker(Dns& dns, const SpfRequest& request, const SpfLimits& limits, Ip ip)
        : dns_(dns), request_(request), limits_(limits), ip_(ip) {
        std::string sender = request.sender;
        if (sender.empty()) sender = "postmaster@" + request.helo;
        std::size_t at = sender.rfind('@');
        local_ = at == std::string::npos || at == 0 ? "postmaster" : sender.substr(0, at);
        sender_domain_ = at == std::string::npos ? sender : sender.substr(at + 1);
        sender_ = local_ + "@" + sender_domain_;
    }

    Evaluation check(std::string_view domain);
    Result<std::string> expand(std::string_view domain, std::string_view text, bool explanation);
    int dns_mechanisms = 0;
    int void_lookups = 0;

private:
    Result<std::optional<std::string>> fetch_record(std::string_view domain);
    Result<bool> matches(const Term& term, std::string_view domain);
    Result<void> count_dns_mechanism();
    Result<std::vector<std::string>> lookup_counting_void(RecordType type, std::string_view name);
    Result<bool> address_matches(std::string_view host, int cidr4, int cidr6);
    std::vector<std::string> validated_names(std::string_view domain);
    Result<std::string> target(const Term& term, std::string_view domain);
    std::string explain(const Record& record, std::string_view domain);

    Dns& dns_;
    const SpfRequest& request_;
    const SpfLimits& limits_;
    Ip ip_;
    std::string sender_, local_, sender_domain_;
};

Result<void> Checker::count_dns_mechanism() {
    if (++dns_mechanisms > limits_.max_dns_mechanisms)
        return permerror("more than " + std::to_string(limits_.max_dns_mechanisms) + " DNS lookups");
    return {};
}

// A DNS error other than NXDOMAIN is temporary (Errc::unavailable), NXDOMAIN and NODATA count as void.
Result<std::vector<std::string>> Checker::lookup_counting_void(RecordType type, std::string_view name) {
    auto answer = dns_.lookup(type, name);
    if (!answer && answer.error().code != Errc::not_found && answer.error().code != Errc::invalid_argument)
        return make_error(Errc::unavailable, answer.error().message);
    if (!answer || answer->empty()) {
        if (++void_lookups > limits_.max_void_lookups)
            return permerror("more than " + std::to_string(limits_.max_void_lookups) + " void lookups");
        return std::vector<std::string>{};
    }
    return std::move(*answer);
}

Result<std::optional<std::string>> Checker::fetch_record(std::string_view domain) {
    auto answer = dns_.lookup(RecordType::txt, domain);
    if (!answer) {
        if (answer.error().code == Errc::not_found || answer.error().code == Errc::invalid_argument)
            return std::optional<std::string>();
        return make_error(Errc::unavailable, answer.error().message);
    }
    std::optional<std::string> found;
    for (const auto& txt : *answer) {
        if (!is_spf_record(txt)) continue;
        if (found) return permerror("more than one SPF record at " + std::string(domain));
        if (txt.size() > limits_.max_record_octets) return permerror("SPF record too long");
        found = txt;
    }
    return found;
}

Result<std::string> Checker::target(const Term& term, std::string_view domain) {
    if (term.domain_spec.empty()) return std::string(domain);
    return expand(domain, term.domain_spec, false);
}

Result<bool> Checker::address_matches(std::string_view host, int cidr4, int cidr6) {
    auto addresses = dns_.lookup(ip_.v6 ? RecordType::aaaa : RecordType::a, host);
    if (!addresses) {
        if (addresses.error().code == Errc::not_found || addresses.error().code == Errc::invalid_argument)
            return false;
        return make_error(Errc::unavailable, addresses.error().message);
    }
    for (const auto& text : *addresses) {
        auto address = parse_ip(text, ip_.v6);
        if (address && in_network(ip_, *address, ip_.v6 ? cidr6 : cidr4)) return true;
    }
    return false;
}

// 5.5: PTR names of the client whose forward lookup gives the client's address back.
std::vector<std::string> Checker::validated_names(std::string_view domain) {
    std::vector<std::string> names;
    auto ptr = dns_.lookup(RecordType::ptr, ip_readable(ip_));
    if (!ptr) return names;
    std::vector<std::string> candidates = *ptr;
    // Names within the domain first, so the limit cuts the least useful ones.
    std::stable_partition(candidates.begin(), candidates.end(), [&](const std::string& name) {
        return iequals(name, domain) ||
               (name.size() > domain.size() && name.ends_with(std::string(".") += domain));
    });
    for (std::size_t i = 0; i < candidates.size() && i < static_cast<std::size_t>(limits_.max_ptr_names);
         ++i) {
        auto match = address_matches(candidates[i], 32, 128);
        if (match && *match) names.push_back(to_lower(candidates[i]));
    }
    return names;
}

Result<bool> Checker::matches(const Term& term, std::string_view domain) {
    switch (term.mechanism) {
        case Mechanism::all:
            return true;
        case Mechanism::ip4:
        case Mechanism::ip6:
            return in_network(ip_, term.network, term.mechanism == Mechanism::ip6 ? term.cidr6 : term.cidr4);
        case Mechanism::include: {
            MAGPIE_TRY(count_dns_mechanism());
            auto name = target(term, domain);
            if (!name) return name.error();
            Evaluation inner = check(*name);
            switch (inner.result) {
                case SpfResult::pass:
                    return true;
                case SpfResult::fail:
                case SpfResult::softfail:
                case SpfResult::neutral:
                    return false;
                case SpfResult::temperror:
                    return make_error(Errc::unavailable, inner.reason);
                case SpfResult::none:
                    return permerror("included domain " + *name + " has no SPF record");
                case SpfResult::permerror:
                    return permerror(inner.reason);
            }
            return false;
        }
        case Mechanism::a: {
            MAGPIE_TRY(count_dns_mechanism());
            auto name = target(term, domain);
            if (!name) return name.error();
            auto addresses = lookup_counting_void(ip_.v6 ? RecordType::aaaa : RecordType::a, *name);
            if (!addresses) return addresses.error();
            for (const auto& text : *addresses) {
                auto address = parse_ip(text, ip_.v6);
                if (address && in_network(ip_, *address, ip_.v6 ? term.cidr6 : term.cidr4)) return true;
            }
            return false;
        }
        case Mechanism::mx: {
            MAGPIE_TRY(count_dns_mechanism());
            auto name = target(term, domain);
            if (!name) return name.error();
            auto hosts = lookup_counting_void(RecordType::mx, *name);
            if (!hosts) return hosts.error();
            if (hosts->size() > static_cast<std::size_t>(limits_.max_mx_names))
                return permerror("more than " + std::to_string(limits_.max_mx_names) + " MX hosts");
            for (const auto& host : *hosts) {
                if (host.empty()) continue;  // a null MX has no address
                auto match = address_matches(host, term.cidr4, term.cidr6);
                if (!match) return match.error();
                if (*match) return true;
            }
            return false;
        }
        case Mechanism::ptr: {
            MAGPIE_TRY(count_dns_mechanism());
            auto name = target(term, domain);
            if (!name) return name.error();
            for (const auto& validated : validated_names(*name))
                if (iequals(validated, *name) ||
                    (validated.size() > name->size() && validated.ends_with("." + to_lower(*name))))
                    return true;
            return false;
        }
        case Mechanism::exists: {
            MAGPIE_TRY(count_dns_mechanism());
            auto name = target(term, domain);
            if (!name) return name.error();
            auto addresses = lookup_counting_void(RecordType::a, *name);  // always A (5.7)
            if (!addresses) return addresses.error();
            return !addresses->empty();
        }
    }
    return false;
}

// 6.2: the explanation is best effort; any failure just leaves it out.
std::string Checker::explain(const Record& record, std::string_view domain) {
    if (!record.exp) return {};
    auto name = expand(domain, *record.exp, false);
    if (!name) return {};
    auto answer = dns_.lookup(RecordType::txt, *name);
    if (!answer || answer->size() != 1) return {};
    if (!check_macro_string((*answer)[0], true)) return {};
    auto text = expand(domain, (*answer)[0], true);
    if (!text || !is_ascii(*text)) return {};
    return *text;
}

Evaluation Checker::check(std::string_view domain_in) {
    Evaluation out;
    std::string domain = to_lower(domain_in);
    if (domain.ends_with('.')) domain.pop_back();
    if (!is_valid_domain(domain)) {
        out.result = SpfResult::none;
        out.reason = "not a valid domain: " + domain;
        return out;
    }
    auto fail_with = [&](const Error& error) {
        out.result = error.code == Errc::unavailable ? SpfResult::temperror : SpfResult::permerror;
        out.reason = error.message;
        return out;
    };
    auto text = fetch_record(domain);
    if (!text) return fail_with(text.error());
    if (!*text) {
        out.result = SpfResult::none;
        out.reason = "no SPF record at " + domain;
        return out;
    }
    auto record = parse_record(**text);
    if (!record) return fail_with(record.error());
    for (const Term& term : record->terms) {
        auto match = matches(term, domain);
        if (!match) return fail_with(match.error());
        if (!*match) continue;
        out.mechanism = term.text;
        switch (term.qualifier) {
            case '-':
                out.result = SpfResult::fail;
                break;
            case '~':
                out.result = SpfResult::softfail;
                break;
            case '?':
                out.result = SpfResult::neutral;
                break;
            default:
                out.result = SpfResult::pass;
                break;
        }
        if (out.result == SpfResult::fail) out.explanation = explain(*record, domain);
        return out;
    }
    if (record->redirect) {
        if (auto counted = count_dns_mechanism(); !counted) return fail_with(counted.error());
        auto name = expand(domain, *record->redirect, false);
        if (!name) return fail_with(name.error());
        Evaluation inner = check(*name);
        if (inner.result == SpfResult::none) {
            inner.result = SpfResult::permerror;  // 6.1: a redirect to nowhere is an error
            inner.reason = "redirect target " + *name + " has no SPF record";
        }
        return inner;
    }
    out.result = SpfResult::neutral;  // 4.7: no match, no redirect
    out.mechanism = "default";
    return out;
}

std::string url_escape(std::string_view text) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : text) {
        if (is_alpha(static_cast<char>(c)) || is_digit(static_cast<char>(c)) || c == '-' || c == '.' ||
            c == '_' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += kHex[c >> 4];
            out += kHex[c & 0xf];
        }
    }
    return out;
}

Result<std::string> Checker::expand(std::string_view domain, std::string_view text, bool explanation) {
    MAGPIE_TRY(check_macro_string(text, explanation));
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c != '%') {
            out += c;
            continue;
        }
        char next = text[++i];
        if (next == '%') {
            out += '%';
            continue;
        }
        if (next == '_') {
            out += ' ';
            continue;
        }
        if (next == '-') {
            out += "%20";
            continue;
        }
        std::size_t close = text.find('}', i);
        std::string_view body = text.substr(i + 1, close - i - 1);
        i = close;
        char letter = body[0];
        bool escape = letter >= 'A' && letter <= 'Z';
        std::string value;
        switch (ascii_lower(letter)) {
            case 's':
                value = sender_;
                break;
            case 'l':
                value = local_;
                break;
            case 'o':
                value = sender_domain_;
                break;
            case 'd':
                value = std::string(domain);
                break;
            case 'i':
                value = ip_macro(ip_);
                break;
            case 'p': {
                auto names = validated_names(domain);
                value = names.empty() ? "unknown" : names.front();
                break;
            }
            case 'v':
                value = ip_.v6 ? "ip6" : "in-addr";
                break;
            case 'h':
                value = request_.helo;
                break;
            case 'c':
                value = ip_readable(ip_);
                break;
            case 'r':
                value = request_.receiver.empty() ? "unknown" : request_.receiver;
                break;
            case 't':
                value = std::to_string(request_.now);
                break;
        }
        std::size_t j = 1;
        while (j < body.size() && is_digit(body[j])) ++j;
        std::size_t keep =
            j > 1 ? static_cast<std::size_t>(parse_uint(body.substr(1, j - 1)).value_or(0)) : 0;
        bool reverse = j < body.size() && ascii_lower(body[j]) == 'r';
        if (reverse) ++j;
        std::string delimiters(body.substr(j));
        if (keep > 0 || reverse || !delimiters.empty()) {
            if (delimiters.empty()) delimiters = ".";
            std::vector<std::string> parts(1);
            for (char ch : value) {
                if (delimiters.find(ch) != std::string::npos)
                    parts.emplace_back();
                else
                    parts.back() += ch;
            }
            if (reverse) std::reverse(parts.begin(), parts.end());
            if (keep > 0 && keep < parts.size())
                parts.erase(parts.begin(), parts.end() - static_cast<long>(keep));
            value.clear();
            for (std::size_t p = 0; p < parts.size(); ++p) value += (p ? "." : "") + parts[p];
        }
        out += escape ? url_escape(value) : value;
    }
    if (!explanation) {
        // 7.3: an expanded domain over 253 octets loses labels from the left until it fits.
        if (out.ends_with('.')) out.pop_back();
        while (out.size() > 253) {
            std::size_t dot = out.find('.');
            if (dot == std::string::npos) return permerror("expanded domain too long");
            out.erase(0, dot + 1);
        }
    }
    return out;
}

SpfOutcome run(Dns& dns, const SpfRequest& request, std::string_view domain, const SpfLimits& limits,
               std::string identity) {
    SpfOutcome outcome;
    outcome.domain = to_lower(domain);
    outcome.identity = std::move(identity);
    auto ip = parse_client_ip(request.ip);
    if (!ip) {
        outcome.result = SpfResult::permerror;
        outcome.reason = "client address is not an IP address";
        return outcome;
    }
    Checker checker(dns, request, limits, *ip);
    Evaluation evaluation = checker.check(domain);
    outcome.result = evaluation.result;
    outcome.mechanism = evaluation.mechanism;
    outcome.reason = evaluation.reason;
    outcome.explanation = evaluation.explanation;
    outcome.dns_mechanisms = checker.dns_mechanisms;
    outcome.void_lookups = checker.void_lookups;
    return outcome;
}

}  // namespace

const char* spf_result_name(SpfResult result) {
    switch (result) {
        case SpfResult::none:
            return "none";
        case SpfResult::neutral:
            return "neutral";
        case SpfResult::pass:
            return "pass";
        case SpfResult::fail:
            return "fail";
        case SpfResult::softfail:
            return "softfail";
        case SpfResult::temperror:
            return "temperror";
        case SpfResult::permerror:
            return "permerror";
    }
    return "none";
}

SpfOutcome check_host(Dns& dns, const SpfRequest& request, std::string_view domain, const SpfLimits& limits) {
    return run(dns, request, domain, limits, "mailfrom");
}

SpfOutcome check_mail_from(Dns& dns, const SpfRequest& request, const SpfLimits& limits) {
    if (request.sender.empty()) {
        SpfRequest helo = request;
        return run(dns, helo, request.helo, limits, "mailfrom");
    }
    std::size_t at = request.sender.rfind('@');
    std::string domain = at == std::string::npos ? request.sender : request.sender.substr(at + 1);
    return run(dns, request, domain, limits, "mailfrom");
}

SpfOutcome check_helo(Dns& dns, const SpfRequest& request, const SpfLimits& limits) {
    SpfRequest helo = request;
    helo.sender = "postmaster@" + request.helo;
    return run(dns, helo, request.helo, limits, "helo");
}

Result<std::string> expand_macros(Dns& dns, const SpfRequest& request, std::string_view domain,
                                  std::string_view text, bool explanation, const SpfLimits& limits) {
    auto ip = parse_client_ip(request.ip);
    if (!ip) return permerror("client address is not an IP address");
    Checker checker(dns, request, limits, *ip);
    return checker.expand(domain, text, explanation);
}

}  // namespace magpie::mailauth
