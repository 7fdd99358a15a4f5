// The embedded store: directory (domains, accounts, aliases, recipients), mailboxes, group-committed
// delivery with content-addressed blobs, and check_store against stores corrupted on purpose.
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "store/blob.h"
#include "store/store.h"
#include "store_test_support.h"

namespace magpie::store {
namespace {

// ---- domains ----

TEST_F(StoreTest, AddsDomainLowerCasedAndRefusesDuplicate) {
    auto domain = store_->add_domain("Example.TEST");
    ASSERT_TRUE(domain);
    EXPECT_EQ(domain->name, "example.test");
    auto again = store_->add_domain("example.test");
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code, Errc::already_exists);
    auto domains = store_->list_domains();
    ASSERT_TRUE(domains);
    ASSERT_EQ(domains->size(), 1u);
    EXPECT_EQ((*domains)[0].id, domain->id);
}

TEST_F(StoreTest, RejectsMalformedDomain) {
    for (std::string_view bad : {"", "exa mple.test", "-bad.test", "a..test", "bad_.test"}) {
        auto domain = store_->add_domain(bad);
        ASSERT_FALSE(domain) << bad;
        EXPECT_EQ(domain.error().code, Errc::invalid_argument) << bad;
    }
}

TEST_F(StoreTest, DeleteDomainRefusedWhileAccountsExist) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    make_account("bob@example.test");
    auto refused = store_->delete_domain("example.test");
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, Errc::permission_denied);
    ASSERT_TRUE(store_->delete_account("bob@example.test"));
    ASSERT_TRUE(store_->delete_domain("EXAMPLE.test"));
    EXPECT_TRUE(store_->list_domains()->empty());
    EXPECT_EQ(store_->delete_domain("example.test").error().code, Errc::not_found);
}

// ---- accounts ----

TEST_F(StoreTest, AddAccountCreatesDefaultMailboxesWithSpecialUse) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account account = make_account("Bob@Example.Test");
    EXPECT_EQ(account.address, "bob@example.test");
    auto mailboxes = store_->list_mailboxes(account.id);
    ASSERT_TRUE(mailboxes);
    ASSERT_EQ(mailboxes->size(), 6u);
    EXPECT_EQ((*mailboxes)[0].name, "INBOX");  // INBOX first, the rest by name
    std::map<std::string, SpecialUse> roles;
    std::set<std::uint32_t> uidvalidities;
    for (const Mailbox& m : *mailboxes) {
        roles[m.name] = m.special_use;
        uidvalidities.insert(m.uidvalidity);
        EXPECT_EQ(m.uidnext, 1u);
        EXPECT_EQ(m.highest_modseq, 1u);  // RFC 7162 3.1.2.1: never 0
        EXPECT_TRUE(m.subscribed);
        EXPECT_EQ(m.account_id, account.id);
    }
    EXPECT_EQ(uidvalidities.size(), 6u);
    EXPECT_EQ(roles["INBOX"], SpecialUse::none);
    EXPECT_EQ(roles["Sent"], SpecialUse::sent);
    EXPECT_EQ(roles["Drafts"], SpecialUse::drafts);
    EXPECT_EQ(roles["Trash"], SpecialUse::trash);
    EXPECT_EQ(roles["Junk"], SpecialUse::junk);
    EXPECT_EQ(roles["Archive"], SpecialUse::archive);
}

TEST_F(StoreTest, AddAccountRequiresLocalDomainAndUniqueAddress) {
    ScramCredentials scram;
    auto no_domain = store_->add_account("bob@elsewhere.test", "hash", scram);
    ASSERT_FALSE(no_domain);
    EXPECT_EQ(no_domain.error().code, Errc::not_found);
    ASSERT_TRUE(store_->add_domain("example.test"));
    make_account("bob@example.test");
    auto twice = store_->add_account("BOB@example.test", "hash", scram);
    ASSERT_FALSE(twice);
    EXPECT_EQ(twice.error().code, Errc::already_exists);
    EXPECT_EQ(store_->add_account("no-at-sign", "hash", scram).error().code, Errc::invalid_argument);
    EXPECT_EQ(store_->add_account(std::string(65, 'a') + "@example.test", "hash", scram).error().code,
              Errc::invalid_argument);
}

TEST_F(StoreTest, FindAccountIgnoresCaseAndReturnsCredentials) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account created = make_account("bob@example.test");
    auto found = store_->find_account("BOB@EXAMPLE.TEST");
    ASSERT_TRUE(found);
    EXPECT_EQ(found->id, created.id);
    EXPECT_EQ(found->password_hash, "$argon2id$v=19$m=65536,t=2,p=1$fake");
    EXPECT_EQ(found->scram.salt, "salt-bytes");
    EXPECT_EQ(found->scram.iterations, 4096u);
    EXPECT_EQ(found->scram.stored_key, std::string(32, 's'));
    EXPECT_FALSE(found->disabled);
    EXPECT_EQ(store_->find_account("carol@example.test").error().code, Errc::not_found);
    EXPECT_EQ(store_->find_account("bob").error().code, Errc::not_found);  // a login name that is no address
}

TEST_F(StoreTest, SetPasswordAndDisableUpdateTheAccount) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    make_account("bob@example.test");
    std::string raw_key("\x00\x01\xff", 3);  // SCRAM keys are raw bytes, NULs included
    ASSERT_TRUE(store_->set_password("bob@example.test", "new-hash", ScramCredentials{"s2", 8192, raw_key, raw_key}));
    ASSERT_TRUE(store_->set_disabled("bob@example.test", true));
    auto found = store_->find_account("bob@example.test");
    ASSERT_TRUE(found);
    EXPECT_EQ(found->password_hash, "new-hash");
    EXPECT_EQ(found->scram.iterations, 8192u);
    EXPECT_EQ(found->scram.server_key, raw_key);
    EXPECT_TRUE(found->disabled);
    EXPECT_EQ(store_->set_password("nobody@example.test", "h", {}).error().code, Errc::not_found);
}

TEST_F(StoreTest, ListAccountsFiltersByDomain) {
    ASSERT_TRUE(store_->add_domain("a.test"));
    ASSERT_TRUE(store_->add_domain("b.test"));
    make_account("x@a.test");
    make_account("y@b.test");
    make_account("z@a.test");
    auto all = store_->list_accounts("");
    ASSERT_TRUE(all);
    EXPECT_EQ(all->size(), 3u);
    auto in_a = store_->list_accounts("A.test");
    ASSERT_TRUE(in_a);
    ASSERT_EQ(in_a->size(), 2u);
    EXPECT_EQ((*in_a)[0].address, "x@a.test");
    EXPECT_EQ((*in_a)[1].address, "z@a.test");
    EXPECT_EQ(store_->list_accounts("c.test").error().code, Errc::not_found);
}

TEST_F(StoreTest, UidValidityChangesWhenAMailboxNameIsReused) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account first = make_account("bob@example.test");
    std::uint32_t before = mailbox(first.id, "INBOX").uidvalidity;
    ASSERT_TRUE(store_->delete_account("bob@example.test"));
    Account second = make_account("bob@example.test");
    EXPECT_GT(mailbox(second.id, "INBOX").uidvalidity, before);
}

// ---- aliases and recipients ----

TEST_F(StoreTest, ResolvesExactAccountThenAliasThenCatchAll) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    Account carol = make_account("carol@example.test");
    ASSERT_TRUE(store_->add_alias("Postmaster@example.test", "bob@example.test"));
    ASSERT_TRUE(store_->add_alias("@example.test", "carol@example.test"));

    auto exact = store_->resolve_recipient("BOB@Example.Test");
    ASSERT_TRUE(exact);
    EXPECT_EQ(exact->status, RecipientStatus::local);
    EXPECT_EQ(exact->account_id, bob.id);
    EXPECT_EQ(exact->canonical_address, "bob@example.test");

    auto alias = store_->resolve_recipient("postmaster@EXAMPLE.test");
    ASSERT_TRUE(alias);
    EXPECT_EQ(alias->status, RecipientStatus::local);
    EXPECT_EQ(alias->account_id, bob.id);

    auto catch_all = store_->resolve_recipient("anyone@example.test");
    ASSERT_TRUE(catch_all);
    EXPECT_EQ(catch_all->status, RecipientStatus::local);
    EXPECT_EQ(catch_all->account_id, carol.id);
    EXPECT_EQ(catch_all->canonical_address, "carol@example.test");

    auto aliases = store_->list_aliases("example.test");
    ASSERT_TRUE(aliases);
    ASSERT_EQ(aliases->size(), 2u);
    EXPECT_EQ((*aliases)[0].address, "@example.test");
    EXPECT_EQ((*aliases)[0].target, "carol@example.test");
    EXPECT_EQ((*aliases)[1].address, "postmaster@example.test");
}

TEST_F(StoreTest, ResolveReportsUnknownUserAndForeignDomain) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    make_account("bob@example.test");
    auto unknown = store_->resolve_recipient("alice@example.test");
    ASSERT_TRUE(unknown);
    EXPECT_EQ(unknown->status, RecipientStatus::unknown_user);
    auto foreign = store_->resolve_recipient("bob@remote.test");
    ASSERT_TRUE(foreign);
    EXPECT_EQ(foreign->status, RecipientStatus::not_local_domain);
    EXPECT_EQ(store_->resolve_recipient("not an address").error().code, Errc::invalid_argument);
    EXPECT_EQ(store_->resolve_recipient("bob@[192.0.2.1]")->status, RecipientStatus::not_local_domain);
    EXPECT_EQ(store_->resolve_recipient(std::string(65, 'a') + "@example.test")->status,
              RecipientStatus::unknown_user);
}

