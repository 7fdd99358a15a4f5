// API tokens (HTTP Bearer) in PostgreSQL: only the SHA-256 of a token is kept, names unique per account.
#include <fmt/format.h>

#include "store/postgres/postgres_store.h"

namespace magpie::store::postgres {
namespace {

constexpr std::size_t kMaxTokenNameOctets = 200;

ApiToken token_from(const Rows& rows, int i) {
    ApiToken token;
    token.id = rows.int64(i, 0);
    token.account_id = rows.int64(i, 1);
    token.account_address = rows.text(i, 2);
    token.name = rows.text(i, 3);
    token.created_at = rows.int64(i, 4);
    if (!rows.null(i, 5)) token.expires_at = rows.int64(i, 5);
    return token;
}

const std::string kColumns =
    "SELECT t.id, t.account_id, a.address, t.name, t.created_at, t.expires_at FROM api_tokens t "
    "JOIN accounts a ON a.id = t.account_id ";

}  // namespace

Result<ApiToken> PostgresStore::add_api_token(std::int64_t account_id, std::string_view name,
                                              std::string_view token_hash, std::int64_t created_at,
                                              std::optional<std::int64_t> expires_at) {
    if (name.empty() || name.size() > kMaxTokenNameOctets) {
        return make_error(Errc::invalid_argument, fmt::format("a token name has 1 to {} octets", kMaxTokenNameOctets));
    }
    if (token_hash.size() != 32) return make_error(Errc::invalid_argument, "a token hash is 32 octets (SHA-256)");
    return write<ApiToken>([&](Connection& db) -> Result<ApiToken> {
        auto account = db.exec("SELECT address FROM accounts WHERE id = $1", Params().add(account_id));
        if (!account) return account.error();
        if (account->empty()) return make_error(Errc::not_found, fmt::format("no account {}", account_id));
        std::string address = account->text(0, 0);
        Params params;
        params.add(account_id).add(name).add_bytes(token_hash).add(created_at);
        if (expires_at) {
            params.add(*expires_at);
        } else {
            params.add_null();
        }
        auto rows = db.exec(
            "INSERT INTO api_tokens(account_id, name, token_hash, created_at, expires_at) VALUES($1, $2, $3, $4, $5) "
            "ON CONFLICT(account_id, name) DO NOTHING RETURNING id",
            params);
        if (!rows) return rows.error();
        if (rows->empty()) return make_error(Errc::already_exists, fmt::format("a token named {} exists", name));
        return ApiToken{rows->int64(0, 0), account_id, std::move(address), std::string(name), created_at, expires_at};
    });
}

Result<std::vector<ApiToken>> PostgresStore::list_api_tokens(std::int64_t account_id) {
    return read<std::vector<ApiToken>>([&](Connection& db) -> Result<std::vector<ApiToken>> {
        auto rows = db.exec(kColumns + "WHERE t.account_id = $1 ORDER BY t.name COLLATE \"C\"", Params().add(account_id));
        if (!rows) return rows.error();
        std::vector<ApiToken> tokens;
        for (int i = 0; i < rows->size(); ++i) tokens.push_back(token_from(*rows, i));
        return tokens;
    });
}

Result<void> PostgresStore::revoke_api_token(std::int64_t account_id, std::string_view name) {
    return write<void>([&](Connection& db) -> Result<void> {
        auto done = db.exec("DELETE FROM api_tokens WHERE account_id = $1 AND name = $2", Params().add(account_id).add(name));
        if (!done) return done.error();
        if (done->affected() == 0) return make_error(Errc::not_found, fmt::format("no token named {}", name));
        return {};
    });
}

Result<ApiToken> PostgresStore::find_api_token(std::string_view token_hash) {
    return read<ApiToken>([&](Connection& db) -> Result<ApiToken> {
        auto rows = db.exec(kColumns + "WHERE t.token_hash = $1", Params().add_bytes(token_hash));
        if (!rows) return rows.error();
        if (rows->empty()) return make_error(Errc::not_found, "no such token");
        return token_from(*rows, 0);
    });
}

}  // namespace magpie::store::postgres
