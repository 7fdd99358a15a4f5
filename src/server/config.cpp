#include "server/config.h"

#include <unistd.h>

#include <limits>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "base/strings.h"

namespace magpie::server {
namespace {

std::string default_hostname() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
    return buf;
}

Result<ListenAddress> parse_listen(std::string_view text) {
    // "host:port", "[v6]:port"
    std::string_view host;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            return make_error(Errc::invalid_argument, fmt::format("bad listen address '{}'", text));
        }
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            return make_error(Errc::invalid_argument, fmt::format("listen address '{}' needs a port", text));
        }
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    auto number = parse_uint(port);
    if (!number || *number > 65535 || host.empty()) {
        return make_error(Errc::invalid_argument, fmt::format("bad listen address '{}'", text));
    }
    return ListenAddress{std::string(host), static_cast<std::uint16_t>(*number)};
}

// Reads one optional key into `out`, checking its type; unknown keys are reported by check_keys.
template <class T>
Result<void> read(const toml::table& table, std::string_view section, std::string_view key, T& out) {
    const toml::node* node = table.get(key);
    if (!node) return {};
    if constexpr (std::is_same_v<T, std::string>) {
        if (auto v = node->value<std::string>()) {
            out = *v;
            return {};
        }
    } else if constexpr (std::is_same_v<T, std::filesystem::path>) {
        if (auto v = node->value<std::string>()) {
            out = *v;
            return {};
        }
    } else if constexpr (std::is_same_v<T, bool>) {
        if (auto v = node->value<bool>()) {
            out = *v;
            return {};
        }
    } else {
        if (auto v = node->value<std::int64_t>(); v && *v >= 0 &&
                                                   static_cast<std::uint64_t>(*v) <= std::numeric_limits<T>::max()) {
            out = static_cast<T>(*v);
            return {};
        }
    }
    return make_error(Errc::invalid_argument, fmt::format("[{}] {}: wrong type or out of range", section, key));
}

Result<void> check_keys(const toml::table& table, std::string_view section,
                        std::initializer_list<std::string_view> known) {
    for (const auto& [key, value] : table) {
        bool found = false;
        for (auto k : known) found = found || k == key.str();
        if (!found) {
            return make_error(Errc::invalid_argument, fmt::format("[{}] unknown key '{}'", section, key.str()));
        }
    }
    return {};
}

Result<void> read_listen(const toml::table& table, std::string_view section, std::string_view key,
                         std::vector<ListenAddress>& out) {
    const toml::node* node = table.get(key);
    if (!node) return {};
    const toml::array* list = node->as_array();
    if (!list) return make_error(Errc::invalid_argument, fmt::format("[{}] {} must be an array of \"host:port\"", section, key));
    out.clear();
    for (const auto& item : *list) {
        auto text = item.value<std::string>();
        if (!text) return make_error(Errc::invalid_argument, fmt::format("[{}] {} entries are strings", section, key));
        auto address = parse_listen(*text);
        if (!address) return address.error();
        out.push_back(*address);
    }
    return {};
}

const toml::table* section(const toml::table& root, std::string_view name, Result<void>& status) {
    const toml::node* node = root.get(name);
    if (!node) return nullptr;
    if (!node->is_table()) status = make_error(Errc::invalid_argument, fmt::format("[{}] must be a table", name));
    return node->as_table();
}

Result<void> read_strings(const toml::table& table, std::string_view section, std::string_view key,
                          std::vector<std::string>& out) {
    const toml::node* node = table.get(key);
    if (!node) return {};
    const toml::array* list = node->as_array();
    if (!list) return make_error(Errc::invalid_argument, fmt::format("[{}] {} must be an array of strings", section, key));
    out.clear();
    for (const auto& item : *list) {
        auto text = item.value<std::string>();
        if (!text) return make_error(Errc::invalid_argument, fmt::format("[{}] {} entries are strings", section, key));
        out.push_back(to_lower(*text));
    }
    return {};
}

// A list of addresses and blocks ("10.0.0.0/8"), each checked (net::parse_ip_network).
Result<void> read_networks(const toml::table& table, std::string_view section, std::string_view key,
                           std::vector<net::IpNetwork>& out) {
    std::vector<std::string> texts;
    MAGPIE_TRY(read_strings(table, section, key, texts));
    out.clear();
    for (const auto& text : texts) {
        auto network = net::parse_ip_network(text);
        if (!network) {
            return make_error(Errc::invalid_argument,
                              fmt::format("[{}] {}: {}", section, key, network.error().message));
        }
        out.push_back(*network);
    }
    return {};
}

