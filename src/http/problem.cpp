#include "http/problem.h"

#include <nlohmann/json.hpp>

namespace magpie::http {

std::string problem_json(const Problem& problem) {
    nlohmann::json body = {{"type", problem.type.empty() ? "about:blank" : problem.type},
                           {"status", problem.status},
                           {"detail", problem.detail}};
    if (!problem.limit.empty()) body["limit"] = problem.limit;
    return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace magpie::http
