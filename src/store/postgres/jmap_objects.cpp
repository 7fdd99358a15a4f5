// The JMAP tables of the PostgreSQL backend (the twin of store/sqlite/jmap_objects.cpp, schema step 8):
// uploads, the account's readable blobs, JMAP-only objects with their per-(account, type) state, and
// Mailbox roles. Object writes take the (account, type) state row's lock first, so two nodes writing one
// type of one account take turns and never hand out one state twice.
#include <algorithm>

#include <fmt/format.h>

#include "base/strings.h"
#include "store/blob.h"
#include "store/postgres/pipeline.h"
#include "store/postgres/postgres_store.h"
#include "store/postgres/rows.h"

namespace magpie::store::postgres {
namespace {

constexpr std::size_t kMaxTypeOctets = 100;        // MIME type of an upload, as given by the client
constexpr std::size_t kMaxObjectOctets = 1 << 20;  // one JMAP object's JSON text

UploadedBlob upload_from(const Rows& rows, int row) {
    return UploadedBlob{rows.text(row, 0), rows.text(row, 1), static_cast<std::uint64_t>(rows.int64(row, 2)),
                        rows.int64(row, 3)};
}

}  // namespace

Result<UploadedBlob> PostgresStore::add_upload(std::int64_t account_id, std::string_view content, std::string_view type,
                                               std::int64_t now, std::int64_t expire_before) {
    if (content.size() > options_.max_message_bytes) {
        return make_error(Errc::limit_exceeded, fmt::format("an upload of {} octets is above {}", content.size(),
                                                            options_.max_message_bytes));
    }
    // A text column takes UTF-8 only; a type that is not (or too long) is no type worth keeping.
    if (type.size() > kMaxTypeOctets || !is_valid_utf8(type) || type.find('\0') != std::string_view::npos) {
        type = "application/octet-stream";
    }
    UploadedBlob blob{blob_id_of(content), std::string(type), content.size(), now};
    return write<UploadedBlob>([&](Connection& db) -> Result<UploadedBlob> {
        auto expire = db.exec("DELETE FROM uploads WHERE account_id = $1 AND created_at < $2",
                              Params().add(account_id).add(expire_before));
        if (!expire) return expire.error();
        // The same bytes again: the upload is refreshed (its type and time are the latest). The bytes go in
        // binary, borrowed from the caller.
        auto insert = db.exec(
            "INSERT INTO uploads(account_id, blob_id, type, size, created_at, content) VALUES($1, $2, $3, $4, $5, $6) "
            "ON CONFLICT(account_id, blob_id) DO UPDATE SET type = excluded.type, created_at = excluded.created_at",
            Params()
                .add(account_id)
                .add(blob.blob_id)
                .add(blob.type)
                .add(static_cast<std::int64_t>(blob.size))
                .add(now)
                .add_bytes(content));
        if (!insert) return insert.error();
        return blob;
    });
}

Result<UploadedBlob> PostgresStore::find_upload(std::int64_t account_id, std::string_view blob_id) {
    return read<UploadedBlob>([&](Connection& db) -> Result<UploadedBlob> {
        auto rows = db.exec("SELECT blob_id, type, size, created_at FROM uploads WHERE account_id = $1 AND blob_id = $2",
                            Params().add(account_id).add(blob_id));
        if (!rows) return rows.error();
        if (rows->empty()) return make_error(Errc::not_found, "no such upload");
        return upload_from(*rows, 0);
    });
}

Result<std::string> PostgresStore::read_account_blob(std::int64_t account_id, std::string_view blob_id) {
    if (!is_valid_blob_id(blob_id)) return make_error(Errc::not_found, "no such blob");
    auto upload = read<std::optional<std::string>>([&](Connection& db) -> Result<std::optional<std::string>> {
        auto rows = db.exec("SELECT content FROM uploads WHERE account_id = $1 AND blob_id = $2",
                            Params().add(account_id).add(blob_id), /*binary_results=*/true);
        if (!rows) return rows.error();
        if (!rows->empty()) return std::optional<std::string>(std::string(rows->raw(0, 0)));
        // A message of the account: one of its Emails (emails_blob index).
        auto message = db.exec("SELECT 1 FROM emails WHERE blob_id = $1 AND account_id = $2 LIMIT 1",
            Params().add(blob_id).add(account_id));
        if (!message) return message.error();
        if (message->empty()) return make_error(Errc::not_found, "no such blob");
        return std::optional<std::string>();
    });
    if (!upload) return upload.error();
    if (*upload) return std::move(**upload);
    return read_blob(blob_id);
}

Result<JmapObjectList> PostgresStore::list_jmap_objects(std::int64_t account_id, std::string_view type) {
    // One statement (the SMTP path asks for the vacation response of every recipient): the type's state on
    // every row, and one row with no object when there is none.
    auto rows = read_statement(
        pool_,
        "SELECT coalesce((SELECT state FROM jmap_states WHERE account_id = $1 AND type = $2), 0), o.id, "
        "o.created_state, o.updated_state, o.destroyed, o.data FROM (SELECT 1) one LEFT JOIN jmap_objects o "
        "ON o.account_id = $1 AND o.type = $2 ORDER BY o.id",
        Params().add(account_id).add(type));
    if (!rows) return rows.error();
    JmapObjectList list;
    for (int i = 0; i < rows->size(); ++i) {
        list.state = static_cast<std::uint64_t>(rows->int64(i, 0));
        if (rows->null(i, 1)) continue;
        list.objects.push_back(JmapObject{rows->int64(i, 1), static_cast<std::uint64_t>(rows->int64(i, 2)),
                                          static_cast<std::uint64_t>(rows->int64(i, 3)), rows->boolean(i, 4),
                                          rows->text(i, 5)});
    }
    return list;
}

Result<JmapObjectWritten> PostgresStore::write_jmap_objects(std::int64_t account_id, std::string_view type,
                                                            const JmapObjectWrite& change) {
    if (type.empty() || type.size() > kMaxTypeOctets || !is_valid_utf8(type)) {
        return make_error(Errc::invalid_argument, "bad object type");
    }
    auto too_big = [](const std::string& data) { return data.size() > kMaxObjectOctets; };
    if (std::ranges::any_of(change.create, too_big) ||
        std::ranges::any_of(change.update, [&](const auto& u) { return too_big(u.second); })) {
        return make_error(Errc::limit_exceeded, fmt::format("a JMAP object above {} octets", kMaxObjectOctets));
    }
    auto not_text = [](const std::string& data) { return !is_valid_utf8(data) || data.find('\0') != std::string::npos; };
    if (std::ranges::any_of(change.create, not_text) ||
        std::ranges::any_of(change.update, [&](const auto& u) { return not_text(u.second); })) {
        return make_error(Errc::invalid_argument, "a JMAP object is not UTF-8 JSON text");
    }
    return write<JmapObjectWritten>([&](Connection& db, Changes& changes) -> Result<JmapObjectWritten> {
        JmapObjectWritten written;
        // The state row, made when missing and then locked: the counter of this account and type is read and
        // advanced by one writer at a time, whichever node it runs on.
        auto made = db.exec("INSERT INTO jmap_states(account_id, type, state) VALUES($1, $2, 0) ON CONFLICT DO NOTHING",
                            Params().add(account_id).add(type));
        if (!made) {
            if (made.error().code == Errc::not_found || made.error().message.find("23503") != std::string::npos) {
                return make_error(Errc::not_found, fmt::format("no account {}", account_id));
            }
            return made.error();
        }
        auto state_rows = db.exec("SELECT state FROM jmap_states WHERE account_id = $1 AND type = $2 FOR UPDATE",
                                  Params().add(account_id).add(type));
        if (!state_rows) return state_rows.error();
        const auto state = static_cast<std::uint64_t>(state_rows->int64(0, 0));
        written.old_state = written.new_state = state;
        if (change.if_in_state && *change.if_in_state != state) {
            written.state_mismatch = true;
            return written;
        }
        const auto next = static_cast<std::int64_t>(state + 1);
        bool changed = false;
        for (const auto& data : change.create) {
            auto insert = db.exec(
                "INSERT INTO jmap_objects(account_id, type, created_state, updated_state, data) VALUES($1, $2, $3, $3, $4) "
                "RETURNING id",
                Params().add(account_id).add(type).add(next).add(data));
            if (!insert) return insert.error();
            written.created.push_back(insert->int64(0, 0));
            changed = true;
        }
        for (const auto& [id, data] : change.update) {
            auto update = db.exec(
                "UPDATE jmap_objects SET data = $4, updated_state = $5 WHERE id = $1 AND account_id = $2 AND type = $3 "
                "AND NOT destroyed",
                Params().add(id).add(account_id).add(type).add(data).add(next));
            if (!update) return update.error();
            if (update->affected() == 0) {
                written.missing.push_back(id);
                continue;
            }
            changed = true;
        }
        for (std::int64_t id : change.destroy) {
            // A tombstone keeps no data: /changes needs only its id and state.
            auto destroy = db.exec(
                "UPDATE jmap_objects SET destroyed = true, data = '{}', updated_state = $4 WHERE id = $1 AND "
                "account_id = $2 AND type = $3 AND NOT destroyed",
                Params().add(id).add(account_id).add(type).add(next));
            if (!destroy) return destroy.error();
            if (destroy->affected() == 0) {
                written.missing.push_back(id);
                continue;
            }
            changed = true;
        }
        if (!changed) return written;
        auto bump = db.exec("UPDATE jmap_states SET state = $3 WHERE account_id = $1 AND type = $2",
                            Params().add(account_id).add(type).add(next));
        if (!bump) return bump.error();
        written.new_state = static_cast<std::uint64_t>(next);
        // Push (RFC 8620 7) wakes on the listener, here and on the other nodes (NOTIFY): keyed below every
        // mailbox id, told as mailbox 0, modseq 0.
        changes[-account_id] = MailboxChange{account_id, 0};
        return written;
    });
}

Result<void> PostgresStore::set_special_use(std::int64_t account_id, std::int64_t mailbox_id, SpecialUse special_use) {
    return write<void>([&](Connection& db) -> Result<void> {
        auto done = db.exec("UPDATE mailboxes SET special_use = $3 WHERE id = $1 AND account_id = $2",
                            Params().add(mailbox_id).add(account_id).add(static_cast<std::int64_t>(special_use)));
        if (!done) return done.error();
        if (done->affected() == 0) return make_error(Errc::not_found, fmt::format("no mailbox {}", mailbox_id));
        return {};
    });
}

}  // namespace magpie::store::postgres
