// dns::Resolver against a real DNS server: a dnsmasq this test starts on 127.0.0.53 and a free port,
// answering only from the records given on its command line (no upstream, no /etc/hosts).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dns/resolver.h"
#include "dnsmasq.h"

namespace magpie::dns {
namespace {

using testing::Dnsmasq;
using testing::free_port;
using testing::kAddress;

class DnsTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        server_ = new Dnsmasq({
            // Every name under .test is answered here only: unknown ones get NXDOMAIN.
            "--local=/test/",
            "--mx-host=example.test,mx1.example.test,10",
            "--mx-host=example.test,mx2.example.test,10",
            "--mx-host=example.test,mx3.example.test,20",
            "--host-record=mx1.example.test,127.0.0.11",
            "--host-record=mx2.example.test,127.0.0.12,fd00::12",
            "--host-record=mx3.example.test,127.0.0.13",
            "--host-record=nomx.test,127.0.0.20,fd00::20",
            "--mx-host=nullmx.test,.,0",
            "--mx-host=lame.test,gone.test,10",
            "--mx-host=mixed.test,gone.test,5",
            "--mx-host=mixed.test,mx1.example.test,10",
            "--address=/blocked.test/",
            // TXT, one string and two strings in one record (joined on lookup); a PTR for mx1's address.
            "--txt-record=example.test,v=spf1 mx -all",
            "--txt-record=example.test,other record",
            "--txt-record=_dmarc.example.test,v=DMARC1; p=reject; ,rua=mailto:d@example.test",
            "--ptr-record=11.0.0.127.in-addr.arpa,mx1.example.test",
            // SRV (RFC 6186 client setup, "." for no service) and a CNAME.
            "--srv-host=_imaps._tcp.example.test,mx1.example.test,993,0,1",
            "--srv-host=_pop3._tcp.example.test,.,0,0,0",
            "--cname=autoconfig.example.test,mx1.example.test",
            // Forwarded to a server that does not answer: the lookup fails for the time being.
            "--server=/dead.test/127.0.0.1#9",
        });
    }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }
    void SetUp() override {
        if (!server_->installed()) GTEST_SKIP() << server_->why();
        ASSERT_NE(server_->port(), 0) << server_->why();
    }

    static ResolverConfig config() {
        ResolverConfig c;
        c.servers = std::string(kAddress) + ":" + std::to_string(server_->port());
        c.timeout_ms = 500;
        c.tries = 2;
        return c;
    }
    static Result<Route> resolve(std::string_view domain, ResolverConfig c = config()) {
        auto resolver = Resolver::create(std::move(c));
        EXPECT_TRUE(resolver.ok());
        return (*resolver)->resolve_blocking(domain);
    }

    static Dnsmasq* server_;
};
Dnsmasq* DnsTest::server_ = nullptr;

std::vector<std::string> hosts(const Route& route) {
    std::vector<std::string> out;
    for (const auto& t : route.targets) out.push_back(t.host);
    return out;
}

TEST_F(DnsTest, MxHostsComeByPreferenceWithTheirAddresses) {
    auto route = resolve("example.test");
    ASSERT_TRUE(route.ok()) << route.error().message;
    EXPECT_EQ(route->domain, "example.test");
    EXPECT_FALSE(route->implicit_mx);
    ASSERT_EQ(route->targets.size(), 3u);
    std::set<std::string> first_two = {route->targets[0].host, route->targets[1].host};
    EXPECT_EQ(first_two, (std::set<std::string>{"mx1.example.test", "mx2.example.test"}));
    EXPECT_EQ(route->targets[0].preference, 10);
    EXPECT_EQ(route->targets[2].host, "mx3.example.test");
    EXPECT_EQ(route->targets[2].preference, 20);
    EXPECT_EQ(route->targets[2].addresses, std::vector<std::string>{"127.0.0.13"});
    EXPECT_EQ(route->targets[2].port, 25);
    for (const auto& t : route->targets) {
        if (t.host == "mx2.example.test") {
            EXPECT_EQ(t.addresses, (std::vector<std::string>{"127.0.0.12", "fd00::12"}));
        }
    }
}

TEST_F(DnsTest, EqualPreferencesAreTriedInRandomOrder) {
    std::set<std::string> firsts;
    for (std::uint32_t seed = 1; seed <= 16; ++seed) {
        ResolverConfig c = config();
        c.shuffle_seed = seed;
        auto route = resolve("example.test", c);
        ASSERT_TRUE(route.ok()) << route.error().message;
        firsts.insert(route->targets[0].host);
        EXPECT_EQ(route->targets[2].host, "mx3.example.test");  // never before a lower preference
    }
    EXPECT_EQ(firsts.size(), 2u);
}

