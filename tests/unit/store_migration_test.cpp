// Schema migrations: a store written by an older magpie, built here from that version's exact DDL (frozen
// below, never edited), opens with this code, migrates, keeps its data and passes check_store.
#include <sqlite3.h>

#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "store/blob.h"
#include "store/store.h"
#include "store_test_support.h"

namespace magpie::store {
namespace {

// Schema version 1 exactly as magpie shipped it (src/store/sqlite/schema.cpp before version 3).
constexpr const char* kFrozenSchemaV1 = R"sql(
CREATE TABLE meta(
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE domains(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE
);

CREATE TABLE accounts(
  id INTEGER PRIMARY KEY,
  domain_id INTEGER NOT NULL REFERENCES domains(id) ON DELETE RESTRICT,
  address TEXT NOT NULL UNIQUE,
  password_hash TEXT NOT NULL,
  scram_salt BLOB NOT NULL,
  scram_iterations INTEGER NOT NULL,
  scram_stored_key BLOB NOT NULL,
  scram_server_key BLOB NOT NULL,
  disabled INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);
CREATE INDEX accounts_domain ON accounts(domain_id);

CREATE TABLE aliases(
  id INTEGER PRIMARY KEY,
  domain_id INTEGER NOT NULL REFERENCES domains(id) ON DELETE RESTRICT,
  address TEXT NOT NULL UNIQUE,
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE
);
CREATE INDEX aliases_domain ON aliases(domain_id);
CREATE INDEX aliases_account ON aliases(account_id);

CREATE TABLE mailboxes(
  id INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  uidvalidity INTEGER NOT NULL,
  uidnext INTEGER NOT NULL DEFAULT 1,
  highest_modseq INTEGER NOT NULL DEFAULT 0,
  special_use INTEGER NOT NULL DEFAULT 0,
  subscribed INTEGER NOT NULL DEFAULT 1,
  message_count INTEGER NOT NULL DEFAULT 0,
  total_size INTEGER NOT NULL DEFAULT 0,
  UNIQUE(account_id, name)
);

CREATE TABLE blobs(
  id TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  location INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  subject TEXT NOT NULL,
  from_header TEXT NOT NULL,
  to_header TEXT NOT NULL,
  cc_header TEXT NOT NULL,
  date_header TEXT NOT NULL,
  message_id TEXT NOT NULL,
  in_reply_to TEXT NOT NULL,
  refs TEXT NOT NULL,
  structure BLOB NOT NULL
);

CREATE TABLE blob_contents(
  blob_id TEXT PRIMARY KEY REFERENCES blobs(id) ON DELETE CASCADE,
  content BLOB NOT NULL
);

CREATE TABLE messages(
  id INTEGER PRIMARY KEY,
  mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
  uid INTEGER NOT NULL,
  modseq INTEGER NOT NULL,
  blob_id TEXT NOT NULL REFERENCES blobs(id),
  size INTEGER NOT NULL,
  internal_date INTEGER NOT NULL,
  system_flags INTEGER NOT NULL DEFAULT 0,
  keywords TEXT NOT NULL DEFAULT '',
  UNIQUE(mailbox_id, uid)
);
CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);
CREATE INDEX messages_blob ON messages(blob_id);

CREATE TABLE change_log(
  mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
  modseq INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  PRIMARY KEY(mailbox_id, modseq, uid)
) WITHOUT ROWID;
CREATE INDEX change_log_uid ON change_log(mailbox_id, uid);
)sql";

// Version 2 added the DSN envelopes on top of version 1.
constexpr const char* kFrozenSchemaV2 = R"sql(
CREATE TABLE envelopes(
  id INTEGER PRIMARY KEY,
  received_at INTEGER NOT NULL,
  blob_id TEXT NOT NULL,
  reverse_path TEXT NOT NULL,
  dsn_ret TEXT NOT NULL,
  dsn_envid TEXT NOT NULL
);
CREATE TABLE envelope_recipients(
  envelope_id INTEGER NOT NULL REFERENCES envelopes(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  address TEXT NOT NULL,
  notify TEXT NOT NULL,
  orcpt TEXT NOT NULL,
  PRIMARY KEY(envelope_id, position)
) WITHOUT ROWID;
)sql";


// Versions 3 to 5 as magpie shipped them (counters and subscriptions; the queue tables of version 4; the API
// tokens of version 5), applied on top of version 2's tables and rows.
constexpr const char* kFrozenSchemaV3toV5 = R"sql(
ALTER TABLE mailboxes ADD COLUMN unseen_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN deleted_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN deleted_size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN recent_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN first_recent_uid INTEGER NOT NULL DEFAULT 1;

CREATE TABLE subscriptions(
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  PRIMARY KEY(account_id, name)
) WITHOUT ROWID;
INSERT INTO subscriptions(account_id, name) SELECT account_id, name FROM mailboxes WHERE subscribed <> 0;
ALTER TABLE mailboxes DROP COLUMN subscribed;

UPDATE mailboxes SET
  unseen_count = (SELECT count(*) FROM messages m WHERE m.mailbox_id = mailboxes.id AND (m.system_flags & 1) = 0),
  deleted_count = (SELECT count(*) FROM messages m WHERE m.mailbox_id = mailboxes.id AND (m.system_flags & 8) <> 0),
  deleted_size = (SELECT coalesce(sum(m.size), 0) FROM messages m
                  WHERE m.mailbox_id = mailboxes.id AND (m.system_flags & 8) <> 0),
  first_recent_uid = uidnext,
  highest_modseq = max(highest_modseq, 1);

DROP INDEX change_log_uid;
CREATE INDEX change_log_uid_kind ON change_log(mailbox_id, uid, kind);
CREATE INDEX messages_deleted ON messages(mailbox_id, uid) WHERE (system_flags & 8) <> 0;
CREATE INDEX messages_unseen ON messages(mailbox_id, uid) WHERE (system_flags & 1) = 0;

CREATE TABLE queue_messages(
  id INTEGER PRIMARY KEY,
  blob_id TEXT NOT NULL REFERENCES blobs(id),
  reverse_path TEXT NOT NULL,
  dsn_ret TEXT NOT NULL,
  dsn_envid TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX queue_messages_blob ON queue_messages(blob_id);

CREATE TABLE queue_recipients(
  id INTEGER PRIMARY KEY,
  message_id INTEGER NOT NULL REFERENCES queue_messages(id) ON DELETE CASCADE,
  address TEXT NOT NULL,
  notify TEXT NOT NULL,
  orcpt TEXT NOT NULL,
  state INTEGER NOT NULL,
  last_reply TEXT NOT NULL DEFAULT '',
  next_attempt_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  lease_owner TEXT NOT NULL DEFAULT '',
  lease_expires_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX queue_recipients_message ON queue_recipients(message_id);
CREATE INDEX queue_recipients_due ON queue_recipients(next_attempt_at) WHERE state IN (0, 1);

CREATE TABLE queue_attempts(
  id INTEGER PRIMARY KEY,
  recipient_id INTEGER NOT NULL REFERENCES queue_recipients(id) ON DELETE CASCADE,
  at INTEGER NOT NULL,
  host TEXT NOT NULL,
  address TEXT NOT NULL,
  tls TEXT NOT NULL,
  reply TEXT NOT NULL,
  transcript TEXT NOT NULL
);
CREATE INDEX queue_attempts_recipient ON queue_attempts(recipient_id);

CREATE INDEX envelopes_blob ON envelopes(blob_id);

CREATE TABLE api_tokens(
  id INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  token_hash BLOB NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  UNIQUE(account_id, name)
);
)sql";

// Rows a version 5 store held in its queue: one entry with a deferred and a delivered recipient and an attempt.
constexpr const char* kVersion5Queue = R"sql(
INSERT INTO queue_messages(id, blob_id, reverse_path, dsn_ret, dsn_envid, created_at)
  SELECT 1, id, 'bob@example.test', 'HDRS', '', 1700000000 FROM blobs ORDER BY id LIMIT 1;
INSERT INTO queue_recipients(id, message_id, address, notify, orcpt, state, last_reply, next_attempt_at, attempts)
  VALUES (1, 1, 'a@remote.test', '', '', 1, '451 later', 1700000900, 2),
         (2, 1, 'b@remote.test', '', '', 2, '250 ok', 0, 1);
INSERT INTO queue_attempts(recipient_id, at, host, address, tls, reply, transcript)
  VALUES (1, 1700000300, 'mx.remote.test', '192.0.2.1:25', '', '451 later', 'S: 451 later');
)sql";

class MigrationTest : public ::testing::Test {
protected:
    // Builds a database at `version` (1, 2 or 5) with what that version's code wrote: bob with two default
    // mailboxes (INBOX subscribed, Trash unsubscribed), a mailbox that never had mail, and three INBOX
    // messages (one \Seen, one \Deleted) whose change log and counters are as the old code kept them.
    void build_old_store(int version) {
        std::filesystem::create_directories(dir_.path() / "blobs");
        const std::string one = "From: a@remote.test\r\n\r\none\r\n";
        const std::string two = "From: a@remote.test\r\n\r\ntwo, longer\r\n";
        const std::string three = "From: a@remote.test\r\n\r\nthree\r\n";
        std::string sql = kFrozenSchemaV1;
        if (version >= 2) sql += kFrozenSchemaV2;
        sql += fmt::format(R"sql(
PRAGMA user_version = {0};
INSERT INTO meta(key, value) VALUES('last_uidvalidity', 1700000003);
INSERT INTO domains(id, name) VALUES(1, 'example.test');
INSERT INTO accounts(id, domain_id, address, password_hash, scram_salt, scram_iterations, scram_stored_key,
  scram_server_key, disabled, created_at) VALUES(1, 1, 'bob@example.test', 'hash', x'00', 4096, x'01', x'02', 0, 0);
INSERT INTO mailboxes(id, account_id, name, uidvalidity, uidnext, highest_modseq, special_use, subscribed,
  message_count, total_size) VALUES
  (1, 1, 'INBOX', 1700000001, 4, 4, 0, 1, 3, {1}),
  (2, 1, 'Trash', 1700000002, 1, 0, 3, 0, 0, 0),
  (3, 1, 'Projects', 1700000003, 1, 0, 0, 1, 0, 0);
INSERT INTO blobs VALUES('{2}', {5}, 0, 0, 's', 'f', 't', '', 'd', '<1@x>', '', '', x''),
  ('{3}', {6}, 0, 0, 's', 'f', 't', '', 'd', '<2@x>', '', '', x''),
  ('{4}', {7}, 0, 0, 's', 'f', 't', '', 'd', '<3@x>', '', '', x'');
INSERT INTO blob_contents VALUES('{2}', CAST('{8}' AS BLOB)), ('{3}', CAST('{9}' AS BLOB)),
  ('{4}', CAST('{10}' AS BLOB));
INSERT INTO messages(mailbox_id, uid, modseq, blob_id, size, internal_date, system_flags, keywords) VALUES
  (1, 1, 4, '{2}', {5}, 1700000000, 1, ''),
  (1, 2, 2, '{3}', {6}, 1700000000, 8, 'Work'),
  (1, 3, 3, '{4}', {7}, 1700000000, 0, '');
INSERT INTO change_log(mailbox_id, modseq, uid, kind) VALUES (1, 1, 1, 1), (1, 2, 2, 1), (1, 3, 3, 1), (1, 4, 1, 2);
)sql",
                           version, one.size() + two.size() + three.size(), blob_id_of(one), blob_id_of(two),
                           blob_id_of(three), one.size(), two.size(), three.size(), one, two, three);
        // Version 5: the rows above went through steps 3 to 5 (as an upgraded store's did), then the queue
        // got an entry.
        if (version == 5) sql += std::string(kFrozenSchemaV3toV5) + kVersion5Queue;
        sqlite3* db = nullptr;
        ASSERT_EQ(sqlite3_open((dir_.path() / "magpie.db").c_str(), &db), SQLITE_OK);
        char* message = nullptr;
        int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
        std::string detail = message != nullptr ? message : "";
        sqlite3_free(message);
        sqlite3_exec(db, "PRAGMA journal_mode = WAL", nullptr, nullptr, nullptr);
        sqlite3_close(db);
        ASSERT_EQ(rc, SQLITE_OK) << detail;
        deleted_size_ = two.size();
    }

