// Email/query's conditions that only the message bytes answer (RFC 8621 4.4.1: text beyond the stored
// From/To/Cc/Subject, body, bcc, header, hasAttachment) and SearchSnippet's highlighting (RFC 8621 5).
// Sans-IO: bytes in, answers out, parsed with src/mail and http/email_view. Text matches are RFC 5051
// i;unicode-casemap substrings, as IMAP SEARCH's.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace magpie::http {

// The search terms of a "text" or "body" filter value (RFC 8621 4.4.1 leaves their reading to the server):
// words split at white space, a double-quoted run kept as one phrase (quotes dropped, an unclosed quote
// runs to the end). A message matches when it holds every term, as Cyrus, Stalwart and Dovecot's FTS read
// "quick fox". A value with no term ("" or blanks) is itself the one term, so it still matches everything.
std::vector<std::string> search_terms(std::string_view value);

// Does the message match the content condition, a one-member object: {"text": s} (the Bcc field or the
// body: the summary's fields are the store's), {"body": s}, {"bcc": s}, {"header": [name]} (the field is
// present), {"header": [name, value]} (a field of that name whose decoded value holds `value`) or
// {"hasAttachment": bool}? nullopt for anything else.
std::optional<bool> matches_content(std::string_view bytes, const nlohmann::json& condition);

// RFC 8621 5.1: the subject and a part of the body around the first match, HTML-escaped, each search term
// found marked with <mark></mark>; null where no term is found. `terms` are the filter's text, subject
// and body strings.
struct Snippet {
    nlohmann::json subject;  // string or null
    nlohmann::json preview;  // string of at most about 255 octets of text, or null
};
Snippet search_snippet(std::string_view bytes, const std::vector<std::string>& terms);

// HTML with each case-insensitive (ASCII) occurrence of a term in `text` wrapped in <mark></mark>, the
// rest escaped (&, <, >, ", '); nullopt when no term occurs.
std::optional<std::string> highlight(std::string_view text, const std::vector<std::string>& terms);

}  // namespace magpie::http
