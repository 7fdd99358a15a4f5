// Write performance of the embedded store: the hot queries use indexes (EXPLAIN QUERY PLAN), long writes run
// in chunks of their own MODSEQ with deliveries committing between them, IMAP writes share the deliveries'
// group commit, and a 100,000-message mailbox is stored to, listed and counted while a delivery gets in.
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "store/sqlite/bulk.h"
#include "store/sqlite/queries.h"
#include "store/store.h"
#include "store_test_support.h"

namespace magpie::store {
namespace {

// The query plan of `sql` on the store's database, one detail line per step.
std::vector<std::string> query_plan(const std::filesystem::path& data_dir, const std::string& sql) {
    std::vector<std::string> plan;
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2((data_dir / "magpie.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* statement = nullptr;
    int rc = sqlite3_prepare_v2(db, ("EXPLAIN QUERY PLAN " + sql).c_str(), -1, &statement, nullptr);
    EXPECT_EQ(rc, SQLITE_OK) << sqlite3_errmsg(db) << " in " << sql;
    while (rc == SQLITE_OK && sqlite3_step(statement) == SQLITE_ROW) {
        plan.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(statement, 3)));
    }
    sqlite3_finalize(statement);
    sqlite3_close(db);
    return plan;
}

std::string joined(const std::vector<std::string>& plan) {
    std::string text;
    for (const auto& line : plan) text += line + "; ";
    return text;
}

TEST_F(StoreTest, HotWriteQueriesWalkIndexesAndNeverScanATable) {
    for (const char* sql : sqlite::queries::kAll) {
        std::vector<std::string> plan = query_plan(dir_.path(), sql);
        ASSERT_FALSE(plan.empty()) << sql;
        for (const std::string& step : plan) {
            // json_each is the UID set itself (SCAN r VIRTUAL TABLE); every real table is searched by key.
            if (step.starts_with("SCAN") && step.find("VIRTUAL TABLE") == std::string::npos) {
                ADD_FAILURE() << "full scan in " << sql << ": " << joined(plan);
            }
        }
    }
    // The two indexes schema v3 added for these paths are the ones chosen.
    EXPECT_NE(joined(query_plan(dir_.path(), sqlite::queries::kPruneFlagChange)).find("change_log_uid_kind"),
              std::string::npos);
    std::string deleted = joined(query_plan(dir_.path(), sqlite::queries::kDeletedAfter));
    EXPECT_NE(deleted.find("messages_deleted"), std::string::npos) << deleted;
    EXPECT_EQ(deleted.find("TEMP B-TREE"), std::string::npos) << deleted;
    std::string states = joined(query_plan(dir_.path(), sqlite::queries::kStates));
    EXPECT_EQ(states.find("TEMP B-TREE"), std::string::npos) << states;
    // SELECT of a cached mailbox: the MODSEQ range of the (mailbox_id, modseq) index.
    std::string changed = joined(query_plan(dir_.path(), sqlite::queries::kStatesChangedSince));
    EXPECT_NE(changed.find("messages_modseq (mailbox_id=? AND modseq>?)"), std::string::npos) << changed;
    // Every IMAP command's update check: the MODSEQ range, not every change the mailbox ever logged.
    std::string expunged = joined(query_plan(dir_.path(), sqlite::queries::kExpungedSince));
    EXPECT_NE(expunged.find("PRIMARY KEY (mailbox_id=? AND modseq>?)"), std::string::npos) << expunged;
}

// A store whose long writes are cut into chunks of 10 messages, with 25 messages in INBOX.
class ChunkedWritesTest : public StoreTest {
protected:
    void SetUp() override {
        StoreTest::SetUp();
        ASSERT_TRUE(store_->add_domain("example.test"));
        bob_ = make_account("bob@example.test");
        inbox_ = mailbox(bob_.id, "INBOX").id;
        trash_ = mailbox(bob_.id, "Trash").id;
        store_.reset();
        auto filled = sqlite::bulk_append(dir_.path(), {inbox_, 25, 0, 50});
        ASSERT_TRUE(filled) << filled.error().message;
        SqliteOptions options;
        options.max_messages_per_transaction = 10;
        open(options);
        store_->set_change_listener([this](std::int64_t, std::int64_t mailbox_id, std::uint64_t modseq) {
            std::lock_guard lock(heard_mutex_);
            heard_.emplace_back(mailbox_id, modseq);
        });
    }
    void TearDown() override { store_.reset(); }

