// imap::Session: one IMAP server connection's state machine over the store (RFC 9051, RFC 3501 for
// older clients, and the extensions listed in README.md). Sans-IO like the parser: the IO loop feeds
// bytes and takes output; run() executes parsed commands. A command that needs the store asks for it with a
// typed request (store_requests.h) and waits, holding no thread, until the IO loop answers it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "auth/password.h"
#include "auth/sasl.h"
#include "auth/throttle.h"
#include "auth/verified_cache.h"
#include "imap/command.h"
#include "imap/parser.h"
#include "imap/session/literal_stream.h"
#include "imap/session/store_requests.h"
#include "imap/writer.h"
#include "store/store.h"

namespace magpie::imap {

// What one connection offers and how far it may go: from the configuration and the listener (TLS).
struct SessionConfig {
    std::string hostname;
    bool tls_active = false;             // implicit TLS port, or after STARTTLS
    bool starttls_available = false;     // a certificate is configured
    bool allow_plaintext_login = false;  // LOGINDISABLED / no AUTH=PLAIN before TLS unless true
    Limits limits;                       // the parser's limits; APPENDLIMIT = max_literal_octets
    // RFC 9208 STORAGE limit of the account's one quota root ""; 0 = no quota root at all.
    std::uint64_t quota_storage_kib = 0;
    // Unprocessed input (parsed commands waiting plus buffered bytes) above which wants_input() is false.
    std::size_t max_pending_input_octets = 256 * 1024;
    // Output one run() writes before it yields with a FETCH unfinished (FETCH 1:* BODY[] of a big
    // mailbox is written a slice at a time, never held whole). A message larger than this is never read
    // whole for BODY[...] / BINARY[...]: its literals are read from the blob and written in slices of
    // this size (config [imap] output_slice_octets).
    std::size_t max_output_octets_per_run = 256 * 1024;
    // Messages one SEARCH may read blobs of (HEADER, BODY, TEXT, BCC keys); past it the SEARCH fails NO
    // [LIMIT].
    std::size_t max_search_blob_reads = 100000;
    // APPEND literals of at least this many octets are written to a store spool (a file in the data
    // directory) as they arrive instead of being held in memory; the store makes the file the blob.
    std::size_t spool_append_octets = 256 * 1024;
};

// Opens a store spool for a large APPEND literal (Store::open_spool: a file, no store round trip); empty,
// or failing, keeps literals in memory. The one store facility a session uses itself, from feed().
using SpoolOpener = std::function<Result<std::unique_ptr<store::BlobSpool>>()>;

class Session {
public:
    enum class State { not_authenticated, authenticated, selected, logout };
    enum class Action { none, start_tls, close };

    // The session gets no store and no auth services: everything it needs from them is a request.
    Session(SessionConfig config, std::string peer_ip, SpoolOpener open_spool = {});
    Session(const Session&) = delete;  // the parser's spool factory points at this session
    Session& operator=(const Session&) = delete;

    // Cheap, no store access: runs on the network thread.
    void feed(std::string_view bytes);  // continuation requests ("+ ...") go straight to output
    std::string take_output();          // the greeting first
    // A parsed command (or SASL response / DONE) waits for run(), or a FETCH has more slices to write.
    bool has_work() const;

    // Runs what has_work() says is waiting, up to the next store request (take_request) or the end of the
    // input (or, for a FETCH, of max_output_octets_per_run of output). It only parses and formats: the
    // network thread runs it. Never concurrently with feed()/take_output().
    void run(std::int64_t now);
    // The store work the session waits for, once; then answer() with perform()'s (or the committer's) result
    // (on the login pool when runs_on_login_pool()).
    std::optional<StoreRequest> take_request();
    bool waiting() const { return static_cast<bool>(then_); }
    // Resumes the command that asked (formatting only, no store access).
    void answer(StoreAnswer answer, std::int64_t now);
    // A change of one of the account's mailboxes was committed: while idling the untagged updates are
    // written next (a Refresh request); otherwise they go out at the next command that may carry them.
    void mailbox_changed(std::int64_t now);

