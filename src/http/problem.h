// RFC 7807 problem details, the answer to a request the API cannot run at all (RFC 8620 3.6.1) and to
// malformed or oversized HTTP requests.
#pragma once

#include <string>

namespace magpie::http {

struct Problem {
    int status = 400;
    std::string type;    // e.g. "urn:ietf:params:jmap:error:notJSON", or "about:blank"
    std::string detail;
    std::string limit;   // for urn:ietf:params:jmap:error:limit: the limit's name ("maxCallsInRequest")
};

inline constexpr const char* kProblemNotJson = "urn:ietf:params:jmap:error:notJSON";
inline constexpr const char* kProblemNotRequest = "urn:ietf:params:jmap:error:notRequest";
inline constexpr const char* kProblemUnknownCapability = "urn:ietf:params:jmap:error:unknownCapability";
inline constexpr const char* kProblemLimit = "urn:ietf:params:jmap:error:limit";

// {"type":..., "status":..., "detail":..., "limit":...} (application/problem+json).
std::string problem_json(const Problem& problem);

}  // namespace magpie::http
