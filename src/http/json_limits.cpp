#include "http/json_limits.h"

#include <fmt/format.h>

namespace magpie::http {
namespace {

// Depth and string lengths only; structure is left to the parser. Strings are skipped with their escapes
// so that brackets inside them do not count.
Result<void> check_limits(std::string_view text, const JsonLimits& limits) {
    std::size_t depth = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '"') {
            std::size_t start = ++i;
            while (i < text.size() && text[i] != '"') {
                if (text[i] == '\\') ++i;
                ++i;
            }
            if (i - start > limits.max_string_octets) {
                return make_error(Errc::limit_exceeded,
                                  fmt::format("a JSON string is longer than {} octets", limits.max_string_octets));
            }
        } else if (c == '[' || c == '{') {
            if (++depth > limits.max_depth) {
                return make_error(Errc::limit_exceeded,
                                  fmt::format("JSON nests deeper than {} levels", limits.max_depth));
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return {};
}

}  // namespace

Result<nlohmann::json> parse_json(std::string_view text, const JsonLimits& limits) {
    MAGPIE_TRY(check_limits(text, limits));
    auto value = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded()) return make_error(Errc::invalid_argument, "the body is not valid JSON");
    return value;
}

}  // namespace magpie::http
