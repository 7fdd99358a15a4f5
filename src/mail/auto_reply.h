// Automatic replies (RFC 3834), as a vacation notice sends them (RFC 8621 8 VacationResponse): whether a
// received message may be answered at all, and the answer's Draft. Sans-IO: the caller keeps the "once per
// sender per period" record and queues what it builds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mail/builder.h"
#include "mail/mime.h"

namespace magpie::mail {

// RFC 3834 2: no reply to a null or automatic sender (MAILER-DAEMON, owner-*, *-request, postmaster
// aliases of daemons), to a message marked Auto-Submitted other than "no", to list or bulk mail (List-Id and
// the other RFC 2369/2919 List-* fields, Precedence bulk/list/junk), nor to a message that does not name the
// recipient in To, Cc, Bcc or their Resent- forms (it came through a list or a Bcc we cannot see).
// `reverse_path`: the SMTP MAIL FROM ("" = null); `recipients`: the recipient's addresses (its account
// and the aliases it was reached by), compared case-insensitively.
bool may_auto_reply(const Message& message, std::string_view reverse_path, const std::vector<std::string>& recipients);

struct AutoReplyText {
    MailboxSpec from;                 // the recipient answering
    std::string to;                   // the original's reverse path
    std::optional<std::string> subject;  // none: "Auto: " + the original subject (RFC 3834 3.1.5)
    std::optional<std::string> text, html;
};

// The reply: In-Reply-To and References from the original's Message-ID (RFC 3834 3.1.6) and
// Auto-Submitted: auto-replied (RFC 3834 5.2) so that other responders stay silent.
Draft auto_reply_draft(const Message& original, const AutoReplyText& reply);

// RFC 8621 8: an enabled VacationResponse answers messages that arrive on or after `from` and before `to`
// (Unix seconds; none = unbounded on that side).
bool vacation_active(bool enabled, std::optional<std::int64_t> from, std::optional<std::int64_t> to, std::int64_t now);

// RFC 3834 2 ("once per sender per period"): `replied` holds the senders answered in this period, oldest
// first. True, with `sender` appended, when it is not among them (case-insensitively); false when it was
// answered already. At `max_senders`, or when the list as a JSON array would exceed `max_octets`, the oldest
// are forgotten first, whichever bound is hit first, so the record stays bounded and storable (such a sender
// may be answered once more).
bool note_replied(std::vector<std::string>& replied, std::string_view sender, std::size_t max_senders,
                  std::size_t max_octets = SIZE_MAX);
// The octets `text` can take as a JSON string, quotes included: an upper bound whatever the serialiser does
// with escapes and invalid UTF-8 (each octet above 0x7f counted as a 3-octet U+FFFD).
std::size_t json_string_octets(std::string_view text);

}  // namespace magpie::mail