    Action take_action();  // start_tls: write the output, handshake, then call tls_started()
    void tls_started();
    std::optional<std::int64_t> account_id() const;
    bool idling() const { return idle_tag_.has_value(); }
    void idle_timeout();  // "* BYE Autologout; idle for too long", then Action::close
    // While idling: "* OK Still here" (the IO loop calls it every idle_keepalive_interval of silence), so
    // NATs keep the connection; outside IDLE it writes nothing.
    void idle_keepalive();
    void shutting_down();  // "* BYE Server shutting down", then Action::close
    bool wants_input() const;

    State state() const { return state_; }

private:
    // A message as this connection knows it: its position in messages_ is its sequence number - 1.
    struct ViewMessage {
        std::uint32_t uid = 0;
        std::uint64_t modseq = 0;
        std::vector<std::string> flags;
        bool recent = false;
    };
    struct View {
        store::Mailbox mailbox;
        bool read_only = false;
        std::vector<ViewMessage> messages;         // ascending UID
        std::uint64_t highest_modseq = 0;          // changes up to here are reflected in messages
        std::vector<std::string> announced_flags;  // the last FLAGS response sent (system flags first)
    };

    // A FETCH being written a slice at a time (see max_output_octets_per_run). What it needs from the store
    // comes by requests (rows by batch, small blobs by batch, large blobs through a reader): a message
    // whose data is not here yet asks for it, and is written again from its start once answered.
    struct FetchProgress {
        std::string tag;
        bool uid = false;
        std::vector<FetchItem> items;
        std::vector<std::size_t> indexes;  // into view_->messages, which no other command changes meanwhile
        std::size_t next = 0;
        bool need_rows = false;
        std::vector<store::Message> rows;  // ascending UID: those of indexes[.. rows_end) still present
        std::size_t rows_end = 0;
        std::vector<bool> seen_now;  // per view index: \Seen set by this FETCH
        std::map<std::uint32_t, Result<std::string>> blobs;  // by UID: whole blobs of messages from next on
        // The current message's blob when it streams (fetch_stream.cpp), and per item index what its
        // literal needs read first: the header HEADER.FIELDS scans, BINARY's measuring pass.
        std::optional<Result<std::shared_ptr<store::BlobReader>>> reader;
        std::map<std::size_t, Result<std::string>> windows;
        std::map<std::size_t, Result<LiteralStream::Measure>> measures;
        // The current message's response still to write, when it streams literals from its blob: text
        // and streamed literals in order (fetch_stream.cpp).
        std::deque<std::variant<std::string, LiteralStream>> pieces;
        bool unknown_cte = false;
        bool expunged = false;  // a message expunged by another session (RFC 5530 EXPUNGEISSUED)
        bool failed = false;    // a message whose content could not be read
    };

    // Parser events and the command dispatch (session.cpp).
    void pump();
    void execute(Command& command);
    void on_parse_error(const ParseError& error);
    void on_sasl_response(const SaslResponse& response);
    void on_idle_done();
    // Drives a SASL exchange until it needs the client (a challenge) or ends (a SaslStep request when it
    // needs a password checked, SCRAM keys, or its end counted).
    void sasl_outcome(auth::SaslOutcome outcome);
    void sasl_finished(const auth::SaslOutcome& outcome, const std::optional<store::Account>& account);
    // Untagged updates (when the command allows them: a Refresh request), then the tagged reply.
    void finish_command(bool allow_updates);
    // Emits `request`; `then` runs with its answer (no store access in it; it may ask again).
    template <class R>
    void ask(R request, std::function<void(Result<typename R::Answer>)> then) {
        request_.emplace(std::in_place_index<kRequestIndex<R>>, std::move(request));
        then_ = [then = std::move(then)](StoreAnswer& answer) {
            then(std::move(std::get<kRequestIndex<R>>(answer)));
        };
    }

    void on_capability(const std::string& tag);
    void on_noop(const std::string& tag);
    void on_logout(const std::string& tag);
    void on_starttls(const std::string& tag);
    void on_authenticate(const std::string& tag, const Authenticate& command);
    void on_login(const std::string& tag, const Login& command);
    void on_enable(const std::string& tag, const Enable& command);
    void on_id(const std::string& tag, const Id& command);
    void on_namespace(const std::string& tag);
    void on_idle(const std::string& tag);
    // undecodable_name: the command's name does not decode (Command::undecodable_mailbox).
    void on_select(const std::string& tag, const Select& command,
                   const std::optional<std::string>& undecodable_name);
    void on_close(const std::string& tag, bool expunge);

