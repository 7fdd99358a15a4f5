// The delivery tracker's text (`magpie queue list` and `magpie queue show ID`): per recipient its state, each
// attempt with time, host, address, TLS and the remote reply, and the last attempt's conversation as C:/S:
// lines. Pure formatting of what the queue keeps; the same record is what JMAP will show later.
#pragma once

#include <string>
#include <vector>

#include "delivery/queue.h"

namespace magpie::delivery {

// One line per entry: id, queued time (UTC), size, sender, then each recipient with its state.
std::string format_list(const std::vector<QueueEntry>& entries);

// The whole record of one entry (get() with attempts).
std::string format_entry(const QueueEntry& entry);

}  // namespace magpie::delivery