    std::unique_ptr<Store> open_store() {
        SqliteOptions options;
        options.data_dir = dir_.path();
        auto opened = open_sqlite_store(options);
        EXPECT_TRUE(opened) << opened.error().message;
        return opened ? std::move(*opened) : nullptr;
    }

    void expect_migrated(Store& store) {
        auto inbox = store.find_mailbox(1, "INBOX");
        ASSERT_TRUE(inbox) << inbox.error().message;
        auto status = store.mailbox_status(inbox->id);
        ASSERT_TRUE(status) << status.error().message;
        EXPECT_EQ(status->messages, 3u);
        EXPECT_EQ(status->unseen, 2u);   // uids 2 and 3 lack \Seen
        EXPECT_EQ(status->deleted, 1u);  // uid 2
        EXPECT_EQ(status->deleted_size, deleted_size_);
        EXPECT_EQ(status->recent, 0u);   // mail from before the upgrade has been seen by earlier sessions
        EXPECT_EQ(status->uidnext, 4u);
        EXPECT_EQ(status->uidvalidity, 1700000001u);
        EXPECT_EQ(status->highest_modseq, 4u);  // kept: clients' CONDSTORE caches stay valid

        // A mailbox that never changed reports 1, never 0 (RFC 7162 3.1.2.1).
        auto trash = store.find_mailbox(1, "Trash");
        ASSERT_TRUE(trash);
        EXPECT_EQ(trash->highest_modseq, 1u);
        EXPECT_EQ(store.mailbox_status(trash->id)->highest_modseq, 1u);

        // Subscriptions carried over by name; the flag on Mailbox is derived from them.
        auto subscriptions = store.list_subscriptions(1);
        ASSERT_TRUE(subscriptions) << subscriptions.error().message;
        EXPECT_EQ(*subscriptions, (std::vector<std::string>{"INBOX", "Projects"}));
        EXPECT_TRUE(inbox->subscribed);
        EXPECT_FALSE(trash->subscribed);

        auto queue = store.list_queue(10, false);  // version 4's queue tables exist
        ASSERT_TRUE(queue) << queue.error().message;
        EXPECT_EQ(queue->size(), queue_entries_);

        auto identities = store.list_jmap_objects(1, "Identity");  // version 8's JMAP tables exist, empty
        ASSERT_TRUE(identities) << identities.error().message;
        EXPECT_TRUE(identities->objects.empty());

        auto states = store.list_states(inbox->id);
        ASSERT_TRUE(states);
        ASSERT_EQ(states->size(), 3u);
        EXPECT_EQ((*states)[1].flags, (std::vector<std::string>{"\\Deleted", "Work"}));

        auto report = check_store(dir_.path());
        ASSERT_TRUE(report) << report.error().message;
        EXPECT_TRUE(report->clean) << describe(*report);
        EXPECT_EQ(report->messages, 3u);

        // Version 11 dropped the messages' blob index; the Emails' stays (who holds a blob).
        EXPECT_FALSE(has_index("messages_blob"));
        EXPECT_TRUE(has_index("emails_blob"));
    }

