// smtp::parse_path: RFC 5321 4.1.2 path syntax and the RFC 5321 4.5.3.1 size limits.
#include <gtest/gtest.h>

#include "smtp/path.h"

namespace magpie::smtp {
namespace {

PathOptions mail_options() {
    return PathOptions{.allow_null = true, .allow_postmaster = false, .limits = {}};
}
PathOptions rcpt_options() {
    return PathOptions{.allow_null = false, .allow_postmaster = true, .limits = {}};
}

TEST(SmtpPath, ParsesPlainMailboxAndReportsConsumedOctets) {
    auto path = parse_path("<a@x.org> SIZE=1", mail_options());
    ASSERT_TRUE(path);
    EXPECT_EQ(path->mailbox, "a@x.org");
    EXPECT_EQ(path->consumed, 9u);
    EXPECT_FALSE(path->is_null);
    EXPECT_FALSE(path->non_ascii);
}

TEST(SmtpPath, NullPathOnlyWhereAllowed) {
    auto path = parse_path("<>", mail_options());
    ASSERT_TRUE(path);
    EXPECT_TRUE(path->is_null);
    EXPECT_EQ(path->mailbox, "");
    EXPECT_FALSE(parse_path("<>", rcpt_options()));
}

TEST(SmtpPath, StripsSourceRoutes) {
    auto path = parse_path("<@a.example,@b.example:u@c.example>", mail_options());
    ASSERT_TRUE(path);
    EXPECT_EQ(path->mailbox, "u@c.example");
    EXPECT_FALSE(parse_path("<@a.example:@b.example:u@c.example>", mail_options()));
    EXPECT_FALSE(parse_path("<@-a.example:u@c.example>", mail_options()));
}

TEST(SmtpPath, QuotedLocalParts) {
    auto path = parse_path("<\"a>b \\\" c\"@x.org>", mail_options());
    ASSERT_TRUE(path);
    EXPECT_EQ(path->mailbox, "\"a>b \\\" c\"@x.org");
    EXPECT_FALSE(parse_path("<\"a\x01\"@x.org>", mail_options()));
    EXPECT_FALSE(parse_path("<\"abc@x.org>", mail_options()));
}

TEST(SmtpPath, AddressLiterals) {
    EXPECT_TRUE(parse_path("<u@[192.0.2.255]>", mail_options()));
    EXPECT_TRUE(parse_path("<u@[IPv6:::1]>", mail_options()));
    EXPECT_TRUE(parse_path("<u@[ipv6:2001:db8::ffff:192.0.2.1]>", mail_options()));
    EXPECT_FALSE(parse_path("<u@[192.0.2]>", mail_options()));
    EXPECT_FALSE(parse_path("<u@[192.0.2.1.5]>", mail_options()));
    EXPECT_FALSE(parse_path("<u@[1234.0.2.1]>", mail_options()));
    EXPECT_FALSE(parse_path("<u@[IPv6:2001:db8::g]>", mail_options()));
    EXPECT_FALSE(parse_path("<u@[]>", mail_options()));
    EXPECT_FALSE(parse_path(std::string("<u@[IPv6:::1\0x]>", 15), mail_options()));
    EXPECT_FALSE(parse_path("<u@[IPv6:fe80::1%eth0]>", mail_options()));
}

TEST(SmtpPath, LengthLimits) {
    std::string local64(64, 'a');
    EXPECT_TRUE(parse_path("<" + local64 + "@x.org>", mail_options()));
    auto too_long = parse_path("<" + local64 + "a@x.org>", mail_options());
    ASSERT_FALSE(too_long);
    EXPECT_EQ(too_long.error().code, Errc::limit_exceeded);

    std::string label(63, 'd');
    std::string domain255 = label + "." + label + "." + label + "." + std::string(63, 'e');
    ASSERT_EQ(domain255.size(), 255u);
    PathOptions roomy = mail_options();
    roomy.limits.max_path = 1000;
    EXPECT_TRUE(parse_path("<a@" + domain255 + ">", roomy));
    EXPECT_FALSE(parse_path("<a@" + domain255 + "e>", roomy));
    EXPECT_FALSE(parse_path("<a@" + std::string(64, 'd') + ".org>", mail_options()));  // label over 63
}

TEST(SmtpPath, Utf8IsFlaggedAndMustBeValid) {
    auto path = parse_path("<\xc3\xa9t\xc3\xa9@\xc3\xa9t\xc3\xa9.example>", mail_options());
    ASSERT_TRUE(path);
    EXPECT_TRUE(path->non_ascii);
    EXPECT_FALSE(parse_path("<\xc3@x.org>", mail_options()));
    EXPECT_FALSE(parse_path("<a@x\xff.org>", mail_options()));
}

TEST(SmtpPath, PostmasterWithoutDomain) {
    auto path = parse_path("<POSTMASTER>", rcpt_options());
    ASSERT_TRUE(path);
    EXPECT_EQ(path->mailbox, "POSTMASTER");
    EXPECT_FALSE(parse_path("<postmaster>", mail_options()));
    EXPECT_FALSE(parse_path("<\"postmaster\">", rcpt_options()));
}

TEST(SmtpPath, RejectsMissingBrackets) {
    EXPECT_FALSE(parse_path("a@x.org", mail_options()));
    EXPECT_FALSE(parse_path("<a@x.org", mail_options()));
    EXPECT_FALSE(parse_path("", mail_options()));
    EXPECT_FALSE(parse_path("<", mail_options()));
}

// parse_envelope_argument: Postfix's default tolerance (issue 12 A), and where the parameters begin.
TEST(SmtpPath, EnvelopeArgumentForms) {
    struct Case {
        std::string_view text, mailbox, parameters;
        bool is_null;
    };
    for (const Case& c : std::initializer_list<Case>{
             {"<a@x.org>", "a@x.org", "", false},
             {" <a@x.org> SIZE=1", "a@x.org", " SIZE=1", false},
             {"< a@x.org >", "a@x.org", "", false},
             {"a@x.org", "a@x.org", "", false},
             {"a@x.org BODY=8BITMIME", "a@x.org", " BODY=8BITMIME", false},
             {"\"a b\"@x.org SIZE=2", "\"a b\"@x.org", " SIZE=2", false},
             {"<\"a>b\"@x.org>", "\"a>b\"@x.org", "", false},
             {"< >", "", "", true},
             {"<>", "", "", true},
         }) {
        auto argument = parse_envelope_argument(c.text, mail_options());
        ASSERT_TRUE(argument) << c.text << ": " << argument.error().message;
        EXPECT_EQ(argument->path.mailbox, c.mailbox) << c.text;
        EXPECT_EQ(argument->parameters, c.parameters) << c.text;
        EXPECT_EQ(argument->path.is_null, c.is_null) << c.text;
    }
}

TEST(SmtpPath, EnvelopeArgumentGarbage) {
    for (std::string_view text : {"", "   ", "<a @x.org>", "a@x.org>", "<a@x.org", "<<a@x.org>>",
                                  "Alice <a@x.org>", "<a@x.org (c)>", "\"a b@x.org", "<a@x.org, b@x.org>"}) {
        EXPECT_FALSE(parse_envelope_argument(text, mail_options())) << text;
    }
    auto empty = parse_envelope_argument("", mail_options());
    ASSERT_FALSE(empty);
    EXPECT_EQ(empty.error().message, "missing address");
}

TEST(SmtpPath, DomainValidation) {
    EXPECT_TRUE(is_valid_domain("mx1.example-host.org", false));
    EXPECT_FALSE(is_valid_domain("example-.org", false));
    EXPECT_FALSE(is_valid_domain("ex_ample.org", false));
    EXPECT_FALSE(
        is_valid_domain("b\xc3\xbc"
                        "cher.example",
                        false));
    EXPECT_TRUE(
        is_valid_domain("b\xc3\xbc"
                        "cher.example",
                        true));
    EXPECT_FALSE(is_valid_domain("", true));
}

}  // namespace
}  // namespace magpie::smtp
