// Identity (RFC 8621 6) and VacationResponse (RFC 8621 8), kept as JMAP objects in the store
// (store/jmap_objects.h). Every address the account may send as (store/senders.h: its own and its aliases)
// has an identity, made when first asked for, which cannot be destroyed (mayDelete false); more may be
// created for those addresses (forbiddenFrom for any other). Ids are "i" + the store's object id; states
// are the store's per-type counter in decimal.
// The VacationResponse is stored only: magpied does not send automatic replies at delivery yet.
#pragma once

#include "http/api.h"
#include "store/store.h"

namespace magpie::http {

inline constexpr std::string_view kCapabilityVacationResponse = "urn:ietf:params:jmap:vacationresponse";

void add_identity_methods(Dispatcher& dispatcher, store::Store& store, const store::Account& account);
void add_vacation_response_methods(Dispatcher& dispatcher, store::Store& store, const store::Account& account);

// The account's identities, those of its sender addresses made if missing: (id, Identity object) pairs.
Result<std::vector<std::pair<std::string, nlohmann::json>>> account_identities(store::Store& store,
                                                                               const store::Account& account);

}  // namespace magpie::http
