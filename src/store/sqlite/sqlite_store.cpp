// Opening the embedded store, the reader pool, the directory (domains, accounts, aliases, recipients) and
// the mailbox and message reads. Delivery and the group committer are in delivery.cpp; the IMAP/JMAP
// operations in mailbox_ops.cpp.
#include "store/sqlite/sqlite_store.h"

#include <algorithm>
#include <array>
#include <system_error>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/strings.h"
#include "base/time.h"
#include "store/address.h"
#include "store/sqlite/inline_content.h"
#include "store/sqlite/queries.h"
#include "store/sqlite/rows.h"
#include "store/sqlite/schema.h"

namespace magpie::store::sqlite {
namespace {

constexpr std::size_t kMaxCredentialBytes = 1024;  // an argon2id string is ~100 bytes, SCRAM keys 32

struct DefaultMailbox {
    const char* name;
    SpecialUse special_use;
};
// RFC 6154 roles; INBOX has none (it is special by name, RFC 9051 5.1).
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

Account account_from_row(const Statement& row) {
    Account account;
    account.id = row.column_int64(0);
    account.domain_id = row.column_int64(1);
    account.address = row.column_text(2);
    account.password_hash = row.column_text(3);
    account.scram.salt = row.column_text(4);
    account.scram.iterations = static_cast<std::uint32_t>(row.column_int64(5));
    account.scram.stored_key = row.column_text(6);
    account.scram.server_key = row.column_text(7);
    account.disabled = row.column_int64(8) != 0;
    return account;
}

// Looks up one integer by one text key; nullopt when there is no row.
Result<std::optional<std::int64_t>> lookup_id(Connection& db, const std::string& sql, std::string_view key) {
    auto statement = db.prepare(sql);
    if (!statement) return statement.error();
    statement->bind_text(1, key);
    auto row = statement->step();
    if (!row) return row.error();
    if (!*row) return std::optional<std::int64_t>{};
    return std::optional<std::int64_t>{statement->column_int64(0)};
}

Result<std::int64_t> domain_id(Connection& db, std::string_view domain) {
    auto id = lookup_id(db, "SELECT id FROM domains WHERE name = ?1", domain);
    if (!id) return id.error();
    if (!*id) return make_error(Errc::not_found, fmt::format("domain {} is not local", domain));
    return **id;
}

Result<std::optional<std::int64_t>> account_id(Connection& db, std::string_view address) {
    return lookup_id(db, "SELECT id FROM accounts WHERE address = ?1", address);
}

}  // namespace

// ---- ReaderPool ----

ReaderPool::ReaderPool(std::filesystem::path db_path, std::size_t max, int busy_timeout_ms)
    : db_path_(std::move(db_path)), max_(std::max<std::size_t>(max, 1)), busy_timeout_ms_(busy_timeout_ms) {}

ReaderPool::Lease::~Lease() {
    if (connection_) pool_->release(std::move(connection_));
}

Result<ReaderPool::Lease> ReaderPool::acquire() {
    std::unique_lock lock(mutex_);
    available_.wait(lock, [&] { return !idle_.empty() || open_ < max_; });
    if (!idle_.empty()) {
        std::unique_ptr<Connection> connection = std::move(idle_.back());
        idle_.pop_back();
        return Lease(this, std::move(connection));
    }
    ++open_;
    lock.unlock();
    auto connection = Connection::open(db_path_, Connection::Mode::read_only, busy_timeout_ms_);
    if (!connection) {
        lock.lock();
        --open_;
        available_.notify_one();
        return connection.error();
    }
    return Lease(this, std::move(*connection));
}

void ReaderPool::release(std::unique_ptr<Connection> connection) {
    std::lock_guard lock(mutex_);
    idle_.push_back(std::move(connection));
    available_.notify_one();
}

// ---- SqliteStore: plumbing ----

SqliteStore::SqliteStore(SqliteOptions options, std::unique_ptr<Connection> writer)
    : options_(std::move(options)),
      blobs_(std::make_unique<BlobFiles>(options_.data_dir)),
      writer_(std::move(writer)),
      readers_(options_.data_dir / "magpie.db", options_.max_readers, options_.busy_timeout_ms),
      states_cache_(options_.states_cache_messages) {
    if (!writer_) return;
    if (auto opened = Connection::open(options_.data_dir / "magpie.db", Connection::Mode::read_only, 0); opened) {
        version_reader_ = std::move(*opened);
    } else {
        spdlog::warn("store: no connection for directory versions ({}); recipients are looked up each time",
                     opened.error().message);
    }
    start_checkpointer();
    committer_ = std::thread([this] { committer_loop(); });
    for (std::size_t i = 0; i < std::max<std::size_t>(options_.blob_writer_threads, 1); ++i) {
        blob_writers_.emplace_back([this] { blob_writer_loop(); });
    }
}

SqliteStore::~SqliteStore() {
    // Both stages drain what they hold before they exit: every accepted delivery gets its answer.
    {
        std::lock_guard lock(queue_mutex_);
        stopping_ = true;
    }
    large_ready_.notify_all();
    for (auto& thread : blob_writers_) thread.join();
    {
        std::lock_guard lock(queue_mutex_);
        writers_done_ = true;
    }
    queue_ready_.notify_all();
    if (committer_.joinable()) committer_.join();
    stop_checkpointer();
}

void SqliteStore::set_change_listener(ChangeListener listener) {
    std::lock_guard lock(listener_mutex_);
    listener_ = std::move(listener);
}

void SqliteStore::notify(const Changes& changes) {
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

StoreStats SqliteStore::stats() const {
    StoreStats stats;
    stats.deliveries = deliveries_.load();
    stats.failed_deliveries = failed_deliveries_.load();
    stats.commits = commits_.load();
    stats.writes = writes_.load();
    {
        std::lock_guard lock(queue_mutex_);
        stats.queued = queue_.size() + large_queue_.size();
    }
    stats.blob_files = blob_files_written_.load();
    return stats;
}

// ---- domains ----

Result<Domain> SqliteStore::add_domain(std::string_view name) {
    auto domain = normalize_domain(name);
    if (!domain) return domain.error();
    return write<Domain>([&](Connection& db) -> Result<Domain> {
        auto statement = db.prepare("INSERT INTO domains(name) VALUES(?1)");
        if (!statement) return statement.error();
        auto inserted = statement->bind_text(1, *domain).run();
        if (!inserted) {
            if (inserted.error().code == Errc::already_exists) {
                return make_error(Errc::already_exists, fmt::format("domain {} exists", *domain));
            }
            return inserted.error();
        }
        return Domain{db.last_insert_rowid(), *domain};
    });
}

Result<void> SqliteStore::delete_domain(std::string_view name) {
    auto domain = normalize_domain(name);
    if (!domain) return domain.error();
    return write<void>([&](Connection& db) -> Result<void> {
        auto id = domain_id(db, *domain);
        if (!id) return id.error();
        auto count = db.prepare("SELECT count(*) FROM accounts WHERE domain_id = ?1");
        if (!count) return count.error();
        auto row = count->bind(1, *id).step();
        if (!row) return row.error();
        if (count->column_int64(0) > 0) {
            return make_error(Errc::permission_denied, fmt::format("domain {} still has accounts", *domain));
        }
        auto aliases = db.prepare("DELETE FROM aliases WHERE domain_id = ?1");
        if (!aliases) return aliases.error();
        MAGPIE_TRY(aliases->bind(1, *id).run());
        auto statement = db.prepare("DELETE FROM domains WHERE id = ?1");
        if (!statement) return statement.error();
        return statement->bind(1, *id).run();
    });
}

Result<std::vector<Domain>> SqliteStore::list_domains() {
    return read<std::vector<Domain>>([&](Connection& db) -> Result<std::vector<Domain>> {
        auto statement = db.prepare("SELECT id, name FROM domains ORDER BY name");
        if (!statement) return statement.error();
        std::vector<Domain> domains;
        for (;;) {
            auto row = statement->step();
            if (!row) return row.error();
            if (!*row) break;
            domains.push_back(Domain{statement->column_int64(0), statement->column_text(1)});
        }
        return domains;
    });
}

// ---- accounts ----

Result<Account> SqliteStore::add_account(std::string_view address, std::string_view password_hash,
                                         const ScramCredentials& scram) {
    auto normalized = normalize_address(address);
    if (!normalized) return normalized.error();
    MAGPIE_TRY(check_credentials(password_hash, scram));
    return write<Account>([&](Connection& db) -> Result<Account> {
        auto domain = domain_id(db, normalized->domain);
        if (!domain) return domain.error();
        // An alias of the same name would be shadowed by the account (accounts resolve first): refuse it.
        auto alias = lookup_id(db, "SELECT id FROM aliases WHERE address = ?1", normalized->address);
        if (!alias) return alias.error();
        if (*alias) return make_error(Errc::already_exists, fmt::format("{} is an alias", normalized->address));

        auto statement = db.prepare(
            "INSERT INTO accounts(domain_id, address, password_hash, scram_salt, scram_iterations, "
            "scram_stored_key, scram_server_key, disabled, created_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8)");
        if (!statement) return statement.error();
        statement->bind(1, *domain)
            .bind_text(2, normalized->address)
            .bind_text(3, password_hash)
            .bind_blob(4, scram.salt)
            .bind(5, scram.iterations)
            .bind_blob(6, scram.stored_key)
            .bind_blob(7, scram.server_key)
            .bind(8, unix_now());
        auto inserted = statement->run();
        if (!inserted) {
            if (inserted.error().code == Errc::already_exists) {
                return make_error(Errc::already_exists, fmt::format("account {} exists", normalized->address));
            }
            return inserted.error();
        }
        Account account{db.last_insert_rowid(), *domain, normalized->address,
                        std::string(password_hash), scram, false};
        for (const DefaultMailbox& mailbox : kDefaultMailboxes) {
            MAGPIE_TRY(insert_mailbox(db, account.id, mailbox.name, mailbox.special_use));
            // The default mailboxes start subscribed, as Dovecot's autosubscribe does; CREATE does not.
            MAGPIE_TRY(subscribe(db, account.id, mailbox.name));
        }
        return account;
    });
}

Result<void> SqliteStore::set_password(std::string_view address, std::string_view password_hash,
                                       const ScramCredentials& scram) {
    auto normalized = normalize_address(address);
    if (!normalized) return normalized.error();
    MAGPIE_TRY(check_credentials(password_hash, scram));
    return write<void>([&](Connection& db) -> Result<void> {
        auto statement = db.prepare(
            "UPDATE accounts SET password_hash = ?2, scram_salt = ?3, scram_iterations = ?4, "
            "scram_stored_key = ?5, scram_server_key = ?6 WHERE address = ?1");
        if (!statement) return statement.error();
        statement->bind_text(1, normalized->address)
            .bind_text(2, password_hash)
            .bind_blob(3, scram.salt)
            .bind(4, scram.iterations)
            .bind_blob(5, scram.stored_key)
            .bind_blob(6, scram.server_key);
        MAGPIE_TRY(statement->run());
        if (db.changes() == 0) {
            return make_error(Errc::not_found, fmt::format("no account {}", normalized->address));
        }
        return {};
    });
}

Result<void> SqliteStore::set_disabled(std::string_view address, bool disabled) {
    auto normalized = normalize_address(address);
    if (!normalized) return normalized.error();
    return write<void>([&](Connection& db) -> Result<void> {
        auto statement = db.prepare("UPDATE accounts SET disabled = ?2 WHERE address = ?1");
        if (!statement) return statement.error();
        MAGPIE_TRY(statement->bind_text(1, normalized->address).bind(2, disabled ? 1 : 0).run());
        if (db.changes() == 0) {
            return make_error(Errc::not_found, fmt::format("no account {}", normalized->address));
        }
        return {};
    });
}

Result<void> SqliteStore::delete_account(std::string_view address) {
    auto normalized = normalize_address(address);
    if (!normalized) return normalized.error();
    return write<void>([&](Connection& db) -> Result<void> {
        // ON DELETE CASCADE removes aliases, mailboxes, messages and change log rows; blobs stay as garbage
        // (other accounts may share them) until a collector removes unreferenced ones.
        auto statement = db.prepare("DELETE FROM accounts WHERE address = ?1");
        if (!statement) return statement.error();
        MAGPIE_TRY(statement->bind_text(1, normalized->address).run());
        if (db.changes() == 0) {
            return make_error(Errc::not_found, fmt::format("no account {}", normalized->address));
        }
        return {};
    });
}

Result<std::vector<Account>> SqliteStore::list_accounts(std::string_view domain) {
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
        auto statement = db.prepare(fmt::format(
            "SELECT {} FROM accounts a JOIN domains d ON d.id = a.domain_id WHERE ?1 = '' OR d.name = ?1 "
            "ORDER BY a.address",
            kAccountColumns));
        if (!statement) return statement.error();
        statement->bind_text(1, domain_name);
        std::vector<Account> accounts;
        for (;;) {
            auto row = statement->step();
            if (!row) return row.error();
            if (!*row) break;
            accounts.push_back(account_from_row(*statement));
        }
        return accounts;
    });
}

