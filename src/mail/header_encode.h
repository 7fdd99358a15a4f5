// Writing header fields: RFC 2047 encoded words for non-ASCII text and display names, RFC 2231 parameter
// values, address lists, and folding (RFC 5322 2.1.1: lines SHOULD be at most 78 octets, MUST be at most
// 998). Everything here produces 7-bit output unless the caller allows UTF-8 headers (RFC 6532, SMTPUTF8).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace magpie::mail {

// Bounds on written header lines.
struct FoldLimits {
    std::size_t soft_line_octets = 78;   // RFC 5322 2.1.1 SHOULD, without the CRLF
    std::size_t hard_line_octets = 998;  // RFC 5322 2.1.1 MUST, without the CRLF
};

// Encodes unstructured UTF-8 text (Subject, Comments, ...) for a header: words that are plain printable
// ASCII stay as they are; runs of words with non-ASCII, control characters, a "=?" that a reader would take
// for an encoded word, or longer than fits a folded line become RFC 2047 encoded words in UTF-8, each at
// most 75 octets (RFC 2047 2), never splitting a character (RFC 2047 5 rule 3), with B or Q chosen per run
// by length. With utf8_headers (RFC 6532) only control characters and overlong words are encoded.
// Invalid UTF-8 is an error.
Result<std::string> encode_unstructured(std::string_view utf8_text, bool utf8_headers = false);

// Encodes a display name as an RFC 5322 phrase: atoms as they are, quoted-string when it holds specials,
// RFC 2047 encoded words (restricted Q set, RFC 2047 5 rule 3) for words with non-ASCII unless
// utf8_headers. An empty name gives an empty string. Invalid UTF-8 is an error.
Result<std::string> encode_phrase(std::string_view utf8_name, bool utf8_headers = false);

// Encodes all of valid UTF-8 `utf8_text` as RFC 2047 encoded words in UTF-8 of at most 75 octets each,
// separated by single spaces (which readers drop between encoded words, RFC 2047 6.2): B or Q, whichever
// is shorter. `phrase` restricts Q to the octets a phrase may hold literally (RFC 2047 5 rule 3).
std::string encode_words(std::string_view utf8_text, bool phrase);

// A mailbox to write: a display name in UTF-8 (may be empty) and an addr-spec "local@domain".
struct MailboxSpec {
    std::string name;
    std::string address;
};

// Checks and normalises an addr-spec for writing: a local part that is not a dot-atom is quoted (RFC 5322
// 3.4.1); the domain is a dot-atom or a domain literal. Non-ASCII needs utf8_headers (RFC 6532 3.2),
// since the domain would need IDNA and the local part SMTPUTF8.
Result<std::string> format_addr_spec(std::string_view address, bool utf8_headers = false);

// "Name <local@domain>" or "local@domain" when the name is empty.
Result<std::string> format_mailbox(const MailboxSpec& mailbox, bool utf8_headers = false);

// "a, b, c": mailboxes joined for To, Cc, From, Reply-To.
Result<std::string> format_mailbox_list(const std::vector<MailboxSpec>& mailboxes, bool utf8_headers = false);

// One MIME parameter as one or more "; "-separable segments (RFC 2045 5.1, RFC 2231): a token as it is,
// a quoted-string when it holds tspecials or spaces, RFC 2231 continuations (name*0="..." name*1="...")
// when it is too long for a line, and name*0*=UTF-8''%XX... when it holds non-ASCII or control octets
// (unless utf8_headers, where a UTF-8 quoted-string is allowed, RFC 6532 3.2) or "=?" (which readers would
// take for the start of an RFC 2047 word). Invalid UTF-8 is an error.
Result<std::vector<std::string>> encode_parameter(std::string_view name, std::string_view utf8_value,
                                                  bool utf8_headers = false);

// "value; p1; p2" with each parameter segment from encode_parameter.
std::string join_parameters(std::string_view value, const std::vector<std::string>& segments);

// Writes "Name: value" folded with CRLF before white space so that lines stay within soft_line_octets where
// the white space allows and never exceed hard_line_octets (error limit_exceeded when a run without white
// space is too long). The result ends with CRLF. The value must have no CR or LF of its own.
Result<std::string> fold_field(std::string_view name, std::string_view value, const FoldLimits& limits = {});

// `s` as a quoted-string: wrapped in DQUOTE with '"' and '\\' escaped. RFC 5322 3.2.4 and IMAP's quoted
// (RFC 9051 4.3) share this form; the caller makes sure `s` holds no CR, LF or NUL.
std::string quoted_string(std::string_view s);

}  // namespace magpie::mail
