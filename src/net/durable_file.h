// Writing a small file so that a crash or power cut leaves either the old content or all of the new under its
// name, never an empty or partial file: a temporary file beside it is written and fsynced, renamed over the
// name, and the directory is fsynced so that the rename itself survives (the store's blobs are written the
// same way; ARCHITECTURE.md, "durable before acknowledged").
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string_view>

#include "base/result.h"

namespace magpie::net {

// `mode` applies to the new file from its creation (a key is never readable by others, even briefly).
// Errors: io_error naming the file and the failed step; the temporary file is removed on failure.
Result<void> write_file_durably(const std::filesystem::path& path, std::string_view content, mode_t mode);

}  // namespace magpie::net
