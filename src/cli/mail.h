// `magpie mail ...`: a command-line mail user agent for any server: SMTP submission to send, IMAP to read
// and file (issue 15). Subcommands: send, list, read, reply (--all), forward (--attach), save, move,
// delete, flag, search, mailboxes. The account comes from a small TOML file or flags (mail_account.h);
// the wire work is in mail_net.h, the message work in mail_compose.h.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace magpie::cli {

class MailCommands {
public:
    // Registers `mail` and its subcommands on `app`.
    explicit MailCommands(CLI::App& app);
    ~MailCommands();
    bool parsed() const { return mail_->parsed(); }
    // Runs the parsed subcommand; returns the exit code (0 done, 1 failed, 2 refused input).
    int run();

    struct Options;

private:
    CLI::App* mail_;
    std::unique_ptr<Options> options_;
};

}  // namespace magpie::cli
