// Message identity (issue 11), what only the embedded store has: its query plans (SQLite's EXPLAIN), the
// content matcher's calls and `magpie check` on its tables. The behaviour every backend shares (Emails across
// COPY and MOVE, threads, state and changes, Email/set and Email/query) is one parametrized suite,
// BackendEmailTest in store_backends_test.cpp, run on SQLite and on PostgreSQL.
#include <sqlite3.h>

#include <algorithm>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "store/flags.h"
#include "store/sqlite/emails.h"
#include "store/store.h"
#include "store_test_support.h"

namespace magpie::store {
namespace {

constexpr std::int64_t kT0 = 1'700'000'000;

class EmailTest : public StoreTest {
protected:
    void SetUp() override {
        StoreTest::SetUp();
        ASSERT_TRUE(store_->add_domain("example.test"));
        bob_ = make_account("bob@example.test");
        inbox_ = mailbox(bob_.id, "INBOX").id;
        trash_ = mailbox(bob_.id, "Trash").id;
        archive_ = mailbox(bob_.id, "Archive").id;
    }

    // Delivers a message with these header fields (as summarize() would give them) at `received_at`.
    Delivered::Placed deliver_mail(std::int64_t mailbox_id, const std::string& subject, const std::string& message_id,
                                   const std::string& in_reply_to = "", const std::string& references = "",
                                   std::int64_t received_at = kT0, std::vector<std::string> flags = {}) {
        Delivery delivery;
        delivery.content = "Message-ID: " + message_id + "\r\nSubject: " + subject + "\r\n\r\nbody " + message_id + "\r\n";
        delivery.internal_date = received_at;
        delivery.targets = {{mailbox_id, std::move(flags)}};
        delivery.summary.subject = subject;
        delivery.summary.from = "Alice <alice@remote.test>";
        delivery.summary.message_id = message_id;
        delivery.summary.in_reply_to = in_reply_to;
        delivery.summary.references = references;
        std::promise<Result<Delivered>> promise;
        auto future = promise.get_future();
        store_->deliver(std::move(delivery), [&](Result<Delivered> result) { promise.set_value(std::move(result)); });
        auto delivered = future.get();
        EXPECT_TRUE(delivered) << delivered.error().message;
        return delivered ? delivered->placed.front() : Delivered::Placed{};
    }

    Email email(std::int64_t id) {
        auto found = store_->find_emails(bob_.id, {id});
        EXPECT_TRUE(found) << found.error().message;
        EXPECT_EQ(found ? found->size() : 0u, 1u) << "email " << id;
        return found && !found->empty() ? found->front() : Email{};
    }

    std::vector<std::int64_t> mailboxes_of(const Email& e) {
        std::vector<std::int64_t> ids;
        for (const auto& m : e.mailboxes) ids.push_back(m.mailbox_id);
        return ids;
    }

    void expect_clean() {
        auto report = check();
        EXPECT_TRUE(report.clean) << describe(report);
    }

