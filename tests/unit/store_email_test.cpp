// Message identity (issue 11): one Email per stored message per account, stable across COPY and MOVE, with
// a membership (UID, MODSEQ) per mailbox, flags per Email shown in every mailbox, threads computed at
// delivery, the account state and its changes, and the JMAP-shaped queries and updates built on them.
#include <sqlite3.h>

#include <algorithm>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "store/flags.h"
#include "store/sqlite/emails.h"
#include "store/store.h"
#include "store_test_support.h"

namespace magpie::store {
namespace {

constexpr std::int64_t kDay = 24 * 3600;
constexpr std::int64_t kT0 = 1'700'000'000;

class EmailTest : public StoreTest {
protected:
    void SetUp() override {
        StoreTest::SetUp();
        ASSERT_TRUE(store_->add_domain("example.test"));
        bob_ = make_account("bob@example.test");
        inbox_ = mailbox(bob_.id, "INBOX").id;
        trash_ = mailbox(bob_.id, "Trash").id;
        archive_ = mailbox(bob_.id, "Archive").id;
    }

    // Delivers a message with these header fields (as summarize() would give them) at `received_at`.
    Delivered::Placed deliver_mail(std::int64_t mailbox_id, const std::string& subject, const std::string& message_id,
                                   const std::string& in_reply_to = "", const std::string& references = "",
                                   std::int64_t received_at = kT0, std::vector<std::string> flags = {}) {
        Delivery delivery;
        delivery.content = "Message-ID: " + message_id + "\r\nSubject: " + subject + "\r\n\r\nbody " + message_id + "\r\n";
        delivery.internal_date = received_at;
        delivery.targets = {{mailbox_id, std::move(flags)}};
        delivery.summary.subject = subject;
        delivery.summary.from = "Alice <alice@remote.test>";
        delivery.summary.message_id = message_id;
        delivery.summary.in_reply_to = in_reply_to;
        delivery.summary.references = references;
        std::promise<Result<Delivered>> promise;
        auto future = promise.get_future();
        store_->deliver(std::move(delivery), [&](Result<Delivered> result) { promise.set_value(std::move(result)); });
        auto delivered = future.get();
        EXPECT_TRUE(delivered) << delivered.error().message;
        return delivered ? delivered->placed.front() : Delivered::Placed{};
    }

    Email email(std::int64_t id) {
        auto found = store_->find_emails(bob_.id, {id});
        EXPECT_TRUE(found) << found.error().message;
        EXPECT_EQ(found ? found->size() : 0u, 1u) << "email " << id;
        return found && !found->empty() ? found->front() : Email{};
    }

    std::vector<std::int64_t> mailboxes_of(const Email& e) {
        std::vector<std::int64_t> ids;
        for (const auto& m : e.mailboxes) ids.push_back(m.mailbox_id);
        return ids;
    }

    void expect_clean() {
        auto report = check();
        EXPECT_TRUE(report.clean) << describe(report);
    }

