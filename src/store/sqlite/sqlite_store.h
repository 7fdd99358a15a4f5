// The embedded Store backend: SQLite in WAL mode (synchronous=FULL) plus content-addressed blob files.
// One writer connection, serialized by a mutex, is shared by the group committer thread and the admin
// writes; reads go to a small pool of read-only connections. Internal to src/store: callers use
// open_sqlite_store() from store/store.h.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <type_traits>
#include <variant>
#include <vector>

#include "store/blob.h"
#include "store/flags.h"
#include "store/sqlite/db.h"
#include "store/sqlite/states_cache.h"
#include "store/store.h"

namespace magpie::store::sqlite {

// Read-only connections handed out one per caller and returned on release; at most `max` exist.
class ReaderPool {
public:
    ReaderPool(std::filesystem::path db_path, std::size_t max, int busy_timeout_ms);

    class Lease {
    public:
        Lease(ReaderPool* pool, std::unique_ptr<Connection> connection)
            : pool_(pool), connection_(std::move(connection)) {}
        Lease(Lease&&) noexcept = default;
        Lease& operator=(Lease&&) = delete;
        ~Lease();
        Connection& operator*() const { return *connection_; }
        Connection* operator->() const { return connection_.get(); }

    private:
        ReaderPool* pool_;
        std::unique_ptr<Connection> connection_;
    };

    // Waits while all `max` connections are out.
    Result<Lease> acquire();

private:
    void release(std::unique_ptr<Connection> connection);

    std::filesystem::path db_path_;
    std::size_t max_;
    int busy_timeout_ms_;
    std::mutex mutex_;
    std::condition_variable available_;
    std::vector<std::unique_ptr<Connection>> idle_;
    std::size_t open_ = 0;
};

class SqliteStore final : public Store {
public:
    // Use open_sqlite_store(); `writer` is null for a read-only store.
    SqliteStore(SqliteOptions options, std::unique_ptr<Connection> writer);
    ~SqliteStore() override;

    Result<Domain> add_domain(std::string_view name) override;
    Result<void> delete_domain(std::string_view name) override;
    Result<std::vector<Domain>> list_domains() override;

    Result<Account> add_account(std::string_view address, std::string_view password_hash,
                                const ScramCredentials& scram) override;
    Result<void> set_password(std::string_view address, std::string_view password_hash,
                              const ScramCredentials& scram) override;
    Result<void> set_disabled(std::string_view address, bool disabled) override;
    Result<void> delete_account(std::string_view address) override;
    Result<std::vector<Account>> list_accounts(std::string_view domain) override;
    Result<Account> find_account(std::string_view address) override;

    Result<void> add_alias(std::string_view address, std::string_view target) override;
    Result<void> delete_alias(std::string_view address) override;
    Result<std::vector<Alias>> list_aliases(std::string_view domain) override;

    Result<RecipientResult> resolve_recipient(std::string_view address) override;
    Result<std::uint64_t> directory_version() override;
    std::optional<std::uint64_t> directory_version_if_ready() override;
    bool has_directory_version_at_once() const override { return version_reader_ != nullptr; }

    Result<std::vector<Mailbox>> list_mailboxes(std::int64_t account_id) override;
    Result<Mailbox> find_mailbox(std::int64_t account_id, std::string_view name) override;

    void deliver(Delivery delivery, std::function<void(Result<Delivered>)> done) override;
    Result<std::vector<Message>> list_messages(std::int64_t mailbox_id) override;
    Result<Message> find_message(std::int64_t mailbox_id, std::uint32_t uid) override;
    Result<std::string> read_blob(std::string_view blob_id) override;
    Result<std::unique_ptr<BlobReader>> open_blob(std::string_view blob_id) override;
    Result<std::unique_ptr<BlobSpool>> open_spool() override;

    Result<Mailbox> create_mailbox(std::int64_t account_id, std::string_view name) override;
    Result<void> rename_mailbox(std::int64_t account_id, std::string_view from, std::string_view to) override;
    Result<void> delete_mailbox(std::int64_t account_id, std::string_view name) override;
    Result<void> set_subscribed(std::int64_t account_id, std::string_view name, bool subscribed) override;
    Result<FlagStoreResult> store_flags(std::int64_t mailbox_id, const std::vector<std::uint32_t>& uids,
                                        const FlagUpdate& update) override;
    Result<std::vector<std::uint32_t>> expunge(std::int64_t mailbox_id,
                                               const std::vector<std::uint32_t>* uids = nullptr) override;
    Result<CopyResult> copy_messages(std::int64_t from_mailbox_id, const std::vector<std::uint32_t>& uids,
                                     std::int64_t to_mailbox_id) override;
    Result<CopyResult> move_messages(std::int64_t from_mailbox_id, const std::vector<std::uint32_t>& uids,
                                     std::int64_t to_mailbox_id) override;
    Result<MailboxChanges> changes_since(std::int64_t mailbox_id, std::uint64_t modseq) override;
    Result<std::vector<std::pair<std::int64_t, EnvelopeRecord>>> pending_envelopes(std::size_t limit) override;
    Result<void> delete_envelope(std::int64_t id) override;

