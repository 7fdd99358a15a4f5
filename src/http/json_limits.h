// Bounded JSON for the JMAP endpoint: a linear pre-scan that refuses deep nesting and long strings before
// nlohmann::json builds anything (a JSON bomb costs one pass over the bytes, no allocation), then the parse.
#pragma once

#include <cstddef>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/result.h"

namespace magpie::http {

struct JsonLimits {
    std::size_t max_depth = 64;                  // nested arrays/objects
    std::size_t max_string_octets = 1u << 20;    // one string (or key) as written, escapes included
};

// limit_exceeded when the text nests deeper or holds a longer string than `limits` allow; invalid_argument
// when it is not JSON (RFC 8259). Never throws.
Result<nlohmann::json> parse_json(std::string_view text, const JsonLimits& limits);

}  // namespace magpie::http
