#include "store/sqlite/api_tokens.h"

#include <fmt/format.h>

#include "store/sqlite/sqlite_store.h"

namespace magpie::store::sqlite {
namespace {

constexpr std::size_t kMaxTokenNameOctets = 200;

ApiToken token_from(const Statement& statement) {
    ApiToken token;
    token.id = statement.column_int64(0);
    token.account_id = statement.column_int64(1);
    token.account_address = statement.column_text(2);
    token.name = statement.column_text(3);
    token.created_at = statement.column_int64(4);
    if (!statement.column_is_null(5)) token.expires_at = statement.column_int64(5);
    return token;
}

const std::string kColumns =
    "SELECT t.id, t.account_id, a.address, t.name, t.created_at, t.expires_at FROM api_tokens t "
    "JOIN accounts a ON a.id = t.account_id ";

}  // namespace

Result<ApiToken> SqliteStore::add_api_token(std::int64_t account_id, std::string_view name,
                                            std::string_view token_hash, std::int64_t created_at,
                                            std::optional<std::int64_t> expires_at) {
    if (name.empty() || name.size() > kMaxTokenNameOctets) {
        return make_error(Errc::invalid_argument, fmt::format("a token name has 1 to {} octets", kMaxTokenNameOctets));
    }
    if (token_hash.size() != 32) return make_error(Errc::invalid_argument, "a token hash is 32 octets (SHA-256)");
    return write<ApiToken>([&](Connection& db) -> Result<ApiToken> {
        auto account = db.prepare("SELECT address FROM accounts WHERE id = ?1");
        if (!account) return account.error();
        auto found = account->bind(1, account_id).step();
        if (!found) return found.error();
        if (!*found) return make_error(Errc::not_found, fmt::format("no account {}", account_id));
        std::string address = account->column_text(0);
        auto insert = db.prepare(
            "INSERT INTO api_tokens(account_id, name, token_hash, created_at, expires_at) VALUES(?1, ?2, ?3, ?4, ?5)");
        if (!insert) return insert.error();
        insert->bind(1, account_id).bind_text(2, name).bind_blob(3, token_hash).bind(4, created_at);
        if (expires_at) {
            insert->bind(5, *expires_at);
        } else {
            insert->bind_null(5);
        }
        auto done = insert->run();
        if (!done) {
            if (done.error().code == Errc::already_exists) {
                return make_error(Errc::already_exists, fmt::format("a token named {} exists", name));
            }
            return done.error();
        }
        return ApiToken{db.last_insert_rowid(), account_id, std::move(address), std::string(name), created_at,
                        expires_at};
    });
}

Result<std::vector<ApiToken>> SqliteStore::list_api_tokens(std::int64_t account_id) {
    return read<std::vector<ApiToken>>([&](Connection& db) -> Result<std::vector<ApiToken>> {
        auto statement = db.prepare(kColumns + "WHERE t.account_id = ?1 ORDER BY t.name");
        if (!statement) return statement.error();
        statement->bind(1, account_id);
        std::vector<ApiToken> tokens;
        for (;;) {
            auto row = statement->step();
            if (!row) return row.error();
            if (!*row) return tokens;
            tokens.push_back(token_from(*statement));
        }
    });
}

Result<void> SqliteStore::revoke_api_token(std::int64_t account_id, std::string_view name) {
    return write<void>([&](Connection& db) -> Result<void> {
        auto statement = db.prepare("DELETE FROM api_tokens WHERE account_id = ?1 AND name = ?2");
        if (!statement) return statement.error();
        MAGPIE_TRY(statement->bind(1, account_id).bind_text(2, name).run());
        if (db.changes() == 0) return make_error(Errc::not_found, fmt::format("no token named {}", name));
        return {};
    });
}

Result<ApiToken> SqliteStore::find_api_token(std::string_view token_hash) {
    return read<ApiToken>([&](Connection& db) -> Result<ApiToken> {
        auto statement = db.prepare(kColumns + "WHERE t.token_hash = ?1");
        if (!statement) return statement.error();
        auto row = statement->bind_blob(1, token_hash).step();
        if (!row) return row.error();
        if (!*row) return make_error(Errc::not_found, "no such token");
        return token_from(*statement);
    });
}

}  // namespace magpie::store::sqlite
