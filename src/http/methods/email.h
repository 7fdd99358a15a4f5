// The Email, Thread and SearchSnippet methods (RFC 8621 3-5) over the store's Emails (store.h "Emails"):
// ids are store/object_id.h's ("e" + the Email id, "t" + the thread id: IMAP's EMAILID and THREADID); the
// Email and Thread state is the account state.
// Properties that come from the message bytes are computed by http/email_view.h from the stored blob.
#pragma once

#include <functional>
#include <optional>

#include "http/api.h"
#include "store/store.h"

namespace magpie::http {

void add_email_methods(Dispatcher& dispatcher, store::Store& store, const store::Account& account);

// The Email's store id in "e<n>" (store::parse_object_id); nullopt otherwise. email_id and thread_id are
// store::email_object_id and store::thread_object_id, named for the methods that use them.
std::optional<std::int64_t> email_number(std::string_view id);
std::string email_id(std::int64_t id);
std::string thread_id(std::int64_t id);

// Applies one Email/set update patch (RFC 8621 4.6: keywords and mailboxIds, whole or by path) to an
// Email; a SetError JSON when it is refused, null when done. Used by Email/set and by EmailSubmission's
// onSuccessUpdateEmail.
nlohmann::json update_email(store::Store& store, const store::Account& account, std::int64_t email,
                            const nlohmann::json& patch, const CallContext& context);

// The bytes of a blob the account may read, a message part ("<blob>.<part>") included; not_found otherwise.
Result<std::string> read_jmap_blob(store::Store& store, const store::Account& account, std::string_view blob_id);

}  // namespace magpie::http
