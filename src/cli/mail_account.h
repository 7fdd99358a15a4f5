// The account `magpie mail` works for: who sends (From), where the IMAP and SMTP servers are, how to reach
// them (implicit TLS, STARTTLS, or plaintext, which only a loopback address may use), which CA to trust,
// and where the password comes from (a command, an environment variable, or a prompt on the terminal,
// never argv). Read from a small TOML file (docs/mail-client.md) and overridden by flags.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "base/result.h"

namespace magpie::cli::mail_ui {

enum class Security { implicit_tls, starttls, plaintext };

struct Endpoint {
    std::string host;
    std::uint16_t port = 0;  // 0: the default for the security (IMAP 993/143, submission 465/587)
    Security security = Security::starttls;
    std::string tls_name;  // the name the certificate must carry; empty: `host` (a name or an IP address)
};

struct Account {
    std::string address;  // the From address, local@domain
    std::string name;     // display name for From; may be empty
    std::string user;     // login name; empty means `address`
    Endpoint imap;
    Endpoint smtp;
    bool smtp_auth = true;  // false: submit without AUTH (a relay that trusts the network, e.g. port 25)
    std::string ca_file;    // PEM file of trusted CAs; empty: the system's store
    std::string password_command;  // run with /bin/sh -c; the first line of its output is the password
    std::string password_env;      // name of an environment variable holding the password
    std::string helo_name = "localhost";
    std::int64_t connect_timeout = 30;            // seconds
    std::int64_t command_timeout = 120;           // seconds per read or write
    std::uint64_t max_fetch_octets = 256u << 20;  // largest literal (message) accepted from the IMAP server
    std::string trash_mailbox;                    // empty: the mailbox LIST marks \Trash, else "Trash"
    std::string sent_mailbox;  // empty: the mailbox LIST marks \Sent, else "Sent"; "none": keep no copy

    const std::string& login() const { return user.empty() ? address : user; }
};

// Reads the account file; a missing `path` that was not asked for explicitly gives an empty account.
Result<Account> load_account(const std::filesystem::path& path, bool must_exist);
// The default account file: $MAGPIE_MAIL_CONFIG, else $XDG_CONFIG_HOME/magpie/mail.toml, else
// ~/.config/magpie/mail.toml.
std::filesystem::path default_account_path();
// Fills ports, checks what is required (hosts, a valid address) and that no value can smuggle a line.
Result<void> finish_account(Account& account);

Result<Security> parse_security(std::string_view text);
// The password: password_command, else password_env (when set in the environment), else a prompt on
// /dev/tty without echo (standard input may carry the message body).
Result<std::string> obtain_password(const Account& account);

}  // namespace magpie::cli::mail_ui