Result<Account> SqliteStore::find_account(std::string_view address) {
    // A login name that is no address cannot be an account: not_found, like any unknown user, so callers
    // (auth) answer both the same way.
    auto normalized = normalize_address(address);
    if (!normalized) return make_error(Errc::not_found, fmt::format("no account {}", address));
    return read<Account>([&](Connection& db) -> Result<Account> {
        auto statement = db.prepare(fmt::format("SELECT {} FROM accounts a WHERE a.address = ?1", kAccountColumns));
        if (!statement) return statement.error();
        auto row = statement->bind_text(1, normalized->address).step();
        if (!row) return row.error();
        if (!*row) return make_error(Errc::not_found, fmt::format("no account {}", normalized->address));
        return account_from_row(*statement);
    });
}

// ---- aliases ----

Result<void> SqliteStore::add_alias(std::string_view address, std::string_view target) {
    auto alias = normalize_address(address, /*allow_catch_all=*/true);
    if (!alias) return alias.error();
    auto target_address = normalize_address(target);
    if (!target_address) return target_address.error();
    return write<void>([&](Connection& db) -> Result<void> {
        auto domain = domain_id(db, alias->domain);
        if (!domain) return domain.error();
        auto target_id = account_id(db, target_address->address);
        if (!target_id) return target_id.error();
        if (!*target_id) {
            return make_error(Errc::not_found, fmt::format("alias target {} is not a local account", target_address->address));
        }
        auto shadowing = account_id(db, alias->address);
        if (!shadowing) return shadowing.error();
        if (*shadowing) return make_error(Errc::already_exists, fmt::format("{} is an account", alias->address));
        auto statement = db.prepare("INSERT INTO aliases(domain_id, address, account_id) VALUES(?1, ?2, ?3)");
        if (!statement) return statement.error();
        auto inserted = statement->bind(1, *domain).bind_text(2, alias->address).bind(3, **target_id).run();
        if (!inserted && inserted.error().code == Errc::already_exists) {
            return make_error(Errc::already_exists, fmt::format("alias {} exists", alias->address));
        }
        return inserted;
    });
}

