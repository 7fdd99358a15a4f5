// The outgoing queue in the store: a delivery's local copies and queue entry commit in one transaction,
// due recipients are leased to one worker at a time until the lease lapses, attempts are recorded with
// bounded transcripts, and the tracker reads it all back.
#include <algorithm>
#include <future>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "store/store.h"
#include "store_test_support.h"

namespace magpie::store {
namespace {

constexpr std::int64_t kNow = 1'800'000'000;

class QueueTest : public StoreTest {
protected:
    void SetUp() override {
        SqliteOptions options;
        options.max_transcript_bytes = 64;
        options.max_attempts_kept = 3;
        open(options);
        ASSERT_TRUE(store_->add_domain("example.test"));
        bob_ = make_account("bob@example.test");
        inbox_ = mailbox(bob_.id, "INBOX").id;
    }

    // A message from bob's client to one local and two remote recipients.
    Result<Delivered> submit(std::string content, std::vector<DeliveryTarget> targets,
                             std::vector<std::string> remote, std::int64_t first_attempt_at = kNow) {
        Delivery delivery;
        delivery.content = std::move(content);
        delivery.targets = std::move(targets);
        OutgoingMessage outgoing;
        outgoing.reverse_path = "bob@example.test";
        outgoing.dsn_ret = "HDRS";
        outgoing.dsn_envid = "env-1";
        outgoing.first_attempt_at = first_attempt_at;
        for (auto& address : remote) outgoing.recipients.push_back(EnvelopeRecipient{address, "FAILURE", ""});
        delivery.outgoing = std::move(outgoing);
        std::promise<Result<Delivered>> promise;
        store_->deliver(std::move(delivery), [&](Result<Delivered> result) { promise.set_value(std::move(result)); });
        return promise.get_future().get();
    }

    std::vector<std::int64_t> recipient_ids(const std::vector<QueueEntry>& entries) {
        std::vector<std::int64_t> ids;
        for (const auto& entry : entries)
            for (const auto& recipient : entry.recipients) ids.push_back(recipient.id);
        return ids;
    }

