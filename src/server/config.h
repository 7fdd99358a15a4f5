// magpied's configuration: one TOML file (magpie.toml), every key documented in docs/configuration.md with
// its default. `magpied --demo` builds the same structure without a file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "delivery/retry.h"
#include "delivery/routing.h"
#include "net/proxy_protocol.h"

namespace magpie::server {

struct ListenAddress {
    std::string address;  // "127.0.0.1", "::", "0.0.0.0"
    std::uint16_t port = 0;
};

struct SmtpConfig {
    std::vector<ListenAddress> listen;             // [smtp] listen = ["0.0.0.0:25"]
    std::size_t max_command_line = 2048;           // CRLF included; >= 1148 (RFC 5321 4.5.3.1.4 + extensions)
    std::size_t max_text_line = 1 << 20;           // a content line, CRLF included (RFC 5321: >= 1000)
    std::uint64_t max_message_size = 50ull << 20;  // SIZE, octets
    std::size_t max_recipients = 100;              // per transaction (RFC 5321 4.5.3.1.8 asks at least 100)
    std::size_t max_bad_commands = 20;             // per session, then 421
    std::size_t max_junk_commands = 100;           // NOOP/RSET/VRFY/HELP, then each counts as an error
    std::uint32_t idle_timeout = 300;              // seconds per command line; content credit
    std::uint64_t min_data_rate = 500;             // octets/s of DATA/BDAT content beyond the credit
    std::uint32_t max_transaction_time = 3600;     // seconds from MAIL to the end of the message
    std::size_t max_connections = 1000;
    std::size_t max_connections_per_ip = 20;
    std::string bare_line_ending = "reject";       // "reject" or "normalize"
    std::string add_missing_headers = "headerless";  // "never", "headerless" or "always"
    // The account that receives RCPT TO:<Postmaster> and postmaster@ each local domain when no account or
    // alias of that name exists (RFC 5321 4.5.1). Empty: the domain's catch-all, else its oldest account.
    std::string postmaster;
    // Senders a vacation response (RFC 8621 8, RFC 3834) remembers per account and period, so each gets one
    // reply; beyond it the oldest is forgotten (and may be answered again). Each is kept in the store.
    std::size_t vacation_max_senders = 10000;
    // What RCPT resolved (account, INBOX, vacation), kept across connections while the store's directory
    // version stays (Store::directory_version): seconds an entry lives (0 = off), and entries at most.
    std::uint32_t recipient_cache_seconds = 60;
    std::size_t recipient_cache_entries = 10000;
};

// Message submission (RFC 6409, RFC 8314) for user agents: AUTH required, the sender must be the user's own
// address. Message limits and timeouts are [smtp]'s.
struct SubmissionConfig {
    std::vector<ListenAddress> listen;      // STARTTLS ports, e.g. ["0.0.0.0:587"]
    std::vector<ListenAddress> listen_tls;  // implicit TLS ports, e.g. ["0.0.0.0:465"]
    bool allow_plaintext_auth = false;      // AUTH before TLS (loopback tests); otherwise 538 and not advertised
    bool save_sent = false;                 // also file a copy in the sender's Sent mailbox
    std::size_t max_auth_line = 12288;      // AUTH command or SASL response line, CRLF included (RFC 4954 4)
    std::size_t max_connections = 500;
    std::size_t max_connections_per_ip = 20;
};

struct ImapConfig {
    std::vector<ListenAddress> listen;      // STARTTLS ports, e.g. ["0.0.0.0:143"]
    std::vector<ListenAddress> listen_tls;  // implicit TLS ports, e.g. ["0.0.0.0:993"]
    bool allow_plaintext_login = false;     // LOGIN/AUTHENTICATE before TLS (LOGINDISABLED otherwise)
    std::uint32_t idle_timeout = 1800;      // seconds without a command (RFC 9051 5.4: at least 30 minutes)
    // Seconds between "* OK Still here" during IDLE, so NATs and carriers keep a silent connection (which
    // they drop after 5 to 15 minutes) and push keeps working; Dovecot's imap_idle_notify_interval.
    std::uint32_t idle_keepalive_interval = 120;
    std::size_t max_line_octets = 64 * 1024;          // one command's text, literals excluded
    std::uint64_t max_literal_octets = 50ull << 20;   // APPENDLIMIT (RFC 7889)
    std::size_t max_nesting_depth = 32;
    std::size_t max_sequence_set_ranges = 1024;
    std::size_t max_search_keys = 256;
    // FETCH output a session writes per step; larger messages' literals are read from their blob in slices
    // of this size, so memory per session stays about this whatever the message size (issue 12 item 15).
    std::size_t output_slice_octets = 256 * 1024;
    std::size_t max_connections = 2000;
    // Connections from one address not logged in yet; a login moves its connection to the account's count
    // from that address (Dovecot's mail_max_userip_connections), so many accounts behind one NAT or
    // webmail host are not refused together.
    std::size_t max_connections_per_ip = 50;
    std::size_t max_connections_per_user_ip = 20;  // clients open several connections per account
    // Threads that run logged-in sessions' writes (STORE, EXPUNGE, COPY/MOVE, mailbox changes, SELECT's \Recent
    // claim): each waits for the group commit's fsync, so they are kept apart from [store] threads (reads).
    std::size_t write_threads = 8;
    // Rows SEARCH keeps between commands for its keys on the stored row (FROM/TO/CC/SUBJECT, dates, sizes),
    // over all mailboxes (a few hundred octets each): a SEARCH then reads only new messages' rows. 0 = none.
    std::size_t search_cache_messages = 50000;
};

// The HTTP listener: JMAP (RFC 8620/8621). Every bound below answers with an RFC 7807 problem or the
// RFC's JMAP error, never a crash.
struct HttpConfig {
    std::vector<ListenAddress> listen;      // plain HTTP, e.g. ["127.0.0.1:8080"]
    std::vector<ListenAddress> listen_tls;  // HTTPS, e.g. ["0.0.0.0:443"]; needs [tls]
    bool allow_plaintext_login = false;     // Basic or Bearer credentials without TLS (loopback demo)
    std::uint32_t idle_timeout = 60;        // seconds awaiting (the rest of) a request
    std::size_t max_header_octets = 16 * 1024;           // request line and headers
    std::uint64_t max_request_octets = 10ull << 20;      // API request body (maxSizeRequest)
    std::uint64_t max_upload_octets = 50ull << 20;       // upload body (maxSizeUpload)
    std::size_t max_concurrent_requests = 4;             // per account (maxConcurrentRequests)
    std::size_t max_concurrent_uploads = 4;              // per account (maxConcurrentUpload)
    std::size_t max_calls_in_request = 32;               // maxCallsInRequest
    std::size_t max_objects_in_get = 500;                // maxObjectsInGet
    std::size_t max_objects_in_set = 500;                // maxObjectsInSet
    std::size_t max_submission_recipients = 1000;        // rcptTo entries of one EmailSubmission
    std::size_t max_changes = 5000;                      // ids one /changes or /queryChanges answers at most
    // Threads for authenticated JMAP work (API requests, uploads, downloads, push state reads), apart from IMAP's
    // store threads, SMTP's look-ups and logins, so heavy JMAP clients delay none of them.
    std::size_t api_threads = 4;
    // API requests that call a method which writes (/set, /copy, Email/import) run on threads of their own:
    // each waits for the group commit's fsync, and the reads should not queue behind it.
    std::size_t write_threads = 8;
    std::size_t max_query_message_reads = 100000;        // content checks in one Email/query (body, text, ...)
    std::size_t max_search_terms = 64;                   // terms in one Email/query "text" or "body" value
    std::size_t max_json_depth = 64;                     // nested arrays/objects in a request
    std::size_t max_json_string_octets = 1u << 20;       // one JSON string
    std::size_t max_connections = 1000;
    std::size_t max_connections_per_ip = 50;       // connections with no authenticated request yet
    std::size_t max_connections_per_user_ip = 20;  // after one: a browser opens 6, more with push and tabs
    // HTTP reverse proxies (nginx, Caddy, Apache) in front of magpied: their requests name the client in
    // X-Forwarded-For and the scheme (https when TLS ended at the proxy) in X-Forwarded-Proto.
    std::vector<net::IpNetwork> reverse_proxies;
    // JMAP over WebSocket (RFC 8887, /jmap/ws): a ping after this many seconds without a frame from the client,
    // and the connection closed once none came for websocket_idle_timeout (a live client answers pings).
    std::uint32_t websocket_ping_interval = 60;
    std::uint32_t websocket_idle_timeout = 600;
    std::uint32_t websocket_close_timeout = 5;  // seconds to wait for the client's close frame after ours; 0: none
    // The webmail (web/, issue 15): the built files served at "/" and its cookie sessions.
    std::filesystem::path webmail_dir;                   // empty: the build's web/dist (MAGPIE_WEBMAIL_DIR)
    std::uint64_t webmail_max_octets = 32ull << 20;      // the built files together, held in memory
    std::uint32_t webmail_session_idle = 8 * 3600;       // seconds a session lives unused
    std::uint32_t webmail_session_lifetime = 7 * 86400;  // seconds a session lives at most
    std::size_t webmail_max_sessions = 10000;            // sessions kept; the least recently used goes first
    std::size_t webmail_max_sessions_per_account = 100;  // one account's sessions; its oldest ends first
};

struct AuthConfig {
    std::size_t max_concurrent_hashes = 4;       // argon2id verifications at once (64 MiB each)
    std::size_t login_threads = 4;               // threads for sessions not yet authenticated (hashing)
    int hash_nice = 10;                          // niceness (0 to 19) of the threads computing argon2id
    std::uint32_t verified_cache_seconds = 300;  // a password verified this recently skips argon2id; 0 = off
    std::size_t verified_cache_entries = 10000;  // recently verified (account, password) digests kept
    std::uint32_t max_user_failures = 5;         // failed logins per account per window before a lockout
    std::uint32_t max_ip_failures = 20;          // failed logins per client address (IPv6: /64) per window
    std::uint32_t failure_window = 600;          // seconds
    std::uint32_t first_lockout = 30;            // seconds; doubles at each further lockout
    std::uint32_t max_lockout = 3600;            // seconds
};

struct StoreConfig {
    std::string backend = "sqlite";
    std::size_t threads = 4;                   // the store's own executor (authenticated IMAP work)
    std::size_t lookup_threads = 2;            // SMTP recipient checks, apart from IMAP and logins
    std::size_t inline_blob_max = 128 * 1024;  // larger blobs get files of their own
    std::uint32_t compression_level = 1;       // zstd level of inline bodies (SQLite); 0 stores them as received
    std::size_t states_cache_messages = 100000;  // UID/MODSEQ/flags kept in memory for SELECT (SQLite); 0: none
    std::size_t max_batch = 256;               // deliveries per group commit
    std::size_t checkpoint_frames = 8000;      // SQLite: log pages between background checkpoints (100..1000000)
    // backend = "postgres" (the shared store, issue 16): a libpq connection string or URI; the password
    // comes from password_file (its first line) or libpq's own PGPASSWORD / ~/.pgpass, never from the DSN
    // in the log.
    std::string dsn;
    std::filesystem::path password_file;
    std::size_t pool_size = 8;                 // PostgreSQL connections for reads and IMAP/admin writes
    std::size_t prepared_statements = 256;  // statements each PostgreSQL connection keeps prepared; 0: none
    // Emails (issue 11): how far thread computation at delivery looks, and how much one JMAP query may ask.
    std::size_t max_thread_references = 64;           // In-Reply-To/References ids looked up per message
    std::uint32_t thread_subject_window = 30 * 86400;  // seconds a same-subject Email may be older and join
    std::size_t max_query_results = 10000;            // ids per Email/query answer or per get/set call
    std::size_t max_filter_nodes = 256;               // conditions and operators in one Email/query filter
    std::size_t migrate_batch_rows = 1000;            // `magpie migrate`: rows per batch between the backends
};

// The outgoing queue ([queue]): retries, reports, connections and routes (issue 13).
struct QueueConfig {
    bool enabled = true;                     // magpied delivers queued mail
    delivery::RetryPolicy retry;             // retry_intervals, lifetime, delay_notice_after (seconds)
    std::uint32_t connect_timeout = 30;      // seconds to set up TCP
    std::uint32_t command_timeout = 300;     // seconds for any reply (RFC 5321 4.5.3.2: 5 minutes)
    std::uint32_t data_timeout = 600;        // seconds for the reply to the end of data (RFC 5321 4.5.3.2.6)
    std::uint32_t idle_keep = 5;             // seconds an idle connection waits for more mail for its host
    std::size_t max_connections = 20;        // outgoing connections in total
    std::size_t max_connections_per_host = 2;  // per destination domain
    // then QUIT and a fresh connection (Postfix reuses one without a count limit, Exim for 500)
    std::size_t max_messages_per_connection = 1000;
    std::string resolver;                    // "127.0.0.53" or "[::1]:5353"; empty: /etc/resolv.conf
    std::uint32_t dns_timeout = 10;          // seconds per DNS query
    std::uint16_t mx_port = 25;              // port of MX hosts
    std::size_t max_mx_hosts = 10;           // MX hosts tried per destination and round
    std::size_t max_addresses_per_host = 4;  // addresses tried per host
    delivery::RoutingConfig routing;         // [[queue.route]] tables and smart_host ("*")
    std::uint32_t poll_interval = 30;        // seconds between looks at the queue when nothing wakes it
    std::uint32_t lease_time = 900;          // seconds an entry stays leased to this node while delivered
    std::size_t batch = 100;                 // entries leased per round
    std::uint32_t keep_finished = 7 * 86400; // seconds the tracker keeps finished entries
    std::size_t max_transcript = 16 * 1024;  // octets of SMTP conversation kept per attempt
    bool dane = true;  // DANE (RFC 7672) for MX hosts with DNSSEC-validated TLSA records
};

// Inbound message authentication on port 25 ([mailauth], issue 18): SPF (RFC 7208), DKIM (RFC 6376) and
// DMARC (RFC 7489), written into an Authentication-Results field (RFC 8601) whose authserv-id is
// [server] hostname. Submission and local mail are not evaluated.
struct MailauthConfig {
    bool spf = true;
    bool dkim = true;
    bool dmarc = true;
    // "record": only write the results. "enforce": a DMARC failure under p=reject is refused with 550 5.7.1
    // at the end of DATA, one under p=quarantine is filed in the recipients' Junk mailbox.
    std::string dmarc_policy = "record";
    std::string resolver;                  // like [queue] resolver; empty: [queue] resolver
    std::uint32_t dns_timeout = 5;         // seconds per DNS query (two tries of half each)
    std::uint32_t max_time = 20;           // seconds for all lookups of one message; later ones are temperror
    std::uint32_t max_dns_mechanisms = 10; // SPF terms that query DNS (RFC 7208 4.6.4: 10)
    std::uint32_t max_void_lookups = 2;    // SPF lookups answered NXDOMAIN/NODATA (RFC 7208 4.6.4: 2)
    std::size_t max_signatures = 5;        // DKIM signatures verified per message
    std::size_t threads = 8;               // evaluations at once (each blocks a thread waiting on DNS)
};

// MTA-STS (RFC 8461, [mta_sts]): honouring recipient domains' policies when delivering, and the policy this
// server publishes for its own domains at https://mta-sts.DOMAIN/.well-known/mta-sts.txt.
struct MtaStsConfig {
    bool enabled = true;               // look up and honour recipients' policies
    std::uint32_t fetch_timeout = 10;  // seconds for the whole HTTPS fetch of one policy (RFC 8461 3.3)
    std::string mode = "testing";      // our published policy: "enforce", "testing" or "none"
    std::uint32_t max_age = 604800;    // seconds senders may cache our policy (RFC 8461 3.2: at most 31557600)
};

// SMTP TLS Reporting (RFC 8460, [tlsrpt]): the TLS result of every outgoing session to an MX host, recorded
// in <data_dir>/tlsrpt/DAY.jsonl for `magpie tlsrpt` to report.
struct TlsRptConfig {
    bool record = true;
    std::uint64_t max_day_octets = 64ull << 20;  // a day's file stops growing here (a flood of failures)
};

// What mail clients are told when they set themselves up ([autoconfig], http/autoconfig.h) and what the
// SRV and CNAME records `magpie dns` prints name: by default [server] hostname and the bound ports. Behind
// NAT, a port forward or a TCP proxy, the public host name and ports clients must use instead. A port left
// out is the bound listener's (the standard port in `magpie dns`); 0 offers that service to no client.
struct AutoconfigConfig {
    std::string hostname;                         // empty: [server] hostname
    std::optional<std::uint16_t> imaps_port;      // IMAP, implicit TLS (993)
    std::optional<std::uint16_t> imap_port;       // IMAP, STARTTLS (143)
    std::optional<std::uint16_t> submissions_port;  // submission, implicit TLS (465)
    std::optional<std::uint16_t> submission_port;   // submission, STARTTLS (587)
};

struct Config {
    std::string hostname;              // default: the machine's host name
    std::filesystem::path data_dir = "/var/lib/magpie";
    std::string user;                  // drop to this user after binding, when started as root
    std::string log_level = "info";
    std::size_t threads = 0;           // network threads; 0 = one per core
    std::uint32_t shutdown_timeout = 30;  // seconds SIGTERM waits for sessions to finish
    // TCP load balancers whose connections begin with a PROXY protocol header (v1 or v2), on every listener;
    // empty: none. Read at start (a change needs a restart, as listen addresses do).
    std::vector<net::IpNetwork> proxy_trusted_networks;
    std::filesystem::path tls_certificate;
    std::filesystem::path tls_private_key;
    SmtpConfig smtp;
    SubmissionConfig submission;
    ImapConfig imap;
    HttpConfig http;
    AuthConfig auth;
    StoreConfig store;
    QueueConfig queue;
    MailauthConfig mailauth;
    MtaStsConfig mta_sts;
    TlsRptConfig tlsrpt;
    AutoconfigConfig autoconfig;
    bool demo = false;
};

Result<Config> load_config(const std::filesystem::path& file);

// The --demo configuration: ./magpie-data (or data_dir), domain example.test, loopback ports above 1024,
// a self-signed certificate in the data dir.
Config demo_config(const std::filesystem::path& data_dir);

// The demo's reserved ports (ARCHITECTURE.md): bound only once their service exists.
namespace demo_ports {
inline constexpr std::uint16_t smtp = 2525;
inline constexpr std::uint16_t submission = 2587;
inline constexpr std::uint16_t submissions = 2465;
inline constexpr std::uint16_t imap = 2143;
inline constexpr std::uint16_t imaps = 2993;
inline constexpr std::uint16_t http = 8080;
}  // namespace demo_ports

}  // namespace magpie::server
