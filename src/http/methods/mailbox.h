// RFC 8621 2: Mailbox/get, Mailbox/changes, Mailbox/query and Mailbox/queryChanges over the store's
// mailboxes. A Mailbox id is "m" followed by the store's mailbox number; its role is the special-use (and
// "inbox"); counts come from the store's kept counters (mailbox_status), never a scan of the messages.
// The state is a digest of every mailbox's id, name, role, subscription and counters, so it moves with any
// change IMAP or delivery makes; the store keeps no mailbox change log yet, so Mailbox/changes from an
// older state answers cannotCalculateChanges (RFC 8620 5.2 allows it).
#pragma once

#include "http/api.h"
#include "store/store.h"

namespace magpie::http {

// The account's current Mailbox state string, as Mailbox/get reports it (for push).
Result<std::string> mailbox_state(store::Store& store, const store::Account& account);

void add_mailbox_methods(Dispatcher& dispatcher, store::Store& store, const store::Account& account);

}  // namespace magpie::http
