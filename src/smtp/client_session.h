// smtp::ClientSession: the client side of RFC 5321 SMTP, as the outgoing queue uses it to deliver to a
// peer's port 25 (or a smart host), as a sans-IO state machine: reply bytes in, command bytes and events
// out. No socket, clock or DNS. It speaks EHLO (HELO when EHLO is refused), STARTTLS (RFC 3207), AUTH
// PLAIN/LOGIN (RFC 4954, only under TLS), PIPELINING (RFC 2920), SIZE (RFC 1870), 8BITMIME (RFC 6152, with
// the 7-bit downgrade for peers without it), SMTPUTF8 (RFC 6531), CHUNKING/BDAT (RFC 3030) and DSN
// (RFC 3461), and carries several messages over one connection (RSET between transactions). With PIPELINING
// the next transaction's RSET, MAIL, RCPT and DATA follow the end of a message's content without waiting for
// its reply (RFC 2920 3.1: content may start a group, DATA ends one), so a message costs one round trip.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "mail/dot_stuffing.h"
#include "smtp/reply.h"

namespace magpie::smtp {

struct ClientLimits {
    ReplyLimits reply;                                 // bounds on every reply read
    std::size_t max_transcript = 16 * 1024;            // octets of C:/S: lines kept per message
    std::size_t max_recipients_per_transaction = 100;  // RFC 5321 4.5.3.1.8: servers take at least 100
    std::size_t bdat_chunk_size = 1 << 20;             // octets of message per BDAT chunk
    std::size_t max_output_chunk = 64 * 1024;          // message octets handed out per take_output()
};

enum class TlsMode {
    disabled,       // never STARTTLS
    opportunistic,  // STARTTLS whenever offered; plaintext when not offered or refused
    required,       // no STARTTLS offered, or refused: every message is deferred
};

struct ClientCredentials {
    std::string username;
    std::string password;
};

struct ClientConfig {
    std::string helo_name;  // our host name, sent in EHLO/HELO
    std::string peer_name;  // who we talk to, for reasons: "mx.example.org[192.0.2.1]"
    ClientLimits limits;
    TlsMode tls = TlsMode::opportunistic;
    bool tls_active = false;  // implicit TLS (a smart host on port 465): no STARTTLS
    // A smart host login. Sent only under TLS: without TLS every message is deferred.
    std::optional<ClientCredentials> auth;
    bool use_pipelining = true;  // when the peer offers PIPELINING
    bool use_chunking = true;    // BDAT when the peer offers CHUNKING
};

// One recipient as the queue holds it, DSN parameters (RFC 3461 4) as received: passed on only to a peer
// that offers DSN.
struct OutgoingRecipient {
    std::string address;  // "local@domain"
    std::string notify;   // "" or "NEVER" or e.g. "SUCCESS,FAILURE"
    std::string orcpt;    // "" or "rfc822;xtext"
};

struct OutgoingMessage {
    std::string id;            // the caller's handle (queue id), echoed in the result
    std::string reverse_path;  // "" for the null sender
    std::vector<OutgoingRecipient> recipients;
    // RFC 5322 message bytes, CRLF lines, not dot-stuffed. 8-bit bodies are declared BODY=8BITMIME or,
    // for a peer without it, downgraded to 7 bit; a line over 998 octets is always re-encoded.
    std::string data;
    bool smtputf8 =
        false;            // the sender asked for SMTPUTF8; needed anyway when addresses or headers are UTF-8
    std::string dsn_ret;  // "" / "FULL" / "HDRS"
    std::string dsn_envid;  // "" or xtext
};

enum class Outcome {
    delivered,  // 2xx
    deferred,   // 4xx, or the connection failed: try again later
    failed,     // 5xx, or the message cannot go to this peer at all
};

struct RecipientResult {
    std::string address;
    Outcome outcome = Outcome::deferred;
    int code = 0;                // the deciding reply's code; 0 when the reason is local or the connection's
    std::string enhanced;        // RFC 3463 code from the reply, or our own for a local reason ("5.6.7")
    std::string text;            // the reply text, or the local reason
    bool dsn_passed_on = false;  // the peer offered DSN: NOTIFY and ORCPT went with the RCPT
};

// Events for the IO layer (poll_event).
struct MessageResult {  // exactly one per enqueued message
    std::string id;
    std::vector<RecipientResult> recipients;  // in the order given
    std::string transcript;  // "C: ..."/"S: ..." lines: connection set-up, then this message's commands
    // The peer answered this message's MAIL FROM. False when the connection failed (or was refused) before
    // the message was tried: then no reply of the peer's decided anything about it.
    bool answered = false;
};
struct TlsHandshake {};  // write pending output, do the TLS client handshake, then tls_started()
struct Idle {};          // nothing queued: enqueue() another message or quit()
struct Disconnect {};    // close the connection (after writing pending output); the session is over
using ClientEvent = std::variant<MessageResult, TlsHandshake, Idle, Disconnect>;

// Extensions the peer offered in its EHLO reply (RFC 5321 4.1.1.1).
struct PeerExtensions {
    bool esmtp = false;  // EHLO succeeded (false after the HELO fallback)
    bool pipelining = false;
    bool size = false;
    std::uint64_t max_size = 0;  // SIZE n; 0 = no fixed limit (RFC 1870 4)
    bool eightbitmime = false;
    bool smtputf8 = false;
    bool chunking = false;
    bool dsn = false;
    bool starttls = false;
    bool enhanced_status_codes = false;
    std::vector<std::string> auth;  // mechanism names, upper case
};

// Parses the lines of a 250 reply to EHLO (the first line is the greeting, the rest keywords).
PeerExtensions parse_ehlo(const Reply& reply);

class ClientSession {
public:
    explicit ClientSession(ClientConfig config);

