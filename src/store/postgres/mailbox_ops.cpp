// The IMAP/JMAP operations of the PostgreSQL backend: mailbox create/rename/delete/subscribe, flag changes,
// expunge, copy and move (sharing blobs), and change-log queries. Each write is one transaction that first
// locks the mailboxes it changes (FOR UPDATE, ascending id), so a STORE on one node and an EXPUNGE on
// another take turns instead of overwriting each other's reads.
#include <algorithm>
#include <iterator>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/strings.h"
#include "store/postgres/emails.h"
#include "store/postgres/postgres_store.h"
#include "store/postgres/rows.h"

namespace magpie::store::postgres {
namespace {

constexpr std::string_view kInbox = "INBOX";

std::string canonical_name(std::string_view name) {
    return iequals(name, kInbox) ? std::string(kInbox) : std::string(name);
}

std::vector<std::uint32_t> sorted_unique(std::vector<std::uint32_t> uids) {
    std::ranges::sort(uids);
    uids.erase(std::unique(uids.begin(), uids.end()), uids.end());
    return uids;
}

Result<std::int64_t> mailbox_id_by_name(Connection& db, std::int64_t account_id, std::string_view name) {
    auto rows = db.exec("SELECT id FROM mailboxes WHERE account_id = $1 AND name = $2", Params().add(account_id).add(name));
    if (!rows) return rows.error();
    if (rows->empty()) return make_error(Errc::not_found, fmt::format("no mailbox {}", name));
    return rows->int64(0, 0);
}

Result<void> require_account(Connection& db, std::int64_t account_id) {
    auto rows = db.exec("SELECT 1 FROM accounts WHERE id = $1", Params().add(account_id));
    if (!rows) return rows.error();
    if (rows->empty()) return make_error(Errc::not_found, fmt::format("no account {}", account_id));
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

Result<std::string> PostgresStore::check_mailbox_name(std::string_view name) const {
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

Result<Mailbox> PostgresStore::create_mailbox(std::int64_t account_id, std::string_view name) {
    auto checked = check_mailbox_name(name);
    if (!checked) return checked.error();
    return write<Mailbox>([&](Connection& db) -> Result<Mailbox> {
        MAGPIE_TRY(require_account(db, account_id));
        auto id = insert_mailbox(db, account_id, *checked, SpecialUse::none);
        if (!id) return id.error();
        return select_mailbox(db, *id);
    });
}

Result<void> PostgresStore::rename_mailbox(std::int64_t account_id, std::string_view from, std::string_view to) {
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
            // RFC 9051 6.3.6: INBOX's messages move to a new mailbox; INBOX stays, empty.
            auto target = insert_mailbox(db, account_id, *to_name, SpecialUse::none);
            if (!target) return target.error();
            auto all = db.exec("SELECT uid FROM messages WHERE mailbox_id = $1 ORDER BY uid", Params().add(*source));
            if (!all) return all.error();
            std::vector<std::uint32_t> uids;
            for (int i = 0; i < all->size(); ++i) uids.push_back(static_cast<std::uint32_t>(all->int64(i, 0)));
            auto moved = copy_in_transaction(db, *source, uids, *target, /*expunge_source=*/true, changes);
            if (!moved) return moved.error();
            return true;
        }
        auto exists = mailbox_id_by_name(db, account_id, *to_name);
        if (exists) return make_error(Errc::already_exists, fmt::format("mailbox {} exists", *to_name));
        if (exists.error().code != Errc::not_found) return exists.error();
        // The mailbox and its inferiors in one statement; a clash fails the UNIQUE constraint.
        auto done = db.exec(
            "UPDATE mailboxes SET name = $3 || substr(name, length($2) + 1) WHERE account_id = $1 AND "
            "(name = $2 OR substr(name, 1, length($2) + 1) = $2 || '/')",
            Params().add(account_id).add(*from_name).add(*to_name));
        if (!done && done.error().code == Errc::already_exists) {
            return make_error(Errc::already_exists, fmt::format("an inferior of {} exists already", *to_name));
        }
        if (!done) return done.error();
        // Subscriptions follow (as Cyrus does); a renamed name that is already subscribed merges into it.
        auto subscriptions = db.exec(
            "WITH moved AS (DELETE FROM subscriptions WHERE account_id = $1 AND "
            "(name = $2 OR substr(name, 1, length($2) + 1) = $2 || '/') RETURNING name) "
            "INSERT INTO subscriptions(account_id, name) SELECT $1::bigint, $3::text || substr(name, length($2) + 1) "
            "FROM moved ON CONFLICT DO NOTHING",
            Params().add(account_id).add(*from_name).add(*to_name));
        if (!subscriptions) return subscriptions.error();
        return true;
    });
    if (!renamed) return renamed.error();
    return {};
}

Result<void> PostgresStore::delete_mailbox(std::int64_t account_id, std::string_view name) {
    auto checked = check_mailbox_name(name);
    if (!checked) return checked.error();
    if (*checked == kInbox) return make_error(Errc::permission_denied, "INBOX cannot be deleted");
    return write<void>([&](Connection& db) -> Result<void> {
        auto id = mailbox_id_by_name(db, account_id, *checked);
        if (!id) return id.error();
        MAGPIE_TRY(lock_mailboxes(db, {*id}));
        auto members = db.exec("SELECT email_id FROM messages WHERE mailbox_id = $1 AND email_id IS NOT NULL",
                               Params().add(*id));
        if (!members) return members.error();
        std::vector<std::int64_t> emails;
        for (int i = 0; i < members->size(); ++i) emails.push_back(members->int64(i, 0));
        // ON DELETE CASCADE takes its messages and change log; Emails left in no mailbox go, and their blobs
        // may become garbage.
        auto done = db.exec("DELETE FROM mailboxes WHERE id = $1", Params().add(*id));
        if (!done) return done.error();
        EmailLog log;
        return log.settle(db, account_id, emails);
    });
}

Result<void> PostgresStore::set_subscribed(std::int64_t account_id, std::string_view name, bool subscribed) {
    auto key = check_mailbox_name(name);
    if (!key) return key.error();
    return write<void>([&](Connection& db) -> Result<void> {
        MAGPIE_TRY(require_account(db, account_id));
        if (!subscribed) {
            auto done = db.exec("DELETE FROM subscriptions WHERE account_id = $1 AND name = $2",
                                Params().add(account_id).add(*key));
            if (!done) return done.error();
            if (done->affected() == 0) return make_error(Errc::not_found, fmt::format("{} is not subscribed", *key));
            return {};
        }
        auto count = db.exec("SELECT count(*) FROM subscriptions WHERE account_id = $1", Params().add(account_id));
        if (!count) return count.error();
        if (static_cast<std::size_t>(count->int64(0, 0)) >= options_.max_subscriptions) {
            return make_error(Errc::limit_exceeded, fmt::format("more than {} subscriptions", options_.max_subscriptions));
        }
        return subscribe(db, account_id, *key);
    });
}

Result<std::vector<std::string>> PostgresStore::list_subscriptions(std::int64_t account_id) {
    return read<std::vector<std::string>>([&](Connection& db) -> Result<std::vector<std::string>> {
        MAGPIE_TRY(require_account(db, account_id));
        auto rows = db.exec("SELECT name FROM subscriptions WHERE account_id = $1 ORDER BY name COLLATE \"C\"",
                            Params().add(account_id));
        if (!rows) return rows.error();
        std::vector<std::string> names;
        for (int i = 0; i < rows->size(); ++i) names.push_back(rows->text(i, 0));
        return names;
    });
}

Result<std::uint32_t> PostgresStore::claim_recent(std::int64_t mailbox_id) {
    // The mark is read under the row lock, so two sessions on two nodes never claim the same messages;
    // nothing is written when nothing is new.
    return write<std::uint32_t>([&](Connection& db) -> Result<std::uint32_t> {
        auto mark = db.exec("SELECT first_recent_uid, uidnext FROM mailboxes WHERE id = $1 FOR UPDATE",
                            Params().add(mailbox_id));
        if (!mark) return mark.error();
        if (mark->empty()) return make_error(Errc::not_found, fmt::format("no mailbox {}", mailbox_id));
        auto first = static_cast<std::uint32_t>(mark->int64(0, 0));
        auto uidnext = static_cast<std::uint32_t>(mark->int64(0, 1));
        if (first >= uidnext) return first;
        auto claimed = db.exec("UPDATE mailboxes SET first_recent_uid = uidnext, recent_count = 0 WHERE id = $1",
                               Params().add(mailbox_id));
        if (!claimed) return claimed.error();
        return first;
    });
}

Result<FlagStoreResult> PostgresStore::store_flags_chunk(Connection& db, std::int64_t mailbox_id,
                                                         std::span<const std::uint32_t> uids,
                                                         const FlagSet& requested, const FlagUpdate& update,
                                                         Changes& changes) {
    MAGPIE_TRY(lock_mailboxes(db, {mailbox_id}));
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
    const UidRanges ranges = uid_ranges(uids);
    auto stored = db.exec(
        "SELECT m.id, m.uid, m.system_flags, m.keywords, m.modseq, m.size, m.email_id FROM messages m "
        "JOIN unnest($2::bigint[], $3::bigint[]) r(lo, hi) ON m.uid BETWEEN r.lo AND r.hi "
        "WHERE m.mailbox_id = $1 ORDER BY m.uid",
        Params().add(mailbox_id).add(ranges.first).add(ranges.last));
    if (!stored) return stored.error();
    for (int i = 0; i < stored->size(); ++i) {
        const auto uid = static_cast<std::uint32_t>(stored->int64(i, 1));
        const auto before = static_cast<std::uint32_t>(stored->int64(i, 2));
        const std::string before_keywords = stored->text(i, 3);
        // RFC 7162 3.1.3: the check and the change are one transaction under the mailbox lock.
        if (update.unchanged_since && static_cast<std::uint64_t>(stored->int64(i, 4)) > *update.unchanged_since) {
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
        delta.reflag(before, system, static_cast<std::uint64_t>(stored->int64(i, 5)));
        updates.push_back(Update{stored->int64(i, 0), uid, system, std::move(joined), stored->int64(i, 6)});
    }
    if (updates.empty()) return outcome;
    auto modseq = allocate_modseq(db, mailbox_id);
    if (!modseq) return modseq.error();
    std::vector<std::int64_t> ids, systems;
    std::vector<std::string> keyword_lists;
    std::vector<std::uint32_t> changed_uids;
    std::vector<Reflagged> reflagged;
    std::vector<std::int64_t> emails;
    for (Update& u : updates) {
        ids.push_back(u.row_id);
        systems.push_back(u.system);
        changed_uids.push_back(u.uid);
        outcome.changed.push_back(FlagChange{u.uid, *modseq, flag_list(u.system, u.keywords)});
        reflagged.push_back(Reflagged{u.email_id, u.system, u.keywords});
        emails.push_back(u.email_id);
        keyword_lists.push_back(std::move(u.keywords));
    }
    // One statement for the chunk's changes, as the embedded store does with json_each.
    auto changed = db.exec(
        "UPDATE messages SET system_flags = u.flags, keywords = u.keywords, modseq = $1 "
        "FROM unnest($2::bigint[], $3::integer[], $4::text[]) u(id, flags, keywords) WHERE messages.id = u.id",
        Params().add(static_cast<std::int64_t>(*modseq)).add(int_array(ids)).add(int_array(systems))
            .add(text_array(keyword_lists)));
    if (!changed) return changed.error();
    MAGPIE_TRY(log_changes(db, mailbox_id, *modseq, changed_uids, ChangeKind::flags));
    MAGPIE_TRY(apply_counters(db, mailbox_id, delta));
    changes[mailbox_id] = MailboxChange{mailbox->account_id, *modseq};
    // The flags are the Emails': their other mailboxes show the change too (their locks come after the
    // account's, which lock_mailboxes took first), and the account state moves.
    auto others = reflag_emails(db, mailbox_id, reflagged);
    if (!others) return others.error();
    for (const auto& [other, other_modseq] : *others) changes[other] = MailboxChange{mailbox->account_id, other_modseq};
    EmailLog log;
    MAGPIE_TRY(log.settle(db, mailbox->account_id, emails));
    return outcome;
}

Result<FlagStoreResult> PostgresStore::store_flags(std::int64_t mailbox_id, const std::vector<std::uint32_t>& uids,
                                                   const FlagUpdate& update) {
    auto requested = parse_flags(update.flags, options_.flag_limits);
    if (!requested) return requested.error();
    const std::vector<std::uint32_t> targets = sorted_unique(uids);
    const std::size_t chunk = std::max<std::size_t>(options_.max_messages_per_transaction, 1);
    FlagStoreResult outcome;
    std::size_t begin = 0;
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

Result<std::vector<std::uint32_t>> PostgresStore::expunge(std::int64_t mailbox_id,
                                                          const std::vector<std::uint32_t>* uids) {
    std::vector<std::uint32_t> only = uids != nullptr ? sorted_unique(*uids) : std::vector<std::uint32_t>{};
    const std::size_t chunk = std::max<std::size_t>(options_.max_messages_per_transaction, 1);
    std::vector<std::uint32_t> expunged;
    std::uint32_t after = 0;
    for (bool more = true; more;) {
        std::uint32_t last = after;
        auto done = write<std::vector<std::uint32_t>>(
            [&](Connection& db, Changes& changes) -> Result<std::vector<std::uint32_t>> {
                MAGPIE_TRY(lock_mailboxes(db, {mailbox_id}));
                auto mailbox = select_mailbox(db, mailbox_id);
                if (!mailbox) return mailbox.error();
                auto deleted = db.exec(
                    "SELECT uid, size, system_flags, email_id FROM messages WHERE mailbox_id = $1 AND (system_flags & 8) <> 0 "
                    "AND uid > $2 ORDER BY uid LIMIT $3",
                    Params().add(mailbox_id).add(std::int64_t{after}).add(static_cast<std::int64_t>(chunk)));
                if (!deleted) return deleted.error();
                std::vector<Doomed> doomed;
                last = after;
                for (int i = 0; i < deleted->size(); ++i) {
                    last = static_cast<std::uint32_t>(deleted->int64(i, 0));
                    if (uids != nullptr && !std::ranges::binary_search(only, last)) continue;
                    doomed.push_back(Doomed{last, static_cast<std::uint64_t>(deleted->int64(i, 1)),
                                            static_cast<std::uint32_t>(deleted->int64(i, 2)), deleted->int64(i, 3)});
                }
                more = static_cast<std::size_t>(deleted->size()) == chunk;
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
        after = last;
        expunged.insert(expunged.end(), done->begin(), done->end());
    }
    return expunged;
}

Result<CopyResult> PostgresStore::copy_in_transaction(Connection& db, std::int64_t from_mailbox_id,
                                                      const std::vector<std::uint32_t>& uids,
                                                      std::int64_t to_mailbox_id, bool expunge_source,
                                                      Changes& changes) {
    MAGPIE_TRY(lock_mailboxes(db, {from_mailbox_id, to_mailbox_id}));
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
    const UidRanges ranges = uid_ranges(sorted);
    auto sources = db.exec(
        "SELECT m.uid, m.blob_id, m.size, m.internal_date, m.system_flags, m.keywords, m.email_id FROM messages m "
        "JOIN unnest($2::bigint[], $3::bigint[]) r(lo, hi) ON m.uid BETWEEN r.lo AND r.hi "
        "WHERE m.mailbox_id = $1 ORDER BY m.uid",
        Params().add(from_mailbox_id).add(ranges.first).add(ranges.last));
    if (!sources) return sources.error();
    std::vector<Doomed> moved;
    std::vector<std::int64_t> gained;  // Emails that gained a membership in the target
    std::uint64_t last_modseq = 0;
    EmailLog log;
    // RFC 6851 3.3 MOVE into the mailbox itself: each message takes a new UID, and stays the same Email
    // (its id, JMAP's and IMAP OBJECTID's, survives), so its membership row is renumbered, not copied.
    const bool renumber = expunge_source && from_mailbox_id == to_mailbox_id;
    for (int i = 0; i < sources->size(); ++i) {
        MessageRow row;
        const auto source_uid = static_cast<std::uint32_t>(sources->int64(i, 0));
        row.blob_id = sources->text(i, 1);
        row.size = static_cast<std::uint64_t>(sources->int64(i, 2));
        row.internal_date = sources->int64(i, 3);
        row.system_flags = static_cast<std::uint32_t>(sources->int64(i, 4));
        row.keywords = sources->text(i, 5);
        row.email_id = sources->int64(i, 6);
        const std::int64_t source_email = row.email_id;
        if (renumber) {
            auto allocated = allocate_message(db, to_mailbox_id, row.size, row.system_flags);
            if (!allocated) return allocated.error();
            auto updated = db.exec("UPDATE messages SET uid = $3, modseq = $4 WHERE mailbox_id = $1 AND uid = $2",
                                   Params()
                                       .add(to_mailbox_id)
                                       .add(std::int64_t{source_uid})
                                       .add(std::int64_t{allocated->uid})
                                       .add(static_cast<std::int64_t>(allocated->modseq)));
            if (!updated) return updated.error();
            const std::uint32_t new_uid = allocated->uid;
            MAGPIE_TRY(log_changes(db, to_mailbox_id, allocated->modseq, std::span<const std::uint32_t>(&new_uid, 1),
                                   ChangeKind::appended));
            result.uids.emplace_back(source_uid, new_uid);
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
        const std::uint32_t copy_uid = row.uid;
        MAGPIE_TRY(log_changes(db, to_mailbox_id, row.modseq, std::span<const std::uint32_t>(&copy_uid, 1),
                               ChangeKind::appended));
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

Result<CopyResult> PostgresStore::copy_or_move(std::int64_t from_mailbox_id, const std::vector<std::uint32_t>& uids,
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

Result<void> PostgresStore::undo_copy(std::int64_t mailbox_id, const std::vector<std::uint32_t>& uids) {
    return write<void>([&](Connection& db, Changes& changes) -> Result<void> {
        MAGPIE_TRY(lock_mailboxes(db, {mailbox_id}));
        auto mailbox = select_mailbox(db, mailbox_id);
        if (!mailbox) return mailbox.error();
        auto rows = db.exec(
            "SELECT uid, size, system_flags, email_id FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[])",
                            Params().add(mailbox_id).add(uint_array(uids)));
        if (!rows) return rows.error();
        std::vector<Doomed> doomed;
        for (int i = 0; i < rows->size(); ++i) {
            doomed.push_back(Doomed{static_cast<std::uint32_t>(rows->int64(i, 0)),
                                    static_cast<std::uint64_t>(rows->int64(i, 1)),
                                    static_cast<std::uint32_t>(rows->int64(i, 2)), rows->int64(i, 3)});
        }
        if (doomed.empty()) return {};
        EmailLog log;
        auto modseq = remove_memberships(db, mailbox_id, mailbox->account_id, doomed, log);
        if (!modseq) return modseq.error();
        changes[mailbox_id] = MailboxChange{mailbox->account_id, *modseq};
        return {};
    });
}

Result<CopyResult> PostgresStore::copy_messages(std::int64_t from_mailbox_id, const std::vector<std::uint32_t>& uids,
                                                std::int64_t to_mailbox_id) {
    return copy_or_move(from_mailbox_id, uids, to_mailbox_id, /*move=*/false);
}

Result<CopyResult> PostgresStore::move_messages(std::int64_t from_mailbox_id, const std::vector<std::uint32_t>& uids,
                                                std::int64_t to_mailbox_id) {
    return copy_or_move(from_mailbox_id, uids, to_mailbox_id, /*move=*/true);
}

Result<MailboxChanges> PostgresStore::changes_since(std::int64_t mailbox_id, std::uint64_t modseq) {
    return read<MailboxChanges>([&](Connection& db) -> Result<MailboxChanges> {
        auto mailbox = select_mailbox(db, mailbox_id);
        if (!mailbox) return mailbox.error();
        MailboxChanges result;
        result.highest_modseq = mailbox->highest_modseq;
        auto changed = db.exec(std::string(kMessageSelect) + "WHERE m.mailbox_id = $1 AND m.modseq > $2 ORDER BY m.uid",
                               Params().add(mailbox_id).add(static_cast<std::int64_t>(modseq)));
        if (!changed) return changed.error();
        for (int i = 0; i < changed->size(); ++i) result.changed.push_back(message_from_row(*changed, i));
        auto expunged = db.exec(
            "SELECT uid FROM change_log WHERE mailbox_id = $1 AND kind = 3 AND modseq > $2 ORDER BY uid",
            Params().add(mailbox_id).add(static_cast<std::int64_t>(modseq)));
        if (!expunged) return expunged.error();
        for (int i = 0; i < expunged->size(); ++i) result.expunged.push_back(static_cast<std::uint32_t>(expunged->int64(i, 0)));
        return result;
    });
}

}  // namespace magpie::store::postgres