// One [[queue.route]] table: domain, host, port, require_tls, implicit_tls, username, password.
Result<delivery::StaticRoute> read_route(const toml::table& t) {
    delivery::StaticRoute route;
    MAGPIE_TRY(check_keys(t, "queue.route",
                          {"domain", "host", "port", "require_tls", "implicit_tls", "username", "password"}));
    MAGPIE_TRY(read(t, "queue.route", "domain", route.domain));
    MAGPIE_TRY(read(t, "queue.route", "host", route.host));
    MAGPIE_TRY(read(t, "queue.route", "port", route.port));
    MAGPIE_TRY(read(t, "queue.route", "require_tls", route.require_tls));
    MAGPIE_TRY(read(t, "queue.route", "implicit_tls", route.implicit_tls));
    MAGPIE_TRY(read(t, "queue.route", "username", route.username));
    MAGPIE_TRY(read(t, "queue.route", "password", route.password));
    route.domain = to_lower(route.domain);
    if (route.domain.empty() || route.host.empty() || route.port == 0) {
        return make_error(Errc::invalid_argument, "[[queue.route]] needs domain, host and a non-zero port");
    }
    return route;
}

// [http]'s webmail keys (issue 15).
Result<void> read_webmail(const toml::table& t, HttpConfig& s) {
    MAGPIE_TRY(read(t, "http", "webmail_dir", s.webmail_dir));
    MAGPIE_TRY(read(t, "http", "webmail_max_octets", s.webmail_max_octets));
    MAGPIE_TRY(read(t, "http", "webmail_session_idle", s.webmail_session_idle));
    MAGPIE_TRY(read(t, "http", "webmail_session_lifetime", s.webmail_session_lifetime));
    MAGPIE_TRY(read(t, "http", "webmail_max_sessions", s.webmail_max_sessions));
    MAGPIE_TRY(read(t, "http", "webmail_max_sessions_per_account", s.webmail_max_sessions_per_account));
    if (s.webmail_max_octets == 0 || s.webmail_session_idle < 60 ||
        s.webmail_session_lifetime < s.webmail_session_idle || s.webmail_max_sessions == 0 ||
        s.webmail_max_sessions_per_account == 0) {
        return make_error(Errc::invalid_argument,
                          "[http] webmail limits must be positive (session_idle >= 60, lifetime >= idle)");
    }
    return {};
}

Result<void> read_queue(const toml::table& t, QueueConfig& q) {
    MAGPIE_TRY(check_keys(t, "queue",
                          {"enabled", "retry_intervals", "lifetime", "delay_notice_after", "connect_timeout",
                           "command_timeout", "data_timeout", "idle_keep", "max_connections", "max_connections_per_host",
                           "max_messages_per_connection", "resolver", "dns_timeout", "mx_port", "max_mx_hosts",
                           "max_addresses_per_host", "require_tls",
                           "smart_host", "route", "poll_interval", "lease_time", "batch", "keep_finished",
                           "max_transcript", "dane"}));
    MAGPIE_TRY(read(t, "queue", "enabled", q.enabled));
    if (const toml::node* node = t.get("retry_intervals")) {
        const toml::array* list = node->as_array();
        if (!list) return make_error(Errc::invalid_argument, "[queue] retry_intervals must be an array of seconds");
        q.retry.intervals.clear();
        for (const auto& item : *list) {
            auto v = item.value<std::int64_t>();
            if (!v || *v <= 0 || *v > std::numeric_limits<std::uint32_t>::max()) {
                return make_error(Errc::invalid_argument, "[queue] retry_intervals are positive seconds");
            }
            q.retry.intervals.push_back(static_cast<std::uint32_t>(*v));
        }
    }
    MAGPIE_TRY(read(t, "queue", "lifetime", q.retry.lifetime));
    MAGPIE_TRY(read(t, "queue", "delay_notice_after", q.retry.delay_notice_after));
    MAGPIE_TRY(read(t, "queue", "connect_timeout", q.connect_timeout));
    MAGPIE_TRY(read(t, "queue", "command_timeout", q.command_timeout));
    MAGPIE_TRY(read(t, "queue", "data_timeout", q.data_timeout));
    MAGPIE_TRY(read(t, "queue", "idle_keep", q.idle_keep));
    MAGPIE_TRY(read(t, "queue", "max_connections", q.max_connections));
    MAGPIE_TRY(read(t, "queue", "max_connections_per_host", q.max_connections_per_host));
    MAGPIE_TRY(read(t, "queue", "max_messages_per_connection", q.max_messages_per_connection));
    MAGPIE_TRY(read(t, "queue", "resolver", q.resolver));
    MAGPIE_TRY(read(t, "queue", "dns_timeout", q.dns_timeout));
    MAGPIE_TRY(read(t, "queue", "mx_port", q.mx_port));
    MAGPIE_TRY(read(t, "queue", "max_mx_hosts", q.max_mx_hosts));
    MAGPIE_TRY(read(t, "queue", "max_addresses_per_host", q.max_addresses_per_host));
    MAGPIE_TRY(read_strings(t, "queue", "require_tls", q.routing.require_tls));
    MAGPIE_TRY(read(t, "queue", "poll_interval", q.poll_interval));
    MAGPIE_TRY(read(t, "queue", "lease_time", q.lease_time));
    MAGPIE_TRY(read(t, "queue", "batch", q.batch));
    MAGPIE_TRY(read(t, "queue", "keep_finished", q.keep_finished));
    MAGPIE_TRY(read(t, "queue", "max_transcript", q.max_transcript));
    MAGPIE_TRY(read(t, "queue", "dane", q.dane));
    q.routing.routes.clear();
    if (const toml::node* node = t.get("route")) {
        const toml::array* list = node->as_array();
        if (!list) return make_error(Errc::invalid_argument, "[[queue.route]] must be an array of tables");
        for (const auto& item : *list) {
            const toml::table* table = item.as_table();
            if (!table) return make_error(Errc::invalid_argument, "[[queue.route]] entries are tables");
            auto route = read_route(*table);
            if (!route) return route.error();
            q.routing.routes.push_back(std::move(*route));
        }
    }
    if (const toml::node* node = t.get("smart_host")) {
        const toml::table* table = node->as_table();
        if (!table) return make_error(Errc::invalid_argument, "[queue.smart_host] must be a table");
        toml::table copy = *table;
        copy.insert_or_assign("domain", "*");
        auto route = read_route(copy);
        if (!route) return route.error();
        q.routing.routes.push_back(std::move(*route));
    }
    MAGPIE_TRY(delivery::validate(q.retry));
    if (q.connect_timeout == 0 || q.command_timeout == 0 || q.data_timeout == 0 || q.max_connections == 0 ||
        q.max_connections_per_host == 0 || q.max_messages_per_connection == 0 || q.dns_timeout == 0 ||
        q.mx_port == 0 || q.max_mx_hosts == 0 || q.max_addresses_per_host == 0 || q.poll_interval == 0 || q.lease_time == 0 || q.batch == 0 || q.max_transcript == 0) {
        return make_error(Errc::invalid_argument, "[queue] limits and timeouts must be positive");
    }
    return {};
}

