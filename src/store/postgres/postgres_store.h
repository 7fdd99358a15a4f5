// The PostgreSQL Store. Reads and IMAP/JMAP/admin writes run on pooled connections, each write one
// transaction that first locks the rows it allocates from (the mailbox, the UIDVALIDITY counter), so two
// nodes never hand out one UID or MODSEQ twice. Deliveries go to a group committer with a connection of
// its own: one transaction per batch, its statements pipelined (delivery.cpp), `done` only after COMMIT
// returned. Every commit that changed a mailbox tells the local listener and NOTIFYs the other nodes.
// Internal to src/store: callers use open_postgres_store() from store/postgres/postgres.h.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <type_traits>
#include <vector>

#include "store/flags.h"
#include "store/postgres/login_counters.h"
#include "store/postgres/pg.h"
#include "store/postgres/postgres.h"
#include "store/store.h"

namespace magpie::store::postgres {

class PostgresStore final : public Store {
public:
    explicit PostgresStore(PostgresOptions options);
    ~PostgresStore() override;

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

    Result<std::vector<Mailbox>> list_mailboxes(std::int64_t account_id) override;
    Result<Mailbox> find_mailbox(std::int64_t account_id, std::string_view name) override;

    void deliver(Delivery delivery, std::function<void(Result<Delivered>)> done) override;
    Result<std::vector<Message>> list_messages(std::int64_t mailbox_id) override;
    Result<Message> find_message(std::int64_t mailbox_id, std::uint32_t uid) override;
    Result<std::string> read_blob(std::string_view blob_id) override;
    // A nameless file in PostgresOptions::spool_dir; the committer sends its mapped octets as chunks.
    Result<std::unique_ptr<BlobSpool>> open_spool() override;
    // Ranged reads a few chunks at a time (blob_reader.cpp): a large message is never read whole.
    Result<std::unique_ptr<BlobReader>> open_blob(std::string_view blob_id) override;

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
    SharedLoginCounters* login_counters() { return login_counters_.get(); }

    // Starts the committer (writable stores) and the LISTEN thread (options.listen).
    void start();

    struct MailboxChange {
        std::int64_t account_id = 0;
        std::uint64_t modseq = 0;
    };
    using Changes = std::map<std::int64_t, MailboxChange>;  // by mailbox id

private:
    struct Pending {
        Delivery delivery;
        std::string blob_id;  // empty until hashed (large content is hashed by the committer)
        std::string_view content;  // the committer's view of the bytes: delivery.content, or the spool mapped
        std::optional<Error> spool_error;  // the spool could not be mapped: this delivery fails alone
        std::vector<FlagSet> flags;  // per target
        std::function<void(Result<Delivered>)> done;
    };

    // Runs body(db, changes) in one transaction on a pooled connection (again after a deadlock), NOTIFYs
    // the other nodes of `changes` inside it and tells the local listener after the commit.
    template <class T, class Body>
    Result<T> write(Body&& body);
    // body(db) on a pooled connection, in one REPEATABLE READ snapshot.
    template <class T, class Body>
    Result<T> read(Body&& body);
    Result<void> run_write(const std::function<Result<void>(Connection&, Changes&)>& apply);
    Result<void> run_read(const std::function<Result<void>(Connection&)>& body);

    void notify(const Changes& changes);
    Result<void> send_notifications(Connection& db, const Changes& changes);
    void listen_loop();
    // Tells the listener of every mailbox at its HIGHESTMODSEQ: changes may have gone unheard.
    void notify_everyone(Connection& db);

    // Checks a delivery (limits, flags, outgoing recipients and send offset) and hashes small content: the
    // same checks for deliver() and for the reports of record_attempts(). `done` is left empty.
    Result<Pending> admit(Delivery delivery) const;
    void committer_loop();
    void commit_batch(std::vector<Pending>& batch);
    Result<Delivered> apply_delivery(Connection& db, Pending& pending, Changes& changes);
    Result<std::int64_t> insert_queue_entry(Connection& db, const std::string& blob_id, const OutgoingMessage& outgoing);
    QueueAttempt bounded(const QueueAttempt& attempt) const;

    Result<std::string> check_mailbox_name(std::string_view name) const;
    // read_blob inside a read already open on `db` (Email/query's content conditions: a second pooled
    // reader could deadlock a full pool).
    Result<std::string> read_blob_in(Connection& db, std::string_view blob_id);
    Result<FlagStoreResult> store_flags_chunk(Connection& db, std::int64_t mailbox_id,
                                              std::span<const std::uint32_t> uids, const FlagSet& requested,
                                              const FlagUpdate& update, Changes& changes);
    Result<CopyResult> copy_in_transaction(Connection& db, std::int64_t from_mailbox_id,
                                           const std::vector<std::uint32_t>& uids, std::int64_t to_mailbox_id,
                                           bool expunge_source, Changes& changes);
    Result<CopyResult> copy_or_move(std::int64_t from_mailbox_id, const std::vector<std::uint32_t>& uids,
                                    std::int64_t to_mailbox_id, bool move);
    Result<void> undo_copy(std::int64_t mailbox_id, const std::vector<std::uint32_t>& uids);
    // Email/set on many Emails: `apply(db, index, context)` for each index, in chunks of
    // max_messages_per_transaction (one transaction each, under the account's row lock), each index under
    // its own savepoint so that one refused update fails alone.
    struct EmailChangeContext;
    Result<std::vector<Result<void>>> for_each_email(
        std::int64_t account_id, std::size_t count,
        const std::function<Result<void>(Connection&, std::size_t, EmailChangeContext&)>& apply);

    PostgresOptions options_;
    std::string node_id_;  // this process, in NOTIFY payloads: its own notifications are not heard twice
    Pool pool_;
    std::unique_ptr<PostgresLoginCounters> login_counters_;  // writable stores only

    mutable std::mutex queue_mutex_;
    std::condition_variable queue_ready_;
    std::deque<Pending> queue_;
    bool stopping_ = false;
    std::thread committer_;
    std::unique_ptr<Connection> committer_db_;  // the committer thread's own; reopened when broken

    std::atomic<bool> stop_listening_{false};
    std::thread listener_thread_;

    std::mutex listener_mutex_;
    ChangeListener listener_;

    std::atomic<std::uint64_t> deliveries_{0};
    std::atomic<std::uint64_t> failed_deliveries_{0};
    std::atomic<std::uint64_t> commits_{0};
    std::atomic<std::uint64_t> writes_{0};
};

template <class T, class Body>
Result<T> PostgresStore::write(Body&& body) {
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
Result<T> PostgresStore::read(Body&& body) {
    std::unique_ptr<Result<T>> outcome;
    auto done = run_read([&](Connection& db) -> Result<void> {
        outcome = std::make_unique<Result<T>>(body(db));
        if (!*outcome) return outcome->error();
        return {};
    });
    if (!done) {
        if (outcome && !*outcome) return std::move(*outcome);
        return done.error();
    }
    return std::move(*outcome);
}

}  // namespace magpie::store::postgres
