// The scheduler's queue over the store (delivery::StoreQueue): the same contract the scheduler and `magpie
// queue` had from the interim queue.db, now kept by store::Store.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <future>

#include "delivery/store_queue.h"

namespace magpie::delivery {
namespace {

constexpr std::int64_t kNow = 1'800'000'000;

class Queue : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/magpie-queue-XXXXXX";
        dir_ = mkdtemp(tmpl);
        reopen();
    }
    void TearDown() override {
        queue_.reset();
        store_.reset();
        std::filesystem::remove_all(dir_);
    }

    void reopen() {
        queue_.reset();
        store_.reset();
        store::SqliteOptions options;
        options.data_dir = dir_;
        options.max_attempts_kept = 3;
        options.max_remote_recipients = 5;
        auto opened = store::open_sqlite_store(options);
        ASSERT_TRUE(opened) << opened.error().message;
        store_ = std::move(*opened);
        queue_ = std::make_unique<StoreQueue>(*store_);
    }

    std::int64_t add(std::vector<std::string> to, std::string from = "alice@crepes.fr",
                     std::int64_t at = kNow) {
        NewEntry e;
        e.reverse_path = std::move(from);
        e.content = "Subject: hi\r\n\r\nbody\r\n";
        e.queued_at = at;
        for (auto& r : to) e.recipients.push_back(NewRecipient{r, "", ""});
        auto id = queue_->enqueue(e);
        EXPECT_TRUE(id) << id.error().message;
        return id ? *id : 0;
    }

    RecipientUpdate deferred(const QueueRecipient& r, std::int64_t next,
                             std::string reply = "connection refused") {
        RecipientUpdate u;
        u.recipient_id = r.id;
        u.state = RecipientState::deferred;
        u.next_attempt_at = next;
        u.count_failure = true;
        u.status = "4.4.1";
        u.attempt =
            Attempt{kNow, "mx.hamburger.edu", "127.0.0.3:25", "", std::move(reply), "c.1", "S: 421 busy\n"};
        return u;
    }

    std::filesystem::path dir_;
    std::unique_ptr<store::Store> store_;
    std::unique_ptr<StoreQueue> queue_;
};

TEST_F(Queue, LeasesDueEntriesOnceUntilTheLeaseExpires) {
    auto id = add({"bob@hamburger.edu", "carol@hamburger.edu"});
    auto first = queue_->lease_due(kNow, 10, 60, "node-a");
    ASSERT_TRUE(first);
    ASSERT_EQ(first->size(), 1u);
    EXPECT_EQ((*first)[0].id, id);
    EXPECT_EQ((*first)[0].recipients.size(), 2u);
    EXPECT_EQ((*first)[0].content, "Subject: hi\r\n\r\nbody\r\n");
    auto again = queue_->lease_due(kNow + 59, 10, 60, "node-b");
    ASSERT_TRUE(again);
    EXPECT_TRUE(again->empty());
    auto expired = queue_->lease_due(kNow + 60, 10, 60, "node-b");
    ASSERT_TRUE(expired);
    EXPECT_EQ(expired->size(), 1u);
}

TEST_F(Queue, ARestartedNodeTakesBackItsOwnLeases) {
    add({"bob@hamburger.edu"});
    ASSERT_TRUE(queue_->lease_due(kNow, 10, 900, "mx.crepes.fr"));
    ASSERT_TRUE(queue_->release_leases("mx.crepes.fr"));
    auto taken = queue_->lease_due(kNow + 1, 10, 900, "mx.crepes.fr");
    ASSERT_TRUE(taken);
    EXPECT_EQ(taken->size(), 1u);
}