Result<void> read_mailauth(const toml::table& t, MailauthConfig& m) {
    MAGPIE_TRY(check_keys(t, "mailauth",
                          {"spf", "dkim", "dmarc", "dmarc_policy", "resolver", "dns_timeout", "max_time",
                           "max_dns_mechanisms", "max_void_lookups", "max_signatures", "threads"}));
    MAGPIE_TRY(read(t, "mailauth", "spf", m.spf));
    MAGPIE_TRY(read(t, "mailauth", "dkim", m.dkim));
    MAGPIE_TRY(read(t, "mailauth", "dmarc", m.dmarc));
    MAGPIE_TRY(read(t, "mailauth", "dmarc_policy", m.dmarc_policy));
    MAGPIE_TRY(read(t, "mailauth", "resolver", m.resolver));
    MAGPIE_TRY(read(t, "mailauth", "dns_timeout", m.dns_timeout));
    MAGPIE_TRY(read(t, "mailauth", "max_time", m.max_time));
    MAGPIE_TRY(read(t, "mailauth", "max_dns_mechanisms", m.max_dns_mechanisms));
    MAGPIE_TRY(read(t, "mailauth", "max_void_lookups", m.max_void_lookups));
    MAGPIE_TRY(read(t, "mailauth", "max_signatures", m.max_signatures));
    MAGPIE_TRY(read(t, "mailauth", "threads", m.threads));
    if (m.dmarc_policy != "record" && m.dmarc_policy != "enforce")
        return make_error(Errc::invalid_argument, "[mailauth] dmarc_policy is \"record\" or \"enforce\"");
    if (m.dns_timeout == 0 || m.max_time == 0 || m.max_signatures == 0 || m.threads == 0 ||
        m.max_dns_mechanisms == 0 || m.max_dns_mechanisms > 100 || m.max_void_lookups > 100)
        return make_error(Errc::invalid_argument,
                          "[mailauth] timeouts, max_signatures and threads are positive; SPF limits 1..100");
    return {};
}

Result<void> read_mta_sts(const toml::table& t, MtaStsConfig& m) {
    MAGPIE_TRY(check_keys(t, "mta_sts", {"enabled", "fetch_timeout", "mode", "max_age"}));
    MAGPIE_TRY(read(t, "mta_sts", "enabled", m.enabled));
    MAGPIE_TRY(read(t, "mta_sts", "fetch_timeout", m.fetch_timeout));
    MAGPIE_TRY(read(t, "mta_sts", "mode", m.mode));
    MAGPIE_TRY(read(t, "mta_sts", "max_age", m.max_age));
    if (m.mode != "enforce" && m.mode != "testing" && m.mode != "none")
        return make_error(Errc::invalid_argument, "[mta_sts] mode is \"enforce\", \"testing\" or \"none\"");
    if (m.fetch_timeout == 0 || m.max_age > 31557600)
        return make_error(Errc::invalid_argument, "[mta_sts] fetch_timeout is positive, max_age at most 31557600");
    return {};
}

Result<void> read_tlsrpt(const toml::table& t, TlsRptConfig& r) {
    MAGPIE_TRY(check_keys(t, "tlsrpt", {"record", "max_day_octets"}));
    MAGPIE_TRY(read(t, "tlsrpt", "record", r.record));
    MAGPIE_TRY(read(t, "tlsrpt", "max_day_octets", r.max_day_octets));
    if (r.max_day_octets == 0) return make_error(Errc::invalid_argument, "[tlsrpt] max_day_octets is positive");
    return {};
}

