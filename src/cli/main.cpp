// magpie: administration of a Magpie store (domains, users, aliases, export, check, gc). It opens the same
// store magpied uses, found with the same -c FILE / --data DIR flags; SQLite lets it work beside a running
// magpied.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "auth/password.h"
#include "base/file.h"
#include "base/time.h"
#include "cli/dns.h"
#include "cli/tlsrpt.h"
#include "cli/mail.h"
#include "cli/password_input.h"
#include "cli/queue.h"
#include "cli/token.h"
#include "server/config.h"
#include "server/store_factory.h"
#include "store/store.h"

namespace {

using magpie::Result;

int fail(const std::string& message) {
    std::cerr << "magpie: " << message << "\n";
    return 1;
}

// The configuration magpied would use: the file's, or the defaults with --data (or ./magpie-data) as the data
// directory. One reading of the configuration for both programs (src/server/config.h).
Result<magpie::server::Config> config_from(const std::string& config_file, const std::string& data_dir) {
    magpie::server::Config config;
    if (!config_file.empty()) {
        auto loaded = magpie::server::load_config(config_file);
        if (!loaded) return loaded.error();
        config = std::move(*loaded);
    } else {
        config.data_dir = "magpie-data";
    }
    if (!data_dir.empty()) config.data_dir = data_dir;
    return config;
}

Result<std::unique_ptr<magpie::store::Store>> open_or_create_store(const magpie::server::Config& config, bool read_only) {
    if (!read_only) {
        std::error_code ec;
        std::filesystem::create_directories(config.data_dir, ec);
    }
    return magpie::server::open_store(config, read_only);
}

// Writes all of `bytes` to standard output, unbuffered: message bytes may hold anything.
bool write_stdout(std::string_view bytes) { return magpie::write_all(STDOUT_FILENO, bytes) == 0; }

// mboxrd (one "From " line per message, ">"-quoting of lines that match />*From /), LF line ends.
std::string to_mboxrd(const magpie::store::Message& message, std::string_view content) {
    std::string out = fmt::format("From MAILER-DAEMON {}\n", message.internal_date);
    std::size_t pos = 0;
    while (pos < content.size()) {
        std::size_t end = content.find('\n', pos);
        std::string_view line = content.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
        pos = end == std::string_view::npos ? content.size() : end + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        std::size_t gt = line.find_first_not_of('>');
        if (gt != std::string_view::npos && line.substr(gt).starts_with("From ")) out += '>';
        out += line;
        out += '\n';
    }
    out += '\n';
    return out;
}

// A DSN is "key=value ..." or a postgres:// URI; anything else is a data directory.
bool is_dsn(std::string_view text) {
    return text.find('=') != std::string_view::npos || text.starts_with("postgres://") ||
           text.starts_with("postgresql://");
}

// `magpie migrate --from A --to B`: one side a data directory, the other a PostgreSQL DSN. The password comes
// from PGPASSWORD / ~/.pgpass, or from [store] password_file when -c names a configuration.
int migrate(const magpie::server::Config& config, const std::string& from, const std::string& to,
            std::size_t batch_rows) {
    magpie::store::PostgresOptions options;
    if (config.store.backend == "postgres" || !config.store.password_file.empty()) {
        auto configured = magpie::server::postgres_options(config);
        if (!configured) return fail(configured.error().message);
        options = *configured;
    }
    options.migrate_batch_rows = batch_rows != 0 ? batch_rows : config.store.migrate_batch_rows;
    magpie::Result<magpie::store::MigrationReport> report = magpie::make_error(magpie::Errc::invalid_argument, "");
    if (is_dsn(to) && !is_dsn(from)) {
        options.dsn = to;
        report = magpie::store::migrate_sqlite_to_postgres(from, options);
    } else if (is_dsn(from) && !is_dsn(to)) {
        options.dsn = from;
        report = magpie::store::migrate_postgres_to_sqlite(options, to);
    } else {
        return fail("migrate: one of --from and --to must be a data directory, the other a PostgreSQL DSN");
    }
    if (!report) return fail(report.error().message);
    std::cout << fmt::format("migrated {} messages, {} blobs, {} rows\n", report->messages, report->blobs, report->rows);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"magpie: administer a Magpie mail store"};
    app.require_subcommand(1);
    std::string config_file;
    std::string data_dir;
    app.add_option("-c,--config", config_file, "magpied's configuration file (finds the data directory)");
    app.add_option("--data", data_dir, "the data directory (default ./magpie-data)");

