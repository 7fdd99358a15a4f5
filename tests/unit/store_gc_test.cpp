// Garbage collection of blobs: unreferenced rows and files go once their grace period is over, referenced
// ones (messages, queue entries) stay, leftovers of interrupted writes go, and a blob reused by a delivery
// survives a collector running beside the writer.
#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "store/blob.h"
#include "store/store.h"
#include "store_test_support.h"

namespace magpie::store {
namespace {

std::int64_t now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Sets a file's modification time `seconds` into the past, as if it had been written then.
void age(const std::filesystem::path& path, std::int64_t seconds) {
    struct timespec times[2];
    times[0].tv_sec = times[1].tv_sec = now() - seconds;
    times[0].tv_nsec = times[1].tv_nsec = 0;
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
}

class GarbageTest : public StoreTest {
protected:
    void SetUp() override {
        SqliteOptions options;
        options.inline_blob_max = 64;  // the large message below goes to a file
        open(options);
        ASSERT_TRUE(store_->add_domain("example.test"));
        bob_ = make_account("bob@example.test");
        carol_ = make_account("carol@example.test");
    }

    Account bob_, carol_;
    const std::string large_ = std::string(300, 'L');
};

TEST_F(GarbageTest, UnreferencedBlobsGoAfterTheGracePeriodAndReferencedOnesStay) {
    auto small = deliver("small, bob's alone", {{mailbox(bob_.id, "INBOX").id, {}}});
    auto large = deliver(large_, {{mailbox(bob_.id, "INBOX").id, {}}});
    auto shared = deliver("shared with carol", {{mailbox(bob_.id, "INBOX").id, {}}, {mailbox(carol_.id, "INBOX").id, {}}});
    ASSERT_TRUE(small && large && shared);
    ASSERT_TRUE(store_->delete_account("bob@example.test"));
    CheckReport before = check();
    EXPECT_TRUE(before.clean) << describe(before);
    EXPECT_EQ(before.garbage_blobs, 2u);  // check reports garbage, not corruption

    auto early = store_->collect_garbage(now(), 3600);  // everything is younger than an hour
    ASSERT_TRUE(early) << early.error().message;
    EXPECT_EQ(early->blob_rows, 0u);
    EXPECT_EQ(early->files, 0u);

    // Two hours later (the file's time moved back as the clock would have moved on).
    age(BlobFiles(dir_.path()).path_of(large->blob_id), 7200);
    auto later = store_->collect_garbage(now() + 7200, 3600);
    ASSERT_TRUE(later) << later.error().message;
    EXPECT_EQ(later->blob_rows, 2u);
    EXPECT_EQ(later->files, 1u);
    EXPECT_EQ(later->file_bytes, large_.size());
    EXPECT_FALSE(std::filesystem::exists(BlobFiles(dir_.path()).path_of(large->blob_id)));
    EXPECT_EQ(*store_->read_blob(shared->blob_id), "shared with carol");
    CheckReport after = check();
    EXPECT_TRUE(after.clean) << describe(after);
    EXPECT_EQ(after.garbage_blobs, 0u);
    EXPECT_EQ(after.blobs, 1u);
}

TEST_F(GarbageTest, AQueuedMessageKeepsItsBlob) {
    Delivery delivery;
    delivery.content = large_;
    OutgoingMessage outgoing;
    outgoing.reverse_path = "carol@example.test";
    outgoing.recipients = {{"x@remote.test", "", ""}};
    delivery.outgoing = std::move(outgoing);
    std::promise<Result<Delivered>> promise;
    store_->deliver(std::move(delivery), [&](Result<Delivered> result) { promise.set_value(std::move(result)); });
    auto queued = promise.get_future().get();
    ASSERT_TRUE(queued) << queued.error().message;
    age(BlobFiles(dir_.path()).path_of(queued->blob_id), 7200);
    auto collected = store_->collect_garbage(now() + 7200, 3600);
    ASSERT_TRUE(collected);
    EXPECT_EQ(collected->blob_rows, 0u);
    EXPECT_EQ(collected->files, 0u);
    EXPECT_EQ(*store_->read_blob(queued->blob_id), large_);
}

TEST_F(GarbageTest, LeftoversOfInterruptedWritesGoOnlyWhenOld) {
    BlobFiles files(dir_.path());
    const std::string orphan(200, 'O');  // a file written by a delivery that crashed before its commit
    ASSERT_TRUE(files.write(blob_id_of(orphan), orphan));
    const std::filesystem::path temp = files.root() / "ab" / ".tmp-abcdef-1-1";  // a write cut before rename
    std::ofstream(temp) << "partial";
    const std::string fresh(200, 'F');
    ASSERT_TRUE(files.write(blob_id_of(fresh), fresh));
    age(files.path_of(blob_id_of(orphan)), 7200);
    age(temp, 7200);
    auto collected = store_->collect_garbage(now(), 3600);
    ASSERT_TRUE(collected) << collected.error().message;
    EXPECT_EQ(collected->files, 2u);
    EXPECT_FALSE(std::filesystem::exists(temp));
    EXPECT_FALSE(std::filesystem::exists(files.path_of(blob_id_of(orphan))));
    EXPECT_TRUE(std::filesystem::exists(files.path_of(blob_id_of(fresh))));  // may be a delivery in flight
    EXPECT_EQ(store_->collect_garbage(now(), 10).error().code, Errc::invalid_argument);
}

TEST_F(GarbageTest, ReusingABlobFileMakesItFreshForTheCollector) {
    // The step between a delivery's blob write and its commit: the file exists, no row names it yet.
    BlobFiles files(dir_.path());
    const std::string content(200, 'R');
    ASSERT_TRUE(files.write(blob_id_of(content), content));
    age(files.path_of(blob_id_of(content)), 7200);
    auto reused = files.write(blob_id_of(content), content);
    ASSERT_TRUE(reused);
    EXPECT_FALSE(*reused);  // not written again
    auto collected = store_->collect_garbage(now(), 3600);
    ASSERT_TRUE(collected);
    EXPECT_EQ(collected->files, 0u);
    EXPECT_TRUE(std::filesystem::exists(files.path_of(blob_id_of(content))));
}

TEST_F(GarbageTest, ABlobReusedByADeliverySurvivesACollectorBesideTheWriter) {
    // An old file nobody references, whose bytes a new delivery brings again: the blob writer finds the file
    // and reuses it. The collector, running all the while, must never take it from under the delivery.
    BlobFiles files(dir_.path());
    const std::filesystem::path path = files.path_of(blob_id_of(large_));
    ASSERT_TRUE(files.write(blob_id_of(large_), large_));
    age(path, 7200);
    std::atomic<bool> stop{false};
    std::atomic<int> runs{0};
    std::thread collector([&] {
        while (!stop.load()) {
            auto collected = store_->collect_garbage(now(), 3600);
            EXPECT_TRUE(collected) << collected.error().message;
            ++runs;
        }
    });
    const std::int64_t inbox = mailbox(carol_.id, "INBOX").id;
    std::vector<std::uint32_t> uids;
    for (int i = 0; i < 20; ++i) {
        auto delivered = deliver(large_, {{inbox, {}}});
        ASSERT_TRUE(delivered) << delivered.error().message;
        uids.push_back(delivered->placed[0].uid);
        if (i == 0) age(path, 7200);  // old again: from here on only the references keep it
    }
    while (runs.load() < 2) std::this_thread::yield();
    stop = true;
    collector.join();
    for (std::uint32_t uid : uids) {
        auto message = store_->find_message(inbox, uid);
        ASSERT_TRUE(message);
        EXPECT_EQ(*store_->read_blob(message->blob_id), large_);
    }
    CheckReport report = check();
    EXPECT_TRUE(report.clean) << describe(report);
}

}  // namespace
}  // namespace magpie::store
