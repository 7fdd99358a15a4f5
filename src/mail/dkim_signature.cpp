#include "mail/dkim_signature.h"

#include "base/strings.h"
#include "mail/base64.h"

namespace magpie::mail::dkim {

namespace {

bool is_fws(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

std::string_view trim_fws(std::string_view s) {
    while (!s.empty() && is_fws(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_fws(s.back())) s.remove_suffix(1);
    return s;
}

std::string without_fws(std::string_view s) {
    std::string out;
    for (char c : s)
        if (!is_fws(c)) out += c;
    return out;
}

bool is_base64_text(std::string_view s) {
    for (char c : s)
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
              c == '/' || c == '='))
            return false;
    return true;
}

// RFC 6376 3.2: tag-name = ALPHA *ALNUMPUNC (ALNUMPUNC is alnum or '_').
bool is_tag_name(std::string_view s) {
    if (s.empty() || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    return true;
}

// dkim-quoted-printable (2.11), used by i= and z=: =XX is an octet, FWS is ignored.
std::string decode_dkim_qp(std::string_view s) {
    std::string out;
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        c = ascii_upper(c);
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (is_fws(s[i])) continue;
        if (s[i] == '=' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
            out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
            i += 2;
            continue;
        }
        out += s[i];
    }
    return out;
}

Error bad(std::string message) {
    return make_error(Errc::invalid_argument, std::move(message));
}

bool is_subdomain_or_same(std::string_view sub, std::string_view domain) {
    if (iequals(sub, domain)) return true;
    return sub.size() > domain.size() && sub[sub.size() - domain.size() - 1] == '.' &&
           iequals(sub.substr(sub.size() - domain.size()), domain);
}

}  // namespace

Result<std::vector<std::pair<std::string_view, std::string_view>>> parse_tag_list(std::string_view text) {
    std::vector<std::pair<std::string_view, std::string_view>> tags;
    for (std::string_view spec : split(text, ';')) {
        if (trim_fws(spec).empty()) {
            // Only the last spec may be empty (a trailing ';'); an empty one in the middle is a syntax error.
            if (spec.data() + spec.size() != text.data() + text.size()) return bad("empty tag in tag list");
            continue;
        }
        std::size_t eq = spec.find('=');
        if (eq == std::string_view::npos) return bad("tag without '=' in tag list");
        std::string_view name = trim_fws(spec.substr(0, eq));
        if (!is_tag_name(name)) return bad("bad tag name in tag list");
        for (const auto& [seen, unused] : tags)
            if (seen == name) return bad("tag " + std::string(name) + "= given twice");
        tags.emplace_back(name, trim_fws(spec.substr(eq + 1)));
    }
    return tags;
}

const char* algorithm_name(Algorithm algorithm) {
    return algorithm == Algorithm::rsa_sha256 ? "rsa-sha256" : "ed25519-sha256";
}

std::string Signature::key_name() const {
    return selector + "._domainkey." + domain;
}

Result<Signature> parse_signature(std::string_view value) {
    auto tags = parse_tag_list(value);
    if (!tags) return tags.error();
    Signature sig;
    bool have_v = false, have_a = false, have_b = false, have_bh = false, have_h = false;
    std::optional<std::string> identity;
    for (const auto& [name, raw] : *tags) {
        if (name == "v") {
            if (raw != "1") return bad("DKIM-Signature v= is not 1");
            have_v = true;
        } else if (name == "a") {
            std::string a = to_lower(raw);
            if (a == "rsa-sha256")
                sig.algorithm = Algorithm::rsa_sha256;
            else if (a == "ed25519-sha256")
                sig.algorithm = Algorithm::ed25519_sha256;
            else
                return bad("unsupported algorithm a=" + a);  // rsa-sha1 is historic (RFC 8301)
            have_a = true;
        } else if (name == "b" || name == "bh") {
            std::string text = without_fws(raw);
            if (!is_base64_text(text)) return bad("DKIM-Signature " + std::string(name) + "= is not base64");
            (name == "b" ? sig.signature : sig.body_hash) = base64_decode(text);
            if (name == "b")
                sig.b_base64 = text, have_b = true;
            else
                have_bh = true;
        } else if (name == "c") {
            std::string c = to_lower(raw);
            auto slash = c.find('/');
            std::string head = c.substr(0, slash),
                        body = slash == std::string::npos ? "simple" : c.substr(slash + 1);
            auto canon = [](const std::string& s) -> std::optional<Canon> {
                if (s == "simple") return Canon::simple;
                if (s == "relaxed") return Canon::relaxed;
                return std::nullopt;
            };
            auto h = canon(head), b = canon(body);
            if (!h || !b) return bad("unknown canonicalization c=" + c);
            sig.header_canon = *h;
            sig.body_canon = *b;
        } else if (name == "d") {
            sig.domain = to_lower(raw);
        } else if (name == "s") {
            sig.selector = to_lower(raw);
        } else if (name == "h") {
            for (std::string_view h : split(raw, ':')) {
                std::string_view n = trim_fws(h);
                if (n.empty()) return bad("empty header name in h=");
                sig.signed_headers.push_back(to_lower(n));
            }
            have_h = true;
        } else if (name == "i") {
            identity = decode_dkim_qp(raw);
        } else if (name == "l") {
            auto l = parse_uint(raw);
            if (!l) return bad("DKIM-Signature l= is not a number");
            sig.body_length = *l;
        } else if (name == "q") {
            bool dns_txt = false;
            for (std::string_view q : split(raw, ':'))
                if (iequals(trim_fws(q), "dns/txt")) dns_txt = true;
            if (!dns_txt) return bad("DKIM-Signature q= has no dns/txt");
        } else if (name == "t" || name == "x") {
            auto t = parse_uint(raw);
            if (!t) return bad("DKIM-Signature " + std::string(name) + "= is not a number");
            (name == "t" ? sig.timestamp : sig.expiration) = *t;
        }
        // z= (copied header fields) and unknown tags are ignored (3.2).
    }
    if (!have_v) return bad("DKIM-Signature has no v=");
    if (!have_a || !have_b || !have_bh || !have_h || sig.domain.empty() || sig.selector.empty())
        return bad("DKIM-Signature lacks a required tag (a, b, bh, d, h or s)");
    bool signs_from = false;
    for (const auto& h : sig.signed_headers)
        if (h == "from") signs_from = true;
    if (!signs_from) return bad("DKIM-Signature h= does not include From");
    if (identity) {
        auto at = identity->rfind('@');
        if (at == std::string::npos) return bad("DKIM-Signature i= has no '@'");
        if (!is_subdomain_or_same(std::string_view(*identity).substr(at + 1), sig.domain))
            return bad("DKIM-Signature i= is not within d=");
        sig.identity = *identity;
    } else {
        sig.identity = "@" + sig.domain;
    }
    if (sig.timestamp && sig.expiration && *sig.expiration < *sig.timestamp)
        return bad("DKIM-Signature x= is before t=");
    return sig;
}

std::string strip_b_value(std::string_view value) {
    std::string out;
    std::size_t pos = 0;
    while (pos <= value.size()) {
        std::size_t semi = value.find(';', pos);
        std::size_t end = semi == std::string_view::npos ? value.size() : semi;
        std::string_view spec = value.substr(pos, end - pos);
        std::size_t eq = spec.find('=');
        if (eq != std::string_view::npos && trim_fws(spec.substr(0, eq)) == "b") {
            out += spec.substr(0, eq + 1);  // keep "  b=", drop the value (and the white space inside it)
        } else {
            out += spec;
        }
        if (semi == std::string_view::npos) break;
        out += ';';
        pos = semi + 1;
    }
    return out;
}

std::string build_signature_field(const Signature& sig, std::string_view signature_base64) {
    std::vector<std::string> parts;
    parts.push_back("v=1");
    parts.push_back(std::string("a=") + algorithm_name(sig.algorithm));
    parts.push_back(std::string("c=") + canon_name(sig.header_canon) + "/" + canon_name(sig.body_canon));
    parts.push_back("d=" + sig.domain);
    parts.push_back("s=" + sig.selector);
    if (!sig.identity.empty() && sig.identity != "@" + sig.domain) parts.push_back("i=" + sig.identity);
    if (sig.timestamp) parts.push_back("t=" + std::to_string(*sig.timestamp));
    if (sig.expiration) parts.push_back("x=" + std::to_string(*sig.expiration));
    if (sig.body_length) parts.push_back("l=" + std::to_string(*sig.body_length));
    std::string h = "h=";
    for (std::size_t i = 0; i < sig.signed_headers.size(); ++i) h += (i ? ":" : "") + sig.signed_headers[i];
    parts.push_back(h);
    parts.push_back("bh=" + base64_encode(sig.body_hash, 0));
    // Fold between tags, and inside h= at colons and inside b= anywhere (FWS there is ignored by verifiers).
    std::string out = "DKIM-Signature:";
    std::size_t column = out.size();
    auto append = [&](std::string_view piece, bool tag_start) {
        if (column + piece.size() + 2 > 76 && column > 1) {
            out += "\r\n ";
            column = 1;
        } else if (tag_start) {
            out += ' ';
            ++column;
        }
        out += piece;
        column += piece.size();
    };
    for (const auto& part : parts) {
        if (part.rfind("h=", 0) == 0) {
            // h= may be folded after a colon.
            auto names = split(std::string_view(part).substr(2), ':');
            std::string first = "h=" + std::string(names[0]);
            append(first + (names.size() > 1 ? ":" : ";"), true);
            for (std::size_t i = 1; i < names.size(); ++i)
                append(std::string(names[i]) + (i + 1 < names.size() ? ":" : ";"), false);
        } else {
            append(part + ";", true);
        }
    }
    append("b=", true);
    for (std::size_t i = 0; i < signature_base64.size(); i += 64) {
        std::string_view chunk = signature_base64.substr(i, 64);
        if (i > 0 || column + chunk.size() > 76) {
            out += "\r\n ";
            column = 1;
        }
        out += chunk;
        column += chunk.size();
    }
    return out;
}

Result<KeyRecord> parse_key_record(std::string_view text) {
    auto tags = parse_tag_list(text);
    if (!tags) return tags.error();
    KeyRecord record;
    bool have_p = false;
    for (std::size_t i = 0; i < tags->size(); ++i) {
        const auto& [name, raw] = (*tags)[i];
        if (name == "v") {
            if (i != 0 || raw != "DKIM1") return bad("key record v= is not DKIM1 or not first");
        } else if (name == "k") {
            if (iequals(raw, "rsa"))
                record.key_type = KeyType::rsa;
            else if (iequals(raw, "ed25519"))
                record.key_type = KeyType::ed25519;
            else
                return bad("key record has an unknown k=" + std::string(raw));
        } else if (name == "h") {
            bool sha256 = false;
            for (std::string_view h : split(raw, ':'))
                if (iequals(trim_fws(h), "sha256")) sha256 = true;
            if (!sha256) return bad("key record h= does not allow sha256");
        } else if (name == "s") {
            bool email = false;
            for (std::string_view s : split(raw, ':'))
                if (trim_fws(s) == "*" || iequals(trim_fws(s), "email")) email = true;
            if (!email) return bad("key record s= excludes email");
        } else if (name == "t") {
            for (std::string_view flag : split(raw, ':')) {
                flag = trim_fws(flag);
                if (iequals(flag, "y")) record.testing = true;
                if (iequals(flag, "s")) record.strict_identity = true;
            }
        } else if (name == "p") {
            std::string key = without_fws(raw);
            if (!is_base64_text(key)) return bad("key record p= is not base64");
            record.public_key = base64_decode(key);
            record.revoked = key.empty();
            have_p = true;
        }
    }
    if (!have_p) return bad("key record has no p=");
    return record;
}

}  // namespace magpie::mail::dkim
