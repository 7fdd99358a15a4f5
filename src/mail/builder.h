// Composing messages: header fields from a draft (addresses, subject, ids, dates), text and HTML bodies and
// attachments arranged as multipart/alternative inside multipart/mixed, 7-bit unless 8BITMIME or SMTPUTF8
// is allowed. Time and randomness come in through BuildEnv so that output is reproducible under test.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "mail/header_encode.h"
#include "mail/transfer_choice.h"

namespace magpie::mail {

// Where generated values come from: the Date, and the randomness in Message-IDs and boundaries.
struct BuildEnv {
    std::int64_t now = 0;                   // Unix seconds, for Date and Message-ID
    std::function<std::uint64_t()> random;  // 64 random bits per call; required
    std::string domain = "localhost";       // right-hand side of generated Message-IDs
};

// An environment on the system clock (read now, once: one environment per message) and std::random_device.
BuildEnv system_build_env(std::string domain);

// "<time.random@domain>" (RFC 5322 3.6.4), unique given 128 random bits.
std::string generate_message_id(const BuildEnv& env);

// A multipart boundary (RFC 2046 5.1.1) that cannot occur in base64 or quoted-printable text.
std::string generate_boundary(const BuildEnv& env);

// What the output may contain.
struct BuildOptions {
    Transport transport = Transport::seven_bit;  // eight_bit allows 8bit text parts (RFC 6152)
    bool utf8_headers = false;                   // SMTPUTF8: raw UTF-8 in header fields (RFC 6532)
    bool write_bcc = false;                      // RFC 5322 3.6.3: the sent copy normally has no Bcc
    std::size_t max_attachments = 100;
    std::size_t max_message_octets = 64u << 20;  // the built message, encoded
    FoldLimits fold;
};

struct Attachment {
    std::string filename;                                   // UTF-8; RFC 2231-encoded when not ASCII
    std::string content_type = "application/octet-stream";  // "type/subtype", no parameters
    std::string data;                                       // the bytes themselves
    bool inline_disposition = false;                        // Content-Disposition: inline
    std::string content_id;                                 // without angle brackets; empty for none
};

struct Draft {
    MailboxSpec from;  // empty (no name, no address): no From field, as in an unfinished draft
    std::optional<MailboxSpec> sender;
    std::vector<MailboxSpec> reply_to, to, cc, bcc;
    std::string subject;              // UTF-8
    std::optional<std::string> text;  // UTF-8 text/plain body
    std::optional<std::string> html;  // UTF-8 text/html body
    std::vector<Attachment> attachments;
    std::string message_id;            // "<id@host>"; empty means generated
    std::optional<std::int64_t> date;  // Unix seconds; empty means env.now
    std::string in_reply_to;           // msg-ids as written, "<a@b> <c@d>"
    std::string references;
    std::vector<std::pair<std::string, std::string>> extra_fields;  // name, UTF-8 unstructured value
};

// One MIME entity ready to place: its header fields (folded, each ending CRLF, no blank line) and its body
// in transfer encoding.
struct EncodedPart {
    std::string header;
    std::string body;
};

// A leaf: Content-Type (with parameters already joined), Content-Transfer-Encoding chosen for the transport,
// and any extra fields (already folded). `text` bodies are canonicalised to CRLF line ends first, and a
// body with lines longer than fold.soft_line_octets is quoted-printable so that every line stays short.
// message/rfc822, message/partial and message/external-body are never base64 or quoted-printable
// (RFC 2046 5.2): one that does not fit the transport is an error here (see downgrade.h to make it fit;
// build_message does so for message attachments).
Result<EncodedPart> make_leaf(std::string_view content_type, std::string_view content, bool text,
                              Transport transport, const FoldLimits& fold = {},
                              std::string extra_fields = {});

// A multipart of `subtype` (with extra Content-Type parameters) holding `parts`, with a fresh boundary
// that occurs in none of them.
Result<EncodedPart> make_multipart(std::string_view subtype, std::vector<EncodedPart> parts,
                                   const BuildEnv& env,
                                   const std::vector<std::string>& extra_parameters = {});

// "header fields + MIME-Version + part header + blank line + body", ending with CRLF.
std::string assemble_message(std::string_view top_fields, const EncodedPart& body);

// Converts bare LF and bare CR to CRLF (RFC 2046 4.1.1 canonical text).
std::string canonical_crlf(std::string_view text);
// True when `text` holds an LF without a CR before it.
bool has_bare_lf(std::string_view text);
// Each LF without a CR before it becomes CRLF; everything else, a lone CR included, stays as it is. What IMAP
// APPEND stores: Dovecot serves a bare-LF message with CRLF and counts RFC822.SIZE so, and keeps a lone CR.
std::string bare_lf_to_crlf(std::string_view text);

// A message made fit to be enclosed as message/rfc822 (which takes no transfer encoding, RFC 2046 5.2.1) in
// a message for `transport`: parts that do not fit are re-encoded (downgrade.h) and bare line ends become
// CRLF. Errors are downgrade_to_7bit's (an 8-bit header cannot be fixed this way).
Result<std::string> fit_enclosed_message(std::string_view message, Transport transport);

// Builds the complete message from a draft.
Result<std::string> build_message(const Draft& draft, const BuildOptions& options, const BuildEnv& env);

// The RFC 5321 envelope recipients of a draft: To, Cc and Bcc addresses, without duplicates, in order.
std::vector<std::string> envelope_recipients(const Draft& draft);

}  // namespace magpie::mail
