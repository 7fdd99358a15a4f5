// The one step every message leaving this server from a user goes through before it is queued, whichever
// way it came (SMTP submission today, JMAP EmailSubmission next): completed as RFC 6409 8 allows (Date,
// Message-ID and To when missing, Bcc removed: mail::complete_submission), the trace field put on top, and
// signed with DKIM (RFC 6376, RFC 8463) for the domain of its From field when that domain has keys
// (`magpie dkim keygen`). A domain without keys goes out unsigned, said in the log. A message to be signed
// is first put in its 7-bit form (RFC 6376 5.3: 8-bit, binary and over-long bodies re-encoded, bare line
// ends made CRLF), so no later hop, our SMTP client's downgrade for a peer without 8BITMIME included,
// changes the signed bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"
#include "mailauth/dkim_signer.h"

namespace magpie::delivery {

struct OutgoingDraft {
    std::string_view message;  // RFC 5322 bytes as the user agent sent them, CRLF
    std::string trace;         // the Received field(s) to put on top, CRLF-terminated; "" for none
    bool smtputf8 = false;     // UTF-8 header fields are allowed (RFC 6531)
    std::string domain;        // for a Message-ID when one is added: the sender's domain
    std::int64_t now = 0;      // Unix seconds: Date when added, and the signature's t=
    std::string log_id;        // names the message in log lines
};

// The bytes to queue: DKIM-Signature fields (when signed), then `trace`, then the completed message (in its
// 7-bit form when signed, except a message with UTF-8 header fields, which only SMTPUTF8 peers take and
// those offer 8BITMIME, RFC 6531 3.1).
// invalid_argument (or limit_exceeded) when the message cannot be completed: no From, a field twice that
// RFC 5322 3.6 allows once, and the others of mail::complete_submission; the reply to the client says why.
Result<std::string> prepare_outgoing_message(const OutgoingDraft& draft, const mailauth::DkimSigner& signer);

}  // namespace magpie::delivery