    std::string name, address, target, user, mailbox;
    std::uint32_t uid = 0;
    bool list_only = false;

    auto* domain = app.add_subcommand("domain", "manage the domains this server receives mail for");
    domain->require_subcommand(1);
    auto* domain_add = domain->add_subcommand("add", "add a domain");
    domain_add->add_option("name", name)->required();
    auto* domain_list = domain->add_subcommand("list", "list the domains");
    auto* domain_del = domain->add_subcommand("del", "delete a domain (it must have no users)");
    domain_del->add_option("name", name)->required();

    auto* user_cmd = app.add_subcommand("user", "manage accounts (log in with the full address)");
    user_cmd->require_subcommand(1);
    auto* user_add = user_cmd->add_subcommand("add", "add a user; the password is read from a prompt or stdin");
    user_add->add_option("address", address)->required();
    auto* user_passwd = user_cmd->add_subcommand("passwd", "set a user's password (prompt or stdin)");
    user_passwd->add_option("address", address)->required();
    auto* user_del = user_cmd->add_subcommand("del", "delete a user and all their mail");
    user_del->add_option("address", address)->required();
    auto* user_list = user_cmd->add_subcommand("list", "list users");
    user_list->add_option("domain", name);

    auto* alias = app.add_subcommand("alias", "manage aliases; @domain is the domain's catch-all");
    alias->require_subcommand(1);
    auto* alias_add = alias->add_subcommand("add", "deliver mail for ADDRESS (or @domain) to a local user");
    alias_add->add_option("address", address)->required();
    alias_add->add_option("target", target)->required();
    auto* alias_list = alias->add_subcommand("list", "list aliases");
    alias_list->add_option("domain", name);
    auto* alias_del = alias->add_subcommand("del", "delete an alias");
    alias_del->add_option("address", address)->required();

    auto* export_cmd = app.add_subcommand("export", "write a mailbox (mboxrd) or one message (--uid) to stdout");
    export_cmd->add_option("user", user)->required();
    export_cmd->add_option("mailbox", mailbox)->required();
    export_cmd->add_option("--uid", uid, "only this message, as its stored RFC 5322 bytes");
    export_cmd->add_flag("--list", list_only, "list UID, size and subject instead");

