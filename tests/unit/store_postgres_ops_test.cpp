// The PostgreSQL backend when things go wrong between nodes (issue 16): PostgreSQL restarted (pooled
// connections the server closed are not handed out again; the LISTEN thread, once reconnected, tells its
// listener of every mailbox so that watchers re-read instead of trusting NOTIFYs they never heard), and
// the garbage collector of one node racing another node's delivery of the same bytes. Each binary runs its
// own cluster, so restarting it disturbs no other test binary.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "base/time.h"
#include "store/postgres/pg.h"
#include "store/postgres/pipeline.h"
#include "store/postgres/postgres.h"
#include "store/store.h"
#include "store/summary.h"
#include "store_postgres_support.h"
#include "store_test_support.h"

namespace magpie::store {
namespace {

Result<Delivered> deliver_to(Store& store, Delivery delivery) {
    std::promise<Result<Delivered>> promise;
    auto future = promise.get_future();
    store.deliver(std::move(delivery),
                  [&](Result<Delivered> result) { promise.set_value(std::move(result)); });
    return future.get();
}

class PostgresOperationsTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto& server = PostgresServer::instance();
        if (server.dsn().empty()) GTEST_SKIP() << "no PostgreSQL: " << server.why_not();
        dsn_ = server.create_database();
        node1_ = open_node();
        node2_ = open_node();
        ASSERT_TRUE(node1_ && node2_);
        ASSERT_TRUE(node1_->add_domain("example.test"));
        ScramCredentials scram{"salt", 4096, std::string(32, 's'), std::string(32, 'k')};
        auto account = node1_->add_account("bob@example.test", "$argon2id$fake", scram);
        ASSERT_TRUE(account);
        bob_ = *account;
        inbox_ = node2_->find_mailbox(bob_.id, "INBOX")->id;
    }
    void TearDown() override {
        node1_.reset();
        node2_.reset();
        if (!dsn_.empty()) PostgresServer::instance().drop_database(dsn_);
    }
    std::unique_ptr<Store> open_node() {
        PostgresOptions options;
        options.dsn = dsn_;
        options.pool_size = 4;
        auto opened = open_postgres_store(options);
        EXPECT_TRUE(opened) << opened.error().message;
        return opened ? std::move(*opened) : nullptr;
    }

    std::string dsn_;
    std::unique_ptr<Store> node1_, node2_;
    Account bob_;
    std::int64_t inbox_ = 0;
};

// Prepared statements (issue 17: parsing and planning were about 60% of PostgreSQL's CPU per message
// received). A connection prepares what it runs, up to its limit, and the answers stay those of unnamed
// statements: the statement's own error when it is bad, and a statement whose result columns a schema change
// altered (another node's upgrade) fails retryably once and is prepared anew.
class PostgresConnectionTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto& server = PostgresServer::instance();
        if (server.dsn().empty()) GTEST_SKIP() << "no PostgreSQL: " << server.why_not();
        dsn_ = server.create_database();
    }
    void TearDown() override {
        if (!dsn_.empty()) PostgresServer::instance().drop_database(dsn_);
    }
    std::unique_ptr<postgres::Connection> open(std::size_t prepared_statements) {
        auto opened = postgres::Connection::open(dsn_, "", prepared_statements);
        EXPECT_TRUE(opened) << opened.error().message;
        return opened ? std::move(*opened) : nullptr;
    }
    // The statements the server holds prepared for `db`'s session (the listing itself among them).
    static std::vector<std::string> on_server(postgres::Connection& db) {
        std::vector<std::string> statements;
        auto listed = db.exec("SELECT statement FROM pg_prepared_statements ORDER BY prepare_time, name");
        EXPECT_TRUE(listed) << listed.error().message;
        for (int i = 0; listed && i < listed->size(); ++i) statements.push_back(listed->text(i, 0));
        return statements;
    }
    std::string dsn_;
};

