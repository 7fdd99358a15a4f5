#include "store/postgres/emails.h"

#include <algorithm>
#include <iterator>

#include <fmt/format.h>

#include "store/postgres/rows.h"

namespace magpie::store::postgres {
namespace {

constexpr char kHex[] = "0123456789abcdef";

}  // namespace

std::string bytea_array(std::span<const std::string> values) {
    std::string out = "{";
    for (const std::string& v : values) {
        if (out.size() > 1) out += ',';
        out += "\"\\\\x";  // "\\x..." : the array literal's backslash escaped
        for (char c : v) {
            const auto byte = static_cast<unsigned char>(c);
            out += kHex[byte >> 4];
            out += kHex[byte & 0xf];
        }
        out += '"';
    }
    out += '}';
    return out;
}

Result<void> lock_account(Connection& db, std::int64_t account_id) {
    auto rows = db.exec("SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE", Params().add(account_id));
    if (!rows) return rows.error();
    if (rows->empty()) return make_error(Errc::not_found, fmt::format("no account {}", account_id));
    return {};
}

Result<std::int64_t> find_thread(Connection& db, std::int64_t account_id, const EmailKeys& keys,
                                 std::int64_t received_at, const ThreadLimits& limits) {
    std::vector<std::string> ids = keys.parents;
    if (!keys.message_id.empty()) ids.push_back(keys.message_id);
    if (!ids.empty()) {
        // One statement: the ids in preference order (ordinality), each an index probe.
        auto parent = db.exec(
            "SELECT e.thread_id FROM unnest($2::bytea[]) WITH ORDINALITY j(mid, n) JOIN emails e "
            "ON e.account_id = $1 AND e.message_id = j.mid AND e.message_id <> ''::bytea ORDER BY j.n, e.id LIMIT 1",
            Params().add(account_id).add(bytea_array(ids)));
        if (!parent) return parent.error();
        if (!parent->empty()) return parent->int64(0, 0);
    }
    if (keys.base_subject.empty()) return std::int64_t{0};
    auto same_subject = db.exec(
        "SELECT thread_id FROM emails WHERE account_id = $1 AND base_subject = $2 AND internal_date BETWEEN $3 AND $4 "
        "ORDER BY internal_date DESC, id DESC LIMIT 1",
        Params()
            .add(account_id)
            .add_bytes(keys.base_subject)
            .add(received_at - limits.subject_window_seconds)
            .add(received_at + limits.subject_window_seconds));
    if (!same_subject) return same_subject.error();
    if (!same_subject->empty()) return same_subject->int64(0, 0);
    return std::int64_t{0};
}

Result<InsertedEmail> insert_email(Connection& db, const EmailRow& row, const EmailKeys& keys) {
    // A new thread is named after its first Email (the id from the sequence, in the same statement), so thread
    // ids are never reused either.
    auto inserted = db.exec(
        "INSERT INTO emails(id, account_id, blob_id, thread_id, internal_date, sent_at, size, system_flags, keywords, "
        "message_id, base_subject) SELECT n.id, $1, $2, CASE WHEN $3::bigint = 0 THEN n.id ELSE $3::bigint END, $4, $5, "
        "$6, $7, $8, $9, $10 FROM (SELECT nextval(pg_get_serial_sequence('emails', 'id')) AS id) n "
        "RETURNING id, thread_id",
        Params()
            .add(row.account_id)
            .add(row.blob_id)
            .add(row.thread_id)
            .add(row.internal_date)
            .add(keys.sent_at)
            .add(static_cast<std::int64_t>(row.size))
            .add(std::int64_t{row.system_flags & ~kMembershipFlags})
            .add(row.keywords)
            .add_bytes(keys.message_id)
            .add_bytes(keys.base_subject));
    if (!inserted) return inserted.error();
    return InsertedEmail{inserted->int64(0, 0), inserted->int64(0, 1)};
}

Result<InsertedEmail> clone_email(Connection& db, std::int64_t email_id) {
    auto clone = db.exec(
        "INSERT INTO emails(account_id, blob_id, thread_id, internal_date, sent_at, size, system_flags, keywords, "
        "message_id, base_subject) SELECT account_id, blob_id, thread_id, internal_date, sent_at, size, "
        "system_flags, keywords, message_id, base_subject FROM emails WHERE id = $1 RETURNING id, thread_id",
        Params().add(email_id));
    if (!clone) return clone.error();
    if (clone->empty()) return make_error(Errc::not_found, fmt::format("no email {}", email_id));
    return InsertedEmail{clone->int64(0, 0), clone->int64(0, 1)};
}

Result<bool> has_membership(Connection& db, std::int64_t email_id, std::int64_t mailbox_id) {
    auto rows = db.exec("SELECT 1 FROM messages WHERE email_id = $1 AND mailbox_id = $2",
                        Params().add(email_id).add(mailbox_id));
    if (!rows) return rows.error();
    return !rows->empty();
}

Result<std::uint64_t> EmailLog::state_of(Connection& db, std::int64_t account_id) {
    if (auto found = states_.find(account_id); found != states_.end()) return found->second;
    auto next = db.exec("UPDATE accounts SET email_state = email_state + 1 WHERE id = $1 RETURNING email_state",
                        Params().add(account_id));
    if (!next) return next.error();
    if (next->empty()) return make_error(Errc::not_found, fmt::format("no account {}", account_id));
    auto state = static_cast<std::uint64_t>(next->int64(0, 0));
    states_[account_id] = state;
    return state;
}

Result<void> EmailLog::record(Connection& db, std::int64_t account_id, std::int64_t email_id, std::int64_t thread_id,
                              EmailChange kind) {
    auto state = state_of(db, account_id);
    if (!state) return state.error();
    if (kind != EmailChange::created) {
        // "updated" supersedes an older "updated"; "destroyed" supersedes everything before it.
        auto prune = db.exec(kind == EmailChange::updated
                                 ? "DELETE FROM email_log WHERE account_id = $1 AND email_id = $2 AND kind = 2"
                                 : "DELETE FROM email_log WHERE account_id = $1 AND email_id = $2",
                             Params().add(account_id).add(email_id));
        if (!prune) return prune.error();
    }
    // "created" in this same state wins over a later "updated" (the client has not seen the Email yet).
    auto insert = db.exec(
        "INSERT INTO email_log(account_id, state, email_id, thread_id, kind) VALUES($1, $2, $3, $4, $5) "
        "ON CONFLICT DO NOTHING",
        Params().add(account_id).add(static_cast<std::int64_t>(*state)).add(email_id).add(thread_id)
            .add(static_cast<std::int64_t>(kind)));
    if (!insert) return insert.error();
    if (kind == EmailChange::destroyed) return {};
    auto stamp = db.exec("UPDATE emails SET state = $2 WHERE id = $1",
                         Params().add(email_id).add(static_cast<std::int64_t>(*state)));
    if (!stamp) return stamp.error();
    return {};
}

Result<void> EmailLog::settle(Connection& db, std::int64_t account_id, std::span<const std::int64_t> email_ids) {
    std::vector<std::int64_t> ids(email_ids.begin(), email_ids.end());
    std::ranges::sort(ids);
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    if (ids.empty()) return {};
    auto state = state_of(db, account_id);
    if (!state) return state.error();
    auto orphans = db.exec(
        "SELECT e.id FROM emails e WHERE e.id = ANY($1::bigint[]) "
        "AND NOT EXISTS(SELECT 1 FROM messages m WHERE m.email_id = e.id) ORDER BY e.id",
        Params().add(int_array(ids)));
    if (!orphans) return orphans.error();
    std::vector<std::int64_t> gone;
    for (int i = 0; i < orphans->size(); ++i) gone.push_back(orphans->int64(i, 0));
    std::vector<std::int64_t> kept;
    std::ranges::set_difference(ids, gone, std::back_inserter(kept));
    auto log_all = [&](const std::vector<std::int64_t>& list, EmailChange kind) -> Result<void> {
        if (list.empty()) return {};
        const std::string array = int_array(list);
        auto prune = db.exec(kind == EmailChange::updated
                                 ? "DELETE FROM email_log WHERE account_id = $1 AND kind = 2 AND email_id = ANY($2::bigint[])"
                                 : "DELETE FROM email_log WHERE account_id = $1 AND email_id = ANY($2::bigint[])",
                             Params().add(account_id).add(array));
        if (!prune) return prune.error();
        auto insert = db.exec(
            "INSERT INTO email_log(account_id, state, email_id, thread_id, kind) SELECT $1::bigint, $3::bigint, e.id, "
            "e.thread_id, $4::integer FROM emails e WHERE e.id = ANY($2::bigint[]) ON CONFLICT DO NOTHING",
            Params().add(account_id).add(array).add(static_cast<std::int64_t>(*state)).add(static_cast<std::int64_t>(kind)));
        if (!insert) return insert.error();
        auto finish = kind == EmailChange::updated
                          ? db.exec("UPDATE emails SET state = $1 WHERE id = ANY($2::bigint[])",
                                    Params().add(static_cast<std::int64_t>(*state)).add(array))
                          : db.exec("DELETE FROM emails WHERE id = ANY($1::bigint[])", Params().add(array));
        if (!finish) return finish.error();
        return {};
    };
    MAGPIE_TRY(log_all(kept, EmailChange::updated));
    return log_all(gone, EmailChange::destroyed);
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
    for (const Doomed& message : doomed) {
        uids.push_back(message.uid);
        emails.push_back(message.email_id);
        delta.count(-1, message.system_flags, message.size, message.uid >= *recent_from);
    }
    auto removed = db.exec("DELETE FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[])",
                           Params().add(mailbox_id).add(uint_array(uids)));
    if (!removed) return removed.error();
    MAGPIE_TRY(log_changes(db, mailbox_id, *modseq, uids, ChangeKind::expunged));
    MAGPIE_TRY(apply_counters(db, mailbox_id, delta));
    MAGPIE_TRY(log.settle(db, account_id, emails));
    return *modseq;
}

Result<std::map<std::int64_t, std::uint64_t>> reflag_emails(Connection& db, std::int64_t except_mailbox,
                                                            const std::vector<Reflagged>& emails, bool deleted_too) {
    std::map<std::int64_t, std::uint64_t> touched;
    if (emails.empty()) return touched;
    std::vector<std::int64_t> ids, systems;
    std::vector<std::string> keywords;
    std::map<std::int64_t, const Reflagged*> by_id;
    for (const Reflagged& e : emails) {
        ids.push_back(e.email_id);
        systems.push_back(e.system & ~kMembershipFlags);
        keywords.push_back(e.keywords);
        by_id[e.email_id] = &e;
    }
    auto written = db.exec(
        "UPDATE emails SET system_flags = u.flags, keywords = u.keywords "
        "FROM unnest($1::bigint[], $2::integer[], $3::text[]) u(id, flags, keywords) WHERE emails.id = u.id",
        Params().add(int_array(ids)).add(int_array(systems)).add(text_array(keywords)));
    if (!written) return written.error();
    struct Row {
        std::int64_t row_id = 0;
        std::uint32_t uid = 0;
        std::uint32_t before = 0, after = 0;
        std::uint64_t size = 0;
        std::string keywords;
    };
    std::map<std::int64_t, std::vector<Row>> by_mailbox;
    auto others = db.exec(
        "SELECT m.id, m.mailbox_id, m.uid, m.system_flags, m.size, m.keywords, m.email_id FROM messages m "
        "WHERE m.email_id = ANY($1::bigint[]) AND m.mailbox_id <> $2 ORDER BY m.mailbox_id, m.uid",
        Params().add(int_array(ids)).add(except_mailbox));
    if (!others) return others.error();
    for (int i = 0; i < others->size(); ++i) {
        const Reflagged& e = *by_id[others->int64(i, 6)];
        Row r{others->int64(i, 0), static_cast<std::uint32_t>(others->int64(i, 2)),
              static_cast<std::uint32_t>(others->int64(i, 3)), 0, static_cast<std::uint64_t>(others->int64(i, 4)),
              e.keywords};
        // \Deleted stays the membership's own unless the caller sets it everywhere.
        const bool deleted = deleted_too ? (e.system & flag_deleted) != 0 : (r.before & flag_deleted) != 0;
        r.after = (e.system & ~kMembershipFlags) | (deleted ? flag_deleted : 0u);
        if (r.after == r.before && r.keywords == others->text(i, 5)) continue;  // nothing to show here
        by_mailbox[others->int64(i, 1)].push_back(std::move(r));
    }
    for (auto& [mailbox_id, rows] : by_mailbox) {
        auto modseq = allocate_modseq(db, mailbox_id);
        if (!modseq) return modseq.error();
        CounterDelta delta;
        std::vector<std::int64_t> row_ids, flags;
        std::vector<std::string> row_keywords;
        std::vector<std::uint32_t> uids;
        for (const Row& r : rows) {
            row_ids.push_back(r.row_id);
            flags.push_back(r.after);
            row_keywords.push_back(r.keywords);
            uids.push_back(r.uid);
            delta.reflag(r.before, r.after, r.size);
        }
        std::ranges::sort(uids);
        auto change = db.exec(
            "UPDATE messages SET system_flags = u.flags, keywords = u.keywords, modseq = $1 "
            "FROM unnest($2::bigint[], $3::integer[], $4::text[]) u(id, flags, keywords) WHERE messages.id = u.id",
            Params().add(static_cast<std::int64_t>(*modseq)).add(int_array(row_ids)).add(int_array(flags))
                .add(text_array(row_keywords)));
        if (!change) return change.error();
        MAGPIE_TRY(log_changes(db, mailbox_id, *modseq, uids, ChangeKind::flags));
        MAGPIE_TRY(apply_counters(db, mailbox_id, delta));
        touched[mailbox_id] = *modseq;
    }
    return touched;
}

Result<void> backfill_emails(Connection& db, const ThreadLimits& limits) {
    // Received order, so that threads form as they would have at delivery.
    auto all = db.exec(
        "SELECT m.id, mb.account_id, m.blob_id, m.internal_date, m.size, m.system_flags, m.keywords, "
        "coalesce(b.subject, ''::bytea), coalesce(b.date_header, ''::bytea), coalesce(b.message_id, ''::bytea), "
        "coalesce(b.in_reply_to, ''::bytea), coalesce(b.refs, ''::bytea) FROM messages m "
        "JOIN mailboxes mb ON mb.id = m.mailbox_id LEFT JOIN blobs b ON b.id = m.blob_id "
        "WHERE m.email_id IS NULL ORDER BY m.internal_date, m.id");
    if (!all) return all.error();
    for (int i = 0; i < all->size(); ++i) {
        EmailRow email;
        email.account_id = all->int64(i, 1);
        email.blob_id = all->text(i, 2);
        email.internal_date = all->int64(i, 3);
        email.size = static_cast<std::uint64_t>(all->int64(i, 4));
        email.system_flags = static_cast<std::uint32_t>(all->int64(i, 5)) & ~kMembershipFlags;
        email.keywords = all->text(i, 6);
        MessageSummary summary;
        summary.subject = all->bytes(i, 7);
        summary.date = all->bytes(i, 8);
        summary.message_id = all->bytes(i, 9);
        summary.in_reply_to = all->bytes(i, 10);
        summary.references = all->bytes(i, 11);
        const EmailKeys keys = email_keys(summary, limits);
        auto thread = find_thread(db, email.account_id, keys, email.internal_date, limits);
        if (!thread) return thread.error();
        email.thread_id = *thread;
        auto inserted = insert_email(db, email, keys);
        if (!inserted) return inserted.error();
        auto link = db.exec("UPDATE messages SET email_id = $2 WHERE id = $1",
                            Params().add(all->int64(i, 0)).add(inserted->id));
        if (!link) return link.error();
    }
    return {};
}

}  // namespace magpie::store::postgres
