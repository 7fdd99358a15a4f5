// The IMAP/JMAP operations of the embedded backend: mailbox create/rename/delete/subscribe, flag changes,
// expunge, copy and move (sharing blobs), and change-log queries. Each is one write transaction on the
// writer connection; the change listener hears of it only after the commit.
#include <algorithm>
#include <iterator>
#include <map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/strings.h"
#include "store/sqlite/emails.h"
#include "store/sqlite/queries.h"
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

bool contains_keyword(const std::vector<std::string>& keywords, std::string_view keyword) {
    return std::ranges::any_of(keywords, [&](const std::string& k) { return iequals(k, keyword); });
}

// The old UIDs of memberships renumbered by a MOVE into their own mailbox: logged as expunged under one new
// MODSEQ and taken out of the kept counters (allocate_message counted the new ones). Returns that MODSEQ.
Result<std::uint64_t> forget_renumbered(Connection& db, std::int64_t mailbox_id, const std::vector<Doomed>& old) {
    auto recent_from = first_recent_uid(db, mailbox_id);
    if (!recent_from) return recent_from.error();
    auto modseq = allocate_modseq(db, mailbox_id);
    if (!modseq) return modseq.error();
    CounterDelta delta;
    std::vector<std::uint32_t> uids;
    uids.reserve(old.size());
    for (const Doomed& message : old) {
        uids.push_back(message.uid);
        delta.count(-1, message.system_flags, message.size, message.uid >= *recent_from);
    }
    MAGPIE_TRY(log_changes(db, mailbox_id, *modseq, uids, ChangeKind::expunged));
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
    auto renamed = write<bool>([&](Connection& db, Changes& changes) -> Result<bool> {
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
    return {};
}

Result<void> SqliteStore::delete_mailbox(std::int64_t account_id, std::string_view name) {
    auto checked = check_mailbox_name(name);
    if (!checked) return checked.error();
    if (*checked == kInbox) return make_error(Errc::permission_denied, "INBOX cannot be deleted");
    return write<void>([&](Connection& db) -> Result<void> {
        auto id = mailbox_id_by_name(db, account_id, *checked);
        if (!id) return id.error();
        std::vector<std::int64_t> emails;
        {
            auto members = db.prepare("SELECT email_id FROM messages WHERE mailbox_id = ?1");
            if (!members) return members.error();
            members->bind(1, *id);
            for (;;) {
                auto row = members->step();
                if (!row) return row.error();
                if (!*row) break;
                emails.push_back(members->column_int64(0));
            }
        }
        // ON DELETE CASCADE takes its messages and change log; Emails left in no mailbox go, and their blobs
        // may become garbage.
        auto statement = db.prepare("DELETE FROM mailboxes WHERE id = ?1");
        if (!statement) return statement.error();
        MAGPIE_TRY(statement->bind(1, *id).run());
        EmailLog log;
        return log.settle(db, account_id, emails);
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
    struct Mark {
        std::uint32_t first = 0;  // first_recent_uid
        std::uint32_t uidnext = 0;
    };
    auto read_mark = [mailbox_id](Connection& db) -> Result<Mark> {
        auto mark = db.prepare("SELECT first_recent_uid, uidnext FROM mailboxes WHERE id = ?1");
        if (!mark) return mark.error();
        auto row = mark->bind(1, mailbox_id).step();
        if (!row) return row.error();
        if (!*row) return make_error(Errc::not_found, fmt::format("no mailbox {}", mailbox_id));
        return Mark{static_cast<std::uint32_t>(mark->column_int64(0)), static_cast<std::uint32_t>(mark->column_int64(1))};
    };
    // Nothing new since the last claim (a mailbox re-opened, as pollers and phones do): answered from a
    // reader, without a place in the committer's queue and so without waiting for its batch's fsync.
    auto seen = read<Mark>(read_mark);
    if (!seen) return seen.error();
    if (seen->first >= seen->uidnext) return seen->first;
    return write<std::uint32_t>([&](Connection& db) -> Result<std::uint32_t> {
        auto mark = read_mark(db);
        if (!mark) return mark.error();
        const std::uint32_t first = mark->first;
        if (first >= mark->uidnext) return first;  // claimed meanwhile by another session: no write, no fsync
        auto claim = db.prepare("UPDATE mailboxes SET first_recent_uid = uidnext, recent_count = 0 WHERE id = ?1");
        if (!claim) return claim.error();
        MAGPIE_TRY(claim->bind(1, mailbox_id).run());
        return first;
    });
}

Result<FlagStoreResult> SqliteStore::store_flags_chunk(Connection& db, std::int64_t mailbox_id,
                                                       std::span<const std::uint32_t> uids, const FlagSet& requested,
                                                       const FlagUpdate& update, Changes& changes) {
    auto mailbox = select_mailbox(db, mailbox_id);
    if (!mailbox) return mailbox.error();
    struct Update {
        std::int64_t row_id = 0;
        std::uint32_t uid = 0;
        std::uint32_t system = 0;
        std::string keywords;
        std::int64_t email_id = 0;
    };
    FlagStoreResult outcome;
    std::vector<Update> updates;
    CounterDelta delta;
    {
        // Absent UIDs (expunged meanwhile) simply yield no row: nothing to report for them.
        auto stored = db.prepare(queries::kFlagsOfUids);
        if (!stored) return stored.error();
        stored->bind(1, mailbox_id).bind_text(2, uid_ranges_json(uids));
        for (;;) {
            auto row = stored->step();
            if (!row) return row.error();
            if (!*row) break;
            const auto uid = static_cast<std::uint32_t>(stored->column_int64(1));
            if (!std::ranges::binary_search(uids, uid)) continue;
            const auto before = static_cast<std::uint32_t>(stored->column_int64(2));
            const std::string before_keywords = stored->column_text(3);
            // RFC 7162 3.1.3: refuse messages changed after the client's UNCHANGEDSINCE. The check and the
            // change are one transaction, so they are atomic per message as the RFC asks.
            if (update.unchanged_since && static_cast<std::uint64_t>(stored->column_int64(4)) > *update.unchanged_since) {
                outcome.modified.push_back(uid);
                continue;
            }
            std::uint32_t system = before;
            std::vector<std::string> keywords;
            for (std::string_view k : split(before_keywords, ' ')) {
                if (!k.empty()) keywords.emplace_back(k);
            }
            switch (update.operation) {
                case FlagOperation::add:
                    system |= requested.system;
                    for (const auto& k : requested.keywords) {
                        if (!contains_keyword(keywords, k)) keywords.push_back(k);
                    }
                    if (keywords.size() > options_.flag_limits.max_keywords) {
                        return make_error(Errc::limit_exceeded, fmt::format("message {} would have more than {} keywords",
                                                                            uid, options_.flag_limits.max_keywords));
                    }
                    break;
                case FlagOperation::remove:
                    system &= ~requested.system;
                    std::erase_if(keywords, [&](const std::string& k) { return contains_keyword(requested.keywords, k); });
                    break;
                case FlagOperation::replace:
                    system = requested.system;
                    keywords = requested.keywords;
                    break;
            }
            std::string joined = join_keywords(keywords);
            if (system == before && joined == before_keywords) {
                outcome.unchanged.push_back(uid);
                continue;
            }
            delta.reflag(before, system, static_cast<std::uint64_t>(stored->column_int64(5)));
            updates.push_back(Update{stored->column_int64(0), uid, system, std::move(joined), stored->column_int64(6)});
        }
    }
    if (updates.empty()) return outcome;
    // One new MODSEQ for every message this chunk changes (RFC 7162 allows a command several).
    auto modseq = allocate_modseq(db, mailbox_id);
    if (!modseq) return modseq.error();
    std::string rows = "[";
    std::vector<std::uint32_t> changed_uids;
    changed_uids.reserve(updates.size());
    for (Update& u : updates) {
        if (rows.size() > 1) rows += ',';
        rows += fmt::format("[{},{},{}]", u.row_id, u.system, json_string(u.keywords));
        changed_uids.push_back(u.uid);
        outcome.changed.push_back(FlagChange{u.uid, *modseq, flag_list(u.system, u.keywords)});
    }
    rows += ']';
    auto change = db.prepare(queries::kSetFlags);
    if (!change) return change.error();
    MAGPIE_TRY(change->bind(1, static_cast<std::int64_t>(*modseq)).bind_text(2, rows).run());
    MAGPIE_TRY(log_changes(db, mailbox_id, *modseq, changed_uids, ChangeKind::flags));
    MAGPIE_TRY(apply_counters(db, mailbox_id, delta));
    changes[mailbox_id] = MailboxChange{mailbox->account_id, *modseq};
    // The flags are the Emails': their other mailboxes show the change too, and the account state moves.
    std::vector<Reflagged> reflagged;
    std::vector<std::int64_t> emails;
    reflagged.reserve(updates.size());
    for (const Update& u : updates) {
        reflagged.push_back(Reflagged{u.email_id, u.system, u.keywords});
        emails.push_back(u.email_id);
    }
    auto others = reflag_emails(db, mailbox_id, reflagged);
    if (!others) return others.error();
    for (const auto& [other, other_modseq] : *others) changes[other] = MailboxChange{mailbox->account_id, other_modseq};
    EmailLog log;
    MAGPIE_TRY(log.settle(db, mailbox->account_id, emails));
    return outcome;
}

Result<FlagStoreResult> SqliteStore::store_flags(std::int64_t mailbox_id, const std::vector<std::uint32_t>& uids,
                                                 const FlagUpdate& update) {
    auto requested = parse_flags(update.flags, options_.flag_limits);
    if (!requested) return requested.error();
    const std::vector<std::uint32_t> targets = sorted_unique(uids);
    const std::size_t chunk = std::max<std::size_t>(options_.max_messages_per_transaction, 1);
    FlagStoreResult outcome;
    std::size_t begin = 0;
    // One transaction per chunk, each queued behind the deliveries waiting at that moment. A chunk that
    // fails ends the STORE with its error; the chunks before it stay committed (STORE is not atomic across
    // messages in RFC 9051, and the change log and listener have recorded them).
    do {
        std::span<const std::uint32_t> part(targets.data() + begin, std::min(chunk, targets.size() - begin));
        auto done = write<FlagStoreResult>([&](Connection& db, Changes& changes) {
            return store_flags_chunk(db, mailbox_id, part, *requested, update, changes);
        });
        if (!done) return done.error();
        std::ranges::move(done->changed, std::back_inserter(outcome.changed));
        std::ranges::move(done->unchanged, std::back_inserter(outcome.unchanged));
        std::ranges::move(done->modified, std::back_inserter(outcome.modified));
        begin += part.size();
    } while (begin < targets.size());
    return outcome;
}

Result<std::vector<std::uint32_t>> SqliteStore::expunge(std::int64_t mailbox_id,
                                                        const std::vector<std::uint32_t>* uids) {
    std::vector<std::uint32_t> only = uids != nullptr ? sorted_unique(*uids) : std::vector<std::uint32_t>{};
    const std::size_t chunk = std::max<std::size_t>(options_.max_messages_per_transaction, 1);
    std::vector<std::uint32_t> expunged;
    std::uint32_t after = 0;  // the last \Deleted UID looked at
    // Chunk by chunk through the partial \Deleted index, each chunk its own transaction and MODSEQ.
    for (bool more = true; more;) {
        auto done = write<std::vector<std::uint32_t>>(
            [&](Connection& db, Changes& changes) -> Result<std::vector<std::uint32_t>> {
                auto mailbox = select_mailbox(db, mailbox_id);
                if (!mailbox) return mailbox.error();
                std::vector<Doomed> doomed;
                std::size_t seen = 0;
                std::uint32_t last = after;
                {
                    auto deleted = db.prepare(queries::kDeletedAfter);
                    if (!deleted) return deleted.error();
                    deleted->bind(1, mailbox_id).bind(2, after).bind(3, static_cast<std::int64_t>(chunk));
                    for (;;) {
                        auto row = deleted->step();
                        if (!row) return row.error();
                        if (!*row) break;
                        ++seen;
                        last = static_cast<std::uint32_t>(deleted->column_int64(0));
                        if (uids != nullptr && !std::ranges::binary_search(only, last)) continue;
                        doomed.push_back(Doomed{last, static_cast<std::uint64_t>(deleted->column_int64(1)),
                                                static_cast<std::uint32_t>(deleted->column_int64(2)),
                                                deleted->column_int64(3)});
                    }
                }
                more = seen == chunk;
                after = last;
                std::vector<std::uint32_t> removed;
                if (doomed.empty()) return removed;
                EmailLog log;
                auto modseq = remove_memberships(db, mailbox_id, mailbox->account_id, doomed, log);
                if (!modseq) return modseq.error();
                changes[mailbox_id] = MailboxChange{mailbox->account_id, *modseq};
                for (const Doomed& message : doomed) removed.push_back(message.uid);
                return removed;
            });
        if (!done) return done.error();
        expunged.insert(expunged.end(), done->begin(), done->end());
    }
    return expunged;
}

Result<CopyResult> SqliteStore::copy_in_transaction(Connection& db, std::int64_t from_mailbox_id,
                                                    const std::vector<std::uint32_t>& uids, std::int64_t to_mailbox_id,
                                                    bool expunge_source, Changes& changes) {
    auto source = select_mailbox(db, from_mailbox_id);
    if (!source) return source.error();
    auto target = select_mailbox(db, to_mailbox_id);
    if (!target) return target.error();
    if (source->account_id != target->account_id) {
        // Every message operation is scoped to one account: another account's mailbox does not exist here.
        return make_error(Errc::not_found, fmt::format("no mailbox {} in this account", to_mailbox_id));
    }
    CopyResult result;
    result.uidvalidity = target->uidvalidity;
    std::vector<std::uint32_t> sorted = sorted_unique(uids);
    std::vector<MessageRow> rows;  // read first: the inserts below may land in the same table
    {
        auto message = db.prepare(queries::kCopySources);
        if (!message) return message.error();
        message->bind(1, from_mailbox_id).bind_text(2, uid_ranges_json(sorted));
        for (;;) {
            auto found = message->step();
            if (!found) return found.error();
            if (!*found) break;  // absent UIDs were expunged meanwhile: RFC 9051 leaves them out of COPYUID
            MessageRow row;
            row.uid = static_cast<std::uint32_t>(message->column_int64(0));
            if (!std::ranges::binary_search(sorted, row.uid)) continue;
            row.blob_id = message->column_text(1);
            row.size = static_cast<std::uint64_t>(message->column_int64(2));
            row.internal_date = message->column_int64(3);
            row.system_flags = static_cast<std::uint32_t>(message->column_int64(4));
            row.keywords = message->column_text(5);
            row.email_id = message->column_int64(6);
            rows.push_back(std::move(row));
        }
    }
    std::vector<Doomed> moved;
    std::vector<std::int64_t> gained;  // Emails that gained a membership in the target
    std::uint64_t last_modseq = 0;
    EmailLog log;
    // RFC 6851 3.3 MOVE into the mailbox itself: each message takes a new UID, and stays the same Email
    // (its id, JMAP's and IMAP OBJECTID's, survives), so its membership row is renumbered, not copied.
    const bool renumber = expunge_source && from_mailbox_id == to_mailbox_id;
    for (MessageRow& row : rows) {
        const std::uint32_t source_uid = row.uid;
        const std::int64_t source_email = row.email_id;
        if (renumber) {
            auto allocated = allocate_message(db, to_mailbox_id, row.size, row.system_flags);
            if (!allocated) return allocated.error();
            auto update = db.prepare("UPDATE messages SET uid = ?3, modseq = ?4 WHERE mailbox_id = ?1 AND uid = ?2");
            if (!update) return update.error();
            MAGPIE_TRY(update->bind(1, to_mailbox_id)
                           .bind(2, source_uid)
                           .bind(3, allocated->uid)
                           .bind(4, static_cast<std::int64_t>(allocated->modseq))
                           .run());
            MAGPIE_TRY(log_change(db, to_mailbox_id, allocated->modseq, allocated->uid, ChangeKind::appended));
            result.uids.emplace_back(source_uid, allocated->uid);
            moved.push_back(Doomed{source_uid, row.size, row.system_flags, source_email});
            last_modseq = allocated->modseq;
            continue;
        }
        // COPY within an account adds a membership to the same Email; a target that holds the Email already
        // gets a new Email (same blob and thread), since an Email is in a mailbox at most once.
        auto present = has_membership(db, row.email_id, to_mailbox_id);
        if (!present) return present.error();
        if (*present) {
            auto clone = clone_email(db, row.email_id);
            if (!clone) return clone.error();
            MAGPIE_TRY(log.record(db, target->account_id, clone->id, clone->thread_id, EmailChange::created));
            row.email_id = clone->id;
        } else {
            gained.push_back(row.email_id);
        }
        auto allocated = allocate_message(db, to_mailbox_id, row.size, row.system_flags);
        if (!allocated) return allocated.error();
        row.mailbox_id = to_mailbox_id;
        row.uid = allocated->uid;
        row.modseq = allocated->modseq;
        MAGPIE_TRY(insert_message(db, row));  // the same blob: a copy costs one row, not the bytes
        MAGPIE_TRY(log_change(db, to_mailbox_id, row.modseq, row.uid, ChangeKind::appended));
        result.uids.emplace_back(source_uid, row.uid);
        moved.push_back(Doomed{source_uid, row.size, row.system_flags, source_email});
        last_modseq = row.modseq;
    }
    if (result.uids.empty()) return result;
    changes[to_mailbox_id] = MailboxChange{target->account_id, last_modseq};
    if (renumber) {
        // The old UIDs are gone (expunged in the change log, uncounted); no Email lost a membership.
        auto modseq = forget_renumbered(db, to_mailbox_id, moved);
        if (!modseq) return modseq.error();
        changes[to_mailbox_id] = MailboxChange{target->account_id, *modseq};
        return result;
    }
    if (expunge_source) {
        auto modseq = remove_memberships(db, from_mailbox_id, source->account_id, moved, log);
        if (!modseq) return modseq.error();
        changes[from_mailbox_id] = MailboxChange{source->account_id, *modseq};
    }
    MAGPIE_TRY(log.settle(db, target->account_id, gained));
    return result;
}

Result<CopyResult> SqliteStore::copy_or_move(std::int64_t from_mailbox_id, const std::vector<std::uint32_t>& uids,
                                             std::int64_t to_mailbox_id, bool move) {
    const std::vector<std::uint32_t> sources = sorted_unique(uids);
    const std::size_t chunk = std::max<std::size_t>(options_.max_messages_per_transaction, 1);
    CopyResult result;
    std::size_t begin = 0;
    do {
        std::vector<std::uint32_t> part(sources.begin() + static_cast<std::ptrdiff_t>(begin),
                                        sources.begin() + static_cast<std::ptrdiff_t>(std::min(begin + chunk, sources.size())));
        auto done = write<CopyResult>([&](Connection& db, Changes& changes) {
            return copy_in_transaction(db, from_mailbox_id, part, to_mailbox_id, move, changes);
        });
        if (!done) {
            // RFC 9051 6.4.7: a failed COPY leaves the destination as it was (UIDNEXT aside). A MOVE's chunks
            // each moved their messages atomically (RFC 6851 3.3 allows a partial MOVE): they stay moved.
            if (!move && !result.uids.empty()) {
                std::vector<std::uint32_t> copies;
                for (const auto& [source, copy] : result.uids) copies.push_back(copy);
                auto undone = undo_copy(to_mailbox_id, copies);
                if (!undone) spdlog::error("store: a failed COPY left copies behind: {}", undone.error().message);
            }
            return done.error();
        }
        result.uidvalidity = done->uidvalidity;
        std::ranges::move(done->uids, std::back_inserter(result.uids));
        begin += part.size();
    } while (begin < sources.size());
    return result;
}

Result<void> SqliteStore::undo_copy(std::int64_t mailbox_id, const std::vector<std::uint32_t>& uids) {
    return write<void>([&](Connection& db, Changes& changes) -> Result<void> {
        auto mailbox = select_mailbox(db, mailbox_id);
        if (!mailbox) return mailbox.error();
        std::vector<Doomed> doomed;
        {
            auto rows = db.prepare(queries::kFlagsOfUids);
            if (!rows) return rows.error();
            rows->bind(1, mailbox_id).bind_text(2, uid_ranges_json(uids));
            for (;;) {
                auto row = rows->step();
                if (!row) return row.error();
                if (!*row) break;
                doomed.push_back(Doomed{static_cast<std::uint32_t>(rows->column_int64(1)),
                                        static_cast<std::uint64_t>(rows->column_int64(5)),
                                        static_cast<std::uint32_t>(rows->column_int64(2)), rows->column_int64(6)});
            }
        }
        if (doomed.empty()) return {};
        EmailLog log;
        auto modseq = remove_memberships(db, mailbox_id, mailbox->account_id, doomed, log);
        if (!modseq) return modseq.error();
        changes[mailbox_id] = MailboxChange{mailbox->account_id, *modseq};
        return {};
    });
}

Result<CopyResult> SqliteStore::copy_messages(std::int64_t from_mailbox_id, const std::vector<std::uint32_t>& uids,
                                              std::int64_t to_mailbox_id) {
    return copy_or_move(from_mailbox_id, uids, to_mailbox_id, /*move=*/false);
}

Result<CopyResult> SqliteStore::move_messages(std::int64_t from_mailbox_id, const std::vector<std::uint32_t>& uids,
                                              std::int64_t to_mailbox_id) {
    return copy_or_move(from_mailbox_id, uids, to_mailbox_id, /*move=*/true);
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
        auto expunged = db.prepare(queries::kExpungedSince);
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
