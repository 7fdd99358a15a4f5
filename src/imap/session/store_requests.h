// The store work an imap::Session asks for (issue 11): one typed request per operation a command needs, each
// answered in one call (one round trip for a remote store), never one call per message. The session emits a
// request and returns holding no thread; the IO loop runs perform() on the store's executor (a Deliver goes
// to the store's group committer instead, Store::deliver) and hands the typed answer back with
// Session::answer(). The same shape as smtp::ServerSession's events. No Boost.Asio here: unit tests answer
// requests by calling perform() themselves.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <variant>
#include <vector>

#include "auth/password.h"
#include "auth/sasl.h"
#include "auth/throttle.h"
#include "auth/verified_cache.h"
#include "base/result.h"
#include "imap/command.h"
#include "imap/session/literal_stream.h"
#include "store/store.h"

namespace magpie::imap {

// The rows SEARCH's keys on the stored row read (RFC 9051 6.4.4 FROM, TO, CC, SUBJECT, the dates, sizes,
// EMAILID, THREADID), kept per mailbox across SEARCHes (issue 17): those fields never change for a mailbox's
// UID (UIDs are never reused; a mailbox is known by its id and its store-wide unique UIDVALIDITY), so a SEARCH
// over 10,000 messages reads from the store only the rows of UIDs above those it already holds, not the whole
// mailbox each time. Rows keep only those fields (no blob id, structure or threading headers). At most
// `max_messages` rows over all mailboxes ([imap] search_cache_messages): the least recently searched
// mailboxes go first, and a mailbox larger than the bound is read whole each time, as without the cache.
// Thread-safe: the store threads share it.
class SearchRowCache {
public:
    using Rows = std::vector<store::Message>;  // ascending UID
    explicit SearchRowCache(std::size_t max_messages) : max_messages_(max_messages) {}
    // The rows of `mailbox_id` up to `largest_uid` (the view's largest UID), reading what is missing.
    Result<std::shared_ptr<const Rows>> rows(store::Store& store, std::int64_t mailbox_id, std::uint32_t uidvalidity,
                                             std::uint32_t largest_uid);
    std::size_t cached_messages() const;

private:
    struct Entry {
        std::uint32_t uidvalidity = 0;
        std::uint32_t covered = 0;  // every UID up to here was read (present then, or gone)
        std::shared_ptr<const Rows> rows;
        std::uint64_t used = 0;
    };
    void keep(std::int64_t mailbox_id, Entry entry);  // under mutex_

