// The api_tokens table (HTTP Bearer tokens for JMAP clients): its schema step, kept here so the store's
// migration list only names it.
#pragma once

namespace magpie::store::sqlite {

// Schema step 4. Only the SHA-256 of a token is kept (the token is 32 random bytes, so a plain hash is
// enough: nothing to brute-force); names are unique per account; a token dies with its account.
inline constexpr const char* kSchemaApiTokens = R"sql(
CREATE TABLE api_tokens(
  id INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  token_hash BLOB NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  UNIQUE(account_id, name)
);
)sql";

}  // namespace magpie::store::sqlite
