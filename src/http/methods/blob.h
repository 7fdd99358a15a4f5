// Binary data over JMAP (RFC 8620 6): upload (6.1), download (6.2) and Blob/copy (6.3). A blob id is the
// store's hex SHA-256; an account reads only its own uploads and the messages of its own mailboxes, so a
// blob id of another account is answered as unknown (404, or notFound), never served.
#pragma once

#include <cstdint>
#include <string_view>

#include "http/api.h"
#include "http/message.h"
#include "store/store.h"

namespace magpie::http {

// How long an upload stays when nothing references it (RFC 8620 6.1: at least one hour).
inline constexpr std::int64_t kUploadLifetimeSeconds = 24 * 3600;

// POST /jmap/upload/{accountId}/: 201 with {accountId, blobId, type, size} once the bytes are committed;
// 404 for another account's id, 413 (the "limit" problem, maxSizeUpload) above limits.max_size_upload.
Response upload_blob(store::Store& store, const store::Account& account, std::string_view path_account_id,
                     std::string_view content_type, std::string_view body, const ApiLimits& limits, std::int64_t now);

// GET /jmap/download/{accountId}/{blobId}/{name}?type=...: `rest` is the path after "/jmap/download/".
// The bytes with the (checked) type and an attachment Content-Disposition; 404 for anything not readable.
Response download_blob(store::Store& store, const store::Account& account, std::string_view rest,
                       std::string_view query);

// Blob/copy (RFC 8620 6.3).
void add_blob_methods(Dispatcher& dispatcher, store::Store& store, const store::Account& account);

}  // namespace magpie::http
