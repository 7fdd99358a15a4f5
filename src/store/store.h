// The Store: every durable thing Magpie keeps (domains, accounts, aliases, mailboxes, messages, the change
// log) behind one synchronous, thread-safe interface. Protocol code calls it from the server's store thread
// pool and never writes SQL. open_sqlite_store() gives the embedded backend (SQLite in WAL mode + blobs).
#pragma once

#include <cstddef>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "store/blob.h"
#include "store/flags.h"
#include "store/jmap_objects.h"

namespace magpie::store {

// RFC 6154 special-use roles of the default mailboxes.
enum class SpecialUse { none, sent, drafts, trash, junk, archive };

// SCRAM-SHA-256 keys (RFC 5802 3), stored when the password is set because SCRAM cannot be verified
// against an argon2id hash. All fields are raw bytes, not base64.
struct ScramCredentials {
    std::string salt;
    std::uint32_t iterations = 0;
    std::string stored_key;
    std::string server_key;
};

struct Domain {
    std::int64_t id = 0;
    std::string name;  // lower-case
};

struct Account {
    std::int64_t id = 0;
    std::int64_t domain_id = 0;
    std::string address;        // lower-case full address
    std::string password_hash;  // argon2id string (libsodium crypto_pwhash_str)
    ScramCredentials scram;
    bool disabled = false;
};

struct Alias {
    std::string address;  // "user@dom", or "@dom" for the domain's catch-all
    std::string target;   // a local account's address
};

struct Mailbox {
    std::int64_t id = 0;
    std::int64_t account_id = 0;
    std::string name;
    std::uint32_t uidvalidity = 0;
    std::uint32_t uidnext = 1;
    std::uint64_t highest_modseq = 0;
    SpecialUse special_use = SpecialUse::none;
    bool subscribed = false;  // its name is in the account's subscriptions (list_subscriptions)
    std::uint32_t message_count = 0;
    std::uint64_t total_size = 0;
};

// Parse-once data the caller computed when the message arrived; the store persists it verbatim.
struct MessageSummary {
    std::string subject, from, to, cc, date, message_id, in_reply_to, references;
    std::string structure;  // opaque serialized MIME structure from src/mail; may be empty
};

// One membership of an Email (below) in one mailbox: IMAP's view of a stored message. COPY within an account
// adds a membership to the same Email, MOVE replaces one, EXPUNGE removes one (and the Email with its last).
struct Message {
    std::int64_t id = 0;  // the membership row; not stable across MOVE (use email_id)
    std::int64_t mailbox_id = 0;
    std::int64_t email_id = 0;   // the Email this is a membership of: stable across COPY and MOVE
    std::int64_t thread_id = 0;  // the Email's thread
    std::uint32_t uid = 0;
    std::uint64_t modseq = 0;
    std::string blob_id;  // lower-case hex SHA-256 of the content
    std::uint64_t size = 0;
    std::int64_t internal_date = 0;  // Unix seconds
    std::vector<std::string> flags;  // system flags like "\\Seen" and keywords
    MessageSummary summary;
};

enum class RecipientStatus { local, unknown_user, not_local_domain };

struct RecipientResult {
    RecipientStatus status = RecipientStatus::unknown_user;
    std::int64_t account_id = 0;        // when local
    std::string canonical_address;      // the account the address resolved to, when local
};

struct DeliveryTarget {
    std::int64_t mailbox_id = 0;
    std::vector<std::string> flags;
};

// The SMTP envelope of a received message with its DSN parameters (RFC 3461), kept when a sender asked to
// be told of successful delivery (NOTIFY=SUCCESS on some recipient): the outgoing queue turns these records
// into "delivered" notifications and deletes them.
struct EnvelopeRecipient {
    std::string address;  // as given in RCPT TO
    std::string notify;   // e.g. "SUCCESS,FAILURE"
    std::string orcpt;    // "rfc822;xtext" as sent, or ""
};
struct EnvelopeRecord {
    std::string reverse_path;  // "" = null sender
    std::string dsn_ret;       // "", "FULL" or "HDRS"
    std::string dsn_envid;     // xtext as sent, or ""
    std::vector<EnvelopeRecipient> recipients;
};

// ---- The outgoing queue (issue 13): entries, per-recipient state, attempts and their transcripts. These are
// the store's objects, the same for every backend; the scheduler's view with content loaded is delivery/queue.h.
enum class QueueState { queued = 0, deferred = 1, delivered = 2, failed = 3 };

// One delivery attempt to one recipient, as the delivery tracker shows it. Fields longer than the store's
// bounds (max_attempt_field_bytes, max_transcript_bytes) are cut, marked "[...]".
struct QueueAttempt {
    std::int64_t at = 0;     // Unix seconds
    std::string host;        // the MX (or smart host) name tried, or "local" for a local mailbox
    std::string address;     // its IP address and port, e.g. "192.0.2.1:25"; "" = no connection was made
    std::string tls;         // e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384"; "" = none
    std::string reply;       // the remote's reply for this recipient, or the connection error
    std::string transcript;  // "C: ..." / "S: ..." lines, secrets and message text left out
    std::string connection;  // id of the TCP connection: messages that shared one share it; "" = none
};

struct QueueRecipient {
    std::int64_t id = 0;
    std::string address;  // as given in RCPT TO
    std::string notify;   // DSN NOTIFY (RFC 3461), e.g. "FAILURE,DELAY"; "" = default
    std::string orcpt;    // "rfc822;xtext" as sent, or ""
    QueueState state = QueueState::queued;
    std::string last_reply;             // the last attempt's reply or reason
    std::int64_t next_attempt_at = 0;   // Unix seconds (queued, deferred)
    std::uint32_t attempt_count = 0;    // attempts made (every outcome that carried one)
    std::uint32_t failed_attempts = 0;  // temporary failures so far: the retry schedule counts these
    std::string status;                 // RFC 3463 code of the last result, "4.4.1"; "" before any
    std::string remote_mta;             // the host that gave the last reply; "" when none did
    std::int64_t last_attempt_at = 0;   // Unix seconds; 0 = never attempted
    bool delay_notified = false;        // the one "delayed" report went out (RFC 3464 delay notice)
    std::vector<QueueAttempt> attempts;  // oldest first, the last max_attempts_kept; find_queue_entry only
};

struct QueueEntry {
    std::int64_t id = 0;
    std::string blob_id;       // the message, shared with any local copies
    std::string reverse_path;  // "" = null sender (a report: never reported on, RFC 3461 6.2)
    std::string dsn_ret;       // "", "FULL" or "HDRS"
    std::string dsn_envid;     // xtext as sent, or ""
    std::int64_t created_at = 0;  // Unix seconds: when it was queued (the lifetime counts from here)
    bool smtputf8 = false;        // the message needs SMTPUTF8 (RFC 6531) from the next hop
    bool held = false;            // `magpie queue hold`: not leased until released
    // Octets at the start of the blob that only the local copies carry (their Return-Path field, RFC 5321
    // 4.4): the queue sends the blob from here on. `size` is what it sends.
    std::uint64_t send_offset = 0;
    std::uint64_t size = 0;
    std::vector<QueueRecipient> recipients;
};

// The remote recipients of a Delivery: queued in the same transaction as its local copies.
struct OutgoingMessage {
    std::string reverse_path, dsn_ret, dsn_envid;
    std::vector<EnvelopeRecipient> recipients;  // each needs an '@'
    std::int64_t first_attempt_at = 0;  // Unix seconds; 0 = at once
    std::int64_t queued_at = 0;         // Unix seconds; 0 = when committed
    bool smtputf8 = false;
    bool held = false;
    std::uint64_t send_offset = 0;  // see QueueEntry::send_offset; at most the content's size
    // A queue carried over from elsewhere (the import of an old queue.db): each recipient's state so far, in
    // `recipients` order (ids ignored; attempts kept up to max_attempts_kept). Empty for a new message.
    std::vector<QueueRecipient> carried_over;
};

// What a worker learned about one recipient it leased.
struct AttemptOutcome {
    std::int64_t recipient_id = 0;
    QueueState state = QueueState::deferred;  // delivered, deferred or failed
    std::int64_t next_attempt_at = 0;         // when deferred
    // The attempt made; its reply becomes the recipient's last_reply. None when nothing was tried (the
    // lifetime ran out before a try): the state changes, the history does not.
    std::optional<QueueAttempt> attempt;
    std::string status;             // RFC 3463 code of this result
    std::string remote_mta;         // the host that answered; "" keeps the previous one
    bool count_failure = false;     // a temporary failure: failed_attempts + 1
    bool delay_notified = false;    // the delay notice went out with this round (never cleared)
};

struct Delivery {
    std::string content;  // the full RFC 5322 bytes to store, trace headers included
    // Or, for a large message received in pieces: the spool holding them (Store::open_spool of the same
    // store), with `content` empty. The store persists it as the blob before the transaction commits.
    std::shared_ptr<BlobSpool> spooled;
    std::int64_t internal_date = 0;  // Unix seconds (RFC 9051 2.3.3); 0 means "when committed"
    std::vector<DeliveryTarget> targets;  // may be empty when `outgoing` has recipients
    MessageSummary summary;
    std::optional<EnvelopeRecord> envelope;  // stored in the same transaction when present
    std::optional<OutgoingMessage> outgoing;  // queued in the same transaction when present
    // A kept envelope (pending_envelopes) this delivery answers, e.g. with its success notice: removed in the
    // same transaction, so the notice is queued exactly once. not_found (nothing stored) when it is gone.
    std::optional<std::int64_t> answers_envelope;
    // The directory version (Store::directory_version) at which `targets` were resolved, when the caller
    // resolved them from a memory of its own: if the directory changed since, nothing is stored and the
    // delivery fails with Errc::conflict, for the caller to resolve its recipients again.
    std::optional<std::uint64_t> directory_version;
};

struct Delivered {
    std::string blob_id;
    struct Placed {
        std::int64_t mailbox_id = 0;
        std::uint32_t uid = 0;
        std::uint64_t modseq = 0;
        std::int64_t email_id = 0;   // a new Email per target account (targets of one account with the same
        std::int64_t thread_id = 0;  // flags share it); its thread as computed at delivery
    };
    std::vector<Placed> placed;  // one per target, in target order
    std::int64_t queue_id = 0;   // the queue entry of `outgoing`, 0 when there was none
};

// RFC 9051 6.4.6 STORE, with RFC 7162 3.1.3 UNCHANGEDSINCE.
enum class FlagOperation { add, remove, replace };
struct FlagUpdate {
    FlagOperation operation = FlagOperation::add;
    std::vector<std::string> flags;
    std::optional<std::uint64_t> unchanged_since;
};
struct FlagChange {
    std::uint32_t uid = 0;
    std::uint64_t modseq = 0;
    std::vector<std::string> flags;  // all flags after the change
};
struct FlagStoreResult {
    std::vector<FlagChange> changed;           // messages whose flags changed, ascending UID; one new MODSEQ
                                               // per transaction (max_messages_per_transaction messages)
    std::vector<std::uint32_t> unchanged;      // present, flags already as asked (no new MODSEQ)
    std::vector<std::uint32_t> modified;       // refused by UNCHANGEDSINCE (the MODIFIED response code)
};

// RFC 4315 COPYUID: the target's UIDVALIDITY and (source UID, new UID) pairs in source UID order.
struct CopyResult {
    std::uint32_t uidvalidity = 0;
    std::vector<std::pair<std::uint32_t, std::uint32_t>> uids;
};

struct MailboxChanges {
    std::uint64_t highest_modseq = 0;
    std::vector<Message> changed;          // present messages with MODSEQ above the given one, UID order
    std::vector<std::uint32_t> expunged;   // UIDs expunged after it (QRESYNC VANISHED), ascending
};

// The part of a message that SELECT, FETCH FLAGS and CONDSTORE need.
struct MessageState {
    std::uint32_t uid = 0;
    std::uint64_t modseq = 0;
    std::vector<std::string> flags;
};

// RFC 9051 6.3.11 STATUS items, from counters the store keeps.
struct MailboxStatus {
    std::uint32_t messages = 0;
    std::uint32_t unseen = 0;
    std::uint32_t recent = 0;  // messages with uid >= the mailbox's first-recent UID
    std::uint32_t uidnext = 1;
    std::uint32_t uidvalidity = 0;
    std::uint64_t highest_modseq = 1;
    std::uint64_t size = 0;  // octets of all messages
    std::uint32_t deleted = 0;       // messages flagged \Deleted (RFC 9051 6.3.11 DELETED)
    std::uint64_t deleted_size = 0;  // their octets (RFC 9208 DELETED-STORAGE, in octets, not KiB)
};

// A per-user API token for HTTP Bearer authentication (JMAP clients). Only its SHA-256 is stored; the
// token itself is shown once, when it is made.
struct ApiToken {
    std::int64_t id = 0;
    std::int64_t account_id = 0;
    std::string account_address;           // the owner's address (lower-case)
    std::string name;                      // unique per account, chosen by the user
    std::int64_t created_at = 0;           // Unix seconds
    std::optional<std::int64_t> expires_at;  // Unix seconds; none = never
};

// What collect_garbage removed.
struct GarbageReport {
    std::size_t blob_rows = 0;     // unreferenced blob rows (and their inline bytes)
    std::size_t files = 0;         // blob files without a row, and leftovers of interrupted writes
    std::uint64_t file_bytes = 0;
};

// Counters for tests and metrics: group commit works when commits < deliveries + writes.
struct StoreStats {
    std::uint64_t deliveries = 0;         // deliveries acknowledged with success
    std::uint64_t failed_deliveries = 0;  // deliveries answered with an error (refusals included)
    std::uint64_t writes = 0;             // other write transactions' parts committed (IMAP, admin)
    std::uint64_t commits = 0;            // transactions committed by the writer (each is one WAL fsync)
    std::uint64_t blob_files = 0;         // large blobs written to files
    std::uint64_t queued = 0;             // deliveries and writes waiting for the committer right now
};

// ---- Emails (issue 11: message identity; the JMAP Email and Thread objects, RFC 8621 3 and 4).
// An Email is one stored message in one account: a stable id (it survives COPY and MOVE within the
// account), a thread id computed at delivery and stored, flags (IMAP flags = JMAP keywords, per Email as in
// Stalwart and Gmail: a flag change shows in every mailbox the Email is in, each membership taking a new
// MODSEQ and a change-log row in its mailbox) and one membership per mailbox, each with its own UID and
// MODSEQ. One exception: \Deleted belongs to the membership (EXPUNGE is per mailbox, and a client's
// COPY + \Deleted + EXPUNGE move must not mark the copy too); an Email never shows it (nor JMAP $deleted),
// and an EmailUpdate that names it sets or clears it in every mailbox. Every account has a state counter (a per-account MODSEQ, the JMAP state string) that advances in
// the same transaction as the mailboxes' change log whenever an Email is created, changed or destroyed.
// Ids are positive and never reused within a store. A thread's id is the id of its first Email.

struct EmailMembership {
    std::int64_t mailbox_id = 0;
    std::uint32_t uid = 0;      // the Email's UID in that mailbox
    std::uint64_t modseq = 0;   // its MODSEQ there
};

struct Email {
    std::int64_t id = 0;
    std::int64_t account_id = 0;
    std::int64_t thread_id = 0;
    std::string blob_id;             // lower-case hex SHA-256 of the content (JMAP blobId)
    std::uint64_t size = 0;          // octets of the content
    std::int64_t received_at = 0;    // Unix seconds: IMAP INTERNALDATE, JMAP receivedAt
    std::int64_t sent_at = 0;        // the Date header field in Unix seconds; 0 when missing or unreadable
    std::vector<std::string> flags;  // IMAP form ("\\Seen", ..., then keywords; never \\Deleted); see jmap_keyword()
    std::vector<EmailMembership> mailboxes;  // ascending mailbox id; never empty for a stored Email
    std::uint64_t state = 0;         // the account state at which this Email last changed
    MessageSummary summary;          // parse-once header fields and structure (kept with the blob)
};

// One condition of an Email/query filter (RFC 8621 4.4.1); the fields set are ANDed, an empty condition
// matches every Email. Text matches are case-insensitive (ASCII) substrings of the summary's header fields
// (from, to, cc, subject); `text` looks in all four. What only the message bytes can answer (a body, Bcc,
// any header field, hasAttachment) is in `content`: conditions the caller encodes and its
// EmailQuery::content_matcher answers from the bytes, which the store reads from the blob.
struct EmailCondition {
    std::optional<std::int64_t> in_mailbox;
    std::vector<std::int64_t> in_mailbox_other_than;  // in some mailbox not listed here
    std::optional<std::string> has_keyword;            // IMAP form ("\\Seen" or a keyword)
    std::optional<std::string> not_keyword;
    std::optional<std::int64_t> before;    // received_at < before (Unix seconds)
    std::optional<std::int64_t> after;     // received_at >= after
    std::optional<std::uint64_t> min_size; // size >= min_size (octets)
    std::optional<std::uint64_t> max_size; // size < max_size
    std::string from, to, cc, subject, text;  // "" = no condition
    // Keyword tests over the Email's whole thread (RFC 8621 4.4.1 allInThreadHaveKeyword, ...); IMAP form.
    std::optional<std::string> all_in_thread_have_keyword, some_in_thread_have_keyword, none_in_thread_have_keyword;
    std::vector<std::string> content;  // each must hold: EmailQuery::content_matcher(bytes, condition)
};

// Answers one EmailCondition::content condition for the message `bytes`; an error fails the query with it
// (e.g. the caller's bound on messages read, limit_exceeded).
using ContentMatcher = std::function<Result<bool>(std::string_view bytes, std::string_view condition)>;

// A filter tree (RFC 8621 4.4: FilterOperator AND / OR / NOT over operands). Bounded by
// SqliteOptions::max_filter_nodes (limit_exceeded beyond).
struct EmailFilter {
    enum class Operator { condition, all_of, any_of, none_of };
    Operator op = Operator::condition;
    EmailCondition condition;          // when op == condition
    std::vector<EmailFilter> operands; // otherwise
};

enum class EmailSortKey { received_at, sent_at, size, from, subject };
struct EmailSort {
    EmailSortKey key = EmailSortKey::received_at;
    bool ascending = false;
};

struct EmailQuery {
    EmailFilter filter;            // default: every Email of the account
    std::vector<EmailSort> sort;   // empty = received_at descending; ties by id, in the last key's direction
    bool collapse_threads = false; // keep only the first Email of each thread in this order
    std::int64_t position = 0;     // RFC 8620 5.5: a negative position counts from the end
    std::optional<std::int64_t> anchor;  // an Email id: start at it plus anchor_offset (position ignored)
    std::int64_t anchor_offset = 0;
    std::size_t limit = 0;         // ids wanted; 0 or above SqliteOptions::max_query_results means that bound
    // Needed when a condition has `content`: called at most once per blob and condition in a query, on the
    // store's reading thread (invalid_argument when missing).
    ContentMatcher content_matcher;
};

struct EmailQueryResult {
    std::vector<std::int64_t> ids;  // in sort order
    std::uint64_t position = 0;     // the index of ids[0] in the whole result
    std::uint64_t total = 0;        // Emails matching (after collapsing threads)
    std::uint64_t state = 0;        // the account state the query saw (JMAP queryState)
};

// A thread: its Emails in received_at order (ties by id), the JMAP Thread object (RFC 8621 3).
struct EmailThread {
    std::int64_t id = 0;
    std::vector<std::int64_t> email_ids;
};

// JMAP /changes (RFC 8620 5.2) for Emails or Threads since an account state.
struct EmailChanges {
    std::uint64_t old_state = 0;
    std::uint64_t new_state = 0;  // the state these changes bring the caller to
    bool has_more_changes = false;
    std::vector<std::int64_t> created, updated, destroyed;  // ascending ids; an id in at most one list
};

// One Email/set update (RFC 8621 4.6): flags and memberships, replaced or patched. Adding a membership is
// a COPY into that mailbox (a new UID, an "appended" change), removing one an EXPUNGE there. An Email
// must keep at least one mailbox (invalid_argument otherwise: destroy it instead).
struct EmailUpdate {
    std::int64_t email_id = 0;
    std::optional<std::vector<std::string>> set_flags;  // replaces every flag (IMAP form)
    std::vector<std::string> add_flags, remove_flags;   // or patches them
    std::optional<std::vector<std::int64_t>> set_mailboxes;  // replaces every membership
    std::vector<std::int64_t> add_mailboxes, remove_mailboxes;  // or patches them
};

// Called after each commit that changed a mailbox (mailbox_id 0, modseq 0: the account's JMAP objects,
// write_jmap_objects: Identity, EmailSubmission, VacationResponse), on the committer thread: keep it short, and never wait in
// it for a delivery (the committer would wait for itself). A write called from it (or from a `done`) runs
// on the committer thread in a transaction of its own.
using ChangeListener =
    std::function<void(std::int64_t account_id, std::int64_t mailbox_id, std::uint64_t modseq)>;

class Store {
public:
    virtual ~Store() = default;

