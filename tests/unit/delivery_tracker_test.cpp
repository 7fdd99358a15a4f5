#include <gtest/gtest.h>

#include "delivery/tracker.h"

namespace magpie::delivery {
namespace {

QueueEntry tracked() {
    QueueEntry e;
    e.id = 42;
    e.reverse_path = "alice@crepes.fr";
    e.queued_at = 1'800'000'000;
    e.size = 1234;
    QueueRecipient bob;
    bob.address = "bob@hamburger.edu";
    bob.state = RecipientState::deferred;
    bob.status = "4.4.1";
    bob.next_attempt_at = 1'800'000'300;
    bob.last_reply = "connection refused";
    bob.attempts.push_back(Attempt{1'800'000'000, "mx.hamburger.edu", "", "",
                                   "connection to mx.hamburger.edu[127.0.0.3] "
                                   "port 25 failed: Connection refused",
                                   "", ""});
    bob.attempts.push_back(Attempt{
        1'800'000'300, "mx.hamburger.edu", "127.0.0.3:25", "TLSv1.3 TLS_AES_256_GCM_SHA384",
        "451 4.3.0 try later", "mx.crepes.fr.7",
        "S: 220 mx.hamburger.edu ESMTP\nC: EHLO mx.crepes.fr\nS: 250 ok\nC: MAIL FROM:<alice@crepes.fr>\n"
        "S: 451 4.3.0 try later\n"});
    e.recipients.push_back(bob);
    return e;
}

TEST(Tracker, ShowGivesEachAttemptAndTheLastConversation) {
    std::string text = format_entry(tracked());
    EXPECT_NE(text.find("entry 42"), std::string::npos);
    EXPECT_NE(text.find("from <alice@crepes.fr>"), std::string::npos);
    EXPECT_NE(text.find("recipient bob@hamburger.edu: deferred 4.4.1, next attempt"), std::string::npos);
    EXPECT_NE(text.find("attempt 1 at Fri, 15 Jan 2027 08:00:00 +0000: host mx.hamburger.edu, no connection"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("Connection refused"), std::string::npos);
    EXPECT_NE(text.find("attempt 2 at Fri, 15 Jan 2027 08:05:00 +0000: host mx.hamburger.edu [127.0.0.3:25], "
                        "TLS TLSv1.3 TLS_AES_256_GCM_SHA384, connection mx.crepes.fr.7"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("reply: 451 4.3.0 try later"), std::string::npos);
    EXPECT_NE(text.find("    C: MAIL FROM:<alice@crepes.fr>\n    S: 451 4.3.0 try later\n"),
              std::string::npos)
        << text;
}

TEST(Tracker, ListGivesOneLinePerEntryAndOnePerRecipient) {
    auto e = tracked();
    e.held = true;
    std::string text = format_list({e});
    EXPECT_NE(text.find("42 "), std::string::npos);
    EXPECT_NE(text.find("1234 octets from <alice@crepes.fr> HELD\n"), std::string::npos) << text;
    EXPECT_NE(text.find("    bob@hamburger.edu deferred (next "), std::string::npos) << text;
    EXPECT_NE(text.find("): connection refused\n"), std::string::npos) << text;
}

TEST(Tracker, ReportsAreMarkedAsComingFromTheNullSender) {
    auto e = tracked();
    e.reverse_path.clear();
    EXPECT_NE(format_entry(e).find("from <> (a report)"), std::string::npos);
}

}  // namespace
}  // namespace magpie::delivery
