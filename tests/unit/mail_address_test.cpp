#include <gtest/gtest.h>

#include "mail/address.h"

namespace magpie::mail {
namespace {

TEST(Address, ParsesRfc5322A11Mailboxes) {
    auto list = parse_address_list("\"Joe Q. Public\" <john.q.public@example.com>");
    ASSERT_EQ(list.size(), 1u);
    ASSERT_EQ(list[0].members.size(), 1u);
    const Mailbox& m = list[0].members[0];
    EXPECT_EQ(m.name, "Joe Q. Public");
    EXPECT_EQ(m.local_part, "john.q.public");
    EXPECT_EQ(m.domain, "example.com");
    EXPECT_EQ(m.addr_spec(), "john.q.public@example.com");
}

TEST(Address, ParsesListWithQuotedCommaAndBareAddresses) {
    // RFC 5322 A.1.2
    auto list = parse_address_list(
        "Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>, <boss@nil.test>, \"Giant; \\\"Big\\\" Box\" "
        "<sysservices@example.net>");
    auto boxes = mailboxes(list);
    ASSERT_EQ(boxes.size(), 5u);
    EXPECT_EQ(boxes[0].name, "Mary Smith");
    EXPECT_EQ(boxes[1].addr_spec(), "jdoe@example.org");
    EXPECT_EQ(boxes[1].name, "");
    EXPECT_EQ(boxes[2].name, "Who?");
    EXPECT_EQ(boxes[3].addr_spec(), "boss@nil.test");
    EXPECT_EQ(boxes[4].name, "Giant; \"Big\" Box");
    EXPECT_EQ(boxes[4].addr_spec(), "sysservices@example.net");
}

TEST(Address, ParsesGroupsIncludingEmptyOnes) {
    // RFC 5322 A.1.3
    auto list = parse_address_list(
        "A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;, Undisclosed recipients:;");
    ASSERT_EQ(list.size(), 2u);
    EXPECT_TRUE(list[0].is_group);
    EXPECT_EQ(list[0].group_name, "A Group");
    ASSERT_EQ(list[0].members.size(), 3u);
    EXPECT_EQ(list[0].members[2].name, "John");
    EXPECT_TRUE(list[1].is_group);
    EXPECT_EQ(list[1].group_name, "Undisclosed recipients");
    EXPECT_TRUE(list[1].members.empty());
    EXPECT_EQ(format_address_list(list),
              "A Group: Ed Jones <c@a.test>, joe@where.test, John <jdoe@one.test>;, Undisclosed recipients:;");
}

TEST(Address, SkipsCommentsEverywhere) {
    // RFC 5322 A.5
    auto list = parse_address_list("Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>");
    auto boxes = mailboxes(list);
    ASSERT_EQ(boxes.size(), 1u);
    EXPECT_EQ(boxes[0].name, "Pete");
    EXPECT_EQ(boxes[0].addr_spec(), "pete@silly.test");
    auto group = parse_address_list(
        "A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)public.example>,\r\n         joe@example.org,\r\n"
        "  John <jdoe@one.test> (my dear friend); (the end of the group)");
    ASSERT_EQ(group.size(), 1u);
    EXPECT_EQ(group[0].group_name, "A Group");
    ASSERT_EQ(group[0].members.size(), 3u);
    EXPECT_EQ(group[0].members[0].addr_spec(), "c@public.example");
    auto hidden = parse_address_list("(Empty list)(start)Hidden recipients  :(nobody(that I know))  ;");
    ASSERT_EQ(hidden.size(), 1u);
    EXPECT_EQ(hidden[0].group_name, "Hidden recipients");
}

TEST(Address, TrailingCommentIsDisplayName) {
    auto boxes = mailboxes(parse_address_list("jdoe@example.org (John Doe)"));
    ASSERT_EQ(boxes.size(), 1u);
    EXPECT_EQ(boxes[0].name, "John Doe");
    EXPECT_EQ(boxes[0].raw_name, "John Doe");
}

TEST(Address, ObsoleteRoutesAndSpacedLocalParts) {
    // RFC 5322 A.6.1 and 4.4
    auto boxes = mailboxes(parse_address_list(
        "Mary Smith <@node.test:mary@example.net>, , jdoe@test  . example, John . Q . Public <john . q . public@example.com>"));
    ASSERT_EQ(boxes.size(), 3u);
    EXPECT_EQ(boxes[0].route, "@node.test");
    EXPECT_EQ(boxes[0].addr_spec(), "mary@example.net");
    EXPECT_EQ(boxes[1].addr_spec(), "jdoe@test.example");
    EXPECT_EQ(boxes[2].name, "John . Q . Public");
    EXPECT_EQ(boxes[2].addr_spec(), "john.q.public@example.com");
}

TEST(Address, QuotedLocalPartsAndDomainLiterals) {
    auto boxes = mailboxes(parse_address_list("\"john doe\"@example.com, user@[192.0.2.1]"));
    ASSERT_EQ(boxes.size(), 2u);
    EXPECT_EQ(boxes[0].local_part, "john doe");
    EXPECT_EQ(boxes[0].addr_spec(), "\"john doe\"@example.com");
    EXPECT_EQ(boxes[1].domain, "[192.0.2.1]");
}

TEST(Address, DecodesEncodedDisplayNamesButKeepsRawForm) {
    auto boxes = mailboxes(parse_address_list("=?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>"));
    ASSERT_EQ(boxes.size(), 1u);
    EXPECT_EQ(boxes[0].name, "Andr\xC3\xA9 Pirard");
    EXPECT_EQ(boxes[0].raw_name, "=?ISO-8859-1?Q?Andr=E9?= Pirard");
}

TEST(Address, AcceptsInternationalisedAddresses) {
    // RFC 6532: UTF-8 in local part, domain and display name
    auto boxes = mailboxes(parse_address_list("J\xC3\xB6rg <j\xC3\xB6rg@m\xC3\xBCller.example>"));
    ASSERT_EQ(boxes.size(), 1u);
    EXPECT_EQ(boxes[0].name, "J\xC3\xB6rg");
    EXPECT_EQ(boxes[0].local_part, "j\xC3\xB6rg");
    EXPECT_EQ(boxes[0].domain, "m\xC3\xBCller.example");
}

TEST(Address, BareLocalPartWithoutDomain) {
    auto boxes = mailboxes(parse_address_list("root"));
    ASSERT_EQ(boxes.size(), 1u);
    EXPECT_EQ(boxes[0].local_part, "root");
    EXPECT_EQ(boxes[0].domain, "");
}

TEST(Address, SurvivesGarbageAndUnterminatedSyntax) {
    EXPECT_EQ(mailboxes(parse_address_list("<a@b")).size(), 1u);
    EXPECT_LE(mailboxes(parse_address_list("\"unterminated <a@b>")).size(), 1u);
    EXPECT_NO_FATAL_FAILURE(parse_address_list(">>>,,;;::@@(((\\"));
    EXPECT_TRUE(parse_address_list("").empty());
}

TEST(Address, QuotedStringIsNoPartOfADomain) {
    // A domain is atoms or a literal (RFC 5322 3.4.1): a quoted-string after the "@" must not carry
    // specials into it, or the address written again reads as other addresses.
    auto list = parse_address_list("c@ a=\"le.com>, Group: a@b, c@[1.2.3.4];");
    auto boxes = mailboxes(list);
    ASSERT_EQ(boxes.size(), 1u);
    EXPECT_EQ(boxes[0].domain, "a=");
    auto angle = mailboxes(parse_address_list("<x@evil.test\"x>, victim@bank.test\">, y@z.test"));
    ASSERT_EQ(angle.size(), 2u);
    EXPECT_EQ(angle[0].addr_spec(), "x@evil.test");
    EXPECT_EQ(angle[1].addr_spec(), "y@z.test");
}

TEST(Address, BoundsTheNumberOfMailboxes) {
    std::string many;
    for (int i = 0; i < 50; ++i) many += "a@b, ";
    AddressLimits limits;
    limits.max_addresses = 10;
    EXPECT_EQ(mailboxes(parse_address_list(many, limits)).size(), 10u);
}

}  // namespace
}  // namespace magpie::mail
