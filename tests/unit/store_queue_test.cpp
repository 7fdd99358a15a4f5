// The outgoing queue in what only the embedded store has: a failure inside SQLite rolls a whole delivery back,
// `magpie check` and garbage collection see the queue's blob, and an old queue.db is imported. The queue's
// behaviour on every backend (leases, attempts, reports, notices, holds) is the parametrized BackendTest
// suite in store_backends_test.cpp, run on SQLite and on PostgreSQL.
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

    Account bob_;
    std::int64_t inbox_ = 0;
};

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
