#include "http/methods/web_session.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "base/strings.h"
#include "http/methods/api_token.h"

namespace magpie::http {
namespace {

constexpr std::string_view kNamePrefix = "webmail:";

std::string random_hex(std::size_t octets) {
    unsigned char random[32];
    if (octets > sizeof random) octets = sizeof random;
    // Resource exhaustion, not an expected failure: without entropy no secret can be made at all.
    if (RAND_bytes(random, static_cast<int>(octets)) != 1) throw std::runtime_error("no randomness for a session");
    return to_hex(std::string_view(reinterpret_cast<const char*>(random), octets));
}

// SHA-256 of `purpose`, NUL, `value`: one secret, several unrelated values (the NUL keeps them apart from
// anything an HTTP header can carry).
std::string derive(std::string_view purpose, std::string_view value) {
    std::string input;
    input.reserve(purpose.size() + 1 + value.size());
    input.append(purpose).push_back('\0');
    input.append(value);
    return hash_api_token(input);
}

std::string store_key(std::string_view id) { return derive("magpie webmail session", id); }
std::string csrf_of(std::string_view id) { return to_hex(derive("magpie webmail csrf", id)); }
std::string password_tag(const store::Account& account) {
    return to_hex(std::string_view(hash_api_token(account.password_hash)).substr(0, 8));
}
std::string token_name(std::string_view id, const store::Account& account) {
    return fmt::format("{}{}:{}", kNamePrefix, to_hex(std::string_view(derive("magpie webmail tag", id)).substr(0, 8)),
                       password_tag(account));
}

bool is_session(const store::ApiToken& token) { return token.name.starts_with(kNamePrefix); }

}  // namespace

Result<WebSessions::Created> WebSessions::create(store::Store& store, const store::Account& account, std::int64_t now,
                                                 const WebSessionLimits& limits) {
    auto tokens = store.list_api_tokens(account.id);
    if (!tokens) return tokens.error();
    std::vector<store::ApiToken> live;
    for (auto& token : *tokens) {
        if (!is_session(token)) continue;
        if (token.expires_at && *token.expires_at <= now) {
            (void)store.revoke_api_token(account.id, token.name);  // gone already is as good
        } else {
            live.push_back(std::move(token));
        }
    }
    std::ranges::sort(live, [](const auto& a, const auto& b) { return a.created_at < b.created_at; });
    for (std::size_t i = 0; i + limits.max_sessions_per_account <= live.size(); ++i) {
        (void)store.revoke_api_token(account.id, live[i].name);
    }

    Created created;
    created.id = random_hex(32);
    created.session = WebSession{account.id, account.address, csrf_of(created.id)};
    const std::string name = token_name(created.id, account);
    auto added = store.add_api_token(account.id, name, store_key(created.id), now, now + limits.lifetime_seconds);
    if (!added) return added.error();
    std::lock_guard lock(mutex_);
    if (used_at_.size() >= limits.max_sessions) {
        // The oldest idle clocks go; their sessions start a new idle period on their next use.
        std::erase_if(used_at_, [&](const auto& item) { return now - item.second >= limits.idle_seconds; });
        while (used_at_.size() >= limits.max_sessions) {
            used_at_.erase(std::ranges::min_element(used_at_, {}, [](const auto& item) { return item.second; }));
        }
    }
    used_at_[name] = now;
    return created;
}

Result<WebSessions::Found> WebSessions::find(store::Store& store, std::string_view id, std::int64_t now,
                                             const WebSessionLimits& limits) {
    if (id.size() != 64) return make_error(Errc::auth_failed, "not signed in");
    auto token = store.find_api_token(store_key(id));
    if (!token) {
        if (token.error().code == Errc::not_found) return make_error(Errc::auth_failed, "not signed in");
        return token.error();
    }
    if (!is_session(*token)) return make_error(Errc::auth_failed, "not signed in");
    auto end = [&](std::string why) -> Error {
        (void)store.revoke_api_token(token->account_id, token->name);
        std::lock_guard lock(mutex_);
        used_at_.erase(token->name);
        return Error{Errc::auth_failed, std::move(why)};
    };
    if ((token->expires_at && *token->expires_at <= now) || now - token->created_at >= limits.lifetime_seconds) {
        return end("the session expired");
    }
    if (!touch(token->name, now, limits)) return end("the session expired");
    auto account = store.find_account(token->account_address);
    if (!account) {
        if (account.error().code == Errc::not_found) return end("the session's account no longer exists");
        return account.error();
    }
    if (account->id != token->account_id) return end("the session's account no longer exists");
    if (!token->name.ends_with(":" + password_tag(*account))) return end("the password changed; sign in again");
    if (account->disabled) return make_error(Errc::permission_denied, "the account is disabled");
    return Found{WebSession{account->id, account->address, csrf_of(id)}, std::move(*account)};
}

Result<void> WebSessions::destroy(store::Store& store, std::string_view id) {
    if (id.size() != 64) return {};
    auto token = store.find_api_token(store_key(id));
    if (!token && token.error().code == Errc::not_found) return {};
    if (!token) return token.error();
    if (!is_session(*token)) return {};
    {
        std::lock_guard lock(mutex_);
        used_at_.erase(token->name);
    }
    auto revoked = store.revoke_api_token(token->account_id, token->name);
    if (!revoked && revoked.error().code != Errc::not_found) return revoked.error();
    return {};
}

bool WebSessions::touch(const std::string& name, std::int64_t now, const WebSessionLimits& limits) {
    std::lock_guard lock(mutex_);
    auto [it, first_use] = used_at_.try_emplace(name, now);
    if (!first_use && now - it->second >= limits.idle_seconds) {
        used_at_.erase(it);
        return false;
    }
    it->second = now;
    return true;
}

std::size_t WebSessions::idle_clocks() {
    std::lock_guard lock(mutex_);
    return used_at_.size();
}

bool csrf_token_matches(const WebSession& session, std::string_view presented) {
    return presented.size() == session.csrf_token.size() && !presented.empty() &&
           CRYPTO_memcmp(presented.data(), session.csrf_token.data(), presented.size()) == 0;
}

}  // namespace magpie::http