TEST_F(PostgresConnectionTest, ExecPreparesEachStatementOnceUpToTheLimit) {
    auto db = open(3);
    ASSERT_TRUE(db);
    const std::string add = "SELECT $1::int + 1";
    for (int i = 0; i < 3; ++i) {
        auto rows = db->exec(add, postgres::Params().add(std::int64_t{41 + i}));
        ASSERT_TRUE(rows) << rows.error().message;
        EXPECT_EQ(rows->int64(0, 0), 42 + i);
    }
    ASSERT_NE(db->prepared(add), nullptr);
    EXPECT_EQ(on_server(*db),
              (std::vector<std::string>{add,
                                        "SELECT statement FROM pg_prepared_statements ORDER BY "
                                        "prepare_time, name"}));
    // The limit reached: a third statement runs unnamed, with the same answer.
    auto third = db->exec("SELECT $1::text || 'b'", postgres::Params().add("a"));
    ASSERT_TRUE(third) << third.error().message;
    EXPECT_EQ(third->text(0, 0), "ab");
    auto fourth = db->exec("SELECT $1::text || 'c'", postgres::Params().add("a"));
    ASSERT_TRUE(fourth) << fourth.error().message;
    EXPECT_EQ(fourth->text(0, 0), "ac");
    EXPECT_EQ(db->prepared("SELECT $1::text || 'c'"), nullptr);

    // None kept: nothing is prepared on the server (a pooler that does not track them).
    auto plain = open(0);
    ASSERT_TRUE(plain);
    ASSERT_TRUE(plain->exec(add, postgres::Params().add(std::int64_t{1})));
    EXPECT_EQ(plain->prepared(add), nullptr);
    auto listed = plain->exec("SELECT count(*) FROM pg_prepared_statements");
    ASSERT_TRUE(listed);
    EXPECT_EQ(listed->int64(0, 0), 0);
}

TEST_F(PostgresConnectionTest, ABadStatementGivesItsOwnErrorAndIsNotKept) {
    auto db = open(16);
    ASSERT_TRUE(db);
    auto bad = db->exec("SELEC 1");
    ASSERT_FALSE(bad);
    EXPECT_TRUE(bad.error().message.starts_with("postgres 42601")) << bad.error().message;
    EXPECT_EQ(db->prepared("SELEC 1"), nullptr);

    // In a pipeline the Parse's error is its statement's; the statements after it are not run; the
    // connection is sound afterwards and runs the good statements prepared.
    {
        postgres::Pipeline pipe(*db);
        auto good = pipe.send("SELECT $1::int * 2", postgres::Params().add(std::int64_t{21}));
        auto wrong = pipe.send("SELEC 2");
        auto after = pipe.send("SELECT $1::int * 3", postgres::Params().add(std::int64_t{1}));
        ASSERT_TRUE(good && wrong && after);
        ASSERT_TRUE(pipe.flush());
        ASSERT_TRUE(pipe.result(*good));
        EXPECT_EQ(pipe.result(*good)->int64(0, 0), 42);
        ASSERT_FALSE(pipe.result(*wrong));
        EXPECT_TRUE(pipe.result(*wrong).error().message.starts_with("postgres 42601"))
            << pipe.result(*wrong).error().message;
        EXPECT_FALSE(pipe.result(*after));
        EXPECT_EQ(pipe.first_failure(), *wrong);
    }
    EXPECT_NE(db->prepared("SELECT $1::int * 2"), nullptr);
    EXPECT_EQ(db->prepared("SELEC 2"), nullptr);
    EXPECT_EQ(db->prepared("SELECT $1::int * 3"), nullptr);  // its Parse was not run
    postgres::Pipeline again(*db);
    auto doubled = again.send("SELECT $1::int * 2", postgres::Params().add(std::int64_t{5}));
    auto tripled = again.send("SELECT $1::int * 3", postgres::Params().add(std::int64_t{5}));
    ASSERT_TRUE(doubled && tripled);
    ASSERT_TRUE(again.flush());
    ASSERT_TRUE(again.result(*doubled) && again.result(*tripled));
    EXPECT_EQ(again.result(*doubled)->int64(0, 0), 10);
    EXPECT_EQ(again.result(*tripled)->int64(0, 0), 15);
    EXPECT_NE(db->prepared("SELECT $1::int * 3"), nullptr);
}