TEST_F(Queue, RecordKeepsAttemptsAndReleasesTheLeaseAndQueuesReportsInTheSameCommit) {
    auto id = add({"bob@hamburger.edu", "nobody@hamburger.edu"});
    auto leased = queue_->lease_due(kNow, 10, 900, "n");
    ASSERT_TRUE(leased);
    const auto& recipients = (*leased)[0].recipients;
    EntryOutcome outcome;
    outcome.entry_id = id;
    outcome.updates.push_back(deferred(recipients[0], kNow + 300));
    RecipientUpdate failed;
    failed.recipient_id = recipients[1].id;
    failed.state = RecipientState::failed;
    failed.status = "5.1.1";
    failed.remote_mta = "mx.hamburger.edu";
    failed.attempt =
        Attempt{kNow, "mx.hamburger.edu", "127.0.0.3:25", "TLSv1.3 X", "550 5.1.1 no", "c.1", "C: RCPT\n"};
    outcome.updates.push_back(failed);
    NewEntry report;
    report.content = "report";
    report.queued_at = kNow;
    report.recipients.push_back(NewRecipient{"alice@crepes.fr", "", ""});
    outcome.reports.push_back(report);
    ASSERT_EQ(*queue_->record("n", outcome), 2u);

    auto entry = queue_->get(id);
    ASSERT_TRUE(entry);
    EXPECT_EQ(entry->recipients[0].state, RecipientState::deferred);
    EXPECT_EQ(entry->recipients[0].failed_attempts, 1u);
    EXPECT_EQ(entry->recipients[0].next_attempt_at, kNow + 300);
    EXPECT_EQ(entry->recipients[0].last_reply, "connection refused");
    ASSERT_EQ(entry->recipients[1].attempts.size(), 1u);
    EXPECT_EQ(entry->recipients[1].attempts[0].tls, "TLSv1.3 X");
    EXPECT_EQ(entry->recipients[1].attempts[0].transcript, "C: RCPT\n");
    EXPECT_EQ(entry->recipients[1].state, RecipientState::failed);

    // The report is queued (from the null sender) and due; the deferred recipient is not due yet.
    auto next = queue_->lease_due(kNow, 10, 900, "n");
    ASSERT_TRUE(next);
    ASSERT_EQ(next->size(), 1u);
    EXPECT_EQ((*next)[0].reverse_path, "");
    EXPECT_EQ((*next)[0].content, "report");
    auto due = queue_->next_due();
    ASSERT_TRUE(due);
    EXPECT_EQ(**due, kNow + 300);
}

TEST_F(Queue, TheTrackerKeepsOnlyTheNewestAttempts) {
    auto id = add({"bob@hamburger.edu"});
    for (int i = 0; i < 5; ++i) {
        auto leased = queue_->lease_due(kNow + i * 10, 10, 5, "n");
        ASSERT_TRUE(leased);
        ASSERT_EQ(leased->size(), 1u);
        EntryOutcome outcome{
            id, {deferred((*leased)[0].recipients[0], kNow + (i + 1) * 10, "try " + std::to_string(i))}, {}};
        ASSERT_EQ(*queue_->record("n", outcome), 1u);
    }
    auto entry = queue_->get(id);
    ASSERT_TRUE(entry);
    ASSERT_EQ(entry->recipients[0].attempts.size(), 3u);
    EXPECT_EQ(entry->recipients[0].attempts.back().reply, "try 4");
    EXPECT_EQ(entry->recipients[0].failed_attempts, 5u);
}

TEST_F(Queue, HeldEntriesWaitUntilReleased) {
    auto id = add({"bob@hamburger.edu"});
    ASSERT_TRUE(queue_->set_held(id, true));
    auto none = queue_->lease_due(kNow, 10, 60, "n");
    ASSERT_TRUE(none);
    EXPECT_TRUE(none->empty());
    ASSERT_TRUE(queue_->set_held(id, false));
    auto some = queue_->lease_due(kNow, 10, 60, "n");
    ASSERT_TRUE(some);
    EXPECT_EQ(some->size(), 1u);
    EXPECT_EQ(queue_->set_held(999, true).error().code, Errc::not_found);
}

TEST_F(Queue, RetryNowMakesDeferredRecipientsDue) {
    auto id = add({"bob@hamburger.edu"});
    auto leased = queue_->lease_due(kNow, 10, 60, "n");
    ASSERT_TRUE(leased);
    ASSERT_TRUE(queue_->record("n", EntryOutcome{id, {deferred((*leased)[0].recipients[0], kNow + 3600)}, {}}));
    auto before = queue_->lease_due(kNow + 1, 10, 60, "n");
    ASSERT_TRUE(before);
    EXPECT_TRUE(before->empty());
    auto changed = queue_->retry_now(id, kNow + 1);
    ASSERT_TRUE(changed);
    EXPECT_EQ(*changed, 1u);
    auto after = queue_->lease_due(kNow + 1, 10, 60, "n");
    ASSERT_TRUE(after);
    EXPECT_EQ(after->size(), 1u);
    EXPECT_EQ(queue_->retry_now(12345, kNow).error().code, Errc::not_found);
}