Result<void> SqliteStore::delete_alias(std::string_view address) {
    auto alias = normalize_address(address, /*allow_catch_all=*/true);
    if (!alias) return alias.error();
    return write<void>([&](Connection& db) -> Result<void> {
        auto statement = db.prepare("DELETE FROM aliases WHERE address = ?1");
        if (!statement) return statement.error();
        MAGPIE_TRY(statement->bind_text(1, alias->address).run());
        if (db.changes() == 0) {
            return make_error(Errc::not_found, fmt::format("no alias {}", alias->address));
        }
        return {};
    });
}

Result<std::vector<Alias>> SqliteStore::list_aliases(std::string_view domain) {
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
        auto statement = db.prepare(
            "SELECT l.address, a.address FROM aliases l JOIN accounts a ON a.id = l.account_id "
            "JOIN domains d ON d.id = l.domain_id WHERE ?1 = '' OR d.name = ?1 ORDER BY l.address");
        if (!statement) return statement.error();
        statement->bind_text(1, domain_name);
        std::vector<Alias> aliases;
        for (;;) {
            auto row = statement->step();
            if (!row) return row.error();
            if (!*row) break;
            aliases.push_back(Alias{statement->column_text(0), statement->column_text(1)});
        }
        return aliases;
    });
}

Result<RecipientResult> SqliteStore::resolve_recipient(std::string_view address) {
    std::size_t at = address.rfind('@');
    if (at == std::string_view::npos) return make_error(Errc::invalid_argument, "address has no '@'");
    // A domain we could not have (an address literal, a bad name) is simply not local; a local part we
    // could not have, in a local domain, is an unknown user.
    auto domain_name = normalize_domain(address.substr(at + 1));
    if (!domain_name) return RecipientResult{RecipientStatus::not_local_domain, 0, {}};
    auto normalized = normalize_address(address);
    return read<RecipientResult>([&](Connection& db) -> Result<RecipientResult> {
        auto domain = lookup_id(db, "SELECT id FROM domains WHERE name = ?1", *domain_name);
        if (!domain) return domain.error();
        if (!*domain) return RecipientResult{RecipientStatus::not_local_domain, 0, {}};
        if (!normalized) return RecipientResult{RecipientStatus::unknown_user, 0, {}};
        // Exact account first, then an alias of that address, then the domain's catch-all "@domain".
        auto statement = db.prepare(
            "SELECT id, address, 0 AS rank FROM accounts WHERE address = ?1 "
            "UNION ALL SELECT a.id, a.address, 1 FROM aliases l JOIN accounts a ON a.id = l.account_id "
            "WHERE l.address = ?1 "
            "UNION ALL SELECT a.id, a.address, 2 FROM aliases l JOIN accounts a ON a.id = l.account_id "
            "WHERE l.address = ?2 ORDER BY rank LIMIT 1");
        if (!statement) return statement.error();
        statement->bind_text(1, normalized->address).bind_text(2, "@" + normalized->domain);
        auto row = statement->step();
        if (!row) return row.error();
        if (!*row) return RecipientResult{RecipientStatus::unknown_user, 0, {}};
        return RecipientResult{RecipientStatus::local, statement->column_int64(0), statement->column_text(1)};
    });
}