    std::vector<std::uint32_t> all_uids() {
        std::vector<std::uint32_t> uids;
        for (std::uint32_t uid = 1; uid <= 25; ++uid) uids.push_back(uid);
        return uids;
    }

    std::size_t count_in(std::int64_t mailbox_id) { return store_->list_states(mailbox_id)->size(); }

    Account bob_;
    std::int64_t inbox_ = 0, trash_ = 0;
    std::mutex heard_mutex_;
    std::vector<std::pair<std::int64_t, std::uint64_t>> heard_;
};

TEST_F(ChunkedWritesTest, StoreOnManyMessagesTakesOneModseqPerChunk) {
    const std::uint64_t before = store_->mailbox_status(inbox_)->highest_modseq;
    auto result = store_->store_flags(inbox_, all_uids(), FlagUpdate{FlagOperation::add, {"\\Seen"}, {}});
    ASSERT_TRUE(result) << result.error().message;
    ASSERT_EQ(result->changed.size(), 25u);
    for (std::size_t i = 0; i < 25; ++i) {
        EXPECT_EQ(result->changed[i].uid, i + 1);
        EXPECT_EQ(result->changed[i].modseq, before + 1 + i / 10) << "uid " << i + 1;  // 1-10, 11-20, 21-25
    }
    EXPECT_EQ(store_->mailbox_status(inbox_)->highest_modseq, before + 3);
    EXPECT_EQ(store_->mailbox_status(inbox_)->unseen, 0u);
    auto changes = store_->changes_since(inbox_, before + 2);
    ASSERT_TRUE(changes);
    EXPECT_EQ(changes->changed.size(), 5u);  // only the last chunk
    CheckReport report = check();
    EXPECT_TRUE(report.clean) << describe(report);
    // Each chunk is announced after its own commit, so IDLE clients see the STORE progress. (The last
    // announcement may follow the return: closing the store waits for it.)
    store_.reset();
    std::lock_guard lock(heard_mutex_);
    std::vector<std::pair<std::int64_t, std::uint64_t>> expected{
        {inbox_, before + 1}, {inbox_, before + 2}, {inbox_, before + 3}};
    EXPECT_EQ(heard_, expected);
}

TEST_F(ChunkedWritesTest, UnchangedSinceIsCheckedPerMessageAcrossChunks) {
    ASSERT_TRUE(store_->store_flags(inbox_, {5, 15, 25}, FlagUpdate{FlagOperation::add, {"\\Flagged"}, {}}));
    const std::uint64_t bulk_modseq = store_->find_message(inbox_, 1)->modseq + 24;  // the last bulk message
    auto result = store_->store_flags(inbox_, all_uids(), FlagUpdate{FlagOperation::add, {"\\Seen"}, bulk_modseq});
    ASSERT_TRUE(result);
    EXPECT_EQ(result->modified, (std::vector<std::uint32_t>{5, 15, 25}));
    EXPECT_EQ(result->changed.size(), 22u);
}

TEST_F(ChunkedWritesTest, ExpungeAndMoveRunInChunksAndKeepEveryCounter) {
    ASSERT_TRUE(store_->store_flags(inbox_, all_uids(), FlagUpdate{FlagOperation::add, {"\\Deleted"}, {}}));
    // UID EXPUNGE over a set that spans chunks, then the rest.
    std::vector<std::uint32_t> some{2, 9, 12, 19, 24};
    auto first = store_->expunge(inbox_, &some);
    ASSERT_TRUE(first) << first.error().message;
    EXPECT_EQ(*first, some);
    ASSERT_TRUE(store_->store_flags(inbox_, {1, 3, 4}, FlagUpdate{FlagOperation::remove, {"\\Deleted"}, {}}));
    auto rest = store_->expunge(inbox_);
    ASSERT_TRUE(rest);
    EXPECT_EQ(rest->size(), 17u);
    EXPECT_EQ(count_in(inbox_), 3u);

    auto moved = store_->move_messages(inbox_, {1, 3, 4}, trash_);
    ASSERT_TRUE(moved);
    EXPECT_EQ(moved->uids.size(), 3u);
    EXPECT_EQ(count_in(inbox_), 0u);
    auto status = store_->mailbox_status(inbox_);
    EXPECT_EQ(status->messages, 0u);
    EXPECT_EQ(status->deleted, 0u);
    CheckReport report = check();
    EXPECT_TRUE(report.clean) << describe(report);
}

TEST_F(ChunkedWritesTest, MoveOfManyMessagesMapsEveryUid) {
    auto moved = store_->move_messages(inbox_, all_uids(), trash_);
    ASSERT_TRUE(moved) << moved.error().message;
    ASSERT_EQ(moved->uids.size(), 25u);
    for (std::uint32_t i = 0; i < 25; ++i) EXPECT_EQ(moved->uids[i], std::make_pair(i + 1, i + 1));
    EXPECT_EQ(count_in(inbox_), 0u);
    EXPECT_EQ(count_in(trash_), 25u);
    EXPECT_EQ(store_->changes_since(inbox_, 0)->expunged.size(), 25u);
    CheckReport report = check();
    EXPECT_TRUE(report.clean) << describe(report);
}

TEST_F(ChunkedWritesTest, CopyThatFailsPartWayLeavesTheDestinationAsItWas) {
    // Trash has 15 UIDs left: the second chunk of 10 runs out of them.
    corrupt_sql(dir_.path(), "UPDATE mailboxes SET uidnext = 4294967280 WHERE id = " + std::to_string(trash_));
    auto copied = store_->copy_messages(inbox_, all_uids(), trash_);
    ASSERT_FALSE(copied);
    EXPECT_EQ(copied.error().code, Errc::limit_exceeded);
    EXPECT_EQ(count_in(trash_), 0u);  // the first chunk's copies were removed again
    EXPECT_EQ(store_->mailbox_status(trash_)->messages, 0u);
    EXPECT_EQ(count_in(inbox_), 25u);
    CheckReport report = check();
    EXPECT_TRUE(report.clean) << describe(report);
}

TEST_F(ChunkedWritesTest, MoveThatFailsPartWayKeepsWhatItMovedAndLosesNothing) {
    corrupt_sql(dir_.path(), "UPDATE mailboxes SET uidnext = 4294967280 WHERE id = " + std::to_string(trash_));
    auto moved = store_->move_messages(inbox_, all_uids(), trash_);
    ASSERT_FALSE(moved);
    EXPECT_EQ(count_in(trash_), 10u);  // RFC 6851 3.3: a MOVE may be partial; each chunk moved atomically
    EXPECT_EQ(count_in(inbox_), 15u);
    CheckReport report = check();
    EXPECT_TRUE(report.clean) << describe(report);
}

// WAL checkpoints run on a thread of their own (issue 17), SQLite's autocheckpoint replaced: the database
// file still takes in the pages while deliveries go on, and everything stays readable after a reopen.
TEST_F(StoreTest, CheckpointsStillCopyTheLogIntoTheDatabase) {
    SqliteOptions uncompressed;  // the bodies below are one byte repeated: as zstd frames they would fill no log
    uncompressed.compression_level = 0;
    uncompressed.checkpoint_frames = 500;  // [store] checkpoint_frames: a checkpoint every 500 pages of log
    open(uncompressed);
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    std::int64_t inbox = mailbox(bob.id, "INBOX").id;
    const auto db_path = dir_.path() / "magpie.db";
    const auto before = std::filesystem::file_size(db_path);
    constexpr int kMessages = 120;  // 64 KiB each, stored inline: some 2,000 pages of log
    for (int i = 0; i < kMessages; ++i) {
        std::string content = "Subject: " + std::to_string(i) + "\r\n\r\n" + std::string(64 * 1024, 'a' + i % 26);
        ASSERT_TRUE(deliver(std::move(content), {{inbox, {}}}));
    }
    // Asynchronous: wait (bounded) until a checkpoint has copied a good part of the content.
    for (int tries = 0; tries < 600 && std::filesystem::file_size(db_path) < before + 4 * 1024 * 1024; ++tries)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_GE(std::filesystem::file_size(db_path), before + 4 * 1024 * 1024);
    open(uncompressed);
    EXPECT_EQ(mailbox(bob.id, "INBOX").message_count, static_cast<std::uint32_t>(kMessages));
}

// directory_version_if_ready() (RCPT's check of a remembered recipient, on a network thread) reuses the number
// it read for SqliteOptions::directory_version_reuse while nothing in this process wrote: a write made here is
// seen at once, one made by another process (a second store on the same files, as the CLI opens one) once the
// reuse has run out; directory_version() always reads.
TEST_F(StoreTest, TheDirectoryVersionAtOnceSeesWritesHereAtOnceAndOthersOnceItsReuseRunsOut) {
    SqliteOptions options;
    options.directory_version_reuse = std::chrono::hours(1);
    open(options);
    ASSERT_TRUE(store_->add_domain("example.test"));
    make_account("bob@example.test");
    auto add_alias_elsewhere = [&](const char* address) {
        SqliteOptions elsewhere;
        elsewhere.data_dir = dir_.path();
        auto other = open_sqlite_store(elsewhere);
        ASSERT_TRUE(other) << other.error().message;
        ASSERT_TRUE((*other)->add_alias(address, "bob@example.test"));
    };
    const auto first = store_->directory_version_if_ready();
    ASSERT_TRUE(first);
    ASSERT_TRUE(store_->add_alias("info@example.test", "bob@example.test"));
    const auto after_ours = store_->directory_version_if_ready();
    ASSERT_TRUE(after_ours);
    EXPECT_GT(*after_ours, *first);
    add_alias_elsewhere("sales@example.test");
    EXPECT_EQ(store_->directory_version_if_ready(), after_ours);
    EXPECT_GT(*store_->directory_version(), *after_ours);

    options.directory_version_reuse = std::chrono::milliseconds(20);
    open(options);
    const auto before = store_->directory_version_if_ready();
    ASSERT_TRUE(before);
    add_alias_elsewhere("help@example.test");
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
    const auto after = store_->directory_version_if_ready();
    ASSERT_TRUE(after);
    EXPECT_GT(*after, *before);
}

TEST_F(StoreTest, WritesJoinTheDeliveriesGroupCommit) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    std::int64_t inbox = mailbox(bob.id, "INBOX").id;
    ASSERT_TRUE(deliver("first", {{inbox, {}}}));
    // A write after it: once it returns, the committer is past the delivery's notification too.
    ASSERT_TRUE(store_->set_subscribed(bob.id, "Barrier", true));
    // Hold the committer inside the listener of one commit while eight writers and a delivery queue up.
    std::mutex mutex;
    std::condition_variable released_cv;
    bool released = false;
    std::atomic<bool> hold{true};
    store_->set_change_listener([&](std::int64_t, std::int64_t, std::uint64_t) {
        if (!hold.exchange(false)) return;
        std::unique_lock lock(mutex);
        released_cv.wait(lock, [&] { return released; });
    });
    std::thread blocker([&] { (void)store_->store_flags(inbox, {1}, FlagUpdate{FlagOperation::add, {"\\Seen"}, {}}); });
    while (hold.load()) std::this_thread::yield();  // the committer is now held
    const StoreStats before = store_->stats();
    std::vector<std::thread> writers;
    for (int i = 0; i < 8; ++i) {
        writers.emplace_back([&, i] {
            EXPECT_TRUE(store_->set_subscribed(bob.id, "Folder " + std::to_string(i), true));
        });
    }
    std::promise<Result<Delivered>> delivered;
    Delivery delivery;
    delivery.content = "during the writes";
    delivery.targets = {{inbox, {}}};
    store_->deliver(std::move(delivery), [&](Result<Delivered> result) { delivered.set_value(std::move(result)); });
    while (store_->stats().queued < 9) std::this_thread::yield();
    {
        std::lock_guard lock(mutex);
        released = true;
    }
    released_cv.notify_all();
    for (auto& writer : writers) writer.join();
    blocker.join();
    ASSERT_TRUE(delivered.get_future().get());
    const StoreStats after = store_->stats();
    EXPECT_EQ(after.writes - before.writes, 8u);
    EXPECT_EQ(after.commits - before.commits, 1u);  // nine acknowledgements, one fsync
    EXPECT_EQ(store_->list_subscriptions(bob.id)->size(), 6u + 1u + 8u);
}

TEST_F(StoreTest, AWriteFromTheListenerRunsOnTheCommitterWithoutWaitingForItself) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    std::int64_t inbox = mailbox(bob.id, "INBOX").id;
    std::atomic<bool> once{true};
    std::promise<Result<void>> written;
    store_->set_change_listener([&](std::int64_t, std::int64_t, std::uint64_t) {
        if (once.exchange(false)) written.set_value(store_->set_subscribed(bob.id, "From the listener", true));
    });
    ASSERT_TRUE(deliver("one", {{inbox, {}}}));
    auto result = written.get_future().get();
    ASSERT_TRUE(result) << result.error().message;
    auto subscriptions = store_->list_subscriptions(bob.id);
    ASSERT_TRUE(subscriptions);
    EXPECT_NE(std::ranges::find(*subscriptions, "From the listener"), subscriptions->end());
    store_->set_change_listener({});
}

