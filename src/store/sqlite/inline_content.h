// The bytes of an inline blob as blob_contents keeps them: as received, or as one zstd frame (RFC 8878) when
// that is smaller. blobs.location says which (rows.h: kLocationInline, kLocationInlineZstd); blobs.size and
// the blob id (SHA-256) are always those of the message itself, so what is stored never changes what a
// client reads, only how many bytes the database and its WAL hold (issue 17).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace magpie::store::sqlite {

// Highest zstd level `[store] compression_level` accepts; 0 stores every body as received.
inline constexpr int kMaxCompressionLevel = 19;

// Each thread that compresses keeps one zstd context for its lifetime (about 75 KiB after 4 KiB bodies, up
// to 550 KiB after a 128 KiB one), and each that expands one keeps a context of about 96 KiB: a fixed cost
// per thread (network threads, write pools), never per connection.

// `content` as one zstd frame at `level` (1..kMaxCompressionLevel), or nullopt when compression is off
// (level 0), the content is under 512 bytes, or the frame would save less than an eighth of it: then the
// bytes are stored as they are.
std::optional<std::string> compress_inline(std::string_view content, int level);

// The message bytes of a blob_contents value stored at `location` (kLocationInline or kLocationInlineZstd),
// which must come to `size` bytes, at most `max_bytes` (the store's max_message_bytes: a damaged size row
// never makes this allocate more). Errors: corrupt (a frame that does not decode, or decodes to another size,
// or a size above max_bytes), invalid_argument (another location).
Result<std::string> expand_inline(std::int64_t location, std::string stored, std::uint64_t size,
                                  std::uint64_t max_bytes);

}  // namespace magpie::store::sqlite
