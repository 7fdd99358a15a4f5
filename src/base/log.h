// Logging setup: one spdlog logger for the whole process, lines to stderr. Modules log through spdlog's
// free functions (spdlog::info, ...); only the server and the CLI call setup_logging.
#pragma once

#include <string_view>

namespace magpie {

// level: "trace", "debug", "info", "warn", "error"; unknown names mean "info".
void setup_logging(std::string_view level);

}  // namespace magpie
