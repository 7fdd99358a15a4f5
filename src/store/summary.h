// Parse-once at delivery (ARCHITECTURE.md rule 4): what readers ask for most, computed by the message
// library from the stored bytes, in the form the store keeps beside every message. Every path that stores a
// message (SMTP delivery, IMAP APPEND, later JMAP) builds its Delivery::summary here.
#pragma once

#include <string_view>

#include "store/store.h"

namespace magpie::store {

MessageSummary summarize(std::string_view content);

}  // namespace magpie::store
