// Shared by the store's unit tests: a temporary data directory, a fixture that opens an embedded store in
// it, and helpers to read check_store's report and to change the database from outside (as a corruption or
// an older magpie would).
#pragma once

#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "store/store.h"

namespace magpie::store {

class TempDir {
public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "magpie-store-XXXXXX").string();
        char* made = ::mkdtemp(pattern.data());
        if (made == nullptr) throw std::runtime_error("mkdtemp failed");
        path_ = made;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

inline constexpr std::string_view kSmallMessage =
    "From: alice@remote.test\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nHello Bob.\r\n";

// Runs a raw SQL statement on the store's database from outside, as a corruption would.
inline void corrupt_sql(const std::filesystem::path& data_dir, const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((data_dir / "magpie.db").c_str(), &db), SQLITE_OK);
    char* message = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
    std::string detail = message != nullptr ? message : "";
    sqlite3_free(message);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK) << detail;
}

class StoreTest : public ::testing::Test {
protected:
    void SetUp() override { open(); }

    void open(SqliteOptions options = {}) {
        store_.reset();
        options.data_dir = dir_.path();
        auto opened = open_sqlite_store(options);
        ASSERT_TRUE(opened) << opened.error().message;
        store_ = std::move(*opened);
    }

    Account make_account(std::string_view address) {
        ScramCredentials scram{"salt-bytes", 4096, std::string(32, 's'), std::string(32, 'k')};
        auto account = store_->add_account(address, "$argon2id$v=19$m=65536,t=2,p=1$fake", scram);
        EXPECT_TRUE(account) << account.error().message;
        return account ? *account : Account{};
    }

    Mailbox mailbox(std::int64_t account_id, std::string_view name) {
        auto found = store_->find_mailbox(account_id, name);
        EXPECT_TRUE(found) << found.error().message;
        return found ? *found : Mailbox{};
    }

    Result<Delivered> deliver(std::string content, std::vector<DeliveryTarget> targets) {
        Delivery delivery;
        delivery.content = std::move(content);
        delivery.internal_date = 1'700'000'000;
        delivery.targets = std::move(targets);
        delivery.summary.subject = "hi";
        delivery.summary.from = "alice@remote.test";
        std::promise<Result<Delivered>> promise;
        auto future = promise.get_future();
        store_->deliver(std::move(delivery), [&](Result<Delivered> result) { promise.set_value(std::move(result)); });
        return future.get();
    }

    CheckReport check() {
        auto report = check_store(dir_.path());
        EXPECT_TRUE(report) << report.error().message;
        return report ? *report : CheckReport{};
    }

    TempDir dir_;
    std::unique_ptr<Store> store_;
};

// Prints the problems so that a failing expectation shows what check_store saw.
inline std::string describe(const CheckReport& report) {
    std::string text = report.summary;
    for (const auto& problem : report.problems) text += "\n  " + problem;
    return text;
}

inline bool mentions(const CheckReport& report, std::string_view needle) {
    for (const auto& problem : report.problems) {
        if (problem.find(needle) != std::string::npos) return true;
    }
    return false;
}

}  // namespace magpie::store
