// RFC 5256 2.1 base subjects: what threading by subject and sorting by subject compare.
#include <gtest/gtest.h>

#include "mail/subject.h"

namespace magpie::mail {
namespace {

TEST(BaseSubject, StripsReplyAndForwardLeadersInAnyCase) {
    EXPECT_EQ(base_subject("Re: lunch"), "lunch");
    EXPECT_EQ(base_subject("RE: Re: re:lunch"), "lunch");
    EXPECT_EQ(base_subject("Fwd: lunch"), "lunch");
    EXPECT_EQ(base_subject("FW: lunch"), "lunch");
    EXPECT_EQ(base_subject("Re[2]: lunch"), "lunch");
}

TEST(BaseSubject, StripsListTagsBeforeAndBetweenLeaders) {
    EXPECT_EQ(base_subject("[dev] Re: build broken"), "build broken");
    EXPECT_EQ(base_subject("Re: [dev] build broken"), "build broken");
    EXPECT_EQ(base_subject("[dev][ann] Fwd: [dev] release"), "release");
}

TEST(BaseSubject, KeepsABlobThatIsTheWholeSubject) {
    EXPECT_EQ(base_subject("[dev]"), "[dev]");
    EXPECT_EQ(base_subject("Re: [dev]"), "[dev]");
}

TEST(BaseSubject, RemovesTrailingFwdAndUnwrapsForwardedSubjects) {
    EXPECT_EQ(base_subject("lunch (fwd)"), "lunch");
    EXPECT_EQ(base_subject("lunch (fwd) (FWD)  "), "lunch");
    EXPECT_EQ(base_subject("[Fwd: Re: lunch]"), "lunch");
}

TEST(BaseSubject, CollapsesWhiteSpaceAndKeepsCase) {
    EXPECT_EQ(base_subject("  Re:\tLunch \r\n  at   noon "), "Lunch at noon");
}

TEST(BaseSubject, WordsThatOnlyStartLikeLeadersStay) {
    EXPECT_EQ(base_subject("Remember the milk"), "Remember the milk");
    EXPECT_EQ(base_subject("Forward planning"), "Forward planning");
    EXPECT_EQ(base_subject("Re"), "Re");
    EXPECT_EQ(base_subject(""), "");
    EXPECT_EQ(base_subject("Re: "), "");
}

}  // namespace
}  // namespace magpie::mail