TEST_F(StoreTest, AliasNeedsLocalTargetAndCannotShadowAnAccount) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    make_account("bob@example.test");
    EXPECT_EQ(store_->add_alias("info@example.test", "ghost@example.test").error().code, Errc::not_found);
    EXPECT_EQ(store_->add_alias("info@remote.test", "bob@example.test").error().code, Errc::not_found);
    EXPECT_EQ(store_->add_alias("bob@example.test", "bob@example.test").error().code, Errc::already_exists);
    ASSERT_TRUE(store_->add_alias("info@example.test", "bob@example.test"));
    EXPECT_EQ(store_->add_alias("INFO@example.test", "bob@example.test").error().code, Errc::already_exists);
    EXPECT_EQ(store_->add_account("info@example.test", "h", {}).error().code, Errc::already_exists);
    ASSERT_TRUE(store_->delete_alias("info@example.test"));
    EXPECT_EQ(store_->delete_alias("info@example.test").error().code, Errc::not_found);
    EXPECT_EQ(store_->resolve_recipient("info@example.test")->status, RecipientStatus::unknown_user);
}

TEST_F(StoreTest, DeletingAnAccountDropsItsAliases) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    make_account("bob@example.test");
    ASSERT_TRUE(store_->add_alias("@example.test", "bob@example.test"));
    ASSERT_TRUE(store_->delete_account("bob@example.test"));
    EXPECT_TRUE(store_->list_aliases("")->empty());
    EXPECT_EQ(store_->resolve_recipient("x@example.test")->status, RecipientStatus::unknown_user);
}

// ---- mailboxes and delivery ----

TEST_F(StoreTest, FindMailboxMatchesInboxInAnyCaseOnly) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    auto inbox = store_->find_mailbox(bob.id, "inbox");
    ASSERT_TRUE(inbox);
    EXPECT_EQ(inbox->name, "INBOX");
    EXPECT_EQ(store_->find_mailbox(bob.id, "sent").error().code, Errc::not_found);
    EXPECT_TRUE(store_->find_mailbox(bob.id, "Sent"));
}

TEST_F(StoreTest, DeliversToSeveralMailboxesSharingOneBlob) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    Account carol = make_account("carol@example.test");
    Mailbox bob_inbox = mailbox(bob.id, "INBOX");
    Mailbox carol_inbox = mailbox(carol.id, "INBOX");
    Mailbox carol_archive = mailbox(carol.id, "Archive");

    auto delivered = deliver(std::string(kSmallMessage), {{bob_inbox.id, {}},
                                                         {carol_inbox.id, {"\\Seen", "$Label1"}},
                                                         {carol_archive.id, {}}});
    ASSERT_TRUE(delivered) << delivered.error().message;
    EXPECT_EQ(delivered->blob_id, blob_id_of(kSmallMessage));
    ASSERT_EQ(delivered->placed.size(), 3u);
    EXPECT_EQ(delivered->placed[0].mailbox_id, bob_inbox.id);
    EXPECT_EQ(delivered->placed[0].uid, 1u);
    EXPECT_EQ(delivered->placed[0].modseq, 2u);
    EXPECT_EQ(delivered->placed[1].mailbox_id, carol_inbox.id);

    auto message = store_->find_message(carol_inbox.id, delivered->placed[1].uid);
    ASSERT_TRUE(message) << message.error().message;
    EXPECT_EQ(message->blob_id, delivered->blob_id);
    EXPECT_EQ(message->size, kSmallMessage.size());
    EXPECT_EQ(message->internal_date, 1'700'000'000);
    EXPECT_EQ(message->flags, (std::vector<std::string>{"\\Seen", "$Label1"}));
    EXPECT_EQ(message->summary.subject, "hi");
    EXPECT_EQ(message->summary.from, "alice@remote.test");

    auto content = store_->read_blob(delivered->blob_id);
    ASSERT_TRUE(content);
    EXPECT_EQ(*content, kSmallMessage);

    Mailbox after = mailbox(carol.id, "INBOX");
    EXPECT_EQ(after.uidnext, 2u);
    EXPECT_EQ(after.highest_modseq, 2u);
    EXPECT_EQ(after.message_count, 1u);
    EXPECT_EQ(after.total_size, kSmallMessage.size());

    CheckReport report = check();
    EXPECT_TRUE(report.clean) << describe(report);
    EXPECT_EQ(report.messages, 3u);
    EXPECT_EQ(report.blobs, 1u);  // one copy serves every recipient
}

TEST_F(StoreTest, KeepsTheEnvelopeOfASuccessNotificationRequestUntilDeleted) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    Delivery delivery;
    delivery.content = std::string(kSmallMessage);
    delivery.targets = {DeliveryTarget{mailbox(bob.id, "INBOX").id, {}}};
    delivery.envelope = EnvelopeRecord{"alice@remote.test", "HDRS", "QQ314159",
                                       {{"bob@example.test", "SUCCESS,FAILURE", "rfc822;bob@example.test"},
                                        {"Bob@Example.test", "NEVER", ""}}};
    std::promise<Result<Delivered>> promise;
    store_->deliver(std::move(delivery), [&](Result<Delivered> result) { promise.set_value(std::move(result)); });
    ASSERT_TRUE(promise.get_future().get());
    EXPECT_TRUE(check().clean);

    open();  // durable: read back after reopening
    auto pending = store_->pending_envelopes(10);
    ASSERT_TRUE(pending) << pending.error().message;
    ASSERT_EQ(pending->size(), 1u);
    const auto& [id, record] = pending->front();
    EXPECT_EQ(record.reverse_path, "alice@remote.test");
    EXPECT_EQ(record.dsn_ret, "HDRS");
    EXPECT_EQ(record.dsn_envid, "QQ314159");
    ASSERT_EQ(record.recipients.size(), 2u);
    EXPECT_EQ(record.recipients[0].notify, "SUCCESS,FAILURE");
    EXPECT_EQ(record.recipients[0].orcpt, "rfc822;bob@example.test");
    EXPECT_EQ(record.recipients[1].address, "Bob@Example.test");

    ASSERT_TRUE(store_->delete_envelope(id));
    EXPECT_TRUE(store_->pending_envelopes(10)->empty());
    EXPECT_EQ(store_->delete_envelope(id).error().code, Errc::not_found);
    // A delivery without an envelope keeps none.
    ASSERT_TRUE(deliver(std::string(kSmallMessage), {DeliveryTarget{mailbox(bob.id, "INBOX").id, {}}}));
    EXPECT_TRUE(store_->pending_envelopes(10)->empty());
}

TEST_F(StoreTest, IdenticalContentIsStoredOnce) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    Mailbox inbox = mailbox(bob.id, "INBOX");
    auto first = deliver(std::string(kSmallMessage), {{inbox.id, {}}});
    auto second = deliver(std::string(kSmallMessage), {{inbox.id, {}}});
    ASSERT_TRUE(first && second);
    EXPECT_EQ(first->blob_id, second->blob_id);
    EXPECT_EQ(second->placed[0].uid, 2u);
    CheckReport report = check();
    EXPECT_TRUE(report.clean) << describe(report);
    EXPECT_EQ(report.messages, 2u);
    EXPECT_EQ(report.blobs, 1u);
}

TEST_F(StoreTest, UidsIncreaseAndSurviveReopen) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    std::int64_t inbox = mailbox(bob.id, "INBOX").id;
    std::uint32_t uidvalidity = mailbox(bob.id, "INBOX").uidvalidity;
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(deliver("message " + std::to_string(i), {{inbox, {}}}));
    open();  // close and reopen the same data directory
    auto fourth = deliver("message 3", {{inbox, {}}});
    ASSERT_TRUE(fourth);
    EXPECT_EQ(fourth->placed[0].uid, 4u);
    EXPECT_EQ(fourth->placed[0].modseq, 5u);
    auto messages = store_->list_messages(inbox);
    ASSERT_TRUE(messages);
    ASSERT_EQ(messages->size(), 4u);
    for (std::size_t i = 0; i < messages->size(); ++i) {
        EXPECT_EQ((*messages)[i].uid, i + 1);
        EXPECT_EQ(*store_->read_blob((*messages)[i].blob_id), "message " + std::to_string(i));
    }
    EXPECT_EQ(mailbox(bob.id, "INBOX").uidvalidity, uidvalidity);
}

TEST_F(StoreTest, LargeBlobGoesToItsOwnFileAndReadsBack) {
    SqliteOptions options;
    options.inline_blob_max = 1024;
    open(options);
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    std::string large = "Subject: big\r\n\r\n";
    for (int i = 0; large.size() <= 4096; ++i) large += "line " + std::to_string(i) + "\r\n";
    large.push_back('\0');  // bytes are bytes: a NUL must survive the round trip
    auto delivered = deliver(large, {{mailbox(bob.id, "INBOX").id, {}}, {mailbox(bob.id, "Archive").id, {}}});
    ASSERT_TRUE(delivered) << delivered.error().message;
    BlobFiles files(dir_.path());
    std::filesystem::path path = files.path_of(delivered->blob_id);
    EXPECT_EQ(path.parent_path().filename().string(), delivered->blob_id.substr(0, 2));
    ASSERT_TRUE(std::filesystem::exists(path));
    EXPECT_EQ(std::filesystem::file_size(path), large.size());
    EXPECT_EQ(store_->stats().blob_files, 1u);
    auto content = store_->read_blob(delivered->blob_id);
    ASSERT_TRUE(content);
    EXPECT_EQ(*content, large);

    // The same large content again writes no second file.
    ASSERT_TRUE(deliver(large, {{mailbox(bob.id, "INBOX").id, {}}}));
    EXPECT_EQ(store_->stats().blob_files, 1u);
    CheckReport report = check();
    EXPECT_TRUE(report.clean) << describe(report);
    EXPECT_EQ(report.blobs, 1u);
}

