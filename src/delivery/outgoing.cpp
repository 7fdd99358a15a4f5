#include "delivery/outgoing.h"

#include <spdlog/spdlog.h>

#include "mail/builder.h"
#include "mail/downgrade.h"
#include "mail/submission.h"
#include "mail/transfer_choice.h"

namespace magpie::delivery {

namespace {

// RFC 6376 5.3: a signer converts the message to the form that survives transport before signing, because
// any hop that re-encodes it afterwards breaks the body hash. Magpie's own SMTP client is such a hop: a
// peer without 8BITMIME gets 8-bit bodies as quoted-printable or base64 (RFC 6152 3), a NUL or a line over
// 998 octets is re-encoded for every peer, and bare CR or LF become CRLF. Signing the 7-bit form (what
// Wietse Venema recommends for Postfix with a signing milter, and what hMailServer's and JavaMail's users
// ended up doing by hand) means the client never changes a signed message, whatever the peer offers; an
// 8BITMIME peer decodes the same text from it. Returns the bytes to sign.
std::string fit_for_any_peer(std::string message, const std::string& log_id) {
    const mail::BodyStats stats = mail::measure_body(message);
    if (!mail::needs_7bit_downgrade(message) && stats.bare_cr_or_lf == 0) return message;
    auto seven_bit = mail::fit_enclosed_message(message, mail::Transport::seven_bit);
    if (seven_bit) return std::move(*seven_bit);
    // No 7-bit form: UTF-8 header fields (the message needs SMTPUTF8, and a server offering SMTPUTF8 offers
    // 8BITMIME too, RFC 6531 3.1, so the 8-bit form reaches every peer that may take it unchanged), or
    // 8-bit data under a transfer encoding nobody can re-encode. Line ends are still made canonical; a NUL
    // or an over-long line left here makes the client refuse the message (5.6.3) rather than alter it.
    spdlog::info("outgoing: {} signed in its 8-bit form: {}", log_id, seven_bit.error().message);
    return stats.bare_cr_or_lf > 0 ? mail::canonical_crlf(message) : message;
}

}  // namespace

Result<std::string> prepare_outgoing_message(const OutgoingDraft& draft, const mailauth::DkimSigner& signer) {
    mail::BuildEnv env = mail::system_build_env(draft.domain);
    env.now = draft.now;
    mail::SubmissionOptions options;
    options.smtputf8 = draft.smtputf8;
    auto completed = mail::complete_submission(draft.message, options, env);
    if (!completed) return make_error(completed.error().code, completed.error().message);
    std::string message = draft.trace + *completed;
    // Only a message that is signed needs the transport form now; an unsigned one keeps its 8-bit form
    // for the peers that take it.
    if (signer.has_keys_for(message)) message = fit_for_any_peer(std::move(message), draft.log_id);
    // Signed last, over the bytes that leave: nothing after this may change a signed field or the body.
    auto signature = signer.sign(message, static_cast<std::uint64_t>(draft.now));
    if (!signature) {
        // Unsigned mail may land in spam; refused mail is worse. The reason is in the log.
        spdlog::error("outgoing: {} not DKIM-signed: {}", draft.log_id, signature.error().message);
        return message;
    }
    if (signature->empty()) {
        spdlog::info(
            "outgoing: {} sent unsigned: no DKIM key for its From domain (magpie dkim keygen DOMAIN)",
            draft.log_id);
        return message;
    }
    return *signature + message;
}

}  // namespace magpie::delivery
