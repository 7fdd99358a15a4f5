// Reading a new password for `magpie user add|passwd`: from the terminal without echo (asked twice), or one
// line from standard input when it is not a terminal. Never from argv, where `ps` would show it.
#pragma once

#include <string>

#include "base/result.h"

namespace magpie::cli {

Result<std::string> read_new_password();

}  // namespace magpie::cli