// blobs.location of a blob, read from outside the store (0 as received, 1 a file, 2 a zstd frame).
std::int64_t stored_location(const std::filesystem::path& data_dir, const std::string& blob_id) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2((data_dir / "magpie.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* statement = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, "SELECT location FROM blobs WHERE id = ?1", -1, &statement, nullptr), SQLITE_OK);
    sqlite3_bind_text(statement, 1, blob_id.c_str(), -1, SQLITE_TRANSIENT);
    std::int64_t location = sqlite3_step(statement) == SQLITE_ROW ? sqlite3_column_int64(statement, 0) : -1;
    sqlite3_finalize(statement);
    sqlite3_close(db);
    return location;
}

// About 4 KiB of text, as mail is: repetitive enough that zstd keeps a fraction of it.
std::string text_message(int lines = 60) {
    std::string message = "From: alice@remote.test\r\nTo: bob@example.test\r\nSubject: text\r\n\r\n";
    for (int i = 0; i < lines; ++i) message += fmt::format("Line {} of a plain text message, nothing more.\r\n", i);
    return message;
}

TEST_F(StoreTest, CompressibleBodyIsStoredAsAZstdFrameAndReadsBackByteForByte) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    std::string message = text_message();
    message.push_back('\0');  // bytes are bytes
    auto delivered = deliver(message, {{mailbox(bob.id, "INBOX").id, {}}});
    ASSERT_TRUE(delivered) << delivered.error().message;
    EXPECT_EQ(stored_location(dir_.path(), delivered->blob_id), 2);
    EXPECT_EQ(delivered->blob_id, blob_id_of(message));  // the id is the message's, not the frame's
    auto content = store_->read_blob(delivered->blob_id);
    ASSERT_TRUE(content) << content.error().message;
    EXPECT_EQ(*content, message);
    auto reader = store_->open_blob(delivered->blob_id);
    ASSERT_TRUE(reader);
    EXPECT_EQ((*reader)->size(), message.size());
    auto slice = (*reader)->read(100, 50);
    ASSERT_TRUE(slice);
    EXPECT_EQ(*slice, message.substr(100, 50));
    auto messages = store_->list_messages(mailbox(bob.id, "INBOX").id);
    ASSERT_TRUE(messages);
    ASSERT_EQ(messages->size(), 1u);
    EXPECT_EQ((*messages)[0].size, message.size());
    CheckReport report = check();
    EXPECT_TRUE(report.clean) << describe(report);
}

TEST_F(StoreTest, BodiesThatDoNotShrinkAndLevelZeroAreStoredAsReceived) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    std::int64_t inbox = mailbox(bob.id, "INBOX").id;
    // Bytes with no redundancy (a linear congruential sequence, top bits): a frame would not be smaller.
    std::string noise = "Subject: noise\r\n\r\n";
    std::uint32_t x = 12345;
    for (int i = 0; i < 4096; ++i) {
        x = x * 1664525u + 1013904223u;
        noise.push_back(static_cast<char>(x >> 24));
    }
    auto random = deliver(noise, {{inbox, {}}});
    ASSERT_TRUE(random);
    EXPECT_EQ(stored_location(dir_.path(), random->blob_id), 0);
    EXPECT_EQ(*store_->read_blob(random->blob_id), noise);

    SqliteOptions off;
    off.compression_level = 0;
    open(off);
    const std::string text = text_message(70);
    auto plain = deliver(text, {{inbox, {}}});
    ASSERT_TRUE(plain);
    EXPECT_EQ(stored_location(dir_.path(), plain->blob_id), 0);
    EXPECT_EQ(*store_->read_blob(plain->blob_id), text);
    CheckReport report = check();
    EXPECT_TRUE(report.clean) << describe(report);
}

TEST_F(StoreTest, ADamagedFrameIsReportedAsCorruptNeverReadAsMail) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    auto delivered = deliver(text_message(), {{mailbox(bob.id, "INBOX").id, {}}});
    ASSERT_TRUE(delivered);
    ASSERT_EQ(stored_location(dir_.path(), delivered->blob_id), 2);
    store_.reset();
    // Bytes 20 on of the frame overwritten: the frame header survives, its blocks do not decode.
    corrupt_sql(dir_.path(), "UPDATE blob_contents SET content = substr(content, 1, 20) || zeroblob(length(content) - 20) "
                             "WHERE blob_id = '" + delivered->blob_id + "'");
    open();
    auto content = store_->read_blob(delivered->blob_id);
    ASSERT_FALSE(content);
    EXPECT_EQ(content.error().code, Errc::corrupt);
    CheckReport report = check();
    EXPECT_FALSE(report.clean);
    EXPECT_TRUE(mentions(report, delivered->blob_id)) << describe(report);
}

TEST_F(StoreTest, ConcurrentDeliveriesShareCommits) {
    SqliteOptions options;
    options.inline_blob_max = 64;  // every fifth message below is large and goes through a blob writer
    open(options);
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    std::int64_t inbox = mailbox(bob.id, "INBOX").id;
    constexpr int kThreads = 6;
    constexpr int kPerThread = 40;
    std::atomic<int> succeeded{0};
    std::atomic<int> answered{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kPerThread; ++i) {
                Delivery delivery;
                delivery.content = "thread " + std::to_string(t) + " message " + std::to_string(i);
                if (i % 5 == 0) delivery.content.append(100, '+');
                delivery.targets = {{inbox, {}}};
                store_->deliver(std::move(delivery), [&](Result<Delivered> result) {
                    if (result) ++succeeded;
                    ++answered;
                });
            }
        });
    }
    for (auto& thread : threads) thread.join();
    store_.reset();  // closing drains the queue: every accepted delivery is answered first
    EXPECT_EQ(answered.load(), kThreads * kPerThread);
    EXPECT_EQ(succeeded.load(), kThreads * kPerThread);
    open(options);
    auto messages = store_->list_messages(inbox);
    ASSERT_TRUE(messages);
    ASSERT_EQ(messages->size(), static_cast<std::size_t>(kThreads * kPerThread));
    std::set<std::string> contents;
    for (std::size_t i = 0; i < messages->size(); ++i) {
        EXPECT_EQ((*messages)[i].uid, i + 1);  // dense, increasing, in commit order
        contents.insert(*store_->read_blob((*messages)[i].blob_id));
    }
    EXPECT_EQ(contents.size(), static_cast<std::size_t>(kThreads * kPerThread));
    CheckReport report = check();
    EXPECT_TRUE(report.clean) << describe(report);
}

TEST_F(StoreTest, GroupCommitUsesFewerCommitsThanDeliveries) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    std::int64_t inbox = mailbox(bob.id, "INBOX").id;
    constexpr int kDeliveries = 200;
    std::atomic<int> answered{0};
    std::promise<void> all_done;
    for (int i = 0; i < kDeliveries; ++i) {
        Delivery delivery;
        delivery.content = "message " + std::to_string(i);
        delivery.targets = {{inbox, {}}};
        store_->deliver(std::move(delivery), [&](Result<Delivered> result) {
            EXPECT_TRUE(result);
            if (++answered == kDeliveries) all_done.set_value();
        });
    }
    all_done.get_future().wait();
    StoreStats stats = store_->stats();
    EXPECT_EQ(stats.deliveries, static_cast<std::uint64_t>(kDeliveries));
    EXPECT_GE(stats.commits, 1u);
    EXPECT_LT(stats.commits, static_cast<std::uint64_t>(kDeliveries));
}

TEST_F(StoreTest, DeliveryToMissingMailboxFailsWithoutStoringAnything) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    std::int64_t inbox = mailbox(bob.id, "INBOX").id;
    auto failed = deliver(std::string(kSmallMessage), {{inbox, {}}, {999999, {}}});
    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error().code, Errc::not_found);
    EXPECT_TRUE(store_->list_messages(inbox)->empty());  // the first target was rolled back too
    EXPECT_EQ(mailbox(bob.id, "INBOX").uidnext, 1u);
    EXPECT_EQ(store_->stats().failed_deliveries, 1u);
    auto next = deliver(std::string(kSmallMessage), {{inbox, {}}});
    ASSERT_TRUE(next);
    EXPECT_EQ(next->placed[0].uid, 1u);
}

TEST_F(StoreTest, DeliveryRejectsBadInputBeforeQueueing) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    std::int64_t inbox = mailbox(bob.id, "INBOX").id;
    EXPECT_EQ(deliver("x", {}).error().code, Errc::invalid_argument);
    EXPECT_EQ(deliver("x", {{inbox, {"\\Recent"}}}).error().code, Errc::invalid_argument);
    EXPECT_EQ(deliver("x", {{inbox, {"bad keyword"}}}).error().code, Errc::invalid_argument);
    SqliteOptions options;
    options.max_message_bytes = 10;
    options.max_targets = 1;
    open(options);
    EXPECT_EQ(deliver(std::string(11, 'x'), {{inbox, {}}}).error().code, Errc::limit_exceeded);
    EXPECT_EQ(deliver("x", {{inbox, {}}, {inbox, {}}}).error().code, Errc::limit_exceeded);
}