    // Domains. Names are lower-cased.
    virtual Result<Domain> add_domain(std::string_view name) = 0;   // already_exists
    virtual Result<void> delete_domain(std::string_view name) = 0;  // permission_denied while accounts exist
    virtual Result<std::vector<Domain>> list_domains() = 0;

    // Accounts. Creating one also creates INBOX, Sent, Drafts, Trash, Junk and Archive with their roles,
    // all subscribed (as Dovecot's autosubscribe does).
    virtual Result<Account> add_account(std::string_view address, std::string_view password_hash,
                                        const ScramCredentials& scram) = 0;
    virtual Result<void> set_password(std::string_view address, std::string_view password_hash,
                                      const ScramCredentials& scram) = 0;
    virtual Result<void> set_disabled(std::string_view address, bool disabled) = 0;
    // Removes the account, its aliases, mailboxes and messages; its blobs become garbage.
    virtual Result<void> delete_account(std::string_view address) = 0;
    virtual Result<std::vector<Account>> list_accounts(std::string_view domain /* empty = all */) = 0;
    // Case-insensitive; not_found for an unknown account and for a name that is no address at all.
    virtual Result<Account> find_account(std::string_view address) = 0;

    // Aliases. The target must be a local account; "@dom" is the catch-all of dom.
    virtual Result<void> add_alias(std::string_view address, std::string_view target) = 0;
    virtual Result<void> delete_alias(std::string_view address) = 0;
    virtual Result<std::vector<Alias>> list_aliases(std::string_view domain /* empty = all */) = 0;

