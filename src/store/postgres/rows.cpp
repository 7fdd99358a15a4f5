#include "store/postgres/rows.h"

#include <algorithm>
#include <limits>

#include <fmt/format.h>

#include "base/time.h"
#include "store/flags.h"

namespace magpie::store::postgres {
namespace {

constexpr std::int64_t kMaxUid = 0xffffffff;  // RFC 9051 2.3.1.1: UIDs are 32-bit and never reused

}  // namespace

Mailbox mailbox_from_row(const Rows& rows, int row) {
    Mailbox mailbox;
    mailbox.id = rows.int64(row, 0);
    mailbox.account_id = rows.int64(row, 1);
    mailbox.name = rows.text(row, 2);
    mailbox.uidvalidity = static_cast<std::uint32_t>(rows.int64(row, 3));
    mailbox.uidnext = static_cast<std::uint32_t>(rows.int64(row, 4));
    mailbox.highest_modseq = static_cast<std::uint64_t>(rows.int64(row, 5));
    mailbox.special_use = static_cast<SpecialUse>(rows.int64(row, 6));
    mailbox.subscribed = rows.boolean(row, 7);
    mailbox.message_count = static_cast<std::uint32_t>(rows.int64(row, 8));
    mailbox.total_size = static_cast<std::uint64_t>(rows.int64(row, 9));
    return mailbox;
}

Message message_from_row(const Rows& rows, int row) {
    Message message;
    message.id = rows.int64(row, 0);
    message.mailbox_id = rows.int64(row, 1);
    message.uid = static_cast<std::uint32_t>(rows.int64(row, 2));
    message.modseq = static_cast<std::uint64_t>(rows.int64(row, 3));
    message.blob_id = rows.text(row, 4);
    message.size = static_cast<std::uint64_t>(rows.int64(row, 5));
    message.internal_date = rows.int64(row, 6);
    message.flags = flag_list(static_cast<std::uint32_t>(rows.int64(row, 7)), rows.text(row, 8));
    if (!rows.null(row, 9)) {
        message.summary.subject = rows.bytes(row, 9);
        message.summary.from = rows.bytes(row, 10);
        message.summary.to = rows.bytes(row, 11);
        message.summary.cc = rows.bytes(row, 12);
        message.summary.date = rows.bytes(row, 13);
        message.summary.message_id = rows.bytes(row, 14);
        message.summary.in_reply_to = rows.bytes(row, 15);
        message.summary.references = rows.bytes(row, 16);
        message.summary.structure = rows.bytes(row, 17);
    }
    message.email_id = rows.int64(row, 18);
    message.thread_id = rows.int64(row, 19);
    return message;
}

Result<Mailbox> select_mailbox(Connection& db, std::int64_t mailbox_id, bool lock) {
    auto rows = db.exec(fmt::format("SELECT {} FROM mailboxes WHERE id = $1{}", kMailboxColumns,
                                    lock ? " FOR UPDATE" : ""),
                        Params().add(mailbox_id));
    if (!rows) return rows.error();
    if (rows->empty()) return make_error(Errc::not_found, fmt::format("no mailbox {}", mailbox_id));
    return mailbox_from_row(*rows, 0);
}

Result<void> lock_mailboxes(Connection& db, std::vector<std::int64_t> mailbox_ids) {
    if (mailbox_ids.empty()) return {};
    std::ranges::sort(mailbox_ids);
    mailbox_ids.erase(std::unique(mailbox_ids.begin(), mailbox_ids.end()), mailbox_ids.end());
    const std::string ids = int_array(mailbox_ids);
    auto accounts = db.exec(
        "SELECT id FROM accounts WHERE id IN (SELECT account_id FROM mailboxes WHERE id = ANY($1::bigint[])) "
        "ORDER BY id FOR NO KEY UPDATE",
        Params().add(ids));
    if (!accounts) return accounts.error();
    auto locked = db.exec("SELECT id FROM mailboxes WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
                          Params().add(ids));
    if (!locked) return locked.error();
    return {};
}

Result<std::uint32_t> next_uidvalidity(Connection& db) {
    // The upsert takes the counter's row lock: concurrent CREATEs on any node queue here.
    auto rows = db.exec(
        "INSERT INTO meta(key, value) VALUES('last_uidvalidity', $1) "
        "ON CONFLICT(key) DO UPDATE SET value = greatest(meta.value + 1, $1) RETURNING value",
        Params().add(unix_now()));
    if (!rows) return rows.error();
    std::int64_t next = rows->int64(0, 0);
    if (next > std::numeric_limits<std::uint32_t>::max()) {
        return make_error(Errc::limit_exceeded, "UIDVALIDITY space exhausted");
    }
    return static_cast<std::uint32_t>(next);
}

Result<std::int64_t> insert_mailbox(Connection& db, std::int64_t account_id, std::string_view name,
                                    SpecialUse special_use) {
    auto uidvalidity = next_uidvalidity(db);
    if (!uidvalidity) return uidvalidity.error();
    auto rows = db.exec(
        "INSERT INTO mailboxes(account_id, name, uidvalidity, special_use, highest_modseq) "
        "VALUES($1, $2, $3, $4, 1) ON CONFLICT(account_id, name) DO NOTHING RETURNING id",
        Params().add(account_id).add(name).add(static_cast<std::int64_t>(*uidvalidity))
            .add(static_cast<std::int64_t>(special_use)));
    if (!rows) return rows.error();
    if (rows->empty()) return make_error(Errc::already_exists, fmt::format("mailbox {} exists", name));
    return rows->int64(0, 0);
}

Result<void> subscribe(Connection& db, std::int64_t account_id, std::string_view name) {
    auto done = db.exec("INSERT INTO subscriptions(account_id, name) VALUES($1, $2) ON CONFLICT DO NOTHING",
                        Params().add(account_id).add(name));
    if (!done) return done.error();
    return {};
}

Result<Allocated> allocate_message(Connection& db, std::int64_t mailbox_id, std::uint64_t size,
                                   std::uint32_t system_flags) {
    const bool deleted = (system_flags & flag_deleted) != 0;
    auto rows = db.exec(
        "UPDATE mailboxes SET uidnext = uidnext + 1, highest_modseq = highest_modseq + 1, "
        "message_count = message_count + 1, total_size = total_size + $2, unseen_count = unseen_count + $4, "
        "deleted_count = deleted_count + $5, deleted_size = deleted_size + $6, recent_count = recent_count + 1 "
        "WHERE id = $1 AND uidnext < $3 RETURNING account_id, uidnext - 1, highest_modseq",
        Params()
            .add(mailbox_id)
            .add(static_cast<std::int64_t>(size))
            .add(kMaxUid)
            .add(std::int64_t{(system_flags & flag_seen) == 0 ? 1 : 0})
            .add(std::int64_t{deleted ? 1 : 0})
            .add(deleted ? static_cast<std::int64_t>(size) : 0));
    if (!rows) return rows.error();
    if (!rows->empty()) {
        return Allocated{rows->int64(0, 0), static_cast<std::uint32_t>(rows->int64(0, 1)),
                         static_cast<std::uint64_t>(rows->int64(0, 2))};
    }
    auto exists = select_mailbox(db, mailbox_id);
    if (!exists) return exists.error();
    return make_error(Errc::limit_exceeded, fmt::format("mailbox {} has no UIDs left", mailbox_id));
}

Result<std::uint64_t> allocate_modseq(Connection& db, std::int64_t mailbox_id) {
    auto rows = db.exec("UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = $1 RETURNING highest_modseq",
                        Params().add(mailbox_id));
    if (!rows) return rows.error();
    if (rows->empty()) return make_error(Errc::not_found, fmt::format("no mailbox {}", mailbox_id));
    return static_cast<std::uint64_t>(rows->int64(0, 0));
}

Result<std::uint32_t> first_recent_uid(Connection& db, std::int64_t mailbox_id) {
    auto rows = db.exec("SELECT first_recent_uid FROM mailboxes WHERE id = $1", Params().add(mailbox_id));
    if (!rows) return rows.error();
    if (rows->empty()) return make_error(Errc::not_found, fmt::format("no mailbox {}", mailbox_id));
    return static_cast<std::uint32_t>(rows->int64(0, 0));
}

void CounterDelta::count(int n, std::uint32_t system_flags, std::uint64_t bytes, bool is_recent) {
    const auto octets = static_cast<std::int64_t>(bytes);
    messages += n;
    size += n * octets;
    if ((system_flags & flag_seen) == 0) unseen += n;
    if ((system_flags & flag_deleted) != 0) {
        deleted += n;
        deleted_size += n * octets;
    }
    if (is_recent) recent += n;
}

void CounterDelta::reflag(std::uint32_t before, std::uint32_t after, std::uint64_t bytes) {
    count(-1, before, bytes, false);
    count(+1, after, bytes, false);
}

bool CounterDelta::empty() const {
    return messages == 0 && size == 0 && unseen == 0 && deleted == 0 && deleted_size == 0 && recent == 0;
}

Result<void> apply_counters(Connection& db, std::int64_t mailbox_id, const CounterDelta& delta) {
    if (delta.empty()) return {};
    auto done = db.exec(
        "UPDATE mailboxes SET message_count = message_count + $2, total_size = total_size + $3, "
        "unseen_count = unseen_count + $4, deleted_count = deleted_count + $5, deleted_size = deleted_size + $6, "
        "recent_count = recent_count + $7 WHERE id = $1",
        Params().add(mailbox_id).add(delta.messages).add(delta.size).add(delta.unseen).add(delta.deleted)
            .add(delta.deleted_size).add(delta.recent));
    if (!done) return done.error();
    if (done->affected() == 0) return make_error(Errc::not_found, fmt::format("no mailbox {}", mailbox_id));
    return {};
}

Result<void> insert_message(Connection& db, const MessageRow& row) {
    auto done = db.exec(
        "INSERT INTO messages(mailbox_id, uid, modseq, blob_id, size, internal_date, system_flags, keywords, "
        "email_id) VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        Params()
            .add(row.mailbox_id)
            .add(std::int64_t{row.uid})
            .add(static_cast<std::int64_t>(row.modseq))
            .add(row.blob_id)
            .add(static_cast<std::int64_t>(row.size))
            .add(row.internal_date)
            .add(std::int64_t{row.system_flags})
            .add(row.keywords)
            .add(row.email_id));
    if (!done) return done.error();
    return {};
}

Result<void> log_changes(Connection& db, std::int64_t mailbox_id, std::uint64_t modseq,
                         std::span<const std::uint32_t> uids, ChangeKind kind) {
    if (uids.empty()) return {};
    const std::string set = uint_array(uids);
    if (kind != ChangeKind::appended) {
        auto prune = db.exec(kind == ChangeKind::flags
                                 ? "DELETE FROM change_log WHERE mailbox_id = $1 AND kind = 2 AND uid = ANY($2::bigint[])"
                                 : "DELETE FROM change_log WHERE mailbox_id = $1 AND uid = ANY($2::bigint[])",
                             Params().add(mailbox_id).add(set));
        if (!prune) return prune.error();
    }
    auto insert = db.exec(
        "INSERT INTO change_log(mailbox_id, modseq, uid, kind) SELECT $1::bigint, $2::bigint, u, $4::integer FROM unnest($3::bigint[]) u",
        Params().add(mailbox_id).add(static_cast<std::int64_t>(modseq)).add(set).add(static_cast<std::int64_t>(kind)));
    if (!insert) return insert.error();
    return {};
}

UidRanges uid_ranges(std::span<const std::uint32_t> uids) {
    std::vector<std::uint32_t> first, last;
    for (std::size_t i = 0; i < uids.size();) {
        std::size_t j = i;
        while (j + 1 < uids.size() && uids[j + 1] == uids[j] + 1) ++j;
        first.push_back(uids[i]);
        last.push_back(uids[j]);
        i = j + 1;
    }
    return UidRanges{uint_array(first), uint_array(last)};
}

}  // namespace magpie::store::postgres