Result<std::uint64_t> SqliteStore::directory_version() {
    return read<std::uint64_t>([](Connection& db) { return read_directory_version(db); });
}

std::optional<std::uint64_t> SqliteStore::directory_version_if_ready() {
    std::unique_lock lock(version_reader_mutex_, std::try_to_lock);
    if (!lock || !version_reader_) return std::nullopt;
    const auto now = std::chrono::steady_clock::now();
    // Loaded before the read: a write committed meanwhile leaves the number marked older than it is.
    const std::uint64_t own_writes = own_writes_.load(std::memory_order_acquire);
    if (version_read_ && version_read_->own_writes == own_writes &&
        now - version_read_->at < options_.directory_version_reuse)
        return version_read_->version;
    // One statement in autocommit: a read snapshot of its own, which never waits (busy timeout 0).
    auto version = read_directory_version(*version_reader_);
    if (!version) return std::nullopt;
    version_read_ = VersionRead{*version, now, own_writes};
    return *version;
}

// ---- mailboxes ----

Result<std::vector<Mailbox>> SqliteStore::list_mailboxes(std::int64_t account_id) {
    return read<std::vector<Mailbox>>([&](Connection& db) -> Result<std::vector<Mailbox>> {
        auto statement = db.prepare(fmt::format(
            "SELECT {} FROM mailboxes WHERE account_id = ?1 ORDER BY name <> 'INBOX', name", kMailboxColumns));
        if (!statement) return statement.error();
        statement->bind(1, account_id);
        std::vector<Mailbox> mailboxes;
        for (;;) {
            auto row = statement->step();
            if (!row) return row.error();
            if (!*row) break;
            mailboxes.push_back(mailbox_from_row(*statement));
        }
        return mailboxes;
    });
}

