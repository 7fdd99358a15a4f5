// The IMAP/JMAP operations of the embedded backend: mailbox create/rename/delete/subscribe, flag changes,
// expunge, copy and move (sharing blobs), and change-log queries. Each is one write transaction on the
// writer connection; the change listener hears of it only after the commit.
#include <algorithm>

#include <fmt/format.h>

#include "base/strings.h"
#include "store/sqlite/rows.h"
#include "store/sqlite/sqlite_store.h"

namespace magpie::store::sqlite {
namespace {

constexpr std::string_view kInbox = "INBOX";

// RFC 9051 5.1: INBOX is case-insensitive; every other name is matched exactly.
std::string canonical_name(std::string_view name) {
    return iequals(name, kInbox) ? std::string(kInbox) : std::string(name);
}

std::vector<std::uint32_t> sorted_unique(std::vector<std::uint32_t> uids) {
    std::ranges::sort(uids);
    uids.erase(std::unique(uids.begin(), uids.end()), uids.end());
    return uids;
}

Result<std::int64_t> mailbox_id_by_name(Connection& db, std::int64_t account_id, std::string_view name) {
    auto statement = db.prepare("SELECT id FROM mailboxes WHERE account_id = ?1 AND name = ?2");
    if (!statement) return statement.error();
    auto row = statement->bind(1, account_id).bind_text(2, name).step();
    if (!row) return row.error();
    if (!*row) return make_error(Errc::not_found, fmt::format("no mailbox {}", name));
    return statement->column_int64(0);
}

Result<void> require_account(Connection& db, std::int64_t account_id) {
    auto statement = db.prepare("SELECT 1 FROM accounts WHERE id = ?1");
    if (!statement) return statement.error();
    auto row = statement->bind(1, account_id).step();
    if (!row) return row.error();
    if (!*row) return make_error(Errc::not_found, fmt::format("no account {}", account_id));
    return {};
}

struct StoredFlags {
    std::uint32_t system = 0;
    std::string keywords;
    std::uint64_t modseq = 0;
    std::uint64_t size = 0;
};

Result<std::optional<StoredFlags>> stored_flags(Connection& db, std::int64_t mailbox_id, std::uint32_t uid) {
    auto statement =
        db.prepare("SELECT system_flags, keywords, modseq, size FROM messages WHERE mailbox_id = ?1 AND uid = ?2");
    if (!statement) return statement.error();
    auto row = statement->bind(1, mailbox_id).bind(2, uid).step();
    if (!row) return row.error();
    if (!*row) return std::optional<StoredFlags>{};
    return std::optional<StoredFlags>{StoredFlags{static_cast<std::uint32_t>(statement->column_int64(0)),
                                                  statement->column_text(1),
                                                  static_cast<std::uint64_t>(statement->column_int64(2)),
                                                  static_cast<std::uint64_t>(statement->column_int64(3))}};
}

bool contains_keyword(const std::vector<std::string>& keywords, std::string_view keyword) {
    return std::ranges::any_of(keywords, [&](const std::string& k) { return iequals(k, keyword); });
}

// A message chosen for removal, with what the kept counters need to uncount it.
struct Doomed {
    std::uint32_t uid = 0;
    std::uint64_t size = 0;
    std::uint32_t system_flags = 0;
};

// Removes messages (already chosen) from a mailbox under one new MODSEQ, logs them as expunged and
// uncounts them.
Result<std::uint64_t> remove_messages(Connection& db, std::int64_t mailbox_id, const std::vector<Doomed>& doomed) {
    auto recent_from = first_recent_uid(db, mailbox_id);
    if (!recent_from) return recent_from.error();
    auto modseq = allocate_modseq(db, mailbox_id);
    if (!modseq) return modseq.error();
    CounterDelta delta;
    for (const Doomed& message : doomed) {
        auto remove = db.prepare("DELETE FROM messages WHERE mailbox_id = ?1 AND uid = ?2");
        if (!remove) return remove.error();
        MAGPIE_TRY(remove->bind(1, mailbox_id).bind(2, message.uid).run());
        MAGPIE_TRY(log_change(db, mailbox_id, *modseq, message.uid, ChangeKind::expunged));
        delta.count(-1, message.system_flags, message.size, message.uid >= *recent_from);
    }
    MAGPIE_TRY(apply_counters(db, mailbox_id, delta));
    return *modseq;
}

}  // namespace

Result<std::string> SqliteStore::check_mailbox_name(std::string_view name) const {
    if (name.empty() || name.size() > options_.max_mailbox_name_bytes) {
        return make_error(Errc::invalid_argument, "mailbox name empty or too long");
    }
    if (!is_valid_utf8(name)) return make_error(Errc::invalid_argument, "mailbox name is not UTF-8");
    for (char c : name) {
        auto byte = static_cast<unsigned char>(c);
        if (byte < 0x20 || byte == 0x7f) return make_error(Errc::invalid_argument, "control character in mailbox name");
    }
    for (std::string_view level : split(name, '/')) {
        if (level.empty()) return make_error(Errc::invalid_argument, "empty level in mailbox name");
    }
    return canonical_name(name);
}

Result<Mailbox> SqliteStore::create_mailbox(std::int64_t account_id, std::string_view name) {
    auto checked = check_mailbox_name(name);
    if (!checked) return checked.error();
    return write<Mailbox>([&](Connection& db) -> Result<Mailbox> {
        MAGPIE_TRY(require_account(db, account_id));
        auto id = insert_mailbox(db, account_id, *checked, SpecialUse::none);
        if (!id) return id.error();
        return select_mailbox(db, *id);
    });
}

Result<void> SqliteStore::rename_mailbox(std::int64_t account_id, std::string_view from, std::string_view to) {
    auto from_name = check_mailbox_name(from);
    if (!from_name) return from_name.error();
    auto to_name = check_mailbox_name(to);
    if (!to_name) return to_name.error();
    if (*to_name == kInbox) return make_error(Errc::already_exists, "INBOX exists");
    if (to_name->starts_with(*from_name + "/")) {
        return make_error(Errc::invalid_argument, "cannot rename a mailbox into its own inferior");
    }
    Changes changes;
    auto renamed = write<bool>([&](Connection& db) -> Result<bool> {
        auto source = mailbox_id_by_name(db, account_id, *from_name);
        if (!source) return source.error();
        if (*from_name == kInbox) {
            // RFC 9051 6.3.6: renaming INBOX moves its messages into a new mailbox; INBOX stays, empty, and
            // its inferiors are unaffected.
            auto target = insert_mailbox(db, account_id, *to_name, SpecialUse::none);
            if (!target) return target.error();
            auto all = db.prepare("SELECT uid FROM messages WHERE mailbox_id = ?1 ORDER BY uid");
            if (!all) return all.error();
            all->bind(1, *source);
            std::vector<std::uint32_t> uids;
            for (;;) {
                auto row = all->step();
                if (!row) return row.error();
                if (!*row) break;
                uids.push_back(static_cast<std::uint32_t>(all->column_int64(0)));
            }
            auto moved = copy_in_transaction(db, *source, uids, *target, /*expunge_source=*/true, changes);
            if (!moved) return moved.error();
            return true;
        }
        auto exists = mailbox_id_by_name(db, account_id, *to_name);
        if (exists) return make_error(Errc::already_exists, fmt::format("mailbox {} exists", *to_name));
        if (exists.error().code != Errc::not_found) return exists.error();
        // The mailbox and its inferiors ("from/...") in one statement; a clash with an existing name fails
        // the UNIQUE constraint and rolls everything back.
        auto rename = db.prepare(
            "UPDATE mailboxes SET name = ?3 || substr(name, length(?2) + 1) WHERE account_id = ?1 AND "
            "(name = ?2 OR substr(name, 1, length(?2) + 1) = ?2 || '/')");
        if (!rename) return rename.error();
        auto done = rename->bind(1, account_id).bind_text(2, *from_name).bind_text(3, *to_name).run();
        if (!done && done.error().code == Errc::already_exists) {
            return make_error(Errc::already_exists, fmt::format("an inferior of {} exists already", *to_name));
        }
        if (!done) return done.error();
        // Subscriptions follow the renamed mailboxes, as Cyrus does: a client that shows subscribed
        // mailboxes only would otherwise lose sight of what it just renamed.
        auto subscriptions = db.prepare(
            "UPDATE OR REPLACE subscriptions SET name = ?3 || substr(name, length(?2) + 1) WHERE account_id = ?1 "
            "AND (name = ?2 OR substr(name, 1, length(?2) + 1) = ?2 || '/')");
        if (!subscriptions) return subscriptions.error();
        MAGPIE_TRY(subscriptions->bind(1, account_id).bind_text(2, *from_name).bind_text(3, *to_name).run());
        return true;
    });
    if (!renamed) return renamed.error();
    notify(changes);
    return {};
}

Result<void> SqliteStore::delete_mailbox(std::int64_t account_id, std::string_view name) {
    auto checked = check_mailbox_name(name);
    if (!checked) return checked.error();
    if (*checked == kInbox) return make_error(Errc::permission_denied, "INBOX cannot be deleted");
    return write<void>([&](Connection& db) -> Result<void> {
        auto id = mailbox_id_by_name(db, account_id, *checked);
        if (!id) return id.error();
        // ON DELETE CASCADE takes its messages and change log; its blobs may become garbage.
        auto statement = db.prepare("DELETE FROM mailboxes WHERE id = ?1");
        if (!statement) return statement.error();
        return statement->bind(1, *id).run();
    });
}

Result<void> SqliteStore::set_subscribed(std::int64_t account_id, std::string_view name, bool subscribed) {
    // A name that could never be a mailbox cannot be subscribed either; the same check bounds its size.
    auto key = check_mailbox_name(name);
    if (!key) return key.error();
    return write<void>([&](Connection& db) -> Result<void> {
        MAGPIE_TRY(require_account(db, account_id));
        if (!subscribed) {
            auto statement = db.prepare("DELETE FROM subscriptions WHERE account_id = ?1 AND name = ?2");
            if (!statement) return statement.error();
            MAGPIE_TRY(statement->bind(1, account_id).bind_text(2, *key).run());
            if (db.changes() == 0) return make_error(Errc::not_found, fmt::format("{} is not subscribed", *key));
            return {};
        }
        auto count = db.prepare("SELECT count(*) FROM subscriptions WHERE account_id = ?1");
        if (!count) return count.error();
        auto row = count->bind(1, account_id).step();
        if (!row) return row.error();
        if (static_cast<std::size_t>(count->column_int64(0)) >= options_.max_subscriptions) {
            return make_error(Errc::limit_exceeded,
                              fmt::format("more than {} subscriptions", options_.max_subscriptions));
        }
        return subscribe(db, account_id, *key);
    });
}

Result<std::vector<std::string>> SqliteStore::list_subscriptions(std::int64_t account_id) {
    return read<std::vector<std::string>>([&](Connection& db) -> Result<std::vector<std::string>> {
        MAGPIE_TRY(require_account(db, account_id));
        auto statement = db.prepare("SELECT name FROM subscriptions WHERE account_id = ?1 ORDER BY name");
        if (!statement) return statement.error();
        statement->bind(1, account_id);
        std::vector<std::string> names;
        for (;;) {
            auto row = statement->step();
            if (!row) return row.error();
            if (!*row) return names;
            names.push_back(statement->column_text(0));
        }
    });
}

Result<std::uint32_t> SqliteStore::claim_recent(std::int64_t mailbox_id) {
    return write<std::uint32_t>([&](Connection& db) -> Result<std::uint32_t> {
        auto mark = db.prepare("SELECT first_recent_uid, uidnext FROM mailboxes WHERE id = ?1");
        if (!mark) return mark.error();
        auto row = mark->bind(1, mailbox_id).step();
        if (!row) return row.error();
        if (!*row) return make_error(Errc::not_found, fmt::format("no mailbox {}", mailbox_id));
        auto first = static_cast<std::uint32_t>(mark->column_int64(0));
        auto uidnext = static_cast<std::uint32_t>(mark->column_int64(1));
        if (first >= uidnext) return first;  // nothing new: no write, no fsync
        auto claim = db.prepare("UPDATE mailboxes SET first_recent_uid = uidnext, recent_count = 0 WHERE id = ?1");
        if (!claim) return claim.error();
        MAGPIE_TRY(claim->bind(1, mailbox_id).run());
        return first;
    });
}

Result<FlagStoreResult> SqliteStore::store_flags(std::int64_t mailbox_id, const std::vector<std::uint32_t>& uids,
                                                 const FlagUpdate& update) {
    auto requested = parse_flags(update.flags, options_.flag_limits);
    if (!requested) return requested.error();
    std::vector<std::uint32_t> targets = sorted_unique(uids);
    Changes changes;
    auto result = write<FlagStoreResult>([&](Connection& db) -> Result<FlagStoreResult> {
        auto mailbox = select_mailbox(db, mailbox_id);
        if (!mailbox) return mailbox.error();
        FlagStoreResult outcome;
        std::optional<std::uint64_t> modseq;  // one new MODSEQ for every message this STORE changes
        CounterDelta delta;
        for (std::uint32_t uid : targets) {
            auto stored = stored_flags(db, mailbox_id, uid);
            if (!stored) return stored.error();
            if (!*stored) continue;  // expunged meanwhile: nothing to report
            // RFC 7162 3.1.3: refuse messages changed after the client's UNCHANGEDSINCE.
            if (update.unchanged_since && (*stored)->modseq > *update.unchanged_since) {
                outcome.modified.push_back(uid);
                continue;
            }
            std::uint32_t system = (*stored)->system;
            std::vector<std::string> keywords;
            for (std::string_view k : split((*stored)->keywords, ' ')) {
                if (!k.empty()) keywords.emplace_back(k);
            }
            switch (update.operation) {
                case FlagOperation::add:
                    system |= requested->system;
                    for (const auto& k : requested->keywords) {
                        if (!contains_keyword(keywords, k)) keywords.push_back(k);
                    }
                    if (keywords.size() > options_.flag_limits.max_keywords) {
                        return make_error(Errc::limit_exceeded, fmt::format("message {} would have more than {} keywords",
                                                                            uid, options_.flag_limits.max_keywords));
                    }
                    break;
                case FlagOperation::remove:
                    system &= ~requested->system;
                    std::erase_if(keywords, [&](const std::string& k) { return contains_keyword(requested->keywords, k); });
                    break;
                case FlagOperation::replace:
                    system = requested->system;
                    keywords = requested->keywords;
                    break;
            }
            std::string joined = join_keywords(keywords);
            if (system == (*stored)->system && joined == (*stored)->keywords) {
                outcome.unchanged.push_back(uid);
                continue;
            }
            if (!modseq) {
                auto allocated = allocate_modseq(db, mailbox_id);
                if (!allocated) return allocated.error();
                modseq = *allocated;
            }
            auto change = db.prepare(
                "UPDATE messages SET system_flags = ?3, keywords = ?4, modseq = ?5 WHERE mailbox_id = ?1 AND uid = ?2");
            if (!change) return change.error();
            change->bind(1, mailbox_id)
                .bind(2, uid)
                .bind(3, system)
                .bind_text(4, joined)
                .bind(5, static_cast<std::int64_t>(*modseq));
            MAGPIE_TRY(change->run());
            MAGPIE_TRY(log_change(db, mailbox_id, *modseq, uid, ChangeKind::flags));
            delta.reflag((*stored)->system, system, (*stored)->size);
            outcome.changed.push_back(FlagChange{uid, *modseq, flag_list(system, joined)});
        }
        MAGPIE_TRY(apply_counters(db, mailbox_id, delta));
        if (modseq) changes[mailbox_id] = MailboxChange{mailbox->account_id, *modseq};
        return outcome;
    });
    if (result) notify(changes);
    return result;
}

Result<std::vector<std::uint32_t>> SqliteStore::expunge(std::int64_t mailbox_id,
                                                        const std::vector<std::uint32_t>* uids) {
    std::vector<std::uint32_t> only = uids != nullptr ? sorted_unique(*uids) : std::vector<std::uint32_t>{};
    Changes changes;
    auto result = write<std::vector<std::uint32_t>>([&](Connection& db) -> Result<std::vector<std::uint32_t>> {
        auto mailbox = select_mailbox(db, mailbox_id);
        if (!mailbox) return mailbox.error();
        std::vector<Doomed> doomed;
        {
            auto deleted = db.prepare(fmt::format(
                "SELECT uid, size, system_flags FROM messages WHERE mailbox_id = ?1 AND (system_flags & {}) <> 0 "
                "ORDER BY uid",
                static_cast<std::uint32_t>(flag_deleted)));
            if (!deleted) return deleted.error();
            deleted->bind(1, mailbox_id);
            for (;;) {
                auto row = deleted->step();
                if (!row) return row.error();
                if (!*row) break;
                auto uid = static_cast<std::uint32_t>(deleted->column_int64(0));
                if (uids != nullptr && !std::ranges::binary_search(only, uid)) continue;
                doomed.push_back(Doomed{uid, static_cast<std::uint64_t>(deleted->column_int64(1)),
                                        static_cast<std::uint32_t>(deleted->column_int64(2))});
            }
        }
        std::vector<std::uint32_t> expunged;
        if (doomed.empty()) return expunged;
        auto modseq = remove_messages(db, mailbox_id, doomed);
        if (!modseq) return modseq.error();
        changes[mailbox_id] = MailboxChange{mailbox->account_id, *modseq};
        for (const Doomed& message : doomed) expunged.push_back(message.uid);
        return expunged;
    });
    if (result) notify(changes);
    return result;
}

Result<CopyResult> SqliteStore::copy_in_transaction(Connection& db, std::int64_t from_mailbox_id,
                                                    const std::vector<std::uint32_t>& uids, std::int64_t to_mailbox_id,
                                                    bool expunge_source, Changes& changes) {
    auto source = select_mailbox(db, from_mailbox_id);
    if (!source) return source.error();
    auto target = select_mailbox(db, to_mailbox_id);
    if (!target) return target.error();
    if (source->account_id != target->account_id) {
        return make_error(Errc::permission_denied, "messages move only between mailboxes of one account");
    }
    CopyResult result;
    result.uidvalidity = target->uidvalidity;
    std::vector<Doomed> moved;
    std::uint64_t last_modseq = 0;
    for (std::uint32_t uid : sorted_unique(uids)) {
        MessageRow row;
        {
            auto message = db.prepare(
                "SELECT blob_id, size, internal_date, system_flags, keywords FROM messages "
                "WHERE mailbox_id = ?1 AND uid = ?2");
            if (!message) return message.error();
            auto found = message->bind(1, from_mailbox_id).bind(2, uid).step();
            if (!found) return found.error();
            if (!*found) continue;  // expunged meanwhile: RFC 9051 leaves it out of COPYUID
            row.blob_id = message->column_text(0);
            row.size = static_cast<std::uint64_t>(message->column_int64(1));
            row.internal_date = message->column_int64(2);
            row.system_flags = static_cast<std::uint32_t>(message->column_int64(3));
            row.keywords = message->column_text(4);
        }
        auto allocated = allocate_message(db, to_mailbox_id, row.size, row.system_flags);
        if (!allocated) return allocated.error();
        row.mailbox_id = to_mailbox_id;
        row.uid = allocated->uid;
        row.modseq = allocated->modseq;
        MAGPIE_TRY(insert_message(db, row));  // the same blob: a copy costs one row, not the bytes
        MAGPIE_TRY(log_change(db, to_mailbox_id, row.modseq, row.uid, ChangeKind::appended));
        result.uids.emplace_back(uid, row.uid);
        moved.push_back(Doomed{uid, row.size, row.system_flags});
        last_modseq = row.modseq;
    }
    if (result.uids.empty()) return result;
    changes[to_mailbox_id] = MailboxChange{target->account_id, last_modseq};
    if (expunge_source) {
        auto modseq = remove_messages(db, from_mailbox_id, moved);
        if (!modseq) return modseq.error();
        changes[from_mailbox_id] = MailboxChange{source->account_id, *modseq};
    }
    return result;
}

Result<CopyResult> SqliteStore::copy_messages(std::int64_t from_mailbox_id, const std::vector<std::uint32_t>& uids,
                                              std::int64_t to_mailbox_id) {
    Changes changes;
    auto result = write<CopyResult>([&](Connection& db) {
        return copy_in_transaction(db, from_mailbox_id, uids, to_mailbox_id, /*expunge_source=*/false, changes);
    });
    if (result) notify(changes);
    return result;
}

Result<CopyResult> SqliteStore::move_messages(std::int64_t from_mailbox_id, const std::vector<std::uint32_t>& uids,
                                              std::int64_t to_mailbox_id) {
    if (from_mailbox_id == to_mailbox_id) return make_error(Errc::invalid_argument, "move into the same mailbox");
    Changes changes;
    auto result = write<CopyResult>([&](Connection& db) {
        return copy_in_transaction(db, from_mailbox_id, uids, to_mailbox_id, /*expunge_source=*/true, changes);
    });
    if (result) notify(changes);
    return result;
}

Result<MailboxChanges> SqliteStore::changes_since(std::int64_t mailbox_id, std::uint64_t modseq) {
    return read<MailboxChanges>([&](Connection& db) -> Result<MailboxChanges> {
        auto mailbox = select_mailbox(db, mailbox_id);
        if (!mailbox) return mailbox.error();
        MailboxChanges result;
        result.highest_modseq = mailbox->highest_modseq;
        {
            auto changed = db.prepare(std::string(kMessageSelect) +
                                      "WHERE m.mailbox_id = ?1 AND m.modseq > ?2 ORDER BY m.uid");
            if (!changed) return changed.error();
            changed->bind(1, mailbox_id).bind(2, static_cast<std::int64_t>(modseq));
            for (;;) {
                auto row = changed->step();
                if (!row) return row.error();
                if (!*row) break;
                result.changed.push_back(message_from_row(*changed));
            }
        }
        auto expunged = db.prepare(fmt::format(
            "SELECT uid FROM change_log WHERE mailbox_id = ?1 AND kind = {} AND modseq > ?2 ORDER BY uid",
            static_cast<std::int64_t>(ChangeKind::expunged)));
        if (!expunged) return expunged.error();
        expunged->bind(1, mailbox_id).bind(2, static_cast<std::int64_t>(modseq));
        for (;;) {
            auto row = expunged->step();
            if (!row) return row.error();
            if (!*row) break;
            result.expunged.push_back(static_cast<std::uint32_t>(expunged->column_int64(0)));
        }
        return result;
    });
}

}  // namespace magpie::store::sqlite
