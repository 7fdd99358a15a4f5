// `magpie token add|list|revoke USER ...`: per-user API tokens for HTTP Bearer authentication (JMAP
// clients). The token is printed once by `add`; the store keeps only its SHA-256.
#pragma once

#include <memory>

#include <CLI/CLI.hpp>

#include "store/store.h"

namespace magpie::cli {

class TokenCommands {
public:
    // Registers the subcommands on `app`.
    explicit TokenCommands(CLI::App& app);
    bool parsed() const;
    bool read_only() const;
    // Runs the parsed subcommand; the process exit code.
    int run(store::Store& store) const;

private:
    CLI::App* add_ = nullptr;
    CLI::App* list_ = nullptr;
    CLI::App* revoke_ = nullptr;
    std::string user_;
    std::string name_;
    std::uint32_t expires_days_ = 0;  // 0 = never
};

}  // namespace magpie::cli
