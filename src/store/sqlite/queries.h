// The SQL of the store's hot write paths (STORE, EXPUNGE, COPY/MOVE on many messages), named so that a test
// can check their query plans with EXPLAIN QUERY PLAN: each walks an index by (mailbox_id, uid) or by the
// partial \Deleted index, never a scan of a mailbox's messages or change log. A chunk's writes are a few
// set-based statements over JSON arrays, not a few statements per message: the per-message work stays in
// SQLite's own loop (and a PostgreSQL backend does the same with arrays, in one round trip each). A UID set is bound as one
// JSON array of [first, last] ranges (uid_ranges_json in rows.h); CROSS JOIN keeps json_each outermost, so
// the index is walked once per range and rows come out in ascending UID order.
#pragma once

#include "store/flags.h"
#include "store/sqlite/schema.h"

namespace magpie::store::sqlite::queries {

static_assert(static_cast<int>(ChangeKind::flags) == 2 && static_cast<int>(ChangeKind::expunged) == 3,
              "the queries name change kinds by number");
static_assert(flag_deleted == 8, "kDeletedAfter and the messages_deleted index name \\Deleted by number");

// ?1 mailbox, ?2 ranges: what a flag change needs of each message.
inline constexpr const char* kFlagsOfUids =
    "SELECT m.id, m.uid, m.system_flags, m.keywords, m.modseq, m.size, m.email_id FROM json_each(?2) r "
    "CROSS JOIN messages m "
    "WHERE m.mailbox_id = ?1 AND m.uid BETWEEN json_extract(r.value, '$[0]') AND json_extract(r.value, '$[1]')";

// ?1 new modseq, ?2 JSON [[row id, system flags, "keywords"], ...]: one statement for a chunk's changes.
inline constexpr const char* kSetFlags =
    "UPDATE messages SET system_flags = json_extract(j.value, '$[1]'), keywords = json_extract(j.value, '$[2]'), "
    "modseq = ?1 FROM json_each(?2) j WHERE messages.id = json_extract(j.value, '$[0]')";

// ?1 mailbox, ?2 uid: the change-log rows a new "flags" (kind 2) or "expunged" row supersedes.
inline constexpr const char* kPruneFlagChange = "DELETE FROM change_log WHERE mailbox_id = ?1 AND uid = ?2 AND kind = 2";
inline constexpr const char* kPruneAllChanges = "DELETE FROM change_log WHERE mailbox_id = ?1 AND uid = ?2";
// The same for a JSON array of UIDs (?2), and the new rows for them: ?1 mailbox, ?2 modseq, ?3 UIDs, ?4 kind.
inline constexpr const char* kPruneFlagChanges =
    "DELETE FROM change_log WHERE mailbox_id = ?1 AND kind = 2 AND uid IN (SELECT value FROM json_each(?2))";
inline constexpr const char* kPruneAllChangesOf =
    "DELETE FROM change_log WHERE mailbox_id = ?1 AND uid IN (SELECT value FROM json_each(?2))";
inline constexpr const char* kLogChanges =
    "INSERT INTO change_log(mailbox_id, modseq, uid, kind) SELECT ?1, ?2, value, ?4 FROM json_each(?3)";

// ?1 mailbox, ?2 last uid seen, ?3 chunk size: the next \Deleted messages (flag bit 8, the partial index).
inline constexpr const char* kDeletedAfter =
    "SELECT uid, size, system_flags, email_id FROM messages WHERE mailbox_id = ?1 AND (system_flags & 8) <> 0 "
    "AND uid > ?2 "
    "ORDER BY uid LIMIT ?3";

// ?1 mailbox, ?2 JSON array of UIDs.
inline constexpr const char* kDeleteMessages =
    "DELETE FROM messages WHERE mailbox_id = ?1 AND uid IN (SELECT value FROM json_each(?2))";

// ?1 mailbox, ?2 ranges: what a copy needs of each source message.
inline constexpr const char* kCopySources =
    "SELECT m.uid, m.blob_id, m.size, m.internal_date, m.system_flags, m.keywords, m.email_id FROM json_each(?2) r "
    "CROSS JOIN messages m WHERE m.mailbox_id = ?1 "
    "AND m.uid BETWEEN json_extract(r.value, '$[0]') AND json_extract(r.value, '$[1]')";

// ?1 mailbox, ?2 modseq: UIDs expunged after it (QRESYNC VANISHED, and every IMAP command's update check).
// "+uid": ordered by a sort of the few rows found, so the primary key's (mailbox_id, modseq) range is walked;
// ordered by the index on (mailbox_id, uid, kind), every change ever logged in the mailbox was (issue 17).
inline constexpr const char* kExpungedSince =
    "SELECT uid FROM change_log WHERE mailbox_id = ?1 AND kind = 3 AND modseq > ?2 ORDER BY +uid";

// ?1 JSON [[email id, system flags, "keywords"], ...]: an Email's flags, written with its memberships'.
inline constexpr const char* kSetEmailFlags =
    "UPDATE emails SET system_flags = json_extract(j.value, '$[1]'), keywords = json_extract(j.value, '$[2]') "
    "FROM json_each(?1) j WHERE emails.id = json_extract(j.value, '$[0]')";

// ?1 the same JSON, ?2 a mailbox: the Emails' memberships in other mailboxes, with the new flags.
inline constexpr const char* kOtherMemberships =
    "SELECT m.id, m.mailbox_id, m.uid, m.system_flags, m.size, json_extract(j.value, '$[1]'), "
    "json_extract(j.value, '$[2]'), m.keywords, m.email_id FROM json_each(?1) j CROSS JOIN messages m "
    "WHERE m.email_id = json_extract(j.value, '$[0]') AND m.mailbox_id <> ?2";

// ?1 mailbox: SELECT and FETCH FLAGS.
inline constexpr const char* kStates =
    "SELECT uid, modseq, system_flags, keywords FROM messages WHERE mailbox_id = ?1 ORDER BY uid";
// ?1 mailbox, ?2 modseq: the same for the messages changed or arrived after it (the (mailbox_id, modseq)
// index, then a sort of the few rows found).
inline constexpr const char* kStatesChangedSince =
    "SELECT uid, modseq, system_flags, keywords FROM messages WHERE mailbox_id = ?1 AND modseq > ?2 ORDER BY +uid";

inline constexpr const char* kAll[] = {kFlagsOfUids,      kSetFlags,          kPruneFlagChange, kPruneAllChanges,
                                       kPruneFlagChanges, kPruneAllChangesOf, kLogChanges,      kDeletedAfter,
                                       kDeleteMessages,   kCopySources,       kExpungedSince,   kStates,
                                       kStatesChangedSince, kSetEmailFlags,   kOtherMemberships};

}  // namespace magpie::store::sqlite::queries
