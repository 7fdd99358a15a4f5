// RFC 3834 automatic replies (mail/auto_reply.h): who may be answered, and what the answer says.
#include <gtest/gtest.h>

#include "mail/auto_reply.h"

namespace magpie::mail {
namespace {

const std::vector<std::string> kAlice = {"alice@example.test"};

bool may(const std::string& header, std::string_view reverse_path = "carol@remote.test") {
    std::string bytes = header + "\r\nbody\r\n";
    return may_auto_reply(Message::parse(bytes), reverse_path, kAlice);
}

TEST(AutoReply, AnswersAPersonalMessageThatNamesTheRecipient) {
    EXPECT_TRUE(may("From: carol@remote.test\r\nTo: Alice <ALICE@example.test>\r\n"));
    EXPECT_TRUE(may("From: carol@remote.test\r\nTo: x@remote.test\r\nCc: alice@example.test\r\n"));
    EXPECT_TRUE(may("From: carol@remote.test\r\nTo: alice@example.test\r\nAuto-Submitted: no\r\n"));
}

TEST(AutoReply, NeverAnswersNullOrDaemonSenders) {
    const std::string header = "From: x@remote.test\r\nTo: alice@example.test\r\n";
    EXPECT_FALSE(may(header, ""));
    EXPECT_FALSE(may(header, "MAILER-DAEMON@remote.test"));
    EXPECT_FALSE(may(header, "owner-list@remote.test"));
    EXPECT_FALSE(may(header, "list-request@remote.test"));
}

TEST(AutoReply, NeverAnswersAutomaticListOrBulkMail) {
    EXPECT_FALSE(may("From: c@remote.test\r\nTo: alice@example.test\r\nAuto-Submitted: auto-replied\r\n"));
    EXPECT_FALSE(may("From: c@remote.test\r\nTo: alice@example.test\r\nAuto-Submitted: auto-generated\r\n"));
    EXPECT_FALSE(may("From: c@remote.test\r\nTo: alice@example.test\r\nPrecedence: bulk\r\n"));
    EXPECT_FALSE(may("From: c@remote.test\r\nTo: alice@example.test\r\nPrecedence: list\r\n"));
    EXPECT_FALSE(may("From: c@remote.test\r\nTo: alice@example.test\r\nList-Id: <team.remote.test>\r\n"));
    EXPECT_FALSE(may("From: c@remote.test\r\nTo: alice@example.test\r\nList-Unsubscribe: <mailto:u@remote.test>\r\n"));
}

TEST(AutoReply, NeverAnswersAMessageThatDoesNotNameTheRecipient) {
    EXPECT_FALSE(may("From: c@remote.test\r\nTo: team@remote.test\r\n"));
}

TEST(AutoReply, DraftRefersToTheOriginalAndSaysItIsAutomatic) {
    std::string bytes =
        "From: carol@remote.test\r\nTo: alice@example.test\r\nSubject: Lunch\r\nMessage-ID: <m1@remote.test>\r\n"
        "References: <m0@remote.test>\r\n\r\nhi\r\n";
    auto original = Message::parse(bytes);
    auto draft = auto_reply_draft(original, AutoReplyText{{"Alice", "alice@example.test"}, "carol@remote.test",
                                                          std::nullopt, std::string("Away until Monday."), std::nullopt});
    EXPECT_EQ(draft.subject, "Auto: Lunch");
    ASSERT_EQ(draft.to.size(), 1u);
    EXPECT_EQ(draft.to[0].address, "carol@remote.test");
    EXPECT_EQ(draft.in_reply_to, "<m1@remote.test>");
    EXPECT_EQ(draft.references, "<m0@remote.test> <m1@remote.test>");
    EXPECT_EQ(draft.text, "Away until Monday.");
    ASSERT_EQ(draft.extra_fields.size(), 1u);
    EXPECT_EQ(draft.extra_fields[0], std::make_pair(std::string("Auto-Submitted"), std::string("auto-replied")));
    auto given = auto_reply_draft(original, AutoReplyText{{"", "alice@example.test"}, "carol@remote.test",
                                                          std::string("Out of office"), std::nullopt, std::nullopt});
    EXPECT_EQ(given.subject, "Out of office");
    EXPECT_EQ(given.text, "");
}

TEST(AutoReply, VacationAnswersFromItsStartUntilBeforeItsEnd) {
    EXPECT_FALSE(vacation_active(false, std::nullopt, std::nullopt, 100));
    EXPECT_TRUE(vacation_active(true, std::nullopt, std::nullopt, 100));
    EXPECT_TRUE(vacation_active(true, 100, 200, 100));
    EXPECT_FALSE(vacation_active(true, 101, std::nullopt, 100));
    EXPECT_FALSE(vacation_active(true, std::nullopt, 100, 100));
    EXPECT_TRUE(vacation_active(true, std::nullopt, 101, 100));
}

TEST(AutoReply, EachSenderIsAnsweredOncePerRecordAndTheRecordStaysBounded) {
    std::vector<std::string> replied;
    EXPECT_TRUE(note_replied(replied, "carol@remote.test", 2));
    EXPECT_FALSE(note_replied(replied, "Carol@Remote.Test", 2));
    EXPECT_TRUE(note_replied(replied, "dave@remote.test", 2));
    EXPECT_TRUE(note_replied(replied, "erin@remote.test", 2));
    EXPECT_EQ(replied, (std::vector<std::string>{"dave@remote.test", "erin@remote.test"}));
    EXPECT_FALSE(note_replied(replied, "erin@remote.test", 2));
}

// The record is one stored JSON value with a size bound: whichever of the count and the size is reached
// first forgets the oldest senders, and the list as JSON never exceeds the size.
TEST(AutoReply, TheSenderListStaysUnderItsOctetBoundBeforeTheCountIsReached) {
    std::vector<std::string> replied;
    const std::size_t max_octets = 4096;
    for (int i = 0; i < 500; ++i) {
        const std::string sender = std::string(200, 'a' + i % 26) + "\"" + std::to_string(i) + "@remote.test";
        ASSERT_TRUE(note_replied(replied, sender, 10000, max_octets));
        std::size_t octets = 2;
        for (const auto& s : replied) octets += json_string_octets(s) + 1;
        ASSERT_LE(octets, max_octets);
        ASSERT_EQ(replied.back(), sender);
    }
    EXPECT_LT(replied.size(), 30u);  // the octets bound, not the count of 10000, decided
    EXPECT_GT(replied.size(), 10u);
    // The count still bounds short addresses first.
    std::vector<std::string> few;
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(note_replied(few, "s" + std::to_string(i) + "@x.test", 3, max_octets));
    EXPECT_EQ(few, (std::vector<std::string>{"s2@x.test", "s3@x.test", "s4@x.test"}));
    // JSON escapes are counted as the serialiser writes them.
    EXPECT_EQ(json_string_octets("a\"b\\c"), 2u + 7u);
    EXPECT_EQ(json_string_octets("\x01\xc3\xa9"), 2u + 6u + 6u);
}

}  // namespace
}  // namespace magpie::mail