    Account bob_;
    std::int64_t inbox_ = 0, trash_ = 0, archive_ = 0;
};

TEST(JmapKeywords, NameTheImapSystemFlagsAndLowerCaseTheRest) {
    EXPECT_EQ(jmap_keyword("\\Seen"), "$seen");
    EXPECT_EQ(jmap_keyword("\\answered"), "$answered");
    EXPECT_EQ(jmap_keyword("\\Deleted"), "$deleted");
    EXPECT_EQ(jmap_keyword("$Forwarded"), "$forwarded");
    EXPECT_EQ(imap_flag_of_keyword("$SEEN"), "\\Seen");
    EXPECT_EQ(imap_flag_of_keyword("$draft"), "\\Draft");
    EXPECT_EQ(imap_flag_of_keyword("$label"), "$label");
}

// ---- identity across IMAP operations

TEST_F(EmailTest, DeliveryMakesOneEmailWithOneMembershipAndIMAPSeesItsIds) {
    auto placed = deliver_mail(inbox_, "hello", "<1@remote.test>");
    ASSERT_GT(placed.email_id, 0);
    EXPECT_EQ(placed.thread_id, placed.email_id);  // a new thread bears its first Email's id
    Email e = email(placed.email_id);
    EXPECT_EQ(e.account_id, bob_.id);
    EXPECT_EQ(e.received_at, kT0);
    ASSERT_EQ(e.mailboxes.size(), 1u);
    EXPECT_EQ(e.mailboxes[0].mailbox_id, inbox_);
    EXPECT_EQ(e.mailboxes[0].uid, placed.uid);
    EXPECT_EQ(e.mailboxes[0].modseq, placed.modseq);
    EXPECT_EQ(e.summary.subject, "hello");
    auto message = store_->find_message(inbox_, placed.uid);
    ASSERT_TRUE(message);
    EXPECT_EQ(message->email_id, placed.email_id);
    EXPECT_EQ(message->thread_id, placed.thread_id);
    expect_clean();
}

TEST_F(EmailTest, CopyAddsAMembershipToTheSameEmailWithItsOwnUid) {
    auto placed = deliver_mail(inbox_, "hello", "<1@remote.test>");
    deliver_mail(trash_, "filler", "<f@remote.test>");  // Trash's next UID is 2
    auto copied = store_->copy_messages(inbox_, {placed.uid}, trash_);
    ASSERT_TRUE(copied) << copied.error().message;
    ASSERT_EQ(copied->uids.size(), 1u);
    EXPECT_EQ(copied->uids[0].second, 2u);
    auto copy = store_->find_message(trash_, 2);
    ASSERT_TRUE(copy);
    EXPECT_EQ(copy->email_id, placed.email_id);
    Email e = email(placed.email_id);
    EXPECT_EQ(mailboxes_of(e), (std::vector<std::int64_t>{inbox_, trash_}));
    EXPECT_EQ(e.mailboxes[1].uid, 2u);
    EXPECT_EQ(check().emails, 2u);  // the copy is a membership, not an Email
    expect_clean();
}

TEST_F(EmailTest, CopyIntoAMailboxThatHoldsTheEmailMakesANewEmailInTheSameThread) {
    auto placed = deliver_mail(inbox_, "hello", "<1@remote.test>");
    auto copied = store_->copy_messages(inbox_, {placed.uid}, inbox_);
    ASSERT_TRUE(copied) << copied.error().message;
    auto copy = store_->find_message(inbox_, copied->uids[0].second);
    ASSERT_TRUE(copy);
    EXPECT_NE(copy->email_id, placed.email_id);
    EXPECT_EQ(copy->thread_id, placed.thread_id);
    expect_clean();
}

TEST_F(EmailTest, MoveKeepsTheEmailIdAndReplacesTheMembership) {
    auto placed = deliver_mail(inbox_, "hello", "<1@remote.test>");
    auto moved = store_->move_messages(inbox_, {placed.uid}, archive_);
    ASSERT_TRUE(moved) << moved.error().message;
    Email e = email(placed.email_id);
    EXPECT_EQ(mailboxes_of(e), (std::vector<std::int64_t>{archive_}));
    EXPECT_EQ(e.mailboxes[0].uid, moved->uids[0].second);
    EXPECT_TRUE(store_->list_states(inbox_)->empty());
    EXPECT_EQ(store_->find_message(archive_, e.mailboxes[0].uid)->email_id, placed.email_id);
    expect_clean();
}

// RFC 6851 3.3 MOVE into the mailbox itself: new UIDs, the same Emails, one transaction; the change log
// tells other sessions of an expunge and an append, and the kept counters stay those of the messages.
TEST_F(EmailTest, MoveIntoTheSameMailboxRenumbersAndKeepsTheEmail) {
    auto first = deliver_mail(inbox_, "hello", "<1@remote.test>", "", "", kT0, {"\\Seen"});
    auto second = deliver_mail(inbox_, "other", "<2@remote.test>");
    const std::uint64_t modseq_before = store_->mailbox_status(inbox_)->highest_modseq;
    const std::uint64_t commits_before = store_->stats().commits;
    auto moved = store_->move_messages(inbox_, {first.uid, second.uid}, inbox_);
    ASSERT_TRUE(moved) << moved.error().message;
    EXPECT_EQ(store_->stats().commits, commits_before + 1);
    ASSERT_EQ(moved->uids.size(), 2u);
    EXPECT_EQ(moved->uids[0], (std::pair<std::uint32_t, std::uint32_t>{first.uid, 3}));
    EXPECT_EQ(moved->uids[1], (std::pair<std::uint32_t, std::uint32_t>{second.uid, 4}));
    Email e = email(first.email_id);
    ASSERT_EQ(e.mailboxes.size(), 1u);
    EXPECT_EQ(e.mailboxes[0].uid, 3u);
    EXPECT_EQ(e.flags, (std::vector<std::string>{"\\Seen"}));
    EXPECT_EQ(store_->find_message(inbox_, 4)->email_id, second.email_id);
    EXPECT_FALSE(store_->find_message(inbox_, first.uid));
    auto status = store_->mailbox_status(inbox_);
    EXPECT_EQ(status->messages, 2u);
    EXPECT_EQ(status->unseen, 1u);
    EXPECT_EQ(status->uidnext, 5u);
    auto changes = store_->changes_since(inbox_, modseq_before);
    ASSERT_TRUE(changes) << changes.error().message;
    EXPECT_EQ(changes->expunged, (std::vector<std::uint32_t>{first.uid, second.uid}));
    ASSERT_EQ(changes->changed.size(), 2u);
    EXPECT_EQ(changes->changed[0].uid, 3u);
    expect_clean();
}

TEST_F(EmailTest, ExpungeRemovesTheMembershipAndTheLastOneTheEmail) {
    auto placed = deliver_mail(inbox_, "hello", "<1@remote.test>");
    ASSERT_TRUE(store_->copy_messages(inbox_, {placed.uid}, trash_));
    const std::uint64_t state = *store_->account_state(bob_.id);
    ASSERT_TRUE(store_->store_flags(inbox_, {placed.uid}, FlagUpdate{FlagOperation::add, {"\\Deleted"}, {}}));
    ASSERT_EQ(store_->expunge(inbox_)->size(), 1u);
    Email e = email(placed.email_id);
    EXPECT_EQ(mailboxes_of(e), (std::vector<std::int64_t>{trash_}));
    auto changes = store_->email_changes(bob_.id, state, 100);
    ASSERT_TRUE(changes) << changes.error().message;
    EXPECT_EQ(changes->updated, (std::vector<std::int64_t>{placed.email_id}));
    EXPECT_TRUE(changes->destroyed.empty());

    ASSERT_TRUE(store_->store_flags(trash_, {e.mailboxes[0].uid}, FlagUpdate{FlagOperation::add, {"\\Deleted"}, {}}));
    ASSERT_EQ(store_->expunge(trash_)->size(), 1u);
    EXPECT_TRUE(store_->find_emails(bob_.id, {placed.email_id})->empty());
    changes = store_->email_changes(bob_.id, state, 100);
    ASSERT_TRUE(changes);
    EXPECT_EQ(changes->destroyed, (std::vector<std::int64_t>{placed.email_id}));
    EXPECT_TRUE(changes->updated.empty());
    auto report = check();
    EXPECT_TRUE(report.clean) << describe(report);
    EXPECT_EQ(report.garbage_blobs, 1u);  // its blob is left for the collector
}

TEST_F(EmailTest, DeletingAMailboxDestroysTheEmailsOnlyThere) {
    auto only_here = deliver_mail(archive_, "one", "<1@remote.test>");
    auto also_inbox = deliver_mail(archive_, "two", "<2@remote.test>");
    ASSERT_TRUE(store_->copy_messages(archive_, {also_inbox.uid}, inbox_));
    ASSERT_TRUE(store_->delete_mailbox(bob_.id, "Archive"));
    auto left = store_->find_emails(bob_.id, {only_here.email_id, also_inbox.email_id});
    ASSERT_TRUE(left);
    ASSERT_EQ(left->size(), 1u);
    EXPECT_EQ(left->front().id, also_inbox.email_id);
    EXPECT_EQ(mailboxes_of(left->front()), (std::vector<std::int64_t>{inbox_}));
    expect_clean();
}

TEST_F(EmailTest, FlagChangeShowsInEveryMailboxWithNewModseqsAndCounters) {
    auto placed = deliver_mail(inbox_, "hello", "<1@remote.test>");
    auto copied = store_->copy_messages(inbox_, {placed.uid}, trash_);
    ASSERT_TRUE(copied);
    const std::uint32_t trash_uid = copied->uids[0].second;
    const std::uint64_t trash_before = store_->mailbox_status(trash_)->highest_modseq;
    const std::uint64_t inbox_before = store_->mailbox_status(inbox_)->highest_modseq;
    EXPECT_EQ(store_->mailbox_status(trash_)->unseen, 1u);

    auto stored = store_->store_flags(inbox_, {placed.uid}, FlagUpdate{FlagOperation::add, {"\\Seen", "Work"}, {}});
    ASSERT_TRUE(stored) << stored.error().message;
    ASSERT_EQ(stored->changed.size(), 1u);
    EXPECT_GT(stored->changed[0].modseq, inbox_before);

    auto trash_changes = store_->changes_since(trash_, trash_before);
    ASSERT_TRUE(trash_changes);
    ASSERT_EQ(trash_changes->changed.size(), 1u);
    EXPECT_EQ(trash_changes->changed[0].uid, trash_uid);
    EXPECT_EQ(trash_changes->changed[0].flags, (std::vector<std::string>{"\\Seen", "Work"}));
    EXPECT_GT(trash_changes->changed[0].modseq, trash_before);
    EXPECT_EQ(trash_changes->highest_modseq, trash_changes->changed[0].modseq);
    EXPECT_EQ(store_->mailbox_status(trash_)->unseen, 0u);
    EXPECT_EQ(store_->mailbox_status(inbox_)->unseen, 0u);
    EXPECT_EQ(email(placed.email_id).flags, (std::vector<std::string>{"\\Seen", "Work"}));
    expect_clean();
}

TEST_F(EmailTest, DeletedMarksOneMailboxSoAnOldStyleMoveKeepsTheCopy) {
    // COPY to Trash, \Deleted, EXPUNGE: how clients without MOVE move mail. \Deleted is the membership's own,
    // so the copy in Trash is neither marked nor expunged, and the Email survives with its id.
    auto placed = deliver_mail(inbox_, "hello", "<1@remote.test>");
    auto copied = store_->copy_messages(inbox_, {placed.uid}, trash_);
    ASSERT_TRUE(copied);
    const std::uint64_t trash_before = store_->mailbox_status(trash_)->highest_modseq;
    ASSERT_TRUE(store_->store_flags(inbox_, {placed.uid}, FlagUpdate{FlagOperation::add, {"\\Deleted", "\\Seen"}, {}}));
    auto trash_states = store_->list_states(trash_);
    ASSERT_EQ(trash_states->size(), 1u);
    EXPECT_EQ(trash_states->front().flags, (std::vector<std::string>{"\\Seen"}));  // \Seen travels, \Deleted not
    EXPECT_GT(trash_states->front().modseq, trash_before);
    EXPECT_EQ(store_->mailbox_status(trash_)->deleted, 0u);
    ASSERT_EQ(store_->expunge(inbox_)->size(), 1u);
    Email e = email(placed.email_id);
    EXPECT_EQ(mailboxes_of(e), (std::vector<std::int64_t>{trash_}));
    EXPECT_EQ(e.flags, (std::vector<std::string>{"\\Seen"}));
    // A change of \Deleted alone touches no other mailbox.
    const std::uint64_t trash_now = store_->mailbox_status(trash_)->highest_modseq;
    ASSERT_TRUE(store_->store_flags(trash_, {copied->uids[0].second},
                                    FlagUpdate{FlagOperation::add, {"\\Deleted"}, {}}));
    EXPECT_EQ(store_->mailbox_status(trash_)->deleted, 1u);
    EXPECT_GT(store_->mailbox_status(trash_)->highest_modseq, trash_now);
    expect_clean();
}

TEST_F(EmailTest, AJmapUpdateThatNamesDeletedMarksEveryMailbox) {
    auto placed = deliver_mail(inbox_, "hello", "<1@remote.test>");
    ASSERT_TRUE(store_->copy_messages(inbox_, {placed.uid}, trash_));
    EmailUpdate update;
    update.email_id = placed.email_id;
    update.add_flags = {imap_flag_of_keyword("$deleted")};
    auto results = store_->update_emails(bob_.id, {update});
    ASSERT_TRUE(results);
    ASSERT_TRUE((*results)[0]) << (*results)[0].error().message;
    EXPECT_EQ(store_->mailbox_status(inbox_)->deleted, 1u);
    EXPECT_EQ(store_->mailbox_status(trash_)->deleted, 1u);
    EXPECT_TRUE(email(placed.email_id).flags.empty());  // never an Email's keyword
    expect_clean();
}

TEST_F(EmailTest, UnchangedSinceRefusesByTheMembershipOfTheMailboxAsked) {
    auto placed = deliver_mail(inbox_, "hello", "<1@remote.test>");
    ASSERT_TRUE(store_->copy_messages(inbox_, {placed.uid}, trash_));
    auto trash_state = store_->list_states(trash_);
    ASSERT_TRUE(trash_state);
    // A change through Trash moves INBOX's membership to a new MODSEQ: a STORE there with the old one fails.
    ASSERT_TRUE(store_->store_flags(trash_, {trash_state->front().uid}, FlagUpdate{FlagOperation::add, {"\\Flagged"}, {}}));
    auto refused = store_->store_flags(inbox_, {placed.uid},
                                       FlagUpdate{FlagOperation::add, {"\\Seen"}, placed.modseq});
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->modified, (std::vector<std::uint32_t>{placed.uid}));
}

// ---- threads

TEST_F(EmailTest, RepliesJoinTheirParentsThreadByInReplyToOrReferences) {
    auto parent = deliver_mail(inbox_, "plans", "<p@remote.test>");
    auto reply = deliver_mail(inbox_, "something else", "<r@remote.test>", "<p@remote.test>");
    EXPECT_EQ(reply.thread_id, parent.thread_id);
    // References alone (a client that sets no In-Reply-To), nearest ancestor unknown.
    auto later = deliver_mail(trash_, "other words", "<l@remote.test>", "", "<p@remote.test> <unknown@x>");
    EXPECT_EQ(later.thread_id, parent.thread_id);
    auto stranger = deliver_mail(inbox_, "unrelated", "<s@remote.test>");
    EXPECT_NE(stranger.thread_id, parent.thread_id);
    auto threads = store_->find_threads(bob_.id, {parent.thread_id, stranger.thread_id, 999999});
    ASSERT_TRUE(threads) << threads.error().message;
    ASSERT_EQ(threads->size(), 2u);
    EXPECT_EQ((*threads)[0].email_ids,
              (std::vector<std::int64_t>{parent.email_id, reply.email_id, later.email_id}));
    EXPECT_EQ((*threads)[1].email_ids, (std::vector<std::int64_t>{stranger.email_id}));
}

TEST_F(EmailTest, WithoutKnownReferencesTheBaseSubjectJoinsWithinTheWindow) {
    auto first = deliver_mail(inbox_, "Lunch on Friday", "<a@remote.test>", "", "", kT0);
    auto reply = deliver_mail(inbox_, "Re: [team] RE: lunch on friday", "<b@remote.test>", "<lost@x>", "", kT0 + kDay);
    EXPECT_EQ(reply.thread_id, first.thread_id);
    // Beyond the window (30 days by default) the same subject starts a new thread.
    auto much_later = deliver_mail(inbox_, "Re: Lunch on Friday", "<c@remote.test>", "", "", kT0 + 90 * kDay);
    EXPECT_NE(much_later.thread_id, first.thread_id);
}

TEST_F(EmailTest, ASubjectWindowOfZeroNeverJoinsBySubject) {
    SqliteOptions options;
    options.thread_subject_window_seconds = 0;
    open(options);
    auto first = deliver_mail(inbox_, "Lunch on Friday", "<a@remote.test>", "", "", kT0);
    auto same_second = deliver_mail(inbox_, "Re: Lunch on Friday", "<b@remote.test>", "", "", kT0);
    EXPECT_NE(same_second.thread_id, first.thread_id);
    // References still join.
    auto reply = deliver_mail(inbox_, "other", "<c@remote.test>", "<a@remote.test>", "", kT0);
    EXPECT_EQ(reply.thread_id, first.thread_id);
}

TEST_F(EmailTest, ThreadsNeverCrossAccounts) {
    Account carol = make_account("carol@example.test");
    auto bobs = deliver_mail(inbox_, "plans", "<p@remote.test>");
    auto carols = deliver_mail(mailbox(carol.id, "INBOX").id, "Re: plans", "<r@remote.test>", "<p@remote.test>");
    EXPECT_NE(carols.thread_id, bobs.thread_id);
    EXPECT_TRUE(store_->find_emails(bob_.id, {carols.email_id})->empty());
    EXPECT_TRUE(store_->find_threads(bob_.id, {carols.thread_id})->empty());
}

TEST_F(EmailTest, AParentArrivingAfterItsReplyDoesNotMergeThreads) {
    // The documented choice: thread ids clients hold stay valid; the late parent starts its own thread
    // unless its subject joins it (here the subjects differ).
    auto reply = deliver_mail(inbox_, "answer", "<r@remote.test>", "<p@remote.test>");
    auto parent = deliver_mail(inbox_, "question", "<p@remote.test>");
    EXPECT_NE(parent.thread_id, reply.thread_id);
    auto grandchild = deliver_mail(inbox_, "more", "<g@remote.test>", "<p@remote.test>");
    EXPECT_EQ(grandchild.thread_id, parent.thread_id);
}

// ---- state and changes

TEST_F(EmailTest, AccountStateAdvancesWithEveryChangeAndChangesSinceAStateNameThem) {
    const std::uint64_t start = *store_->account_state(bob_.id);
    auto a = deliver_mail(inbox_, "a", "<a@x>");
    auto b = deliver_mail(inbox_, "b", "<b@x>");
    const std::uint64_t after_delivery = *store_->account_state(bob_.id);
    EXPECT_EQ(after_delivery, start + 2);
    ASSERT_TRUE(store_->store_flags(inbox_, {a.uid}, FlagUpdate{FlagOperation::add, {"\\Seen"}, {}}));
    const std::uint64_t after_flags = *store_->account_state(bob_.id);
    EXPECT_EQ(after_flags, after_delivery + 1);

    auto all = store_->email_changes(bob_.id, start, 100);
    ASSERT_TRUE(all) << all.error().message;
    EXPECT_EQ(all->old_state, start);
    EXPECT_EQ(all->new_state, after_flags);
    EXPECT_FALSE(all->has_more_changes);
    EXPECT_EQ(all->created, (std::vector<std::int64_t>{a.email_id, b.email_id}));  // created wins over updated
    EXPECT_TRUE(all->updated.empty());

    auto since_delivery = store_->email_changes(bob_.id, after_delivery, 100);
    ASSERT_TRUE(since_delivery);
    EXPECT_EQ(since_delivery->updated, (std::vector<std::int64_t>{a.email_id}));
    EXPECT_TRUE(since_delivery->created.empty());

    // Pages end at a state boundary.
    auto first_page = store_->email_changes(bob_.id, start, 1);
    ASSERT_TRUE(first_page);
    EXPECT_TRUE(first_page->has_more_changes);
    EXPECT_EQ(first_page->created, (std::vector<std::int64_t>{a.email_id}));
    EXPECT_EQ(first_page->new_state, start + 1);

    auto threads = store_->thread_changes(bob_.id, start, 100);
    ASSERT_TRUE(threads);
    EXPECT_EQ(threads->created, (std::vector<std::int64_t>{a.thread_id, b.thread_id}));
    auto thread_updates = store_->thread_changes(bob_.id, after_delivery, 100);
    ASSERT_TRUE(thread_updates);
    EXPECT_EQ(thread_updates->updated, (std::vector<std::int64_t>{a.thread_id}));

    EXPECT_EQ(store_->email_changes(bob_.id, after_flags + 1, 100).error().code, Errc::invalid_argument);
    expect_clean();
}

// ---- Email/set

TEST_F(EmailTest, UpdateKeywordsAndMailboxesIsCopyExpungeAndStoreInIMAPTerms) {
    auto placed = deliver_mail(inbox_, "hello", "<1@remote.test>");
    const std::uint64_t inbox_before = store_->mailbox_status(inbox_)->highest_modseq;
    EmailUpdate update;
    update.email_id = placed.email_id;
    update.add_flags = {imap_flag_of_keyword("$seen"), "$label"};
    update.set_mailboxes = std::vector<std::int64_t>{archive_, trash_};
    auto results = store_->update_emails(bob_.id, {update});
    ASSERT_TRUE(results) << results.error().message;
    ASSERT_EQ(results->size(), 1u);
    EXPECT_TRUE((*results)[0]) << (*results)[0].error().message;

    Email e = email(placed.email_id);
    EXPECT_EQ(mailboxes_of(e), (std::vector<std::int64_t>{trash_, archive_}));
    EXPECT_EQ(e.flags, (std::vector<std::string>{"\\Seen", "$label"}));
    auto in_archive = store_->list_states(archive_);
    ASSERT_EQ(in_archive->size(), 1u);
    EXPECT_EQ(in_archive->front().flags, (std::vector<std::string>{"\\Seen", "$label"}));
    auto inbox_changes = store_->changes_since(inbox_, inbox_before);
    ASSERT_TRUE(inbox_changes);
    EXPECT_EQ(inbox_changes->expunged, (std::vector<std::uint32_t>{placed.uid}));
    expect_clean();
}

TEST_F(EmailTest, UpdatesAreScopedToTheAccountAndFailOneByOne) {
    Account carol = make_account("carol@example.test");
    auto mine = deliver_mail(inbox_, "hello", "<1@remote.test>");
    auto hers = deliver_mail(mailbox(carol.id, "INBOX").id, "hi", "<2@remote.test>");
    const std::int64_t carols_inbox = mailbox(carol.id, "INBOX").id;

    EmailUpdate foreign_email;
    foreign_email.email_id = hers.email_id;
    foreign_email.add_flags = {"\\Seen"};
    EmailUpdate foreign_mailbox;
    foreign_mailbox.email_id = mine.email_id;
    foreign_mailbox.add_mailboxes = {carols_inbox};
    EmailUpdate nowhere;
    nowhere.email_id = mine.email_id;
    nowhere.remove_mailboxes = {inbox_};
    EmailUpdate fine;
    fine.email_id = mine.email_id;
    fine.add_flags = {"\\Flagged"};
    auto results = store_->update_emails(bob_.id, {foreign_email, foreign_mailbox, nowhere, fine});
    ASSERT_TRUE(results) << results.error().message;
    ASSERT_EQ(results->size(), 4u);
    EXPECT_EQ((*results)[0].error().code, Errc::not_found);
    EXPECT_EQ((*results)[1].error().code, Errc::not_found);
    EXPECT_EQ((*results)[2].error().code, Errc::invalid_argument);
    EXPECT_TRUE((*results)[3]);
    EXPECT_EQ(email(mine.email_id).flags, (std::vector<std::string>{"\\Flagged"}));
    EXPECT_TRUE(store_->list_states(carols_inbox)->size() == 1u);
    auto destroyed = store_->destroy_emails(bob_.id, {hers.email_id});
    ASSERT_TRUE(destroyed);
    EXPECT_EQ((*destroyed)[0].error().code, Errc::not_found);
    expect_clean();
}

TEST_F(EmailTest, DestroyExpungesEveryMembership) {
    auto placed = deliver_mail(inbox_, "hello", "<1@remote.test>");
    ASSERT_TRUE(store_->copy_messages(inbox_, {placed.uid}, trash_));
    auto destroyed = store_->destroy_emails(bob_.id, {placed.email_id});
    ASSERT_TRUE(destroyed) << destroyed.error().message;
    EXPECT_TRUE((*destroyed)[0]);
    EXPECT_TRUE(store_->list_states(inbox_)->empty());
    EXPECT_TRUE(store_->list_states(trash_)->empty());
    EXPECT_TRUE(store_->find_emails(bob_.id, {placed.email_id})->empty());
    expect_clean();
}

TEST_F(EmailTest, TheNewestEmailsIdIsNeverHandedOutAgainAfterItIsGone) {
    // SQLite would give the largest rowid + 1, so destroying (or expunging) the newest Email freed its id:
    // a JMAP client that cached it would then see a different message under the same id (RFC 8620 1.2).
    auto first = deliver_mail(inbox_, "one", "<1@remote.test>");
    auto newest = deliver_mail(inbox_, "two", "<2@remote.test>");
    ASSERT_TRUE(store_->destroy_emails(bob_.id, {newest.email_id}));
    auto next = deliver_mail(inbox_, "three", "<3@remote.test>");
    EXPECT_GT(next.email_id, newest.email_id);
    EXPECT_GT(next.thread_id, newest.thread_id);
    ASSERT_TRUE(store_->store_flags(inbox_, {next.uid}, FlagUpdate{FlagOperation::add, {"\\Deleted"}, {}}));
    ASSERT_EQ(store_->expunge(inbox_)->size(), 1u);
    open();  // the last id handed out is kept across a restart
    auto after_restart = deliver_mail(inbox_, "four", "<4@remote.test>");
    EXPECT_GT(after_restart.email_id, next.email_id);
    ASSERT_TRUE(store_->copy_messages(inbox_, {after_restart.uid}, inbox_));  // a clone: a new Email
    auto clones = store_->query_emails(bob_.id, EmailQuery{});
    ASSERT_TRUE(clones);
    for (auto id : clones->ids) EXPECT_TRUE(id == first.email_id || id >= after_restart.email_id) << id;
    expect_clean();
}

// ---- Email/query

TEST_F(EmailTest, QueryFiltersSortsCollapsesAndPages) {
    auto a = deliver_mail(inbox_, "Budget", "<a@x>", "", "", kT0 + 10);
    auto b = deliver_mail(inbox_, "Re: Budget", "<b@x>", "<a@x>", "", kT0 + 20, {"\\Seen"});
    auto c = deliver_mail(archive_, "Zebra", "<c@x>", "", "", kT0 + 30);
    auto d = deliver_mail(inbox_, "apples", "<d@x>", "", "", kT0 + 40, {"$important"});

    auto ids = [&](const EmailQuery& query) {
        auto result = store_->query_emails(bob_.id, query);
        EXPECT_TRUE(result) << result.error().message;
        return result ? result->ids : std::vector<std::int64_t>{};
    };
    EmailQuery all;  // receivedAt descending by default
    EXPECT_EQ(ids(all), (std::vector<std::int64_t>{d.email_id, c.email_id, b.email_id, a.email_id}));

    EmailQuery in_inbox;
    in_inbox.filter.condition.in_mailbox = inbox_;
    in_inbox.sort = {{EmailSortKey::subject, true}};
    // Base subjects: "apples", "budget", "budget" (ties by id), then Zebra is elsewhere.
    EXPECT_EQ(ids(in_inbox), (std::vector<std::int64_t>{d.email_id, a.email_id, b.email_id}));

    EmailQuery unseen;
    unseen.filter.condition.not_keyword = "\\Seen";
    unseen.filter.condition.after = kT0 + 15;
    EXPECT_EQ(ids(unseen), (std::vector<std::int64_t>{d.email_id, c.email_id}));

    EmailQuery keyword;
    keyword.filter.condition.has_keyword = "$Important";
    EXPECT_EQ(ids(keyword), (std::vector<std::int64_t>{d.email_id}));

    EmailQuery either;
    either.filter.op = EmailFilter::Operator::any_of;
    either.filter.operands.resize(2);
    either.filter.operands[0].condition.subject = "ZEB";
    either.filter.operands[1].condition.text = "apple";
    EXPECT_EQ(ids(either), (std::vector<std::int64_t>{d.email_id, c.email_id}));

    EmailQuery none;
    none.filter.op = EmailFilter::Operator::none_of;
    none.filter.operands.resize(1);
    none.filter.operands[0].condition.from = "alice@";
    EXPECT_TRUE(ids(none).empty());

    EmailQuery collapsed;
    collapsed.collapse_threads = true;
    collapsed.sort = {{EmailSortKey::received_at, true}};
    EXPECT_EQ(ids(collapsed), (std::vector<std::int64_t>{a.email_id, c.email_id, d.email_id}));

    EmailQuery page;
    page.sort = {{EmailSortKey::received_at, true}};
    page.position = -2;
    page.limit = 1;
    auto paged = store_->query_emails(bob_.id, page);
    ASSERT_TRUE(paged);
    EXPECT_EQ(paged->total, 4u);
    EXPECT_EQ(paged->position, 2u);
    EXPECT_EQ(paged->ids, (std::vector<std::int64_t>{c.email_id}));

    EmailQuery anchored;
    anchored.sort = {{EmailSortKey::received_at, true}};
    anchored.anchor = b.email_id;
    anchored.anchor_offset = 1;
    auto from_anchor = store_->query_emails(bob_.id, anchored);
    ASSERT_TRUE(from_anchor);
    EXPECT_EQ(from_anchor->position, 2u);
    EXPECT_EQ(from_anchor->ids, (std::vector<std::int64_t>{c.email_id, d.email_id}));
    anchored.anchor = 999999;
    EXPECT_EQ(store_->query_emails(bob_.id, anchored).error().code, Errc::not_found);

    // Another account sees none of them, whatever it asks.
    Account carol = make_account("carol@example.test");
    EXPECT_EQ(store_->query_emails(carol.id, in_inbox)->total, 0u);
}

TEST_F(EmailTest, QueryRefusesAFilterBeyondItsBound) {
    SqliteOptions options;
    options.max_filter_nodes = 3;
    open(options);
    EmailQuery query;
    query.filter.op = EmailFilter::Operator::all_of;
    query.filter.operands.resize(3);
    EXPECT_EQ(store_->query_emails(bob_.id, query).error().code, Errc::limit_exceeded);
    query.filter.operands.resize(2);
    EXPECT_TRUE(store_->query_emails(bob_.id, query));
}

// ---- the queries' plans

std::string plan_of(const std::filesystem::path& data_dir, const std::string& sql) {
    std::string plan;
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2((data_dir / "magpie.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* statement = nullptr;
    int rc = sqlite3_prepare_v2(db, ("EXPLAIN QUERY PLAN " + sql).c_str(), -1, &statement, nullptr);
    EXPECT_EQ(rc, SQLITE_OK) << sqlite3_errmsg(db) << " in " << sql;
    while (rc == SQLITE_OK && sqlite3_step(statement) == SQLITE_ROW) {
        plan += reinterpret_cast<const char*>(sqlite3_column_text(statement, 3));
        plan += "; ";
    }
    sqlite3_finalize(statement);
    sqlite3_close(db);
    return plan;
}

TEST_F(EmailTest, FirstPagesOfAMailboxAgreeWithTheGeneralQueryAndTakeTheKeptCount) {
    // A large inbox (the index walk) beside a small archive (the general query), with equal dates (ties by id).
    std::vector<std::int64_t> inbox_ids, archive_ids;
    for (int i = 0; i < 40; ++i) {
        auto placed = deliver_mail(i % 10 == 0 ? archive_ : inbox_, "m", fmt::format("<{}@x>", i), "", "", kT0 + (i / 3));
        (i % 10 == 0 ? archive_ids : inbox_ids).push_back(placed.email_id);
    }
    for (std::int64_t mailbox : {inbox_, archive_}) {
        for (std::int64_t position : {0, 5, 33, 36, 100}) {
            EmailQuery fast;
            fast.filter.condition.in_mailbox = mailbox;
            fast.position = position;
            fast.limit = 7;
            EmailQuery general = fast;  // an always-true extra condition takes the general path
            general.filter.condition.min_size = 0;
            auto a = store_->query_emails(bob_.id, fast);
            auto b = store_->query_emails(bob_.id, general);
            ASSERT_TRUE(a && b);
            EXPECT_EQ(a->ids, b->ids) << "mailbox " << mailbox << " position " << position;
            EXPECT_EQ(a->total, b->total);
            EXPECT_EQ(a->position, b->position);
            EXPECT_EQ(a->state, b->state);
        }
    }
    EmailQuery fast;
    fast.filter.condition.in_mailbox = inbox_;
    auto all = store_->query_emails(bob_.id, fast);
    ASSERT_TRUE(all);
    EXPECT_EQ(all->total, inbox_ids.size());
    EXPECT_EQ(all->ids.front(), inbox_ids.back());  // newest first
    // Another account's mailbox holds nothing for this one.
    auto other = make_account("carol@example.test");
    auto none = store_->query_emails(other.id, fast);
    ASSERT_TRUE(none);
    EXPECT_EQ(none->total, 0u);
    EXPECT_TRUE(none->ids.empty());
}

TEST_F(EmailTest, ContentConditionsAskTheMatcherOncePerBlobAndFailWithItsError) {
    auto a = deliver_mail(inbox_, "one", "<a@x>");
    auto b = deliver_mail(inbox_, "two", "<b@x>");
    std::vector<std::string> asked;
    EmailQuery query;
    query.filter.condition.content = {"needle"};
    query.content_matcher = [&](std::string_view bytes, std::string_view condition) -> Result<bool> {
        asked.emplace_back(condition);
        return bytes.find("<b@x>") != std::string_view::npos;
    };
    auto found = store_->query_emails(bob_.id, query);
    ASSERT_TRUE(found) << found.error().message;
    EXPECT_EQ(found->ids, (std::vector<std::int64_t>{b.email_id}));
    EXPECT_EQ(found->total, 1u);
    EXPECT_EQ(asked.size(), 2u);  // the count and the page share the answers
    // A cheaper condition before it spares the reads.
    asked.clear();
    query.filter.condition.subject = "one";
    found = store_->query_emails(bob_.id, query);
    ASSERT_TRUE(found);
    EXPECT_TRUE(found->ids.empty());
    EXPECT_EQ(asked.size(), 1u);
    // The matcher's error is the query's.
    query.content_matcher = [](std::string_view, std::string_view) -> Result<bool> {
        return make_error(Errc::limit_exceeded, "too many reads");
    };
    found = store_->query_emails(bob_.id, query);
    ASSERT_FALSE(found);
    EXPECT_EQ(found.error().code, Errc::limit_exceeded);
    EXPECT_EQ(found.error().message, "too many reads");
    // Without a matcher a content condition is refused; the next query on the connection works.
    query.content_matcher = nullptr;
    EXPECT_FALSE(store_->query_emails(bob_.id, query));
    EmailQuery plain;
    auto all = store_->query_emails(bob_.id, plain);
    ASSERT_TRUE(all);
    EXPECT_EQ(all->total, 2u);
    (void)a;
}

TEST_F(EmailTest, ThreadKeywordConditionsLookAtEveryEmailOfTheThread) {
    auto a = deliver_mail(inbox_, "Budget", "<a@x>", "", "", kT0, {"\\Seen"});
    auto b = deliver_mail(inbox_, "Re: Budget", "<b@x>", "<a@x>", "", kT0 + 1);
    auto c = deliver_mail(inbox_, "Other", "<c@x>", "", "", kT0 + 2, {"\\Seen"});
    auto ids = [&](auto set) {
        EmailQuery query;
        set(query.filter.condition);
        query.sort = {{EmailSortKey::received_at, true}};
        auto result = store_->query_emails(bob_.id, query);
        EXPECT_TRUE(result) << result.error().message;
        return result ? result->ids : std::vector<std::int64_t>{};
    };
    EXPECT_EQ(ids([](EmailCondition& c) { c.all_in_thread_have_keyword = "\\Seen"; }),
              (std::vector<std::int64_t>{c.email_id}));
    EXPECT_EQ(ids([](EmailCondition& c) { c.some_in_thread_have_keyword = "\\Seen"; }),
              (std::vector<std::int64_t>{a.email_id, b.email_id, c.email_id}));
    EXPECT_EQ(ids([](EmailCondition& c) { c.none_in_thread_have_keyword = "\\Seen"; }), (std::vector<std::int64_t>{}));
    EXPECT_EQ(ids([](EmailCondition& c) { c.none_in_thread_have_keyword = "$flagged"; }),
              (std::vector<std::int64_t>{a.email_id, b.email_id, c.email_id}));
}

TEST_F(EmailTest, EmailQueriesSearchIndexesAndNeverScanATable) {
    for (const char* sql : sqlite::kEmailQueries) {
        std::string plan = plan_of(dir_.path(), sql);
        ASSERT_FALSE(plan.empty()) << sql;
        for (std::size_t at = plan.find("SCAN"); at != std::string::npos; at = plan.find("SCAN", at + 1)) {
            std::string step = plan.substr(at, plan.find(';', at) - at);
            if (step.find("VIRTUAL TABLE") == std::string::npos && step.find("SCAN j") == std::string::npos) {
                ADD_FAILURE() << "full scan in " << sql << ": " << plan;
            }
        }
    }
    EXPECT_NE(plan_of(dir_.path(), sqlite::kThreadByMessageId).find("emails_message_id"), std::string::npos);
    EXPECT_NE(plan_of(dir_.path(), sqlite::kThreadBySubject).find("emails_subject"), std::string::npos);
    EXPECT_NE(plan_of(dir_.path(), sqlite::kEmailsInNoMailbox).find("messages_email"), std::string::npos);
    EXPECT_NE(plan_of(dir_.path(), sqlite::kPruneEmailUpdatesOf).find("email_log_email"), std::string::npos);
    EXPECT_NE(plan_of(dir_.path(), sqlite::kPruneEmailUpdates).find("email_log_email"), std::string::npos);
    // The first page of a mailbox comes in index order: no sort of the mailbox's Emails.
    const std::string page = plan_of(dir_.path(), sqlite::kMailboxPageByReceived);
    EXPECT_NE(page.find("emails_received"), std::string::npos) << page;
    EXPECT_NE(page.find("messages_email"), std::string::npos) << page;
    EXPECT_EQ(page.find("TEMP B-TREE"), std::string::npos) << page;
}

// ---- magpie check

TEST_F(EmailTest, CheckReportsAMembershipWithoutItsEmailAndAnEmailInNoMailbox) {
    auto placed = deliver_mail(inbox_, "hello", "<1@remote.test>");
    store_.reset();
    corrupt_sql(dir_.path(), "PRAGMA foreign_keys = OFF; UPDATE messages SET email_id = 424242");
    auto report = check();
    EXPECT_FALSE(report.clean);
    EXPECT_TRUE(mentions(report, "email 424242 is missing")) << describe(report);
    EXPECT_TRUE(mentions(report, fmt::format("email {}: in no mailbox", placed.email_id))) << describe(report);
}

TEST_F(EmailTest, CheckReportsAMembershipWhoseFlagsDifferFromItsEmail) {
    deliver_mail(inbox_, "hello", "<1@remote.test>");
    store_.reset();
    corrupt_sql(dir_.path(), "UPDATE emails SET system_flags = 1");
    auto report = check();
    EXPECT_FALSE(report.clean);
    EXPECT_TRUE(mentions(report, "differs from its email")) << describe(report);
}

}  // namespace
}  // namespace magpie::store
