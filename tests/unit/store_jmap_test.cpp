// The store's JMAP pieces (jmap_objects.h): uploads scoped to their account, and JSON objects with a state
// counter, tombstones and ifInState.
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "store/blob.h"
#include "store_test_support.h"

namespace magpie::store {
namespace {

class StoreJmapTest : public StoreTest {
protected:
    void SetUp() override {
        StoreTest::SetUp();
        ASSERT_TRUE(store_->add_domain("example.test"));
    }
};

TEST_F(StoreJmapTest, UploadIsReadableByItsAccountOnly) {
    Account alice = make_account("alice@example.test");
    Account bob = make_account("bob@example.test");
    auto uploaded = store_->add_upload(alice.id, "hello bytes", "text/plain", 1000, 0);
    ASSERT_TRUE(uploaded) << uploaded.error().message;
    EXPECT_EQ(uploaded->blob_id, blob_id_of("hello bytes"));
    EXPECT_EQ(uploaded->size, 11u);
    EXPECT_EQ(*store_->read_account_blob(alice.id, uploaded->blob_id), "hello bytes");
    EXPECT_EQ(store_->find_upload(alice.id, uploaded->blob_id)->type, "text/plain");
    EXPECT_EQ(store_->read_account_blob(bob.id, uploaded->blob_id).error().code, Errc::not_found);
    EXPECT_EQ(store_->find_upload(bob.id, uploaded->blob_id).error().code, Errc::not_found);
    EXPECT_EQ(store_->read_account_blob(alice.id, "../../etc/passwd").error().code, Errc::not_found);
}

TEST_F(StoreJmapTest, MessageBlobsAreReadableByTheirMailboxOwner) {
    Account alice = make_account("alice@example.test");
    Account bob = make_account("bob@example.test");
    auto delivered = deliver(std::string(kSmallMessage), {DeliveryTarget{mailbox(bob.id, "INBOX").id, {}}});
    ASSERT_TRUE(delivered);
    EXPECT_EQ(*store_->read_account_blob(bob.id, delivered->blob_id), kSmallMessage);
    EXPECT_EQ(store_->read_account_blob(alice.id, delivered->blob_id).error().code, Errc::not_found);
}

TEST_F(StoreJmapTest, OldUploadsExpireWhenTheAccountUploadsAgain) {
    Account alice = make_account("alice@example.test");
    auto old = store_->add_upload(alice.id, "old", "text/plain", 1000, 0);
    ASSERT_TRUE(old);
    ASSERT_TRUE(store_->add_upload(alice.id, "new", "text/plain", 5000, 2000));
    EXPECT_EQ(store_->find_upload(alice.id, old->blob_id).error().code, Errc::not_found);
}

TEST_F(StoreJmapTest, ObjectsCarryStatesAndTombstones) {
    Account alice = make_account("alice@example.test");
    Account bob = make_account("bob@example.test");
    auto empty = store_->list_jmap_objects(alice.id, "Identity");
    ASSERT_TRUE(empty) << empty.error().message;
    EXPECT_EQ(empty->state, 0u);

    auto created = store_->write_jmap_objects(alice.id, "Identity", JmapObjectWrite{{}, {"{\"a\":1}", "{\"b\":2}"}, {}, {}});
    ASSERT_TRUE(created) << created.error().message;
    EXPECT_EQ(created->old_state, 0u);
    EXPECT_EQ(created->new_state, 1u);
    ASSERT_EQ(created->created.size(), 2u);
    const std::int64_t first = created->created[0];
    const std::int64_t second = created->created[1];

    auto stale = store_->write_jmap_objects(alice.id, "Identity", JmapObjectWrite{0, {}, {{first, "{}"}}, {}});
    ASSERT_TRUE(stale);
    EXPECT_TRUE(stale->state_mismatch);

    auto changed = store_->write_jmap_objects(alice.id, "Identity",
                                              JmapObjectWrite{1, {}, {{first, "{\"a\":3}"}}, {second, 999}});
    ASSERT_TRUE(changed);
    EXPECT_EQ(changed->new_state, 2u);
    EXPECT_EQ(changed->missing, (std::vector<std::int64_t>{999}));

    auto list = store_->list_jmap_objects(alice.id, "Identity");
    ASSERT_TRUE(list);
    EXPECT_EQ(list->state, 2u);
    ASSERT_EQ(list->objects.size(), 2u);
    EXPECT_EQ(list->objects[0].data, "{\"a\":3}");
    EXPECT_EQ(list->objects[0].created_state, 1u);
    EXPECT_EQ(list->objects[0].updated_state, 2u);
    EXPECT_TRUE(list->objects[1].destroyed);

    // Another account or type sees none of it, and cannot touch it.
    EXPECT_TRUE(store_->list_jmap_objects(bob.id, "Identity")->objects.empty());
    EXPECT_TRUE(store_->list_jmap_objects(alice.id, "EmailSubmission")->objects.empty());
    auto foreign = store_->write_jmap_objects(bob.id, "Identity", JmapObjectWrite{{}, {}, {}, {first}});
    ASSERT_TRUE(foreign);
    EXPECT_EQ(foreign->missing, (std::vector<std::int64_t>{first}));
    EXPECT_EQ(foreign->new_state, foreign->old_state);
}

TEST_F(StoreJmapTest, ObjectWritesTellTheChangeListenerAsMailboxZero) {
    std::mutex mutex;
    std::condition_variable told;
    std::vector<std::tuple<std::int64_t, std::int64_t, std::uint64_t>> heard;
    store_->set_change_listener([&](std::int64_t account, std::int64_t mailbox, std::uint64_t modseq) {
        std::lock_guard lock(mutex);
        heard.emplace_back(account, mailbox, modseq);
        told.notify_all();
    });
    // The listener runs after the commit, maybe after the write returned: wait for it.
    auto wait_for = [&](std::size_t count) {
        std::unique_lock lock(mutex);
        return told.wait_for(lock, std::chrono::seconds(5), [&] { return heard.size() >= count; });
    };
    Account alice = make_account("alice@example.test");
    Account bob = make_account("bob@example.test");
    JmapObjectWrite write;
    write.create = {R"({"name":"Alice"})"};
    ASSERT_TRUE(store_->write_jmap_objects(alice.id, "Identity", write));
    ASSERT_TRUE(wait_for(1));
    // A write that changes nothing tells nobody: only bob's later write is heard.
    ASSERT_TRUE(store_->write_jmap_objects(alice.id, "Identity", JmapObjectWrite{}));
    ASSERT_TRUE(store_->write_jmap_objects(bob.id, "VacationResponse", write));
    ASSERT_TRUE(wait_for(2));
    std::lock_guard lock(mutex);
    ASSERT_EQ(heard.size(), 2u);
    EXPECT_EQ(heard[0], std::make_tuple(alice.id, std::int64_t{0}, std::uint64_t{0}));
    EXPECT_EQ(heard[1], std::make_tuple(bob.id, std::int64_t{0}, std::uint64_t{0}));
}

TEST_F(StoreJmapTest, SpecialUseIsSetOnTheAccountsOwnMailboxOnly) {
    Account alice = make_account("alice@example.test");
    Account bob = make_account("bob@example.test");
    auto projects = store_->create_mailbox(alice.id, "Projects");
    ASSERT_TRUE(projects);
    ASSERT_TRUE(store_->set_special_use(alice.id, projects->id, SpecialUse::archive));
    EXPECT_EQ(mailbox(alice.id, "Projects").special_use, SpecialUse::archive);
    EXPECT_EQ(store_->set_special_use(bob.id, projects->id, SpecialUse::none).error().code, Errc::not_found);
}

}  // namespace
}  // namespace magpie::store
