#include "mailauth/mta_sts.h"

#include <openssl/evp.h>

#include <algorithm>
#include <charconv>

#include "base/strings.h"

namespace magpie::mailauth {
namespace {

std::string_view strip(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

bool is_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

std::string normal_host(std::string_view host) {
    std::string out = to_lower(host);
    while (!out.empty() && out.back() == '.') out.pop_back();
    return out;
}

}  // namespace

const char* sts_mode_name(StsMode mode) {
    switch (mode) {
        case StsMode::enforce: return "enforce";
        case StsMode::testing: return "testing";
        case StsMode::none: return "none";
    }
    return "none";
}

StsMode sts_mode_from_name(std::string_view name) {
    if (name == "enforce") return StsMode::enforce;
    if (name == "testing") return StsMode::testing;
    return StsMode::none;
}

Result<std::string> parse_sts_record(std::string_view txt) {
    bool first = true;
    std::string id;
    while (!txt.empty()) {
        std::size_t semi = txt.find(';');
        std::string_view field = strip(txt.substr(0, semi));
        txt = semi == std::string_view::npos ? std::string_view() : txt.substr(semi + 1);
        if (field.empty()) continue;
        std::size_t eq = field.find('=');
        if (eq == std::string_view::npos) return make_error(Errc::invalid_argument, "MTA-STS record field without '='");
        std::string_view key = strip(field.substr(0, eq)), value = strip(field.substr(eq + 1));
        if (first) {
            if (key != "v" || value != "STSv1") return make_error(Errc::invalid_argument, "not an STSv1 record");
            first = false;
        } else if (key == "id") {
            if (value.empty() || value.size() > 32 || !std::all_of(value.begin(), value.end(), is_alnum))
                return make_error(Errc::invalid_argument, "MTA-STS id must be 1 to 32 letters and digits");
            id = std::string(value);
        }
    }
    if (first) return make_error(Errc::invalid_argument, "not an STSv1 record");
    if (id.empty()) return make_error(Errc::invalid_argument, "MTA-STS record without id");
    return id;
}

Result<StsPolicy> parse_sts_policy(std::string_view text) {
    if (text.size() > kMaxPolicyOctets) return make_error(Errc::invalid_argument, "MTA-STS policy larger than 64 KiB");
    StsPolicy policy;
    bool version = false, mode = false, max_age = false;
    while (!text.empty()) {
        std::size_t nl = text.find('\n');
        std::string_view line = strip(text.substr(0, nl));
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        if (line.empty()) continue;
        std::size_t colon = line.find(':');
        if (colon == std::string_view::npos) return make_error(Errc::invalid_argument, "MTA-STS policy line without ':'");
        std::string_view key = strip(line.substr(0, colon)), value = strip(line.substr(colon + 1));
        if (key == "version") {
            if (value != "STSv1") return make_error(Errc::invalid_argument, "MTA-STS policy version is not STSv1");
            version = true;
        } else if (key == "mode") {
            if (value == "enforce") policy.mode = StsMode::enforce;
            else if (value == "testing") policy.mode = StsMode::testing;
            else if (value == "none") policy.mode = StsMode::none;
            else return make_error(Errc::invalid_argument, "MTA-STS policy mode is not enforce, testing or none");
            mode = true;
        } else if (key == "max_age") {
            std::uint64_t seconds = 0;
            auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
            if (ec != std::errc() || end != value.data() + value.size() || value.size() > 10 || seconds > 31557600)
                return make_error(Errc::invalid_argument, "MTA-STS max_age is not 0 to 31557600 seconds");
            policy.max_age = static_cast<std::uint32_t>(seconds);
            max_age = true;
        } else if (key == "mx") {
            if (value.empty() || policy.mx.size() >= 256)
                return make_error(Errc::invalid_argument, "MTA-STS mx pattern empty or too many");
            policy.mx.push_back(normal_host(value));
        }
    }
    if (!version || !mode || !max_age)
        return make_error(Errc::invalid_argument, "MTA-STS policy lacks version, mode or max_age");
    if (policy.mode != StsMode::none && policy.mx.empty())
        return make_error(Errc::invalid_argument, "MTA-STS policy lists no mx");
    return policy;
}

bool sts_mx_matches(const StsPolicy& policy, std::string_view host_in) {
    std::string host = normal_host(host_in);
    for (const auto& pattern : policy.mx) {
        if (pattern == host) return true;
        if (pattern.starts_with("*.")) {
            std::string_view suffix = std::string_view(pattern).substr(1);  // ".example.com"
            std::size_t dot = host.find('.');
            if (dot != std::string::npos && dot > 0 && std::string_view(host).substr(dot) == suffix) return true;
        }
    }
    return false;
}

std::string sts_policy_text(StsMode mode, const std::vector<std::string>& mx_hosts, std::uint32_t max_age) {
    std::string out = "version: STSv1\r\nmode: " + std::string(sts_mode_name(mode)) + "\r\n";
    for (const auto& mx : mx_hosts) out += "mx: " + normal_host(mx) + "\r\n";
    out += "max_age: " + std::to_string(max_age) + "\r\n";
    return out;
}

std::string sts_policy_id(std::string_view policy_text) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_Digest(policy_text.data(), policy_text.size(), md, &length, EVP_sha256(), nullptr);
    return to_hex(std::string_view(reinterpret_cast<const char*>(md), 8));
}

std::string serialize_cached_sts_policy(const CachedStsPolicy& cached) {
    return cached.id + " " + std::to_string(cached.fetched_at) + "\n" + cached.text;
}

Result<CachedStsPolicy> parse_cached_sts_policy(std::string_view bytes) {
    std::size_t nl = bytes.find('\n');
    if (nl == std::string_view::npos) return make_error(Errc::invalid_argument, "cached MTA-STS policy without header");
    std::string_view head = bytes.substr(0, nl);
    std::size_t space = head.find(' ');
    if (space == std::string_view::npos) return make_error(Errc::invalid_argument, "cached MTA-STS policy header");
    CachedStsPolicy cached;
    cached.id = std::string(head.substr(0, space));
    std::string_view when = head.substr(space + 1);
    auto [end, ec] = std::from_chars(when.data(), when.data() + when.size(), cached.fetched_at);
    if (ec != std::errc() || end != when.data() + when.size())
        return make_error(Errc::invalid_argument, "cached MTA-STS policy time");
    cached.text = std::string(bytes.substr(nl + 1));
    auto policy = parse_sts_policy(cached.text);
    if (!policy) return policy.error();
    cached.policy = std::move(*policy);
    return cached;
}

}  // namespace magpie::mailauth