    Account bob_;
    std::int64_t inbox_ = 0, trash_ = 0, archive_ = 0;
};

TEST(JmapKeywords, NameTheImapSystemFlagsAndLowerCaseTheRest) {
    EXPECT_EQ(jmap_keyword("\\Seen"), "$seen");
    EXPECT_EQ(jmap_keyword("\\answered"), "$answered");
    EXPECT_EQ(jmap_keyword("\\Deleted"), "$deleted");
    EXPECT_EQ(jmap_keyword("$Forwarded"), "$forwarded");
    EXPECT_EQ(imap_flag_of_keyword("$SEEN"), "\\Seen");
    EXPECT_EQ(imap_flag_of_keyword("$draft"), "\\Draft");
    EXPECT_EQ(imap_flag_of_keyword("$label"), "$label");
}

// ---- the queries' plans

std::string plan_of(const std::filesystem::path& data_dir, const std::string& sql) {
    std::string plan;
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2((data_dir / "magpie.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* statement = nullptr;
    int rc = sqlite3_prepare_v2(db, ("EXPLAIN QUERY PLAN " + sql).c_str(), -1, &statement, nullptr);
    EXPECT_EQ(rc, SQLITE_OK) << sqlite3_errmsg(db) << " in " << sql;
    while (rc == SQLITE_OK && sqlite3_step(statement) == SQLITE_ROW) {
        plan += reinterpret_cast<const char*>(sqlite3_column_text(statement, 3));
        plan += "; ";
    }
    sqlite3_finalize(statement);
    sqlite3_close(db);
    return plan;
}

TEST_F(EmailTest, FirstPagesOfAMailboxAgreeWithTheGeneralQueryAndTakeTheKeptCount) {
    // A large inbox (the index walk) beside a small archive (the general query), with equal dates (ties by id).
    std::vector<std::int64_t> inbox_ids, archive_ids;
    for (int i = 0; i < 40; ++i) {
        auto placed = deliver_mail(i % 10 == 0 ? archive_ : inbox_, "m", fmt::format("<{}@x>", i), "", "", kT0 + (i / 3));
        (i % 10 == 0 ? archive_ids : inbox_ids).push_back(placed.email_id);
    }
    for (std::int64_t mailbox : {inbox_, archive_}) {
        for (std::int64_t position : {0, 5, 33, 36, 100}) {
            EmailQuery fast;
            fast.filter.condition.in_mailbox = mailbox;
            fast.position = position;
            fast.limit = 7;
            EmailQuery general = fast;  // an always-true extra condition takes the general path
            general.filter.condition.min_size = 0;
            auto a = store_->query_emails(bob_.id, fast);
            auto b = store_->query_emails(bob_.id, general);
            ASSERT_TRUE(a && b);
            EXPECT_EQ(a->ids, b->ids) << "mailbox " << mailbox << " position " << position;
            EXPECT_EQ(a->total, b->total);
            EXPECT_EQ(a->position, b->position);
            EXPECT_EQ(a->state, b->state);
        }
    }
    EmailQuery fast;
    fast.filter.condition.in_mailbox = inbox_;
    auto all = store_->query_emails(bob_.id, fast);
    ASSERT_TRUE(all);
    EXPECT_EQ(all->total, inbox_ids.size());
    EXPECT_EQ(all->ids.front(), inbox_ids.back());  // newest first
    // Another account's mailbox holds nothing for this one.
    auto other = make_account("carol@example.test");
    auto none = store_->query_emails(other.id, fast);
    ASSERT_TRUE(none);
    EXPECT_EQ(none->total, 0u);
    EXPECT_TRUE(none->ids.empty());
}

TEST_F(EmailTest, ContentConditionsAskTheMatcherOncePerBlobAndFailWithItsError) {
    auto a = deliver_mail(inbox_, "one", "<a@x>");
    auto b = deliver_mail(inbox_, "two", "<b@x>");
    std::vector<std::string> asked;
    EmailQuery query;
    query.filter.condition.content = {"needle"};
    query.content_matcher = [&](std::string_view bytes, std::string_view condition) -> Result<bool> {
        asked.emplace_back(condition);
        return bytes.find("<b@x>") != std::string_view::npos;
    };
    auto found = store_->query_emails(bob_.id, query);
    ASSERT_TRUE(found) << found.error().message;
    EXPECT_EQ(found->ids, (std::vector<std::int64_t>{b.email_id}));
    EXPECT_EQ(found->total, 1u);
    EXPECT_EQ(asked.size(), 2u);  // the count and the page share the answers
    // A cheaper condition before it spares the reads.
    asked.clear();
    query.filter.condition.subject = "one";
    found = store_->query_emails(bob_.id, query);
    ASSERT_TRUE(found);
    EXPECT_TRUE(found->ids.empty());
    EXPECT_EQ(asked.size(), 1u);
    // The matcher's error is the query's.
    query.content_matcher = [](std::string_view, std::string_view) -> Result<bool> {
        return make_error(Errc::limit_exceeded, "too many reads");
    };
    found = store_->query_emails(bob_.id, query);
    ASSERT_FALSE(found);
    EXPECT_EQ(found.error().code, Errc::limit_exceeded);
    EXPECT_EQ(found.error().message, "too many reads");
    // Without a matcher a content condition is refused; the next query on the connection works.
    query.content_matcher = nullptr;
    EXPECT_FALSE(store_->query_emails(bob_.id, query));
    EmailQuery plain;
    auto all = store_->query_emails(bob_.id, plain);
    ASSERT_TRUE(all);
    EXPECT_EQ(all->total, 2u);
    (void)a;
}

TEST_F(EmailTest, EmailQueriesSearchIndexesAndNeverScanATable) {
    for (const char* sql : sqlite::kEmailQueries) {
        std::string plan = plan_of(dir_.path(), sql);
        ASSERT_FALSE(plan.empty()) << sql;
        for (std::size_t at = plan.find("SCAN"); at != std::string::npos; at = plan.find("SCAN", at + 1)) {
            std::string step = plan.substr(at, plan.find(';', at) - at);
            if (step.find("VIRTUAL TABLE") == std::string::npos && step.find("SCAN j") == std::string::npos) {
                ADD_FAILURE() << "full scan in " << sql << ": " << plan;
            }
        }
    }
    EXPECT_NE(plan_of(dir_.path(), sqlite::kThreadByMessageId).find("emails_message_id"), std::string::npos);
    EXPECT_NE(plan_of(dir_.path(), sqlite::kThreadBySubject).find("emails_subject"), std::string::npos);
    EXPECT_NE(plan_of(dir_.path(), sqlite::kEmailsInNoMailbox).find("messages_email"), std::string::npos);
    EXPECT_NE(plan_of(dir_.path(), sqlite::kPruneEmailUpdatesOf).find("email_log_email"), std::string::npos);
    EXPECT_NE(plan_of(dir_.path(), sqlite::kPruneEmailUpdates).find("email_log_email"), std::string::npos);
    // Who holds a blob is asked of the Emails: messages carry no blob index (schema 11), one random B-tree
    // fewer for every delivery to write.
    EXPECT_NE(plan_of(dir_.path(), sqlite::kAccountHoldsBlob).find("emails_blob"), std::string::npos);
    const std::string by_blob = plan_of(dir_.path(), "SELECT 1 FROM messages WHERE blob_id = 'x'");
    EXPECT_EQ(by_blob.find("INDEX"), std::string::npos) << by_blob;
    // The first page of a mailbox comes in index order: no sort of the mailbox's Emails.
    const std::string page = plan_of(dir_.path(), sqlite::kMailboxPageByReceived);
    EXPECT_NE(page.find("emails_received"), std::string::npos) << page;
    EXPECT_NE(page.find("messages_email"), std::string::npos) << page;
    EXPECT_EQ(page.find("TEMP B-TREE"), std::string::npos) << page;
}

// ---- magpie check

TEST_F(EmailTest, CheckReportsAMembershipWithoutItsEmailAndAnEmailInNoMailbox) {
    auto placed = deliver_mail(inbox_, "hello", "<1@remote.test>");
    store_.reset();
    corrupt_sql(dir_.path(), "PRAGMA foreign_keys = OFF; UPDATE messages SET email_id = 424242");
    auto report = check();
    EXPECT_FALSE(report.clean);
    EXPECT_TRUE(mentions(report, "email 424242 is missing")) << describe(report);
    EXPECT_TRUE(mentions(report, fmt::format("email {}: in no mailbox", placed.email_id))) << describe(report);
}

TEST_F(EmailTest, CheckReportsAMembershipWhoseFlagsDifferFromItsEmail) {
    deliver_mail(inbox_, "hello", "<1@remote.test>");
    store_.reset();
    corrupt_sql(dir_.path(), "UPDATE emails SET system_flags = 1");
    auto report = check();
    EXPECT_FALSE(report.clean);
    EXPECT_TRUE(mentions(report, "differs from its email")) << describe(report);
}

}  // namespace
}  // namespace magpie::store