TEST_F(PostgresConnectionTest, AStatementASchemaChangeAlteredFailsRetryablyOnceAndIsPreparedAnew) {
    auto db = open(16);
    auto other = open(0);  // another node, upgrading the schema
    ASSERT_TRUE(db && other);
    ASSERT_TRUE(other->run("CREATE TABLE t(a int); INSERT INTO t VALUES (1)"));
    const std::string all = "SELECT * FROM t WHERE a = $1";
    ASSERT_TRUE(db->exec(all, postgres::Params().add(std::int64_t{1})));
    ASSERT_TRUE(other->run("ALTER TABLE t ADD COLUMN b int DEFAULT 2"));

    auto changed = db->exec(all, postgres::Params().add(std::int64_t{1}));
    ASSERT_FALSE(changed);
    EXPECT_TRUE(postgres::is_retryable(changed.error())) << changed.error().message;
    auto retried = db->exec(all, postgres::Params().add(std::int64_t{1}));
    ASSERT_TRUE(retried) << retried.error().message;
    EXPECT_EQ(retried->int64(0, 1), 2);

    // The same inside a transaction and a pipeline: in_transaction runs the body again.
    const std::string piped = "SELECT * FROM t WHERE a = $1 AND true";
    {
        postgres::Pipeline pipe(*db);
        ASSERT_TRUE(pipe.send(piped, postgres::Params().add(std::int64_t{1})));
        ASSERT_TRUE(pipe.flush());
    }
    ASSERT_TRUE(other->run("ALTER TABLE t ADD COLUMN c int DEFAULT 3"));
    int runs = 0;
    auto done = postgres::in_transaction(*db, [&]() -> Result<void> {
        ++runs;
        postgres::Pipeline pipe(*db);
        auto sent = pipe.send(piped, postgres::Params().add(std::int64_t{1}));
        if (!sent) return sent.error();
        MAGPIE_TRY(pipe.flush());
        auto& rows = pipe.result(*sent);
        if (!rows) return rows.error();
        EXPECT_EQ(rows->int64(0, 2), 3);
        return {};
    });
    ASSERT_TRUE(done) << done.error().message;
    EXPECT_EQ(runs, 2);

    // A lone read on a pooled connection is simply answered: read_statement runs it again.
    postgres::Pool pool(dsn_, "", 1, 16);
    const std::string read = "SELECT * FROM t WHERE a = $1 AND 1 = 1";
    ASSERT_TRUE(postgres::read_statement(pool, read, postgres::Params().add(std::int64_t{1})));
    ASSERT_TRUE(other->run("ALTER TABLE t ADD COLUMN d int DEFAULT 4"));
    auto reread = postgres::read_statement(pool, read, postgres::Params().add(std::int64_t{1}));
    ASSERT_TRUE(reread) << reread.error().message;
    EXPECT_EQ(reread->int64(0, 3), 4);
}

TEST_F(PostgresOperationsTest, EveryPooledConnectionTheServerClosedIsReplacedBeforeUse) {
    // Fill the pool: four readers at once hold four connections, which then sit idle.
    std::vector<std::thread> readers;
    for (int i = 0; i < 4; ++i) {
        readers.emplace_back([&] {
            for (int j = 0; j < 20; ++j) ASSERT_TRUE(node1_->mailbox_status(inbox_));
        });
    }
    for (auto& reader : readers) reader.join();
    if (!PostgresServer::instance().restart())
        GTEST_SKIP() << "the server is not this binary's (MAGPIE_TEST_PG_DSN)";
    // Writes are not repeated by the store (a cut COMMIT has an unknown outcome), so every stale pooled
    // connection would fail one of them: none may.
    for (int i = 0; i < 6; ++i) {
        auto made = node1_->create_mailbox(bob_.id, fmt::format("after restart {}", i));
        EXPECT_TRUE(made) << "write " << i << " after the restart: " << made.error().message;
    }
    EXPECT_TRUE(node1_->mailbox_status(inbox_));
}

