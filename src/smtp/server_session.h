// smtp::ServerSession: the server side of RFC 5321 SMTP with PIPELINING, SIZE, 8BITMIME, SMTPUTF8,
// ENHANCEDSTATUSCODES, CHUNKING, DSN and STARTTLS, as a sans-IO state machine: bytes in, reply bytes and
// events out. No socket, clock or store: decisions from outside arrive through rcpt_checked/stored.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/result.h"
#include "smtp/data_reader.h"

namespace magpie::smtp {

// A reading of a monotonic clock (any epoch), passed in by the IO layer: the session never reads a clock.
using Millis = std::chrono::milliseconds;

struct ServerLimits {
    // Octets including CRLF. RFC 5321 4.5.3.1.4's 512 grows with each extension offered: MAIL by 100 for
    // ENVID/RET (RFC 3461 4), 26 for SIZE (RFC 1870), 500 for AUTH= (RFC 4954 5), 10 for SMTPUTF8 (RFC 6531);
    // RCPT by 500 for NOTIFY/ORCPT. magpied's [smtp] max_command_line is 2048 and at least 1148.
    std::size_t max_command_line = 512;
    // Octets in a line of message content including CRLF. RFC 5321 4.5.3.1.6 asks for at least 1000; real
    // senders exceed it (one-line HTML), and Postfix sets no limit at all. The content is held in memory
    // whatever its lines (bounded by max_message_size), so this guards readers, not memory.
    std::size_t max_text_line = 1 << 20;
    std::uint64_t max_message_size = 50ull << 20;
    std::size_t max_recipients = 100;  // RFC 5321 4.5.3.1.8 asks for at least 100
    std::size_t max_bad_commands = 20;
    // NOOP, RSET, VRFY, HELP before each further one counts as an error (Postfix's smtpd_junk_command_limit).
    std::size_t max_junk_commands = 100;
    // Unprocessed input (a pipelined batch waiting behind an event) above which wants_input() is false.
    std::size_t max_buffered_input = 64 * 1024;
    // Slow senders (a few hundred clients sending one byte a second must not hold every slot):
    // - a command line must be complete within idle_timeout of its first octet, and the wait for a
    //   command is idle_timeout too (RFC 5321 4.5.3.2.7 asks for at least 5 minutes);
    // - message content (DATA, each BDAT chunk) starts with idle_timeout of credit, and every octet
    //   received adds 1/min_data_rate seconds, never above idle_timeout ahead (Postfix's
    //   smtpd_per_request_deadline with smtpd_min_data_rate);
    // - a transaction ends within max_transaction_time of its MAIL command.
    // Each ends the session with 421 4.4.2, a temporary failure that honest senders retry.
    Millis idle_timeout{300'000};
    std::uint64_t min_data_rate = 500;  // octets per second
    Millis max_transaction_time{3'600'000};
    // Octets of an AUTH command or of one SASL response line, CRLF included (RFC 4954 4: at least 12288).
    // Longer ones are refused with 500 5.5.6 and end the exchange.
    std::size_t max_auth_line = 12288;
};

struct ServerConfig {
    std::string hostname;
    ServerLimits limits;
    bool starttls_offered = false;
    bool tls_active = false;
    BareLineEnding bare_line_ending = BareLineEnding::reject;
    // VRFY answers 252 2.5.0 unless enabled; when enabled each VRFY asks the IO layer with a RcptCheck.
    bool vrfy_enabled = false;
    // Message submission (RFC 6409) with AUTH (RFC 4954): AUTH is offered (PLAIN, LOGIN, SCRAM-SHA-256),
    // MAIL needs it first (530 5.7.0), and the envelope sender and the From: (or Sender:) header field must
    // be one of the authenticated user's addresses (553 5.7.1).
    bool submission = false;
    // AUTH before TLS (only for loopback test setups, like [imap] allow_plaintext_login); otherwise AUTH is
    // not advertised before TLS and answered 538 5.7.11 (RFC 4954 6).
    bool auth_plaintext_allowed = false;
};

// DSN parameters (RFC 3461) kept for the delivery side.
struct Recipient {
    std::string address;  // "local@domain" (or "postmaster")
    std::string notify;   // "" or e.g. "SUCCESS,FAILURE", upper case
    std::string orcpt;    // "" or "rfc822;xtext" as sent
};

struct Envelope {
    std::string helo;
    bool esmtp = false;
    std::string reverse_path;  // "" = null sender
    std::vector<Recipient> recipients;
    bool body_8bit = false;  // BODY=8BITMIME
    bool smtputf8 = false;
    std::string dsn_ret;    // "" / "FULL" / "HDRS"
    std::string dsn_envid;  // xtext as sent
    bool tls = false;
    bool undeclared_8bit = false;  // 8-bit content arrived without BODY=8BITMIME (accepted, worth a log line)
    std::string auth_user;         // submission: the authenticated account ("" otherwise)
};

enum class RcptVerdict {
    accept,             // 250 2.1.5
    unknown_user,       // 550 5.1.1
    relay_denied,       // 554 5.7.1
    temporary_failure,  // 451 4.3.0
    mailbox_full,       // 452 4.2.2
};

struct RcptCheck {
    std::string address;
};
struct MessageReceived {
    Envelope envelope;
    std::string data;  // un-dot-stuffed message bytes, CRLF lines
};
// AUTH (submission mode): the IO layer runs the SASL exchange (auth::SaslServer; password checks off the
// network threads) and answers each of these with auth_answered().
struct AuthBegin {
    std::string mechanism;                        // as sent, e.g. "PLAIN"
    std::optional<std::string> initial_response;  // base64 as sent (RFC 4954 4: "=" is an empty one)
};
struct AuthResponse {
    std::string line;  // the client's line without CRLF: base64, or "*" to cancel
};
struct AuthAnswer {
    enum class Kind {
        challenge,    // 334 <data>
        success,      // 235 2.7.0; `user` and `addresses` are set
        failed,       // 535 5.7.8 (wrong credentials, unknown or disabled user)
        cancelled,    // 501 5.0.0 (the client sent "*")
        malformed,    // 501 5.5.2 (not base64, bad SASL message)
        too_long,     // 500 5.5.6 (a response over the SASL limits)
        unsupported,  // 504 5.5.4 (unknown mechanism)
        temporary,    // 454 4.7.0 (throttled, hashing slots busy, store unavailable)
    };
    Kind kind = Kind::failed;
    std::string challenge;               // base64 (may be empty)
    std::string user;                    // the account's address
    std::vector<std::string> addresses;  // the account's address and its aliases: allowed senders
};
struct StartTls {};  // IO layer: write pending output, then TLS handshake, then call tls_started()
struct Close {};     // IO layer: flush output and close
using Event = std::variant<RcptCheck, MessageReceived, StartTls, Close, AuthBegin, AuthResponse>;

class ServerSession {
public:
    // `now`: when the connection was accepted (the clock of every later `now`).
    ServerSession(ServerConfig config, std::string peer_ip, Millis now = Millis{0});