TEST_F(DnsTest, DomainWithoutMxIsItsOwnHost) {
    auto route = resolve("NoMX.test.");  // case and a trailing dot do not matter
    ASSERT_TRUE(route.ok()) << route.error().message;
    EXPECT_TRUE(route->implicit_mx);
    ASSERT_EQ(route->targets.size(), 1u);
    EXPECT_EQ(route->targets[0].host, "nomx.test");
    EXPECT_EQ(route->targets[0].addresses, (std::vector<std::string>{"127.0.0.20", "fd00::20"}));
}

TEST_F(DnsTest, AddressFamiliesFollowTheConfiguration) {
    ResolverConfig c = config();
    c.prefer_ipv6 = true;
    EXPECT_EQ(resolve("nomx.test", c)->targets[0].addresses,
              (std::vector<std::string>{"fd00::20", "127.0.0.20"}));
    c.ipv6 = false;
    EXPECT_EQ(resolve("nomx.test", c)->targets[0].addresses, std::vector<std::string>{"127.0.0.20"});
}

TEST_F(DnsTest, NullMxIsAnImmediatePermanentFailure) {
    auto route = resolve("nullmx.test");
    ASSERT_FALSE(route.ok());
    EXPECT_EQ(route.error().code, Errc::permission_denied);
    EXPECT_TRUE(is_permanent(route.error()));
    EXPECT_EQ(enhanced_status(route.error()), "5.1.10");
    EXPECT_EQ(route.error().message, "domain nullmx.test accepts no mail (null MX, RFC 7505)");
}

TEST_F(DnsTest, NxdomainIsPermanent) {
    for (std::string_view domain : {"nosuchdomain.test", "blocked.test"}) {
        auto route = resolve(domain);
        ASSERT_FALSE(route.ok()) << domain;
        EXPECT_EQ(route.error().code, Errc::not_found);
        EXPECT_TRUE(is_permanent(route.error()));
        EXPECT_EQ(enhanced_status(route.error()), "5.1.2");
        EXPECT_EQ(route.error().message, "domain " + std::string(domain) + " does not exist (NXDOMAIN)");
    }
}

TEST_F(DnsTest, MxHostsThatDoNotExistArePermanent) {
    auto route = resolve("lame.test");
    ASSERT_FALSE(route.ok());
    EXPECT_EQ(route.error().code, Errc::not_found);
    EXPECT_EQ(route.error().message, "no MX host of lame.test has an address");
}

TEST_F(DnsTest, MxHostWithoutAddressIsLeftOut) {
    auto route = resolve("mixed.test");
    ASSERT_TRUE(route.ok()) << route.error().message;
    EXPECT_EQ(hosts(*route), std::vector<std::string>{"mx1.example.test"});
}

TEST_F(DnsTest, FailingUpstreamIsTemporary) {
    ResolverConfig c = config();
    c.timeout_ms = 200;
    c.tries = 1;
    auto route = resolve("dead.test", c);
    ASSERT_FALSE(route.ok());
    EXPECT_EQ(route.error().code, Errc::unavailable);
    EXPECT_FALSE(is_permanent(route.error()));
    EXPECT_EQ(enhanced_status(route.error()), "4.4.3");
    EXPECT_TRUE(route.error().message.starts_with("MX lookup for dead.test failed: "))
        << route.error().message;
}

TEST_F(DnsTest, UnreachableResolverIsTemporary) {
    ResolverConfig c = config();
    c.servers = std::string(kAddress) + ":" + std::to_string(free_port());
    c.timeout_ms = 200;
    c.tries = 1;
    auto route = resolve("example.test", c);
    ASSERT_FALSE(route.ok());
    EXPECT_EQ(route.error().code, Errc::unavailable);
}

TEST_F(DnsTest, StaticRouteReplacesMxAndResolvesNames) {
    ResolverConfig c = config();
    c.static_routes["example.test"] = {StaticRoute{"127.0.0.99", 2525}, StaticRoute{"mx3.example.test", 587}};
    auto route = resolve("example.test", c);
    ASSERT_TRUE(route.ok()) << route.error().message;
    EXPECT_TRUE(route->static_route);
    ASSERT_EQ(route->targets.size(), 2u);
    EXPECT_EQ(route->targets[0].addresses, std::vector<std::string>{"127.0.0.99"});
    EXPECT_EQ(route->targets[0].port, 2525);
    EXPECT_EQ(route->targets[1].host, "mx3.example.test");
    EXPECT_EQ(route->targets[1].addresses, std::vector<std::string>{"127.0.0.13"});
    EXPECT_EQ(route->targets[1].port, 587);
    // Other domains still go through DNS.
    EXPECT_EQ(resolve("nomx.test", c)->targets[0].host, "nomx.test");
}