TEST_F(PostgresOperationsTest, ListenerIsToldOfEveryMailboxOnceItsConnectionIsBack) {
    const std::int64_t sent = node2_->find_mailbox(bob_.id, "Sent")->id;
    std::mutex mutex;
    std::vector<std::int64_t> heard;  // mailbox ids told to node 2's listener
    node2_->set_change_listener([&](std::int64_t, std::int64_t mailbox, std::uint64_t) {
        std::lock_guard lock(mutex);
        heard.push_back(mailbox);
    });
    auto heard_mailbox = [&](std::int64_t mailbox) {
        std::lock_guard lock(mutex);
        return std::find(heard.begin(), heard.end(), mailbox) != heard.end();
    };
    auto wait_for = [&](std::int64_t mailbox) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (std::chrono::steady_clock::now() < deadline && !heard_mailbox(mailbox))
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        return heard_mailbox(mailbox);
    };
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // node 2's LISTEN is up
    if (!PostgresServer::instance().restart())
        GTEST_SKIP() << "the server is not this binary's (MAGPIE_TEST_PG_DSN)";
    // Node 1 commits as soon as the server is back, maybe before node 2 listens again: that NOTIFY may be
    // lost; what follows the reconnection is not: every mailbox, the untouched Sent included, is told.
    Delivery delivery;
    delivery.content = std::string(kSmallMessage);
    delivery.targets = {{inbox_, {}}};
    auto delivered = deliver_to(*node1_, std::move(delivery));
    ASSERT_TRUE(delivered) << delivered.error().message;
    EXPECT_TRUE(wait_for(sent));
    EXPECT_TRUE(heard_mailbox(inbox_));
    // And the channel works again: the next commit is heard as itself.
    {
        std::lock_guard lock(mutex);
        heard.clear();
    }
    Delivery next;
    next.content = std::string(kSmallMessage);
    next.targets = {{inbox_, {}}};
    ASSERT_TRUE(deliver_to(*node1_, std::move(next)));
    EXPECT_TRUE(wait_for(inbox_));
    EXPECT_FALSE(heard_mailbox(sent));
    EXPECT_EQ(node2_->mailbox_status(inbox_)->messages, 2u);
}

TEST_F(PostgresOperationsTest, ACollectorRacingADeliveryOfTheSameBytesNeverTakesItsBlob) {
    // Each round: the message's blob is garbage and old enough to collect, then node 1 delivers the same
    // bytes again while node 2 collects garbage. The delivery must succeed and its blob stay readable,
    // whichever of the two gets to the blob row first.
    auto admin = postgres::Connection::open(dsn_, "");
    ASSERT_TRUE(admin);
    const std::string content = "Subject: reused\r\n\r\nthe same bytes every time\r\n";
    std::size_t collected = 0;
    for (int round = 0; round < 40; ++round) {
        ASSERT_TRUE((*admin)->run("UPDATE blobs SET created_at = 0"));
        std::thread collector([&] {
            auto report = node2_->collect_garbage(unix_now(), 60);
            ASSERT_TRUE(report) << report.error().message;
            collected += report->blob_rows;
        });
        Delivery delivery;
        delivery.content = content;
        delivery.targets = {{inbox_, {}}};
        auto delivered = deliver_to(*node1_, std::move(delivery));
        collector.join();
        ASSERT_TRUE(delivered) << "round " << round << ": " << delivered.error().message;
        auto message = node2_->find_message(inbox_, delivered->placed[0].uid);
        ASSERT_TRUE(message);
        auto bytes = node2_->read_blob(message->blob_id);
        ASSERT_TRUE(bytes) << "round " << round << ": " << bytes.error().message;
        EXPECT_EQ(*bytes, content);
        // Expunged again: the blob is garbage for the next round.
        ASSERT_TRUE(node1_->store_flags(inbox_, {delivered->placed[0].uid},
                                        {FlagOperation::add, {"\\Deleted"}, std::nullopt}));
        ASSERT_TRUE(node1_->expunge(inbox_));
    }
    // Some rounds the collector came first and removed the blob (the delivery stored it again): the race
    // was run both ways, not only one.
    RecordProperty("collected", static_cast<int>(collected));
    PostgresOptions options;
    options.dsn = dsn_;
    options.read_only = true;
    options.listen = false;
    auto check = check_postgres_store(options);
    ASSERT_TRUE(check) << check.error().message;
    EXPECT_TRUE(check->clean) << describe(*check);
}