TEST_F(StoreTest, DeliveryFailsWhenTheBlobFileCannotBeWritten) {
    SqliteOptions options;
    options.inline_blob_max = 16;
    open(options);
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    std::int64_t inbox = mailbox(bob.id, "INBOX").id;
    std::string large(100, 'B');
    // A plain file where the fan-out directory should be: the blob's temporary file cannot be created.
    std::filesystem::path fanout = dir_.path() / "blobs" / blob_id_of(large).substr(0, 2);
    std::filesystem::remove(fanout);
    std::ofstream(fanout) << "in the way";
    auto failed = deliver(large, {{inbox, {}}});
    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error().code, Errc::io_error);
    EXPECT_TRUE(store_->list_messages(inbox)->empty());
    EXPECT_EQ(store_->stats().failed_deliveries, 1u);
}

TEST_F(StoreTest, RefusesDeliveriesBeyondTheQueueBound) {
    SqliteOptions options;
    options.max_queued = 0;
    open(options);
    auto refused = deliver("x", {{1, {}}});
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, Errc::unavailable);
}

TEST_F(StoreTest, DeliveryFailsWhenUidsAreExhausted) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    std::int64_t inbox = mailbox(bob.id, "INBOX").id;
    corrupt_sql(dir_.path(), "UPDATE mailboxes SET uidnext = 4294967295 WHERE id = " + std::to_string(inbox));
    auto failed = deliver("x", {{inbox, {}}});
    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error().code, Errc::limit_exceeded);
}

TEST_F(StoreTest, ChangeListenerHearsOfCommittedDeliveries) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    std::int64_t inbox = mailbox(bob.id, "INBOX").id;
    std::mutex mutex;
    std::vector<std::tuple<std::int64_t, std::int64_t, std::uint64_t>> heard;
    store_->set_change_listener([&](std::int64_t account, std::int64_t mailbox_id, std::uint64_t modseq) {
        std::lock_guard lock(mutex);
        heard.emplace_back(account, mailbox_id, modseq);
    });
    ASSERT_TRUE(deliver("one", {{inbox, {}}}));
    ASSERT_TRUE(deliver("two", {{inbox, {}}}));
    store_.reset();  // joins the committer, so the listener has run
    ASSERT_EQ(heard.size(), 2u);
    EXPECT_EQ(heard[1], std::make_tuple(bob.id, inbox, std::uint64_t{3}));
}

// FETCH streams large literals through open_blob(): every range of an inline blob and of a file blob reads
// back exactly the bytes of the whole, clipped at the end, without reading the blob whole.
TEST_F(StoreTest, OpenBlobReadsRangesOfInlineAndFileBlobs) {
    SqliteOptions options;
    options.inline_blob_max = 1024;
    open(options);
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    std::string small = "Subject: small\r\n\r\nhello\r\n";
    std::string large = "Subject: big\r\n\r\n";
    for (int i = 0; large.size() <= 5000; ++i) large += "line " + std::to_string(i) + "\r\n";
    large.push_back('\0');
    large += "after the NUL\r\n";
    for (const std::string* content : {&small, &large}) {
        auto delivered = deliver(*content, {{mailbox(bob.id, "INBOX").id, {}}});
        ASSERT_TRUE(delivered) << delivered.error().message;
        auto reader = store_->open_blob(delivered->blob_id);
        ASSERT_TRUE(reader) << reader.error().message;
        ASSERT_EQ((*reader)->size(), content->size());
        for (std::uint64_t offset : {std::uint64_t{0}, std::uint64_t{7}, std::uint64_t{content->size() - 3}}) {
            for (std::size_t length : {std::size_t{0}, std::size_t{1}, std::size_t{100}, std::size_t{1u << 20}}) {
                auto bytes = (*reader)->read(offset, length);
                ASSERT_TRUE(bytes) << bytes.error().message;
                EXPECT_EQ(*bytes, content->substr(offset, length)) << offset << "+" << length;
            }
        }
        EXPECT_EQ(*(*reader)->read(content->size(), 10), "");
        EXPECT_EQ(*(*reader)->read(content->size() + 100, 10), "");
    }
    EXPECT_EQ(store_->stats().blob_files, 1u);  // the large one was a file, the small one inline
    EXPECT_EQ(store_->open_blob(std::string(64, 'a')).error().code, Errc::not_found);
    EXPECT_EQ(store_->open_blob("../x").error().code, Errc::invalid_argument);
}

TEST_F(StoreTest, ReadBlobRefusesIdsThatAreNotHashes) {
    EXPECT_EQ(store_->read_blob("../../etc/passwd").error().code, Errc::invalid_argument);
    EXPECT_EQ(store_->read_blob(std::string(64, 'A')).error().code, Errc::invalid_argument);
    EXPECT_EQ(store_->read_blob(std::string(64, 'a')).error().code, Errc::not_found);
}

TEST_F(StoreTest, ReadOnlyStoreReadsButRefusesWrites) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    ASSERT_TRUE(deliver("one", {{mailbox(bob.id, "INBOX").id, {}}}));
    SqliteOptions options;
    options.data_dir = dir_.path();
    options.read_only = true;
    auto reader = open_sqlite_store(options);  // beside the writable store, as `magpie` beside magpied
    ASSERT_TRUE(reader) << reader.error().message;
    EXPECT_EQ((*reader)->list_messages(mailbox(bob.id, "INBOX").id)->size(), 1u);
    EXPECT_EQ((*reader)->add_domain("other.test").error().code, Errc::permission_denied);
    std::promise<Result<Delivered>> promise;
    (*reader)->deliver(Delivery{"x", nullptr, 0, {{1, {}}}, {}, std::nullopt, std::nullopt, std::nullopt, std::nullopt}, [&](Result<Delivered> r) { promise.set_value(std::move(r)); });
    EXPECT_EQ(promise.get_future().get().error().code, Errc::permission_denied);
}

TEST_F(StoreTest, CreatesAPrivateDataDirectory) {
    SqliteOptions options;
    options.data_dir = dir_.path() / "fresh";
    auto opened = open_sqlite_store(options);
    ASSERT_TRUE(opened) << opened.error().message;
    auto perms = std::filesystem::status(options.data_dir).permissions();
    EXPECT_EQ(perms & std::filesystem::perms::all, std::filesystem::perms::owner_all);
    EXPECT_TRUE(std::filesystem::exists(options.data_dir / "magpie.db"));
    EXPECT_TRUE(std::filesystem::is_directory(options.data_dir / "blobs" / "a7"));
}

TEST_F(StoreTest, InternalDateDefaultsToTheCommitTime) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    std::int64_t inbox = mailbox(bob.id, "INBOX").id;
    Delivery delivery;
    delivery.content = "no date given";
    delivery.targets = {{inbox, {}}};
    std::promise<Result<Delivered>> promise;
    store_->deliver(std::move(delivery), [&](Result<Delivered> r) { promise.set_value(std::move(r)); });
    auto delivered = promise.get_future().get();
    ASSERT_TRUE(delivered);
    auto message = store_->find_message(inbox, delivered->placed[0].uid);
    ASSERT_TRUE(message);
    EXPECT_GT(message->internal_date, 1'700'000'000);
}

TEST_F(StoreTest, RefusesASchemaNewerThanItKnows) {
    store_.reset();
    corrupt_sql(dir_.path(), "PRAGMA user_version = 99");
    SqliteOptions options;
    options.data_dir = dir_.path();
    auto opened = open_sqlite_store(options);
    ASSERT_FALSE(opened);
    EXPECT_EQ(opened.error().code, Errc::unavailable);
}

// ---- IMAP operations ----

class MailboxOpsTest : public StoreTest {
protected:
    void SetUp() override {
        StoreTest::SetUp();
        ASSERT_TRUE(store_->add_domain("example.test"));
        bob_ = make_account("bob@example.test");
        inbox_ = mailbox(bob_.id, "INBOX").id;
        for (int i = 1; i <= 3; ++i) ASSERT_TRUE(deliver("message " + std::to_string(i), {{inbox_, {}}}));
        store_->set_change_listener([this](std::int64_t, std::int64_t mailbox_id, std::uint64_t modseq) {
            std::lock_guard lock(heard_mutex_);
            heard_.emplace_back(mailbox_id, modseq);
        });
    }

    // The listener writes heard_ from the committer thread: stop the store before heard_ goes away.
    void TearDown() override { store_.reset(); }

    std::vector<std::uint32_t> uids_in(std::int64_t mailbox_id) {
        std::vector<std::uint32_t> uids;
        auto messages = store_->list_messages(mailbox_id);
        EXPECT_TRUE(messages);
        if (!messages) return uids;
        for (const Message& m : *messages) uids.push_back(m.uid);
        return uids;
    }

    Account bob_;
    std::int64_t inbox_ = 0;
    std::mutex heard_mutex_;
    std::vector<std::pair<std::int64_t, std::uint64_t>> heard_;
};

