// The addresses an account may send as (its own address and the aliases that name it, never a catch-all):
// what SMTP submission checks From against, and what JMAP offers as Identities.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "store/store.h"

namespace magpie::store {

// The account's address first, then its aliases in the store's order.
Result<std::vector<std::string>> sender_addresses(Store& store, std::string_view account_address);

}  // namespace magpie::store
