#include "store/sqlite/emails.h"

#include <algorithm>
#include <iterator>

#include <fmt/format.h>

#include "base/strings.h"
#include "mail/date.h"
#include "mail/subject.h"
#include "store/sqlite/queries.h"
#include "store/sqlite/rows.h"

namespace magpie::store::sqlite {
namespace {

// The msg-ids of a field as the summary keeps them ("<a@b> <c@d>"), without their angle brackets.
std::vector<std::string> msg_ids(std::string_view field) {
    std::vector<std::string> ids;
    for (std::string_view token : split(field, ' ')) {
        token = trim(token);
        if (token.size() >= 2 && token.front() == '<' && token.back() == '>') token = token.substr(1, token.size() - 2);
        if (!token.empty()) ids.emplace_back(token);
    }
    return ids;
}

void add_parent(std::vector<std::string>& parents, std::string id, std::size_t max) {
    if (parents.size() >= max) return;
    if (std::ranges::find(parents, id) != parents.end()) return;
    parents.push_back(std::move(id));
}

}  // namespace

EmailKeys email_keys(const MessageSummary& summary, const ThreadLimits& limits) {
    EmailKeys keys;
    auto own = msg_ids(summary.message_id);
    if (!own.empty()) keys.message_id = std::move(own.front());
    // RFC 5322 3.6.4: In-Reply-To names the parent(s); References ends with the parent, so its last ids are
    // the nearest relatives.
    for (std::string& id : msg_ids(summary.in_reply_to)) add_parent(keys.parents, std::move(id), limits.max_references);
    auto references = msg_ids(summary.references);
    for (auto it = references.rbegin(); it != references.rend(); ++it) {
        add_parent(keys.parents, std::move(*it), limits.max_references);
    }
    keys.base_subject = to_lower(mail::base_subject(summary.subject));
    if (auto when = mail::parse_date(summary.date)) keys.sent_at = when->unix_seconds;
    return keys;
}

Result<std::int64_t> find_thread(Connection& db, std::int64_t account_id, const EmailKeys& keys,
                                 std::int64_t received_at, const ThreadLimits& limits) {
    std::vector<std::string> ids = keys.parents;
    if (!keys.message_id.empty()) ids.push_back(keys.message_id);
    if (!ids.empty()) {
        std::string json = "[";
        for (const std::string& id : ids) {
            if (json.size() > 1) json += ',';
            json += json_string(id);
        }
        json += ']';
        // One statement: the ids in preference order (json_each's key), each an index probe.
        auto parent = db.prepare(kThreadByMessageId);
        if (!parent) return parent.error();
        auto row = parent->bind(1, account_id).bind_text(2, json).step();
        if (!row) return row.error();
        if (*row) return parent->column_int64(0);
    }
    // A window of 0 turns the subject fallback off ([store] thread_subject_window = 0).
    if (keys.base_subject.empty() || limits.subject_window_seconds <= 0) return std::int64_t{0};
    auto same_subject = db.prepare(kThreadBySubject);
    if (!same_subject) return same_subject.error();
    auto row = same_subject->bind(1, account_id)
                   .bind_text(2, keys.base_subject)
                   .bind(3, received_at - limits.subject_window_seconds)
                   .bind(4, received_at + limits.subject_window_seconds)
                   .step();
    if (!row) return row.error();
    if (*row) return same_subject->column_int64(0);
    return std::int64_t{0};
}

Result<std::int64_t> reserve_email_ids(Connection& db, std::int64_t count) {
    auto last = db.prepare(
        "SELECT max(coalesce((SELECT value FROM meta WHERE key = 'last_email_id'), "
        "(SELECT coalesce(max(email_id), 0) FROM email_log)), (SELECT coalesce(max(id), 0) FROM emails))");
    if (!last) return last.error();
    auto row = last->step();
    if (!row) return row.error();
    std::int64_t first = last->column_int64(0) + 1;
    auto keep = db.prepare(
        "INSERT INTO meta(key, value) VALUES('last_email_id', ?1) ON CONFLICT(key) DO UPDATE SET value = "
        "excluded.value");
    if (!keep) return keep.error();
    MAGPIE_TRY(keep->bind(1, first + count - 1).run());
    return first;
}

Result<InsertedEmail> insert_email(Connection& db, const EmailRow& row, const EmailKeys& keys) {
    auto id = reserve_email_ids(db, 1);
    if (!id) return id.error();
    auto insert = db.prepare(
        "INSERT INTO emails(account_id, blob_id, thread_id, internal_date, sent_at, size, system_flags, keywords, "
        "message_id, base_subject, id) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
    if (!insert) return insert.error();
    // A new thread is named after its first Email, so thread ids are never reused either.
    const std::int64_t thread_id = row.thread_id != 0 ? row.thread_id : *id;
    MAGPIE_TRY(insert->bind(11, *id)
                   .bind(1, row.account_id)
                   .bind_text(2, row.blob_id)
                   .bind(3, thread_id)
                   .bind(4, row.internal_date)
                   .bind(5, keys.sent_at)
                   .bind(6, static_cast<std::int64_t>(row.size))
                   .bind(7, row.system_flags)
                   .bind_text(8, row.keywords)
                   .bind_text(9, keys.message_id)
                   .bind_text(10, keys.base_subject)
                   .run());
    return InsertedEmail{*id, thread_id};
}

Result<InsertedEmail> clone_email(Connection& db, std::int64_t email_id) {
    auto id = reserve_email_ids(db, 1);
    if (!id) return id.error();
    auto clone = db.prepare(
        "INSERT INTO emails(id, account_id, blob_id, thread_id, internal_date, sent_at, size, system_flags, "
        "keywords, message_id, base_subject) SELECT ?2, account_id, blob_id, thread_id, internal_date, sent_at, "
        "size, system_flags, keywords, message_id, base_subject FROM emails WHERE id = ?1 RETURNING id, thread_id");
    if (!clone) return clone.error();
    auto row = clone->bind(1, email_id).bind(2, *id).step();
    if (!row) return row.error();
    if (!*row) return make_error(Errc::not_found, fmt::format("no email {}", email_id));
    InsertedEmail inserted{clone->column_int64(0), clone->column_int64(1)};
    MAGPIE_TRY(clone->run());
    return inserted;
}

Result<bool> has_membership(Connection& db, std::int64_t email_id, std::int64_t mailbox_id) {
    auto statement = db.prepare("SELECT 1 FROM messages WHERE email_id = ?1 AND mailbox_id = ?2");
    if (!statement) return statement.error();
    auto row = statement->bind(1, email_id).bind(2, mailbox_id).step();
    if (!row) return row.error();
    return *row;
}

Result<std::uint64_t> EmailLog::state_of(Connection& db, std::int64_t account_id) {
    if (auto found = states_.find(account_id); found != states_.end()) return found->second;
    auto next = db.prepare("UPDATE accounts SET email_state = email_state + 1 WHERE id = ?1 RETURNING email_state");
    if (!next) return next.error();
    auto row = next->bind(1, account_id).step();
    if (!row) return row.error();
    if (!*row) return make_error(Errc::not_found, fmt::format("no account {}", account_id));
    auto state = static_cast<std::uint64_t>(next->column_int64(0));
    MAGPIE_TRY(next->run());
    states_[account_id] = state;
    return state;
}

Result<void> EmailLog::record(Connection& db, std::int64_t account_id, std::int64_t email_id, std::int64_t thread_id,
                              EmailChange kind) {
    auto state = state_of(db, account_id);
    if (!state) return state.error();
    if (kind != EmailChange::created) {
        // "updated" supersedes an older "updated"; "destroyed" supersedes everything before it.
        auto prune = db.prepare(kind == EmailChange::updated ? kPruneEmailUpdates : kPruneEmailLog);
        if (!prune) return prune.error();
        MAGPIE_TRY(prune->bind(1, account_id).bind(2, email_id).run());
    }
    // "created" in this same state wins over a later "updated" (the client has not seen the Email yet).
    auto insert = db.prepare(
        "INSERT INTO email_log(account_id, state, email_id, thread_id, kind) VALUES(?1, ?2, ?3, ?4, ?5) "
        "ON CONFLICT DO NOTHING");
    if (!insert) return insert.error();
    MAGPIE_TRY(insert->bind(1, account_id)
                   .bind(2, static_cast<std::int64_t>(*state))
                   .bind(3, email_id)
                   .bind(4, thread_id)
                   .bind(5, static_cast<std::int64_t>(kind))
                   .run());
    if (kind == EmailChange::destroyed) return {};
    auto stamp = db.prepare("UPDATE emails SET state = ?2 WHERE id = ?1");
    if (!stamp) return stamp.error();
    return stamp->bind(1, email_id).bind(2, static_cast<std::int64_t>(*state)).run();
}

Result<void> EmailLog::settle(Connection& db, std::int64_t account_id, std::span<const std::int64_t> email_ids) {
    std::vector<std::int64_t> ids(email_ids.begin(), email_ids.end());
    std::ranges::sort(ids);
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    if (ids.empty()) return {};
    auto state = state_of(db, account_id);
    if (!state) return state.error();
    auto as_json = [](std::span<const std::int64_t> list) {
        std::string json = "[";
        for (std::int64_t id : list) {
            if (json.size() > 1) json += ',';
            json += std::to_string(id);
        }
        return json + "]";
    };
    std::vector<std::int64_t> gone;
    {
        auto orphans = db.prepare(kEmailsInNoMailbox);
        if (!orphans) return orphans.error();
        orphans->bind_text(1, as_json(ids));
        for (;;) {
            auto row = orphans->step();
            if (!row) return row.error();
            if (!*row) break;
            gone.push_back(orphans->column_int64(0));
        }
    }
    std::ranges::sort(gone);
    std::vector<std::int64_t> kept;
    std::ranges::set_difference(ids, gone, std::back_inserter(kept));
    // One pass per kind: prune what the new rows supersede, log them, then stamp or delete the Emails.
    auto log_all = [&](const std::vector<std::int64_t>& list, EmailChange kind) -> Result<void> {
        if (list.empty()) return {};
        const std::string json = as_json(list);
        auto prune = db.prepare(kind == EmailChange::updated ? kPruneEmailUpdatesOf : kPruneEmailLogOf);
        if (!prune) return prune.error();
        MAGPIE_TRY(prune->bind(1, account_id).bind_text(2, json).run());
        auto insert = db.prepare(kLogEmails);
        if (!insert) return insert.error();
        MAGPIE_TRY(insert->bind(1, account_id)
                       .bind_text(2, json)
                       .bind(3, static_cast<std::int64_t>(*state))
                       .bind(4, static_cast<std::int64_t>(kind))
                       .run());
        auto finish = db.prepare(kind == EmailChange::updated ? kStampEmails : kDeleteEmails);
        if (!finish) return finish.error();
        if (kind == EmailChange::updated) {
            return finish->bind(1, static_cast<std::int64_t>(*state)).bind_text(2, json).run();
        }
        return finish->bind_text(1, json).run();
    };
    MAGPIE_TRY(log_all(kept, EmailChange::updated));
    return log_all(gone, EmailChange::destroyed);
}

Result<void> backfill_emails(Connection& db, const ThreadLimits& limits) {
    struct Old {
        std::int64_t row_id = 0;
        EmailRow email;
        EmailKeys keys;
    };
    std::vector<Old> rows;
    {
        // Received order, so that threads form as they would have at delivery.
        auto all = db.prepare(
            "SELECT m.id, mb.account_id, m.blob_id, m.internal_date, m.size, m.system_flags, m.keywords, "
            "coalesce(b.subject, ''), coalesce(b.date_header, ''), coalesce(b.message_id, ''), "
            "coalesce(b.in_reply_to, ''), coalesce(b.refs, '') FROM messages m "
            "JOIN mailboxes mb ON mb.id = m.mailbox_id LEFT JOIN blobs b ON b.id = m.blob_id "
            "WHERE m.email_id IS NULL ORDER BY m.internal_date, m.id");
        if (!all) return all.error();
        for (;;) {
            auto row = all->step();
            if (!row) return row.error();
            if (!*row) break;
            Old old;
            old.row_id = all->column_int64(0);
            old.email.account_id = all->column_int64(1);
            old.email.blob_id = all->column_text(2);
            old.email.internal_date = all->column_int64(3);
            old.email.size = static_cast<std::uint64_t>(all->column_int64(4));
            old.email.system_flags = static_cast<std::uint32_t>(all->column_int64(5)) & ~kMembershipFlags;
            old.email.keywords = all->column_text(6);
            MessageSummary summary;
            summary.subject = all->column_text(7);
            summary.date = all->column_text(8);
            summary.message_id = all->column_text(9);
            summary.in_reply_to = all->column_text(10);
            summary.references = all->column_text(11);
            old.keys = email_keys(summary, limits);
            rows.push_back(std::move(old));
        }
    }
    for (Old& old : rows) {
        auto thread = find_thread(db, old.email.account_id, old.keys, old.email.internal_date, limits);
        if (!thread) return thread.error();
        old.email.thread_id = *thread;
        auto email = insert_email(db, old.email, old.keys);
        if (!email) return email.error();
        auto link = db.prepare("UPDATE messages SET email_id = ?2 WHERE id = ?1");
        if (!link) return link.error();
        MAGPIE_TRY(link->bind(1, old.row_id).bind(2, email->id).run());
    }
    return {};
}

Result<std::uint64_t> remove_memberships(Connection& db, std::int64_t mailbox_id, std::int64_t account_id,
                                         const std::vector<Doomed>& doomed, EmailLog& log) {
    auto recent_from = first_recent_uid(db, mailbox_id);
    if (!recent_from) return recent_from.error();
    auto modseq = allocate_modseq(db, mailbox_id);
    if (!modseq) return modseq.error();
    CounterDelta delta;
    std::vector<std::uint32_t> uids;
    std::vector<std::int64_t> emails;
    uids.reserve(doomed.size());
    emails.reserve(doomed.size());
    for (const Doomed& message : doomed) {
        uids.push_back(message.uid);
        emails.push_back(message.email_id);
        delta.count(-1, message.system_flags, message.size, message.uid >= *recent_from);
    }
    auto remove = db.prepare(queries::kDeleteMessages);
    if (!remove) return remove.error();
    MAGPIE_TRY(remove->bind(1, mailbox_id).bind_text(2, json_numbers(uids)).run());
    MAGPIE_TRY(log_changes(db, mailbox_id, *modseq, uids, ChangeKind::expunged));
    MAGPIE_TRY(apply_counters(db, mailbox_id, delta));
    MAGPIE_TRY(log.settle(db, account_id, emails));
    return *modseq;
}


Result<std::map<std::int64_t, std::uint64_t>> reflag_emails(Connection& db, std::int64_t except_mailbox,
                                                            const std::vector<Reflagged>& emails, bool deleted_too) {
    std::map<std::int64_t, std::uint64_t> touched;
    if (emails.empty()) return touched;
    std::string json = "[";
    for (const Reflagged& e : emails) {
        if (json.size() > 1) json += ',';
        json += fmt::format("[{},{},{}]", e.email_id, e.system & ~kMembershipFlags, json_string(e.keywords));
    }
    json += ']';
    auto write_emails = db.prepare(queries::kSetEmailFlags);
    if (!write_emails) return write_emails.error();
    MAGPIE_TRY(write_emails->bind_text(1, json).run());
    struct Row {
        std::int64_t row_id = 0;
        std::uint32_t uid = 0;
        std::uint32_t before = 0, after = 0;
        std::uint64_t size = 0;
        std::string keywords;
    };
    std::map<std::int64_t, bool> deleted_of;  // per Email, when `deleted_too`
    for (const Reflagged& e : emails) deleted_of[e.email_id] = (e.system & flag_deleted) != 0;
    std::map<std::int64_t, std::vector<Row>> by_mailbox;
    {
        auto others = db.prepare(queries::kOtherMemberships);
        if (!others) return others.error();
        others->bind_text(1, json).bind(2, except_mailbox);
        for (;;) {
            auto row = others->step();
            if (!row) return row.error();
            if (!*row) break;
            Row r{others->column_int64(0), static_cast<std::uint32_t>(others->column_int64(2)),
                  static_cast<std::uint32_t>(others->column_int64(3)),
                  static_cast<std::uint32_t>(others->column_int64(5)),
                  static_cast<std::uint64_t>(others->column_int64(4)), others->column_text(6)};
            // \Deleted stays the membership's own unless the caller sets it everywhere.
            const bool deleted = deleted_too ? deleted_of[others->column_int64(8)] : (r.before & flag_deleted) != 0;
            r.after = (r.after & ~kMembershipFlags) | (deleted ? flag_deleted : 0u);
            if (r.after == r.before && r.keywords == others->column_text(7)) continue;  // nothing to show here
            by_mailbox[others->column_int64(1)].push_back(std::move(r));
        }
    }
    for (auto& [mailbox_id, rows] : by_mailbox) {
        auto modseq = allocate_modseq(db, mailbox_id);
        if (!modseq) return modseq.error();
        CounterDelta delta;
        std::string set = "[";
        std::vector<std::uint32_t> uids;
        for (const Row& r : rows) {
            if (set.size() > 1) set += ',';
            set += fmt::format("[{},{},{}]", r.row_id, r.after, json_string(r.keywords));
            uids.push_back(r.uid);
            delta.reflag(r.before, r.after, r.size);
        }
        set += ']';
        std::ranges::sort(uids);
        auto change = db.prepare(queries::kSetFlags);
        if (!change) return change.error();
        MAGPIE_TRY(change->bind(1, static_cast<std::int64_t>(*modseq)).bind_text(2, set).run());
        MAGPIE_TRY(log_changes(db, mailbox_id, *modseq, uids, ChangeKind::flags));
        MAGPIE_TRY(apply_counters(db, mailbox_id, delta));
        touched[mailbox_id] = *modseq;
    }
    return touched;
}


}  // namespace magpie::store::sqlite
