#include "delivery/routing.h"

#include <algorithm>

#include "base/strings.h"

namespace magpie::delivery {

std::optional<StaticRoute> static_route(const RoutingConfig& config, std::string_view domain) {
    for (const auto& route : config.routes) {
        if (iequals(route.domain, domain)) return route;
    }
    for (const auto& route : config.routes) {
        if (route.domain == "*") return route;
    }
    return std::nullopt;
}

bool tls_required(const RoutingConfig& config, std::string_view domain) {
    return std::ranges::any_of(config.require_tls, [&](const std::string& d) { return iequals(d, domain); });
}

std::string recipient_domain(std::string_view address) {
    auto at = address.rfind('@');
    if (at == std::string_view::npos) return {};
    return to_lower(address.substr(at + 1));
}

}  // namespace magpie::delivery
