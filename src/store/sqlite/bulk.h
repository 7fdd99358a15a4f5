// Test and benchmark support: fills a mailbox with many copies of one small message straight through SQL,
// a few set-based statements in one transaction, keeping every invariant check_store verifies (one blob
// row shared by every copy, as COPY shares it; UIDs, MODSEQs, change log and kept counters). It bypasses
// the group committer: use it on a closed store, or expect it to wait for the store's writer
// (busy_timeout). Not a production path.
#pragma once

#include <cstdint>
#include <filesystem>

#include "base/result.h"

namespace magpie::store::sqlite {

struct BulkFill {
    std::int64_t mailbox_id = 0;
    std::uint32_t count = 0;
    std::uint32_t system_flags = 0;  // store/flags.h bits given to every message
    std::size_t body_bytes = 200;    // size of the message's body
};

// Appends `count` messages with new UIDs and MODSEQs (one each, as deliveries would). Returns the last UID.
Result<std::uint32_t> bulk_append(const std::filesystem::path& data_dir, const BulkFill& fill);

}  // namespace magpie::store::sqlite
