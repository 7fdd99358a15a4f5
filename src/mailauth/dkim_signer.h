// Outgoing DKIM signatures for submission (and JMAP later): every domain's keys loaded once from
// <data_dir>/dkim/ (dkim_keys.h), and each message signed with its From domain's newest RSA and newest
// Ed25519 key (RFC 8463 8: sign with both, so verifiers without Ed25519 still find an RSA signature).
// The From domain is the one DMARC aligns on, so that is the domain that signs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "mail/dkim.h"

namespace magpie::mailauth {

class DkimSigner {
public:
    // Loads every domain directory under <data_dir>/dkim/ (none: a signer with no keys). Per domain and
    // algorithm the greatest selector is used: keygen's date suffixes ("r20261129") sort by age. Errors:
    // io_error, corrupt (a key file that does not parse).
    static Result<DkimSigner> load(const std::filesystem::path& data_dir);

    bool has_keys(std::string_view domain) const;
    // Whether sign() would sign `message`: its From field names one domain that has keys.
    bool has_keys_for(std::string_view message) const;

    // The DKIM-Signature fields (each ending with CRLF) to put on top of `message`, signed for the domain
    // of its From field; "" when that domain has no keys or the From field names no single domain (the
    // message then goes out unsigned, which the caller may log). `now` is t=. Errors: those of
    // mail::dkim::sign().
    Result<std::string> sign(std::string_view message, std::uint64_t now) const;

private:
    struct Key {
        std::string selector;
        std::shared_ptr<mail::dkim::PrivateKey> key;
    };
    std::map<std::string, std::vector<Key>, std::less<>> keys_;  // domain -> newest key per algorithm
};

}  // namespace magpie::mailauth