    bool has_index(const std::string& name) {
        sqlite3* db = nullptr;
        const std::string path = (dir_.path() / "magpie.db").string();
        EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
        sqlite3_stmt* statement = nullptr;
        EXPECT_EQ(sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?1", -1,
                                     &statement, nullptr),
                  SQLITE_OK);
        sqlite3_bind_text(statement, 1, name.c_str(), -1, SQLITE_TRANSIENT);
        const bool found = sqlite3_step(statement) == SQLITE_ROW;
        sqlite3_finalize(statement);
        sqlite3_close(db);
        return found;
    }

    TempDir dir_;
    std::uint64_t deleted_size_ = 0;
    std::size_t queue_entries_ = 0;
};

TEST_F(MigrationTest, VersionTwoStoreMigratesWithCountersSubscriptionsAndACleanCheck) {
    build_old_store(2);
    // A store of an older version is not read by a read-only opener (magpie check): it asks for magpied.
    EXPECT_EQ(check_store(dir_.path()).error().code, Errc::unavailable);
    auto store = open_store();
    ASSERT_TRUE(store);
    expect_migrated(*store);
}

TEST_F(MigrationTest, VersionOneStoreMigratesThroughEveryStep) {
    build_old_store(1);
    auto store = open_store();
    ASSERT_TRUE(store);
    expect_migrated(*store);
    EXPECT_TRUE(store->pending_envelopes(10)) << "version 2's tables exist after migrating from 1";
}

