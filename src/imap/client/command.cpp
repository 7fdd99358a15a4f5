#include "imap/client/command.h"

#include <algorithm>

#include "base/strings.h"
#include "imap/mutf7.h"

namespace magpie::imap::client {
namespace {

// Longer strings go as literals: quoted strings that long are rare in servers' tested paths.
constexpr std::size_t kMaxQuoted = 1000;

bool is_atom_char(unsigned char c) {
    // RFC 9051 ATOM-CHAR plus resp-specials "]" (ASTRING-CHAR).
    if (c <= 0x20 || c >= 0x7F) return false;
    switch (c) {
        case '(':
        case ')':
        case '{':
        case '%':
        case '*':
        case '"':
        case '\\':
            return false;
        default:
            return true;
    }
}

bool needs_literal(std::string_view value) {
    if (value.size() > kMaxQuoted) return true;
    return std::ranges::any_of(value, [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u == '\r' || u == '\n' || u == 0 || u >= 0x80;
    });
}

}  // namespace

bool is_astring_atom(std::string_view value) {
    return !value.empty() && !iequals(value, "NIL") &&
           std::ranges::all_of(value, [](char c) { return is_atom_char(static_cast<unsigned char>(c)); });
}

Command::Command(std::string_view name) : name_(name) {
    pieces_.push_back(Piece{});
    raw(name);
}

void Command::append_text(std::string_view text) {
    Piece& last = pieces_.back();
    if (last.literal || !last.text.empty()) {
        if (last.literal) {
            pieces_.push_back(Piece{" ", std::nullopt});
        } else {
            last.text += ' ';
        }
    }
    pieces_.back().text += text;
}

Command& Command::raw(std::string_view text) {
    if (std::ranges::any_of(text, [](char c) { return c == '\r' || c == '\n' || c == '\0'; })) {
        if (!error_)
            error_ = make_error(Errc::invalid_argument, "line end or NUL in an IMAP command argument");
        return *this;
    }
    append_text(text);
    return *this;
}

Command& Command::astring(std::string_view value) {
    if (is_astring_atom(value)) return raw(value);
    return string(value);
}

Command& Command::string(std::string_view value) {
    if (needs_literal(value)) return literal(value);
    std::string quoted = "\"";
    for (char c : value) {
        if (c == '"' || c == '\\') quoted += '\\';
        quoted += c;
    }
    quoted += '"';
    append_text(quoted);
    return *this;
}

Command& Command::literal(std::string_view bytes) {
    // The announcement's form ({n} or {n+}) is chosen when sending; finish() writes it.
    append_text("");
    pieces_.back().literal = std::string(bytes);
    return *this;
}

Command& Command::mailbox(std::string_view utf8_name, bool utf8) {
    if (utf8) {
        if (!is_valid_utf8(utf8_name)) {
            if (!error_) error_ = make_error(Errc::invalid_argument, "mailbox name is not valid UTF-8");
            return *this;
        }
        return astring(utf8_name);
    }
    auto encoded = mutf7_encode(utf8_name);
    if (!encoded) {
        if (!error_) error_ = encoded.error();
        return *this;
    }
    return astring(*encoded);
}

std::vector<Command::Piece> Command::finish(std::string_view tag) const {
    std::vector<Piece> pieces = pieces_;
    pieces.front().text.insert(0, std::string(tag) + " ");
    if (pieces.back().literal) {
        pieces.push_back(Piece{"\r\n", std::nullopt});
    } else {
        pieces.back().text += "\r\n";
    }
    return pieces;
}

}  // namespace magpie::imap::client
