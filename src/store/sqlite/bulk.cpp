#include "store/sqlite/bulk.h"

#include <string>

#include <fmt/format.h>

#include "store/blob.h"
#include "store/sqlite/db.h"
#include "store/sqlite/emails.h"
#include "store/sqlite/rows.h"
#include "store/store.h"

namespace magpie::store::sqlite {

Result<std::uint32_t> bulk_append(const std::filesystem::path& data_dir, const BulkFill& fill) {
    constexpr int kBusyTimeoutMs = 60000;
    constexpr std::int64_t kInternalDate = 1'700'000'000;
    if (fill.count == 0) return make_error(Errc::invalid_argument, "nothing to append");
    auto opened = Connection::open(data_dir / "magpie.db", Connection::Mode::read_write_create, kBusyTimeoutMs);
    if (!opened) return opened.error();
    Connection& db = **opened;
    MAGPIE_TRY(db.exec("PRAGMA foreign_keys = ON"));
    auto transaction = Transaction::begin(db);
    if (!transaction) return transaction.error();

    MessageSummary summary;
    summary.subject = "bulk";
    summary.from = "bulk@remote.test";
    const std::string content =
        fmt::format("From: {}\r\nSubject: {}\r\n\r\n{}\r\n", summary.from, summary.subject, std::string(fill.body_bytes, 'x'));
    const std::string blob_id = blob_id_of(content);
    MAGPIE_TRY(insert_blob(db, blob_id, content.size(), kLocationInline, summary, content));

    auto mailbox = select_mailbox(db, fill.mailbox_id);
    if (!mailbox) return mailbox.error();
    const std::uint64_t last_uid = std::uint64_t{mailbox->uidnext} + fill.count - 1;
    if (last_uid >= 0xffffffffULL) return make_error(Errc::limit_exceeded, "not enough UIDs left");

    // Rows n = 0..count-1 get uid uidnext + n and modseq highest_modseq + 1 + n.
    constexpr const char* kSeries = "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1) ";
    // One Email per message, each its own thread, ids first_email + i (one statement assigns them in order).
    auto first_email = reserve_email_ids(db, static_cast<std::int64_t>(fill.count));
    if (!first_email) return first_email.error();
    auto emails = db.prepare(std::string(kSeries) +
                             "INSERT INTO emails(id, account_id, blob_id, thread_id, internal_date, sent_at, size, "
                             "system_flags, keywords, message_id, base_subject) "
                             "SELECT ?2 + i, ?3, ?4, ?2 + i, ?5, 0, ?6, ?7, '', '', 'bulk' FROM n");
    if (!emails) return emails.error();
    MAGPIE_TRY(emails->bind(1, fill.count)
                   .bind(2, *first_email)
                   .bind(3, mailbox->account_id)
                   .bind_text(4, blob_id)
                   .bind(5, kInternalDate)
                   .bind(6, static_cast<std::int64_t>(content.size()))
                   .bind(7, fill.system_flags & ~kMembershipFlags)
                   .run());
    auto messages = db.prepare(std::string(kSeries) +
                               "INSERT INTO messages(mailbox_id, uid, modseq, blob_id, size, internal_date, "
                               "system_flags, keywords, email_id) SELECT ?2, ?3 + i, ?4 + 1 + i, ?5, ?6, ?7, ?8, '', "
                               "?9 + i FROM n");
    if (!messages) return messages.error();
    MAGPIE_TRY(messages->bind(1, fill.count)
                   .bind(2, fill.mailbox_id)
                   .bind(3, mailbox->uidnext)
                   .bind(4, static_cast<std::int64_t>(mailbox->highest_modseq))
                   .bind_text(5, blob_id)
                   .bind(6, static_cast<std::int64_t>(content.size()))
                   .bind(7, kInternalDate)
                   .bind(8, fill.system_flags)
                   .bind(9, *first_email)
                   .run());
    auto log = db.prepare(std::string(kSeries) +
                          "INSERT INTO change_log(mailbox_id, modseq, uid, kind) SELECT ?2, ?4 + 1 + i, ?3 + i, ?5 FROM n");
    if (!log) return log.error();
    MAGPIE_TRY(log->bind(1, fill.count)
                   .bind(2, fill.mailbox_id)
                   .bind(3, mailbox->uidnext)
                   .bind(4, static_cast<std::int64_t>(mailbox->highest_modseq))
                   .bind(5, static_cast<std::int64_t>(ChangeKind::appended))
                   .run());
    auto counters = db.prepare(
        "UPDATE mailboxes SET uidnext = uidnext + ?2, highest_modseq = highest_modseq + ?2 WHERE id = ?1");
    if (!counters) return counters.error();
    MAGPIE_TRY(counters->bind(1, fill.mailbox_id).bind(2, fill.count).run());
    CounterDelta delta;
    delta.count(static_cast<int>(fill.count), fill.system_flags, content.size(), /*recent=*/true);
    MAGPIE_TRY(apply_counters(db, fill.mailbox_id, delta));
    MAGPIE_TRY(transaction->commit());
    return static_cast<std::uint32_t>(last_uid);
}

}  // namespace magpie::store::sqlite
