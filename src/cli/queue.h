// `magpie queue ...`: the delivery tracker and the queue's administration (issue 13): list, show ID, flush,
// retry ID, delete ID, hold ID, release ID, and add (queue a message file for delivery, e.g. to test
// routing).
#pragma once

#include <CLI/CLI.hpp>

#include "server/config.h"

namespace magpie::cli {

class QueueCommands {
public:
    // Registers `queue` and its subcommands on `app`.
    explicit QueueCommands(CLI::App& app);
    bool parsed() const { return queue_->parsed(); }
    // Runs the parsed subcommand against the configuration's data directory; returns the exit code.
    int run(const server::Config& config);

private:
    CLI::App* queue_;
    CLI::App* list_;
    CLI::App* show_;
    CLI::App* flush_;
    CLI::App* retry_;
    CLI::App* delete_;
    CLI::App* hold_;
    CLI::App* release_;
    CLI::App* add_;
    std::int64_t id_ = 0;
    bool all_ = false;
    std::string from_;
    std::vector<std::string> to_;
    std::string file_;
};

}  // namespace magpie::cli
