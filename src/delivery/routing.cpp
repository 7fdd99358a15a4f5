#include "delivery/routing.h"

#include <algorithm>

#include <fmt/format.h>

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

RoutePlan plan_mx_route(std::string_view domain, const MxAnswer& answer, const std::function<std::uint64_t()>& random) {
    RoutePlan plan;
    switch (answer.status) {
        case DnsStatus::temporary:
            plan.kind = RoutePlan::Kind::temporary_failure;
            plan.status = "4.4.3";
            plan.reason = fmt::format("DNS lookup of the MX of {} failed: {}", domain, answer.error);
            return plan;
        case DnsStatus::no_domain:
            plan.kind = RoutePlan::Kind::permanent_failure;
            plan.status = "5.1.2";
            plan.reason = fmt::format("the domain {} does not exist (DNS NXDOMAIN)", domain);
            return plan;
        case DnsStatus::no_data:
            plan.hosts.emplace_back(domain);  // RFC 5321 5.1: the implicit MX
            return plan;
        case DnsStatus::ok:
            break;
    }
    std::vector<MxRecord> records;
    for (const auto& r : answer.records) {
        std::string_view host = r.host;
        while (!host.empty() && host.back() == '.') host.remove_suffix(1);
        if (!host.empty()) records.push_back(MxRecord{r.preference, to_lower(host)});
    }
    if (records.empty()) {
        // RFC 7505 3: "MX 0 ." says the domain accepts no mail; an empty answer section is treated as no MX.
        if (answer.records.empty()) {
            plan.hosts.emplace_back(domain);
            return plan;
        }
        plan.kind = RoutePlan::Kind::permanent_failure;
        plan.status = "5.1.10";
        plan.reason = fmt::format("the domain {} accepts no mail (null MX, RFC 7505)", domain);
        return plan;
    }
    // Shuffle first, then a stable sort by preference: equal preferences keep their random order.
    for (std::size_t i = records.size(); i > 1; --i) {
        std::size_t j = static_cast<std::size_t>(random() % i);
        std::swap(records[i - 1], records[j]);
    }
    std::ranges::stable_sort(records, {}, &MxRecord::preference);
    for (auto& r : records) {
        if (std::ranges::find(plan.hosts, r.host) == plan.hosts.end()) plan.hosts.push_back(std::move(r.host));
    }
    return plan;
}

std::string recipient_domain(std::string_view address) {
    auto at = address.rfind('@');
    if (at == std::string_view::npos) return {};
    return to_lower(address.substr(at + 1));
}

}  // namespace magpie::delivery
