#include "cli/token.h"

#include <iostream>

#include <fmt/format.h>

#include "base/time.h"
#include "http/methods/api_token.h"

namespace magpie::cli {

TokenCommands::TokenCommands(CLI::App& app) {
    auto* token = app.add_subcommand("token", "manage a user's API tokens (HTTP Bearer, for JMAP clients)");
    token->require_subcommand(1);
    add_ = token->add_subcommand("add", "make a token and print it (once: only its hash is kept)");
    add_->add_option("user", user_)->required();
    add_->add_option("name", name_, "a name to list and revoke it by")->required();
    add_->add_option("--expires-days", expires_days_, "expire after this many days (default: never)");
    list_ = token->add_subcommand("list", "list a user's tokens: name, created, expires");
    list_->add_option("user", user_)->required();
    revoke_ = token->add_subcommand("revoke", "revoke a token by name");
    revoke_->add_option("user", user_)->required();
    revoke_->add_option("name", name_)->required();
}

bool TokenCommands::parsed() const { return add_->parsed() || list_->parsed() || revoke_->parsed(); }
bool TokenCommands::read_only() const { return list_->parsed(); }

int TokenCommands::run(store::Store& store) const {
    auto fail = [](const std::string& message) {
        std::cerr << "magpie: " << message << "\n";
        return 1;
    };
    auto account = store.find_account(user_);
    if (!account) return fail(fmt::format("no user {}", user_));
    if (add_->parsed()) {
        const std::int64_t now = unix_now();
        std::optional<std::int64_t> expires;
        if (expires_days_ > 0) expires = now + std::int64_t{expires_days_} * 86400;
        auto made = http::make_api_token();
        auto added = store.add_api_token(account->id, name_, made.hash, now, expires);
        if (!added) return fail(added.error().message);
        std::cout << made.token << "\n";
        return 0;
    }
    if (list_->parsed()) {
        auto tokens = store.list_api_tokens(account->id);
        if (!tokens) return fail(tokens.error().message);
        for (const auto& t : *tokens) {
            std::cout << fmt::format("{} created {} expires {}\n", t.name, rfc5322_date(t.created_at),
                                     t.expires_at ? rfc5322_date(*t.expires_at) : "never");
        }
        return 0;
    }
    auto revoked = store.revoke_api_token(account->id, name_);
    return revoked ? 0 : fail(revoked.error().message);
}

}  // namespace magpie::cli