    // RCPT-time check: exact account, then alias, then catch-all; case-insensitive. A domain that cannot be
    // ours (address literal) is not_local_domain; invalid_argument only for a string without '@'.
    virtual Result<RecipientResult> resolve_recipient(std::string_view address) = 0;

    // A number that changes, in this process or any other using the store, with every change to what an
    // address resolves to for delivery: domains, accounts (address, domain, disabled), aliases, a mailbox
    // deleted, renamed or moved to another account, a VacationResponse written. It never goes back, and
    // nothing else changes it (deliveries, flags, logins). Callers that remember recipients (SMTP RCPT)
    // read it before their look-ups and hand it to deliver() (Delivery::directory_version).
    virtual Result<std::uint64_t> directory_version() = 0;
    // The same number if it can be had at once, without waiting for a lock, a thread or the network: for a
    // network thread to check a remembered recipient against. nullopt when it cannot (the embedded store's
    // one connection for it is busy or the log is locked; PostgreSQL would need a round trip). The embedded
    // store answers a change made in this process at once, and one made by another process (the CLI) within
    // SqliteOptions::directory_version_reuse: it reads the number at most that often while nothing here wrote.
    virtual std::optional<std::uint64_t> directory_version_if_ready() { return std::nullopt; }
    // Whether directory_version_if_ready() can answer at all: true for the embedded store, false where every
    // read is a round trip (PostgreSQL), for callers to keep no memory they could never check.
    virtual bool has_directory_version_at_once() const { return false; }