TEST_F(MigrationTest, VersionFiveStoreMigratesWithCountersAndACleanCheck) {
    build_old_store(5);
    queue_entries_ = 1;  // a version 5 store built here holds the queue entry of kVersion5Queue
    auto store = open_store();
    ASSERT_TRUE(store);
    expect_migrated(*store);
}

TEST_F(MigrationTest, VersionFiveMessagesBecomeEmailsWithThreadsComputedInReceivedOrder) {
    build_old_store(5);
    // uid 2 replies to uid 1 (In-Reply-To) under another subject; uid 3 has a subject of its own; uid 1 is
    // also in Projects (a COPY the old store kept as a second row: it becomes an Email of its own).
    corrupt_sql(dir_.path(), R"sql(
UPDATE blobs SET subject = 'Plans' WHERE message_id = '<1@x>';
UPDATE blobs SET subject = 'Something else', in_reply_to = '<1@x>' WHERE message_id = '<2@x>';
UPDATE blobs SET subject = 'Other' WHERE message_id = '<3@x>';
INSERT INTO messages(mailbox_id, uid, modseq, blob_id, size, internal_date, system_flags, keywords)
  SELECT 3, 1, 2, blob_id, size, internal_date + 10, 0, '' FROM messages WHERE mailbox_id = 1 AND uid = 1;
UPDATE mailboxes SET uidnext = 2, highest_modseq = 2, message_count = 1, total_size = (SELECT size FROM messages
  WHERE mailbox_id = 3), unseen_count = 1, first_recent_uid = 2 WHERE id = 3;
INSERT INTO change_log(mailbox_id, modseq, uid, kind) VALUES (3, 2, 1, 1);
)sql");
    auto store = open_store();
    ASSERT_TRUE(store);
    auto inbox = store->find_messages(1, {1, 2, 3});
    ASSERT_TRUE(inbox) << inbox.error().message;
    ASSERT_EQ(inbox->size(), 3u);
    auto projects = store->find_messages(3, {1});
    ASSERT_TRUE(projects);
    ASSERT_EQ(projects->size(), 1u);
    const Message& one = (*inbox)[0];
    const Message& two = (*inbox)[1];
    const Message& three = (*inbox)[2];
    EXPECT_GT(one.email_id, 0);
    EXPECT_NE(one.email_id, two.email_id);
    EXPECT_NE(projects->front().email_id, one.email_id);
    EXPECT_EQ(two.thread_id, one.thread_id);            // by In-Reply-To
    EXPECT_NE(three.thread_id, one.thread_id);          // another subject, no references
    EXPECT_EQ(projects->front().thread_id, one.thread_id);  // its own Message-ID is known: the same thread
    auto emails = store->find_emails(1, {one.email_id});
    ASSERT_TRUE(emails);
    ASSERT_EQ(emails->size(), 1u);
    EXPECT_EQ(emails->front().flags, (std::vector<std::string>{"\\Seen"}));
    EXPECT_EQ(emails->front().mailboxes.size(), 1u);

    // The account starts at state 0 with nothing to report; what happens next is logged.
    EXPECT_EQ(*store->account_state(1), 0u);
    EXPECT_TRUE(store->email_changes(1, 0, 100)->created.empty());
    ASSERT_TRUE(store->store_flags(1, {3}, FlagUpdate{FlagOperation::add, {"\\Flagged"}, {}}));
    EXPECT_EQ(store->email_changes(1, 0, 100)->updated, (std::vector<std::int64_t>{three.email_id}));
    store.reset();
    auto report = check_store(dir_.path());
    ASSERT_TRUE(report) << report.error().message;
    EXPECT_TRUE(report->clean) << describe(*report);
    EXPECT_EQ(report->emails, 4u);
}

