#include <gtest/gtest.h>

#include "imap/sequence_set.h"

namespace magpie::imap {
namespace {

SequenceSet parse(std::string_view text) {
    auto set = SequenceSet::parse(text, 100);
    EXPECT_TRUE(set) << text;
    return set ? *set : SequenceSet();
}

TEST(SequenceSet, ParsesNumbersRangesAndStar) {
    SequenceSet set = parse("1:5,7,9:*");
    ASSERT_EQ(set.ranges().size(), 3u);
    EXPECT_EQ(set.ranges()[0], (SequenceSet::Range{1, 5}));
    EXPECT_EQ(set.ranges()[1], (SequenceSet::Range{7, 7}));
    EXPECT_EQ(set.ranges()[2], (SequenceSet::Range{9, SequenceSet::star}));
    EXPECT_EQ(set.to_string(), "1:5,7,9:*");
}

TEST(SequenceSet, ParsesSavedResult) {
    SequenceSet set = parse("$");
    EXPECT_TRUE(set.is_saved());
    EXPECT_EQ(set.to_string(), "$");
}

TEST(SequenceSet, RejectsMalformedSets) {
    for (std::string_view bad :
         {"", "0", "1:0", "1,", ",1", "1::2", "a", "1:2:3", "4294967296", "$,1", "-1"}) {
        EXPECT_FALSE(SequenceSet::parse(bad, 100)) << bad;
    }
    EXPECT_TRUE(SequenceSet::parse("4294967295", 100));
}

TEST(SequenceSet, EnforcesRangeLimit) {
    EXPECT_TRUE(SequenceSet::parse("1,2,3", 3));
    auto over = SequenceSet::parse("1,2,3,4", 3);
    ASSERT_FALSE(over);
    EXPECT_EQ(over.error().code, Errc::limit_exceeded);
}

TEST(SequenceSet, ResolvesStarOrdersAndMerges) {
    SequenceSet set = parse("9:*,5:2,3,6,20");
    EXPECT_EQ(set.resolved(12).to_string(), "2:6,9:12,20");
    EXPECT_TRUE(set.contains(4, 12));
    EXPECT_TRUE(set.contains(12, 12));
    EXPECT_FALSE(set.contains(8, 12));
    EXPECT_EQ(set.count(12), 10u);
}

// RFC 9051 6.4.8: "559:*" always includes the largest UID, even when 559 is above it.
TEST(SequenceSet, StarRangeAboveLargestStillIncludesLargest) {
    SequenceSet set = parse("559:*");
    EXPECT_EQ(set.resolved(500).to_string(), "500:559");
    EXPECT_TRUE(set.contains(500, 500));
}

TEST(SequenceSet, StarNamesNothingInEmptyMailbox) {
    EXPECT_TRUE(parse("1:*").resolved(0).empty());
    EXPECT_EQ(parse("3,*").resolved(0).to_string(), "3");
    EXPECT_FALSE(parse("*").contains(1, 0));
}

TEST(SequenceSet, FormatsNumbersCompactly) {
    EXPECT_EQ(SequenceSet::from_numbers({3956, 3957, 3958}).to_string(), "3956:3958");
    EXPECT_EQ(SequenceSet::from_numbers({320, 304, 319, 319}).to_string(), "304,319:320");
    EXPECT_EQ(SequenceSet::from_numbers({}).to_string(), "");
    EXPECT_EQ(SequenceSet::from_numbers({4294967295u, 4294967294u}).to_string(), "4294967294:4294967295");
}

TEST(SequenceSet, MergesAdjacentRangesAtTheTop) {
    EXPECT_EQ(parse("4294967294,4294967295,1").resolved(4294967295u).to_string(), "1,4294967294:4294967295");
}

}  // namespace
}  // namespace magpie::imap
