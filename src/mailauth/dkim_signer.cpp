#include "mailauth/dkim_signer.h"

#include <fstream>
#include <sstream>

#include "base/strings.h"
#include "mailauth/dkim_keys.h"
#include "mailauth/dmarc.h"

namespace magpie::mailauth {

Result<DkimSigner> DkimSigner::load(const std::filesystem::path& data_dir) {
    DkimSigner signer;
    std::filesystem::path root = data_dir / "dkim";
    std::error_code ec;
    if (!std::filesystem::is_directory(root, ec)) return signer;
    for (const auto& entry : std::filesystem::directory_iterator(root, ec)) {
        if (!entry.is_directory()) continue;
        std::string domain = entry.path().filename().string();
        auto stored = list_dkim_keys(data_dir, domain);
        if (!stored) return stored.error();
        // Sorted by selector: the last of each algorithm is the newest.
        std::map<mail::dkim::Algorithm, const StoredKey*> newest;
        for (const auto& key : *stored) newest[key.algorithm] = &key;
        for (const auto& [algorithm, stored_key] : newest) {
            std::ifstream in(stored_key->path, std::ios::binary);
            std::stringstream pem;
            pem << in.rdbuf();
            auto key = mail::dkim::PrivateKey::from_pem(pem.str());
            if (!key)
                return make_error(Errc::corrupt, stored_key->path.string() + ": " + key.error().message);
            signer.keys_[domain].push_back(
                Key{stored_key->selector, std::make_shared<mail::dkim::PrivateKey>(std::move(*key))});
        }
    }
    if (ec) return make_error(Errc::io_error, "cannot list " + root.string() + ": " + ec.message());
    return signer;
}

bool DkimSigner::has_keys(std::string_view domain) const {
    return keys_.count(to_lower(domain)) > 0;
}

bool DkimSigner::has_keys_for(std::string_view message) const {
    auto domain = from_domain(message);
    return domain && keys_.count(*domain) > 0;
}

Result<std::string> DkimSigner::sign(std::string_view message, std::uint64_t now) const {
    auto domain = from_domain(message);
    if (!domain) return std::string();
    auto found = keys_.find(*domain);
    if (found == keys_.end()) return std::string();
    std::string fields;
    for (const auto& key : found->second) {
        mail::dkim::SignOptions options;
        options.domain = *domain;
        options.selector = key.selector;
        options.timestamp = now;
        auto field = mail::dkim::sign(message, *key.key, options);
        if (!field) return field.error();
        fields += *field;
    }
    return fields;
}

}  // namespace magpie::mailauth
