#include "store/sqlite/rows.h"

#include <algorithm>
#include <limits>

#include <fmt/format.h>

#include "base/time.h"
#include "store/flags.h"
#include "store/sqlite/queries.h"

namespace magpie::store::sqlite {
namespace {

constexpr std::int64_t kMaxUid = 0xffffffff;  // RFC 9051 2.3.1.1: UIDs are 32-bit and never reused
static_assert(static_cast<std::int64_t>(ChangeKind::flags) == 2, "log_change prunes kind 2 by number");

}  // namespace

Mailbox mailbox_from_row(const Statement& row) {
    Mailbox mailbox;
    mailbox.id = row.column_int64(0);
    mailbox.account_id = row.column_int64(1);
    mailbox.name = row.column_text(2);
    mailbox.uidvalidity = static_cast<std::uint32_t>(row.column_int64(3));
    mailbox.uidnext = static_cast<std::uint32_t>(row.column_int64(4));
    mailbox.highest_modseq = static_cast<std::uint64_t>(row.column_int64(5));
    mailbox.special_use = static_cast<SpecialUse>(row.column_int64(6));
    mailbox.subscribed = row.column_int64(7) != 0;
    mailbox.message_count = static_cast<std::uint32_t>(row.column_int64(8));
    mailbox.total_size = static_cast<std::uint64_t>(row.column_int64(9));
    return mailbox;
}

std::string uid_ranges_json(std::span<const std::uint32_t> uids) {
    std::string ranges = "[";
    for (std::size_t i = 0; i < uids.size();) {
        std::size_t j = i;
        while (j + 1 < uids.size() && uids[j + 1] == uids[j] + 1) ++j;
        if (ranges.size() > 1) ranges += ',';
        ranges += fmt::format("[{},{}]", uids[i], uids[j]);
        i = j + 1;
    }
    ranges += ']';
    return ranges;
}

Message message_from_row(const Statement& row) {
    Message message;
    message.id = row.column_int64(0);
    message.mailbox_id = row.column_int64(1);
    message.uid = static_cast<std::uint32_t>(row.column_int64(2));
    message.modseq = static_cast<std::uint64_t>(row.column_int64(3));
    message.blob_id = row.column_text(4);
    message.size = static_cast<std::uint64_t>(row.column_int64(5));
    message.internal_date = row.column_int64(6);
    message.flags = flag_list(static_cast<std::uint32_t>(row.column_int64(7)), row.column_text(8));
    message.summary.subject = row.column_text(9);
    message.summary.from = row.column_text(10);
    message.summary.to = row.column_text(11);
    message.summary.cc = row.column_text(12);
    message.summary.date = row.column_text(13);
    message.summary.message_id = row.column_text(14);
    message.summary.in_reply_to = row.column_text(15);
    message.summary.references = row.column_text(16);
    message.summary.structure = row.column_text(17);
    message.email_id = row.column_int64(18);
    message.thread_id = row.column_int64(19);
    return message;
}

Result<Mailbox> select_mailbox(Connection& db, std::int64_t mailbox_id) {
    auto statement = db.prepare(fmt::format("SELECT {} FROM mailboxes WHERE id = ?1", kMailboxColumns));
    if (!statement) return statement.error();
    auto row = statement->bind(1, mailbox_id).step();
    if (!row) return row.error();
    if (!*row) return make_error(Errc::not_found, fmt::format("no mailbox {}", mailbox_id));
    return mailbox_from_row(*statement);
}

Result<std::uint64_t> read_directory_version(Connection& db) {
    auto statement = db.prepare("SELECT value FROM meta WHERE key = 'directory_version'");
    if (!statement) return statement.error();
    auto row = statement->step();
    if (!row) return row.error();
    if (!*row) return make_error(Errc::corrupt, "meta has no directory_version");
    return static_cast<std::uint64_t>(statement->column_int64(0));
}

Result<std::uint32_t> next_uidvalidity(Connection& db) {
    std::int64_t last = 0;
    {
        auto statement = db.prepare("SELECT value FROM meta WHERE key = 'last_uidvalidity'");
        if (!statement) return statement.error();
        auto row = statement->step();
        if (!row) return row.error();
        if (*row) last = statement->column_int64(0);
    }
    std::int64_t next = std::max<std::int64_t>(unix_now(), last + 1);
    if (next > std::numeric_limits<std::uint32_t>::max()) {
        return make_error(Errc::limit_exceeded, "UIDVALIDITY space exhausted");
    }
    auto statement = db.prepare(
        "INSERT INTO meta(key, value) VALUES('last_uidvalidity', ?1) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    if (!statement) return statement.error();
    MAGPIE_TRY(statement->bind(1, next).run());
    return static_cast<std::uint32_t>(next);
}

Result<std::int64_t> insert_mailbox(Connection& db, std::int64_t account_id, std::string_view name,
                                    SpecialUse special_use) {
    auto uidvalidity = next_uidvalidity(db);
    if (!uidvalidity) return uidvalidity.error();
    auto statement = db.prepare(
        "INSERT INTO mailboxes(account_id, name, uidvalidity, special_use, highest_modseq) VALUES(?1, ?2, ?3, ?4, 1)");
    if (!statement) return statement.error();
    statement->bind(1, account_id).bind_text(2, name).bind(3, *uidvalidity).bind(4, static_cast<std::int64_t>(special_use));
    auto inserted = statement->run();
    if (!inserted) {
        if (inserted.error().code == Errc::already_exists) {
            return make_error(Errc::already_exists, fmt::format("mailbox {} exists", name));
        }
        return inserted.error();
    }
    return db.last_insert_rowid();
}

Result<void> subscribe(Connection& db, std::int64_t account_id, std::string_view name) {
    auto statement = db.prepare("INSERT INTO subscriptions(account_id, name) VALUES(?1, ?2) ON CONFLICT DO NOTHING");
    if (!statement) return statement.error();
    return statement->bind(1, account_id).bind_text(2, name).run();
}

Result<Allocated> allocate_message(Connection& db, std::int64_t mailbox_id, std::uint64_t size,
                                   std::uint32_t system_flags) {
    {
        auto allocate = db.prepare(
            "UPDATE mailboxes SET uidnext = uidnext + 1, highest_modseq = highest_modseq + 1, "
            "message_count = message_count + 1, total_size = total_size + ?2, unseen_count = unseen_count + ?4, "
            "deleted_count = deleted_count + ?5, deleted_size = deleted_size + ?6, recent_count = recent_count + 1 "
            "WHERE id = ?1 AND uidnext < ?3 RETURNING account_id, uidnext - 1, highest_modseq");
        if (!allocate) return allocate.error();
        const bool deleted = (system_flags & flag_deleted) != 0;
        allocate->bind(1, mailbox_id)
            .bind(2, static_cast<std::int64_t>(size))
            .bind(3, kMaxUid)
            .bind(4, (system_flags & flag_seen) == 0 ? 1 : 0)
            .bind(5, deleted ? 1 : 0)
            .bind(6, deleted ? static_cast<std::int64_t>(size) : 0);
        auto row = allocate->step();
        if (!row) return row.error();
        if (*row) {
            Allocated allocated{allocate->column_int64(0), static_cast<std::uint32_t>(allocate->column_int64(1)),
                                static_cast<std::uint64_t>(allocate->column_int64(2))};
            MAGPIE_TRY(allocate->run());  // finish the statement
            return allocated;
        }
    }
    auto exists = select_mailbox(db, mailbox_id);
    if (!exists) return exists.error();
    return make_error(Errc::limit_exceeded, fmt::format("mailbox {} has no UIDs left", mailbox_id));
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
    auto statement = db.prepare(
        "UPDATE mailboxes SET message_count = message_count + ?2, total_size = total_size + ?3, "
        "unseen_count = unseen_count + ?4, deleted_count = deleted_count + ?5, deleted_size = deleted_size + ?6, "
        "recent_count = recent_count + ?7 WHERE id = ?1");
    if (!statement) return statement.error();
    statement->bind(1, mailbox_id)
        .bind(2, delta.messages)
        .bind(3, delta.size)
        .bind(4, delta.unseen)
        .bind(5, delta.deleted)
        .bind(6, delta.deleted_size)
        .bind(7, delta.recent);
    MAGPIE_TRY(statement->run());
    if (db.changes() == 0) return make_error(Errc::not_found, fmt::format("no mailbox {}", mailbox_id));
    return {};
}

Result<std::uint32_t> first_recent_uid(Connection& db, std::int64_t mailbox_id) {
    auto statement = db.prepare("SELECT first_recent_uid FROM mailboxes WHERE id = ?1");
    if (!statement) return statement.error();
    auto row = statement->bind(1, mailbox_id).step();
    if (!row) return row.error();
    if (!*row) return make_error(Errc::not_found, fmt::format("no mailbox {}", mailbox_id));
    return static_cast<std::uint32_t>(statement->column_int64(0));
}

Result<std::uint64_t> allocate_modseq(Connection& db, std::int64_t mailbox_id) {
    auto allocate = db.prepare(
        "UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = ?1 RETURNING highest_modseq");
    if (!allocate) return allocate.error();
    auto row = allocate->bind(1, mailbox_id).step();
    if (!row) return row.error();
    if (!*row) return make_error(Errc::not_found, fmt::format("no mailbox {}", mailbox_id));
    auto modseq = static_cast<std::uint64_t>(allocate->column_int64(0));
    MAGPIE_TRY(allocate->run());
    return modseq;
}

Result<bool> insert_blob(Connection& db, std::string_view blob_id, std::uint64_t size, std::int64_t location,
                         const MessageSummary& summary, std::string_view stored) {
    auto blob = db.prepare(
        "INSERT INTO blobs(id, size, location, created_at, subject, from_header, to_header, cc_header, "
        "date_header, message_id, in_reply_to, refs, structure) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT(id) DO NOTHING");
    if (!blob) return blob.error();
    blob->bind_text(1, blob_id)
        .bind(2, static_cast<std::int64_t>(size))
        .bind(3, location)
        .bind(4, unix_now())
        .bind_text(5, summary.subject)
        .bind_text(6, summary.from)
        .bind_text(7, summary.to)
        .bind_text(8, summary.cc)
        .bind_text(9, summary.date)
        .bind_text(10, summary.message_id)
        .bind_text(11, summary.in_reply_to)
        .bind_text(12, summary.references)
        .bind_blob(13, summary.structure);
    MAGPIE_TRY(blob->run());
    if (db.changes() == 0) return false;
    if (location != kLocationFile) {
        auto content = db.prepare("INSERT INTO blob_contents(blob_id, content) VALUES(?1, ?2)");
        if (!content) return content.error();
        MAGPIE_TRY(content->bind_text(1, blob_id).bind_blob(2, stored).run());
    }
    return true;
}

Result<void> insert_message(Connection& db, const MessageRow& row) {
    auto message = db.prepare(
        "INSERT INTO messages(mailbox_id, uid, modseq, blob_id, size, internal_date, system_flags, keywords, "
        "email_id) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    if (!message) return message.error();
    message->bind(1, row.mailbox_id)
        .bind(2, row.uid)
        .bind(3, static_cast<std::int64_t>(row.modseq))
        .bind_text(4, row.blob_id)
        .bind(5, static_cast<std::int64_t>(row.size))
        .bind(6, row.internal_date)
        .bind(7, row.system_flags)
        .bind_text(8, row.keywords)
        .bind(9, row.email_id);
    return message->run();
}

std::string json_numbers(std::span<const std::uint32_t> numbers) {
    std::string json = "[";
    for (std::uint32_t n : numbers) {
        if (json.size() > 1) json += ',';
        json += std::to_string(n);
    }
    json += ']';
    return json;
}

std::string json_string(std::string_view text) {
    std::string json = "\"";
    for (char c : text) {
        auto byte = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            json += '\\';
            json += c;
        } else if (byte < 0x20) {
            json += fmt::format("\\u{:04x}", byte);
        } else {
            json += c;
        }
    }
    json += '"';
    return json;
}

Result<void> log_changes(Connection& db, std::int64_t mailbox_id, std::uint64_t modseq,
                         std::span<const std::uint32_t> uids, ChangeKind kind) {
    if (uids.empty()) return {};
    const std::string set = json_numbers(uids);
    if (kind != ChangeKind::appended) {
        auto prune = db.prepare(kind == ChangeKind::flags ? queries::kPruneFlagChanges : queries::kPruneAllChangesOf);
        if (!prune) return prune.error();
        MAGPIE_TRY(prune->bind(1, mailbox_id).bind_text(2, set).run());
    }
    auto insert = db.prepare(queries::kLogChanges);
    if (!insert) return insert.error();
    return insert->bind(1, mailbox_id)
        .bind(2, static_cast<std::int64_t>(modseq))
        .bind_text(3, set)
        .bind(4, static_cast<std::int64_t>(kind))
        .run();
}

Result<void> log_change(Connection& db, std::int64_t mailbox_id, std::uint64_t modseq, std::uint32_t uid,
                        ChangeKind kind) {
    if (kind != ChangeKind::appended) {
        // "flags" supersedes an older "flags"; "expunged" supersedes everything before it.
        auto prune = db.prepare(kind == ChangeKind::flags ? queries::kPruneFlagChange : queries::kPruneAllChanges);
        if (!prune) return prune.error();
        MAGPIE_TRY(prune->bind(1, mailbox_id).bind(2, uid).run());
    }
    auto change = db.prepare("INSERT INTO change_log(mailbox_id, modseq, uid, kind) VALUES(?1, ?2, ?3, ?4)");
    if (!change) return change.error();
    change->bind(1, mailbox_id)
        .bind(2, static_cast<std::int64_t>(modseq))
        .bind(3, uid)
        .bind(4, static_cast<std::int64_t>(kind));
    return change->run();
}

}  // namespace magpie::store::sqlite