TEST_F(DnsTest, LookupsRunSideBySideThroughTheAsynchronousInterface) {
    auto resolver = Resolver::create(config());
    ASSERT_TRUE(resolver.ok());
    Resolver& r = **resolver;
    std::vector<std::string> done;
    r.resolve("example.test",
              [&](Result<Route> route) { done.push_back(route ? "example" : "example failed"); });
    r.resolve("nullmx.test", [&](Result<Route> route) { done.push_back(route ? "null ok?" : "null"); });
    r.resolve("nomx.test", [&](Result<Route> route) {
        done.push_back(route ? "nomx" : "nomx failed");
        // A callback may start the next lookup.
        r.resolve("mixed.test",
                  [&](Result<Route> again) { done.push_back(again ? "mixed" : "mixed failed"); });
    });
    EXPECT_TRUE(r.busy());
    for (int rounds = 0; r.busy() && rounds < 1000; ++rounds) {
        std::vector<pollfd> fds;
        for (const auto& s : r.sockets())
            fds.push_back(
                pollfd{s.fd, static_cast<short>((s.read ? POLLIN : 0) | (s.write ? POLLOUT : 0)), 0});
        ASSERT_FALSE(fds.empty());
        auto wait = r.timeout();
        ASSERT_TRUE(wait.has_value());
        if (poll(fds.data(), fds.size(), static_cast<int>(wait->count())) <= 0) {
            r.process(-1, -1);
            continue;
        }
        for (const auto& p : fds)
            if (p.revents) r.process((p.revents & POLLIN) ? p.fd : -1, (p.revents & POLLOUT) ? p.fd : -1);
    }
    std::multiset<std::string> got(done.begin(), done.end());
    EXPECT_EQ(got, (std::multiset<std::string>{"example", "null", "nomx", "mixed"}));
}

TEST_F(DnsTest, DestroyingTheResolverDropsRunningLookups) {
    int called = 0;
    {
        auto resolver = Resolver::create(config());
        ASSERT_TRUE(resolver.ok());
        (*resolver)->resolve("example.test", [&](Result<Route>) { ++called; });
    }
    EXPECT_EQ(called, 0);
}

// ---- without a DNS server ----

ResolverConfig offline() {
    ResolverConfig c;
    c.servers = "127.0.0.1:9";  // nothing is asked in these tests
    c.timeout_ms = 100;
    c.tries = 1;
    return c;
}

TEST(Dns, AddressLiteralIsItsOwnRoute) {
    auto resolver = Resolver::create(offline());
    ASSERT_TRUE(resolver.ok());
    auto v4 = (*resolver)->resolve_blocking("[127.0.0.5]");
    ASSERT_TRUE(v4.ok()) << v4.error().message;
    EXPECT_EQ(v4->targets.at(0).addresses, std::vector<std::string>{"127.0.0.5"});
    auto v6 = (*resolver)->resolve_blocking("[IPv6:0:0::1]");
    ASSERT_TRUE(v6.ok()) << v6.error().message;
    EXPECT_EQ(v6->targets.at(0).addresses, std::vector<std::string>{"::1"});
    for (std::string_view bad : {"[::1]", "[IPv6:127.0.0.1]", "[999.1.1.1]", "[]"}) {
        auto r = (*resolver)->resolve_blocking(bad);
        ASSERT_FALSE(r.ok()) << bad;
        EXPECT_EQ(r.error().code, Errc::invalid_argument);
    }
}

TEST(Dns, WildcardStaticRouteIsASmartHost) {
    ResolverConfig c = offline();
    c.static_routes["*"] = {StaticRoute{"[::1]", 465}};
    auto resolver = Resolver::create(c);
    ASSERT_TRUE(resolver.ok());
    auto route = (*resolver)->resolve_blocking("anything.example");
    ASSERT_TRUE(route.ok()) << route.error().message;
    EXPECT_TRUE(route->static_route);
    EXPECT_EQ(route->targets.at(0).addresses, std::vector<std::string>{"::1"});
    EXPECT_EQ(route->targets.at(0).port, 465);
}

TEST_F(DnsTest, TxtRecordsComeBackWholeWithTheirStringsJoined) {
    auto resolver = Resolver::create(config());
    ASSERT_TRUE(resolver.ok());
    auto txt = (*resolver)->lookup_blocking(RecordType::txt, "example.test");
    ASSERT_TRUE(txt.ok()) << txt.error().message;
    EXPECT_EQ(std::set<std::string>(txt->begin(), txt->end()),
              (std::set<std::string>{"v=spf1 mx -all", "other record"}));
    auto dmarc = (*resolver)->lookup_blocking(RecordType::txt, "_dmarc.example.test");
    ASSERT_TRUE(dmarc.ok()) << dmarc.error().message;
    EXPECT_EQ(*dmarc, std::vector<std::string>{"v=DMARC1; p=reject; rua=mailto:d@example.test"});
}

