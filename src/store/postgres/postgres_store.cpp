// Opening the PostgreSQL store, its plumbing (pooled reads and writes, NOTIFY and the LISTEN thread), the
// directory (domains, accounts, aliases, recipients) and the mailbox and message reads. Delivery and the
// group committer are in delivery.cpp; the IMAP/JMAP operations in mailbox_ops.cpp; the queue in queue.cpp.
#include "store/postgres/postgres_store.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <array>
#include <random>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/strings.h"
#include "base/time.h"
#include "store/address.h"
#include "store/blob.h"
#include "store/postgres/pipeline.h"
#include "store/postgres/rows.h"
#include "store/postgres/schema.h"

namespace magpie::store::postgres {
namespace {

constexpr std::size_t kMaxCredentialBytes = 1024;
constexpr const char* kChannel = "magpie_changes";

struct DefaultMailbox {
    const char* name;
    SpecialUse special_use;
};
constexpr std::array<DefaultMailbox, 6> kDefaultMailboxes{{
    {"INBOX", SpecialUse::none},
    {"Sent", SpecialUse::sent},
    {"Drafts", SpecialUse::drafts},
    {"Trash", SpecialUse::trash},
    {"Junk", SpecialUse::junk},
    {"Archive", SpecialUse::archive},
}};

Result<void> check_credentials(std::string_view password_hash, const ScramCredentials& scram) {
    if (password_hash.size() > kMaxCredentialBytes || scram.salt.size() > kMaxCredentialBytes ||
        scram.stored_key.size() > kMaxCredentialBytes || scram.server_key.size() > kMaxCredentialBytes) {
        return make_error(Errc::limit_exceeded, "credential field longer than 1024 bytes");
    }
    return {};
}

constexpr const char* kAccountColumns =
    "a.id, a.domain_id, a.address, a.password_hash, a.scram_salt, a.scram_iterations, a.scram_stored_key, "
    "a.scram_server_key, a.disabled";

Account account_from_row(const Rows& rows, int row) {
    Account account;
    account.id = rows.int64(row, 0);
    account.domain_id = rows.int64(row, 1);
    account.address = rows.text(row, 2);
    account.password_hash = rows.text(row, 3);
    account.scram.salt = rows.bytes(row, 4);
    account.scram.iterations = static_cast<std::uint32_t>(rows.int64(row, 5));
    account.scram.stored_key = rows.bytes(row, 6);
    account.scram.server_key = rows.bytes(row, 7);
    account.disabled = rows.boolean(row, 8);
    return account;
}

Result<std::optional<std::int64_t>> lookup_id(Connection& db, std::string_view sql, std::string_view key) {
    auto rows = db.exec(sql, Params().add(key));
    if (!rows) return rows.error();
    if (rows->empty()) return std::optional<std::int64_t>{};
    return std::optional<std::int64_t>{rows->int64(0, 0)};
}

Result<std::int64_t> domain_id(Connection& db, std::string_view domain) {
    auto id = lookup_id(db, "SELECT id FROM domains WHERE name = $1", domain);
    if (!id) return id.error();
    if (!*id) return make_error(Errc::not_found, fmt::format("domain {} is not local", domain));
    return **id;
}

std::string random_node_id() {
    std::random_device device;
    return fmt::format("{:08x}{:08x}", device(), device());
}

}  // namespace

// ---- plumbing ----

PostgresStore::PostgresStore(PostgresOptions options)
    : options_(std::move(options)),
      node_id_(random_node_id()),
      pool_(options_.dsn, options_.password, options_.pool_size, options_.prepared_statements) {}

void PostgresStore::start() {
    if (!options_.read_only) login_counters_ = std::make_unique<PostgresLoginCounters>(pool_);
    if (!options_.read_only) committer_ = std::thread([this] { committer_loop(); });
    if (options_.listen) listener_thread_ = std::thread([this] { listen_loop(); });
}

PostgresStore::~PostgresStore() {
    // The committer drains what it holds first: every accepted delivery gets its answer.
    {
        std::lock_guard lock(queue_mutex_);
        stopping_ = true;
    }
    queue_ready_.notify_all();
    if (committer_.joinable()) committer_.join();
    stop_listening_ = true;
    if (listener_thread_.joinable()) listener_thread_.join();
}

void PostgresStore::set_change_listener(ChangeListener listener) {
    std::lock_guard lock(listener_mutex_);
    listener_ = std::move(listener);
}

void PostgresStore::notify(const Changes& changes) {
    if (changes.empty()) return;
    ChangeListener listener;
    {
        std::lock_guard lock(listener_mutex_);
        listener = listener_;
    }
    if (!listener) return;
    // Negative keys are an account's JMAP objects (write_jmap_objects): mailbox 0 to the listener.
    for (const auto& [mailbox, change] : changes) listener(change.account_id, std::max<std::int64_t>(mailbox, 0), change.modseq);
}

Result<void> PostgresStore::send_notifications(Connection& db, const Changes& changes) {
    // NOTIFY is transactional: the other nodes hear it when (and only if) this transaction commits.
    // Payload "node account mailbox modseq", far below the 8,000-byte limit. One statement for them all.
    if (changes.empty()) return {};
    std::vector<std::string> payloads;
    for (const auto& [mailbox, change] : changes) {
        payloads.push_back(fmt::format("{} {} {} {}", node_id_, change.account_id, std::max<std::int64_t>(mailbox, 0),
                                       change.modseq));
    }
    auto sent = db.exec("SELECT pg_notify($1, p) FROM unnest($2::text[]) p", Params().add(kChannel).add(text_array(payloads)));
    if (!sent) return sent.error();
    return {};
}

void PostgresStore::listen_loop() {
    std::unique_ptr<Connection> db;
    bool lost = false;  // a LISTEN connection was lost since the last one: NOTIFYs may have gone unheard
    while (!stop_listening_) {
        if (!db || db->broken()) {
            if (db) {
                spdlog::warn("store: lost the LISTEN connection to PostgreSQL; reconnecting");
                lost = true;
            }
            db.reset();
            auto opened = Connection::open(options_.dsn, options_.password);
            if (!opened || !(*opened)->run(fmt::format("LISTEN {}", kChannel))) {
                // PostgreSQL away: try again in a second.
                lost = true;
                for (int i = 0; i < 10 && !stop_listening_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
                continue;
            }
            db = std::move(*opened);
            if (lost) {
                // Changes other nodes committed while nobody listened were not heard, and NOTIFYs are not
                // replayed: every watcher re-reads its state instead (after LISTEN, so a commit from here on
                // is heard either way). A wake with nothing new costs a watcher one read.
                spdlog::info("store: LISTEN connection to PostgreSQL back; telling every mailbox's watchers to re-read");
                lost = false;
                notify_everyone(*db);
            }
        }
        pollfd fd{PQsocket(db->handle()), POLLIN, 0};
        int ready = ::poll(&fd, 1, 200);  // short, so that the destructor's stop is seen quickly
        if (ready <= 0) continue;
        if (PQconsumeInput(db->handle()) == 0) {
            spdlog::warn("store: lost the LISTEN connection to PostgreSQL; reconnecting");
            db.reset();
            lost = true;
            continue;
        }
        while (PGnotify* note = PQnotifies(db->handle())) {
            std::string payload = note->extra != nullptr ? note->extra : "";
            PQfreemem(note);
            auto parts = split(payload, ' ');
            if (parts.size() != 4 || parts[0] == node_id_) continue;  // ours were told at commit
            auto account = parse_uint(parts[1]);
            auto mailbox = parse_uint(parts[2]);
            auto modseq = parse_uint(parts[3]);
            if (!account || !mailbox || !modseq) continue;
            notify(Changes{{static_cast<std::int64_t>(*mailbox),
                            MailboxChange{static_cast<std::int64_t>(*account), *modseq}}});
        }
    }
}

void PostgresStore::notify_everyone(Connection& db) {
    {
        std::lock_guard lock(listener_mutex_);
        if (!listener_) return;
    }
    // Every mailbox at its current HIGHESTMODSEQ, in pages (memory stays one page whatever the number of
    // mailboxes). A watcher with nothing new reads once and says nothing.
    constexpr int kPage = 5000;
    std::int64_t after = 0;
    for (;;) {
        auto rows = db.exec("SELECT id, account_id, highest_modseq FROM mailboxes WHERE id > $1 ORDER BY id LIMIT $2",
                            Params().add(after).add(std::int64_t{kPage}));
        if (!rows) {
            spdlog::warn("store: cannot list mailboxes to wake their watchers: {}", rows.error().message);
            return;
        }
        Changes changes;
        for (int i = 0; i < rows->size(); ++i) {
            changes[rows->int64(i, 0)] =
                MailboxChange{rows->int64(i, 1), static_cast<std::uint64_t>(rows->int64(i, 2))};
        }
        notify(changes);
        if (rows->size() < kPage) return;
        after = rows->int64(rows->size() - 1, 0);
    }
}

Result<void> PostgresStore::run_write(const std::function<Result<void>(Connection&, Changes&)>& apply) {
    if (options_.read_only) return make_error(Errc::permission_denied, "the store is open read-only");
    auto lease = pool_.acquire();
    if (!lease) return lease.error();
    Connection& db = **lease;
    Changes changes;
    MAGPIE_TRY(in_transaction(db, [&]() -> Result<void> {
        changes.clear();  // a retried transaction starts over
        MAGPIE_TRY(apply(db, changes));
        return send_notifications(db, changes);
    }));
    ++commits_;
    ++writes_;
    notify(changes);
    return {};
}

Result<void> PostgresStore::run_read(const std::function<Result<void>(Connection&)>& body) {
    // A read is safe to repeat: once more on a fresh connection when the pooled one turned out broken
    // (PostgreSQL restarted since it was last used).
    for (int attempt = 1;; ++attempt) {
        auto lease = pool_.acquire();
        if (!lease) return lease.error();
        auto done = in_transaction(**lease, [&] { return body(**lease); }, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        if (done || attempt >= 2 || !(*lease)->broken()) return done;
    }
}

StoreStats PostgresStore::stats() const {
    StoreStats stats;
    stats.deliveries = deliveries_.load();
    stats.failed_deliveries = failed_deliveries_.load();
    stats.commits = commits_.load();
    stats.writes = writes_.load();
    {
        std::lock_guard lock(queue_mutex_);
        stats.queued = queue_.size();
    }
    return stats;
}

// ---- domains ----

Result<Domain> PostgresStore::add_domain(std::string_view name) {
    auto domain = normalize_domain(name);
    if (!domain) return domain.error();
    return write<Domain>([&](Connection& db) -> Result<Domain> {
        auto rows = db.exec("INSERT INTO domains(name) VALUES($1) ON CONFLICT(name) DO NOTHING RETURNING id",
                            Params().add(*domain));
        if (!rows) return rows.error();
        if (rows->empty()) return make_error(Errc::already_exists, fmt::format("domain {} exists", *domain));
        return Domain{rows->int64(0, 0), *domain};
    });
}

Result<void> PostgresStore::delete_domain(std::string_view name) {
    auto domain = normalize_domain(name);
    if (!domain) return domain.error();
    return write<void>([&](Connection& db) -> Result<void> {
        auto id = domain_id(db, *domain);
        if (!id) return id.error();
        auto count = db.exec("SELECT count(*) FROM accounts WHERE domain_id = $1", Params().add(*id));
        if (!count) return count.error();
        if (count->int64(0, 0) > 0) {
            return make_error(Errc::permission_denied, fmt::format("domain {} still has accounts", *domain));
        }
        MAGPIE_TRY(db.exec("DELETE FROM aliases WHERE domain_id = $1", Params().add(*id)));
        MAGPIE_TRY(db.exec("DELETE FROM domains WHERE id = $1", Params().add(*id)));
        return {};
    });
}

Result<std::vector<Domain>> PostgresStore::list_domains() {
    return read<std::vector<Domain>>([&](Connection& db) -> Result<std::vector<Domain>> {
        auto rows = db.exec("SELECT id, name FROM domains ORDER BY name");
        if (!rows) return rows.error();
        std::vector<Domain> domains;
        for (int i = 0; i < rows->size(); ++i) domains.push_back(Domain{rows->int64(i, 0), rows->text(i, 1)});
        return domains;
    });
}

// ---- accounts ----

Result<Account> PostgresStore::add_account(std::string_view address, std::string_view password_hash,
                                           const ScramCredentials& scram) {
    auto normalized = normalize_address(address);
    if (!normalized) return normalized.error();
    MAGPIE_TRY(check_credentials(password_hash, scram));
    return write<Account>([&](Connection& db) -> Result<Account> {
        auto domain = domain_id(db, normalized->domain);
        if (!domain) return domain.error();
        auto alias = lookup_id(db, "SELECT id FROM aliases WHERE address = $1", normalized->address);
        if (!alias) return alias.error();
        if (*alias) return make_error(Errc::already_exists, fmt::format("{} is an alias", normalized->address));
        auto rows = db.exec(
            "INSERT INTO accounts(domain_id, address, password_hash, scram_salt, scram_iterations, "
            "scram_stored_key, scram_server_key, disabled, created_at) VALUES($1, $2, $3, $4, $5, $6, $7, false, $8) "
            "ON CONFLICT(address) DO NOTHING RETURNING id",
            Params()
                .add(*domain)
                .add(normalized->address)
                .add(password_hash)
                .add_bytes(scram.salt)
                .add(std::int64_t{scram.iterations})
                .add_bytes(scram.stored_key)
                .add_bytes(scram.server_key)
                .add(unix_now()));
        if (!rows) return rows.error();
        if (rows->empty()) return make_error(Errc::already_exists, fmt::format("account {} exists", normalized->address));
        Account account{rows->int64(0, 0), *domain, normalized->address, std::string(password_hash), scram, false};
        for (const DefaultMailbox& mailbox : kDefaultMailboxes) {
            MAGPIE_TRY(insert_mailbox(db, account.id, mailbox.name, mailbox.special_use));
            MAGPIE_TRY(subscribe(db, account.id, mailbox.name));
        }
        return account;
    });
}

Result<void> PostgresStore::set_password(std::string_view address, std::string_view password_hash,
                                         const ScramCredentials& scram) {
    auto normalized = normalize_address(address);
    if (!normalized) return normalized.error();
    MAGPIE_TRY(check_credentials(password_hash, scram));
    return write<void>([&](Connection& db) -> Result<void> {
        auto done = db.exec(
            "UPDATE accounts SET password_hash = $2, scram_salt = $3, scram_iterations = $4, "
            "scram_stored_key = $5, scram_server_key = $6 WHERE address = $1",
            Params()
                .add(normalized->address)
                .add(password_hash)
                .add_bytes(scram.salt)
                .add(std::int64_t{scram.iterations})
                .add_bytes(scram.stored_key)
                .add_bytes(scram.server_key));
        if (!done) return done.error();
        if (done->affected() == 0) return make_error(Errc::not_found, fmt::format("no account {}", normalized->address));
        return {};
    });
}

Result<void> PostgresStore::set_disabled(std::string_view address, bool disabled) {
    auto normalized = normalize_address(address);
    if (!normalized) return normalized.error();
    return write<void>([&](Connection& db) -> Result<void> {
        auto done = db.exec("UPDATE accounts SET disabled = $2 WHERE address = $1",
                            Params().add(normalized->address).add(disabled ? "true" : "false"));
        if (!done) return done.error();
        if (done->affected() == 0) return make_error(Errc::not_found, fmt::format("no account {}", normalized->address));
        return {};
    });
}

Result<void> PostgresStore::delete_account(std::string_view address) {
    auto normalized = normalize_address(address);
    if (!normalized) return normalized.error();
    return write<void>([&](Connection& db) -> Result<void> {
        // ON DELETE CASCADE removes aliases, mailboxes, messages and change log rows; blobs become garbage.
        auto done = db.exec("DELETE FROM accounts WHERE address = $1", Params().add(normalized->address));
        if (!done) return done.error();
        if (done->affected() == 0) return make_error(Errc::not_found, fmt::format("no account {}", normalized->address));
        return {};
    });
}

Result<std::vector<Account>> PostgresStore::list_accounts(std::string_view domain) {
    std::string domain_name;
    if (!domain.empty()) {
        auto normalized = normalize_domain(domain);
        if (!normalized) return normalized.error();
        domain_name = *normalized;
    }
    return read<std::vector<Account>>([&](Connection& db) -> Result<std::vector<Account>> {
        if (!domain_name.empty()) {
            auto id = domain_id(db, domain_name);
            if (!id) return id.error();
        }
        auto rows = db.exec(fmt::format("SELECT {} FROM accounts a JOIN domains d ON d.id = a.domain_id "
                                        "WHERE $1 = '' OR d.name = $1 ORDER BY a.address COLLATE \"C\"",
                                        kAccountColumns),
                            Params().add(domain_name));
        if (!rows) return rows.error();
        std::vector<Account> accounts;
        for (int i = 0; i < rows->size(); ++i) accounts.push_back(account_from_row(*rows, i));
        return accounts;
    });
}

Result<Account> PostgresStore::find_account(std::string_view address) {
    auto normalized = normalize_address(address);
    if (!normalized) return make_error(Errc::not_found, fmt::format("no account {}", address));
    auto rows = read_statement(pool_, fmt::format("SELECT {} FROM accounts a WHERE a.address = $1", kAccountColumns),
                               Params().add(normalized->address));
    if (!rows) return rows.error();
    if (rows->empty()) return make_error(Errc::not_found, fmt::format("no account {}", normalized->address));
    return account_from_row(*rows, 0);
}

// ---- aliases ----

Result<void> PostgresStore::add_alias(std::string_view address, std::string_view target) {
    auto alias = normalize_address(address, /*allow_catch_all=*/true);
    if (!alias) return alias.error();
    auto target_address = normalize_address(target);
    if (!target_address) return target_address.error();
    return write<void>([&](Connection& db) -> Result<void> {
        auto domain = domain_id(db, alias->domain);
        if (!domain) return domain.error();
        auto target_id = lookup_id(db, "SELECT id FROM accounts WHERE address = $1", target_address->address);
        if (!target_id) return target_id.error();
        if (!*target_id) {
            return make_error(Errc::not_found, fmt::format("alias target {} is not a local account", target_address->address));
        }
        auto shadowing = lookup_id(db, "SELECT id FROM accounts WHERE address = $1", alias->address);
        if (!shadowing) return shadowing.error();
        if (*shadowing) return make_error(Errc::already_exists, fmt::format("{} is an account", alias->address));
        auto rows = db.exec(
            "INSERT INTO aliases(domain_id, address, account_id) VALUES($1, $2, $3) ON CONFLICT(address) DO NOTHING "
            "RETURNING id",
            Params().add(*domain).add(alias->address).add(**target_id));
        if (!rows) return rows.error();
        if (rows->empty()) return make_error(Errc::already_exists, fmt::format("alias {} exists", alias->address));
        return {};
    });
}

Result<void> PostgresStore::delete_alias(std::string_view address) {
    auto alias = normalize_address(address, /*allow_catch_all=*/true);
    if (!alias) return alias.error();
    return write<void>([&](Connection& db) -> Result<void> {
        auto done = db.exec("DELETE FROM aliases WHERE address = $1", Params().add(alias->address));
        if (!done) return done.error();
        if (done->affected() == 0) return make_error(Errc::not_found, fmt::format("no alias {}", alias->address));
        return {};
    });
}

Result<std::vector<Alias>> PostgresStore::list_aliases(std::string_view domain) {
    std::string domain_name;
    if (!domain.empty()) {
        auto normalized = normalize_domain(domain);
        if (!normalized) return normalized.error();
        domain_name = *normalized;
    }
    return read<std::vector<Alias>>([&](Connection& db) -> Result<std::vector<Alias>> {
        if (!domain_name.empty()) {
            auto id = domain_id(db, domain_name);
            if (!id) return id.error();
        }
        auto rows = db.exec(
            "SELECT l.address, a.address FROM aliases l JOIN accounts a ON a.id = l.account_id "
            "JOIN domains d ON d.id = l.domain_id WHERE $1 = '' OR d.name = $1 ORDER BY l.address COLLATE \"C\"",
            Params().add(domain_name));
        if (!rows) return rows.error();
        std::vector<Alias> aliases;
        for (int i = 0; i < rows->size(); ++i) aliases.push_back(Alias{rows->text(i, 0), rows->text(i, 1)});
        return aliases;
    });
}

Result<RecipientResult> PostgresStore::resolve_recipient(std::string_view address) {
    std::size_t at = address.rfind('@');
    if (at == std::string_view::npos) return make_error(Errc::invalid_argument, "address has no '@'");
    auto domain_name = normalize_domain(address.substr(at + 1));
    if (!domain_name) return RecipientResult{RecipientStatus::not_local_domain, 0, {}};
    auto normalized = normalize_address(address);
    if (!normalized) {
        auto domain = read_statement(pool_, "SELECT 1 FROM domains WHERE name = $1", Params().add(*domain_name));
        if (!domain) return domain.error();
        return RecipientResult{domain->empty() ? RecipientStatus::not_local_domain : RecipientStatus::unknown_user, 0, {}};
    }
    // Once per RCPT and again per message: one statement (the domain, then the account, an alias, the
    // domain's catch-all), so one round trip.
    auto rows = read_statement(
        pool_,
        "SELECT EXISTS(SELECT 1 FROM domains WHERE name = $3), r.id, r.address FROM (SELECT 1) one LEFT JOIN LATERAL ("
        "SELECT id, address, 0 AS rank FROM accounts WHERE address = $1 "
        "UNION ALL SELECT a.id, a.address, 1 FROM aliases l JOIN accounts a ON a.id = l.account_id "
        "WHERE l.address = $1 "
        "UNION ALL SELECT a.id, a.address, 2 FROM aliases l JOIN accounts a ON a.id = l.account_id "
        "WHERE l.address = $2 ORDER BY rank LIMIT 1) r ON true",
        Params().add(normalized->address).add("@" + normalized->domain).add(*domain_name));
    if (!rows) return rows.error();
    if (rows->empty() || !rows->boolean(0, 0)) return RecipientResult{RecipientStatus::not_local_domain, 0, {}};
    if (rows->null(0, 1)) return RecipientResult{RecipientStatus::unknown_user, 0, {}};
    return RecipientResult{RecipientStatus::local, rows->int64(0, 1), rows->text(0, 2)};
}

Result<std::uint64_t> PostgresStore::directory_version() {
    auto rows = read_statement(pool_, "SELECT value FROM meta WHERE key = 'directory_version'", Params());
    if (!rows) return rows.error();
    if (rows->empty()) return make_error(Errc::corrupt, "meta has no directory_version");
    return static_cast<std::uint64_t>(rows->int64(0, 0));
}

// ---- mailboxes and messages ----

Result<std::vector<Mailbox>> PostgresStore::list_mailboxes(std::int64_t account_id) {
    return read<std::vector<Mailbox>>([&](Connection& db) -> Result<std::vector<Mailbox>> {
        // COLLATE "C": byte order, as SQLite sorts, whatever the database's locale.
        auto rows = db.exec(fmt::format("SELECT {} FROM mailboxes WHERE account_id = $1 "
                                        "ORDER BY name <> 'INBOX', name COLLATE \"C\"",
                                        kMailboxColumns),
                            Params().add(account_id));
        if (!rows) return rows.error();
        std::vector<Mailbox> mailboxes;
        for (int i = 0; i < rows->size(); ++i) mailboxes.push_back(mailbox_from_row(*rows, i));
        return mailboxes;
    });
}

Result<Mailbox> PostgresStore::find_mailbox(std::int64_t account_id, std::string_view name) {
    std::string key = iequals(name, "INBOX") ? std::string("INBOX") : std::string(name);
    auto rows = read_statement(pool_, fmt::format("SELECT {} FROM mailboxes WHERE account_id = $1 AND name = $2", kMailboxColumns),
                               Params().add(account_id).add(key));
    if (!rows) return rows.error();
    if (rows->empty()) return make_error(Errc::not_found, fmt::format("no mailbox {}", key));
    return mailbox_from_row(*rows, 0);
}

Result<std::vector<Message>> PostgresStore::list_messages(std::int64_t mailbox_id) {
    return read<std::vector<Message>>([&](Connection& db) -> Result<std::vector<Message>> {
        MAGPIE_TRY(select_mailbox(db, mailbox_id));
        auto rows = db.exec(std::string(kMessageSelect) + "WHERE m.mailbox_id = $1 ORDER BY m.uid",
                            Params().add(mailbox_id));
        if (!rows) return rows.error();
        std::vector<Message> messages;
        for (int i = 0; i < rows->size(); ++i) messages.push_back(message_from_row(*rows, i));
        return messages;
    });
}

Result<Message> PostgresStore::find_message(std::int64_t mailbox_id, std::uint32_t uid) {
    return read<Message>([&](Connection& db) -> Result<Message> {
        auto rows = db.exec(std::string(kMessageSelect) + "WHERE m.mailbox_id = $1 AND m.uid = $2",
                            Params().add(mailbox_id).add(std::int64_t{uid}));
        if (!rows) return rows.error();
        if (rows->empty()) return make_error(Errc::not_found, fmt::format("no message {} in mailbox {}", uid, mailbox_id));
        return message_from_row(*rows, 0);
    });
}

Result<std::vector<MessageState>> PostgresStore::list_states(std::int64_t mailbox_id) {
    return read<std::vector<MessageState>>([&](Connection& db) -> Result<std::vector<MessageState>> {
        MAGPIE_TRY(select_mailbox(db, mailbox_id));
        auto rows = db.exec("SELECT uid, modseq, system_flags, keywords FROM messages WHERE mailbox_id = $1 ORDER BY uid",
                            Params().add(mailbox_id));
        if (!rows) return rows.error();
        std::vector<MessageState> states;
        states.reserve(static_cast<std::size_t>(rows->size()));
        for (int i = 0; i < rows->size(); ++i) {
            states.push_back(MessageState{static_cast<std::uint32_t>(rows->int64(i, 0)),
                                          static_cast<std::uint64_t>(rows->int64(i, 1)),
                                          flag_list(static_cast<std::uint32_t>(rows->int64(i, 2)), rows->text(i, 3))});
        }
        return states;
    });
}

Result<MailboxStatus> PostgresStore::mailbox_status(std::int64_t mailbox_id) {
    return read<MailboxStatus>([&](Connection& db) -> Result<MailboxStatus> {
        auto rows = db.exec(
            "SELECT message_count, unseen_count, recent_count, uidnext, uidvalidity, highest_modseq, total_size, "
            "deleted_count, deleted_size FROM mailboxes WHERE id = $1",
            Params().add(mailbox_id));
        if (!rows) return rows.error();
        if (rows->empty()) return make_error(Errc::not_found, fmt::format("no mailbox {}", mailbox_id));
        MailboxStatus status;
        status.messages = static_cast<std::uint32_t>(rows->int64(0, 0));
        status.unseen = static_cast<std::uint32_t>(rows->int64(0, 1));
        status.recent = static_cast<std::uint32_t>(rows->int64(0, 2));
        status.uidnext = static_cast<std::uint32_t>(rows->int64(0, 3));
        status.uidvalidity = static_cast<std::uint32_t>(rows->int64(0, 4));
        status.highest_modseq = static_cast<std::uint64_t>(rows->int64(0, 5));
        status.size = static_cast<std::uint64_t>(rows->int64(0, 6));
        status.deleted = static_cast<std::uint32_t>(rows->int64(0, 7));
        status.deleted_size = static_cast<std::uint64_t>(rows->int64(0, 8));
        return status;
    });
}

Result<std::vector<Message>> PostgresStore::find_messages(std::int64_t mailbox_id,
                                                          const std::vector<std::uint32_t>& uids) {
    std::vector<std::uint32_t> sorted = uids;
    std::ranges::sort(sorted);
    sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
    const UidRanges ranges = uid_ranges(sorted);
    return read<std::vector<Message>>([&](Connection& db) -> Result<std::vector<Message>> {
        MAGPIE_TRY(select_mailbox(db, mailbox_id));
        auto rows = db.exec(std::string(kMessageSelect) +
                                "JOIN unnest($2::bigint[], $3::bigint[]) r(lo, hi) ON m.uid BETWEEN r.lo AND r.hi "
                                "WHERE m.mailbox_id = $1 ORDER BY m.uid",
                            Params().add(mailbox_id).add(ranges.first).add(ranges.last));
        if (!rows) return rows.error();
        std::vector<Message> messages;
        for (int i = 0; i < rows->size(); ++i) messages.push_back(message_from_row(*rows, i));
        return messages;
    });
}

Result<std::unique_ptr<BlobSpool>> PostgresStore::open_spool() {
    if (options_.read_only) return make_error(Errc::permission_denied, "the store is open read-only");
    std::error_code error;
    const std::filesystem::path dir =
        options_.spool_dir.empty() ? std::filesystem::temp_directory_path(error) : options_.spool_dir;
    if (error) return make_error(Errc::io_error, fmt::format("no temporary directory: {}", error.message()));
    return open_anonymous_spool(dir);
}

Result<std::string> PostgresStore::read_blob(std::string_view blob_id) {
    if (!is_valid_blob_id(blob_id)) return make_error(Errc::invalid_argument, "invalid blob id");
    // No transaction around it: a blob is immutable, and its size and first chunks come in one statement
    // (one snapshot), so a message of up to kChunksPerRead chunks costs one round trip, not four (BEGIN,
    // two reads, COMMIT): IMAP SEARCH TEXT reads every message of a mailbox this way. Once more on a fresh
    // connection when the pooled one turned out broken (PostgreSQL restarted since it was last used).
    for (int attempt = 1;; ++attempt) {
        auto lease = pool_.acquire();
        if (!lease) return lease.error();
        auto content = read_blob_in(**lease, blob_id);
        if (content || attempt >= 2 || !(*lease)->broken()) return content;
    }
}

Result<std::string> PostgresStore::read_blob_in(Connection& db, std::string_view blob_id) {
    if (!is_valid_blob_id(blob_id)) return make_error(Errc::invalid_argument, "invalid blob id");
    // A few chunks per round trip, in binary (no hex doubling): memory stays near the content's size. The
    // first round trip brings the size too (int8send: 8 octets, big-endian).
    constexpr int kChunksPerRead = 16;
    auto first = db.exec("SELECT int8send(b.size), c.data FROM blobs b LEFT JOIN blob_chunks c "
                         "ON c.blob_id = b.id AND c.seq < $2 WHERE b.id = $1 ORDER BY c.seq",
                         Params().add(blob_id).add(std::int64_t{kChunksPerRead}), /*binary_results=*/true);
    if (!first) return first.error();
    if (first->empty()) return make_error(Errc::not_found, fmt::format("no blob {}", blob_id));
    const std::string_view size_octets = first->raw(0, 0);
    if (size_octets.size() != 8) return make_error(Errc::corrupt, fmt::format("blob {}: unreadable size", blob_id));
    std::uint64_t size = 0;
    for (char c : size_octets) size = (size << 8) | static_cast<unsigned char>(c);
    if (size > options_.max_message_bytes) {
        return make_error(Errc::limit_exceeded, fmt::format("blob {} is {} bytes", blob_id, size));
    }
    std::string content;
    content.reserve(size);
    int chunks = 0;
    for (int i = 0; i < first->size(); ++i) {
        if (first->null(i, 1)) continue;  // no chunk at all (LEFT JOIN)
        content += first->raw(i, 1);
        ++chunks;
    }
    for (std::int64_t seq = kChunksPerRead; chunks == kChunksPerRead; seq += kChunksPerRead) {
        auto rows = db.exec("SELECT data FROM blob_chunks WHERE blob_id = $1 AND seq >= $2 AND seq < $3 ORDER BY seq",
                            Params().add(blob_id).add(seq).add(seq + kChunksPerRead), /*binary_results=*/true);
        if (!rows) return rows.error();
        for (int i = 0; i < rows->size(); ++i) content += rows->raw(i, 0);
        chunks = rows->size();
    }
    if (content.size() != size) {
        return make_error(Errc::corrupt, fmt::format("blob {} is {} bytes, expected {}", blob_id, content.size(), size));
    }
    return content;
}

}  // namespace magpie::store::postgres

namespace magpie::store {

SharedLoginCounters* shared_login_counters(Store& store) {
    auto* shared = dynamic_cast<postgres::PostgresStore*>(&store);
    return shared != nullptr ? shared->login_counters() : nullptr;
}

Result<std::unique_ptr<Store>> open_postgres_store(const PostgresOptions& options) {
    using postgres::Connection;
    if (options.dsn.empty()) return make_error(Errc::invalid_argument, "[store] dsn is empty");
    auto probe = Connection::open(options.dsn, options.password);
    if (!probe) return probe.error();
    if (options.read_only) {
        auto version = postgres::schema_version(**probe);
        if (!version) return version.error();
        if (*version == 0) return make_error(Errc::not_found, "no Magpie store in this database");
        if (*version != postgres::kSchemaVersion) {
            return make_error(Errc::unavailable, fmt::format("store schema version {} (this magpie knows {})",
                                                             *version, postgres::kSchemaVersion));
        }
    } else {
        MAGPIE_TRY(postgres::migrate(
            **probe, sqlite::ThreadLimits{options.max_thread_references, options.thread_subject_window_seconds}));
        MAGPIE_TRY(postgres::ensure_login_counters(**probe));
    }
    auto store = std::make_unique<postgres::PostgresStore>(options);
    store->start();
    return std::unique_ptr<Store>(std::move(store));
}

}  // namespace magpie::store
