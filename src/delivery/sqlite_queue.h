// The outgoing queue on SQLite: <data_dir>/queue.db (WAL, synchronous=FULL), beside the store's magpie.db.
// An interim home: issue 11 moves the queue into the store (one transaction for local mailboxes and queue
// entries); this class keeps the QueueStore contract so the scheduler and `magpie queue` do not change then.
// Thread-safe (one connection behind a mutex); magpied and `magpie queue` may use the file at once.
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>

#include "delivery/queue.h"

namespace magpie::store::sqlite {
class Connection;
}

namespace magpie::delivery {

class SqliteQueue final : public QueueStore {
public:
    // Creates the file and its tables when missing. io_error when the file cannot be opened.
    static Result<std::unique_ptr<SqliteQueue>> open(const std::filesystem::path& data_dir,
                                                     QueueLimits limits = {});
    ~SqliteQueue() override;

    Result<std::int64_t> enqueue(const NewEntry& entry) override;
    Result<std::vector<QueueEntry>> lease_due(std::int64_t now, std::size_t limit,
                                              std::uint32_t lease_seconds, std::string_view owner) override;
    Result<void> release_leases(std::string_view owner) override;
    Result<void> record(const EntryOutcome& outcome) override;
    Result<std::optional<std::int64_t>> next_due() override;
    Result<std::vector<QueueEntry>> list(bool all, std::size_t limit) override;
    Result<QueueEntry> get(std::int64_t id) override;
    Result<std::size_t> retry_now(std::optional<std::int64_t> id, std::int64_t now) override;
    Result<void> set_held(std::int64_t id, bool held) override;
    Result<void> remove(std::int64_t id) override;
    Result<std::size_t> purge_finished(std::int64_t before) override;

private:
    SqliteQueue(std::unique_ptr<store::sqlite::Connection> db, QueueLimits limits);
    Result<std::int64_t> insert(const NewEntry& entry);
    Result<QueueEntry> read_entry(std::int64_t id, bool content, bool attempts, bool only_due,
                                  std::int64_t now);

    std::mutex mutex_;
    std::unique_ptr<store::sqlite::Connection> db_;
    QueueLimits limits_;
};

}  // namespace magpie::delivery