TEST_F(DnsTest, RecordLookupsTellNxdomainFromNodata) {
    auto resolver = Resolver::create(config());
    ASSERT_TRUE(resolver.ok());
    auto nodata = (*resolver)->lookup_blocking(RecordType::txt, "mx1.example.test");
    ASSERT_TRUE(nodata.ok()) << nodata.error().message;
    EXPECT_TRUE(nodata->empty());
    auto nxdomain = (*resolver)->lookup_blocking(RecordType::txt, "nowhere.test");
    ASSERT_FALSE(nxdomain.ok());
    EXPECT_EQ(nxdomain.error().code, Errc::not_found);
    auto dead = (*resolver)->lookup_blocking(RecordType::txt, "dead.test");
    ASSERT_FALSE(dead.ok());
    EXPECT_EQ(dead.error().code, Errc::unavailable);
}

TEST_F(DnsTest, AddressMxAndPtrRecordsAsText) {
    auto resolver = Resolver::create(config());
    ASSERT_TRUE(resolver.ok());
    auto& r = **resolver;
    EXPECT_EQ(*r.lookup_blocking(RecordType::a, "mx2.example.test"), std::vector<std::string>{"127.0.0.12"});
    EXPECT_EQ(*r.lookup_blocking(RecordType::aaaa, "mx2.example.test"), std::vector<std::string>{"fd00::12"});
    auto mx = r.lookup_blocking(RecordType::mx, "example.test");
    ASSERT_TRUE(mx.ok());
    ASSERT_EQ(mx->size(), 3u);
    EXPECT_EQ(mx->back(), "mx3.example.test");
    auto ptr = r.lookup_blocking(RecordType::ptr, "127.0.0.11");
    ASSERT_TRUE(ptr.ok()) << ptr.error().message;
    EXPECT_EQ(*ptr, std::vector<std::string>{"mx1.example.test"});
    auto not_ip = r.lookup_blocking(RecordType::ptr, "example.test");
    ASSERT_FALSE(not_ip.ok());
    EXPECT_EQ(not_ip.error().code, Errc::invalid_argument);
}

TEST_F(DnsTest, SrvAndCnameRecordsAsText) {
    auto resolver = Resolver::create(config());
    ASSERT_TRUE(resolver.ok());
    auto& r = **resolver;
    auto srv = r.lookup_blocking(RecordType::srv, "_imaps._tcp.example.test");
    ASSERT_TRUE(srv.ok()) << srv.error().message;
    EXPECT_EQ(*srv, std::vector<std::string>{"0 1 993 mx1.example.test"});
    auto none = r.lookup_blocking(RecordType::srv, "_pop3._tcp.example.test");
    ASSERT_TRUE(none.ok()) << none.error().message;
    EXPECT_EQ(*none, std::vector<std::string>{"0 0 0 ."});
    auto cname = r.lookup_blocking(RecordType::cname, "autoconfig.example.test");
    ASSERT_TRUE(cname.ok()) << cname.error().message;
    EXPECT_EQ(*cname, std::vector<std::string>{"mx1.example.test"});
    auto no_cname = r.lookup_blocking(RecordType::cname, "mx1.example.test");
    ASSERT_TRUE(no_cname.ok()) << no_cname.error().message;
    EXPECT_TRUE(no_cname->empty());
}

TEST(Dns, RefusesWhatIsNotADomainName) {
    auto resolver = Resolver::create(offline());
    ASSERT_TRUE(resolver.ok());
    for (std::string_view bad :
         {"", "exa mple.test", "bad..test", "a\r\nb.test", "caf\xc3\xa9.test", "-x.test/evil"}) {
        auto r = (*resolver)->resolve_blocking(bad);
        ASSERT_FALSE(r.ok()) << bad;
        EXPECT_EQ(r.error().code, Errc::invalid_argument) << bad;
        EXPECT_TRUE(is_permanent(r.error()));
    }
    std::string long_label(64, 'a');
    EXPECT_FALSE((*resolver)->resolve_blocking(long_label + ".test").ok());
}

TEST(Dns, BadServerListIsRefusedAtCreation) {
    ResolverConfig c;
    c.servers = "not an address";
    auto resolver = Resolver::create(c);
    ASSERT_FALSE(resolver.ok());
    EXPECT_EQ(resolver.error().code, Errc::invalid_argument);
}

}  // namespace
}  // namespace magpie::dns