    // Mailbox management (mailboxes.cpp).
    void on_create(const std::string& tag, const Create& command);
    void on_delete(const std::string& tag, const Delete& command);
    void on_rename(const std::string& tag, const Rename& command);
    void on_subscribe(const std::string& tag, const std::string& mailbox, bool subscribe);
    void on_list(const std::string& tag, const List& command);
    void on_lsub(const std::string& tag, const Lsub& command);
    void on_status(const std::string& tag, const Status& command);
    void on_append(const std::string& tag, Append& command);  // takes the message
    void on_get_quota(const std::string& tag, const GetQuota& command);
    void on_get_quota_root(const std::string& tag, const GetQuotaRoot& command);
    // RFC 9208 5.1: false when `extra_octets` more would exceed the account's STORAGE limit.
    // A spooled literal8 with its binary parts made base64 and bare LFs CRLF, into a new spool (APPEND).
    Result<std::unique_ptr<store::BlobSpool>> reencode_spooled(store::BlobSpool& literal8);
    bool quota_allows(std::uint64_t used_octets, std::uint64_t extra_octets) const;
    void write_status(const store::Mailbox& mailbox, const store::MailboxStatus& status,
                      const std::vector<StatusItem>& items);
    void write_list(const std::string& tag, const List& command, request::ListMailboxes::Answer& listed);
    void write_lsub(const std::string& tag, const Lsub& command, const std::vector<std::string>& subscriptions);
    void append_to(const std::string& tag, Append& command, const store::Mailbox& mailbox,
                   std::uint64_t used_octets);
    void write_quota(const std::string& tag, std::uint64_t used_octets, std::string_view completed);
    void on_selected(const std::string& tag, const Select& command, request::OpenMailbox::Answer& opened);

    // Messages of the selected mailbox (messages.cpp).
    void on_fetch(const std::string& tag, const Fetch& command);
    // The \Seen and VANISHED steps of on_fetch, each a request when it has anything to ask.
    void fetch_vanished(const Fetch& command);
    void fetch_mark_seen();
    void continue_fetch();  // writes the next slice of fetch_; the tagged reply when done
    void resume_fetch();    // continue_fetch(), then the command's end (its updates) when it is done
    // Writes the FETCH response of fetch_'s current message; `waiting` when it asked the store for data
    // first (nothing of it is written then).
    enum class StreamOutcome { ok, failed, unknown_cte, waiting };
    StreamOutcome write_fetch_message(std::size_t index, const store::Message* row, bool& flags_written,
                                      ResponseWriter& w);
    void ask_fetch_rows();                    // FetchRows for the next batch of fetch_'s messages
    void ask_fetch_blobs();                   // ReadBlobs from the current message on, bounded by octets
    const store::Message* fetch_row(std::uint32_t uid) const;
    // Large messages (fetch_stream.cpp): literals queued as LiteralStreams on fetch_->pieces.
    StreamOutcome stream_reader(const store::Message& row);  // fetch_->reader, opened by an OpenBlob request
    void queue_literal(ResponseWriter& w, std::string_view name, LiteralStream::Source source);
    StreamOutcome stream_section(ResponseWriter& w, std::size_t item_index, const FetchItem& item,
                                 const mail::SectionSpec& spec, std::span<const mail::Part> parts,
                                 const store::Message& row);
    StreamOutcome stream_binary(ResponseWriter& w, std::size_t item_index, const FetchItem& item,
                                std::span<const mail::Part> parts, const store::Message& row);
    // Writes fetch_->pieces up to the output budget (fetch_output_full()); false when the budget ran out
    // first, a literal asked for blob octets (a ReadBlobRange request), or a blob could not be read (then
    // fetch_ is gone and the connection closes).
    bool write_pieces();
    void fail_stream();  // a literal announced cannot be finished: the connection ends
    // The output written since the last run() or take_output() reached max_output_octets_per_run.
    bool fetch_output_full() const { return output_.size() - output_mark_ >= config_.max_output_octets_per_run; }
    void on_store(const std::string& tag, const Store& command);
    void write_stored(const std::string& tag, const Store& command, const std::vector<std::size_t>& indexes,
                      const store::FlagStoreResult& result);
    void write_copied(const std::string& tag, bool move, const store::CopyResult& copied);
    void on_copy(const std::string& tag, const SequenceSet& set, bool uid, const std::string& mailbox,
                 bool move);
    void on_expunge(const std::string& tag, const Expunge& command);
    void on_search(const std::string& tag, const Search& command);                  // search.cpp
    void write_search(const std::string& tag, const Search& command,
                      const Result<request::SearchMessages::Answer>& found);