    Result<std::vector<MessageState>> list_states(std::int64_t mailbox_id) override;
    Result<MailboxStatus> mailbox_status(std::int64_t mailbox_id) override;
    Result<std::vector<Message>> find_messages(std::int64_t mailbox_id,
                                               const std::vector<std::uint32_t>& uids) override;
    Result<std::uint32_t> claim_recent(std::int64_t mailbox_id) override;
    Result<std::vector<std::string>> list_subscriptions(std::int64_t account_id) override;

    Result<std::vector<QueueEntry>> lease_due(std::string_view owner, std::int64_t now, std::int64_t lease_seconds,
                                              std::size_t limit) override;
    Result<std::size_t> record_attempts(std::string_view owner, const std::vector<AttemptOutcome>& outcomes,
                                        std::vector<Delivery> reports) override;
    Result<std::size_t> release_leases(std::string_view owner) override;
    Result<std::optional<std::int64_t>> next_queue_due() override;
    Result<std::vector<QueueEntry>> list_queue(std::size_t limit, bool waiting_only) override;
    Result<QueueEntry> find_queue_entry(std::int64_t id) override;
    Result<void> delete_queue_entry(std::int64_t id) override;
    Result<void> set_queue_held(std::int64_t id, bool held) override;
    Result<std::size_t> retry_queue_now(std::optional<std::int64_t> id, std::int64_t now) override;
    Result<std::size_t> purge_finished_queue(std::int64_t before) override;
    // api_tokens.cpp
    Result<ApiToken> add_api_token(std::int64_t account_id, std::string_view name, std::string_view token_hash,
                                   std::int64_t created_at, std::optional<std::int64_t> expires_at) override;
    Result<std::vector<ApiToken>> list_api_tokens(std::int64_t account_id) override;
    Result<void> revoke_api_token(std::int64_t account_id, std::string_view name) override;
    Result<ApiToken> find_api_token(std::string_view token_hash) override;
    Result<GarbageReport> collect_garbage(std::int64_t now, std::int64_t grace_seconds) override;
    // jmap_objects.cpp
    Result<UploadedBlob> add_upload(std::int64_t account_id, std::string_view content, std::string_view type,
                                    std::int64_t now, std::int64_t expire_before) override;
    Result<std::string> read_account_blob(std::int64_t account_id, std::string_view blob_id) override;
    Result<UploadedBlob> find_upload(std::int64_t account_id, std::string_view blob_id) override;
    Result<JmapObjectList> list_jmap_objects(std::int64_t account_id, std::string_view type) override;
    Result<JmapObjectWritten> write_jmap_objects(std::int64_t account_id, std::string_view type,
                                                 const JmapObjectWrite& write) override;
    Result<void> set_special_use(std::int64_t account_id, std::int64_t mailbox_id, SpecialUse special_use) override;
    // email_ops.cpp
    Result<std::uint64_t> account_state(std::int64_t account_id) override;
    Result<std::vector<Email>> find_emails(std::int64_t account_id, const std::vector<std::int64_t>& ids) override;
    Result<EmailQueryResult> query_emails(std::int64_t account_id, const EmailQuery& query) override;
    Result<std::vector<EmailThread>> find_threads(std::int64_t account_id,
                                                  const std::vector<std::int64_t>& thread_ids) override;
    Result<EmailChanges> email_changes(std::int64_t account_id, std::uint64_t since_state,
                                       std::size_t max_changes) override;
    Result<EmailChanges> thread_changes(std::int64_t account_id, std::uint64_t since_state,
                                        std::size_t max_changes) override;
    Result<std::vector<Result<void>>> update_emails(std::int64_t account_id,
                                                    const std::vector<EmailUpdate>& updates) override;
    Result<std::vector<Result<void>>> destroy_emails(std::int64_t account_id,
                                                     const std::vector<std::int64_t>& ids) override;

