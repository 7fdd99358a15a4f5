// The coalescing WAL VFS (src/store/sqlite/wal_vfs.h): each commit is on file when COMMIT returns, whatever
// the synchronous setting, other connections read every commit, the files copied right after a commit (what a
// crash leaves) hold it, and a commit of many pages is one write to the log instead of two per page.
#include <sqlite3.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "store/sqlite/wal_vfs.h"
#include "store_test_support.h"

namespace magpie::store {
namespace {

using sqlite::coalescing_wal_vfs;
using sqlite::wal_write_counts;

void exec(sqlite3* db, const std::string& sql) {
    char* message = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
    std::string detail = message != nullptr ? message : "";
    sqlite3_free(message);
    ASSERT_EQ(rc, SQLITE_OK) << sql << ": " << detail;
}

std::int64_t query_int(sqlite3* db, const char* sql) {
    sqlite3_stmt* statement = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &statement, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    std::int64_t value = -1;
    if (sqlite3_step(statement) == SQLITE_ROW) value = sqlite3_column_int64(statement, 0);
    sqlite3_finalize(statement);
    return value;
}

std::int64_t count_rows(sqlite3* db) { return query_int(db, "SELECT count(*) FROM t"); }
std::int64_t total_bytes(sqlite3* db) { return query_int(db, "SELECT coalesce(sum(length(body)), 0) FROM t"); }

std::string integrity(sqlite3* db) {
    sqlite3_stmt* statement = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &statement, nullptr), SQLITE_OK);
    std::string result;
    while (sqlite3_step(statement) == SQLITE_ROW) result += reinterpret_cast<const char*>(sqlite3_column_text(statement, 0));
    sqlite3_finalize(statement);
    return result;
}

// What a crash right now would leave: the database and its log as they are on file (no -shm: opening the
// copy recovers the log from its frames, checksums and commit records, as after a power cut).
struct Copied {
    std::int64_t rows = -1;
    std::int64_t bytes = -1;
};