Result<Mailbox> SqliteStore::find_mailbox(std::int64_t account_id, std::string_view name) {
    // RFC 9051 5.1: INBOX is case-insensitive; every other name is matched exactly.
    std::string key = iequals(name, "INBOX") ? std::string("INBOX") : std::string(name);
    return read<Mailbox>([&](Connection& db) -> Result<Mailbox> {
        auto statement =
            db.prepare(fmt::format("SELECT {} FROM mailboxes WHERE account_id = ?1 AND name = ?2", kMailboxColumns));
        if (!statement) return statement.error();
        auto row = statement->bind(1, account_id).bind_text(2, key).step();
        if (!row) return row.error();
        if (!*row) return make_error(Errc::not_found, fmt::format("no mailbox {}", key));
        return mailbox_from_row(*statement);
    });
}

// ---- messages ----

Result<std::vector<Message>> SqliteStore::list_messages(std::int64_t mailbox_id) {
    return read<std::vector<Message>>([&](Connection& db) -> Result<std::vector<Message>> {
        auto exists = db.prepare("SELECT 1 FROM mailboxes WHERE id = ?1");
        if (!exists) return exists.error();
        auto found = exists->bind(1, mailbox_id).step();
        if (!found) return found.error();
        if (!*found) return make_error(Errc::not_found, fmt::format("no mailbox {}", mailbox_id));
        auto statement = db.prepare(std::string(kMessageSelect) + "WHERE m.mailbox_id = ?1 ORDER BY m.uid");
        if (!statement) return statement.error();
        statement->bind(1, mailbox_id);
        std::vector<Message> messages;
        for (;;) {
            auto row = statement->step();
            if (!row) return row.error();
            if (!*row) break;
            messages.push_back(message_from_row(*statement));
        }
        return messages;
    });
}

Result<Message> SqliteStore::find_message(std::int64_t mailbox_id, std::uint32_t uid) {
    return read<Message>([&](Connection& db) -> Result<Message> {
        auto statement = db.prepare(std::string(kMessageSelect) + "WHERE m.mailbox_id = ?1 AND m.uid = ?2");
        if (!statement) return statement.error();
        auto row = statement->bind(1, mailbox_id).bind(2, uid).step();
        if (!row) return row.error();
        if (!*row) return make_error(Errc::not_found, fmt::format("no message {} in mailbox {}", uid, mailbox_id));
        return message_from_row(*statement);
    });
}