    // Mailboxes. A new mailbox's HIGHESTMODSEQ is 1 (RFC 7162 3.1.2.1), so its first message gets MODSEQ 2.
    virtual Result<std::vector<Mailbox>> list_mailboxes(std::int64_t account_id) = 0;
    virtual Result<Mailbox> find_mailbox(std::int64_t account_id, std::string_view name) = 0;  // INBOX any case

    // Messages.
    // Group-committed delivery: the content is stored once as a blob, one row per target with a new UID and
    // MODSEQ. `done` runs on the store's committer thread only after the blob is fsynced and the metadata
    // transaction committed; concurrent deliveries share one fsync/commit. A failed batch fails every
    // delivery in it with an error. deliver() itself never waits for the disk: it checks the delivery,
    // hashes content up to inline_blob_max on the calling thread (larger content is hashed and written by a
    // store thread) and queues it. A delivery refused before it is queued (bad argument, limit, queue full,
    // read-only store) gets its error through `done` on the calling thread; a large blob whose file cannot
    // be written gets it on a store thread.
    virtual void deliver(Delivery delivery, std::function<void(Result<Delivered>)> done) = 0;
    virtual Result<std::vector<Message>> list_messages(std::int64_t mailbox_id) = 0;  // uid order
    virtual Result<Message> find_message(std::int64_t mailbox_id, std::uint32_t uid) = 0;
    virtual Result<std::string> read_blob(std::string_view blob_id) = 0;  // verifies nothing; fast path
    // A blob (inline or in a file) opened for ranged reads, so large messages are served in slices
    // (blob.h). The default reads it whole through read_blob(): correct for any backend, bounded only by
    // the message size; backends with ranged reads override it.
    virtual Result<std::unique_ptr<BlobReader>> open_blob(std::string_view blob_id);
    // A spool for a large message arriving in pieces (IMAP APPEND), given to deliver() as Delivery::spooled
    // so the message is never held whole in memory. The default answers Errc::unavailable (the caller then
    // keeps the message in memory, as before); the embedded backend spools to a file under blobs/, PostgreSQL
    // to a nameless file in PostgresOptions::spool_dir whose mapped octets its committer sends as chunks.
    virtual Result<std::unique_ptr<BlobSpool>> open_spool();