    // Bytes from the peer; any split works. The session never holds more than one unfinished reply.
    void feed(std::string_view bytes);
    // Bytes to write now: commands, then at most max_output_chunk octets of message content. Call again
    // while has_output(): message content is produced as it is taken, so a large message is never
    // copied whole into the output.
    std::string take_output();
    bool has_output() const;
    std::optional<ClientEvent> poll_event();
    bool closed() const { return state_ == State::closed; }
    // Greeted (and secured, logged in): transactions run now.
    bool ready() const { return state_ == State::ready; }

    // Queues a message for this peer; it starts as soon as the connection is ready (with PIPELINING, as soon
    // as the message before it has sent its content, so queue the next one early to save a round trip).
    // After the session closed, the message is deferred at once (its MessageResult comes from poll_event()).
    void enqueue(OutgoingMessage message);
    // Ends the session politely: QUIT now if idle, else after the running and queued transactions.
    void quit();
    // The IO layer finished the TLS handshake asked for by TlsHandshake.
    void tls_started();
    // The connection failed (reset, closed early, timeout, TLS handshake failure): every message not yet
    // answered is deferred with `reason`. No Disconnect follows: the connection is gone already.
    void connection_failed(std::string_view reason);

    // What the session waits for, so that the IO layer can pick RFC 5321 4.5.3.2's timeouts: 5 minutes for
    // the greeting and a command's reply, 10 for the reply to the end of the message data, its own for the
    // TLS handshake; while `nothing`, the connection is idle (or closed).
    enum class Awaiting { nothing, reply, data_end, tls_handshake };
    Awaiting awaiting() const;

    const PeerExtensions& extensions() const { return extensions_; }
    bool tls_active() const { return tls_active_; }

private:
    enum class State {
        greeting,  // connected, waiting for 220
        ehlo,      // EHLO sent
        helo,      // HELO sent after EHLO was refused
        starttls,  // STARTTLS sent
        tls,       // waiting for the IO layer's handshake
        auth,      // AUTH sent, exchanging challenges
        ready,     // greeted (and secured, logged in): transactions run here
        quit,      // QUIT sent
        closed,
    };
    // What each outstanding reply answers, in order: pipelined commands are matched to replies by it.
    enum class Step { rset, mail, rcpt, data, data_end, bdat, dot_only };
    struct Batch;
    struct Expect {
        Step step;
        Batch* batch = nullptr;  // the transaction it belongs to (one of active_)
        std::size_t index = 0;   // the recipient of a RCPT
        bool last = false;       // the BDAT LAST chunk
    };
    // One enqueued message: its prepared bytes, results and transcript.
    struct MessageState {
        OutgoingMessage message;  // `data` becomes the bytes as sent once prepared
        std::vector<std::optional<RecipientResult>> results;
        std::size_t open_batches = 1;
        std::string transcript;
        bool prepared = false;
        bool body_8bit = false;       // BODY=8BITMIME
        bool smtputf8_param = false;  // SMTPUTF8 on MAIL
        bool answered = false;        // a reply to one of its MAIL commands came
    };

