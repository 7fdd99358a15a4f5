// The outgoing queue in the store: a delivery's local copies and queue entry commit in one transaction,
// due recipients are leased to one worker at a time until the lease lapses, attempts are recorded with
// bounded transcripts, and the tracker reads it all back.
#include <algorithm>
#include <future>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <sqlite3.h>

#include "store/store.h"
#include "store_test_support.h"

namespace magpie::store {
namespace {

constexpr std::int64_t kNow = 1'800'000'000;

AttemptOutcome attempt_outcome(std::int64_t recipient_id, QueueState state, std::int64_t next_attempt_at,
                               QueueAttempt attempt) {
    AttemptOutcome outcome;
    outcome.recipient_id = recipient_id;
    outcome.state = state;
    outcome.next_attempt_at = next_attempt_at;
    outcome.attempt = std::move(attempt);
    return outcome;
}

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

    Result<std::size_t> record(std::string_view owner, const std::vector<AttemptOutcome>& outcomes,
                               std::vector<Delivery> reports = {}) {
        return store_->record_attempts(owner, outcomes, std::move(reports));
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

    auto queue = store_->list_queue(100, false);
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
    EXPECT_TRUE(store_->list_queue(10, false)->empty());

    // And the reverse: a local half that fails (its mailbox is gone) leaves no queue entry.
    corrupt_sql(dir_.path(), "DROP TRIGGER refuse_queue");
    auto gone = submit("two halves", {{99999, {}}}, {"a@remote.test"});
    ASSERT_FALSE(gone);
    EXPECT_TRUE(store_->list_queue(10, false)->empty());
}

TEST_F(QueueTest, RemoteOnlyMessageNeedsNoMailboxButSomeRecipient) {
    auto delivered = submit("only remote", {}, {"a@remote.test"});
    ASSERT_TRUE(delivered) << delivered.error().message;
    EXPECT_TRUE(delivered->placed.empty());
    EXPECT_EQ(store_->list_queue(10, false)->size(), 1u);
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
    auto late = record(
        "node-1", {attempt_outcome(recipient_ids(*first)[0], QueueState::delivered, 0, {kNow, "mx", "", "", "250 ok", "", ""})});
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
    auto recorded = record(
        "node-1", {attempt_outcome(ids[0], QueueState::delivered, 0,
                                  {kNow, "mx.remote.test", "192.0.2.1:25", "TLSv1.3", "250 2.0.0 queued", transcript, ""}),
                   attempt_outcome(ids[1], QueueState::deferred, kNow + 300,
                                  {kNow, "mx.remote.test", "192.0.2.1:25", "", "451 4.7.1 greylisted", "", ""}),
                   attempt_outcome(ids[2], QueueState::failed, 0,
                                  {kNow, "mx.remote.test", "192.0.2.1:25", "", "550 5.1.1 no such user", "", ""})});
    ASSERT_TRUE(recorded) << recorded.error().message;
    EXPECT_EQ(*recorded, 3u);
    EXPECT_EQ(record("node-1", {attempt_outcome(ids[0], QueueState::queued, 0, {})}).error().code,
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
    ASSERT_EQ(*record("node-2", {attempt_outcome(ids[1], QueueState::deferred, kNow + 600,
                                                                 {kNow + 300, "mx", "", "", "451 try 2", "", ""})}),
              1u);
    for (int i = 2; i <= 4; ++i) {
        std::int64_t at = kNow + 300 * i;
        auto lease = store_->lease_due("node-2", at, 300, 10);
        ASSERT_TRUE(lease);
        ASSERT_EQ(recipient_ids(*lease).size(), 1u) << i;
        ASSERT_EQ(*record(
                      "node-2", {attempt_outcome(ids[1], QueueState::deferred, at + 300,
                                                {at, "mx", "", "", fmt::format("451 try {}", i + 1), "", ""})}),
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
    auto queue = store_->list_queue(10, false);
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

TEST_F(QueueTest, HeldEntriesAreNotLeasedUntilReleasedAndDoNotCountAsDue) {
    auto delivered = submit("held", {}, {"a@remote.test"});
    ASSERT_TRUE(delivered);
    ASSERT_TRUE(store_->set_queue_held(delivered->queue_id, true));
    EXPECT_TRUE(store_->find_queue_entry(delivered->queue_id)->held);
    EXPECT_TRUE(store_->lease_due("node-1", kNow, 300, 10)->empty());
    EXPECT_FALSE(store_->next_queue_due()->has_value());
    ASSERT_TRUE(store_->set_queue_held(delivered->queue_id, false));
    EXPECT_EQ(**store_->next_queue_due(), kNow);
    EXPECT_EQ(store_->lease_due("node-1", kNow, 300, 10)->size(), 1u);
    // Leased: due again only when the lease runs out.
    EXPECT_EQ(**store_->next_queue_due(), kNow + 300);
    EXPECT_EQ(store_->set_queue_held(99999, true).error().code, Errc::not_found);
}

TEST_F(QueueTest, ARestartedNodeTakesBackItsOwnLeasesOnly) {
    ASSERT_TRUE(submit("mine", {}, {"a@remote.test"}));
    ASSERT_TRUE(submit("theirs", {}, {"b@remote.test"}));
    ASSERT_EQ(recipient_ids(*store_->lease_due("node-1", kNow, 900, 1)).size(), 1u);
    ASSERT_EQ(recipient_ids(*store_->lease_due("node-2", kNow, 900, 1)).size(), 1u);
    EXPECT_EQ(*store_->release_leases("node-1"), 1u);
    auto taken = store_->lease_due("node-1", kNow + 1, 900, 10);
    ASSERT_TRUE(taken);
    ASSERT_EQ(taken->size(), 1u);
    EXPECT_EQ(taken->front().recipients.front().address, "a@remote.test");
}

TEST_F(QueueTest, RetryNowMakesWaitingRecipientsDueAndPurgeRemovesOldFinishedEntries) {
    auto finished = submit("finished", {}, {"a@remote.test"});
    auto waiting = submit("waiting", {}, {"b@remote.test"});
    ASSERT_TRUE(finished && waiting);
    auto leased = store_->lease_due("n", kNow, 300, 10);
    ASSERT_TRUE(leased);
    ASSERT_EQ(leased->size(), 2u);
    AttemptOutcome delivered = attempt_outcome(leased->at(0).recipients[0].id, QueueState::delivered, 0,
                                               {kNow, "mx", "", "", "250 ok", "", "c.1"});
    AttemptOutcome deferred = attempt_outcome(leased->at(1).recipients[0].id, QueueState::deferred, kNow + 3600,
                                              {kNow, "mx", "", "", "451 later", "", "c.1"});
    deferred.count_failure = true;
    deferred.status = "4.7.1";
    deferred.remote_mta = "mx.remote.test";
    ASSERT_EQ(*record("n", {delivered, deferred}), 2u);

    auto open = store_->list_queue(10, true);
    ASSERT_TRUE(open);
    ASSERT_EQ(open->size(), 1u);
    EXPECT_EQ(open->front().id, waiting->queue_id);
    const QueueRecipient& r = open->front().recipients.front();
    EXPECT_EQ(r.failed_attempts, 1u);
    EXPECT_EQ(r.status, "4.7.1");
    EXPECT_EQ(r.remote_mta, "mx.remote.test");
    EXPECT_EQ(r.last_attempt_at, kNow);
    EXPECT_EQ(store_->find_queue_entry(waiting->queue_id)->recipients[0].attempts[0].connection, "c.1");
    EXPECT_EQ(store_->list_queue(10, false)->size(), 2u);

    EXPECT_TRUE(store_->lease_due("n", kNow + 1, 300, 10)->empty());
    EXPECT_EQ(*store_->retry_queue_now(waiting->queue_id, kNow + 1), 1u);
    EXPECT_EQ(store_->lease_due("n", kNow + 1, 300, 10)->size(), 1u);
    EXPECT_EQ(store_->retry_queue_now(99999, kNow).error().code, Errc::not_found);
    EXPECT_EQ(*store_->retry_queue_now(std::nullopt, kNow + 2), 0u);  // leased, but already due

    EXPECT_EQ(*store_->purge_finished_queue(kNow + 10 * 365 * 86400), 1u);
    EXPECT_EQ(store_->find_queue_entry(finished->queue_id).error().code, Errc::not_found);
    EXPECT_TRUE(store_->find_queue_entry(waiting->queue_id));
}

TEST_F(QueueTest, ReportsCommitWithTheOutcomesThatProducedThem) {
    auto delivered = submit("to fail", {}, {"a@remote.test"});
    ASSERT_TRUE(delivered);
    auto leased = store_->lease_due("n", kNow, 300, 10);
    ASSERT_TRUE(leased);
    const std::int64_t id = leased->front().recipients.front().id;
    auto report = [&] {
        Delivery d;
        d.content = "From: MAILER-DAEMON\r\nSubject: Undelivered\r\n\r\nreport\r\n";
        OutgoingMessage o;
        o.recipients.push_back({"bob@example.test", "", ""});
        o.queued_at = kNow;
        d.outgoing = std::move(o);
        return d;
    };
    std::vector<Delivery> reports;
    reports.push_back(report());
    // Another node holds it now: neither the outcome nor its report is recorded.
    ASSERT_EQ(*record("other", {attempt_outcome(id, QueueState::failed, 0, {kNow, "mx", "", "", "550 no", "", ""})},
                      std::move(reports)),
              0u);
    EXPECT_EQ(store_->list_queue(10, false)->size(), 1u);
    reports.clear();
    reports.push_back(report());
    ASSERT_EQ(*record("n", {attempt_outcome(id, QueueState::failed, 0, {kNow, "mx", "", "", "550 no", "", ""})},
                      std::move(reports)),
              1u);
    auto all = store_->list_queue(10, false);
    ASSERT_TRUE(all);
    ASSERT_EQ(all->size(), 2u);
    EXPECT_EQ(all->at(1).reverse_path, "");  // from the null sender
    EXPECT_EQ(all->at(1).created_at, kNow);
    EXPECT_EQ(*store_->read_blob(all->at(1).blob_id), "From: MAILER-DAEMON\r\nSubject: Undelivered\r\n\r\nreport\r\n");
}

TEST_F(QueueTest, TheSendOffsetHidesTheLocalCopiesReturnPathFromTheQueue) {
    Delivery delivery;
    const std::string return_path = "Return-Path: <bob@example.test>\r\n";
    delivery.content = return_path + "Subject: both\r\n\r\nbody\r\n";
    delivery.targets = {{inbox_, {}}};
    OutgoingMessage outgoing;
    outgoing.reverse_path = "bob@example.test";
    outgoing.smtputf8 = true;
    outgoing.send_offset = return_path.size();
    outgoing.recipients.push_back({"a@remote.test", "", ""});
    delivery.outgoing = std::move(outgoing);
    std::promise<Result<Delivered>> promise;
    store_->deliver(std::move(delivery), [&](Result<Delivered> result) { promise.set_value(std::move(result)); });
    auto delivered = promise.get_future().get();
    ASSERT_TRUE(delivered) << delivered.error().message;
    auto entry = store_->find_queue_entry(delivered->queue_id);
    ASSERT_TRUE(entry);
    EXPECT_TRUE(entry->smtputf8);
    EXPECT_EQ(entry->send_offset, return_path.size());
    EXPECT_EQ(entry->size, std::string("Subject: both\r\n\r\nbody\r\n").size());
}

TEST_F(QueueTest, AnOutgoingRecipientMustBeAnAddress) {
    auto refused = submit("bad", {}, {"no-at-sign"});
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, Errc::invalid_argument);
}

// The interim queue file's schema exactly as magpie before schema version 6 wrote it
// (src/delivery/sqlite_queue.cpp, removed).
constexpr const char* kFrozenQueueDb = R"sql(
CREATE TABLE IF NOT EXISTS queue_entry(
  id INTEGER PRIMARY KEY,
  reverse_path TEXT NOT NULL,
  dsn_ret TEXT NOT NULL,
  dsn_envid TEXT NOT NULL,
  smtputf8 INTEGER NOT NULL,
  queued_at INTEGER NOT NULL,
  held INTEGER NOT NULL DEFAULT 0,
  size INTEGER NOT NULL,
  content BLOB NOT NULL,
  lease_owner TEXT,
  lease_until INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS queue_recipient(
  id INTEGER PRIMARY KEY,
  entry_id INTEGER NOT NULL REFERENCES queue_entry(id) ON DELETE CASCADE,
  address TEXT NOT NULL,
  notify TEXT NOT NULL,
  orcpt TEXT NOT NULL,
  state TEXT NOT NULL,
  next_attempt_at INTEGER NOT NULL,
  failed_attempts INTEGER NOT NULL DEFAULT 0,
  status TEXT NOT NULL DEFAULT '',
  last_reply TEXT NOT NULL DEFAULT '',
  remote_mta TEXT NOT NULL DEFAULT '',
  last_attempt_at INTEGER NOT NULL DEFAULT 0,
  delay_notified INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS queue_recipient_due ON queue_recipient(state, next_attempt_at);
CREATE INDEX IF NOT EXISTS queue_recipient_entry ON queue_recipient(entry_id);
CREATE TABLE IF NOT EXISTS queue_attempt(
  id INTEGER PRIMARY KEY,
  recipient_id INTEGER NOT NULL REFERENCES queue_recipient(id) ON DELETE CASCADE,
  at INTEGER NOT NULL,
  host TEXT NOT NULL,
  address TEXT NOT NULL,
  tls TEXT NOT NULL,
  reply TEXT NOT NULL,
  connection TEXT NOT NULL,
  transcript TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS queue_attempt_recipient ON queue_attempt(recipient_id);
)sql";

TEST_F(QueueTest, AnOldQueueDbIsImportedOnceWithEveryUnfinishedEntryAndItsState) {
    std::filesystem::path file = dir_.path() / "queue.db";
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
    const std::string rows = fmt::format(R"sql(
PRAGMA journal_mode=WAL;
INSERT INTO queue_entry(id, reverse_path, dsn_ret, dsn_envid, smtputf8, queued_at, held, size, content)
  VALUES (1, 'bob@example.test', 'HDRS', 'env-7', 1, {0}, 0, 16, CAST('Subject: one' || char(13,10,13,10) AS BLOB)),
         (2, 'bob@example.test', '', '', 0, {0}, 0, 3, CAST('two' AS BLOB)),
         (3, 'bob@example.test', '', '', 0, {0}, 1, 5, CAST('three' AS BLOB));
INSERT INTO queue_recipient(id, entry_id, address, notify, orcpt, state, next_attempt_at, failed_attempts, status,
  last_reply, remote_mta, last_attempt_at, delay_notified) VALUES
  (10, 1, 'a@remote.test', 'FAILURE,DELAY', 'rfc822;a@remote.test', 'deferred', {1}, 2, '4.4.1',
   'connection refused', 'mx.remote.test', {2}, 1),
  (11, 1, 'b@remote.test', '', '', 'delivered', 0, 0, '2.0.0', '250 ok', 'mx.remote.test', {2}, 0),
  (20, 2, 'c@remote.test', '', '', 'delivered', 0, 0, '2.0.0', '250 ok', 'mx.remote.test', {2}, 0),
  (30, 3, 'd@remote.test', '', '', 'queued', {0}, 0, '', '', '', 0, 0);
INSERT INTO queue_attempt(recipient_id, at, host, address, tls, reply, connection, transcript) VALUES
  (10, {2}, 'mx.remote.test', '', '', 'connection refused', '', ''),
  (10, {2}, 'mx.remote.test', '192.0.2.1:25', 'TLSv1.3', 'connection refused', 'c.9', 'S: 421 busy');
)sql",
                                         kNow - 7200, kNow + 600, kNow - 60);
    char* message = nullptr;
    std::string sql = std::string(kFrozenQueueDb) + rows;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
    std::string detail = message != nullptr ? message : "";
    sqlite3_free(message);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK) << detail;

    auto imported = import_queue_db(*store_, dir_.path());
    ASSERT_TRUE(imported) << imported.error().message;
    EXPECT_EQ(*imported, 2u);  // entry 2 had finished
    EXPECT_FALSE(std::filesystem::exists(file));
    EXPECT_TRUE(std::filesystem::exists(dir_.path() / "queue.db.imported"));
    EXPECT_EQ(*import_queue_db(*store_, dir_.path()), 0u);  // once

    auto entries = store_->list_queue(10, false);
    ASSERT_TRUE(entries);
    ASSERT_EQ(entries->size(), 2u);
    auto first = store_->find_queue_entry(entries->at(0).id);
    ASSERT_TRUE(first);
    EXPECT_EQ(first->created_at, kNow - 7200);  // the lifetime still counts from the first queueing
    EXPECT_EQ(first->dsn_ret, "HDRS");
    EXPECT_EQ(first->dsn_envid, "env-7");
    EXPECT_TRUE(first->smtputf8);
    EXPECT_EQ(*store_->read_blob(first->blob_id), "Subject: one\r\n\r\n");
    ASSERT_EQ(first->recipients.size(), 2u);
    const QueueRecipient& a = first->recipients[0];
    EXPECT_EQ(a.state, QueueState::deferred);
    EXPECT_EQ(a.next_attempt_at, kNow + 600);
    EXPECT_EQ(a.failed_attempts, 2u);
    EXPECT_EQ(a.status, "4.4.1");
    EXPECT_EQ(a.orcpt, "rfc822;a@remote.test");
    EXPECT_EQ(a.notify, "FAILURE,DELAY");
    EXPECT_TRUE(a.delay_notified);
    ASSERT_EQ(a.attempts.size(), 2u);
    EXPECT_EQ(a.attempts[1].connection, "c.9");
    EXPECT_EQ(a.attempts[1].transcript, "S: 421 busy");
    EXPECT_EQ(first->recipients[1].state, QueueState::delivered);
    EXPECT_TRUE(store_->find_queue_entry(entries->at(1).id)->held);
    // Only the deferred recipient's time decides; the held entry waits.
    EXPECT_EQ(**store_->next_queue_due(), kNow + 600);
    CheckReport report = check();
    EXPECT_TRUE(report.clean) << describe(report);
}

}  // namespace
}  // namespace magpie::store