TEST_F(MailboxOpsTest, StoreFlagsSharesOneNewModseqAndSkipsNoOps) {
    auto result = store_->store_flags(inbox_, {3, 1, 1, 99}, FlagUpdate{FlagOperation::add, {"\\Seen", "Work"}, {}});
    ASSERT_TRUE(result) << result.error().message;
    ASSERT_EQ(result->changed.size(), 2u);
    EXPECT_EQ(result->changed[0].uid, 1u);
    EXPECT_EQ(result->changed[1].uid, 3u);
    EXPECT_EQ(result->changed[0].modseq, 5u);  // the mailbox began at 1, three deliveries took 2..4
    EXPECT_EQ(result->changed[1].modseq, 5u);
    EXPECT_EQ(result->changed[0].flags, (std::vector<std::string>{"\\Seen", "Work"}));
    auto again = store_->store_flags(inbox_, {1}, FlagUpdate{FlagOperation::add, {"\\seen"}, {}});
    ASSERT_TRUE(again);
    EXPECT_TRUE(again->changed.empty());
    EXPECT_EQ(again->unchanged, (std::vector<std::uint32_t>{1}));
    EXPECT_EQ(mailbox(bob_.id, "INBOX").highest_modseq, 5u);

    auto removed = store_->store_flags(inbox_, {1}, FlagUpdate{FlagOperation::remove, {"work"}, {}});
    ASSERT_TRUE(removed);
    ASSERT_EQ(removed->changed.size(), 1u);
    EXPECT_EQ(removed->changed[0].flags, (std::vector<std::string>{"\\Seen"}));
    auto replaced = store_->store_flags(inbox_, {1}, FlagUpdate{FlagOperation::replace, {"\\Flagged"}, {}});
    ASSERT_TRUE(replaced);
    EXPECT_EQ(store_->find_message(inbox_, 1)->flags, (std::vector<std::string>{"\\Flagged"}));
    EXPECT_EQ(store_->find_message(inbox_, 1)->modseq, 7u);
    CheckReport report = check();
    EXPECT_TRUE(report.clean) << describe(report);
}

TEST_F(MailboxOpsTest, UnchangedSinceRefusesMessagesModifiedLater) {
    ASSERT_TRUE(store_->store_flags(inbox_, {2}, FlagUpdate{FlagOperation::add, {"\\Answered"}, {}}));  // uid 2 -> 5
    auto result = store_->store_flags(inbox_, {1, 2}, FlagUpdate{FlagOperation::add, {"\\Seen"}, 3});
    ASSERT_TRUE(result);
    ASSERT_EQ(result->changed.size(), 1u);
    EXPECT_EQ(result->changed[0].uid, 1u);
    EXPECT_EQ(result->modified, (std::vector<std::uint32_t>{2}));
}

TEST_F(MailboxOpsTest, ExpungeRemovesOnlyDeletedAndLogsThem) {
    ASSERT_TRUE(store_->store_flags(inbox_, {1, 3}, FlagUpdate{FlagOperation::add, {"\\Deleted"}, {}}));
    auto only_three = std::vector<std::uint32_t>{3, 2};
    auto first = store_->expunge(inbox_, &only_three);  // UID EXPUNGE 2:3: 2 is not \Deleted
    ASSERT_TRUE(first) << first.error().message;
    EXPECT_EQ(*first, (std::vector<std::uint32_t>{3}));
    auto rest = store_->expunge(inbox_);
    ASSERT_TRUE(rest);
    EXPECT_EQ(*rest, (std::vector<std::uint32_t>{1}));
    EXPECT_EQ(uids_in(inbox_), (std::vector<std::uint32_t>{2}));
    Mailbox after = mailbox(bob_.id, "INBOX");
    EXPECT_EQ(after.message_count, 1u);
    EXPECT_EQ(after.total_size, std::string("message 2").size());
    EXPECT_EQ(after.uidnext, 4u);  // UIDs are never reused
    auto nothing = store_->expunge(inbox_);
    ASSERT_TRUE(nothing);
    EXPECT_TRUE(nothing->empty());
    EXPECT_EQ(mailbox(bob_.id, "INBOX").highest_modseq, after.highest_modseq);  // no change, no MODSEQ

    auto changes = store_->changes_since(inbox_, 3);
    ASSERT_TRUE(changes);
    EXPECT_EQ(changes->expunged, (std::vector<std::uint32_t>{1, 3}));
    EXPECT_TRUE(changes->changed.empty());
    EXPECT_EQ(changes->highest_modseq, after.highest_modseq);
    CheckReport report = check();
    EXPECT_TRUE(report.clean) << describe(report);
}

TEST_F(MailboxOpsTest, ChangesSinceListsChangedMessagesInUidOrder) {
    ASSERT_TRUE(store_->store_flags(inbox_, {1}, FlagUpdate{FlagOperation::add, {"\\Seen"}, {}}));
    auto changes = store_->changes_since(inbox_, 3);  // uid 1 at 5 (the STORE), uid 3 at 4 (its delivery)
    ASSERT_TRUE(changes);
    ASSERT_EQ(changes->changed.size(), 2u);
    EXPECT_EQ(changes->changed[0].uid, 1u);
    EXPECT_EQ(changes->changed[0].modseq, 5u);
    EXPECT_EQ(changes->changed[1].uid, 3u);
    EXPECT_EQ(changes->highest_modseq, 5u);
    EXPECT_TRUE(store_->changes_since(inbox_, 5)->changed.empty());
}

TEST_F(MailboxOpsTest, CopySharesBlobsAndReportsCopyUid) {
    Mailbox archive = mailbox(bob_.id, "Archive");
    ASSERT_TRUE(store_->store_flags(inbox_, {2}, FlagUpdate{FlagOperation::add, {"\\Flagged"}, {}}));
    auto copied = store_->copy_messages(inbox_, {3, 2, 42}, archive.id);
    ASSERT_TRUE(copied) << copied.error().message;
    EXPECT_EQ(copied->uidvalidity, archive.uidvalidity);
    ASSERT_EQ(copied->uids.size(), 2u);
    EXPECT_EQ(copied->uids[0], std::make_pair(2u, 1u));
    EXPECT_EQ(copied->uids[1], std::make_pair(3u, 2u));
    auto copy = store_->find_message(archive.id, 1);
    ASSERT_TRUE(copy);
    EXPECT_EQ(copy->blob_id, store_->find_message(inbox_, 2)->blob_id);
    EXPECT_EQ(copy->flags, (std::vector<std::string>{"\\Flagged"}));
    EXPECT_EQ(uids_in(inbox_).size(), 3u);
    CheckReport report = check();
    EXPECT_TRUE(report.clean) << describe(report);
    EXPECT_EQ(report.blobs, 3u);
    EXPECT_EQ(report.messages, 5u);
}

TEST_F(MailboxOpsTest, MoveIsCopyAndExpungeInOneStep) {
    Mailbox trash = mailbox(bob_.id, "Trash");
    auto moved = store_->move_messages(inbox_, {1, 2}, trash.id);
    ASSERT_TRUE(moved) << moved.error().message;
    ASSERT_EQ(moved->uids.size(), 2u);
    EXPECT_EQ(uids_in(inbox_), (std::vector<std::uint32_t>{3}));
    EXPECT_EQ(uids_in(trash.id), (std::vector<std::uint32_t>{1, 2}));
    EXPECT_EQ(store_->changes_since(inbox_, 0)->expunged, (std::vector<std::uint32_t>{1, 2}));
    // A MOVE into the same mailbox renumbers and keeps the Email: EmailTest.MoveIntoTheSameMailbox...
    CheckReport report = check();
    EXPECT_TRUE(report.clean) << describe(report);
    // Both mailboxes, after the commit (the last delivery of SetUp may be heard too: it races the listener's
    // registration). The listener runs on the committer after the write's answer: closing the store waits.
    store_.reset();
    std::lock_guard lock(heard_mutex_);
    auto heard = [&](std::int64_t mailbox_id, std::uint64_t modseq) {
        return std::find(heard_.begin(), heard_.end(), std::make_pair(mailbox_id, modseq)) != heard_.end();
    };
    EXPECT_TRUE(heard(trash.id, 3));  // Trash began at 1; the two copies took 2 and 3
    EXPECT_TRUE(heard(inbox_, 5));
}

TEST_F(MailboxOpsTest, CopyStaysWithinOneAccount) {
    // Every message operation is scoped to an account: another account's mailbox is not found from here.
    Account carol = make_account("carol@example.test");
    auto refused = store_->copy_messages(inbox_, {1}, mailbox(carol.id, "INBOX").id);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, Errc::not_found);
    auto moved = store_->move_messages(inbox_, {1}, mailbox(carol.id, "INBOX").id);
    ASSERT_FALSE(moved);
    EXPECT_EQ(moved.error().code, Errc::not_found);
}

TEST_F(MailboxOpsTest, CreateRenameAndDeleteMailboxes) {
    auto work = store_->create_mailbox(bob_.id, "Work");
    ASSERT_TRUE(work) << work.error().message;
    EXPECT_EQ(work->special_use, SpecialUse::none);
    ASSERT_TRUE(store_->create_mailbox(bob_.id, "Work/2026"));
    EXPECT_EQ(store_->create_mailbox(bob_.id, "Work").error().code, Errc::already_exists);
    EXPECT_EQ(store_->create_mailbox(bob_.id, "inbox").error().code, Errc::already_exists);
    EXPECT_EQ(store_->create_mailbox(bob_.id, "a//b").error().code, Errc::invalid_argument);
    EXPECT_EQ(store_->create_mailbox(bob_.id, "bad\x01").error().code, Errc::invalid_argument);
    EXPECT_EQ(store_->create_mailbox(99999, "Work").error().code, Errc::not_found);

    ASSERT_TRUE(store_->rename_mailbox(bob_.id, "Work", "Jobs"));
    auto renamed = store_->find_mailbox(bob_.id, "Jobs");
    ASSERT_TRUE(renamed);
    EXPECT_EQ(renamed->id, work->id);
    EXPECT_EQ(renamed->uidvalidity, work->uidvalidity);
    EXPECT_TRUE(store_->find_mailbox(bob_.id, "Jobs/2026"));  // inferiors follow
    EXPECT_EQ(store_->find_mailbox(bob_.id, "Work/2026").error().code, Errc::not_found);
    EXPECT_EQ(store_->rename_mailbox(bob_.id, "Jobs", "Sent").error().code, Errc::already_exists);
    EXPECT_EQ(store_->rename_mailbox(bob_.id, "Jobs", "Jobs/inner").error().code, Errc::invalid_argument);

    EXPECT_FALSE(store_->find_mailbox(bob_.id, "Jobs")->subscribed);  // CREATE does not subscribe

    EXPECT_EQ(store_->delete_mailbox(bob_.id, "INBOX").error().code, Errc::permission_denied);
    ASSERT_TRUE(store_->delete_mailbox(bob_.id, "Jobs"));
    EXPECT_EQ(store_->find_mailbox(bob_.id, "Jobs").error().code, Errc::not_found);
    auto again = store_->create_mailbox(bob_.id, "Jobs");
    ASSERT_TRUE(again);
    EXPECT_NE(again->uidvalidity, work->uidvalidity);  // a reused name never sees an old UIDVALIDITY
}