    // ---- IMAP and JMAP operations (RFC 9051, RFC 7162 CONDSTORE/QRESYNC, RFC 4315 UIDPLUS, RFC 6851 MOVE).
    // APPEND is deliver() with one target. Every write below joins the deliveries' group commit (it waits
    // for, and shares, their fsync). store_flags, expunge, copy_messages and move_messages split many
    // messages into transactions of max_messages_per_transaction, each with its own MODSEQ, so deliveries
    // commit between them; if a later one fails, the call returns its error and the earlier ones stay
    // (a failed COPY removes the copies it made). The others are one transaction each. Writes that change
    // messages take new MODSEQs, write the change log and tell the change listener after each commit.
    // Mailbox names are UTF-8 (the IMAP layer converts modified UTF-7), '/' separates levels; the store does
    // not create or delete parents. A backend that lacks these answers Errc::unavailable (the defaults).

    virtual Result<Mailbox> create_mailbox(std::int64_t account_id, std::string_view name);  // already_exists
    // RFC 9051 6.3.6: inferiors ("from/...") follow; renaming INBOX moves its messages to a new mailbox and
    // leaves INBOX empty. Mailboxes keep their UIDVALIDITY (unique store-wide, so never reused for a name).
    virtual Result<void> rename_mailbox(std::int64_t account_id, std::string_view from, std::string_view to);
    // Deletes the mailbox and its messages (not its inferiors); INBOX cannot be deleted (permission_denied).
    virtual Result<void> delete_mailbox(std::int64_t account_id, std::string_view name);
    // Adds or removes a name (checked like a mailbox name, INBOX in any case) from the account's
    // subscriptions, whether or not a mailbox of that name exists. not_found when unsubscribing a name that
    // is not subscribed; limit_exceeded beyond max_subscriptions. RENAME moves the subscriptions of the
    // renamed mailbox and its inferiors to the new names (as Cyrus does).
    virtual Result<void> set_subscribed(std::int64_t account_id, std::string_view name, bool subscribed);