TEST_F(MigrationTest, MigratedStoreKeepsItsCountersThroughNewChanges) {
    build_old_store(2);
    auto store = open_store();
    ASSERT_TRUE(store);
    auto found = store->find_mailbox(1, "INBOX");
    ASSERT_TRUE(found);
    const Mailbox inbox = *found;
    std::promise<Result<Delivered>> promise;
    Delivery delivery;
    delivery.content = "From: c@remote.test\r\n\r\nnew\r\n";
    delivery.targets = {{inbox.id, {}}};
    store->deliver(std::move(delivery), [&](Result<Delivered> result) { promise.set_value(std::move(result)); });
    auto delivered = promise.get_future().get();
    ASSERT_TRUE(delivered) << delivered.error().message;
    EXPECT_EQ(delivered->placed[0].uid, 4u);
    EXPECT_EQ(delivered->placed[0].modseq, 5u);
    ASSERT_TRUE(store->expunge(inbox.id));
    auto status = store->mailbox_status(inbox.id);
    ASSERT_TRUE(status);
    EXPECT_EQ(status->messages, 3u);
    EXPECT_EQ(status->unseen, 2u);
    EXPECT_EQ(status->deleted, 0u);
    EXPECT_EQ(status->recent, 1u);  // the new message
    store.reset();
    auto report = check_store(dir_.path());
    ASSERT_TRUE(report) << report.error().message;
    EXPECT_TRUE(report->clean) << describe(*report);
}

