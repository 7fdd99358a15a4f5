#include <gtest/gtest.h>

#include "base/result.h"
#include "base/strings.h"
#include "base/time.h"

namespace magpie {
namespace {

Result<int> half(int n) {
    if (n % 2 != 0) return make_error(Errc::invalid_argument, "odd");
    return n / 2;
}

Result<void> half_twice(int n, int& out) {
    auto first = half(n);
    if (!first) return first.error();
    auto second = half(*first);
    if (!second) return second.error();
    out = *second;
    return {};
}

TEST(Result, CarriesValueOrError) {
    EXPECT_EQ(*half(8), 4);
    auto bad = half(3);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code, Errc::invalid_argument);
    int out = 0;
    EXPECT_TRUE(half_twice(8, out));
    EXPECT_EQ(out, 2);
    EXPECT_FALSE(half_twice(6, out));
}

TEST(Strings, ComparesAsciiCaseInsensitively) {
    EXPECT_TRUE(iequals("MAIL FROM", "mail from"));
    EXPECT_FALSE(iequals("mail", "mails"));
    EXPECT_TRUE(istarts_with("RCPT TO:<a@b>", "rcpt to:"));
    EXPECT_EQ(trim("\t a b  "), "a b");
}

TEST(Strings, ParsesUnsignedNumbersStrictly) {
    EXPECT_EQ(parse_uint("12345"), 12345u);
    EXPECT_FALSE(parse_uint(""));
    EXPECT_FALSE(parse_uint("-1"));
    EXPECT_FALSE(parse_uint("12a"));
    EXPECT_FALSE(parse_uint("99999999999999999999999"));
}

TEST(Strings, ValidatesUtf8Strictly) {
    EXPECT_TRUE(is_valid_utf8("h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80"));
    EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong '/'
    EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate
    EXPECT_FALSE(is_valid_utf8("\xE2\x82"));          // truncated
    EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
}

TEST(Strings, SplitsKeepingEmptyPieces) {
    auto parts = split("a,,b", ',');
    ASSERT_EQ(parts.size(), 3u);
    EXPECT_EQ(parts[1], "");
}

TEST(Time, FormatsRfc5322DatesInUtc) {
    EXPECT_EQ(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
    EXPECT_EQ(rfc5322_date(1795393014), "Mon, 23 Nov 2026 00:16:54 +0000");
}

}  // namespace
}  // namespace magpie
