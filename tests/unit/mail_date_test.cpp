#include <gtest/gtest.h>

#include "mail/date.h"

namespace magpie::mail {
namespace {

std::int64_t when(std::string_view s) {
    auto d = parse_date(s);
    return d ? d->unix_seconds : -1;
}

TEST(Date, ParsesRfc5322Examples) {
    // RFC 5322 A.1.1, A.3
    EXPECT_EQ(when("Fri, 21 Nov 1997 09:55:06 -0600"), 880127706);
    EXPECT_EQ(when("Tue, 1 Jul 2003 10:52:37 +0200"), 1057049557);
    auto d = parse_date("Thu, 13 Feb 1969 23:32:54 -0330");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->zone_minutes, -210);
    EXPECT_EQ(d->unix_seconds, -27723426);
}

TEST(Date, ParsesObsoleteForms) {
    // RFC 5322 A.6.2: two-digit year, zone name, comments and folding
    EXPECT_EQ(when("21 Nov 97 09:55:06 GMT"), 880106106);
    EXPECT_EQ(when("Thu,\r\n      13\r\n        Feb\r\n          1969\r\n      23:32\r\n               -0330 (Newfoundland Time)"),
              -27723480);
    EXPECT_EQ(when("Fri, 21 Nov 1997 09:55:06 EST"), 880127706 - 3600);
    EXPECT_EQ(when("Fri, 21 Nov 1997 09:55:06 PDT"), 880127706 + 3 * 3600 - 3600 * 2);
    EXPECT_EQ(when("21 Nov 1997 15:55:06 Z"), 880127706);
    EXPECT_EQ(when("1 Jan 101 00:00:00 +0000"), 978307200);  // three-digit year: add 1900
}

TEST(Date, ParsesCommonDeviations) {
    EXPECT_EQ(when("Fri, 21 Nov 1997 09:55 -0600"), 880127700);
    EXPECT_EQ(when("Friday, 21 November 1997 09:55:06 -0600"), 880127706);
    EXPECT_EQ(when("Fri Nov 21 09:55:06 1997"), 880106106);  // asctime, no zone: UTC
    EXPECT_EQ(when("21 Nov 1997 09:55:06"), 880106106);
    EXPECT_EQ(when("Fri, 21 Nov 1997 09:55:06 +0000 (UTC)"), 880106106);
}

TEST(Date, RejectsImpossibleDates) {
    EXPECT_FALSE(parse_date(""));
    EXPECT_FALSE(parse_date("not a date"));
    EXPECT_FALSE(parse_date("31 Feb 2001 00:00:00 +0000"));
    EXPECT_FALSE(parse_date("1 Jan 2001 24:00:00 +0000"));
    EXPECT_FALSE(parse_date("1 Jan 2001 +0000"));
    EXPECT_TRUE(parse_date("29 Feb 2000 00:00:00 +0000"));
    EXPECT_FALSE(parse_date("29 Feb 1900 00:00:00 +0000"));
}

}  // namespace
}  // namespace magpie::mail