TEST_F(PostgresOperationsTest, ASpooledAppendIsStoredFromItsFileChunkByChunk) {
    // A large APPEND arrives in pieces into the store's spool (never whole in memory) and is delivered from
    // it: the stored blob is the spool's bytes, in several chunks, and the spool leaves no file behind.
    std::string content = "Subject: large\r\n\r\n";
    while (content.size() < 700 * 1024) content += fmt::format("line {} of a large spooled message\r\n", content.size());
    auto spool = node1_->open_spool();
    ASSERT_TRUE(spool) << spool.error().message;
    for (std::size_t offset = 0; offset < content.size(); offset += 65536)
        ASSERT_TRUE((*spool)->append(std::string_view(content).substr(offset, 65536)));
    ASSERT_EQ((*spool)->size(), content.size());
    Delivery delivery;
    delivery.summary = summarize(content);
    delivery.spooled = std::move(*spool);
    delivery.targets = {{inbox_, {}}};
    auto delivered = deliver_to(*node1_, std::move(delivery));
    ASSERT_TRUE(delivered) << delivered.error().message;
    EXPECT_EQ(delivered->blob_id, blob_id_of(content));
    auto message = node2_->find_message(inbox_, delivered->placed[0].uid);
    ASSERT_TRUE(message);
    EXPECT_EQ(message->size, content.size());
    auto bytes = node2_->read_blob(message->blob_id);
    ASSERT_TRUE(bytes) << bytes.error().message;
    EXPECT_TRUE(*bytes == content);
    auto admin = postgres::Connection::open(dsn_, "");
    ASSERT_TRUE(admin);
    auto chunks = (*admin)->exec("SELECT count(*) FROM blob_chunks WHERE blob_id = $1",
                                 postgres::Params().add(delivered->blob_id));
    ASSERT_TRUE(chunks) << chunks.error().message;
    EXPECT_GE(chunks->int64(0, 0), 3);
    // Ranged reads, across chunk boundaries and clipped at the end, read only the chunks they cover.
    auto reader = node2_->open_blob(delivered->blob_id);
    ASSERT_TRUE(reader) << reader.error().message;
    EXPECT_EQ((*reader)->size(), content.size());
    for (auto [offset, length] : {std::pair<std::size_t, std::size_t>{0, 10}, {262140, 10}, {300000, 400000},
                                  {content.size() - 5, 100}, {content.size(), 10}}) {
        auto range = (*reader)->read(offset, length);
        ASSERT_TRUE(range) << range.error().message;
        EXPECT_TRUE(*range == content.substr(std::min(offset, content.size()), length)) << offset;
    }
    // Content and a spool at once is a caller's mistake, refused.
    auto both = node1_->open_spool();
    ASSERT_TRUE(both);
    ASSERT_TRUE((*both)->append("Subject: x\r\n\r\nx\r\n"));
    Delivery mixed;
    mixed.content = "Subject: x\r\n\r\nx\r\n";
    mixed.spooled = std::move(*both);
    mixed.targets = {{inbox_, {}}};
    auto refused = deliver_to(*node1_, std::move(mixed));
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, Errc::invalid_argument);
}

}  // namespace
}  // namespace magpie::store