TEST_F(MigrationTest, VersionFiveQueueGainsTheSchedulersStateAndStaysDeliverable) {
    build_old_store(5);
    queue_entries_ = 1;
    auto store = open_store();
    ASSERT_TRUE(store);
    expect_migrated(*store);
    auto entry = store->find_queue_entry(1);
    ASSERT_TRUE(entry) << entry.error().message;
    EXPECT_FALSE(entry->held);
    EXPECT_FALSE(entry->smtputf8);
    EXPECT_EQ(entry->send_offset, 0u);
    EXPECT_GT(entry->size, 0u);
    ASSERT_EQ(entry->recipients.size(), 2u);
    // Version 4 counted every attempt; a recipient still waiting had only temporary failures.
    EXPECT_EQ(entry->recipients[0].failed_attempts, 2u);
    EXPECT_EQ(entry->recipients[0].last_attempt_at, 1700000300);
    EXPECT_EQ(entry->recipients[1].failed_attempts, 0u);
    ASSERT_EQ(entry->recipients[0].attempts.size(), 1u);
    EXPECT_EQ(entry->recipients[0].attempts[0].connection, "");
    EXPECT_EQ(**store->next_queue_due(), 1700000900);
    auto leased = store->lease_due("node", 1700000900, 60, 10);
    ASSERT_TRUE(leased) << leased.error().message;
    ASSERT_EQ(leased->size(), 1u);
    EXPECT_EQ(leased->front().recipients.size(), 1u);
    EXPECT_EQ(*store->release_leases("node"), 1u);
}

}  // namespace
}  // namespace magpie::store