    Account bob_;
    std::int64_t inbox_ = 0;
};

TEST_F(QueueTest, LocalCopiesAndTheQueueEntryCommitTogether) {
    auto delivered = submit("To: a@remote.test, b@other.test, bob@example.test\r\n\r\nhello\r\n", {{inbox_, {}}},
                            {"a@remote.test", "b@other.test"});
    ASSERT_TRUE(delivered) << delivered.error().message;
    EXPECT_GT(delivered->queue_id, 0);
    ASSERT_EQ(delivered->placed.size(), 1u);

    auto queue = store_->list_queue(100);
    ASSERT_TRUE(queue) << queue.error().message;
    ASSERT_EQ(queue->size(), 1u);
    const QueueEntry& entry = queue->front();
    EXPECT_EQ(entry.id, delivered->queue_id);
    EXPECT_EQ(entry.blob_id, delivered->blob_id);  // one stored copy serves the mailbox and the queue
    EXPECT_EQ(entry.reverse_path, "bob@example.test");
    EXPECT_EQ(entry.dsn_ret, "HDRS");
    EXPECT_EQ(entry.dsn_envid, "env-1");
    ASSERT_EQ(entry.recipients.size(), 2u);
    EXPECT_EQ(entry.recipients[0].address, "a@remote.test");
    EXPECT_EQ(entry.recipients[0].notify, "FAILURE");
    EXPECT_EQ(entry.recipients[0].state, QueueState::queued);
    EXPECT_EQ(entry.recipients[0].next_attempt_at, kNow);
    EXPECT_EQ(*store_->read_blob(entry.blob_id), "To: a@remote.test, b@other.test, bob@example.test\r\n\r\nhello\r\n");
    CheckReport report = check();
    EXPECT_TRUE(report.clean) << describe(report);
}

TEST_F(QueueTest, AFailingQueueInsertTakesTheLocalCopiesWithIt) {
    // A trigger stands in for any failure of the queue half (disk full, a constraint): the whole delivery
    // rolls back, so neither a local copy without its remote half nor the reverse is ever acknowledged.
    store_.reset();
    corrupt_sql(dir_.path(),
                "CREATE TRIGGER refuse_queue BEFORE INSERT ON queue_recipients BEGIN SELECT RAISE(ABORT, 'no'); END");
    open();
    auto delivered = submit("two halves", {{inbox_, {}}}, {"a@remote.test"});
    ASSERT_FALSE(delivered);
    EXPECT_EQ(store_->mailbox_status(inbox_)->messages, 0u);
    EXPECT_TRUE(store_->list_queue(10)->empty());

    // And the reverse: a local half that fails (its mailbox is gone) leaves no queue entry.
    corrupt_sql(dir_.path(), "DROP TRIGGER refuse_queue");
    auto gone = submit("two halves", {{99999, {}}}, {"a@remote.test"});
    ASSERT_FALSE(gone);
    EXPECT_TRUE(store_->list_queue(10)->empty());
}

TEST_F(QueueTest, RemoteOnlyMessageNeedsNoMailboxButSomeRecipient) {
    auto delivered = submit("only remote", {}, {"a@remote.test"});
    ASSERT_TRUE(delivered) << delivered.error().message;
    EXPECT_TRUE(delivered->placed.empty());
    EXPECT_EQ(store_->list_queue(10)->size(), 1u);
    auto nothing = submit("to nobody", {}, {});
    ASSERT_FALSE(nothing);
    EXPECT_EQ(nothing.error().code, Errc::invalid_argument);
}

TEST_F(QueueTest, DueRecipientsAreLeasedToOneWorkerUntilTheLeaseLapses) {
    ASSERT_TRUE(submit("now", {}, {"a@remote.test", "b@remote.test"}));
    ASSERT_TRUE(submit("later", {}, {"c@remote.test"}, kNow + 600));

    auto first = store_->lease_due("node-1", kNow, 300, 10);
    ASSERT_TRUE(first) << first.error().message;
    ASSERT_EQ(first->size(), 1u);  // "later" is not due
    EXPECT_EQ(first->front().recipients.size(), 2u);
    EXPECT_TRUE(store_->lease_due("node-2", kNow + 299, 300, 10)->empty());  // held by node-1

    // node-1 died: once its lease lapsed, node-2 takes its recipients (and the one now due).
    auto taken = store_->lease_due("node-2", kNow + 600, 300, 10);
    ASSERT_TRUE(taken);
    EXPECT_EQ(recipient_ids(*taken).size(), 3u);
    // node-1's late outcome is not recorded over node-2's lease.
    auto late = store_->record_attempts(
        "node-1", {AttemptOutcome{recipient_ids(*first)[0], QueueState::delivered, 0, {kNow, "mx", "", "", "250 ok", ""}}});
    ASSERT_TRUE(late);
    EXPECT_EQ(*late, 0u);
    // A limit bounds what one lease takes.
    auto none_left = store_->lease_due("node-3", kNow + 600, 300, 1);
    ASSERT_TRUE(none_left);
    EXPECT_TRUE(none_left->empty());
}

TEST_F(QueueTest, AttemptsRecordStateReplyScheduleAndABoundedTranscript) {
    auto delivered = submit("tracked", {}, {"a@remote.test", "b@remote.test", "c@remote.test"});
    ASSERT_TRUE(delivered);
    auto leased = store_->lease_due("node-1", kNow, 300, 10);
    ASSERT_TRUE(leased);
    auto ids = recipient_ids(*leased);
    ASSERT_EQ(ids.size(), 3u);
    const std::string transcript = "S: 220 mx.remote.test ESMTP\r\nC: EHLO example.test\r\n" + std::string(200, 'x');
    auto recorded = store_->record_attempts(
        "node-1", {AttemptOutcome{ids[0], QueueState::delivered, 0,
                                  {kNow, "mx.remote.test", "192.0.2.1:25", "TLSv1.3", "250 2.0.0 queued", transcript}},
                   AttemptOutcome{ids[1], QueueState::deferred, kNow + 300,
                                  {kNow, "mx.remote.test", "192.0.2.1:25", "", "451 4.7.1 greylisted", ""}},
                   AttemptOutcome{ids[2], QueueState::failed, 0,
                                  {kNow, "mx.remote.test", "192.0.2.1:25", "", "550 5.1.1 no such user", ""}}});
    ASSERT_TRUE(recorded) << recorded.error().message;
    EXPECT_EQ(*recorded, 3u);
    EXPECT_EQ(store_->record_attempts("node-1", {AttemptOutcome{ids[0], QueueState::queued, 0, {}}}).error().code,
              Errc::invalid_argument);

    auto entry = store_->find_queue_entry(delivered->queue_id);
    ASSERT_TRUE(entry) << entry.error().message;
    ASSERT_EQ(entry->recipients.size(), 3u);
    const QueueRecipient& sent = entry->recipients[0];
    EXPECT_EQ(sent.state, QueueState::delivered);
    EXPECT_EQ(sent.last_reply, "250 2.0.0 queued");
    EXPECT_EQ(sent.attempt_count, 1u);
    ASSERT_EQ(sent.attempts.size(), 1u);
    EXPECT_EQ(sent.attempts[0].host, "mx.remote.test");
    EXPECT_EQ(sent.attempts[0].address, "192.0.2.1:25");
    EXPECT_EQ(sent.attempts[0].tls, "TLSv1.3");
    EXPECT_EQ(sent.attempts[0].transcript.size(), 64u);  // max_transcript_bytes
    EXPECT_TRUE(sent.attempts[0].transcript.starts_with("S: 220 mx.remote.test"));
    EXPECT_TRUE(sent.attempts[0].transcript.ends_with("[...]"));
    EXPECT_EQ(entry->recipients[1].state, QueueState::deferred);
    EXPECT_EQ(entry->recipients[1].next_attempt_at, kNow + 300);
    EXPECT_EQ(entry->recipients[2].state, QueueState::failed);
    EXPECT_EQ(entry->recipients[2].last_reply, "550 5.1.1 no such user");

    // Only the deferred recipient comes back, and only when due; the lease was released by the record.
    EXPECT_TRUE(store_->lease_due("node-1", kNow + 299, 300, 10)->empty());
    auto again = store_->lease_due("node-2", kNow + 300, 300, 10);
    ASSERT_TRUE(again);
    EXPECT_EQ(recipient_ids(*again), (std::vector<std::int64_t>{ids[1]}));
    // History stays bounded: the newest max_attempts_kept (3) of five attempts.
    ASSERT_EQ(*store_->record_attempts("node-2", {AttemptOutcome{ids[1], QueueState::deferred, kNow + 600,
                                                                 {kNow + 300, "mx", "", "", "451 try 2", ""}}}),
              1u);
    for (int i = 2; i <= 4; ++i) {
        std::int64_t at = kNow + 300 * i;
        auto lease = store_->lease_due("node-2", at, 300, 10);
        ASSERT_TRUE(lease);
        ASSERT_EQ(recipient_ids(*lease).size(), 1u) << i;
        ASSERT_EQ(*store_->record_attempts(
                      "node-2", {AttemptOutcome{ids[1], QueueState::deferred, at + 300,
                                                {at, "mx", "", "", fmt::format("451 try {}", i + 1), ""}}}),
                  1u);
    }
    auto later = store_->find_queue_entry(delivered->queue_id);
    ASSERT_TRUE(later);
    EXPECT_EQ(later->recipients[1].attempt_count, 5u);
    ASSERT_EQ(later->recipients[1].attempts.size(), 3u);
    EXPECT_EQ(later->recipients[1].attempts.back().reply, "451 try 5");
    EXPECT_EQ(later->recipients[1].last_reply, "451 try 5");
}

TEST_F(QueueTest, TheQueueSurvivesARestartAndItsBlobIsGarbageOnlyOnceTheEntryIsGone) {
    auto delivered = submit("kept across restarts", {}, {"a@remote.test"});
    ASSERT_TRUE(delivered);
    open();
    auto queue = store_->list_queue(10);
    ASSERT_TRUE(queue);
    ASSERT_EQ(queue->size(), 1u);
    CheckReport kept = check();
    EXPECT_TRUE(kept.clean) << describe(kept);
    EXPECT_EQ(kept.blobs, 1u);
    EXPECT_EQ(kept.garbage_blobs, 0u);
    ASSERT_TRUE(store_->delete_queue_entry(delivered->queue_id));
    EXPECT_EQ(store_->delete_queue_entry(delivered->queue_id).error().code, Errc::not_found);
    EXPECT_EQ(store_->find_queue_entry(delivered->queue_id).error().code, Errc::not_found);
    CheckReport after = check();
    EXPECT_TRUE(after.clean) << describe(after);
    EXPECT_EQ(after.garbage_blobs, 1u);
}

}  // namespace
}  // namespace magpie::store
