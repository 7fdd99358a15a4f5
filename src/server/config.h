// magpied's configuration: one TOML file (magpie.toml), every key documented in docs/configuration.md with
// its default. `magpied --demo` builds the same structure without a file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "base/result.h"

namespace magpie::server {

struct ListenAddress {
    std::string address;  // "127.0.0.1", "::", "0.0.0.0"
    std::uint16_t port = 0;
};

struct SmtpConfig {
    std::vector<ListenAddress> listen;             // [smtp] listen = ["0.0.0.0:25"]
    std::size_t max_command_line = 512;            // RFC 5321 4.5.3.1.4, CRLF included
    std::size_t max_text_line = 1000;              // RFC 5321 4.5.3.1.6, CRLF included
    std::uint64_t max_message_size = 50ull << 20;  // SIZE, octets
    std::size_t max_recipients = 100;              // per transaction (RFC 5321 4.5.3.1.8 asks at least 100)
    std::size_t max_bad_commands = 20;             // per session, then 421
    std::uint32_t idle_timeout = 300;              // seconds awaiting input (RFC 5321 4.5.3.2.7)
    std::size_t max_connections = 1000;
    std::size_t max_connections_per_ip = 20;
    std::string bare_line_ending = "reject";       // "reject" or "normalize"
};

struct ImapConfig {
    std::vector<ListenAddress> listen;      // STARTTLS ports, e.g. ["0.0.0.0:143"]
    std::vector<ListenAddress> listen_tls;  // implicit TLS ports, e.g. ["0.0.0.0:993"]
    bool allow_plaintext_login = false;     // LOGIN/AUTHENTICATE before TLS (LOGINDISABLED otherwise)
    std::uint32_t idle_timeout = 1800;      // seconds without a command (RFC 9051 5.4: at least 30 minutes)
    std::size_t max_line_octets = 64 * 1024;          // one command's text, literals excluded
    std::uint64_t max_literal_octets = 50ull << 20;   // APPENDLIMIT (RFC 7889)
    std::size_t max_nesting_depth = 32;
    std::size_t max_sequence_set_ranges = 1024;
    std::size_t max_search_keys = 256;
    std::size_t max_connections = 2000;
    std::size_t max_connections_per_ip = 50;  // clients open several connections per account
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
    std::size_t max_json_depth = 64;                     // nested arrays/objects in a request
    std::size_t max_json_string_octets = 1u << 20;       // one JSON string
    std::size_t max_connections = 1000;
    std::size_t max_connections_per_ip = 50;
};

struct AuthConfig {
    std::size_t max_concurrent_hashes = 4;       // argon2id verifications at once (64 MiB each)
    std::size_t login_threads = 4;               // threads for sessions not yet authenticated (hashing)
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
    std::size_t max_batch = 256;               // deliveries per group commit
};

struct Config {
    std::string hostname;              // default: the machine's host name
    std::filesystem::path data_dir = "/var/lib/magpie";
    std::string user;                  // drop to this user after binding, when started as root
    std::string log_level = "info";
    std::size_t threads = 0;           // network threads; 0 = one per core
    std::uint32_t shutdown_timeout = 30;  // seconds SIGTERM waits for sessions to finish
    std::filesystem::path tls_certificate;
    std::filesystem::path tls_private_key;
    SmtpConfig smtp;
    ImapConfig imap;
    HttpConfig http;
    AuthConfig auth;
    StoreConfig store;
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