Result<void> read_autoconfig(const toml::table& t, AutoconfigConfig& a) {
    MAGPIE_TRY(check_keys(t, "autoconfig",
                          {"hostname", "imaps_port", "imap_port", "submissions_port", "submission_port"}));
    MAGPIE_TRY(read(t, "autoconfig", "hostname", a.hostname));
    for (auto [key, port] : {std::pair{"imaps_port", &a.imaps_port}, std::pair{"imap_port", &a.imap_port},
                             std::pair{"submissions_port", &a.submissions_port},
                             std::pair{"submission_port", &a.submission_port}}) {
        if (!t.get(key)) continue;
        std::uint16_t value = 0;
        MAGPIE_TRY(read(t, "autoconfig", key, value));
        *port = value;
    }
    return {};
}

}  // namespace

Result<Config> load_config(const std::filesystem::path& file) {
    toml::table root;
    try {
        root = toml::parse_file(file.string());
    } catch (const toml::parse_error& e) {
        return make_error(Errc::invalid_argument,
                          fmt::format("{}:{}: {}", file.string(), e.source().begin.line, e.description()));
    }
    Config config;
    config.hostname = default_hostname();
    Result<void> status;
    MAGPIE_TRY(check_keys(root, "top level",
                          {"server", "tls", "smtp", "submission", "imap", "http", "auth", "store", "queue",
                           "mailauth", "mta_sts", "tlsrpt", "autoconfig"}));

    if (auto* t = section(root, "server", status)) {
        MAGPIE_TRY(check_keys(*t, "server",
                              {"hostname", "data_dir", "user", "log_level", "threads", "shutdown_timeout",
                               "proxy_trusted_networks"}));
        MAGPIE_TRY(read(*t, "server", "hostname", config.hostname));
        MAGPIE_TRY(read(*t, "server", "data_dir", config.data_dir));
        MAGPIE_TRY(read(*t, "server", "user", config.user));
        MAGPIE_TRY(read(*t, "server", "log_level", config.log_level));
        MAGPIE_TRY(read(*t, "server", "threads", config.threads));
        MAGPIE_TRY(read(*t, "server", "shutdown_timeout", config.shutdown_timeout));
        MAGPIE_TRY(read_networks(*t, "server", "proxy_trusted_networks", config.proxy_trusted_networks));
    }
    MAGPIE_TRY(status);
    if (auto* t = section(root, "tls", status)) {
        MAGPIE_TRY(check_keys(*t, "tls", {"certificate", "private_key"}));
        MAGPIE_TRY(read(*t, "tls", "certificate", config.tls_certificate));
        MAGPIE_TRY(read(*t, "tls", "private_key", config.tls_private_key));
        if (config.tls_certificate.empty() != config.tls_private_key.empty()) {
            return make_error(Errc::invalid_argument, "[tls] needs both certificate and private_key");
        }
    }
    MAGPIE_TRY(status);
    if (auto* t = section(root, "smtp", status)) {
        auto& s = config.smtp;
        MAGPIE_TRY(
            check_keys(*t, "smtp",
                       {"listen", "max_command_line", "max_text_line", "max_message_size", "max_recipients",
                        "max_bad_commands", "max_junk_commands", "idle_timeout", "min_data_rate",
                        "max_transaction_time", "max_connections", "max_connections_per_ip",
                        "bare_line_ending", "add_missing_headers", "postmaster", "vacation_max_senders",
                        "recipient_cache_seconds", "recipient_cache_entries"}));
        MAGPIE_TRY(read_listen(*t, "smtp", "listen", s.listen));
        MAGPIE_TRY(read(*t, "smtp", "max_command_line", s.max_command_line));
        MAGPIE_TRY(read(*t, "smtp", "max_text_line", s.max_text_line));
        MAGPIE_TRY(read(*t, "smtp", "max_message_size", s.max_message_size));
        MAGPIE_TRY(read(*t, "smtp", "max_recipients", s.max_recipients));
        MAGPIE_TRY(read(*t, "smtp", "max_bad_commands", s.max_bad_commands));
        MAGPIE_TRY(read(*t, "smtp", "max_junk_commands", s.max_junk_commands));
        MAGPIE_TRY(read(*t, "smtp", "idle_timeout", s.idle_timeout));
        MAGPIE_TRY(read(*t, "smtp", "max_connections", s.max_connections));
        MAGPIE_TRY(read(*t, "smtp", "max_connections_per_ip", s.max_connections_per_ip));
        MAGPIE_TRY(read(*t, "smtp", "bare_line_ending", s.bare_line_ending));
        MAGPIE_TRY(read(*t, "smtp", "min_data_rate", s.min_data_rate));
        MAGPIE_TRY(read(*t, "smtp", "max_transaction_time", s.max_transaction_time));
        MAGPIE_TRY(read(*t, "smtp", "add_missing_headers", s.add_missing_headers));
        MAGPIE_TRY(read(*t, "smtp", "postmaster", s.postmaster));
        MAGPIE_TRY(read(*t, "smtp", "vacation_max_senders", s.vacation_max_senders));
        MAGPIE_TRY(read(*t, "smtp", "recipient_cache_seconds", s.recipient_cache_seconds));
        MAGPIE_TRY(read(*t, "smtp", "recipient_cache_entries", s.recipient_cache_entries));
        if (s.recipient_cache_seconds > 3600 || s.recipient_cache_entries > 1000000) {
            return make_error(Errc::invalid_argument,
                              "[smtp] recipient_cache_seconds is at most 3600, recipient_cache_entries at most 1000000");
        }
        if (s.bare_line_ending != "reject" && s.bare_line_ending != "normalize") {
            return make_error(Errc::invalid_argument, "[smtp] bare_line_ending is \"reject\" or \"normalize\"");
        }
        if (s.add_missing_headers != "never" && s.add_missing_headers != "headerless" &&
            s.add_missing_headers != "always") {
            return make_error(Errc::invalid_argument,
                              "[smtp] add_missing_headers is \"never\", \"headerless\" or \"always\"");
        }
        if (!s.postmaster.empty() && (s.postmaster.find('@') == std::string::npos ||
                                      s.postmaster.front() == '@' || s.postmaster.back() == '@')) {
            return make_error(Errc::invalid_argument,
                              "[smtp] postmaster must be an account's address (user@domain)");
        }
        // Each remembered sender is kept in one JSON object of the store (at most 1 MiB): bounded above too.
        if (s.vacation_max_senders == 0 || s.vacation_max_senders > 10000) {
            return make_error(Errc::invalid_argument, "[smtp] vacation_max_senders is 1 to 10000");
        }
        if (s.min_data_rate == 0 || s.max_transaction_time == 0) {
            return make_error(Errc::invalid_argument,
                              "[smtp] min_data_rate and max_transaction_time must be positive");
        }
        // RFC 5321 4.5.3.1.4's 512 plus what the offered extensions add to MAIL (smtp/server_session.h).
        if (s.max_command_line < 1148 || s.max_text_line < 1000) {
            return make_error(
                Errc::invalid_argument,
                "[smtp] max_command_line >= 1148 (RFC 5321 4.5.3.1.4 with the DSN, SIZE, AUTH and "
                "SMTPUTF8 extensions) and max_text_line >= 1000 (RFC 5321 4.5.3.1.6)");
        }
        if (s.max_recipients == 0 || s.max_connections == 0 || s.max_connections_per_ip == 0 ||
            s.idle_timeout == 0 || s.max_message_size == 0) {
            return make_error(Errc::invalid_argument, "[smtp] limits must be positive");
        }
    }
    MAGPIE_TRY(status);
    if (auto* t = section(root, "submission", status)) {
        auto& s = config.submission;
        MAGPIE_TRY(check_keys(*t, "submission",
                              {"listen", "listen_tls", "allow_plaintext_auth", "save_sent", "max_auth_line",
                               "max_connections", "max_connections_per_ip"}));
        MAGPIE_TRY(read_listen(*t, "submission", "listen", s.listen));
        MAGPIE_TRY(read_listen(*t, "submission", "listen_tls", s.listen_tls));
        MAGPIE_TRY(read(*t, "submission", "allow_plaintext_auth", s.allow_plaintext_auth));
        MAGPIE_TRY(read(*t, "submission", "save_sent", s.save_sent));
        MAGPIE_TRY(read(*t, "submission", "max_auth_line", s.max_auth_line));
        MAGPIE_TRY(read(*t, "submission", "max_connections", s.max_connections));
        MAGPIE_TRY(read(*t, "submission", "max_connections_per_ip", s.max_connections_per_ip));
        if (s.max_auth_line < 12288 || s.max_auth_line > 1u << 20) {
            return make_error(Errc::invalid_argument, "[submission] max_auth_line is between 12288 and 1048576");
        }
        if (s.max_connections == 0 || s.max_connections_per_ip == 0) {
            return make_error(Errc::invalid_argument, "[submission] connection limits must be positive");
        }
    }
    MAGPIE_TRY(status);
    if (auto* t = section(root, "imap", status)) {
        auto& s = config.imap;
        MAGPIE_TRY(check_keys(
            *t, "imap",
            {"listen", "listen_tls", "allow_plaintext_login", "idle_timeout", "idle_keepalive_interval",
             "max_line_octets", "max_literal_octets", "max_nesting_depth", "max_sequence_set_ranges",
             "max_search_keys", "output_slice_octets", "max_connections", "max_connections_per_ip",
             "max_connections_per_user_ip", "write_threads", "search_cache_messages"}));
        MAGPIE_TRY(read_listen(*t, "imap", "listen", s.listen));
        MAGPIE_TRY(read_listen(*t, "imap", "listen_tls", s.listen_tls));
        MAGPIE_TRY(read(*t, "imap", "allow_plaintext_login", s.allow_plaintext_login));
        MAGPIE_TRY(read(*t, "imap", "idle_timeout", s.idle_timeout));
        MAGPIE_TRY(read(*t, "imap", "idle_keepalive_interval", s.idle_keepalive_interval));
        MAGPIE_TRY(read(*t, "imap", "max_line_octets", s.max_line_octets));
        MAGPIE_TRY(read(*t, "imap", "max_literal_octets", s.max_literal_octets));
        MAGPIE_TRY(read(*t, "imap", "max_nesting_depth", s.max_nesting_depth));
        MAGPIE_TRY(read(*t, "imap", "max_sequence_set_ranges", s.max_sequence_set_ranges));
        MAGPIE_TRY(read(*t, "imap", "max_search_keys", s.max_search_keys));
        MAGPIE_TRY(read(*t, "imap", "output_slice_octets", s.output_slice_octets));
        MAGPIE_TRY(read(*t, "imap", "max_connections", s.max_connections));
        MAGPIE_TRY(read(*t, "imap", "max_connections_per_ip", s.max_connections_per_ip));
        MAGPIE_TRY(read(*t, "imap", "max_connections_per_user_ip", s.max_connections_per_user_ip));
        MAGPIE_TRY(read(*t, "imap", "write_threads", s.write_threads));
        MAGPIE_TRY(read(*t, "imap", "search_cache_messages", s.search_cache_messages));
        if (s.max_line_octets < 1000 || s.max_literal_octets == 0 || s.max_nesting_depth == 0 ||
            s.max_sequence_set_ranges == 0 || s.max_search_keys == 0 || s.max_connections == 0 ||
            s.max_connections_per_ip == 0 || s.max_connections_per_user_ip == 0 || s.write_threads == 0) {
            return make_error(Errc::invalid_argument, "[imap] limits must be positive (max_line_octets >= 1000)");
        }
        if (s.idle_timeout < 60) return make_error(Errc::invalid_argument, "[imap] idle_timeout is at least 60");
        if (s.output_slice_octets < 4096 || s.output_slice_octets > (64u << 20))
            return make_error(Errc::invalid_argument, "[imap] output_slice_octets is 4096 to 67108864");
        if (s.idle_keepalive_interval == 0)
            return make_error(Errc::invalid_argument, "[imap] idle_keepalive_interval is at least 1");
    }
    MAGPIE_TRY(status);
    if (auto* t = section(root, "http", status)) {
        auto& s = config.http;
        MAGPIE_TRY(check_keys(*t, "http",
                              {"listen", "listen_tls", "allow_plaintext_login", "idle_timeout", "max_header_octets",
                               "max_request_octets", "max_upload_octets", "max_concurrent_requests",
                               "max_concurrent_uploads", "max_calls_in_request", "max_objects_in_get",
                               "max_objects_in_set", "max_query_message_reads", "max_search_terms", "max_json_depth",
                               "max_json_string_octets", "max_connections", "max_connections_per_ip",
                               "max_connections_per_user_ip", "reverse_proxies", "websocket_ping_interval",
                               "websocket_idle_timeout", "webmail_dir", "webmail_max_octets", "webmail_session_idle",
                               "webmail_session_lifetime", "webmail_max_sessions", "webmail_max_sessions_per_account",
                               "max_submission_recipients", "max_changes", "api_threads", "write_threads",
                               "websocket_close_timeout"}));
        MAGPIE_TRY(read_listen(*t, "http", "listen", s.listen));
        MAGPIE_TRY(read_listen(*t, "http", "listen_tls", s.listen_tls));
        MAGPIE_TRY(read(*t, "http", "allow_plaintext_login", s.allow_plaintext_login));
        MAGPIE_TRY(read(*t, "http", "idle_timeout", s.idle_timeout));
        MAGPIE_TRY(read(*t, "http", "max_header_octets", s.max_header_octets));
        MAGPIE_TRY(read(*t, "http", "max_request_octets", s.max_request_octets));
        MAGPIE_TRY(read(*t, "http", "max_upload_octets", s.max_upload_octets));
        MAGPIE_TRY(read(*t, "http", "max_concurrent_requests", s.max_concurrent_requests));
        MAGPIE_TRY(read(*t, "http", "max_concurrent_uploads", s.max_concurrent_uploads));
        MAGPIE_TRY(read(*t, "http", "max_calls_in_request", s.max_calls_in_request));
        MAGPIE_TRY(read(*t, "http", "max_objects_in_get", s.max_objects_in_get));
        MAGPIE_TRY(read(*t, "http", "max_objects_in_set", s.max_objects_in_set));
        MAGPIE_TRY(read(*t, "http", "max_query_message_reads", s.max_query_message_reads));
        MAGPIE_TRY(read(*t, "http", "max_search_terms", s.max_search_terms));
        MAGPIE_TRY(read(*t, "http", "max_submission_recipients", s.max_submission_recipients));
        MAGPIE_TRY(read(*t, "http", "max_changes", s.max_changes));
        MAGPIE_TRY(read(*t, "http", "api_threads", s.api_threads));
        MAGPIE_TRY(read(*t, "http", "write_threads", s.write_threads));
        MAGPIE_TRY(read(*t, "http", "max_json_depth", s.max_json_depth));
        MAGPIE_TRY(read(*t, "http", "max_json_string_octets", s.max_json_string_octets));
        MAGPIE_TRY(read(*t, "http", "max_connections", s.max_connections));
        MAGPIE_TRY(read(*t, "http", "max_connections_per_ip", s.max_connections_per_ip));
        MAGPIE_TRY(read(*t, "http", "max_connections_per_user_ip", s.max_connections_per_user_ip));
        MAGPIE_TRY(read_networks(*t, "http", "reverse_proxies", s.reverse_proxies));
        MAGPIE_TRY(read(*t, "http", "websocket_ping_interval", s.websocket_ping_interval));
        MAGPIE_TRY(read(*t, "http", "websocket_idle_timeout", s.websocket_idle_timeout));
        MAGPIE_TRY(read(*t, "http", "websocket_close_timeout", s.websocket_close_timeout));
        MAGPIE_TRY(read_webmail(*t, s));
        if (s.idle_timeout == 0 || s.max_header_octets < 1024 || s.max_request_octets == 0 ||
            s.max_upload_octets == 0 || s.max_concurrent_requests == 0 || s.max_concurrent_uploads == 0 ||
            s.max_calls_in_request == 0 || s.max_objects_in_get == 0 || s.max_objects_in_set == 0 ||
            s.max_query_message_reads == 0 || s.max_search_terms == 0 || s.max_submission_recipients == 0 ||
            s.max_changes == 0 || s.api_threads == 0 || s.write_threads == 0 || s.max_json_depth == 0 ||
            s.max_json_string_octets == 0 || s.max_connections == 0 || s.max_connections_per_ip == 0 ||
            s.max_connections_per_user_ip == 0 || s.websocket_ping_interval == 0 ||
            s.websocket_idle_timeout == 0) {
            return make_error(Errc::invalid_argument, "[http] limits must be positive (max_header_octets >= 1024)");
        }
    }
    MAGPIE_TRY(status);
    if (auto* t = section(root, "auth", status)) {
        auto& s = config.auth;
        MAGPIE_TRY(check_keys(*t, "auth",
                              {"max_concurrent_hashes", "login_threads", "hash_nice",
                               "verified_cache_seconds", "verified_cache_entries", "max_user_failures",
                               "max_ip_failures", "failure_window", "first_lockout", "max_lockout"}));
        MAGPIE_TRY(read(*t, "auth", "max_concurrent_hashes", s.max_concurrent_hashes));
        MAGPIE_TRY(read(*t, "auth", "login_threads", s.login_threads));
        MAGPIE_TRY(read(*t, "auth", "hash_nice", s.hash_nice));
        if (s.hash_nice < 0 || s.hash_nice > 19) {
            return make_error(Errc::invalid_argument, "[auth] hash_nice is 0 to 19");
        }
        MAGPIE_TRY(read(*t, "auth", "verified_cache_seconds", s.verified_cache_seconds));
        MAGPIE_TRY(read(*t, "auth", "verified_cache_entries", s.verified_cache_entries));
        if (s.verified_cache_seconds > 3600) {
            return make_error(Errc::invalid_argument, "[auth] verified_cache_seconds is at most 3600");
        }
        MAGPIE_TRY(read(*t, "auth", "max_user_failures", s.max_user_failures));
        MAGPIE_TRY(read(*t, "auth", "max_ip_failures", s.max_ip_failures));
        MAGPIE_TRY(read(*t, "auth", "failure_window", s.failure_window));
        MAGPIE_TRY(read(*t, "auth", "first_lockout", s.first_lockout));
        MAGPIE_TRY(read(*t, "auth", "max_lockout", s.max_lockout));
        if (s.max_concurrent_hashes == 0 || s.login_threads == 0 || s.max_user_failures == 0 || s.max_ip_failures == 0 ||
            s.failure_window == 0) {
            return make_error(Errc::invalid_argument, "[auth] limits must be positive");
        }
    }
    MAGPIE_TRY(status);
    if (auto* t = section(root, "store", status)) {
        auto& s = config.store;
        MAGPIE_TRY(
            check_keys(*t, "store",
                       {"backend", "threads", "lookup_threads", "inline_blob_max", "compression_level",
                        "states_cache_messages", "max_batch", "checkpoint_frames", "dsn", "password_file",
                        "pool_size", "prepared_statements", "max_thread_references", "thread_subject_window",
                        "max_query_results", "max_filter_nodes", "migrate_batch_rows"}));
        MAGPIE_TRY(read(*t, "store", "backend", s.backend));
        MAGPIE_TRY(read(*t, "store", "threads", s.threads));
        MAGPIE_TRY(read(*t, "store", "lookup_threads", s.lookup_threads));
        MAGPIE_TRY(read(*t, "store", "inline_blob_max", s.inline_blob_max));
        MAGPIE_TRY(read(*t, "store", "compression_level", s.compression_level));
        MAGPIE_TRY(read(*t, "store", "states_cache_messages", s.states_cache_messages));
        MAGPIE_TRY(read(*t, "store", "max_batch", s.max_batch));
        MAGPIE_TRY(read(*t, "store", "checkpoint_frames", s.checkpoint_frames));
        MAGPIE_TRY(read(*t, "store", "dsn", s.dsn));
        MAGPIE_TRY(read(*t, "store", "password_file", s.password_file));
        MAGPIE_TRY(read(*t, "store", "pool_size", s.pool_size));
        MAGPIE_TRY(read(*t, "store", "prepared_statements", s.prepared_statements));
        MAGPIE_TRY(read(*t, "store", "max_thread_references", s.max_thread_references));
        MAGPIE_TRY(read(*t, "store", "thread_subject_window", s.thread_subject_window));
        MAGPIE_TRY(read(*t, "store", "max_query_results", s.max_query_results));
        MAGPIE_TRY(read(*t, "store", "max_filter_nodes", s.max_filter_nodes));
        MAGPIE_TRY(read(*t, "store", "migrate_batch_rows", s.migrate_batch_rows));
        if (s.backend != "sqlite" && s.backend != "postgres") {
            return make_error(Errc::invalid_argument, "[store] backend: \"sqlite\" or \"postgres\"");
        }
        if (s.backend == "postgres" && s.dsn.empty()) {
            return make_error(Errc::invalid_argument, "[store] backend \"postgres\" needs a dsn");
        }
        if (s.compression_level > 19) {
            return make_error(Errc::invalid_argument, "[store] compression_level: 0 (off) to 19");
        }
        if (s.checkpoint_frames < 100 || s.checkpoint_frames > 1000000) {
            return make_error(Errc::invalid_argument, "[store] checkpoint_frames: 100 to 1000000");
        }
        if (s.prepared_statements > 10000) {
            return make_error(Errc::invalid_argument, "[store] prepared_statements: 0 (none) to 10000");
        }
        if (s.states_cache_messages > 100000000) {
            return make_error(Errc::invalid_argument, "[store] states_cache_messages: 0 (off) to 100000000");
        }
        if (s.threads == 0 || s.lookup_threads == 0 || s.max_batch == 0 || s.pool_size == 0) {
            return make_error(Errc::invalid_argument,
                              "[store] threads, lookup_threads, max_batch and pool_size must be positive");
        }
        // Each reference is an indexed lookup inside the delivery's transaction, and each query result id a
        // row held in memory: bounded above so a configuration cannot make one message or query unbounded.
        if (s.max_thread_references == 0 || s.max_thread_references > 1000 || s.max_query_results == 0 ||
            s.max_query_results > 1000000 || s.max_filter_nodes == 0 || s.max_filter_nodes > 10000 ||
            s.thread_subject_window > 3660u * 86400 || s.migrate_batch_rows == 0 || s.migrate_batch_rows > 100000) {
            return make_error(Errc::invalid_argument,
                              "[store] max_thread_references 1..1000, max_query_results 1..1000000, "
                              "max_filter_nodes 1..10000, thread_subject_window at most 3660 days, "
                              "migrate_batch_rows 1..100000");
        }
    }
    MAGPIE_TRY(status);
    if (auto* t = section(root, "queue", status)) MAGPIE_TRY(read_queue(*t, config.queue));
    MAGPIE_TRY(status);
    if (auto* t = section(root, "mailauth", status)) MAGPIE_TRY(read_mailauth(*t, config.mailauth));
    MAGPIE_TRY(status);
    if (auto* t = section(root, "mta_sts", status)) MAGPIE_TRY(read_mta_sts(*t, config.mta_sts));
    MAGPIE_TRY(status);
    if (auto* t = section(root, "tlsrpt", status)) MAGPIE_TRY(read_tlsrpt(*t, config.tlsrpt));
    MAGPIE_TRY(status);
    if (auto* t = section(root, "autoconfig", status)) MAGPIE_TRY(read_autoconfig(*t, config.autoconfig));
    MAGPIE_TRY(status);
    if (config.hostname.empty()) return make_error(Errc::invalid_argument, "[server] hostname is empty");
    return config;
}

Config demo_config(const std::filesystem::path& data_dir) {
    Config config;
    config.demo = true;
    config.hostname = "mail.example.test";
    config.data_dir = data_dir;
    config.tls_certificate = data_dir / "demo-cert.pem";
    config.tls_private_key = data_dir / "demo-key.pem";
    config.smtp.listen = {{"127.0.0.1", demo_ports::smtp}};
    config.imap.listen = {{"127.0.0.1", demo_ports::imap}};
    config.submission.listen = {{"127.0.0.1", demo_ports::submission}};
    config.submission.listen_tls = {{"127.0.0.1", demo_ports::submissions}};
    config.submission.allow_plaintext_auth = true;  // loopback only, as for IMAP
    config.imap.listen_tls = {{"127.0.0.1", demo_ports::imaps}};
    config.imap.allow_plaintext_login = true;  // loopback only: the demo binds nothing else
    config.smtp.postmaster = "demo@example.test";  // the demo's one user (server.cpp creates it)
    config.http.listen = {{"127.0.0.1", demo_ports::http}};
    config.http.allow_plaintext_login = true;  // loopback only, as for IMAP
    return config;
}

}  // namespace magpie::server
