#include <gtest/gtest.h>

#include "delivery/routing.h"

namespace magpie::delivery {
namespace {

TEST(StaticRoutes, ExactDomainBeatsTheSmartHost) {
    RoutingConfig config;
    config.routes = {{"*", "smarthost.example", 587, true, false, "u", "p"},
                     {"partner.example", "10.0.0.5", 2525, false, false, "", ""}};
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