TEST_F(MailboxOpsTest, RenamingInboxMovesItsMessagesAndLeavesItEmpty) {
    ASSERT_TRUE(store_->rename_mailbox(bob_.id, "inbox", "Old mail"));
    EXPECT_TRUE(uids_in(inbox_).empty());
    auto old_mail = store_->find_mailbox(bob_.id, "Old mail");
    ASSERT_TRUE(old_mail);
    EXPECT_EQ(uids_in(old_mail->id), (std::vector<std::uint32_t>{1, 2, 3}));
    EXPECT_EQ(mailbox(bob_.id, "INBOX").uidnext, 4u);
    CheckReport report = check();
    EXPECT_TRUE(report.clean) << describe(report);
}

// ---- narrow reads, kept counters, \Recent and subscriptions ----

// The counters a STATUS would need, computed the slow way from the whole rows.
MailboxStatus counted(Store& store, std::int64_t mailbox_id, std::uint32_t first_recent) {
    MailboxStatus status;
    auto messages = store.list_messages(mailbox_id);
    EXPECT_TRUE(messages);
    if (!messages) return status;
    for (const Message& m : *messages) {
        auto has = [&](std::string_view flag) { return std::ranges::find(m.flags, flag) != m.flags.end(); };
        ++status.messages;
        status.size += m.size;
        if (!has("\\Seen")) ++status.unseen;
        if (has("\\Deleted")) {
            ++status.deleted;
            status.deleted_size += m.size;
        }
        if (m.uid >= first_recent) ++status.recent;
    }
    return status;
}

void expect_counters(Store& store, std::int64_t mailbox_id, std::uint32_t first_recent, std::string_view step) {
    auto kept = store.mailbox_status(mailbox_id);
    ASSERT_TRUE(kept) << kept.error().message;
    MailboxStatus expected = counted(store, mailbox_id, first_recent);
    SCOPED_TRACE(step);
    EXPECT_EQ(kept->messages, expected.messages);
    EXPECT_EQ(kept->size, expected.size);
    EXPECT_EQ(kept->unseen, expected.unseen);
    EXPECT_EQ(kept->deleted, expected.deleted);
    EXPECT_EQ(kept->deleted_size, expected.deleted_size);
    EXPECT_EQ(kept->recent, expected.recent);
}

TEST_F(MailboxOpsTest, MailboxStatusKeepsItsCountersThroughEveryChange) {
    Mailbox trash = mailbox(bob_.id, "Trash");
    expect_counters(*store_, inbox_, 1, "three deliveries");
    ASSERT_TRUE(deliver("seen on arrival", {{inbox_, {"\\Seen"}}, {trash.id, {"\\Deleted"}}}));
    expect_counters(*store_, inbox_, 1, "delivered \\Seen");
    expect_counters(*store_, trash.id, 1, "delivered \\Deleted");
    ASSERT_TRUE(store_->store_flags(inbox_, {1, 2}, FlagUpdate{FlagOperation::add, {"\\Seen", "\\Deleted"}, {}}));
    ASSERT_TRUE(store_->store_flags(inbox_, {2}, FlagUpdate{FlagOperation::replace, {"\\Deleted"}, {}}));
    expect_counters(*store_, inbox_, 1, "flags");
    ASSERT_TRUE(store_->copy_messages(inbox_, {1, 3}, trash.id));
    expect_counters(*store_, trash.id, 1, "copy");
    ASSERT_TRUE(store_->move_messages(inbox_, {3}, trash.id));
    expect_counters(*store_, inbox_, 1, "move, source");
    expect_counters(*store_, trash.id, 1, "move, target");
    auto gone = store_->expunge(inbox_);
    ASSERT_TRUE(gone);
    EXPECT_EQ(*gone, (std::vector<std::uint32_t>{1, 2}));
    expect_counters(*store_, inbox_, 1, "expunge");
    auto status = store_->mailbox_status(inbox_);
    ASSERT_TRUE(status);
    EXPECT_EQ(status->messages, 1u);  // the \Seen delivery
    EXPECT_EQ(status->unseen, 0u);
    EXPECT_EQ(status->uidnext, 5u);
    EXPECT_EQ(status->uidvalidity, mailbox(bob_.id, "INBOX").uidvalidity);
    EXPECT_EQ(status->highest_modseq, mailbox(bob_.id, "INBOX").highest_modseq);
    CheckReport report = check();
    EXPECT_TRUE(report.clean) << describe(report);
}

TEST_F(MailboxOpsTest, ListStatesGivesUidModseqAndFlagsInUidOrder) {
    ASSERT_TRUE(store_->store_flags(inbox_, {2}, FlagUpdate{FlagOperation::add, {"\\Flagged", "Work"}, {}}));
    auto states = store_->list_states(inbox_);
    ASSERT_TRUE(states) << states.error().message;
    ASSERT_EQ(states->size(), 3u);
    EXPECT_EQ((*states)[0].uid, 1u);
    EXPECT_EQ((*states)[0].modseq, 2u);
    EXPECT_TRUE((*states)[0].flags.empty());
    EXPECT_EQ((*states)[1].uid, 2u);
    EXPECT_EQ((*states)[1].modseq, 5u);
    EXPECT_EQ((*states)[1].flags, (std::vector<std::string>{"\\Flagged", "Work"}));
    EXPECT_EQ((*states)[2].uid, 3u);
    EXPECT_EQ(store_->list_states(99999).error().code, Errc::not_found);
}

TEST_F(MailboxOpsTest, FindMessagesReadsAUidSetInOneCallInUidOrder) {
    for (int i = 4; i <= 9; ++i) ASSERT_TRUE(deliver("message " + std::to_string(i), {{inbox_, {}}}));
    ASSERT_TRUE(store_->store_flags(inbox_, {5}, FlagUpdate{FlagOperation::add, {"\\Deleted"}, {}}));
    ASSERT_TRUE(store_->expunge(inbox_));  // uid 5 is gone: skipped, not an error
    auto found = store_->find_messages(inbox_, {9, 1, 5, 2, 3, 3, 7, 42});
    ASSERT_TRUE(found) << found.error().message;
    std::vector<std::uint32_t> uids;
    for (const Message& m : *found) uids.push_back(m.uid);
    EXPECT_EQ(uids, (std::vector<std::uint32_t>{1, 2, 3, 7, 9}));
    EXPECT_EQ((*found)[3].summary.subject, "hi");
    EXPECT_EQ(*store_->read_blob((*found)[3].blob_id), "message 7");
    EXPECT_TRUE(store_->find_messages(inbox_, {})->empty());
    EXPECT_EQ(store_->find_messages(99999, {1}).error().code, Errc::not_found);
}

TEST_F(MailboxOpsTest, ClaimRecentHandsNewMessagesToOneSelectOnly) {
    EXPECT_EQ(store_->mailbox_status(inbox_)->recent, 3u);
    auto first = store_->claim_recent(inbox_);
    ASSERT_TRUE(first) << first.error().message;
    EXPECT_EQ(*first, 1u);  // uids 1..3 are \Recent for this session
    EXPECT_EQ(store_->mailbox_status(inbox_)->recent, 0u);
    auto second = store_->claim_recent(inbox_);
    ASSERT_TRUE(second);
    EXPECT_EQ(*second, 4u);  // = UIDNEXT: nothing is \Recent for the next session
    ASSERT_TRUE(deliver("message 4", {{inbox_, {}}}));
    EXPECT_EQ(store_->mailbox_status(inbox_)->recent, 1u);
    open();  // the mark is stored: it survives a restart
    EXPECT_EQ(store_->mailbox_status(inbox_)->recent, 1u);
    EXPECT_EQ(*store_->claim_recent(inbox_), 4u);
    EXPECT_EQ(store_->claim_recent(99999).error().code, Errc::not_found);
    CheckReport report = check();
    EXPECT_TRUE(report.clean) << describe(report);
}

TEST_F(MailboxOpsTest, NewMailboxStartsAtHighestModseqOne) {
    auto created = store_->create_mailbox(bob_.id, "Fresh");
    ASSERT_TRUE(created);
    EXPECT_EQ(created->highest_modseq, 1u);
    auto status = store_->mailbox_status(created->id);
    ASSERT_TRUE(status);
    EXPECT_EQ(status->highest_modseq, 1u);
    EXPECT_EQ(status->messages, 0u);
    EXPECT_EQ(status->uidnext, 1u);
    auto delivered = deliver("first", {{created->id, {}}});
    ASSERT_TRUE(delivered);
    EXPECT_EQ(delivered->placed[0].modseq, 2u);
}

