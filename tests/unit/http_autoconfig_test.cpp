// Client self-configuration answers (Thunderbird autoconfig, Outlook autodiscover, Apple profiles): the right
// socket type per port, the full address as login name, and an answer without the address too.
#include <gtest/gtest.h>

#include "http/autoconfig.h"

namespace magpie::http::autoconfig {
namespace {

using Security = Endpoint::Security;

Settings settings() {
    Settings s;
    s.hostname = "mail.example.org";
    s.imap = {{993, Security::implicit_tls}, {143, Security::starttls}};
    s.submission = {{465, Security::implicit_tls}, {587, Security::starttls}};
    s.domains = {"example.org", "example.net"};
    return s;
}

Response get(std::string_view path, std::string_view query, std::string_view host = "mail.example.org") {
    return answer(Request{"GET", path, query, host, {}}, settings());
}

bool has(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

TEST(Autoconfig, ThunderbirdGetsEveryListenerWithItsSocketType) {
    auto r = get("/.well-known/autoconfig/mail/config-v1.1.xml", "emailaddress=alice%40example.org");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.content_type, "application/xml; charset=utf-8");
    EXPECT_TRUE(has(r.body, "<emailProvider id=\"example.org\">"));
    EXPECT_TRUE(has(r.body, "<port>993</port>\n      <socketType>SSL</socketType>")) << r.body;
    EXPECT_TRUE(has(r.body, "<port>143</port>\n      <socketType>STARTTLS</socketType>"));
    EXPECT_TRUE(has(r.body, "<port>465</port>\n      <socketType>SSL</socketType>"));
    EXPECT_TRUE(has(r.body, "<port>587</port>\n      <socketType>STARTTLS</socketType>"));
    EXPECT_TRUE(has(r.body, "<username>alice@example.org</username>"));
    EXPECT_FALSE(has(r.body, "%EMAILADDRESS%"));
    // Implicit TLS first (RFC 8314).
    EXPECT_LT(r.body.find("<port>993</port>"), r.body.find("<port>143</port>"));
}

TEST(Autoconfig, WithoutAnAddressThunderbirdFillsItInAndTheHostNamesTheDomain) {
    auto r = get("/mail/config-v1.1.xml", "", "autoconfig.example.net:443");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_TRUE(has(r.body, "<domain>example.net</domain>"));
    EXPECT_TRUE(has(r.body, "<username>%EMAILADDRESS%</username>"));
}

TEST(Autoconfig, ForeignDomainsAndAmbiguousRequestsAreNotFound) {
    EXPECT_EQ(get("/mail/config-v1.1.xml", "emailaddress=eve@elsewhere.test").status, 404);
    EXPECT_EQ(get("/mail/config-v1.1.xml", "", "mail.example.org").status, 404);  // two domains, no hint
    EXPECT_EQ(answer(Request{"POST", "/mail/config-v1.1.xml", "", "autoconfig.example.org", {}}, settings()).status,
              405);
}

TEST(Autoconfig, AddressesAreEscapedOrRefused) {
    auto r = get("/mail/config-v1.1.xml", "emailaddress=%3Cx%3E%40example.org", "autoconfig.example.org");
    ASSERT_EQ(r.status, 200);
    EXPECT_FALSE(has(r.body, "<x>"));
    EXPECT_TRUE(has(r.body, "%EMAILADDRESS%"));  // not an address: treated as absent
    EXPECT_EQ(xml_escape("a&b<c>\"'"), "a&amp;b&lt;c&gt;&quot;&apos;");
}

TEST(Autoconfig, OutlookPoxTakesTheAddressFromTheBody) {
    std::string body =
        "<?xml version=\"1.0\"?><Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/"
        "requestschema/2006\"><Request><EMailAddress>Bob@Example.org</EMailAddress><AcceptableResponseSchema>"
        "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>"
        "</Request></Autodiscover>";
    auto r = answer(Request{"POST", "/Autodiscover/Autodiscover.xml", "", "autodiscover.example.org", body}, settings());
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_TRUE(has(r.body, "<Type>IMAP</Type>\n        <Server>mail.example.org</Server>\n        <Port>993</Port>"));
    EXPECT_TRUE(has(r.body, "<Type>SMTP</Type>\n        <Server>mail.example.org</Server>\n        <Port>465</Port>"));
    EXPECT_TRUE(has(r.body, "<LoginName>Bob@Example.org</LoginName>"));
    EXPECT_TRUE(has(r.body, "<Encryption>SSL</Encryption>"));
    auto anonymous = answer(Request{"POST", "/autodiscover/autodiscover.xml", "", "autodiscover.example.org", ""},
                            settings());
    ASSERT_EQ(anonymous.status, 200);
    EXPECT_FALSE(has(anonymous.body, "<LoginName>"));
}

TEST(Autoconfig, StarttlsOnlyListenersAreTlsInOutlookAndStarttlsInThunderbird) {
    Settings s = settings();
    s.imap = {{143, Security::starttls}};
    s.submission = {{587, Security::starttls}};
    auto pox = answer(Request{"POST", "/autodiscover/autodiscover.xml", "", "autodiscover.example.org", ""}, s);
    EXPECT_TRUE(has(pox.body, "<Port>143</Port>")) << pox.body;
    EXPECT_TRUE(has(pox.body, "<Encryption>TLS</Encryption>"));
    EXPECT_FALSE(has(pox.body, "<Encryption>SSL</Encryption>"));
}

TEST(Autoconfig, OutlookJsonPointsAtThePoxService) {
    auto r = get("/autodiscover/autodiscover.json", "Email=alice%40example.org&Protocol=AutodiscoverV1");
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.body,
              "{\"Protocol\":\"AutodiscoverV1\",\"Url\":\"https://mail.example.org/autodiscover/autodiscover.xml\"}");
    EXPECT_EQ(get("/autodiscover/autodiscover.json/v1.0/alice@example.org", "Protocol=ActiveSync").status, 400);
}

TEST(Autoconfig, AppleProfileIsStableAndAsksForWhatItDoesNotKnow) {
    auto r = get("/apple/mobileconfig", "emailaddress=alice%40example.org");
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.content_type, "application/x-apple-aspen-config");
    EXPECT_TRUE(has(r.body, "<key>IncomingMailServerPortNumber</key>\n      <integer>993</integer>"));
    EXPECT_TRUE(has(r.body, "<key>OutgoingMailServerPortNumber</key>\n      <integer>465</integer>"));
    EXPECT_TRUE(has(r.body, "<key>IncomingMailServerUsername</key>\n      <string>alice@example.org</string>"));
    EXPECT_EQ(r.body, get("/apple/mobileconfig", "emailaddress=alice%40example.org").body);
    auto anonymous = get("/apple/mobileconfig", "", "autoconfig.example.org");
    ASSERT_EQ(anonymous.status, 200);
    EXPECT_FALSE(has(anonymous.body, "EmailAddress"));
    EXPECT_FALSE(has(anonymous.body, "Username"));
}

