#include "mail/address.h"

#include <optional>

#include "base/strings.h"
#include "mail/charset.h"
#include "mail/encoded_word.h"

namespace magpie::mail {
namespace {

enum class TokenKind { word, quoted, literal, special };

struct Token {
    TokenKind kind;
    std::string text;           // unquoted content (word, quoted string), whole literal, or the special char
    bool space_before = false;  // white space or a comment preceded it
    std::string comment;        // the last comment seen right after this token
};

// RFC 5322 3.2.3 atext, plus '.' (obs-phrase, dot-atom) and 8-bit octets (RFC 6532 UTF-8).
bool is_word_char(unsigned char c) {
    if (c >= 0x80) return true;
    if (c <= 32 || c == 127) return false;
    switch (c) {
        case '(': case ')': case '<': case '>': case '@': case ',': case ';': case ':':
        case '\\': case '"': case '[': case ']':
            return false;
        default:
            return true;
    }
}

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

class Tokenizer {
public:
    explicit Tokenizer(std::string_view s) : s_(s) {}

    std::vector<Token> run() {
        std::vector<Token> tokens;
        bool space = false;
        while (i_ < s_.size()) {
            char c = s_[i_];
            if (is_ws(c)) {
                space = true;
                ++i_;
            } else if (c == '(') {
                std::string comment = read_comment();
                if (!tokens.empty()) tokens.back().comment = trim(comment);
                space = true;
            } else if (c == '"') {
                tokens.push_back(Token{TokenKind::quoted, read_quoted(), space, {}});
                space = false;
            } else if (c == '[') {
                tokens.push_back(Token{TokenKind::literal, read_literal(), space, {}});
                space = false;
            } else if (is_word_char(static_cast<unsigned char>(c))) {
                std::size_t start = i_;
                while (i_ < s_.size() && is_word_char(static_cast<unsigned char>(s_[i_]))) ++i_;
                tokens.push_back(Token{TokenKind::word, std::string(s_.substr(start, i_ - start)), space, {}});
                space = false;
            } else {
                // Specials; a stray ')', ']' or '\' is kept as a special nobody expects and gets skipped.
                tokens.push_back(Token{TokenKind::special, std::string(1, c), space, {}});
                ++i_;
                space = false;
            }
        }
        return tokens;
    }

private:
    // RFC 5322 3.2.2: comments nest and may hold quoted pairs. An unterminated comment runs to the end.
    std::string read_comment() {
        std::string out;
        int depth = 0;
        while (i_ < s_.size()) {
            char c = s_[i_++];
            if (c == '\\' && i_ < s_.size()) {
                out.push_back(s_[i_++]);
            } else if (c == '(') {
                if (depth++ > 0) out.push_back(c);
            } else if (c == ')') {
                if (--depth == 0) break;
                out.push_back(c);
            } else if (c == '\r' || c == '\n') {
                continue;
            } else {
                out.push_back(c);
            }
        }
        return out;
    }

    // RFC 5322 3.2.4; folding inside is removed. An unterminated quoted string runs to the end.
    std::string read_quoted() {
        std::string out;
        ++i_;
        while (i_ < s_.size()) {
            char c = s_[i_++];
            if (c == '"') break;
            if (c == '\\' && i_ < s_.size()) {
                out.push_back(s_[i_++]);
            } else if (c == '\r' || c == '\n') {
                continue;
            } else {
                out.push_back(c);
            }
        }
        return out;
    }

    std::string read_literal() {
        std::size_t start = i_;
        while (i_ < s_.size() && s_[i_] != ']') {
            if (s_[i_] == '\\' && i_ + 1 < s_.size()) ++i_;
            ++i_;
        }
        if (i_ < s_.size()) ++i_;
        std::string out;
        for (char c : s_.substr(start, i_ - start)) {
            if (!is_ws(c)) out.push_back(c);
        }
        return out;
    }

    std::string_view s_;
    std::size_t i_ = 0;
};

bool is_special(const Token& t, char c) { return t.kind == TokenKind::special && t.text[0] == c; }

class Parser {
public:
    Parser(std::vector<Token> tokens, const AddressLimits& limits) : t_(std::move(tokens)), limits_(limits) {}

    std::vector<Address> run() {
        std::vector<Address> list;
        while (p_ < t_.size()) {
            if (is_special(t_[p_], ',')) {  // RFC 5322 4.4: empty list elements
                ++p_;
                continue;
            }
            std::size_t before = p_;
            parse_address(list);
            if (p_ == before) ++p_;  // never stall on junk
            skip_to_comma();
        }
        return list;
    }

private:
    bool at(char c) const { return p_ < t_.size() && is_special(t_[p_], c); }

    void skip_to_comma() {
        while (p_ < t_.size() && !is_special(t_[p_], ',')) ++p_;
    }

    bool room() const { return count_ < limits_.max_addresses; }

    // Words up to the next special: a phrase (display name) or a local part.
    std::vector<const Token*> read_words() {
        std::vector<const Token*> words;
        while (p_ < t_.size() && t_[p_].kind != TokenKind::special) words.push_back(&t_[p_++]);
        return words;
    }

    // RFC 5322 3.4.1 / 4.4: a domain is atoms and dots (CFWS between them allowed) or one domain literal;
    // a quoted-string is no part of it. Reading stops before one, so what it quotes ("a.test>, b@c.test")
    // can never become a domain that, written again, reads as other addresses.
    std::string read_domain() {
        std::string out;
        while (p_ < t_.size() && (t_[p_].kind == TokenKind::word || t_[p_].kind == TokenKind::literal)) {
            out += t_[p_].text;
            ++p_;
        }
        return out;
    }