    std::size_t max_messages_;
    mutable std::mutex mutex_;
    std::unordered_map<std::int64_t, Entry> entries_;
    std::size_t total_ = 0;
    std::uint64_t clock_ = 0;
};

// What requests are performed with (perform()), shared by all sessions of the process; each member is
// thread-safe. The IO loop holds it; a Session never does, so it cannot call the store itself.
struct SessionServices {
    store::Store& store;
    auth::HashLimiter& hash_limiter;
    auth::LoginThrottle& throttle;
    auth::VerifiedCache* verified_cache = nullptr;  // recently verified passwords; nullptr: always argon2id
    std::shared_ptr<SearchRowCache> search_rows = nullptr;  // nullptr: SEARCH reads the whole mailbox each time
};

namespace request {

// LOGIN (RFC 9051 6.2.3): the password checked (argon2id on the hash pool, failures counted by the
// throttle, auth::authenticate_plain). Runs on the login pool (runs_on_login_pool()).
struct Login {
    std::string user;
    std::string password;
    std::string client_ip;
    std::int64_t now = 0;
    using Answer = store::Account;
};

// AUTHENTICATE (RFC 9051 6.2.2): the SASL exchange from an outcome that needs the store or the hash pool
// (a password to verify, SCRAM keys) to the next challenge or its end; at the end the throttle counts it
// (auth::record_sasl_result) and a success names the account. Runs on the login pool. `sasl` is the
// session's exchange, used here only while the session waits for the answer.
struct SaslStep {
    std::shared_ptr<auth::SaslServer> sasl;
    auth::SaslOutcome outcome;
    std::string client_ip;
    std::int64_t now = 0;
    struct Answer {
        auth::SaslOutcome outcome;             // a challenge, success or failure
        std::optional<store::Account> account;  // on success, when the account still exists
    };
};

// The selected mailbox's changes since the view's MODSEQ (EXPUNGE/VANISHED, EXISTS, flag FETCHes), and the
// \Recent claim (RFC 3501 2.3.1.2) when new messages above `claim_above` came and `claim` is set.
struct Refresh {
    std::int64_t mailbox_id = 0;
    std::uint64_t since = 0;
    std::uint32_t claim_above = 0;  // the largest UID the view knows
    bool claim = false;             // read-write views claim new mail's \Recent
    struct Answer {
        store::MailboxChanges changes;
        std::optional<std::uint32_t> recent_from;  // when claimed: UIDs at or above it are \Recent here
    };
};

// SELECT / EXAMINE: the mailbox, its narrow listing (uid, modseq, flags), the \Recent claim (SELECT) or
// count (EXAMINE), and for QRESYNC the changes since the client's MODSEQ.
struct OpenMailbox {
    std::int64_t account_id = 0;
    std::string name;  // canonical (INBOX upper-case), UTF-8
    bool read_only = false;
    std::optional<std::uint64_t> changes_since;
    struct Answer {
        store::Mailbox mailbox;
        std::vector<store::MessageState> states;
        std::optional<std::uint32_t> recent_from;  // SELECT, when the claim succeeded
        std::uint32_t recent = 0;                  // EXAMINE: the store's recent counter
        std::optional<store::MailboxChanges> changes;
    };
};

// STATUS: the mailbox and its kept counters.
struct MailboxStatus {
    std::int64_t account_id = 0;
    std::string name;
    struct Answer {
        store::Mailbox mailbox;
        store::MailboxStatus status;
    };
};

// LIST (and LIST-STATUS, RFC 5819): the account's mailboxes, its subscriptions and the counters of each
// mailbox when asked.
struct ListMailboxes {
    std::int64_t account_id = 0;
    bool subscriptions = false;
    bool statuses = false;
    struct Answer {
        std::vector<store::Mailbox> mailboxes;
        std::vector<std::string> subscriptions;
        std::vector<std::optional<store::MailboxStatus>> statuses;  // per mailbox when asked; none = unreadable
    };
};

// LSUB: the subscribed names.
struct ListSubscriptions {
    std::int64_t account_id = 0;
    using Answer = std::vector<std::string>;
};

// CREATE (RFC 9051 6.3.4): already_exists when the name exists; its missing superiors are created first.
struct CreateMailbox {
    std::int64_t account_id = 0;
    std::string name;
    using Answer = store::Mailbox;
};

// RENAME (RFC 9051 6.3.6): already_exists when the target exists; its missing superiors are created first.
struct RenameMailbox {
    std::int64_t account_id = 0;
    std::string from, to;
    struct Answer {};
};

struct DeleteMailbox {
    std::int64_t account_id = 0;
    std::string name;
    struct Answer {};
};

struct SetSubscribed {
    std::int64_t account_id = 0;
    std::string name;
    bool subscribed = true;
    struct Answer {};
};

// APPEND's target and the quota (GETQUOTA, GETQUOTAROOT): the named mailbox (none asked: empty `name`) and,
// when `usage` is set, the octets of every mailbox of the account (RFC 9208 STORAGE).
struct MailboxUsage {
    std::int64_t account_id = 0;
    std::optional<std::string> name;
    bool usage = false;
    struct Answer {
        std::optional<store::Mailbox> mailbox;
        std::uint64_t used_octets = 0;
    };
};

// APPEND's commit: durable when answered. The IO loop hands it to Store::deliver (the group committer), so
// no store thread waits for the fsync.
struct Deliver {
    store::Delivery delivery;
    using Answer = store::Delivered;
};

// CLOSE and EXPUNGE: removes the messages flagged \Deleted (RFC 9051 6.4.1, 6.4.3), only those among
// `uids` when given (UID EXPUNGE, RFC 4315). Answers the expunged UIDs, ascending.
struct Expunge {
    std::int64_t mailbox_id = 0;
    std::optional<std::vector<std::uint32_t>> uids;
    using Answer = std::vector<std::uint32_t>;
};

// STORE (RFC 9051 6.4.6, RFC 7162 UNCHANGEDSINCE) on a UID set in one call.
struct StoreFlags {
    std::int64_t mailbox_id = 0;
    std::vector<std::uint32_t> uids;
    store::FlagUpdate update;
    using Answer = store::FlagStoreResult;
};

// COPY / MOVE (RFC 6851) of a UID set into the named mailbox of the account: not_found when it does not
// exist. With `quota_kib` (RFC 9208 5.1, COPY only) nothing is copied when the account's usage plus the
// messages' sizes would exceed it.
struct CopyMessages {
    std::int64_t account_id = 0;
    std::int64_t mailbox_id = 0;
    std::vector<std::uint32_t> uids;  // ascending
    std::string target;
    bool move = false;
    std::uint64_t quota_kib = 0;  // 0 = no quota
    struct Answer {
        bool over_quota = false;
        store::CopyResult copied;
    };
};

// SEARCH with keys the view cannot answer (dates, sizes, summary fields, HEADER, BODY, TEXT: RFC 9051
// 6.4.4): evaluated where the rows and blobs are, over this snapshot of the session's view, in one call.
struct SearchMessages {
    struct Known {  // one message of the view, in sequence order
        std::uint32_t uid = 0;
        std::uint64_t modseq = 0;
        std::vector<std::string> flags;
        bool recent = false;
    };
    std::int64_t mailbox_id = 0;
    std::uint32_t uidvalidity = 0;  // with mailbox_id, the SearchRowCache's key
    SearchKey criteria;
    std::vector<Known> messages;
    std::vector<std::uint32_t> saved_uids;  // RFC 5182 "$"
    std::size_t max_blob_reads = 0;         // SessionConfig::max_search_blob_reads
    struct Answer {
        std::vector<std::size_t> matched;  // indexes into messages, ascending
        bool failed = false;               // a blob could not be read, or max_blob_reads was reached
    };
};

// FETCH (RFC 9051 6.4.5) of items beyond UID, FLAGS and MODSEQ (the view answers those alone, asking
// nothing): the whole rows (summary, structure, blob id, Email and thread ids) of a batch of UIDs in one
// call, ascending; a UID expunged meanwhile has no row.
struct FetchRows {
    std::int64_t mailbox_id = 0;
    std::vector<std::uint32_t> uids;  // ascending
    using Answer = std::vector<store::Message>;
};

// FETCH of messages small enough to hold (at most max_output_octets_per_run each): their whole blobs in one
// call, one result per id in order, so a blob that cannot be read fails its own message only. The session
// bounds a batch's octets by max_output_octets_per_run (the first blob always goes).
struct ReadBlobs {
    std::vector<std::string> blob_ids;
    using Answer = std::vector<Result<std::string>>;
};

// FETCH of a large message (fetch_stream.cpp): a reader of its blob, which the ReadBlobRange and
// MeasureBinary requests read on the store's executor (never the session).
struct OpenBlob {
    std::string blob_id;
    using Answer = std::shared_ptr<store::BlobReader>;
};

// The octets [offset, offset + length) of an open blob, clipped to its end (BlobReader::read): the header a
// HEADER.FIELDS section scans, or the next slice of a streamed literal (LiteralStream::wanted()).
struct ReadBlobRange {
    std::shared_ptr<store::BlobReader> reader;
    std::uint64_t offset = 0;
    std::size_t length = 0;
    using Answer = std::string;
};

// BINARY[...] of a large message: LiteralStream::measure's pass (decoded size, NUL in the window sent) over
// an open blob, read slice_octets at a time.
struct MeasureBinary {
    std::shared_ptr<store::BlobReader> reader;
    std::vector<mail::ByteRange> ranges;
    mail::TransferEncoding encoding = mail::TransferEncoding::binary;
    std::uint64_t skip = 0;
    std::uint64_t length = 0;
    std::size_t slice_octets = 0;
    using Answer = LiteralStream::Measure;
};

}  // namespace request

using StoreRequest =
    std::variant<request::Login, request::SaslStep, request::Refresh, request::OpenMailbox, request::MailboxStatus, request::ListMailboxes,
                 request::ListSubscriptions, request::CreateMailbox, request::RenameMailbox, request::DeleteMailbox,
                 request::SetSubscribed, request::MailboxUsage, request::Deliver, request::Expunge,
                 request::StoreFlags, request::CopyMessages, request::SearchMessages, request::FetchRows,
                 request::ReadBlobs, request::OpenBlob, request::ReadBlobRange, request::MeasureBinary>;

namespace request {
template <class V>
struct AnswersOf;
template <class... R>
struct AnswersOf<std::variant<R...>> {
    using type = std::variant<Result<typename R::Answer>...>;
};

template <class T, class V>
struct IndexOf;
template <class T, class... R>
struct IndexOf<T, std::variant<R...>> {
    static constexpr std::size_t value = [] {
        constexpr bool same[] = {std::is_same_v<T, R>...};
        std::size_t i = 0;
        while (!same[i]) ++i;
        return i;
    }();
};
}  // namespace request

// One answer per request, at the request's own index (answers may share a type).
using StoreAnswer = request::AnswersOf<StoreRequest>::type;
template <class R>
inline constexpr std::size_t kRequestIndex = request::IndexOf<R, StoreRequest>::value;

// Runs a request against the store on the calling thread (a store thread; the login pool for Login and
// SaslStep): blocking. A Deliver waits here for the group commit; the IO loop gives it to the committer
// instead and answers with its result.
StoreAnswer perform(SessionServices& services, StoreRequest request);

// Password checks (argon2id): the IO loop runs them on the login pool, so unauthenticated clients compete
// only with each other, never with mail delivery.
inline bool runs_on_login_pool(const StoreRequest& request) {
    return std::holds_alternative<request::Login>(request) || std::holds_alternative<request::SaslStep>(request);
}

// Writes that wait for the store's group commit (its fsync) on the thread that runs them: the IO loop runs them
// on a pool of their own ([imap] write_threads), so reads (FETCH, SEARCH, the view's Refresh) never queue
// behind a commit (issue 17). SELECT/EXAMINE count: the first SELECT claims \Recent, a write.
inline bool waits_for_commit(const StoreRequest& request) {
    return std::holds_alternative<request::StoreFlags>(request) || std::holds_alternative<request::Expunge>(request) ||
           std::holds_alternative<request::CopyMessages>(request) ||
           std::holds_alternative<request::CreateMailbox>(request) ||
           std::holds_alternative<request::RenameMailbox>(request) ||
           std::holds_alternative<request::DeleteMailbox>(request) ||
           std::holds_alternative<request::SetSubscribed>(request) ||
           std::holds_alternative<request::OpenMailbox>(request);
}

// SEARCH's evaluation (search.cpp): `store` is read only for keys that need rows or blobs; keys the view
// answers alone (flags, numbers, MODSEQs) need none (nullptr).
// `cache`, when given, serves the rows of keys on the stored row (not the blob keys, which need whole rows).
Result<request::SearchMessages::Answer> search_messages(store::Store* store, const request::SearchMessages& search,
                                                        SearchRowCache* cache = nullptr);

// The answer for a Deliver from the committer's result.
inline StoreAnswer delivered_answer(Result<store::Delivered> result) {
    return StoreAnswer(std::in_place_index<kRequestIndex<request::Deliver>>, std::move(result));
}

}  // namespace magpie::imap