    virtual Result<FlagStoreResult> store_flags(std::int64_t mailbox_id, const std::vector<std::uint32_t>& uids,
                                                const FlagUpdate& update);
    // Removes the messages flagged \Deleted (only those among `uids` when given: UID EXPUNGE, RFC 4315).
    // Returns the expunged UIDs in ascending order.
    virtual Result<std::vector<std::uint32_t>> expunge(std::int64_t mailbox_id,
                                                       const std::vector<std::uint32_t>* uids = nullptr);
    // Copies (sharing the blobs) into another mailbox of the same account, in UID order.
    virtual Result<CopyResult> copy_messages(std::int64_t from_mailbox_id, const std::vector<std::uint32_t>& uids,
                                             std::int64_t to_mailbox_id);
    // COPY and EXPUNGE of the source messages in one transaction (RFC 6851 3.3). Into the source mailbox
    // itself, each message takes a new UID and stays the same Email (email_id kept).
    virtual Result<CopyResult> move_messages(std::int64_t from_mailbox_id, const std::vector<std::uint32_t>& uids,
                                             std::int64_t to_mailbox_id);
    // What changed after `modseq` (CONDSTORE FETCH CHANGEDSINCE, QRESYNC, JMAP changes).
    virtual Result<MailboxChanges> changes_since(std::int64_t mailbox_id, std::uint64_t modseq);
    // Envelopes kept for DSN (oldest first), and their removal once a notification has been queued.
    virtual Result<std::vector<std::pair<std::int64_t, EnvelopeRecord>>> pending_envelopes(std::size_t limit);
    virtual Result<void> delete_envelope(std::int64_t id);

    // ---- Narrow reads for large mailboxes (SELECT, STATUS, FETCH FLAGS): no summaries, no structure.
    // The uid, modseq and flags of every present message, ascending UID.
    virtual Result<std::vector<MessageState>> list_states(std::int64_t mailbox_id);
    // Kept counters (RFC 9051 6.3.11 STATUS): no scan of the messages.
    virtual Result<MailboxStatus> mailbox_status(std::int64_t mailbox_id);
    // Whole rows (summary and structure included) of the given UIDs in one call, ascending UID; UIDs that are
    // absent are skipped.
    virtual Result<std::vector<Message>> find_messages(std::int64_t mailbox_id,
                                                       const std::vector<std::uint32_t>& uids);

    // RFC 3501 2.3.1.2 \Recent, kept in the store so it survives restarts and reaches rev1 clients: the first
    // session to select the mailbox claims the messages from the mailbox's first-recent UID on. Returns that
    // UID (messages with uid >= it are \Recent for the caller) and moves the mark to UIDNEXT.
    virtual Result<std::uint32_t> claim_recent(std::int64_t mailbox_id);

    // Subscriptions belong to the client (RFC 3501 6.3.6, 6.3.9): names, not mailboxes. CREATE does not
    // subscribe and DELETE does not unsubscribe; a subscribed name may not exist. UTF-8 names, sorted.
    virtual Result<std::vector<std::string>> list_subscriptions(std::int64_t account_id);

