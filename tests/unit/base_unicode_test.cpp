// base/unicode.h: RFC 5051 i;unicode-casemap through ICU.
#include <gtest/gtest.h>

#include "base/unicode.h"

namespace magpie {
namespace {

TEST(UnicodeCasemap, FoldsCaseInEveryScript) {
    EXPECT_EQ(unicode_casemap("Hello WORLD"), "hello world");
    EXPECT_EQ(unicode_casemap("\xC3\x85ke M\xC3\x96TE"),
              unicode_casemap("\xC3\xA5ke m\xC3\xB6te"));                            // Åke MÖTE
    EXPECT_EQ(unicode_casemap("\xCE\xA3\xCE\x9F\xCE\xA6\xCE\x99\xCE\x91"),           // ΣΟΦΙΑ
              unicode_casemap("\xCF\x83\xCE\xBF\xCF\x86\xCE\xB9\xCE\xB1"));          // σοφια
    EXPECT_EQ(unicode_casemap("\xD0\x9F\xD0\xA0\xD0\x98\xD0\x92\xD0\x95\xD0\xA2"),   // ПРИВЕТ
              unicode_casemap("\xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82"));  // привет
    EXPECT_EQ(unicode_casemap("Stra\u00DFe"), "strasse");                            // full folding: ß is ss
}

TEST(UnicodeCasemap, DecomposesCompatibilityAndCanonicalForms) {
    // Precomposed "å" (U+00E5) and "a" + combining ring (U+030A) compare equal; "ﬁ" is "fi".
    EXPECT_EQ(unicode_casemap("\xC3\xA5"), unicode_casemap("a\xCC\x8A"));
    EXPECT_EQ(unicode_casemap("\xEF\xAC\x81le"), "file");
}

TEST(UnicodeCasemap, SubstringMatch) {
    EXPECT_TRUE(unicode_casemap_contains("\xC3\x85ke m\xC3\xB6te", "M\xC3\x96TE"));
    EXPECT_TRUE(unicode_casemap_contains("From \xC3\x85ke Str\xC3\xB6m", "\xC3\xA5ke"));
    EXPECT_TRUE(unicode_casemap_contains("anything", ""));
    EXPECT_FALSE(unicode_casemap_contains("\xC3\x85ke", "ake m"));
    EXPECT_TRUE(unicode_casemap_contains("bad \xFF utf-8 ABC", "abc"));  // ill-formed octets do not stop it
}

}  // namespace
}  // namespace magpie