TEST_F(Queue, ListShowsWaitingEntriesAndPurgeRemovesOldFinishedOnes) {
    auto done = add({"bob@hamburger.edu"}, "alice@crepes.fr", kNow - 100);
    auto waiting = add({"carol@hamburger.edu"});
    auto leased = queue_->lease_due(kNow, 1, 60, "n");
    ASSERT_TRUE(leased);
    ASSERT_EQ((*leased)[0].id, done);
    RecipientUpdate delivered;
    delivered.recipient_id = (*leased)[0].recipients[0].id;
    delivered.state = RecipientState::delivered;
    delivered.status = "2.0.0";
    ASSERT_EQ(*queue_->record("n", EntryOutcome{done, {delivered}, {}}), 1u);
    auto open = queue_->list(false, 100);
    ASSERT_TRUE(open);
    ASSERT_EQ(open->size(), 1u);
    EXPECT_EQ((*open)[0].id, waiting);
    auto all = queue_->list(true, 100);
    ASSERT_TRUE(all);
    EXPECT_EQ(all->size(), 2u);
    auto purged = queue_->purge_finished(kNow - 50);
    ASSERT_TRUE(purged);
    EXPECT_EQ(*purged, 1u);
    EXPECT_EQ(queue_->get(done).error().code, Errc::not_found);
    ASSERT_TRUE(queue_->remove(waiting));
    EXPECT_EQ(queue_->remove(waiting).error().code, Errc::not_found);
}

TEST_F(Queue, RefusesEntriesWithoutRecipientsOrOverTheLimits) {
    NewEntry empty;
    EXPECT_EQ(queue_->enqueue(empty).error().code, Errc::invalid_argument);
    NewEntry bad;
    bad.recipients.push_back(NewRecipient{"no-at-sign", "", ""});
    EXPECT_EQ(queue_->enqueue(bad).error().code, Errc::invalid_argument);
    NewEntry many;
    for (int i = 0; i < 6; ++i)
        many.recipients.push_back(NewRecipient{"r" + std::to_string(i) + "@x.example", "", ""});
    EXPECT_EQ(queue_->enqueue(many).error().code, Errc::limit_exceeded);
}

TEST_F(Queue, SurvivesReopening) {
    auto id = add({"bob@hamburger.edu"});
    reopen();
    auto entry = queue_->get(id);
    ASSERT_TRUE(entry);
    EXPECT_EQ(entry->recipients[0].state, RecipientState::queued);
}

TEST_F(Queue, TheQueueSendsTheMessageWithoutTheLocalCopiesReturnPath) {
    // Submission stores one blob for the sender's Sent copy and the queue: the Return-Path on top is the
    // local copies' only (RFC 5321 4.4), and the entry says how much of the blob to leave out.
    auto account = store_->add_domain("crepes.fr");
    ASSERT_TRUE(account);
    const std::string return_path = "Return-Path: <alice@crepes.fr>\r\n";
    store::Delivery delivery = queue_delivery(NewEntry{"alice@crepes.fr", "", "", false,
                                                       return_path + "Subject: hi\r\n\r\nbody\r\n",
                                                       {{"bob@hamburger.edu", "", ""}}, kNow});
    delivery.outgoing->send_offset = return_path.size();
    std::promise<Result<store::Delivered>> committed;
    store_->deliver(std::move(delivery), [&](Result<store::Delivered> r) { committed.set_value(std::move(r)); });
    ASSERT_TRUE(committed.get_future().get());
    auto leased = queue_->lease_due(kNow, 10, 60, "n");
    ASSERT_TRUE(leased);
    ASSERT_EQ(leased->size(), 1u);
    EXPECT_EQ((*leased)[0].content, "Subject: hi\r\n\r\nbody\r\n");
    EXPECT_EQ((*leased)[0].size, (*leased)[0].content.size());
}

}  // namespace
}  // namespace magpie::delivery