    // ---- The outgoing queue. Entries are created by deliver() (Delivery::outgoing), in the transaction of
    // the local copies. `now` is the caller's clock (Unix seconds), so schedules are testable. Leases have an
    // owner and an expiry, so several nodes can share one store (PostgreSQL: FOR UPDATE SKIP LOCKED on the
    // same predicate). Writes join the group commit like every other write.
    // Leases up to `limit` recipients that are due (queued or deferred, next attempt <= now, entry not held)
    // and whose lease is free or expired, to `owner` until now + lease_seconds: a recipient is leased by one
    // worker at a time, and a dead worker's recipients are free again once its lease lapses. Entries come
    // grouped by message (oldest attempt first), each with only its leased recipients. invalid_argument for
    // an empty owner or a lease of no time.
    virtual Result<std::vector<QueueEntry>> lease_due(std::string_view owner, std::int64_t now,
                                                      std::int64_t lease_seconds, std::size_t limit);
    // Records the outcome of attempts on recipients leased to `owner` and frees their leases, and queues
    // `reports` (deliveries the outcomes produced: DSNs to the senders, RFC 3464) in the same transaction.
    // An outcome for a recipient the owner no longer holds (its lease lapsed and was taken, or the entry was
    // deleted) is skipped, and then no report is queued: a report about a skipped outcome would be sent
    // again by the recipient's new holder. Returns how many outcomes were recorded. invalid_argument for a
    // state of queued; the reports are checked as deliver() checks a delivery.
    virtual Result<std::size_t> record_attempts(std::string_view owner, const std::vector<AttemptOutcome>& outcomes,
                                                std::vector<Delivery> reports);
    // Frees every lease `owner` holds (a restarted node: its previous process died with them). Returns how
    // many recipients were freed.
    virtual Result<std::size_t> release_leases(std::string_view owner);
    // The earliest time a waiting recipient of an entry not held becomes due (its next attempt, or its
    // lease's expiry when later); none when nothing waits.
    virtual Result<std::optional<std::int64_t>> next_queue_due();
    // Entries oldest first with their recipients (without attempts); at most `limit`. `waiting_only`: only
    // entries with a recipient still queued or deferred.
    virtual Result<std::vector<QueueEntry>> list_queue(std::size_t limit, bool waiting_only);
    // One entry with its recipients and their attempts (the delivery tracker); not_found.
    virtual Result<QueueEntry> find_queue_entry(std::int64_t id);
    // Removes an entry with its recipients and attempts (no report is sent); its blob may become garbage.
    // not_found.
    virtual Result<void> delete_queue_entry(std::int64_t id);
    // `magpie queue hold|release`: a held entry is not leased. not_found.
    virtual Result<void> set_queue_held(std::int64_t id, bool held);
    // `magpie queue retry|flush`: makes every waiting recipient of entry `id` (of every entry when none) due
    // at `now`. Returns how many changed; not_found for an unknown id.
    virtual Result<std::size_t> retry_queue_now(std::optional<std::int64_t> id, std::int64_t now);
    // Removes entries queued before `before` whose recipients are all delivered or failed (the tracker's
    // retention). Returns how many went.
    virtual Result<std::size_t> purge_finished_queue(std::int64_t before);

    // ---- API tokens (HTTP Bearer). `token_hash` is the raw 32-byte SHA-256 of the token.
    // already_exists when the account has a token of that name; not_found for an unknown account.
    virtual Result<ApiToken> add_api_token(std::int64_t account_id, std::string_view name,
                                           std::string_view token_hash, std::int64_t created_at,
                                           std::optional<std::int64_t> expires_at);
    virtual Result<std::vector<ApiToken>> list_api_tokens(std::int64_t account_id);  // by name
    virtual Result<void> revoke_api_token(std::int64_t account_id, std::string_view name);  // not_found
    // The token with this hash, expired or not (the caller compares expires_at with its clock); not_found.
    virtual Result<ApiToken> find_api_token(std::string_view token_hash);

    // ---- JMAP (jmap_objects.h). Uploads are durable when add_upload returns; uploads older than
    // `expire_before` (Unix seconds) of the same account are removed in the same transaction (RFC 8620 6.1
    // lets unreferenced uploads go after at least an hour). limit_exceeded above max_message_bytes.
    virtual Result<UploadedBlob> add_upload(std::int64_t account_id, std::string_view content, std::string_view type,
                                            std::int64_t now, std::int64_t expire_before);
    // The bytes of a blob the account may read: its own upload, or a message in one of its mailboxes.
    // not_found for anything else, another account's blob included (ids are never guessed across accounts).
    virtual Result<std::string> read_account_blob(std::int64_t account_id, std::string_view blob_id);
    // The account's upload of that id, or not_found.
    virtual Result<UploadedBlob> find_upload(std::int64_t account_id, std::string_view blob_id);
    virtual Result<JmapObjectList> list_jmap_objects(std::int64_t account_id, std::string_view type);
    virtual Result<JmapObjectWritten> write_jmap_objects(std::int64_t account_id, std::string_view type,
                                                         const JmapObjectWrite& write);
    // RFC 8621 2 Mailbox role = RFC 6154 special-use; not_found unless the mailbox is the account's.
    virtual Result<void> set_special_use(std::int64_t account_id, std::int64_t mailbox_id, SpecialUse special_use);

    // `magpie gc`: removes blobs that no message, queue entry or kept DSN envelope references once they are
    // older than `grace_seconds` (a row by its creation, a file by its last write or reuse), and files left
    // by interrupted writes. Safe beside running writers, in this process or another: a blob being
    // delivered is fresh, and the file sweep holds writers off. invalid_argument for a grace below 60 s.
    virtual Result<GarbageReport> collect_garbage(std::int64_t now, std::int64_t grace_seconds);

    // ---- Emails and threads (see "Emails" above). Every call is scoped to `account_id`: Emails, threads and
    // mailbox ids of another account are not found (skipped in reads, not_found in writes). Writes join the
    // group commit like the IMAP writes, and advance the account state and the mailboxes' MODSEQs together.
    // The defaults answer Errc::unavailable.