    // The selected view.
    // Indexes into view_->messages named by a set; nullopt (after a BAD reply) when a number is invalid.
    std::optional<std::vector<std::size_t>> resolve_set(const std::string& tag, const SequenceSet& set,
                                                        bool uid);
    std::optional<std::size_t> index_of_uid(std::uint32_t uid) const;
    // Sends EXPUNGE/VANISHED, EXISTS (RECENT) and flag FETCH updates from the store's change log (a Refresh
    // request; `then` runs after the updates are written).
    void refresh_view(std::function<void()> then);
    void apply_changes(const Result<request::Refresh::Answer>& refreshed);
    void enter_idle(const std::string& tag);
    void write_expunged(const std::vector<std::uint32_t>& uids);
    void write_flags_update(std::size_t index, bool with_uid);
    // Sends FLAGS and PERMANENTFLAGS again when `flags` holds a keyword not announced yet (RFC 3501 7.2.6).
    void announce_keywords(const std::vector<std::string>& flags);
    void write_permanent_flags();  // "* OK [PERMANENTFLAGS (...)]" from announced_flags
    std::vector<std::string> flags_for_client(const ViewMessage& message) const;
    // Flags the mailbox shows in FLAGS: the system flags and the keywords in use.
    std::vector<std::string> mailbox_flags() const;

    // Output helpers.
    ResponseWriter writer() const { return ResponseWriter(utf8_); }
    void emit(ResponseWriter& writer) { output_ += writer.take(); }
    void reply(const std::string& tag, StatusKind kind, std::string_view code, std::string_view text);
    void reply_store_error(const std::string& tag, const Error& error);
    std::string capabilities() const;
    bool login_allowed() const { return config_.tls_active || config_.allow_plaintext_login; }
    void authenticated(const store::Account& account, const std::string& tag);
    bool condstore_on() const { return condstore_ || qresync_; }
    // Turns CONDSTORE on (RFC 7162 3.1); the first time, with a mailbox selected, says HIGHESTMODSEQ.
    void enable_condstore();

    SessionConfig config_;
    std::string peer_ip_;
    SpoolOpener open_spool_;
    std::int64_t now_ = 0;

    Parser parser_;
    std::deque<Event> pending_;  // parsed, waiting for run(); at most one command (see pump())
    std::string output_;
    std::size_t output_mark_ = 0;  // output_'s size at the last run() (0 after take_output())
    std::string tagged_;  // the tagged reply of the command being run, written after its untagged updates
    State state_ = State::not_authenticated;
    Action action_ = Action::none;

    std::optional<store::Account> account_;
    bool rev2_ = false;       // ENABLE IMAP4rev2
    bool utf8_ = false;       // mailbox names in UTF-8 (IMAP4rev2)
    bool condstore_ = false;  // RFC 7162 3.1: enabled by ENABLE, SELECT (CONDSTORE) or a CONDSTORE command
    bool qresync_ = false;

    std::optional<View> view_;
    std::vector<std::uint32_t> saved_uids_;  // RFC 5182 SEARCHRES "$"

    std::optional<FetchProgress> fetch_;
    std::optional<std::string> idle_tag_;
    std::optional<StoreRequest> request_;                  // emitted, not taken yet
    std::function<void(StoreAnswer&)> then_;               // the asking command's continuation
    std::optional<bool> finish_after_;                     // finish_command(allow_updates) once then_ is done
    std::shared_ptr<auth::SaslServer> sasl_;  // lent to SaslStep requests while the session waits
    std::string sasl_tag_;
};

}  // namespace magpie::imap