TEST_F(MailboxOpsTest, SubscriptionsAreNamesIndependentOfMailboxes) {
    auto defaults = store_->list_subscriptions(bob_.id);
    ASSERT_TRUE(defaults) << defaults.error().message;
    EXPECT_EQ(*defaults, (std::vector<std::string>{"Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"}));

    ASSERT_TRUE(store_->create_mailbox(bob_.id, "Work"));
    EXPECT_FALSE(mailbox(bob_.id, "Work").subscribed);  // CREATE does not subscribe
    ASSERT_TRUE(store_->set_subscribed(bob_.id, "Work", true));
    EXPECT_TRUE(mailbox(bob_.id, "Work").subscribed);
    ASSERT_TRUE(store_->set_subscribed(bob_.id, "Work", true));  // again: still one entry
    ASSERT_TRUE(store_->set_subscribed(bob_.id, "Later/Box", true));  // no such mailbox: fine
    ASSERT_TRUE(store_->set_subscribed(bob_.id, "inbox", false));     // INBOX in any case
    EXPECT_FALSE(mailbox(bob_.id, "INBOX").subscribed);
    EXPECT_EQ(store_->set_subscribed(bob_.id, "INBOX", false).error().code, Errc::not_found);
    EXPECT_EQ(store_->set_subscribed(bob_.id, "a//b", true).error().code, Errc::invalid_argument);
    EXPECT_EQ(store_->set_subscribed(99999, "Work", true).error().code, Errc::not_found);

    // DELETE keeps the subscription (RFC 3501 6.3.4); a new mailbox of that name is subscribed again.
    ASSERT_TRUE(store_->delete_mailbox(bob_.id, "Work"));
    auto after_delete = store_->list_subscriptions(bob_.id);
    ASSERT_TRUE(after_delete);
    EXPECT_NE(std::ranges::find(*after_delete, "Work"), after_delete->end());
    ASSERT_TRUE(store_->create_mailbox(bob_.id, "Work"));
    EXPECT_TRUE(mailbox(bob_.id, "Work").subscribed);

    // RENAME carries the subscriptions of the mailbox and its inferiors to the new names.
    ASSERT_TRUE(store_->create_mailbox(bob_.id, "Work/2026"));
    ASSERT_TRUE(store_->set_subscribed(bob_.id, "Work/2026", true));
    ASSERT_TRUE(store_->rename_mailbox(bob_.id, "Work", "Jobs"));
    EXPECT_TRUE(mailbox(bob_.id, "Jobs").subscribed);
    EXPECT_TRUE(mailbox(bob_.id, "Jobs/2026").subscribed);
    auto after_rename = store_->list_subscriptions(bob_.id);
    ASSERT_TRUE(after_rename);
    EXPECT_EQ(*after_rename, (std::vector<std::string>{"Archive", "Drafts", "Jobs", "Jobs/2026", "Junk",
                                                       "Later/Box", "Sent", "Trash"}));
}

TEST_F(StoreTest, SubscriptionsAreBounded) {
    SqliteOptions options;
    options.max_subscriptions = 7;
    open(options);
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");  // six default subscriptions
    ASSERT_TRUE(store_->set_subscribed(bob.id, "Seventh", true));
    EXPECT_EQ(store_->set_subscribed(bob.id, "Eighth", true).error().code, Errc::limit_exceeded);
}

// ---- check_store ----

class CheckTest : public StoreTest {
protected:
    void SetUp() override {
        SqliteOptions options;
        options.inline_blob_max = 64;
        open(options);
        ASSERT_TRUE(store_->add_domain("example.test"));
        bob_ = make_account("bob@example.test");
        inbox_ = mailbox(bob_.id, "INBOX").id;
        auto small = deliver("small message", {{inbox_, {}}});
        ASSERT_TRUE(small);
        small_blob_ = small->blob_id;
        auto large = deliver(std::string(200, 'L'), {{inbox_, {}}});
        ASSERT_TRUE(large);
        large_blob_ = large->blob_id;
    }

    Account bob_;
    std::int64_t inbox_ = 0;
    std::string small_blob_, large_blob_;
};

TEST_F(CheckTest, CleanOnAGoodStoreWhileItIsOpenAndAfterClose) {
    CheckReport open_report = check();
    EXPECT_TRUE(open_report.clean) << describe(open_report);
    EXPECT_EQ(open_report.messages, 2u);
    EXPECT_EQ(open_report.blobs, 2u);
    EXPECT_EQ(open_report.garbage_blobs, 0u);
    store_.reset();
    CheckReport closed_report = check();
    EXPECT_TRUE(closed_report.clean) << describe(closed_report);
    EXPECT_EQ(closed_report.summary, "clean: 2 messages, 2 blobs, 0 garbage blobs");
}

TEST_F(CheckTest, StaysCleanWhileDeliveriesCommit) {
    std::atomic<bool> stop{false};
    std::atomic<int> delivered{0};
    std::thread writer([&] {
        for (int i = 0; !stop.load() && i < 2000; ++i) {
            std::string content = "busy " + std::to_string(i);
            if (i % 3 == 0) content.append(100, '#');  // some large: files appear beside the snapshot
            if (deliver(std::move(content), {{inbox_, {}}})) ++delivered;
        }
    });
    for (int round = 0; round < 5; ++round) {
        CheckReport report = check();
        EXPECT_TRUE(report.clean) << describe(report);
    }
    stop = true;
    writer.join();
    EXPECT_GT(delivered.load(), 0);
}

TEST_F(CheckTest, ReportsADeletedBlobFile) {
    std::filesystem::remove(BlobFiles(dir_.path()).path_of(large_blob_));
    CheckReport report = check();
    EXPECT_FALSE(report.clean);
    EXPECT_TRUE(mentions(report, "file missing")) << describe(report);
}

TEST_F(CheckTest, ReportsAFlippedByteInABlobFile) {
    std::filesystem::path path = BlobFiles(dir_.path()).path_of(large_blob_);
    {
        std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
        file.seekp(100);
        file.put('X');
    }
    CheckReport report = check();
    EXPECT_FALSE(report.clean);
    EXPECT_TRUE(mentions(report, "does not match its SHA-256")) << describe(report);
}

TEST_F(CheckTest, ReportsAFlippedByteInAnInlineBlob) {
    corrupt_sql(dir_.path(), "UPDATE blob_contents SET content = CAST('smell message' AS BLOB) WHERE blob_id = '" +
                                 small_blob_ + "'");
    CheckReport report = check();
    EXPECT_FALSE(report.clean);
    EXPECT_TRUE(mentions(report, "does not match its SHA-256")) << describe(report);
}

TEST_F(CheckTest, ReportsAMessageWhoseBlobRowIsGone) {
    corrupt_sql(dir_.path(), "PRAGMA foreign_keys = OFF; DELETE FROM blobs WHERE id = '" + small_blob_ + "'");
    CheckReport report = check();
    EXPECT_FALSE(report.clean);
    EXPECT_TRUE(mentions(report, "blob " + small_blob_ + " missing")) << describe(report);
    EXPECT_TRUE(mentions(report, "foreign key")) << describe(report);
}

TEST_F(CheckTest, ReportsAUidNotBelowUidnext) {
    corrupt_sql(dir_.path(), "UPDATE mailboxes SET uidnext = 2 WHERE id = " + std::to_string(inbox_));
    CheckReport report = check();
    EXPECT_FALSE(report.clean);
    EXPECT_TRUE(mentions(report, "not below uidnext")) << describe(report);
}

TEST_F(CheckTest, ReportsAModseqAboveHighestModseq) {
    corrupt_sql(dir_.path(), "UPDATE mailboxes SET highest_modseq = 1 WHERE id = " + std::to_string(inbox_));
    CheckReport report = check();
    EXPECT_FALSE(report.clean);
    EXPECT_TRUE(mentions(report, "above highest modseq")) << describe(report);
}

TEST_F(CheckTest, ReportsAMessageMissingFromTheChangeLog) {
    corrupt_sql(dir_.path(), "DELETE FROM change_log WHERE uid = 1");
    CheckReport report = check();
    EXPECT_FALSE(report.clean);
    EXPECT_TRUE(mentions(report, "change log: no entry for mailbox")) << describe(report);
}

TEST_F(CheckTest, ReportsAnExpungedUidThatIsStillPresent) {
    corrupt_sql(dir_.path(), "UPDATE mailboxes SET highest_modseq = 3 WHERE id = " + std::to_string(inbox_) +
                                 "; INSERT INTO change_log VALUES(" + std::to_string(inbox_) + ", 3, 1, 3)");
    CheckReport report = check();
    EXPECT_FALSE(report.clean);
    EXPECT_TRUE(mentions(report, "after the message's modseq")) << describe(report);
}

TEST_F(CheckTest, ReportsWrongMailboxCounters) {
    corrupt_sql(dir_.path(), "UPDATE mailboxes SET message_count = 7 WHERE id = " + std::to_string(inbox_));
    CheckReport report = check();
    EXPECT_FALSE(report.clean);
    EXPECT_TRUE(mentions(report, "counts 7 messages")) << describe(report);
}

TEST_F(CheckTest, ReportsWrongUnseenAndRecentCounters) {
    corrupt_sql(dir_.path(), "UPDATE mailboxes SET unseen_count = 0, recent_count = 5 WHERE id = " +
                                 std::to_string(inbox_));
    CheckReport report = check();
    EXPECT_FALSE(report.clean);
    EXPECT_TRUE(mentions(report, "counts 0 unseen")) << describe(report);
}