    // The account's current state (JMAP state string for Email, Thread and, for now, Mailbox); not_found.
    virtual Result<std::uint64_t> account_state(std::int64_t account_id);
    // The Emails with these ids, in the order asked; ids that do not exist (or are another account's) are
    // skipped (JMAP notFound). invalid_argument beyond max_query_results ids.
    virtual Result<std::vector<Email>> find_emails(std::int64_t account_id, const std::vector<std::int64_t>& ids);
    // Email/query: filter, sort, collapse, then position/anchor and limit. not_found for an anchor that is
    // not in the result (JMAP anchorNotFound); limit_exceeded for a filter beyond max_filter_nodes. A
    // mailbox or keyword of another account in the filter simply matches nothing.
    virtual Result<EmailQueryResult> query_emails(std::int64_t account_id, const EmailQuery& query);
    // Thread/get: the threads with these ids (absent ones skipped), each with its Emails in receivedAt order.
    virtual Result<std::vector<EmailThread>> find_threads(std::int64_t account_id,
                                                          const std::vector<std::int64_t>& thread_ids);
    // Email/changes and Thread/changes since `since_state`, at most `max_changes` ids (all of one state are
    // returned together, even beyond it: a state is atomic). invalid_argument for a state above the
    // account's (JMAP cannotCalculateChanges).
    virtual Result<EmailChanges> email_changes(std::int64_t account_id, std::uint64_t since_state,
                                               std::size_t max_changes);
    virtual Result<EmailChanges> thread_changes(std::int64_t account_id, std::uint64_t since_state,
                                                std::size_t max_changes);
    // Email/set update: one result per update, in order (not_found for an unknown Email or another account's
    // mailbox, invalid_argument for a bad flag or no mailbox left, limit_exceeded for too many keywords).
    // The outer error is for the whole call (store closing, more than max_query_results updates).
    virtual Result<std::vector<Result<void>>> update_emails(std::int64_t account_id,
                                                            const std::vector<EmailUpdate>& updates);
    // Email/set destroy: removes every membership (an EXPUNGE in each mailbox) and the Email; its blob
    // becomes garbage when nothing else references it. One result per id (not_found).
    virtual Result<std::vector<Result<void>>> destroy_emails(std::int64_t account_id,
                                                             const std::vector<std::int64_t>& ids);

    // Registers the one listener told about committed mailbox changes (IMAP IDLE); replaces any previous.
    virtual void set_change_listener(ChangeListener listener) = 0;

    virtual StoreStats stats() const = 0;
};

struct SqliteOptions {
    std::filesystem::path data_dir;  // holds magpie.db and blobs/
    bool read_only = false;
    std::size_t inline_blob_max = 128 * 1024;  // larger blobs go to files of their own
    int compression_level = 1;  // zstd level of inline bodies (1..19; 0 stores them as received)
    std::size_t states_cache_messages = 100000;  // UID/MODSEQ/flags kept in memory for SELECT (0: none)
    std::size_t max_batch = 256;               // deliveries and writes per group commit
    // Frames (4 KiB pages) the write-ahead log gains between two background checkpoints; past four times this
    // the committer checkpoints itself between transactions. 100..1,000,000. Larger: fewer copies of the pages
    // every commit rewrites (a mailbox's row, the ends of its indexes), a larger log file (it keeps its largest
    // size, up to four times this) and a longer recovery after a crash.
    std::size_t checkpoint_frames = 8000;
    // How long directory_version_if_ready() reuses the number it read while nothing in this process wrote: the
    // longest a directory change by another process (the CLI) goes unseen at RCPT. A recipient accepted
    // meanwhile is still checked by its delivery's own transaction (Errc::conflict, then resolved again).
    std::chrono::milliseconds directory_version_reuse{10};
    std::size_t max_messages_per_transaction = 2000;  // one chunk of a STORE/EXPUNGE/COPY/MOVE
    std::size_t blob_writer_threads = 2;       // threads writing and fsyncing large blob files
    std::size_t max_queued = 10000;            // deliveries waiting for a commit; beyond: unavailable
    std::size_t max_message_bytes = 256 * 1024 * 1024;  // one message's content, stored or read back
    std::size_t max_targets = 1000;            // mailboxes one delivery may go to
    std::size_t max_remote_recipients = 1000;  // queued recipients of one delivery
    std::size_t max_attempt_field_bytes = 2048;  // host, address, TLS and reply of a queue attempt
    std::size_t max_transcript_bytes = 16 * 1024;  // one attempt's SMTP transcript
    std::size_t max_attempts_kept = 32;        // per recipient; older attempts are dropped
    std::size_t max_mailbox_name_bytes = 1024;  // UTF-8 octets of a mailbox name (or subscribed name)
    std::size_t max_subscriptions = 10000;      // subscribed names per account
    FlagLimits flag_limits;
    // Threads at delivery: the In-Reply-To and References ids looked up (the nearest parents first), and how
    // far back (seconds of received_at) a same-subject Email may be to share its thread.
    std::size_t max_thread_references = 64;
    std::int64_t thread_subject_window_seconds = 30 * 24 * 3600;
    std::size_t max_query_results = 10000;  // ids per query_emails answer, ids per find_emails/update call
    std::size_t max_filter_nodes = 256;     // conditions and operators in one Email/query filter
    std::size_t max_readers = 8;               // pooled read connections
    int busy_timeout_ms = 5000;                // how long a connection waits for another process's lock
};

// Opens (and when writable, creates or migrates the versioned schema of) the embedded store.
Result<std::unique_ptr<Store>> open_sqlite_store(const SqliteOptions& options);

// An upgrade from a magpie whose queue lived in <data_dir>/queue.db: imports that file's unfinished entries
// (every recipient with its state, counters and attempts; held and smtputf8; the queued time) into `store`
// with deliver(), then renames the file to queue.db.imported. Returns how many entries were imported; 0
// with nothing done when there is no queue.db. A crash after some entries committed and before the rename
// imports those again at the next start (delivered twice at worst, never lost). io_error, corrupt.
Result<std::size_t> import_queue_db(Store& store, const std::filesystem::path& data_dir);

// `magpie check`: opens the store read-only (safe beside a running magpied) and verifies it.
struct CheckReport {
    bool clean = true;
    std::vector<std::string> problems;  // one line each
    std::size_t messages = 0, blobs = 0, garbage_blobs = 0;
    std::size_t emails = 0;  // Emails (a message in several mailboxes of an account counts once)
    std::string summary;  // one line
};
Result<CheckReport> check_store(const std::filesystem::path& data_dir);

}  // namespace magpie::store
