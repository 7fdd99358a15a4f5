#include <gtest/gtest.h>

#include "delivery/outcome.h"

namespace magpie::delivery {
namespace {

constexpr std::int64_t kQueued = 1'800'000'000;

QueueRecipient recipient(std::string address = "bob@hamburger.edu", std::string notify = "") {
    QueueRecipient r;
    r.id = 7;
    r.address = std::move(address);
    r.notify = std::move(notify);
    return r;
}

AttemptResult smtp(AttemptResult::Kind kind, std::string status, std::string reply) {
    return AttemptResult{kind, std::move(status), std::move(reply), "mx.hamburger.edu", true};
}

QueueEntry entry(std::string sender = "alice@crepes.fr") {
    QueueEntry e;
    e.id = 1;
    e.reverse_path = std::move(sender);
    e.queued_at = kQueued;
    e.content = "From: alice@crepes.fr\r\nTo: bob@hamburger.edu\r\nSubject: Crepes\r\n\r\nHello\r\n";
    return e;
}

ReportContext context() {
    return ReportContext{"mx.crepes.fr", kQueued + 60, [n = 1ull]() mutable { return n++; }, {}};
}

TEST(Decide, TwoXxIsDelivered) {
    auto update = decide(RetryPolicy{}, kQueued, recipient(),
                         smtp(AttemptResult::Kind::delivered, "2.0.0", "250 2.0.0 Ok"), kQueued + 1);
    EXPECT_EQ(update.state, RecipientState::delivered);
    EXPECT_EQ(update.recipient_id, 7);
    EXPECT_FALSE(update.count_failure);
}

TEST(Decide, FiveXxFailsAtOnce) {
    auto update =
        decide(RetryPolicy{}, kQueued, recipient(),
               smtp(AttemptResult::Kind::permanent, "5.1.1", "550 5.1.1 no such user"), kQueued + 1);
    EXPECT_EQ(update.state, RecipientState::failed);
    EXPECT_EQ(update.status, "5.1.1");
}

TEST(Decide, FourXxDefersToTheRetrySchedule) {
    auto update = decide(RetryPolicy{}, kQueued, recipient(),
                         smtp(AttemptResult::Kind::temporary, "4.2.0", "451 4.2.0 try later"), kQueued + 10);
    EXPECT_EQ(update.state, RecipientState::deferred);
    EXPECT_EQ(update.next_attempt_at, kQueued + 10 + 300);  // greylisting: the first retry after 5 minutes
    EXPECT_TRUE(update.count_failure);
}

TEST(Decide, LaterFailuresWaitLonger) {
    auto r = recipient();
    r.failed_attempts = 2;
    auto update = decide(RetryPolicy{}, kQueued, r,
                         smtp(AttemptResult::Kind::temporary, "", "connection refused"), kQueued + 5000);
    EXPECT_EQ(update.next_attempt_at, kQueued + 5000 + 3600);
    EXPECT_EQ(update.status, "4.0.0");
}

TEST(Decide, TemporaryFailurePastTheLifetimeFails) {
    RetryPolicy policy;
    auto update =
        decide(policy, kQueued, recipient(), smtp(AttemptResult::Kind::temporary, "", "connection refused"),
               kQueued + policy.lifetime);
    EXPECT_EQ(update.state, RecipientState::failed);
    EXPECT_EQ(update.status, "4.4.7");  // RFC 3463: delivery time expired
}

TEST(Settle, SortsRecipientsIntoTheirReports) {
    auto e = entry();
    e.recipients = {recipient("ok@hamburger.edu", "SUCCESS"), recipient("gone@hamburger.edu"),
                    recipient("later@hamburger.edu"), recipient("local@crepes.fr", "SUCCESS"),
                    recipient("onward@dsn.example", "SUCCESS")};
    auto relayed = smtp(AttemptResult::Kind::delivered, "2.0.0", "250 ok");
    auto local = AttemptResult{AttemptResult::Kind::delivered, "2.0.0", "250 local", "", true};
    auto onward = relayed;
    onward.dsn_passed_on = true;  // the peer reports success itself
    std::vector<AttemptResult> results{relayed, smtp(AttemptResult::Kind::permanent, "5.1.1", "550 5.1.1 no"),
                                       smtp(AttemptResult::Kind::temporary, "4.4.1", "refused"), local,
                                       onward};
    auto round = settle(RetryPolicy{}, e, results, kQueued + 10);
    ASSERT_EQ(round.updates.size(), 5u);
    ASSERT_EQ(round.failed.size(), 1u);
    EXPECT_EQ(round.failed[0].recipient->address, "gone@hamburger.edu");
    ASSERT_EQ(round.delivered.size(), 2u);
    EXPECT_EQ(round.delivered[0].action, mail::DsnAction::relayed);
    EXPECT_EQ(round.delivered[1].action, mail::DsnAction::delivered);
    EXPECT_TRUE(round.delayed.empty());  // 10 seconds is not 4 hours
    EXPECT_EQ(round.updates[2].state, RecipientState::deferred);
}

TEST(Settle, OneDelayNoticeAfterTheConfiguredTime) {
    auto e = entry();
    e.recipients = {recipient()};
    RetryPolicy policy;
    std::vector<AttemptResult> refused{smtp(AttemptResult::Kind::temporary, "4.4.1", "refused")};
    auto round = settle(policy, e, refused, kQueued + policy.delay_notice_after);
    ASSERT_EQ(round.delayed.size(), 1u);
    EXPECT_TRUE(round.updates[0].delay_notified);
    EXPECT_EQ(*round.delayed[0].will_retry_until, kQueued + policy.lifetime);
    e.recipients[0].delay_notified = true;
    EXPECT_TRUE(settle(policy, e, refused, kQueued + policy.delay_notice_after + 3600).delayed.empty());
    policy.delay_notice_after = 0;  // off
    e.recipients[0].delay_notified = false;
    EXPECT_TRUE(settle(policy, e, refused, kQueued + 86400).delayed.empty());
}

TEST(Notify, DefaultIsFailureAndDelayNeverIsNothing) {
    EXPECT_TRUE(notify_wants("", mail::DsnAction::failed));
    EXPECT_TRUE(notify_wants("", mail::DsnAction::delayed));
    EXPECT_FALSE(notify_wants("", mail::DsnAction::delivered));
    EXPECT_FALSE(notify_wants("NEVER", mail::DsnAction::failed));
    EXPECT_TRUE(notify_wants("success,failure", mail::DsnAction::delivered));
    EXPECT_FALSE(notify_wants("SUCCESS", mail::DsnAction::failed));
}

TEST(Reports, FailureReportGoesFromTheNullSenderToTheSender) {
    auto e = entry();
    auto r = recipient();
    auto report = make_report(
        e, {{&r, mail::DsnAction::failed, "5.1.1", "550 5.1.1 no such user", "mx.hamburger.edu", {}}},
        context());
    ASSERT_TRUE(report) << report.error().message;
    ASSERT_TRUE(*report);
    const NewEntry& out = **report;
    EXPECT_EQ(out.reverse_path, "");
    ASSERT_EQ(out.recipients.size(), 1u);
    EXPECT_EQ(out.recipients[0].address, "alice@crepes.fr");
    EXPECT_NE(out.content.find("Subject: Undelivered Mail Returned to Sender"), std::string::npos);
    EXPECT_NE(out.content.find("Final-Recipient: rfc822; bob@hamburger.edu"), std::string::npos);
    EXPECT_NE(out.content.find("Action: failed"), std::string::npos);
    EXPECT_NE(out.content.find("Diagnostic-Code: smtp; 550 5.1.1 no such user"), std::string::npos);
    // RET defaults to the header only (RFC 3461 4.3): the body stays with the sender.
    EXPECT_NE(out.content.find("text/rfc822-headers"), std::string::npos);
    EXPECT_EQ(out.content.find("Hello"), std::string::npos);
}

TEST(Reports, RetFullReturnsTheWholeMessage) {
    auto e = entry();
    e.dsn_ret = "FULL";
    auto r = recipient();
    auto report = make_report(e, {{&r, mail::DsnAction::failed, "5.1.1", "550 5.1.1 no", "", {}}}, context());
    ASSERT_TRUE(report && *report);
    EXPECT_NE((*report)->content.find("message/rfc822"), std::string::npos);
    EXPECT_NE((*report)->content.find("Hello"), std::string::npos);
}

TEST(Reports, NeverAReportAboutAReport) {
    auto e = entry("");
    auto r = recipient();
    auto report = make_report(e, {{&r, mail::DsnAction::failed, "5.1.1", "550 no", "", {}}}, context());
    ASSERT_TRUE(report);
    EXPECT_FALSE(*report);
}

TEST(Reports, OnlyRecipientsWhoseNotifyAsksAreReported) {
    auto e = entry();
    auto quiet = recipient("quiet@hamburger.edu", "NEVER");
    auto loud = recipient("loud@hamburger.edu", "FAILURE");
    auto report = make_report(e,
                              {{&quiet, mail::DsnAction::failed, "5.1.1", "550 no", "", {}},
                               {&loud, mail::DsnAction::failed, "5.1.1", "550 no", "", {}}},
                              context());
    ASSERT_TRUE(report && *report);
    EXPECT_EQ((*report)->content.find("quiet@hamburger.edu"), std::string::npos);
    EXPECT_NE((*report)->content.find("loud@hamburger.edu"), std::string::npos);
    auto none = make_report(e, {{&quiet, mail::DsnAction::failed, "5.1.1", "550 no", "", {}}}, context());
    ASSERT_TRUE(none);
    EXPECT_FALSE(*none);
}

TEST(Reports, SuccessOnlyWhenAskedAndDelayCarriesTheRetryLimit) {
    auto e = entry();
    auto plain = recipient();
    auto none = make_report(e, {{&plain, mail::DsnAction::delivered, "2.0.0", "250 ok", "", {}}}, context());
    ASSERT_TRUE(none);
    EXPECT_FALSE(*none);
    auto asked = recipient("bob@hamburger.edu", "SUCCESS");
    auto success =
        make_report(e, {{&asked, mail::DsnAction::delivered, "2.0.0", "250 ok", "", {}}}, context());
    ASSERT_TRUE(success && *success);
    EXPECT_NE((*success)->content.find("Action: delivered"), std::string::npos);
    auto delayed = make_report(
        e, {{&plain, mail::DsnAction::delayed, "4.4.1", "connection refused", "", kQueued + 432000}},
        context());
    ASSERT_TRUE(delayed && *delayed);
    EXPECT_NE((*delayed)->content.find("Action: delayed"), std::string::npos);
    EXPECT_NE((*delayed)->content.find("Will-Retry-Until:"), std::string::npos);
}

}  // namespace
}  // namespace magpie::delivery
