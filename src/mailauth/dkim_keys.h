// Where a domain's DKIM private keys live: <data_dir>/dkim/<domain>/<selector>.pem, one PEM (PKCS#8) per
// key, mode 0600 in directories of mode 0700, owned by the user magpied runs as. The file name is the
// selector, so listing the directory is listing the DNS records to publish. Written durably (temporary
// file, fsync, rename, directory fsync): a crash leaves the old set or the new, never half a key.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "mail/dkim.h"

namespace magpie::mailauth {

struct StoredKey {
    std::string selector;
    mail::dkim::Algorithm algorithm = mail::dkim::Algorithm::rsa_sha256;
    std::filesystem::path path;
    std::string key_record;  // the TXT record for <selector>._domainkey.<domain>
};

std::filesystem::path dkim_key_dir(const std::filesystem::path& data_dir, std::string_view domain);

// Keys of `domain`, by selector. No directory: an empty list. Errors: io_error, corrupt (a key file that
// does not parse), invalid_argument (a domain that is no DNS name; it becomes a path).
Result<std::vector<StoredKey>> list_dkim_keys(const std::filesystem::path& data_dir, std::string_view domain);

struct KeygenOptions {
    std::string selector_suffix;  // appended to "r"/"e": callers pass the date, e.g. "20261129"
    unsigned rsa_bits = 2048;
    int owner_uid = -1;  // chown the files and directories to this user (root running for magpied)
    int owner_gid = -1;
};

// Creates an rsa-sha256 key (selector "r<suffix>") and an ed25519-sha256 key ("e<suffix>") for `domain`.
// Errors: already_exists when a selector is taken, io_error, invalid_argument for a bad domain or suffix.
Result<std::vector<StoredKey>> create_dkim_keys(const std::filesystem::path& data_dir,
                                                std::string_view domain, const KeygenOptions& options);

// Key rotation (RFC 6376 3.1, M3AAWG's practice): a new pair under fresh selectors while the old ones stay
// published and on disk, so mail signed before the switch still verifies; DkimSigner signs with the newest.
// The suffix is options.selector_suffix (a date), with "b", "c", ... appended when that one is taken (a
// second rotation on one day); "r20261129b" sorts after "r20261129", so the newest stays the greatest.
// Errors: those of create_dkim_keys, limit_exceeded after "z".
Result<std::vector<StoredKey>> rotate_dkim_keys(const std::filesystem::path& data_dir, std::string_view domain,
                                                const KeygenOptions& options);

// Removes one retired key (its DNS record can go once mail signed with it has been read, a few days).
// Errors: not_found, invalid_argument for a bad name, permission_denied for the newest key of its
// algorithm (the one signing now: rotate first), io_error.
Result<void> remove_dkim_key(const std::filesystem::path& data_dir, std::string_view domain,
                             std::string_view selector);

}  // namespace magpie::mailauth