    static std::string phrase_text(const std::vector<const Token*>& words) {
        std::string out;
        for (const Token* w : words) {
            if (!out.empty() && w->space_before) out.push_back(' ');
            out += w->text;
        }
        return out;
    }

    // A local part or domain: the words and dots concatenated without the CFWS between them (obs-local-part).
    static std::string joined(const std::vector<const Token*>& words) {
        std::string out;
        for (const Token* w : words) out += w->text;
        return out;
    }

    void parse_address(std::vector<Address>& list) {
        std::vector<const Token*> words = read_words();
        if (at(':')) {
            ++p_;
            Address group;
            group.is_group = true;
            group.raw_group_name = phrase_text(words);
            group.group_name = decode_encoded_words(group.raw_group_name);
            while (p_ < t_.size() && !at(';')) {
                if (at(',')) {
                    ++p_;
                    continue;
                }
                std::size_t before = p_;
                std::vector<const Token*> member_words = read_words();
                if (auto mailbox = parse_mailbox(member_words)) {
                    if (room()) {
                        group.members.push_back(std::move(*mailbox));
                        ++count_;
                    }
                }
                while (p_ < t_.size() && !at(',') && !at(';')) ++p_;
                if (p_ == before) ++p_;
            }
            if (at(';')) ++p_;
            list.push_back(std::move(group));
            return;
        }
        if (auto mailbox = parse_mailbox(words)) {
            if (room()) {
                Address single;
                single.members.push_back(std::move(*mailbox));
                list.push_back(std::move(single));
                ++count_;
            }
        }
    }

    // Continues a mailbox after its leading words have been read.
    std::optional<Mailbox> parse_mailbox(const std::vector<const Token*>& words) {
        Mailbox box;
        if (at('<')) {
            ++p_;
            box.raw_name = phrase_text(words);
            box.name = decode_encoded_words(box.raw_name);
            // RFC 5322 4.4 obs-route: "@a,@b:" before the addr-spec.
            if (at('@')) {
                std::string route;
                while (p_ < t_.size() && !at(':') && !at('>')) {
                    const Token& t = t_[p_++];
                    route += t.text;
                }
                if (at(':')) {
                    ++p_;
                    box.route = route;
                }
            }
            std::vector<const Token*> local = read_words();
            box.local_part = joined(local);
            if (at('@')) {
                ++p_;
                box.domain = read_domain();
            }
            while (p_ < t_.size() && !at('>') && !at(',') && !at(';')) ++p_;
            if (at('>')) {
                if (box.name.empty() && !t_[p_].comment.empty()) {
                    box.raw_name = t_[p_].comment;
                    box.name = decode_encoded_words(box.raw_name);
                }
                ++p_;
            }
            return box;
        }
        if (words.empty()) return std::nullopt;
        box.local_part = joined(words);
        const Token* last = words.back();
        if (at('@')) {
            ++p_;
            std::size_t first = p_;
            box.domain = read_domain();
            if (p_ > first) last = &t_[p_ - 1];
        }
        // "addr (Name)": the comment after an addr-spec is the traditional display name.
        if (!last->comment.empty()) {
            box.raw_name = last->comment;
            box.name = decode_encoded_words(box.raw_name);
        }
        return box;
    }

    std::vector<Token> t_;
    const AddressLimits& limits_;
    std::size_t p_ = 0;
    std::size_t count_ = 0;
};

bool local_part_needs_quotes(std::string_view local) {
    if (local.empty() || local.front() == '.' || local.back() == '.') return true;
    char prev = 0;
    for (char c : local) {
        if (!is_word_char(static_cast<unsigned char>(c))) return true;
        if (c == '.' && prev == '.') return true;
        prev = c;
    }
    return false;
}

std::string quote(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out.push_back('\\');
        out.push_back(c);
    }
    out.push_back('"');
    return out;
}

}  // namespace

std::string Mailbox::addr_spec() const {
    std::string out = local_part_needs_quotes(local_part) ? quote(local_part) : local_part;
    if (!domain.empty()) {
        out.push_back('@');
        out += domain;
    }
    return out;
}

std::string Mailbox::display() const {
    // The addr-spec keeps its raw octets; for display they must be UTF-8 like the name.
    std::string spec = guess_to_utf8(addr_spec());
    if (name.empty()) return spec;
    bool plain = true;
    for (char c : name) {
        if (!is_word_char(static_cast<unsigned char>(c)) && c != ' ') plain = false;
    }
    return (plain ? name : quote(name)) + " <" + spec + ">";
}

std::vector<Address> parse_address_list(std::string_view value, const AddressLimits& limits) {
    return Parser(Tokenizer(value).run(), limits).run();
}

std::vector<Mailbox> mailboxes(const std::vector<Address>& list) {
    std::vector<Mailbox> out;
    for (const auto& a : list) out.insert(out.end(), a.members.begin(), a.members.end());
    return out;
}

std::string format_address_list(const std::vector<Address>& list) {
    std::string out;
    for (const auto& a : list) {
        if (!out.empty()) out += ", ";
        if (a.is_group) {
            out += a.group_name + ":";
            for (std::size_t i = 0; i < a.members.size(); ++i) {
                out += (i == 0 ? " " : ", ") + a.members[i].display();
            }
            out += ";";
        } else if (!a.members.empty()) {
            out += a.members.front().display();
        }
    }
    return out;
}

}  // namespace magpie::mail