    // Any split of the stream works, down to one byte at a time. `now` is when the bytes arrived; without
    // it the time of the last call stands (for callers that do not track time: tests, fuzzers).
    void feed(std::string_view bytes, Millis now);
    void feed(std::string_view bytes) { feed(bytes, now_); }
    // Reply bytes to write now (the greeting first).
    std::string take_output();
    // While an event is outstanding the session processes no further input (it stays buffered).
    std::optional<Event> poll_event();
    // False once the buffered, unprocessed input exceeds max_buffered_input or the session is closed.
    bool wants_input() const;
    bool closed() const { return state_ == State::closed; }

    void rcpt_checked(RcptVerdict verdict);
    void auth_answered(AuthAnswer answer);
    // The authenticated account, "" before AUTH succeeds.
    const std::string& auth_user() const { return auth_user_; }
    // ok: 250 2.0.0 OK <id>; error: 452 4.3.1 (limit_exceeded), 554 5.6.0 (invalid_argument), 550 5.7.1
    // (permission_denied: refused by policy), 451 4.3.0 otherwise.
    void stored(Result<std::string> queue_id);
    // Fresh state of RFC 3207 4.2: before EHLO, envelope cleared, TLS active.
    void tls_started();
    // When more input must have arrived (same clock as `now`), or nullopt when the session sets no
    // deadline of its own (then the IO layer waits limits.idle_timeout per read, as between commands).
    // Nothing is due while an event is outstanding.
    std::optional<Millis> input_deadline() const;
    // The IO layer's read timed out at `now` (idle, or input_deadline() passed): 421 4.4.2, Close.
    void timed_out(Millis now);
    void idle_timeout() { timed_out(now_); }
    void shutting_down();  // 421 4.3.2 then Close, once the outstanding event (if any) is answered

private:
    enum class State {
        fresh,  // before HELO/EHLO
        ready,  // greeted, no transaction
        mail,   // MAIL accepted, no recipient yet
        rcpt,   // at least one recipient accepted
        bdat,   // between BDAT chunks of a transaction
        data,   // reading DATA content
        chunk,  // reading the octets of one BDAT chunk
        closed,
    };
    enum class Waiting { nothing, rcpt, vrfy, store, tls, auth };
    enum class Command {
        ehlo,
        helo,
        mail,
        rcpt,
        data,
        bdat,
        rset,
        noop,
        quit,
        vrfy,
        help,
        starttls,
        auth,
        not_implemented,
        unknown
    };

