// The network side of `magpie mail`: one IMAP connection driven by imap::client::Client and one SMTP
// submission driven by smtp::ClientSession, both over net::ClientConnection, each call blocking the
// command-line program until its exchange is done (the program does one thing at a time). TLS is always
// verified: against `ca_file` when set, else the system's store, with the host name (or IP address) the
// account names. Plaintext is refused unless every address the host resolves to is loopback.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "cli/mail_account.h"
#include "imap/client/client.h"
#include "imap/client/command.h"
#include "smtp/client_session.h"

namespace magpie::cli::mail_ui {

class ImapConnection {
public:
    // Connects, secures (implicit TLS or STARTTLS), logs in and learns the capabilities.
    static Result<std::unique_ptr<ImapConnection>> open(const Account& account, const std::string& password);
    ~ImapConnection();

    // Runs one command to its completion. NO and BAD are errors carrying the server's text unless
    // `allow_no`; a closed connection is always an error.
    Result<imap::client::Completed> run(const imap::client::Command& command, bool allow_no = false);
    bool has_capability(std::string_view name) const;
    // LOGOUT, then close; errors are ignored (the work is done).
    void logout();

    struct Impl;

private:
    explicit ImapConnection(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// Submits one message over SMTP (RFC 6409) with AUTH unless the account says not to; the results per
// recipient as the server answered them. An error only when nothing could be tried.
Result<std::vector<smtp::RecipientResult>> submit_message(const Account& account, const std::string& password,
                                                          smtp::OutgoingMessage message);

}  // namespace magpie::cli::mail_ui