namespace {

// The states of `mailbox_id`'s messages (queries::kStates), or only of those with a MODSEQ above `above`.
Result<std::vector<MessageState>> read_states(Connection& db, std::int64_t mailbox_id,
                                              std::optional<std::uint64_t> above) {
    auto statement = db.prepare(above ? queries::kStatesChangedSince : queries::kStates);
    if (!statement) return statement.error();
    statement->bind(1, mailbox_id);
    if (above) statement->bind(2, static_cast<std::int64_t>(*above));
    std::vector<MessageState> states;
    for (;;) {
        auto row = statement->step();
        if (!row) return row.error();
        if (!*row) return states;
        states.push_back(MessageState{static_cast<std::uint32_t>(statement->column_int64(0)),
                                      static_cast<std::uint64_t>(statement->column_int64(1)),
                                      flag_list(static_cast<std::uint32_t>(statement->column_int64(2)),
                                                statement->column_text(3))});
    }
}

Result<std::vector<std::uint32_t>> expunged_since(Connection& db, std::int64_t mailbox_id, std::uint64_t modseq) {
    auto statement = db.prepare(queries::kExpungedSince);
    if (!statement) return statement.error();
    statement->bind(1, mailbox_id).bind(2, static_cast<std::int64_t>(modseq));
    std::vector<std::uint32_t> uids;
    for (;;) {
        auto row = statement->step();
        if (!row) return row.error();
        if (!*row) return uids;
        uids.push_back(static_cast<std::uint32_t>(statement->column_int64(0)));
    }
}

}  // namespace

Result<std::vector<MessageState>> SqliteStore::list_states(std::int64_t mailbox_id) {
    return read<std::vector<MessageState>>([&](Connection& db) -> Result<std::vector<MessageState>> {
        auto mailbox = select_mailbox(db, mailbox_id);
        if (!mailbox) {
            if (mailbox.error().code == Errc::not_found) states_cache_.forget(mailbox_id);
            return mailbox.error();
        }
        if (options_.states_cache_messages == 0) return read_states(db, mailbox_id, std::nullopt);
        // A snapshot tagged with this transaction's UIDVALIDITY and HIGHESTMODSEQ is these very states; an
        // older one of the same UIDVALIDITY needs only what changed after it (states_cache.h).
        auto kept = states_cache_.find(mailbox_id);
        const bool same_mailbox = kept && kept->uidvalidity == mailbox->uidvalidity;
        if (same_mailbox && kept->highest_modseq == mailbox->highest_modseq) return kept->states;
        auto snapshot = std::make_shared<StatesSnapshot>();
        snapshot->uidvalidity = mailbox->uidvalidity;
        snapshot->highest_modseq = mailbox->highest_modseq;
        if (same_mailbox && kept->highest_modseq < mailbox->highest_modseq) {
            auto changed = read_states(db, mailbox_id, kept->highest_modseq);
            if (!changed) return changed.error();
            auto expunged = expunged_since(db, mailbox_id, kept->highest_modseq);
            if (!expunged) return expunged.error();
            snapshot->states = apply_changes(kept->states, std::move(*changed), std::move(*expunged));
        } else {
            auto states = read_states(db, mailbox_id, std::nullopt);
            if (!states) return states.error();
            snapshot->states = std::move(*states);
        }
        std::vector<MessageState> states = snapshot->states;
        states_cache_.keep(mailbox_id, std::move(snapshot));
        return states;
    });
}

Result<MailboxStatus> SqliteStore::mailbox_status(std::int64_t mailbox_id) {
    return read<MailboxStatus>([&](Connection& db) -> Result<MailboxStatus> {
        auto statement = db.prepare(
            "SELECT message_count, unseen_count, recent_count, uidnext, uidvalidity, highest_modseq, total_size, "
            "deleted_count, deleted_size FROM mailboxes WHERE id = ?1");
        if (!statement) return statement.error();
        auto row = statement->bind(1, mailbox_id).step();
        if (!row) return row.error();
        if (!*row) return make_error(Errc::not_found, fmt::format("no mailbox {}", mailbox_id));
        MailboxStatus status;
        status.messages = static_cast<std::uint32_t>(statement->column_int64(0));
        status.unseen = static_cast<std::uint32_t>(statement->column_int64(1));
        status.recent = static_cast<std::uint32_t>(statement->column_int64(2));
        status.uidnext = static_cast<std::uint32_t>(statement->column_int64(3));
        status.uidvalidity = static_cast<std::uint32_t>(statement->column_int64(4));
        status.highest_modseq = static_cast<std::uint64_t>(statement->column_int64(5));
        status.size = static_cast<std::uint64_t>(statement->column_int64(6));
        status.deleted = static_cast<std::uint32_t>(statement->column_int64(7));
        status.deleted_size = static_cast<std::uint64_t>(statement->column_int64(8));
        return status;
    });
}

