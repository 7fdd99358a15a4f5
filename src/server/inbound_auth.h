// Inbound message authentication for port 25 (issue 18): mailauth::authenticate_inbound over a c-ares
// resolver bounded in time, and the [mailauth] policy applied to its verdict (deliver, file in Junk, or
// refuse with 550 5.7.1). Synchronous and blocking on DNS: SmtpService runs evaluate() on a pool of its
// own ([mailauth] threads), never on a network thread and never on the recipient-lookup pool.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"
#include "mailauth/inbound.h"
#include "mailauth/public_suffix.h"
#include "server/config.h"

namespace magpie::server {

struct InboundDecision {
    enum class Action { deliver, junk, reject };
    Action action = Action::deliver;
    std::string header;   // "Authentication-Results: ...\r\n", to go on top of the stored message
    // The received message with forged Authentication-Results fields removed, when it had any (`rewritten`);
    // otherwise empty, and the message stands as received (no copy of its bytes).
    std::string message;
    bool rewritten = false;
    std::string reason;   // reject: the reply text; junk: why (for the log)
    std::string summary;  // "spf=pass dkim=pass dmarc=pass", for the log line
};

class InboundAuthenticator {
public:
    // Reads the Public Suffix List once. Errors: those of PublicSuffixList::load (magpied refuses to start
    // with DMARC on and no list: organizational domains would be wrong, and DMARC with them).
    static Result<std::unique_ptr<InboundAuthenticator>> create(
        const std::string& public_suffix_list = mailauth::PublicSuffixList::kDebianPath);

    // Evaluates one message received from `client_ip` with `helo` and `mail_from` (no brackets, "" for <>),
    // with a resolver made for this call from `config`. Every lookup after [mailauth] max_time seconds
    // answers "unavailable" (SPF/DKIM/DMARC temperror) instead of waiting. Never fails: DNS trouble is a
    // temperror in the verdict, and a temperror never rejects or quarantines. With SPF, DKIM and DMARC all
    // off ([mailauth]) it makes no resolver and looks nothing up: see needs_dns.
    InboundDecision evaluate(const Config& config, const std::string& client_ip, const std::string& helo,
                             const std::string& mail_from, std::string_view message) const;

    // Whether evaluate() may look anything up under `config`; when not, it is a quick header scan that may run
    // on the caller's thread (the forged Authentication-Results fields still go, RFC 8601 5).
    static bool needs_dns(const Config& config) {
        const auto& m = config.mailauth;
        return m.spf || m.dkim || m.dmarc;
    }

private:
    explicit InboundAuthenticator(mailauth::PublicSuffixList psl) : psl_(std::move(psl)) {}
    mailauth::PublicSuffixList psl_;
};

}  // namespace magpie::server