// The measured fault of issue 11, at twice its size: STORE 1:* +FLAGS (\Seen) on 100,000 messages completes,
// a delivery made while it runs is committed before it ends, and the narrow reads cover the whole mailbox.
TEST_F(StoreTest, HundredThousandMessagesStoreListAndCountWhileADeliveryGetsIn) {
    constexpr std::uint32_t kMessages = 100'000;
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    const std::int64_t inbox = mailbox(bob.id, "INBOX").id;
    store_.reset();
    auto filled = sqlite::bulk_append(dir_.path(), {inbox, kMessages, 0, 100});
    ASSERT_TRUE(filled) << filled.error().message;
    ASSERT_EQ(*filled, kMessages);
    open();

    // Order of events, from one counter: the delivery's commit and the STORE's return.
    std::atomic<int> clock{0};
    std::atomic<int> delivered_at{0};
    std::atomic<bool> issued{false};
    std::promise<Result<Delivered>> delivered;
    store_->set_change_listener([&](std::int64_t, std::int64_t, std::uint64_t) {
        // After the STORE's first chunk committed: an SMTP delivery arrives.
        if (issued.exchange(true)) return;
        Delivery delivery;
        delivery.content = "arrived during the STORE";
        delivery.targets = {{inbox, {}}};
        store_->deliver(std::move(delivery), [&](Result<Delivered> result) {
            delivered_at = ++clock;
            delivered.set_value(std::move(result));
        });
    });
    std::vector<std::uint32_t> all(kMessages);
    for (std::uint32_t i = 0; i < kMessages; ++i) all[i] = i + 1;
    auto stored = store_->store_flags(inbox, all, FlagUpdate{FlagOperation::add, {"\\Seen"}, {}});
    const int store_returned_at = ++clock;
    ASSERT_TRUE(stored) << stored.error().message;
    EXPECT_EQ(stored->changed.size(), kMessages);
    auto delivery = delivered.get_future().get();
    ASSERT_TRUE(delivery) << delivery.error().message;
    EXPECT_GT(delivered_at.load(), 0);
    EXPECT_LT(delivered_at.load(), store_returned_at) << "the delivery waited for the whole STORE";
    store_->set_change_listener({});

    auto states = store_->list_states(inbox);  // SELECT, UID FETCH 1:* (FLAGS)
    ASSERT_TRUE(states);
    ASSERT_EQ(states->size(), kMessages + 1);
    EXPECT_EQ(states->front().flags, (std::vector<std::string>{"\\Seen"}));
    EXPECT_TRUE(states->back().flags.empty());  // the delivery
    auto status = store_->mailbox_status(inbox);  // STATUS
    ASSERT_TRUE(status);
    EXPECT_EQ(status->messages, kMessages + 1);
    EXPECT_EQ(status->unseen, 1u);
    auto some = store_->find_messages(inbox, {1, 50'000, 100'000, delivery->placed[0].uid});
    ASSERT_TRUE(some);
    EXPECT_EQ(some->size(), 4u);
    CheckReport report = check();
    EXPECT_TRUE(report.clean) << describe(report);
}

}  // namespace
}  // namespace magpie::store
