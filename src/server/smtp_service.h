// The SMTP server's IO side (port 25, and submission on 587/465): a coroutine per connection that pumps bytes
// between the socket and a sans-IO smtp::ServerSession, answers its events (is this recipient local? store
// this message; start TLS; check this login) with the store, the queue and the TLS context, and says goodbye
// on idle timeout or shutdown.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>

#include "auth/sasl.h"
#include "auth/throttle.h"
#include "auth/verified_cache.h"
#include "mailauth/dkim_signer.h"
#include "net/connection.h"
#include "server/config.h"
#include "server/inbound_auth.h"
#include "server/recipient_cache.h"
#include "server/store_executor.h"
#include "smtp/server_session.h"
#include "store/store.h"

namespace magpie::server {

// Who is local, for RCPT TO: an account, else an alias, else the domain's catch-all (the store's rule), with
// the postmaster that RFC 5321 4.5.1 says always exists:
// - postmaster@D (any case) for a local domain D: an account or alias of that exact name first, then the
//   configured [smtp] postmaster account, then D's catch-all, then D's oldest account; unknown only when D
//   has no account at all.
// - a bare "Postmaster": postmaster@ the local domain the host name belongs to (mx.example.org ->
//   example.org, or the host name itself); failing that the configured account, then the first local
//   domain (by name) where postmaster@ resolves.
struct RecipientPolicy {
    std::string hostname;
    std::string postmaster;  // "" when not configured, or when it names no account
};
Result<store::RecipientResult> resolve_recipient(store::Store& store, const RecipientPolicy& policy,
                                                 std::string_view address);

// What submission (RFC 6409) adds to a service: logins (shared with IMAP: the same throttle, hash limiter and
// cache; SASL work on the login pool so that argon2id never runs on a network thread), the DKIM keys that sign
// what leaves, and a wake-up for the outgoing queue (which lives in the store: Delivery::outgoing).
struct SubmissionServices {
    auth::HashLimiter& hash_limiter;
    auth::LoginThrottle& throttle;
    auth::VerifiedCache* verified_cache;
    StoreExecutor& login_executor;
    std::function<std::shared_ptr<const mailauth::DkimSigner>()> dkim_signer;  // the keys now (SIGHUP reloads)
    std::function<void()> queue_changed;  // something was queued: wake the delivery service (any thread)
};

class SmtpService {
public:
    // Port 25 without `submission`; the submission ports with it (AUTH required, see smtp::ServerConfig).
    SmtpService(std::shared_ptr<const Config> config, store::Store& store, StoreExecutor& executor,
                std::optional<SubmissionServices> submission = std::nullopt)
        : config_(std::move(config)),
          store_(store),
          executor_(executor),
          submission_(std::move(submission)),
          remembers_recipients_(!submission_ && store.has_directory_version_at_once()),
          recipients_(recipient_cache_options(*config_)) {}

    // Port 25: authenticate every received message (SPF, DKIM, DMARC; [mailauth]) on `executor`, a pool
    // of its own because evaluations block on DNS. Without it messages are stored as received.
    void set_inbound_authentication(const InboundAuthenticator& authenticator, StoreExecutor& executor) {
        inbound_ = &authenticator;
        inbound_executor_ = &executor;
    }

    // Port 25: answer for recipients whose VacationResponse is on (RFC 8621 8, RFC 3834), signed with the
    // keys now and queued with a null reverse path; `queue_changed` wakes the delivery service (any thread).
    void set_auto_replies(std::function<std::shared_ptr<const mailauth::DkimSigner>()> dkim_signer,
                          std::function<void()> queue_changed) {
        auto_reply_signer_ = std::move(dkim_signer);
        auto_reply_queued_ = std::move(queue_changed);
    }

    // SIGHUP: later connections use the new limits; what RCPT remembered is forgotten (the postmaster and host
    // name it was resolved with may have changed).
    void reconfigure(std::shared_ptr<const Config> config) {
        recipients_.reset(recipient_cache_options(*config));
        std::atomic_store(&config_, std::move(config));
    }

    awaitable<void> serve(std::shared_ptr<net::Connection> connection);

private:
    // What RCPT learned of a recipient: a local one's account and that account's INBOX (and, on submission,
    // that a recipient is remote), reused when the transaction's message is stored, so that a message costs
    // one lookup per recipient, not two (issue 17). By address as the client gave it; one connection's,
    // emptied after each message.
    // Port 25 also notes whether the account had a VacationResponse on: a message for accounts none of which
    // had one goes without looking for replies to send (a thread hop, a store read and a parse of the message
    // before its 250). Port 25 keeps local recipients' memos across connections too (recipients_); the
    // delivery names the directory version they were resolved at, and a change since (a VacationResponse
    // turned on, an alias pointed elsewhere) makes the message's recipients be resolved again before it is
    // stored.
    using RcptMemo = RecipientMemo;
    using RcptMemos = std::map<std::string, RcptMemo, std::less<>>;

    static RecipientCacheOptions recipient_cache_options(const Config& config) {
        return RecipientCacheOptions{config.smtp.recipient_cache_seconds, config.smtp.recipient_cache_entries};
    }

    awaitable<smtp::RcptVerdict> check_recipient(const std::string& address, RcptMemos& memos);
    // After a message from `reverse_path` is stored for `recipients`: the vacation replies it earns, queued.
    // Failures are logged: the message itself is already delivered.
    awaitable<void> send_auto_replies(std::string_view message, const std::string& reverse_path,
                                      std::vector<std::pair<store::RecipientResult, std::string>> recipients,
                                      const Config& config);
    awaitable<Result<std::string>> store_message(const smtp::MessageReceived& message,
                                                 const net::Connection& connection, const Config& config,
                                                 const RcptMemos& memos);

    // Submission: one step of the SASL exchange (a new one on AuthBegin), and the storing of a message.
    awaitable<smtp::AuthAnswer> authenticate(std::optional<auth::SaslServer>& sasl, const smtp::Event& event,
                                             const std::string& peer_ip);
    awaitable<Result<std::string>> submit_message(const smtp::MessageReceived& message,
                                                  const net::Connection& connection, const Config& config,
                                                  const RcptMemos& memos);

    std::shared_ptr<const Config> config_;
    store::Store& store_;
    StoreExecutor& executor_;
    std::optional<SubmissionServices> submission_;
    std::function<std::shared_ptr<const mailauth::DkimSigner>()> auto_reply_signer_;
    std::function<void()> auto_reply_queued_;
    const InboundAuthenticator* inbound_ = nullptr;
    StoreExecutor* inbound_executor_ = nullptr;
    // Port 25 on a store that reads its directory version at once (the embedded one): RCPT memos are kept
    // across connections and checked by version. Otherwise (submission, PostgreSQL) every RCPT looks up.
    const bool remembers_recipients_;
    RecipientCache recipients_;
};

}  // namespace magpie::server