TEST_F(CheckTest, CountsUnreferencedBlobsAsGarbageNotCorruption) {
    // A crash after the file was written but before the commit leaves an unnamed file; a deleted account
    // leaves blob rows nobody references. Neither is corruption.
    std::string orphan(300, 'O');
    ASSERT_TRUE(BlobFiles(dir_.path()).write(blob_id_of(orphan), orphan));
    ASSERT_TRUE(store_->delete_account("bob@example.test"));
    CheckReport report = check();
    EXPECT_TRUE(report.clean) << describe(report);
    EXPECT_EQ(report.messages, 0u);
    EXPECT_EQ(report.garbage_blobs, 3u);  // two unreferenced rows + one file without a row
}

// ---- a writer killed mid-stream ----

// The child half of KilledWriterLosesNothingAcknowledged: run by that test in a process of its own (this
// same binary), skipped otherwise. It delivers without pause and prints "N UID" once delivery N is durable.
TEST(CrashChild, DeliversUntilKilled) {
    const char* dir = std::getenv("MAGPIE_STORE_CRASH_DIR");
    if (dir == nullptr) GTEST_SKIP() << "only run as the child of KilledWriterLosesNothingAcknowledged";
    std::mutex out_mutex;  // declared before the store: its callbacks use them until it closes
    std::atomic<int> in_flight{0};
    SqliteOptions options;
    options.data_dir = dir;
    options.inline_blob_max = 256;  // every tenth message below is large and goes to a file
    auto store = open_sqlite_store(options);
    ASSERT_TRUE(store);
    auto account = (*store)->find_account("bob@example.test");
    ASSERT_TRUE(account);
    std::int64_t inbox = (*store)->find_mailbox(account->id, "INBOX")->id;
    for (int n = 0; n < 100000; ++n) {
        while (in_flight.load() >= 64) std::this_thread::yield();
        ++in_flight;
        Delivery delivery;
        delivery.content = "crash message " + std::to_string(n);
        if (n % 10 == 0) delivery.content.append(400, '#');
        delivery.targets = {{inbox, {}}};
        (*store)->deliver(std::move(delivery), [&, n](Result<Delivered> result) {
            if (result) {
                std::string line = fmt::format("{} {}\n", n, result->placed[0].uid);
                std::lock_guard lock(out_mutex);
                ASSERT_EQ(::write(STDOUT_FILENO, line.data(), line.size()), static_cast<ssize_t>(line.size()));
            }
            --in_flight;
        });
    }
}

TEST_F(StoreTest, KilledWriterLosesNothingAcknowledged) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    std::int64_t inbox = mailbox(bob.id, "INBOX").id;
    store_.reset();

    int out[2];
    ASSERT_EQ(::pipe(out), 0);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::dup2(out[1], STDOUT_FILENO);
        ::close(out[0]);
        ::setenv("MAGPIE_STORE_CRASH_DIR", dir_.path().c_str(), 1);
        ::execl("/proc/self/exe", "store_sqlite_test", "--gtest_filter=CrashChild.*", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    ::close(out[1]);
    std::map<int, std::uint32_t> acknowledged;  // delivery number -> uid
    std::string buffer;
    char chunk[4096];
    while (acknowledged.size() < 300) {
        ssize_t n = ::read(out[0], chunk, sizeof chunk);
        if (n <= 0) break;
        buffer.append(chunk, static_cast<std::size_t>(n));
        std::size_t end;
        while ((end = buffer.find('\n')) != std::string::npos) {
            std::string line = buffer.substr(0, end);
            buffer.erase(0, end + 1);
            std::size_t space = line.find(' ');
            if (line.empty() || line[0] < '0' || line[0] > '9' || space == std::string::npos) continue;  // gtest's
            auto number = std::stoi(line.substr(0, space));
            acknowledged[number] = static_cast<std::uint32_t>(std::stoul(line.substr(space + 1)));
        }
    }
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    ::close(out[0]);
    ASSERT_GE(acknowledged.size(), 300u) << "the child stopped early";

    // Reopen (recovery runs on the WAL) and find every acknowledged message with its bytes.
    open();
    auto messages = store_->list_messages(inbox);
    ASSERT_TRUE(messages);
    std::map<std::uint32_t, const Message*> by_uid;
    for (const Message& m : *messages) by_uid[m.uid] = &m;
    for (const auto& [number, uid] : acknowledged) {
        auto found = by_uid.find(uid);
        ASSERT_NE(found, by_uid.end()) << "acknowledged delivery " << number << " (uid " << uid << ") lost";
        std::string expected = "crash message " + std::to_string(number);
        if (number % 10 == 0) expected.append(400, '#');
        EXPECT_EQ(*store_->read_blob(found->second->blob_id), expected);
    }
    std::uint32_t previous = 0;
    for (const Message& m : *messages) {
        EXPECT_GT(m.uid, previous);
        previous = m.uid;
    }
    CheckReport report = check();
    EXPECT_TRUE(report.clean) << describe(report);  // a kill leaves at most garbage, never corruption
    // And the store goes on: the next UID follows the last one committed.
    auto next = deliver("after the crash", {{inbox, {}}});
    ASSERT_TRUE(next);
    EXPECT_EQ(next->placed[0].uid, previous + 1);
}

TEST(CheckStore, ReportsNotFoundForAMissingStore) {
    TempDir dir;
    auto report = check_store(dir.path() / "nothing-here");
    ASSERT_FALSE(report);
    EXPECT_EQ(report.error().code, Errc::not_found);
}

}  // namespace
}  // namespace magpie::store

namespace magpie::store {
namespace {

bool spool_files_left(const std::filesystem::path& data_dir) {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(data_dir / "blobs"))
        if (entry.path().filename().string().find("spool") != std::string::npos) return true;
    return false;
}

// Issue 11: a message received in pieces is spooled to a file and that file becomes its blob (hashed from
// the file, fsynced, renamed), never the whole message in memory; a spool dropped unused leaves nothing.
TEST_F(StoreTest, ASpooledMessageBecomesItsBlob) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    const Mailbox inbox = mailbox(bob.id, "INBOX");
    std::string content = "Subject: spooled\r\n\r\n";
    while (content.size() < 300 * 1024) content += "0123456789abcdef0123456789abcdef0123456789abcdef0123456789\r\n";

    auto spool = store_->open_spool();
    ASSERT_TRUE(spool) << spool.error().message;
    for (std::size_t at = 0; at < content.size(); at += 10000) ASSERT_TRUE((*spool)->append(content.substr(at, 10000)));
    EXPECT_EQ((*spool)->size(), content.size());
    auto mapped = (*spool)->map();
    ASSERT_TRUE(mapped) << mapped.error().message;
    EXPECT_EQ(*mapped, content);
    (*spool)->unmap();

    Delivery delivery;
    delivery.spooled = std::move(*spool);
    delivery.internal_date = 1'700'000'000;
    delivery.targets = {{inbox.id, {}}};
    delivery.summary.subject = "spooled";
    std::promise<Result<Delivered>> promise;
    auto future = promise.get_future();
    store_->deliver(std::move(delivery), [&](Result<Delivered> result) { promise.set_value(std::move(result)); });
    auto delivered = future.get();
    ASSERT_TRUE(delivered) << delivered.error().message;
    EXPECT_EQ(delivered->blob_id, blob_id_of(content));
    EXPECT_EQ(*store_->read_blob(delivered->blob_id), content);
    EXPECT_EQ(store_->stats().blob_files, 1u);
    EXPECT_FALSE(spool_files_left(dir_.path()));

    // The same bytes again: the stored blob is kept, the second spool file removed.
    auto again = store_->open_spool();
    ASSERT_TRUE(again);
    ASSERT_TRUE((*again)->append(content));
    Delivery twice;
    twice.spooled = std::move(*again);
    twice.targets = {{inbox.id, {}}};
    std::promise<Result<Delivered>> second;
    auto second_future = second.get_future();
    store_->deliver(std::move(twice), [&](Result<Delivered> result) { second.set_value(std::move(result)); });
    auto redelivered = second_future.get();
    ASSERT_TRUE(redelivered) << redelivered.error().message;
    EXPECT_EQ(redelivered->blob_id, delivered->blob_id);
    EXPECT_FALSE(spool_files_left(dir_.path()));

    {
        auto dropped = store_->open_spool();
        ASSERT_TRUE(dropped);
        ASSERT_TRUE((*dropped)->append("abandoned"));
        EXPECT_TRUE(spool_files_left(dir_.path()));
    }
    EXPECT_FALSE(spool_files_left(dir_.path()));
    auto report = check();
    EXPECT_TRUE(report.clean) << describe(report);
}

TEST_F(StoreTest, ADeliveryWithContentAndASpoolIsRefused) {
    ASSERT_TRUE(store_->add_domain("example.test"));
    Account bob = make_account("bob@example.test");
    auto spool = store_->open_spool();
    ASSERT_TRUE(spool);
    Delivery delivery;
    delivery.content = "Subject: x\r\n\r\n";
    delivery.spooled = std::move(*spool);
    delivery.targets = {{mailbox(bob.id, "INBOX").id, {}}};
    std::optional<Result<Delivered>> outcome;
    store_->deliver(std::move(delivery), [&](Result<Delivered> result) { outcome = std::move(result); });
    ASSERT_TRUE(outcome.has_value());
    EXPECT_EQ(outcome->error().code, Errc::invalid_argument);
}

}  // namespace
}  // namespace magpie::store
