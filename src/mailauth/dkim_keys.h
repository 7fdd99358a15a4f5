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

}  // namespace magpie::mailauth