    auto* check = app.add_subcommand("check", "check the store's integrity (read-only, safe beside magpied)");
    std::int64_t grace_hours = 24;
    auto* gc = app.add_subcommand("gc", "remove message blobs nothing references any more (safe beside magpied)");
    gc->add_option("--grace-hours", grace_hours, "keep garbage younger than this (default 24)")
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{24 * 365}));
    magpie::cli::QueueCommands queue(app);
    std::string migrate_from, migrate_to;
    auto* migrate_cmd = app.add_subcommand(
        "migrate", "copy a whole store between a data directory and PostgreSQL (either way), ids and UIDs kept");
    migrate_cmd->add_option("--from", migrate_from, "a data directory or a PostgreSQL DSN")->required();
    migrate_cmd->add_option("--to", migrate_to, "an empty PostgreSQL database (DSN) or a new data directory")->required();
    std::size_t migrate_batch_rows = 0;
    migrate_cmd->add_option("--batch-rows", migrate_batch_rows, "rows per batch (default: [store] migrate_batch_rows)")
        ->check(CLI::Range(std::size_t{1}, std::size_t{100000}));

    std::string server_address;
    auto* dns_cmd = app.add_subcommand("dns", "print every DNS record DOMAIN needs, ready to paste into its zone");
    dns_cmd->add_option("domain", name)->required();
    dns_cmd->add_option("--address", server_address, "the server's public IP for the PTR (default: look up [server] hostname)");
    bool check_records = false;
    std::string dns_server;
    dns_cmd->add_flag("--check", check_records, "look the records up and say which are missing or wrong");
    dns_cmd->add_option("--dns-server", dns_server, "with --check: ask this server (host:port), not the system's");
    magpie::cli::TlsRptOptions tlsrpt_options;
    auto* tlsrpt_cmd = app.add_subcommand(
        "tlsrpt", "print the day's SMTP TLS reports (RFC 8460), one per recipient domain, or queue them (--send)");
    tlsrpt_cmd->add_option("--day", tlsrpt_options.day, "UTC day YYYY-MM-DD (default: yesterday)");
    tlsrpt_cmd->add_option("--domain", tlsrpt_options.domain, "only this recipient (policy) domain");
    tlsrpt_cmd->add_flag("--send", tlsrpt_options.send, "queue each report to the mailto: rua of _smtp._tls.DOMAIN");
    tlsrpt_cmd->add_option("--from", tlsrpt_options.from, "report sender (default postmaster@[server] hostname)");
    tlsrpt_cmd->add_option("--dns-server", tlsrpt_options.dns_server, "with --send: ask this server (host:port)");
    auto* dkim_cmd = app.add_subcommand("dkim", "manage DKIM signing keys");
    dkim_cmd->require_subcommand(1);
    auto* dkim_keygen = dkim_cmd->add_subcommand("keygen", "create an RSA-2048 and an Ed25519 key for DOMAIN");
    dkim_keygen->add_option("domain", name)->required();
    std::string selector_suffix;
    dkim_keygen->add_option("--suffix", selector_suffix, "selector suffix after r/e (default: today, YYYYMMDD)");
    auto* dkim_rotate = dkim_cmd->add_subcommand(
        "rotate", "new keys under new selectors for DOMAIN; the old ones stay until removed");
    dkim_rotate->add_option("domain", name)->required();
    dkim_rotate->add_option("--suffix", selector_suffix, "selector suffix after r/e (default: today, YYYYMMDD)");
    std::string selector;
    auto* dkim_remove = dkim_cmd->add_subcommand("remove", "remove a retired key (not the newest of its kind)");
    dkim_remove->add_option("domain", name)->required();
    dkim_remove->add_option("selector", selector)->required();
    auto* dkim_list = dkim_cmd->add_subcommand("list", "list DOMAIN's keys: selector, algorithm, file");
    dkim_list->add_option("domain", name)->required();
    bool no_dkim = false;
    domain_add->add_flag("--no-dkim", no_dkim, "do not create DKIM signing keys for the domain");

    magpie::cli::TokenCommands tokens(app);
    magpie::cli::MailCommands mail(app);

    CLI11_PARSE(app, argc, argv);
    // The user agent needs no store and no magpied configuration.
    if (mail.parsed()) return mail.run();

    auto config = config_from(config_file, data_dir);
    if (!config) return fail(config.error().message);

    if (dns_cmd->parsed() && check_records)
        return magpie::cli::check_dns_records(*config, name, server_address, dns_server);
    if (dns_cmd->parsed()) return magpie::cli::print_dns_records(*config, name, server_address);
    if (tlsrpt_cmd->parsed()) return magpie::cli::tlsrpt_command(*config, tlsrpt_options);
    if (dkim_keygen->parsed()) return magpie::cli::dkim_keygen(*config, name, selector_suffix);
    if (dkim_rotate->parsed()) return magpie::cli::dkim_rotate(*config, name, selector_suffix);
    if (dkim_remove->parsed()) return magpie::cli::dkim_remove(*config, name, selector);
    if (dkim_list->parsed()) return magpie::cli::dkim_list(*config, name);

    if (check->parsed()) {
        auto report = magpie::server::check_configured_store(*config);
        if (!report) return fail(report.error().message);
        for (const auto& problem : report->problems) std::cout << "problem: " << problem << "\n";
        std::cout << report->summary << "\n";
        return report->clean ? 0 : 1;
    }

    if (queue.parsed()) return queue.run(*config);
    if (migrate_cmd->parsed()) return migrate(*config, migrate_from, migrate_to, migrate_batch_rows);

    bool read_only = export_cmd->parsed() || domain_list->parsed() || user_list->parsed() || alias_list->parsed() ||
                     tokens.read_only();
    auto opened = open_or_create_store(*config, read_only);
    if (!opened) return fail(opened.error().message);
    auto& store = **opened;

    if (tokens.parsed()) return tokens.run(store);

    auto done = [](const Result<void>& r) { return r ? 0 : fail(r.error().message); };

    if (gc->parsed()) {
        auto collected = store.collect_garbage(magpie::unix_now(), grace_hours * 3600);
        if (!collected) return fail(collected.error().message);
        std::cout << fmt::format("removed {} unreferenced blobs and {} files ({} bytes)\n", collected->blob_rows,
                                 collected->files, collected->file_bytes);
        return 0;
    }

    if (domain_add->parsed()) {
        auto r = store.add_domain(name);
        if (!r) return fail(r.error().message);
        // Issue 18: a domain signs its mail from the start (RSA-2048 and Ed25519, private to magpied's user).
        return no_dkim ? 0 : magpie::cli::ensure_dkim_keys(*config, name);
    }
    if (domain_list->parsed()) {
        auto domains = store.list_domains();
        if (!domains) return fail(domains.error().message);
        for (const auto& d : *domains) std::cout << d.name << "\n";
        return 0;
    }
    if (domain_del->parsed()) return done(store.delete_domain(name));

    if (user_add->parsed() || user_passwd->parsed()) {
        if (user_add->parsed()) {
            // Refuse early, before asking for a password the user would type in vain.
            if (store.find_account(address)) return fail(fmt::format("user {} already exists", address));
        } else if (!store.find_account(address)) {
            return fail(fmt::format("no user {}", address));
        }
        auto password = magpie::cli::read_new_password();
        if (!password) return fail(password.error().message);
        auto secrets = magpie::auth::make_password_secrets(*password);
        if (!secrets) return fail(secrets.error().message);
        if (user_add->parsed()) {
            auto r = store.add_account(address, secrets->hash, secrets->scram);
            return r ? 0 : fail(r.error().message);
        }
        return done(store.set_password(address, secrets->hash, secrets->scram));
    }
    if (user_del->parsed()) return done(store.delete_account(address));
    if (user_list->parsed()) {
        auto accounts = store.list_accounts(name);
        if (!accounts) return fail(accounts.error().message);
        for (const auto& a : *accounts) std::cout << a.address << (a.disabled ? " (disabled)" : "") << "\n";
        return 0;
    }

    if (alias_add->parsed()) return done(store.add_alias(address, target));
    if (alias_del->parsed()) return done(store.delete_alias(address));
    if (alias_list->parsed()) {
        auto aliases = store.list_aliases(name);
        if (!aliases) return fail(aliases.error().message);
        for (const auto& a : *aliases) std::cout << a.address << " -> " << a.target << "\n";
        return 0;
    }

    if (export_cmd->parsed()) {
        auto account = store.find_account(user);
        if (!account) return fail(fmt::format("no user {}", user));
        auto box = store.find_mailbox(account->id, mailbox);
        if (!box) return fail(fmt::format("{} has no mailbox {}", user, mailbox));
        if (export_cmd->count("--uid") > 0) {
            auto message = store.find_message(box->id, uid);
            if (!message) return fail(fmt::format("no message with UID {} in {}", uid, mailbox));
            auto content = store.read_blob(message->blob_id);
            if (!content) return fail(content.error().message);
            return write_stdout(*content) ? 0 : 1;
        }
        auto messages = store.list_messages(box->id);
        if (!messages) return fail(messages.error().message);
        for (const auto& m : *messages) {
            if (list_only) {
                std::cout << m.uid << " " << m.size << " " << m.summary.subject << "\n";
                continue;
            }
            auto content = store.read_blob(m.blob_id);
            if (!content) return fail(content.error().message);
            if (!write_stdout(to_mboxrd(m, *content))) return 1;
        }
        return 0;
    }
    return fail("nothing to do");
}
