#include "store/senders.h"

#include "base/strings.h"

namespace magpie::store {

Result<std::vector<std::string>> sender_addresses(Store& store, std::string_view account_address) {
    std::vector<std::string> out{std::string(account_address)};
    std::size_t at = account_address.rfind('@');
    if (at == std::string_view::npos) return out;
    auto aliases = store.list_aliases(account_address.substr(at + 1));
    if (!aliases) return aliases.error();
    for (const auto& alias : *aliases) {
        if (!alias.address.empty() && alias.address.front() != '@' && iequals(alias.target, account_address)) {
            out.push_back(alias.address);
        }
    }
    return out;
}

}  // namespace magpie::store
