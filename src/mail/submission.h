// Checking and completing a message a user agent submits (RFC 6409 8): From must be there; a message with
// no destination field gets "To: undisclosed-recipients:;"; Date and Message-ID are added when missing;
// 8-bit header fields are refused unless the client used SMTPUTF8 (RFC 6531, RFC 6532).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "mail/builder.h"
#include "mail/message.h"

namespace magpie::mail {

struct SubmissionOptions {
    bool smtputf8 = false;              // the client asked for SMTPUTF8: UTF-8 header fields are allowed
    bool strip_bcc = true;              // RFC 5322 3.6.3: Bcc is not shown to the other recipients
    std::size_t max_line_octets = 998;  // RFC 5322 2.1.1, header lines
    ParseLimits limits;                 // header field count and size
};

// Returns the message with the fixes applied; added fields go at the end of the header, with CRLF.
// Errors (invalid_argument unless noted): no From, more than one of a field RFC 5322 3.6 allows once, a
// From with several mailboxes and no Sender, 8-bit header octets without smtputf8 (or invalid UTF-8 with
// it), a header line over max_line_octets or a header over the parse limits (limit_exceeded).
Result<std::string> complete_submission(std::string_view message, const SubmissionOptions& options,
                                        const BuildEnv& env);

// The message's author addresses as submission checks them (RFC 5322 3.6.2): every mailbox of Sender: when
// present, otherwise of From: ("local@domain" each). Empty when there is no From: or no address in it.
std::vector<std::string> author_addresses(std::string_view message);

}  // namespace magpie::mail