    void set_change_listener(ChangeListener listener) override;
    StoreStats stats() const override;

private:
    // Where a blob's bytes are: in the database (content read with its row) or in a file of its own.
    struct LocatedBlob {
        bool in_file = false;
        std::uint64_t size = 0;
        std::string content;
    };
    Result<LocatedBlob> locate_blob(std::string_view blob_id);
    // The same on a connection the caller holds (inside its read snapshot), and the bytes of the blob.
    Result<LocatedBlob> locate_blob_in(Connection& db, std::string_view blob_id);
    Result<std::string> read_blob_in(Connection& db, std::string_view blob_id);

    // A delivery accepted by deliver() and waiting for the committer.
    struct Pending {
        Delivery delivery;  // content emptied once a large blob is in its file
        std::string blob_id;
        std::uint64_t size = 0;
        bool in_file = false;
        std::optional<std::string> compressed;  // the inline content as one zstd frame, when that is smaller
        std::vector<FlagSet> flags;  // per target
        std::function<void(Result<Delivered>)> done;
    };
    struct MailboxChange {
        std::int64_t account_id = 0;
        std::uint64_t modseq = 0;
    };
    using Changes = std::map<std::int64_t, MailboxChange>;  // by mailbox id

    // Any write other than a delivery (IMAP, JMAP, admin), run by the committer in its next batch under a
    // savepoint of its own. `apply` records what it changed for the listener; `done` runs after the batch
    // committed (or failed), on the committer thread.
    struct WriteJob {
        std::function<Result<void>(Connection&, Changes&)> apply;
        std::function<void(Result<void>)> done;
    };
    using Work = std::variant<Pending, WriteJob>;

    // Runs `body(writer)` or `body(writer, changes)` as one WriteJob and waits until its batch committed:
    // the write shares that batch's one fsync with the deliveries and writes around it. The body's own
    // error wins over the batch's. The listener hears of `changes` after the commit.
    template <class T, class Body>
    Result<T> write(Body&& body);
    // Queues `apply` for the committer and waits for its commit. Called on the committer thread itself
    // (from a `done` callback or the listener), it runs the write there in a transaction of its own.
    Result<void> run_write(std::function<Result<void>(Connection&, Changes&)> apply);
    // Runs `body(reader)` on a pooled read connection inside one read snapshot.
    template <class T, class Body>
    Result<T> read(Body&& body);

    // Tells the change listener, after a commit, the last MODSEQ of each changed mailbox.
    void notify(const Changes& changes);
    Result<std::string> check_mailbox_name(std::string_view name) const;
    Result<CopyResult> copy_in_transaction(Connection& db, std::int64_t from_mailbox_id,
                                           const std::vector<std::uint32_t>& uids, std::int64_t to_mailbox_id,
                                           bool expunge_source, Changes& changes);

    // store_flags on one chunk of UIDs (ascending, at most max_messages_per_transaction), in the caller's
    // transaction: one new MODSEQ for what it changes.
    Result<FlagStoreResult> store_flags_chunk(Connection& db, std::int64_t mailbox_id,
                                              std::span<const std::uint32_t> uids, const FlagSet& requested,
                                              const FlagUpdate& update, Changes& changes);
    // COPY or MOVE in chunks of max_messages_per_transaction, each its own transaction.
    Result<CopyResult> copy_or_move(std::int64_t from_mailbox_id, const std::vector<std::uint32_t>& uids,
                                    std::int64_t to_mailbox_id, bool move);
    // Email/set on many Emails: `apply(db, index, log, changes)` for each index, in chunks of
    // max_messages_per_transaction, each index under its own savepoint so that one refused update fails alone.
    struct EmailChangeContext;
    Result<std::vector<Result<void>>> for_each_email(
        std::size_t count, const std::function<Result<void>(Connection&, std::size_t, EmailChangeContext&)>& apply);
    // Removes copies made by a COPY that failed part-way (RFC 9051 6.4.7: restore the destination).
    Result<void> undo_copy(std::int64_t mailbox_id, const std::vector<std::uint32_t>& uids);

    // The checks deliver() makes before it accepts a delivery, and the Pending they produce (small content
    // hashed here, large content left for a blob writer).
    Result<Pending> admit(Delivery delivery) const;
    void blob_writer_loop();
    void enqueue_for_commit(Pending pending);
    void committer_loop();
    void commit_batch(std::vector<Work>& batch);
    // WAL checkpoints off the commit path (delivery.cpp): a thread of their own with a connection of its own,
    // woken by the writer's WAL hook after a commit; start_checkpointer() leaves SQLite's autocheckpoint in
    // place when that connection cannot be opened.
    void start_checkpointer();
    void stop_checkpointer();
    void checkpointer_loop();
    static int on_wal_commit(void* store, sqlite3* db, const char* name, int frames);
    Result<Delivered> apply_delivery(const Pending& pending, Changes& changes);
    // Inserts the queue entry of a delivery's remote recipients; returns its id.
    Result<std::int64_t> insert_queue_entry(Connection& db, const std::string& blob_id, const OutgoingMessage& outgoing);
    // Cuts a queue attempt's fields to the configured bounds.
    QueueAttempt bounded(const QueueAttempt& attempt) const;

