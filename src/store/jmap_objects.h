// What the store keeps for JMAP alone (RFC 8620, RFC 8621): blobs uploaded by an account (RFC 8620 6.1)
// and the JMAP-only objects (Identity, VacationResponse, EmailSubmission) as opaque JSON documents with a
// per-account, per-type state counter, so /get, /changes and /set have one durable model to work on. The
// store does not read the JSON: the methods in src/http/methods own its shape.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace magpie::store {

// A blob an account uploaded: its id is the content's hex SHA-256 (blob.h), like every stored blob.
struct UploadedBlob {
    std::string blob_id;
    std::string type;  // the Content-Type the client gave, or "application/octet-stream"
    std::uint64_t size = 0;
    std::int64_t created_at = 0;  // Unix seconds
};

// One JMAP object of one account and type. `created_state` and `updated_state` are values of the
// (account, type) state counter; a destroyed object stays as a tombstone so /changes can report it.
struct JmapObject {
    std::int64_t id = 0;  // unique across the store
    std::uint64_t created_state = 0;
    std::uint64_t updated_state = 0;  // the state of its last change (its destruction, for a tombstone)
    bool destroyed = false;
    std::string data;  // JSON text
};

struct JmapObjectList {
    std::uint64_t state = 0;  // the counter now; 0 before any write
    std::vector<JmapObject> objects;  // ascending id, tombstones included
};

// One /set's worth of changes, applied in one transaction under one new state.
struct JmapObjectWrite {
    std::optional<std::uint64_t> if_in_state;  // refuse (state_mismatch) unless the counter equals it
    std::vector<std::string> create;           // JSON texts
    std::vector<std::pair<std::int64_t, std::string>> update;  // id, new JSON text
    std::vector<std::int64_t> destroy;
};

struct JmapObjectWritten {
    bool state_mismatch = false;  // nothing was written
    std::uint64_t old_state = 0;
    std::uint64_t new_state = 0;  // equal to old_state when nothing changed
    std::vector<std::int64_t> created;  // ids, in `create` order
    std::vector<std::int64_t> missing;  // update or destroy ids with no live object of this account and type
};

}  // namespace magpie::store
