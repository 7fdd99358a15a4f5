#include "delivery/routing.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

namespace magpie::delivery {
namespace {

std::function<std::uint64_t()> counter(std::uint64_t start = 0) {
    return [n = start]() mutable { return n++ * 0x9E3779B97F4A7C15ull; };
}

TEST(MxRouting, HostsInPreferenceOrder) {
    MxAnswer answer{DnsStatus::ok, {{20, "b.example.org."}, {10, "a.example.org."}, {30, "c.example.org"}}, {}};
    auto plan = plan_mx_route("example.org", answer, counter());
    ASSERT_EQ(plan.kind, RoutePlan::Kind::hosts);
    EXPECT_EQ(plan.hosts, (std::vector<std::string>{"a.example.org", "b.example.org", "c.example.org"}));
}

TEST(MxRouting, EqualPreferencesComeInEveryOrderButStayAheadOfWorseOnes) {
    MxAnswer answer{DnsStatus::ok, {{10, "a"}, {10, "b"}, {10, "c"}, {20, "z"}}, {}};
    std::set<std::vector<std::string>> orders;
    std::mt19937_64 engine(7);
    for (int i = 0; i < 200; ++i) {
        auto plan = plan_mx_route("example.org", answer, [&] { return engine(); });
        ASSERT_EQ(plan.hosts.size(), 4u);
        EXPECT_EQ(plan.hosts.back(), "z");
        orders.insert(plan.hosts);
    }
    EXPECT_EQ(orders.size(), 6u);  // 3! orders of the equal hosts
}

TEST(MxRouting, NoMxRecordsMeansTheDomainItself) {
    auto plan = plan_mx_route("example.org", MxAnswer{DnsStatus::no_data, {}, {}}, counter());
    ASSERT_EQ(plan.kind, RoutePlan::Kind::hosts);
    EXPECT_EQ(plan.hosts, std::vector<std::string>{"example.org"});
}

TEST(MxRouting, NullMxFailsAtOnce) {
    auto plan = plan_mx_route("example.org", MxAnswer{DnsStatus::ok, {{0, "."}}, {}}, counter());
    EXPECT_EQ(plan.kind, RoutePlan::Kind::permanent_failure);
    EXPECT_EQ(plan.status, "5.1.10");
    EXPECT_NE(plan.reason.find("null MX"), std::string::npos);
}

TEST(MxRouting, NullMxBesideRealOnesIsIgnored) {
    auto plan = plan_mx_route("example.org", MxAnswer{DnsStatus::ok, {{0, "."}, {10, "mx.example.org"}}, {}}, counter());
    ASSERT_EQ(plan.kind, RoutePlan::Kind::hosts);
    EXPECT_EQ(plan.hosts, std::vector<std::string>{"mx.example.org"});
}

TEST(MxRouting, NonexistentDomainFailsAndDnsTroubleDefers) {
    auto gone = plan_mx_route("nowhere.example", MxAnswer{DnsStatus::no_domain, {}, {}}, counter());
    EXPECT_EQ(gone.kind, RoutePlan::Kind::permanent_failure);
    EXPECT_EQ(gone.status, "5.1.2");
    auto trouble = plan_mx_route("example.org", MxAnswer{DnsStatus::temporary, {}, "timeout"}, counter());
    EXPECT_EQ(trouble.kind, RoutePlan::Kind::temporary_failure);
    EXPECT_EQ(trouble.status[0], '4');
    EXPECT_NE(trouble.reason.find("timeout"), std::string::npos);
}

TEST(MxRouting, DuplicateHostsAreTriedOnce) {
    auto plan = plan_mx_route("example.org", MxAnswer{DnsStatus::ok, {{10, "MX.example.org."}, {20, "mx.example.org"}}, {}},
                              counter());
    EXPECT_EQ(plan.hosts, std::vector<std::string>{"mx.example.org"});
}

TEST(StaticRoutes, ExactDomainBeatsTheSmartHost) {
    RoutingConfig config;
    config.routes = {{"*", "smarthost.example", 587, true, false, "u", "p"}, {"partner.example", "10.0.0.5", 2525, false, false, "", ""}};
    auto partner = static_route(config, "Partner.Example");
    ASSERT_TRUE(partner);
    EXPECT_EQ(partner->host, "10.0.0.5");
    EXPECT_EQ(partner->port, 2525);
    auto other = static_route(config, "elsewhere.example");
    ASSERT_TRUE(other);
    EXPECT_EQ(other->host, "smarthost.example");
    EXPECT_FALSE(static_route(RoutingConfig{}, "elsewhere.example"));
}

TEST(StaticRoutes, RequireTlsPerDomain) {
    RoutingConfig config;
    config.require_tls = {"bank.example"};
    EXPECT_TRUE(tls_required(config, "BANK.example"));
    EXPECT_FALSE(tls_required(config, "shop.example"));
}

TEST(RecipientDomain, LowerCasedAfterTheLastAt) {
    EXPECT_EQ(recipient_domain("\"a@b\"@Example.ORG"), "example.org");
    EXPECT_EQ(recipient_domain("postmaster"), "");
}

}  // namespace
}  // namespace magpie::delivery