    SqliteOptions options_;
    std::unique_ptr<BlobStorage> blobs_;  // large blobs (files today)
    std::unique_ptr<Connection> writer_;  // used by the committer thread only
    ReaderPool readers_;
    // directory_version_if_ready's own read-only connection (busy timeout 0), taken with try_lock; null in a
    // read-only store or when it could not be opened.
    std::mutex version_reader_mutex_;
    std::unique_ptr<Connection> version_reader_;
    // The last number it read, when, and at which count of own_writes_ (under version_reader_mutex_): reused
    // for options_.directory_version_reuse while own_writes_ stays, so that RCPT under load does not open a read
    // transaction (its locks in the log's shared memory, and the pages every commit made stale) per recipient.
    struct VersionRead {
        std::uint64_t version = 0;
        std::chrono::steady_clock::time_point at;
        std::uint64_t own_writes = 0;
    };
    std::optional<VersionRead> version_read_;
    // Batches with a write job (anything but a delivery: the directory may have changed) committed so far.
    std::atomic<std::uint64_t> own_writes_ = 0;
    StatesCache states_cache_;  // list_states of recently opened mailboxes

    // Two stages under one mutex: large blobs wait for a blob writer thread (hash, file, fsync), then every
    // delivery and write job waits for the committer. Accepted deliveries are bounded by max_queued across
    // both; write jobs are bounded by their callers, each of which waits for its own.
    mutable std::mutex queue_mutex_;
    std::condition_variable large_ready_;
    std::condition_variable queue_ready_;
    std::deque<Pending> large_queue_;
    std::deque<Work> queue_;
    std::size_t queued_deliveries_ = 0;  // Pending entries in queue_
    bool stopping_ = false;      // no new deliveries; the writers drain large_queue_ and exit
    bool writers_done_ = false;  // the blob writers have exited; the committer drains queue_ and exits
    std::vector<std::thread> blob_writers_;
    std::thread committer_;

    std::unique_ptr<Connection> checkpoint_db_;  // used by the checkpointer thread only
    std::thread checkpointer_;
    std::mutex checkpoint_mutex_;
    std::condition_variable checkpoint_wanted_;
    bool checkpoint_due_ = false;
    bool checkpoint_stop_ = false;
    // The writer's side (committer thread): frames in the log after the last commit, and at how many the
    // checkpointer is woken next (once per checkpoint_frames_ new frames, so it is not kept running).
    int checkpoint_frames_ = 8000;
    int wal_frames_ = 0;
    int next_checkpoint_ = 0;

    std::mutex listener_mutex_;
    ChangeListener listener_;

    std::atomic<std::uint64_t> deliveries_{0};
    std::atomic<std::uint64_t> failed_deliveries_{0};
    std::atomic<std::uint64_t> commits_{0};
    std::atomic<std::uint64_t> writes_{0};
    std::atomic<std::uint64_t> blob_files_written_{0};
};

template <class T, class Body>
Result<T> SqliteStore::write(Body&& body) {
    // The body's answer is kept as a heap object: GCC 12 at -O2 warns falsely (-Wfree-nonheap-object) on a
    // Result moved into a std::optional inside the std::function.
    std::unique_ptr<Result<T>> outcome;
    auto committed = run_write([&](Connection& db, Changes& changes) -> Result<void> {
        if constexpr (std::is_invocable_v<Body&, Connection&, Changes&>) {
            outcome = std::make_unique<Result<T>>(body(db, changes));
        } else {
            outcome = std::make_unique<Result<T>>(body(db));
        }
        if (!*outcome) return outcome->error();
        return {};
    });
    if (!committed) {
        if (outcome && !*outcome) return std::move(*outcome);
        return committed.error();
    }
    return std::move(*outcome);
}

template <class T, class Body>
Result<T> SqliteStore::read(Body&& body) {
    auto lease = readers_.acquire();
    if (!lease) return lease.error();
    auto snapshot = ReadSnapshot::begin(**lease);
    if (!snapshot) return snapshot.error();
    return body(**lease);
}

}  // namespace magpie::store::sqlite
