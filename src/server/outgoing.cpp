#include "server/outgoing.h"

#include <spdlog/spdlog.h>

#include "mail/builder.h"
#include "mail/submission.h"

namespace magpie::server {

Result<std::string> prepare_outgoing_message(const OutgoingDraft& draft, const mailauth::DkimSigner& signer) {
    mail::BuildEnv env = mail::system_build_env(draft.domain);
    env.now = draft.now;
    mail::SubmissionOptions options;
    options.smtputf8 = draft.smtputf8;
    auto completed = mail::complete_submission(draft.message, options, env);
    if (!completed) return make_error(completed.error().code, completed.error().message);
    std::string message = draft.trace + *completed;
    // Signed last, over the bytes that leave: nothing after this may change a signed field or the body.
    auto signature = signer.sign(message, static_cast<std::uint64_t>(draft.now));
    if (!signature) {
        // Unsigned mail may land in spam; refused mail is worse. The reason is in the log.
        spdlog::error("outgoing: {} not DKIM-signed: {}", draft.log_id, signature.error().message);
        return message;
    }
    if (signature->empty()) {
        spdlog::info("outgoing: {} sent unsigned: no DKIM key for its From domain (magpie dkim keygen DOMAIN)",
                     draft.log_id);
        return message;
    }
    return *signature + message;
}

}  // namespace magpie::server
