// `magpie migrate` at size: a store of many messages (inline and file blobs, several mailboxes, flags,
// expunges, the queue) goes from SQLite into PostgreSQL and back in batches far smaller than its tables, and
// comes back row for row and byte for byte. The batch size is small so that every table crosses many batch
// boundaries (the cursor's FETCH from PostgreSQL, the multi-row INSERTs into it).
#include <sqlite3.h>

#include <algorithm>
#include <fstream>
#include <future>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "store/postgres/postgres.h"
#include "store/store.h"
#include "store_postgres_support.h"
#include "store_test_support.h"

namespace magpie::store {
namespace {

constexpr std::int64_t kNow = 1'800'000'000;
constexpr int kMessages = 1500;
constexpr std::size_t kBatchRows = 7;
constexpr int kManyRows = 7000;

Result<Delivered> deliver_to(Store& store, Delivery delivery) {
    std::promise<Result<Delivered>> promise;
    auto future = promise.get_future();
    store.deliver(std::move(delivery), [&](Result<Delivered> result) { promise.set_value(std::move(result)); });
    return future.get();
}

// Every table of an embedded store, each row quoted by SQLite itself (blobs as X'..'), in a stable order.
std::map<std::string, std::vector<std::string>> dump_tables(const std::filesystem::path& data_dir) {
    std::map<std::string, std::vector<std::string>> tables;
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2((data_dir / "magpie.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    auto rows_of = [&](const std::string& sql) {
        std::vector<std::vector<std::string>> rows;
        sqlite3_stmt* statement = nullptr;
        EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr), SQLITE_OK) << sql;
        while (sqlite3_step(statement) == SQLITE_ROW) {
            std::vector<std::string> row;
            for (int i = 0; i < sqlite3_column_count(statement); ++i) {
                const auto* text = sqlite3_column_text(statement, i);
                row.emplace_back(text != nullptr ? reinterpret_cast<const char*>(text) : "");
            }
            rows.push_back(std::move(row));
        }
        sqlite3_finalize(statement);
        return rows;
    };
    for (const auto& table : rows_of("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")) {
        std::string quoted;
        for (const auto& column : rows_of(fmt::format("SELECT name FROM pragma_table_info('{}')", table[0]))) {
            quoted += fmt::format("{}quote({})", quoted.empty() ? "" : " || ',' || ", column[0]);
        }
        std::vector<std::string>& lines = tables[table[0]];
        for (const auto& row : rows_of(fmt::format("SELECT {} FROM {}", quoted, table[0]))) lines.push_back(row[0]);
        std::sort(lines.begin(), lines.end());
    }
    sqlite3_close(db);
    return tables;
}

// The blob files: path under blobs/ and bytes.
std::map<std::string, std::string> blob_files(const std::filesystem::path& data_dir) {
    std::map<std::string, std::string> files;
    if (!std::filesystem::exists(data_dir / "blobs")) return files;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(data_dir / "blobs")) {
        if (!entry.is_regular_file()) continue;
        std::ifstream in(entry.path(), std::ios::binary);
        std::stringstream bytes;
        bytes << in.rdbuf();
        files[std::filesystem::relative(entry.path(), data_dir).string()] = bytes.str();
    }
    return files;
}

// kMessages messages for two accounts over three mailboxes, one in 100 large enough for a file of its own,
// then flags, an expunge, a copy and a queued message with its lease and an attempt.
void fill(Store& store) {
    ASSERT_TRUE(store.add_domain("example.test"));
    std::vector<std::int64_t> mailboxes;
    for (const char* address : {"bob@example.test", "carol@example.test"}) {
        auto account = store.add_account(address, "$argon2id$fake", {"salt", 4096, "stored", "server"});
        ASSERT_TRUE(account);
        mailboxes.push_back(store.find_mailbox(account->id, "INBOX")->id);
        auto lists = store.create_mailbox(account->id, "Lists");
        ASSERT_TRUE(lists);
        mailboxes.push_back(lists->id);
    }
    for (int i = 0; i < kMessages; ++i) {
        Delivery delivery;
        delivery.content = fmt::format("Message-ID: <m{}@remote.test>\r\nSubject: message {}\r\n\r\n{}\r\n", i, i,
                                       std::string(i % 100 == 0 ? 200 * 1024 : 100 + i % 400, 'a' + i % 26));
        delivery.internal_date = kNow + i;
        delivery.summary.subject = fmt::format("message {}", i);
        delivery.summary.message_id = fmt::format("<m{}@remote.test>", i);
        delivery.summary.structure = std::string("\x01\x00structure", 11);
        delivery.targets = {{mailboxes[i % mailboxes.size()], i % 3 == 0 ? std::vector<std::string>{"$Tag"}
                                                                         : std::vector<std::string>{}}};
        auto delivered = deliver_to(store, std::move(delivery));
        ASSERT_TRUE(delivered) << delivered.error().message;
    }
    std::vector<std::uint32_t> some;
    for (std::uint32_t uid = 1; uid <= 200; uid += 3) some.push_back(uid);
    ASSERT_TRUE(store.store_flags(mailboxes[0], some, {FlagOperation::add, {"\\Seen", "\\Deleted"}, std::nullopt}));
    std::vector<std::uint32_t> gone{1, 4, 7};
    ASSERT_TRUE(store.expunge(mailboxes[0], &gone));
    ASSERT_TRUE(store.copy_messages(mailboxes[0], {2, 3, 5}, mailboxes[1]));
    Delivery out;
    out.content = "Subject: out\r\n\r\nx\r\n";
    OutgoingMessage outgoing;
    outgoing.reverse_path = "bob@example.test";
    outgoing.recipients = {{"a@remote.test", "", ""}, {"b@remote.test", "", ""}};
    outgoing.first_attempt_at = kNow;
    out.outgoing = outgoing;
    ASSERT_TRUE(deliver_to(store, std::move(out)));
    auto leased = store.lease_due("node", kNow, 60, 10);
    ASSERT_TRUE(leased);
    ASSERT_EQ(leased->size(), 1u);
    AttemptOutcome deferred;
    deferred.recipient_id = leased->front().recipients[0].id;
    deferred.next_attempt_at = kNow + 600;
    deferred.attempt = QueueAttempt{.at = kNow, .host = "mx", .address = "192.0.2.1:25", .tls = "",
                                    .reply = "451 later", .transcript = "", .connection = "c.1"};
    deferred.status = "4.7.1";
    deferred.count_failure = true;
    ASSERT_TRUE(store.record_attempts("node", {deferred}, {}));
}