Result<std::vector<Message>> SqliteStore::find_messages(std::int64_t mailbox_id,
                                                        const std::vector<std::uint32_t>& uids) {
    // The UID set travels as one JSON array of [first, last] ranges, so "1:*" is one range and the query
    // walks the (mailbox_id, uid) index once per range: one statement whatever the set's size.
    std::vector<std::uint32_t> sorted = uids;
    std::ranges::sort(sorted);
    sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
    const std::string ranges = uid_ranges_json(sorted);
    return read<std::vector<Message>>([&](Connection& db) -> Result<std::vector<Message>> {
        MAGPIE_TRY(select_mailbox(db, mailbox_id));
        // CROSS JOIN keeps json_each outermost, so rows come out range by range in ascending UID order.
        auto statement = db.prepare(
            "SELECT m.id, m.mailbox_id, m.uid, m.modseq, m.blob_id, m.size, m.internal_date, m.system_flags, "
            "m.keywords, b.subject, b.from_header, b.to_header, b.cc_header, b.date_header, b.message_id, "
            "b.in_reply_to, b.refs, b.structure, m.email_id, e.thread_id FROM json_each(?2) r CROSS JOIN messages m "
            "LEFT JOIN blobs b ON b.id = m.blob_id LEFT JOIN emails e ON e.id = m.email_id WHERE m.mailbox_id = ?1 "
            "AND m.uid BETWEEN json_extract(r.value, '$[0]') AND json_extract(r.value, '$[1]')");
        if (!statement) return statement.error();
        statement->bind(1, mailbox_id).bind_text(2, ranges);
        std::vector<Message> messages;
        for (;;) {
            auto row = statement->step();
            if (!row) return row.error();
            if (!*row) break;
            messages.push_back(message_from_row(*statement));
        }
        // The order above is the plan's, not a promise of SQL: make it one.
        if (!std::ranges::is_sorted(messages, {}, &Message::uid)) std::ranges::sort(messages, {}, &Message::uid);
        return messages;
    });
}

Result<SqliteStore::LocatedBlob> SqliteStore::locate_blob(std::string_view blob_id) {
    if (!is_valid_blob_id(blob_id)) return make_error(Errc::invalid_argument, "invalid blob id");
    return read<LocatedBlob>([&](Connection& db) { return locate_blob_in(db, blob_id); });
}

Result<SqliteStore::LocatedBlob> SqliteStore::locate_blob_in(Connection& db, std::string_view blob_id) {
    auto statement = db.prepare(
        "SELECT b.location, b.size, c.content FROM blobs b LEFT JOIN blob_contents c ON c.blob_id = b.id "
        "WHERE b.id = ?1");
    if (!statement) return statement.error();
    auto row = statement->bind_text(1, blob_id).step();
    if (!row) return row.error();
    if (!*row) return make_error(Errc::not_found, fmt::format("no blob {}", blob_id));
    const std::int64_t location = statement->column_int64(0);
    LocatedBlob result{location == kLocationFile, static_cast<std::uint64_t>(statement->column_int64(1)), {}};
    if (!result.in_file) {
        if (statement->column_is_null(2)) return make_error(Errc::corrupt, fmt::format("blob {} has no content", blob_id));
        auto content =
            expand_inline(location, statement->column_text(2), result.size, options_.max_message_bytes);
        if (!content) return make_error(content.error().code, fmt::format("blob {}: {}", blob_id, content.error().message));
        result.content = std::move(*content);
    }
    return result;
}

Result<std::string> SqliteStore::read_blob_in(Connection& db, std::string_view blob_id) {
    if (!is_valid_blob_id(blob_id)) return make_error(Errc::invalid_argument, "invalid blob id");
    auto located = locate_blob_in(db, blob_id);
    if (!located) return located.error();
    if (!located->in_file) return std::move(located->content);
    auto content = blobs_->read(blob_id, options_.max_message_bytes);
    if (!content) return content.error();
    if (content->size() != located->size) {
        return make_error(Errc::corrupt, fmt::format("blob {} is {} bytes, expected {}", blob_id, content->size(), located->size));
    }
    return content;
}

