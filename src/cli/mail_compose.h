// What `magpie mail` does with messages between the network and the terminal, without IO: reading a
// fetched message for a person (text part, or HTML rendered to text; attachments listed), composing
// replies and forwards (subject prefixes, In-Reply-To/References, the quoted original), guessing an
// attachment's media type from its file name, and refusing header injection in what a person typed.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "mail/builder.h"
#include "mail/mime.h"

namespace magpie::cli::mail_ui {

// Refuses a header value typed by a person when it holds CR, LF or NUL (header injection: a subject
// "x\r\nBcc: victim@..." must not become a second field). `what` names the field for the message.
Result<void> check_header_input(std::string_view what, std::string_view value);

// An address list as a person types it ("Ann <a@x.test>, b@y.test") into mailboxes for the builder;
// every entry must be local@domain. CR/LF anywhere is refused (check_header_input).
Result<std::vector<mail::MailboxSpec>> parse_recipients(std::string_view what, std::string_view text);

// HTML to plain text for a terminal (libxml2's HTML parser, tolerant of real-world markup): block elements
// and <br> break lines, list items get "- ", links keep their target ("text <url>"), script, style and
// head are dropped, runs of white space collapse, at most one blank line in a row.
std::string html_to_text(std::string_view html);

// A leaf of the message worth showing as an attachment.
struct AttachmentInfo {
    std::uint32_t part = 0;  // index into Message::parts()
    std::string filename;    // decoded; "part-N" when the part has none
    std::string content_type;
    std::size_t size = 0;  // decoded octets
};

// A message as `magpie mail read` shows it.
struct Readable {
    std::string from, to, cc, date, subject;  // decoded for display
    std::string text;                         // the body for reading (UTF-8)
    bool from_html = false;                   // rendered from text/html (no text/plain alternative)
    std::vector<AttachmentInfo> attachments;
};

// Picks the body (the first text/plain that is not an attachment; else text/html rendered) and lists the
// attachments (leaves with disposition attachment, or with a file name and not the body).
Readable readable(const mail::Message& message);

// A file name from a message made safe to write in a directory: no directories, no leading dots, no
// control characters; "attachment" when nothing is left.
std::string safe_filename(std::string_view name);

// Media type for a file name from the system's mime.types (media-types package, "type ext ext" lines), or
// application/octet-stream. `mime_types` is the table file.
std::string guess_media_type(const std::filesystem::path& file,
                             const std::filesystem::path& mime_types = "/etc/mime.types");

// "Re: subject" unless it starts with a reply prefix already (Re:, RE:, Aw:), likewise "Fwd: subject"
// (Fwd:, Fw:). Leading white space is dropped.
std::string reply_subject(std::string_view subject);
std::string forward_subject(std::string_view subject);

// What a reply keeps from its original.
struct Original {
    std::string message_id;    // "<id@host>" or empty
    std::string references;    // the original's References (or In-Reply-To when it has none)
    std::string subject;       // decoded
    std::string date;          // as written
    std::string from_display;  // "Name <a@b>" decoded
    std::string from_name;     // the name, else the address
    std::vector<mail::MailboxSpec> from, reply_to, to, cc;
    std::string text;  // readable body
};
Original original_of(const mail::Message& message);

// The reply's headers and recipients (RFC 5322 3.6.4): To the Reply-To (else From); with `all`, the
// original To and Cc go to Cc, without `self` and without duplicates. In-Reply-To is the original's
// Message-ID; References its References (or In-Reply-To) followed by that Message-ID.
void address_reply(const Original& original, bool all, std::string_view self, mail::Draft& draft);

// "On DATE, NAME wrote:" and the original text with "> " before every line (">" before an empty one).
std::string quote(const Original& original);

// The inline forward's body: a "Forwarded message" block with From, Date, Subject and To, then the text.
std::string forward_block(const Original& original);

// A draft saved earlier (`--draft`, or another client's Drafts) made ready to finish: its To, Cc, Bcc,
// subject, In-Reply-To and References, its readable text and its attachments (decoded), so sending it builds
// a new message from what the person wrote rather than resubmitting the stored bytes (which name the Bcc).
mail::Draft draft_of(const mail::Message& message);

}  // namespace magpie::cli::mail_ui