TEST(Autoconfig, HandlesOnlyItsOwnPaths) {
    EXPECT_TRUE(handles("/.well-known/autoconfig/mail/config-v1.1.xml"));
    EXPECT_TRUE(handles("/AutoDiscover/AutoDiscover.xml"));
    EXPECT_TRUE(handles("/autodiscover/autodiscover.json/v1.0/a@b.c"));
    EXPECT_FALSE(handles("/jmap/api"));
    EXPECT_FALSE(handles("/.well-known/jmap"));
}

}  // namespace
}  // namespace magpie::http::autoconfig

namespace magpie::http::autoconfig {
namespace {

// Behind NAT or a proxy ([autoconfig] *_port): clients are told the public ports, not the bound ones; a
// kind left unset keeps the bound listeners, and 0 offers none of that kind.
TEST(Autoconfig, ConfiguredPublicPortsReplaceTheBoundOnesPerKind) {
    const std::vector<Endpoint> bound = {{10993, Security::implicit_tls}, {10143, Security::starttls}};
    auto both = public_endpoints(bound, 993, 143);
    ASSERT_EQ(both.size(), 2u);
    EXPECT_EQ(both[0].port, 993);
    EXPECT_EQ(both[0].security, Security::implicit_tls);
    EXPECT_EQ(both[1].port, 143);
    EXPECT_EQ(both[1].security, Security::starttls);
    auto unset = public_endpoints(bound, std::nullopt, std::nullopt);
    ASSERT_EQ(unset.size(), 2u);
    EXPECT_EQ(unset[0].port, 10993);
    EXPECT_EQ(unset[1].port, 10143);
    auto tls_only = public_endpoints(bound, 993, 0);
    ASSERT_EQ(tls_only.size(), 1u);
    EXPECT_EQ(tls_only[0].port, 993);
    // A public port for a kind nothing is bound to: the proxy terminates it elsewhere.
    auto proxied = public_endpoints({}, std::nullopt, 587);
    ASSERT_EQ(proxied.size(), 1u);
    EXPECT_EQ(proxied[0].security, Security::starttls);
}

}  // namespace
}  // namespace magpie::http::autoconfig