    void process();
    bool step_command();
    bool step_data();
    bool step_chunk();
    void handle_line(std::string_view line);
    bool sequence_ok(Command command);
    static bool is_junk(Command command);
    bool junk_allowed();

    void on_ehlo(std::string_view args, bool extended);
    void on_mail(std::string_view args);
    void on_rcpt(std::string_view args);
    void on_data(std::string_view args);
    void on_bdat(std::string_view args);
    void on_rset(std::string_view args);
    void on_noop();
    void on_quit(std::string_view args);
    void on_vrfy(std::string_view args);
    void on_help();
    void on_starttls(std::string_view args);
    void on_auth(std::string_view args);
    void on_auth_response(std::string_view line);
    bool auth_offered() const;
    bool owns_address(std::string_view address) const;
    bool from_header_allowed(std::string_view data, std::string& refusal) const;
    void on_data_end();
    void on_chunk_end();
    void finish_message();

    void reply(int code, std::string_view enhanced, std::string_view text);
    void bad_command(int code, std::string_view enhanced, std::string_view text);
    void close_with(int code, std::string_view enhanced, std::string_view text);
    void reset_transaction();
    void start_reader(bool dot_stuffed);
    void after_answer();
    bool deadline_passed();
    void credit_content(std::size_t octets);

    ServerConfig config_;
    std::string peer_ip_;
    State state_ = State::fresh;
    Waiting waiting_ = Waiting::nothing;
    std::string input_;
    std::size_t input_pos_ = 0;
    std::string output_;
    std::deque<Event> events_;
    Envelope envelope_;
    Recipient pending_rcpt_;  // RCPT (or VRFY) waiting for its verdict
    std::optional<DataReader> reader_;
    std::uint64_t chunk_remaining_ = 0;
    std::uint64_t chunk_size_ = 0;
    bool chunk_last_ = false;
    // Why the current chunk is read only to keep the stream in step (RFC 3030 2: a refused BDAT's
    // octets are still consumed, never run as commands), and the state to return to afterwards.
    enum class ChunkRefusal { none, syntax, sequence, no_recipients, failed_earlier, too_big };
    ChunkRefusal chunk_refusal_ = ChunkRefusal::none;
    State chunk_return_state_ = State::ready;
    bool bdat_failed_ = false;       // RFC 3030 3: a failed chunk fails the whole transaction
    std::uint64_t bdat_octets_ = 0;  // octets of this transaction's accepted chunks, as sent
    // Time (see ServerLimits): the last `now` given, and the deadlines running (nullopt: none).
    Millis now_{0};
    std::optional<Millis> line_deadline_;         // a command line has begun and must be completed
    std::optional<Millis> content_deadline_;      // DATA content or one BDAT chunk, with its rate credit
    std::optional<Millis> transaction_deadline_;  // from MAIL to the end of the message
    bool skipping_long_line_ = false;
    bool drain_then_close_ = false;
    std::size_t bad_commands_ = 0;
    std::size_t junk_commands_ = 0;  // since the session began or a message was last stored
    // AUTH (submission mode): the next line is a SASL response, not a command; who authenticated.
    bool auth_exchange_ = false;
    bool skipping_auth_line_ = false;
    std::string auth_user_;
    std::vector<std::string> auth_addresses_;
};

// The Received: trace header field (RFC 5321 4.4, protocol names of RFC 3848 / RFC 6531), folded,
// CRLF-terminated, with the time passed in.
std::string received_header(const Envelope& envelope, std::string_view peer_ip,
                            std::string_view server_hostname, std::string_view queue_id,
                            std::int64_t unix_time);

}  // namespace magpie::smtp