    // One transaction: a message and some of its recipients.
    struct Batch {
        std::shared_ptr<MessageState> message;
        std::vector<std::size_t> recipients;  // indices into message->message.recipients
        bool need_rset = false;
        bool bdat = false;
        bool rset_sent = false;
        bool mail_sent = false;
        bool data_sent = false;
        bool last_chunk_sent = false;
        bool end_sent = false;        // the content and its end went out: the next transaction may follow
        std::size_t outstanding = 0;  // replies still expected for this transaction
        std::size_t rcpts_sent = 0;
        std::size_t rcpts_answered = 0;
        std::size_t accepted = 0;
        std::size_t chunk_offset = 0;
        std::optional<Reply> mail_refusal;
        std::vector<std::optional<Reply>> rcpt_replies;  // by position in `recipients`
        std::vector<std::size_t> too_many;               // positions answered 452: another transaction
        std::optional<Reply> final_reply;                // DATA's (when not 354), the end of data's, BDAT's
    };

    // Pending output: command bytes or a range of message content.
    struct Output {
        std::string bytes;                      // command bytes, or empty for message content
        std::shared_ptr<MessageState> message;  // message content: data[offset, end)
        std::size_t offset = 0;
        std::size_t end = 0;
        bool dot_stuffed = false;  // DATA: stuffed and ended by CRLF.CRLF (RFC 5321 4.5.2)
        mail::DotStuffer stuffer;
    };

    void handle(Reply reply);
    void on_greeting(const Reply& reply);
    void on_ehlo(const Reply& reply);
    void on_helo(const Reply& reply);
    void on_starttls(const Reply& reply);
    void on_auth(const Reply& reply);
    void on_rset(const Reply& reply);
    void on_mail(Batch& batch, const Reply& reply);
    void on_rcpt(Batch& batch, const Reply& reply, std::size_t index);
    void on_data(Batch& batch, const Reply& reply);
    void on_data_end(Batch& batch, const Reply& reply);
    void on_bdat(Batch& batch, const Reply& reply, bool last);
    void on_quit(const Reply& reply);

    void after_hello();
    void start_auth();
    bool start_next();
    void prepare(MessageState& message);
    void prepare_body(MessageState& message);
    void fail_remaining(MessageState& message, std::string_view enhanced, const std::string& text);
    void advance();
    bool send_one(Batch& batch);
    void send_bdat_chunk(Batch& batch);
    struct Failure {  // why the connection ended, for the recipients it leaves without a final reply
        const std::string& reason;
        const Reply* reply;
        std::string_view enhanced;
    };
    void finish_transaction(const Failure* failure = nullptr);  // the oldest active one
    RecipientResult deferral(std::string address, const Failure& failure) const;
    void close_batch(MessageState& message);
    void fail_connection(const std::string& reason, const Reply* reply, bool send_quit,
                         std::string_view enhanced);
    void defer_everything(const std::string& reason, const Reply* reply, std::string_view enhanced);
    void send_quit();
    bool pipelining() const { return config_.use_pipelining && extensions_.pipelining; }
    bool chunking() const { return config_.use_chunking && extensions_.chunking; }

    void command(std::string_view line, std::string_view shown = {});
    void expect(Batch& batch, Step step, std::size_t index = 0, bool last = false);
    // Appends to the transcript of `batch`'s message, or to the set-up transcript when null.
    void note(Batch* batch, std::string_view prefix, std::string_view line);

    ClientConfig config_;
    State state_ = State::greeting;
    ReplyReader reader_;
    PeerExtensions extensions_;
    bool tls_active_ = false;
    bool starttls_refused_ = false;
    bool authenticated_ = false;
    bool auth_login_ = false;  // AUTH LOGIN (two challenges) rather than PLAIN with an initial response
    int auth_step_ = 0;
    bool quit_requested_ = false;
    bool idle_reported_ = false;
    std::size_t transactions_ = 0;  // started on this connection: RSET before every one but the first

    std::deque<Expect> expected_;
    std::deque<Output> output_;
    std::deque<ClientEvent> events_;
    std::deque<std::unique_ptr<Batch>> queue_;
    // Transactions started and not yet finished, oldest first: more than one only while pipelining, when the
    // newest has sent its content and the older ones wait for their last replies.
    std::deque<std::unique_ptr<Batch>> active_;
    std::string setup_transcript_;  // greeting, EHLO, STARTTLS, AUTH: shared by every message's transcript
};

}  // namespace magpie::smtp