Result<std::string> SqliteStore::read_blob(std::string_view blob_id) {
    auto located = locate_blob(blob_id);
    if (!located) return located.error();
    if (!located->in_file) return std::move(located->content);
    // The file is immutable once its row is committed, so it is read outside the snapshot.
    auto content = blobs_->read(blob_id, options_.max_message_bytes);
    if (!content) return content.error();
    if (content->size() != located->size) {
        return make_error(Errc::corrupt, fmt::format("blob {} is {} bytes, expected {}", blob_id, content->size(), located->size));
    }
    return content;
}

Result<std::unique_ptr<BlobReader>> SqliteStore::open_blob(std::string_view blob_id) {
    auto located = locate_blob(blob_id);
    if (!located) return located.error();
    // Inline blobs are at most inline_blob_max: holding one whole is the bound.
    if (!located->in_file) return std::unique_ptr<BlobReader>(std::make_unique<MemoryBlobReader>(std::move(located->content)));
    auto reader = blobs_->open(blob_id);
    if (!reader) return reader.error();
    if ((*reader)->size() != located->size) {
        return make_error(Errc::corrupt,
                          fmt::format("blob {} is {} bytes, expected {}", blob_id, (*reader)->size(), located->size));
    }
    return reader;
}

Result<std::unique_ptr<BlobSpool>> SqliteStore::open_spool() {
    if (!writer_) return make_error(Errc::permission_denied, "the store is open read-only");
    return blobs_->spool();
}

}  // namespace magpie::store::sqlite

namespace magpie::store {

// ---- opening ----

Result<std::unique_ptr<Store>> open_sqlite_store(const SqliteOptions& options) {
    using sqlite::Connection;
    using sqlite::SqliteStore;
    if (options.data_dir.empty()) return make_error(Errc::invalid_argument, "no data directory");
    std::filesystem::path db_path = options.data_dir / "magpie.db";
    if (options.read_only) {
        std::error_code error;
        if (!std::filesystem::exists(db_path, error)) {
            return make_error(Errc::not_found, fmt::format("no store at {}", options.data_dir.string()));
        }
        auto probe = Connection::open(db_path, Connection::Mode::read_only, options.busy_timeout_ms);
        if (!probe) return probe.error();
        auto version = sqlite::schema_version(**probe);
        if (!version) return version.error();
        if (*version != sqlite::kSchemaVersion) {
            return make_error(Errc::unavailable, fmt::format("store schema version {} (this magpie knows {})",
                                                             *version, sqlite::kSchemaVersion));
        }
        return std::unique_ptr<Store>(std::make_unique<SqliteStore>(options, nullptr));
    }

    std::error_code error;
    bool created = std::filesystem::create_directories(options.data_dir, error);
    if (error) {
        return make_error(Errc::io_error, fmt::format("create {}: {}", options.data_dir.string(), error.message()));
    }
    // Mail is private: a data directory we create is for the owner alone (SQLite makes its files 0644).
    if (created) {
        std::filesystem::permissions(options.data_dir, std::filesystem::perms::owner_all,
                                     std::filesystem::perm_options::replace, error);
        if (error) {
            return make_error(Errc::io_error, fmt::format("chmod {}: {}", options.data_dir.string(), error.message()));
        }
    }
    MAGPIE_TRY(BlobFiles(options.data_dir).create_layout());
    // The one writer's commits go to the log in one write each (wal_vfs.h; issue 17).
    auto writer = Connection::open(db_path, Connection::Mode::read_write_create, options.busy_timeout_ms,
                                   Connection::WalWrites::coalesced);
    if (!writer) return writer.error();
    Connection& db = **writer;
    // WAL: readers never block the writer and one commit is one append + fsync of the log.
    {
        auto mode = db.prepare("PRAGMA journal_mode = WAL");
        if (!mode) return mode.error();
        auto row = mode->step();
        if (!row) return row.error();
        if (!*row || !iequals(mode->column_text(0), "wal")) {
            return make_error(Errc::io_error, "the database refused WAL mode");
        }
    }
    // FULL: the WAL is fsynced at every commit, which is what "durable before acknowledged" needs.
    MAGPIE_TRY(db.exec("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON"));
    MAGPIE_TRY(sqlite::migrate(db, sqlite::ThreadLimits{options.max_thread_references,
                                                        options.thread_subject_window_seconds}));
    return std::unique_ptr<Store>(std::make_unique<SqliteStore>(options, std::move(*writer)));
}

}  // namespace magpie::store
