// Reading passwords: a new one for `magpie user add|passwd` from the terminal without echo (asked twice), or
// one line from standard input when it is not a terminal; and `magpie mail`'s, asked on the controlling
// terminal (/dev/tty) because standard input carries the message. Never from argv, where `ps` would show it.
#pragma once

#include <string>

#include "base/result.h"

namespace magpie::cli {

Result<std::string> read_new_password();

// Asks on /dev/tty with echo off; an error when there is no terminal. At most 1024 octets.
Result<std::string> read_password_from_terminal(const std::string& prompt);

}  // namespace magpie::cli
