#include "store/sqlite/jmap_objects.h"

#include <algorithm>

#include <fmt/format.h>

#include "store/blob.h"
#include "store/sqlite/emails.h"
#include "store/sqlite/sqlite_store.h"

namespace magpie::store::sqlite {
namespace {

constexpr std::size_t kMaxTypeOctets = 100;  // MIME type of an upload, as given by the client
constexpr std::size_t kMaxObjectOctets = 1 << 20;  // one JMAP object's JSON text

Result<std::uint64_t> read_state(Connection& db, std::int64_t account_id, std::string_view type) {
    auto statement = db.prepare("SELECT state FROM jmap_states WHERE account_id = ?1 AND type = ?2");
    if (!statement) return statement.error();
    auto row = statement->bind(1, account_id).bind_text(2, type).step();
    if (!row) return row.error();
    return *row ? static_cast<std::uint64_t>(statement->column_int64(0)) : 0;
}

// Is there a live object of this account and type with this id?
Result<bool> live(Connection& db, std::int64_t account_id, std::string_view type, std::int64_t id) {
    auto statement = db.prepare(
        "SELECT 1 FROM jmap_objects WHERE id = ?1 AND account_id = ?2 AND type = ?3 AND destroyed = 0");
    if (!statement) return statement.error();
    return statement->bind(1, id).bind(2, account_id).bind_text(3, type).step();
}

UploadedBlob upload_from(const Statement& statement) {
    return UploadedBlob{statement.column_text(0), statement.column_text(1),
                        static_cast<std::uint64_t>(statement.column_int64(2)), statement.column_int64(3)};
}

}  // namespace

Result<UploadedBlob> SqliteStore::add_upload(std::int64_t account_id, std::string_view content, std::string_view type,
                                             std::int64_t now, std::int64_t expire_before) {
    if (content.size() > options_.max_message_bytes) {
        return make_error(Errc::limit_exceeded, fmt::format("an upload of {} octets is above {}", content.size(),
                                                            options_.max_message_bytes));
    }
    if (type.size() > kMaxTypeOctets) type = "application/octet-stream";
    UploadedBlob blob{blob_id_of(content), std::string(type), content.size(), now};
    return write<UploadedBlob>([&](Connection& db) -> Result<UploadedBlob> {
        auto expire = db.prepare("DELETE FROM uploads WHERE account_id = ?1 AND created_at < ?2");
        if (!expire) return expire.error();
        MAGPIE_TRY(expire->bind(1, account_id).bind(2, expire_before).run());
        // The same bytes again: the upload is refreshed (its type and time are the latest).
        auto insert = db.prepare(
            "INSERT INTO uploads(account_id, blob_id, type, size, created_at, content) VALUES(?1, ?2, ?3, ?4, ?5, ?6) "
            "ON CONFLICT(account_id, blob_id) DO UPDATE SET type = excluded.type, created_at = excluded.created_at");
        if (!insert) return insert.error();
        MAGPIE_TRY(insert->bind(1, account_id)
                       .bind_text(2, blob.blob_id)
                       .bind_text(3, blob.type)
                       .bind(4, static_cast<std::int64_t>(blob.size))
                       .bind(5, now)
                       .bind_blob(6, content)
                       .run());
        return blob;
    });
}

Result<UploadedBlob> SqliteStore::find_upload(std::int64_t account_id, std::string_view blob_id) {
    return read<UploadedBlob>([&](Connection& db) -> Result<UploadedBlob> {
        auto statement =
            db.prepare("SELECT blob_id, type, size, created_at FROM uploads WHERE account_id = ?1 AND blob_id = ?2");
        if (!statement) return statement.error();
        auto row = statement->bind(1, account_id).bind_text(2, blob_id).step();
        if (!row) return row.error();
        if (!*row) return make_error(Errc::not_found, "no such upload");
        return upload_from(*statement);
    });
}

Result<std::string> SqliteStore::read_account_blob(std::int64_t account_id, std::string_view blob_id) {
    if (!is_valid_blob_id(blob_id)) return make_error(Errc::not_found, "no such blob");
    auto upload = read<std::optional<std::string>>([&](Connection& db) -> Result<std::optional<std::string>> {
        auto statement = db.prepare("SELECT content FROM uploads WHERE account_id = ?1 AND blob_id = ?2");
        if (!statement) return statement.error();
        auto row = statement->bind(1, account_id).bind_text(2, blob_id).step();
        if (!row) return row.error();
        if (*row) return std::optional<std::string>(statement->column_text(0));
        // A message of the account: one of its Emails (emails_blob index).
        auto message = db.prepare(kAccountHoldsBlob);
        if (!message) return message.error();
        auto found = message->bind_text(1, blob_id).bind(2, account_id).step();
        if (!found) return found.error();
        if (!*found) return make_error(Errc::not_found, "no such blob");
        return std::optional<std::string>();
    });
    if (!upload) return upload.error();
    if (*upload) return std::move(**upload);
    return read_blob(blob_id);
}

Result<JmapObjectList> SqliteStore::list_jmap_objects(std::int64_t account_id, std::string_view type) {
    return read<JmapObjectList>([&](Connection& db) -> Result<JmapObjectList> {
        JmapObjectList list;
        auto state = read_state(db, account_id, type);
        if (!state) return state.error();
        list.state = *state;
        auto statement = db.prepare(
            "SELECT id, created_state, updated_state, destroyed, data FROM jmap_objects WHERE account_id = ?1 AND "
            "type = ?2 ORDER BY id");
        if (!statement) return statement.error();
        statement->bind(1, account_id).bind_text(2, type);
        for (;;) {
            auto row = statement->step();
            if (!row) return row.error();
            if (!*row) return list;
            list.objects.push_back(JmapObject{statement->column_int64(0),
                                              static_cast<std::uint64_t>(statement->column_int64(1)),
                                              static_cast<std::uint64_t>(statement->column_int64(2)),
                                              statement->column_int64(3) != 0, statement->column_text(4)});
        }
    });
}

Result<JmapObjectWritten> SqliteStore::write_jmap_objects(std::int64_t account_id, std::string_view type,
                                                          const JmapObjectWrite& change) {
    if (type.empty() || type.size() > kMaxTypeOctets) return make_error(Errc::invalid_argument, "bad object type");
    auto too_big = [](const std::string& data) { return data.size() > kMaxObjectOctets; };
    if (std::ranges::any_of(change.create, too_big) ||
        std::ranges::any_of(change.update, [&](const auto& u) { return too_big(u.second); })) {
        return make_error(Errc::limit_exceeded, fmt::format("a JMAP object above {} octets", kMaxObjectOctets));
    }
    return write<JmapObjectWritten>([&](Connection& db, Changes& changes) -> Result<JmapObjectWritten> {
        JmapObjectWritten written;
        auto state = read_state(db, account_id, type);
        if (!state) return state.error();
        written.old_state = written.new_state = *state;
        if (change.if_in_state && *change.if_in_state != *state) {
            written.state_mismatch = true;
            return written;
        }
        const std::uint64_t next = *state + 1;
        bool changed = false;
        for (const auto& data : change.create) {
            auto insert = db.prepare(
                "INSERT INTO jmap_objects(account_id, type, created_state, updated_state, data) VALUES(?1, ?2, ?3, ?3, ?4)");
            if (!insert) return insert.error();
            MAGPIE_TRY(insert->bind(1, account_id).bind_text(2, type).bind(3, static_cast<std::int64_t>(next))
                           .bind_text(4, data).run());
            written.created.push_back(db.last_insert_rowid());
            changed = true;
        }
        for (const auto& [id, data] : change.update) {
            auto found = live(db, account_id, type, id);
            if (!found) return found.error();
            if (!*found) {
                written.missing.push_back(id);
                continue;
            }
            auto update = db.prepare("UPDATE jmap_objects SET data = ?2, updated_state = ?3 WHERE id = ?1");
            if (!update) return update.error();
            MAGPIE_TRY(update->bind(1, id).bind_text(2, data).bind(3, static_cast<std::int64_t>(next)).run());
            changed = true;
        }
        for (std::int64_t id : change.destroy) {
            auto found = live(db, account_id, type, id);
            if (!found) return found.error();
            if (!*found) {
                written.missing.push_back(id);
                continue;
            }
            // A tombstone keeps no data: /changes needs only its id and state.
            auto destroy =
                db.prepare("UPDATE jmap_objects SET destroyed = 1, data = '{}', updated_state = ?2 WHERE id = ?1");
            if (!destroy) return destroy.error();
            MAGPIE_TRY(destroy->bind(1, id).bind(2, static_cast<std::int64_t>(next)).run());
            changed = true;
        }
        if (!changed) return written;
        auto bump = db.prepare(
            "INSERT INTO jmap_states(account_id, type, state) VALUES(?1, ?2, ?3) "
            "ON CONFLICT(account_id, type) DO UPDATE SET state = excluded.state");
        if (!bump) return bump.error();
        MAGPIE_TRY(bump->bind(1, account_id).bind_text(2, type).bind(3, static_cast<std::int64_t>(next)).run());
        written.new_state = next;
        // Push (RFC 8620 7) wakes on the listener: keyed below every mailbox id, told as mailbox 0.
        changes[-account_id] = MailboxChange{account_id, 0};
        return written;
    });
}

Result<void> SqliteStore::set_special_use(std::int64_t account_id, std::int64_t mailbox_id, SpecialUse special_use) {
    return write<void>([&](Connection& db) -> Result<void> {
        auto statement = db.prepare("UPDATE mailboxes SET special_use = ?3 WHERE id = ?1 AND account_id = ?2");
        if (!statement) return statement.error();
        MAGPIE_TRY(statement->bind(1, mailbox_id).bind(2, account_id).bind(3, static_cast<std::int64_t>(special_use)).run());
        if (db.changes() == 0) return make_error(Errc::not_found, fmt::format("no mailbox {}", mailbox_id));
        return {};
    });
}

}  // namespace magpie::store::sqlite