Copied copy_files(const std::filesystem::path& live, const std::filesystem::path& copy) {
    std::filesystem::remove_all(copy);
    std::filesystem::create_directories(copy);
    for (const char* name : {"t.db", "t.db-wal"}) {
        if (std::filesystem::exists(live / name)) std::filesystem::copy_file(live / name, copy / name);
    }
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2((copy / "t.db").c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    Copied copied{count_rows(db), total_bytes(db)};
    EXPECT_EQ(integrity(db), "ok");
    sqlite3_close(db);
    return copied;
}

std::int64_t rows_in_copy(const std::filesystem::path& live, const std::filesystem::path& copy) {
    return copy_files(live, copy).rows;
}

class WalVfsTest : public ::testing::TestWithParam<const char*> {
protected:
    void SetUp() override {
        ASSERT_NE(coalescing_wal_vfs(), nullptr);
        ASSERT_EQ(sqlite3_open_v2((dir_.path() / "t.db").c_str(), &writer_,
                                  SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                  coalescing_wal_vfs()),
                  SQLITE_OK);
        exec(writer_, "PRAGMA journal_mode = WAL");
        exec(writer_, std::string("PRAGMA synchronous = ") + GetParam());
        exec(writer_, "PRAGMA wal_autocheckpoint = 0");  // the log keeps every commit: the copies read it
        exec(writer_, "CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB)");
        ASSERT_EQ(sqlite3_open_v2((dir_.path() / "t.db").c_str(), &reader_, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    }
    void TearDown() override {
        sqlite3_close(reader_);
        sqlite3_close(writer_);
    }

    // One transaction of `rows` rows of `bytes` bytes each (more than a page: overflow pages too).
    void commit_rows(int rows, int bytes) {
        exec(writer_, "BEGIN");
        for (int i = 0; i < rows; ++i) exec(writer_, "INSERT INTO t(body) VALUES(zeroblob(" + std::to_string(bytes) + "))");
        exec(writer_, "COMMIT");
    }

    TempDir dir_;
    sqlite3* writer_ = nullptr;
    sqlite3* reader_ = nullptr;
};

TEST_P(WalVfsTest, EveryCommitIsReadByOthersAndIsOnFileWhenCommitReturns) {
    std::int64_t expected = 0;
    for (int commit = 1; commit <= 30; ++commit) {
        commit_rows(commit % 7 + 1, 3000);
        expected += commit % 7 + 1;
        ASSERT_EQ(count_rows(reader_), expected) << "commit " << commit;
        ASSERT_EQ(rows_in_copy(dir_.path(), dir_.path() / "copy"), expected) << "commit " << commit;
    }
}

TEST_P(WalVfsTest, ACommitLargerThanTheBufferAndARollbackLeaveTheLogWhole) {
    // About 3 MiB in one transaction: the buffer fills and is written many times before the commit frame,
    // and SQLite's page cache (2 MiB) spills frames of the open transaction into the log.
    commit_rows(1000, 3000);
    ASSERT_EQ(count_rows(reader_), 1000);
    // Rolled back after spilling: its frames are in the log but no commit record names them.
    exec(writer_, "BEGIN");
    for (int i = 0; i < 1000; ++i) exec(writer_, "INSERT INTO t(body) VALUES(zeroblob(3000))");
    exec(writer_, "UPDATE t SET body = zeroblob(10) WHERE id <= 500");
    exec(writer_, "ROLLBACK");
    commit_rows(3, 3000);
    EXPECT_EQ(count_rows(reader_), 1003);
    EXPECT_EQ(count_rows(writer_), 1003);
    EXPECT_EQ(rows_in_copy(dir_.path(), dir_.path() / "copy"), 1003);
    EXPECT_EQ(integrity(writer_), "ok");
    // A checkpoint reads the log back through the VFS; the log then starts again from its header.
    exec(writer_, "PRAGMA wal_checkpoint(TRUNCATE)");
    commit_rows(2, 3000);
    EXPECT_EQ(count_rows(reader_), 1005);
    EXPECT_EQ(rows_in_copy(dir_.path(), dir_.path() / "copy"), 1005);
}

// A transaction larger than the page cache writes (spills) frames before its commit; changing one of those
// pages again makes SQLite rewrite frame headers in place after the commit frame (wal.c walRewriteChecksums),
// the commit frame's header last, with no page written after it. That rewrite is on file when COMMIT returns.
TEST_P(WalVfsTest, ATransactionThatRewritesItsSpilledFramesIsOnFileWhenCommitReturns) {
    commit_rows(1, 100);
    exec(writer_, "PRAGMA cache_size = 20");
    exec(writer_, "BEGIN");
    for (int i = 0; i < 300; ++i) exec(writer_, "INSERT INTO t(body) VALUES(zeroblob(3000))");
    exec(writer_, "UPDATE t SET body = zeroblob(10) WHERE id BETWEEN 2 AND 101");
    exec(writer_, "COMMIT");
    const std::int64_t bytes = 100 + 200 * 3000 + 100 * 10;
    EXPECT_EQ(count_rows(reader_), 301);
    EXPECT_EQ(total_bytes(reader_), bytes);
    const Copied copied = copy_files(dir_.path(), dir_.path() / "copy");
    EXPECT_EQ(copied.rows, 301);
    EXPECT_EQ(copied.bytes, bytes);
}

TEST_P(WalVfsTest, ACommitOfManyPagesIsOneWriteToTheLog) {
    commit_rows(1, 100);  // the log's header and first frames
    const auto before = wal_write_counts();
    constexpr int kCommits = 20;
    for (int i = 0; i < kCommits; ++i) commit_rows(5, 3000);  // a leaf page per row and more: one buffer
    const auto after = wal_write_counts();
    const std::uint64_t requested = after.requested - before.requested;
    const std::uint64_t issued = after.issued - before.issued;
    // SQLite asks for two writes per frame (header, page); the log gets one per commit.
    EXPECT_GE(requested, 2u * 5u * kCommits);
    EXPECT_EQ(issued, static_cast<std::uint64_t>(kCommits));
}

INSTANTIATE_TEST_SUITE_P(Synchronous, WalVfsTest, ::testing::Values("FULL", "NORMAL", "OFF"));

}  // namespace
}  // namespace magpie::store