TEST(StoreMigrateAtSize, ManyMessagesGoToPostgresAndBackInSmallBatchesRowForRow) {
    auto& server = PostgresServer::instance();
    if (server.dsn().empty()) GTEST_SKIP() << "no PostgreSQL: " << server.why_not();
    TempDir source_dir, back_dir;
    {
        SqliteOptions options;
        options.data_dir = source_dir.path();
        auto opened = open_sqlite_store(options);
        ASSERT_TRUE(opened) << opened.error().message;
        fill(**opened);
        if (HasFatalFailure()) return;
    }
    PostgresOptions pg;
    pg.dsn = server.create_database();
    pg.chunk_bytes = 64 * 1024;  // the large blobs in several chunks
    pg.migrate_batch_rows = kBatchRows;
    auto there = migrate_sqlite_to_postgres(source_dir.path(), pg);
    ASSERT_TRUE(there) << there.error().message;
    EXPECT_EQ(there->messages, static_cast<std::size_t>(kMessages) - 3 + 3);  // 3 expunged, 3 copied
    EXPECT_EQ(there->blobs, static_cast<std::size_t>(kMessages) + 1);       // and the queued one
    auto checked = check_postgres_store(pg);
    ASSERT_TRUE(checked) << checked.error().message;
    EXPECT_TRUE(checked->clean) << describe(*checked);
    EXPECT_EQ(checked->messages, there->messages);

    auto back = migrate_postgres_to_sqlite(pg, back_dir.path() / "data");
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(back->messages, there->messages);
    EXPECT_EQ(back->blobs, there->blobs);
    EXPECT_EQ(back->rows, there->rows);
    auto report = check_store(back_dir.path() / "data");
    ASSERT_TRUE(report);
    EXPECT_TRUE(report->clean) << describe(*report);

    auto before = dump_tables(source_dir.path());
    auto after = dump_tables(back_dir.path() / "data");
    ASSERT_EQ(before.size(), after.size());
    for (const auto& [table, rows] : before) {
        ASSERT_TRUE(after.contains(table)) << table;
        EXPECT_EQ(rows.size(), after[table].size()) << table;
        EXPECT_TRUE(rows == after[table]) << table << " differs after the round trip";
    }
    EXPECT_GE(before["messages"].size(), static_cast<std::size_t>(kMessages));
    auto files_before = blob_files(source_dir.path());
    EXPECT_EQ(files_before.size(), static_cast<std::size_t>(kMessages / 100));
    EXPECT_TRUE(files_before == blob_files(back_dir.path() / "data")) << "blob files differ after the round trip";
    server.drop_database(pg.dsn);
}

// One batch larger than PostgreSQL's 65535 parameters allow in one statement is cut to fit.
TEST(StoreMigrateAtSize, ABatchSizeBeyondTheParameterLimitStillMigrates) {
    auto& server = PostgresServer::instance();
    if (server.dsn().empty()) GTEST_SKIP() << "no PostgreSQL: " << server.why_not();
    TempDir source_dir;
    {
        SqliteOptions options;
        options.data_dir = source_dir.path();
        auto opened = open_sqlite_store(options);
        ASSERT_TRUE(opened) << opened.error().message;
        Store& store = **opened;
        ASSERT_TRUE(store.add_domain("example.test"));
        auto bob = store.add_account("bob@example.test", "$argon2id$fake", {"salt", 4096, "stored", "server"});
        ASSERT_TRUE(bob);
        auto inbox = store.find_mailbox(bob->id, "INBOX")->id;
        // More rows than one statement could carry at once: 7000 messages of 10 columns are 70000 parameters.
        // Delivered together, so that group commits make it quick.
        std::vector<std::promise<Result<Delivered>>> promises(kManyRows);
        for (int i = 0; i < kManyRows; ++i) {
            Delivery delivery;
            delivery.content = fmt::format("Subject: {}\r\n\r\n{}\r\n", i, i);
            delivery.targets = {{inbox, {}}};
            store.deliver(std::move(delivery), [&promises, i](Result<Delivered> result) {
                promises[i].set_value(std::move(result));
            });
        }
        for (auto& promise : promises) ASSERT_TRUE(promise.get_future().get());
    }
    PostgresOptions pg;
    pg.dsn = server.create_database();
    pg.migrate_batch_rows = 100000;
    auto there = migrate_sqlite_to_postgres(source_dir.path(), pg);
    ASSERT_TRUE(there) << there.error().message;
    EXPECT_EQ(there->messages, static_cast<std::size_t>(kManyRows));
    auto checked = check_postgres_store(pg);
    ASSERT_TRUE(checked);
    EXPECT_TRUE(checked->clean) << describe(*checked);
    server.drop_database(pg.dsn);
}

}  // namespace
}  // namespace magpie::store
