#include "http/email_search.h"

#include <algorithm>

#include "base/strings.h"
#include "base/unicode.h"
#include "http/email_view.h"
#include "mail/mime.h"

namespace magpie::http {
namespace {

using nlohmann::json;

constexpr std::size_t kSnippetOctets = 255;  // RFC 8621 5.1: "a maximum of 255 octets"

bool header_holds(const mail::Message& message, std::string_view name, std::optional<std::string_view> value) {
    for (const auto* field : message.header().find_all(name)) {
        if (!value || unicode_casemap_contains(field->decoded(), *value)) return true;
    }
    return false;
}

void escape_into(std::string& out, std::string_view text) {
    for (char c : text) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&#39;"; break;
            default: out.push_back(c);
        }
    }
}

// The first ASCII case-insensitive occurrence of any term at or after `from`: (offset, length).
std::optional<std::pair<std::size_t, std::size_t>> find_term(std::string_view lowered, std::size_t from,
                                                             const std::vector<std::string>& lowered_terms) {
    std::optional<std::pair<std::size_t, std::size_t>> best;
    for (const auto& term : lowered_terms) {
        if (term.empty()) continue;
        auto at = lowered.find(term, from);
        if (at == std::string_view::npos) continue;
        if (!best || at < best->first || (at == best->first && term.size() > best->second)) best = {at, term.size()};
    }
    return best;
}

// Where a UTF-8 sequence starts at or before `offset`.
std::size_t code_point_start(std::string_view text, std::size_t offset) {
    while (offset > 0 && offset < text.size() && (static_cast<unsigned char>(text[offset]) & 0xC0) == 0x80) --offset;
    return offset;
}

std::string collapse_space(std::string_view text) {
    std::string out;
    bool space = false;
    for (unsigned char c : text) {
        if (std::isspace(c)) {
            space = !out.empty();
            continue;
        }
        if (space) out.push_back(' ');
        space = false;
        out.push_back(static_cast<char>(c));
    }
    return out;
}

}  // namespace

std::optional<bool> matches_content(std::string_view bytes, const json& condition) {
    if (!condition.is_object() || condition.size() != 1) return std::nullopt;
    const std::string& key = condition.begin().key();
    const json& value = condition.begin().value();
    if (key == "hasAttachment" && value.is_boolean()) {
        json view = email_view(bytes, "", {"hasAttachment"}, BodyValueOptions{});
        return view.value("hasAttachment", false) == value.get<bool>();
    }
    auto message = mail::Message::parse(bytes);
    if (key == "header" && value.is_array() && (value.size() == 1 || value.size() == 2) &&
        std::all_of(value.begin(), value.end(), [](const json& v) { return v.is_string(); })) {
        std::optional<std::string_view> wanted;
        if (value.size() == 2) wanted = value[1].get_ref<const std::string&>();
        return header_holds(message, value[0].get_ref<const std::string&>(), wanted);
    }
    if (!value.is_string()) return std::nullopt;
    const auto& text = value.get_ref<const std::string&>();
    if (key == "bcc") return header_holds(message, "Bcc", text);
    if (key == "body") return unicode_casemap_contains(email_body_text(bytes), text);
    if (key == "text") return header_holds(message, "Bcc", text) || unicode_casemap_contains(email_body_text(bytes), text);
    return std::nullopt;
}

std::vector<std::string> search_terms(std::string_view value) {
    std::vector<std::string> terms;
    std::size_t i = 0;
    auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    while (i < value.size()) {
        if (blank(value[i])) {
            ++i;
        } else if (value[i] == '"') {
            auto close = value.find('"', i + 1);
            auto phrase = value.substr(i + 1, close == std::string_view::npos ? std::string_view::npos : close - i - 1);
            if (phrase.find_first_not_of(" \t\r\n") != std::string_view::npos) terms.emplace_back(phrase);
            i = close == std::string_view::npos ? value.size() : close + 1;
        } else {
            std::size_t end = i;
            while (end < value.size() && !blank(value[end]) && value[end] != '"') ++end;
            terms.emplace_back(value.substr(i, end - i));
            i = end;
        }
    }
    if (terms.empty()) terms.emplace_back(value);
    return terms;
}

std::optional<std::string> highlight(std::string_view text, const std::vector<std::string>& terms) {
    std::vector<std::string> lowered_terms;
    for (const auto& term : terms) lowered_terms.push_back(to_lower(term));
    const std::string lowered = to_lower(std::string(text));
    std::string out;
    std::size_t at = 0;
    bool found = false;
    while (auto hit = find_term(lowered, at, lowered_terms)) {
        found = true;
        escape_into(out, text.substr(at, hit->first - at));
        out += "<mark>";
        escape_into(out, text.substr(hit->first, hit->second));
        out += "</mark>";
        at = hit->first + hit->second;
    }
    if (!found) return std::nullopt;
    escape_into(out, text.substr(at));
    return out;
}

Snippet search_snippet(std::string_view bytes, const std::vector<std::string>& terms) {
    Snippet snippet{nullptr, nullptr};
    auto message = mail::Message::parse(bytes);
    if (auto subject = highlight(message.header().decoded("Subject"), terms)) snippet.subject = *subject;
    const std::string body = collapse_space(email_body_text(bytes));
    std::vector<std::string> lowered_terms;
    for (const auto& term : terms) lowered_terms.push_back(to_lower(term));
    auto hit = find_term(to_lower(body), 0, lowered_terms);
    if (!hit) return snippet;
    // About a third of the window before the first match, the rest after it, cut on code points.
    std::size_t start = hit->first > kSnippetOctets / 3 ? code_point_start(body, hit->first - kSnippetOctets / 3) : 0;
    std::size_t end = std::min(body.size(), start + kSnippetOctets);
    if (end < body.size()) end = code_point_start(body, end);
    if (auto marked = highlight(std::string_view(body).substr(start, end - start), terms)) snippet.preview = *marked;
    return snippet;
}

}  // namespace magpie::http
