#include "base/log.h"

#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace magpie {

void setup_logging(std::string_view level) {
    auto logger = spdlog::stderr_color_mt("magpie");
    spdlog::set_default_logger(logger);
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    auto parsed = spdlog::level::from_str(std::string(level));
    spdlog::set_level(parsed == spdlog::level::off && level != "off" ? spdlog::level::info : parsed);
    spdlog::flush_on(spdlog::level::info);
}

}  // namespace magpie
