// The JMAP methods over a real embedded store (src/http/methods): requests go through the Dispatcher as a
// client's would, and the answers are checked as JSON.
#include <algorithm>
#include <future>
#include <set>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "http/email_search.h"
#include "http/methods/email.h"
#include "http/methods/identity.h"
#include "http/methods/session.h"
#include "http/methods/set_support.h"
#include "store/summary.h"
#include "store_test_support.h"

namespace magpie::http {
namespace {

using nlohmann::json;

class MethodsTest : public store::StoreTest {
protected:
    void SetUp() override {
        StoreTest::SetUp();
        ASSERT_TRUE(store_->add_domain("example.test"));
        account_ = make_account("alice@example.test");
        inbox_ = mailbox(account_.id, "INBOX").id;
        dispatcher_ = make_dispatcher(*store_, account_, limits_);
    }

    std::string account_id() const { return jmap_account_id(account_); }
    std::string inbox_id() const { return "m" + std::to_string(inbox_); }

    // One method call; its [name, arguments] response.
    json call(const std::string& name, json arguments) {
        arguments["accountId"] = account_id();
        json request = {{"using", {"urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail",
                                   "urn:ietf:params:jmap:submission", "urn:ietf:params:jmap:vacationresponse"}},
                        {"methodCalls", {{name, arguments, "c"}}}};
        auto answer = dispatcher_->handle(request.dump(), "s");
        EXPECT_TRUE(std::holds_alternative<json>(answer));
        if (!std::holds_alternative<json>(answer)) return json();
        const json& response = std::get<json>(answer)["methodResponses"][0];
        return json{response[0], response[1]};
    }

    // Delivers `content` to the inbox at `received_at`; its JMAP Email id.
    std::string deliver_raw(std::string content, std::int64_t received_at = 1'700'000'000) {
        store::Delivery delivery;
        delivery.summary = store::summarize(content);
        delivery.content = std::move(content);
        delivery.internal_date = received_at;
        delivery.targets = {{inbox_, {}}};
        std::promise<Result<store::Delivered>> promise;
        auto future = promise.get_future();
        store_->deliver(std::move(delivery), [&](Result<store::Delivered> r) { promise.set_value(std::move(r)); });
        auto delivered = future.get();
        EXPECT_TRUE(delivered) << delivered.error().message;
        return delivered ? email_id(delivered->placed.front().email_id) : "";
    }

    json create_email(json object) {
        object["mailboxIds"] = {{inbox_id(), true}};
        return call("Email/set", {{"create", {{"k", object}}}});
    }

    ApiLimits limits_;
    store::Account account_;
    std::int64_t inbox_ = 0;
    std::unique_ptr<Dispatcher> dispatcher_;
};

// ---- RFC 8620 5.2: maxChanges is the client's, capped at the server's [http] max_changes

TEST_F(MethodsTest, MaxChangesIsCappedAtTheServersLimitAndPagesThroughEveryChange) {
    limits_.max_changes = 2;
    dispatcher_ = make_dispatcher(*store_, account_, limits_);
    std::string state = call("Email/get", {{"ids", json::array()}})[1]["state"];
    std::set<std::string> delivered;
    for (int i = 0; i < 5; ++i) {
        delivered.insert(deliver_raw(fmt::format("Subject: m{}\r\n\r\nbody\r\n", i), 1'700'000'000 + i));
    }
    std::set<std::string> seen;
    bool more = true;
    for (int round = 0; more && round < 10; ++round) {
        // The client asks for far more than the server gives; asking nothing gets the server's maximum too.
        json args = {{"sinceState", state}};
        if (round % 2 == 0) args["maxChanges"] = 1000;
        auto page = call("Email/changes", args);
        ASSERT_EQ(page[0], "Email/changes") << page.dump();
        EXPECT_LE(page[1]["created"].size(), 2u) << page.dump();
        for (const auto& id : page[1]["created"]) seen.insert(id.get<std::string>());
        more = page[1]["hasMoreChanges"];
        state = page[1]["newState"];
    }
    EXPECT_EQ(seen, delivered);
    EXPECT_EQ(state, call("Email/get", {{"ids", json::array()}})[1]["state"]);
    for (const char* method : {"Email/changes", "Thread/changes", "Mailbox/changes", "Identity/changes"}) {
        for (json bad : {json(0), json(-1), json(1.5), json("3")}) {
            auto answer = call(method, {{"sinceState", state}, {"maxChanges", bad}});
            EXPECT_EQ(answer[1]["type"], "invalidArguments") << method << " " << bad.dump() << " " << answer.dump();
        }
    }
}

TEST_F(MethodsTest, MailboxChangesAreCappedAtTheServersLimit) {
    limits_.max_changes = 1;
    dispatcher_ = make_dispatcher(*store_, account_, limits_);
    std::string state = call("Mailbox/get", {{"ids", json::array()}})[1]["state"];
    auto made = call("Mailbox/set", {{"create", {{"a", {{"name", "A"}}}, {"b", {{"name", "B"}}}}}});
    ASSERT_TRUE(made[1]["created"].contains("b")) << made.dump();
    auto page = call("Mailbox/changes", {{"sinceState", state}, {"maxChanges", 50}});
    ASSERT_EQ(page[0], "Mailbox/changes") << page.dump();
    EXPECT_EQ(page[1]["created"].size(), 1u);
    EXPECT_EQ(page[1]["hasMoreChanges"], true);
}

// ---- header-bound strings (RFC 8621 4.6)

TEST(HeaderSafe, RefusesLineBreaksAndOtherControlsButNotTabsOrText) {
    EXPECT_TRUE(header_safe("Plans for Tuesday\t(draft) \xc3\xa9t\xc3\xa9"));
    EXPECT_FALSE(header_safe("Hi\r\nBcc: victim@example.test"));
    EXPECT_FALSE(header_safe("Hi\nthere"));
    EXPECT_FALSE(header_safe("Hi\rthere"));
    EXPECT_FALSE(header_safe(std::string("nul\0inside", 10)));
    EXPECT_FALSE(header_safe("bell\x07"));
    EXPECT_FALSE(header_safe("del\x7f"));
    EXPECT_FALSE(header_safe("c1 \xc2\x85 next line"));
}

TEST_F(MethodsTest, EmailSetRefusesALineBreakInEveryHeaderBoundProperty) {
    const std::string evil = "x\r\nBcc: victim@example.test";
    const json address = json::array({{{"name", evil}, {"email", "bob@example.test"}}});
    const json cases = {
        {"subject", evil},
        {"from", address},
        {"sender", address},
        {"to", json::array({{{"name", "Bob"}, {"email", "bob@example.test\r\nX: y"}}})},
        {"cc", address},
        {"bcc", address},
        {"replyTo", address},
        {"messageId", json::array({"a@b\r\nX: y"})},
        {"inReplyTo", json::array({"a@b\nX: y"})},
        {"references", json::array({"a@b\rX: y"})},
        {"header:X-Note", "fine\r\nBcc: victim@example.test"},
        {"header:X\r\nBcc", "fine"},
    };
    for (const auto& [property, value] : cases.items()) {
        auto answer = create_email({{property, value}});
        ASSERT_EQ(answer[0], "Email/set") << property;
        const json& error = answer[1]["notCreated"]["k"];
        EXPECT_EQ(error["type"], "invalidProperties") << property;
        EXPECT_EQ(error["properties"], json::array({property})) << property;
    }
    auto attachment = create_email({{"attachments", {{{"blobId", "b"}, {"name", "a.txt\r\nX: y"}}}}});
    EXPECT_EQ(attachment[1]["notCreated"]["k"]["properties"], json::array({"attachments"}));
    // Nothing was stored.
    auto query = call("Email/query", json::object());
    EXPECT_EQ(query[1]["ids"], json::array());
}

TEST_F(MethodsTest, EmailSetAcceptsAFoldedRawHeaderAndStoresItUnfolded) {
    auto answer = create_email({{"subject", "Tabs\tare fine"},
                                {"header:X-Long", "one\r\n two"},
                                {"from", {{{"name", "Alice"}, {"email", "alice@example.test"}}}}});
    ASSERT_TRUE(answer[1]["created"].contains("k")) << answer.dump();
    std::string id = answer[1]["created"]["k"]["id"];
    auto got = call("Email/get", {{"ids", {id}}, {"properties", {"subject", "header:X-Long:asText"}}});
    EXPECT_EQ(got[1]["list"][0]["subject"], "Tabs\tare fine");
    EXPECT_EQ(got[1]["list"][0]["header:X-Long:asText"], "one two");
}

TEST_F(MethodsTest, IdentitySetRefusesControlsInNameEmailReplyToAndBcc) {
    const json cases = {
        {"name", "Alice\r\nBcc: victim@example.test"},
        {"email", "alice@example.test\n"},
        {"replyTo", json::array({{{"name", "R\x01"}, {"email", "alice@example.test"}}})},
        {"bcc", json::array({{{"name", "B"}, {"email", "x@example.test\r\n"}}})},
    };
    for (const auto& [property, value] : cases.items()) {
        json object = {{"email", "alice@example.test"}};
        object[property] = value;
        auto answer = call("Identity/set", {{"create", {{"k", object}}}});
        EXPECT_EQ(answer[1]["notCreated"]["k"]["type"], "invalidProperties") << property;
        EXPECT_EQ(answer[1]["notCreated"]["k"]["properties"], json::array({property})) << property;
    }
    auto identities = call("Identity/get", json::object());
    ASSERT_EQ(identities[1]["list"].size(), 1u);
    std::string id = identities[1]["list"][0]["id"];
    auto update = call("Identity/set", {{"update", {{id, {{"name", "Alice\rX"}}}}}});
    EXPECT_EQ(update[1]["notUpdated"][id]["type"], "invalidProperties");
    auto fine = call("Identity/set", {{"update", {{id, {{"name", "Alice\tLiddell"}}}}}});
    EXPECT_TRUE(fine[1]["updated"].contains(id)) << fine.dump();
}

TEST_F(MethodsTest, VacationResponseSubjectRefusesControls) {
    auto answer = call("VacationResponse/set", {{"update", {{"singleton", {{"subject", "Away\r\nBcc: x@y"}}}}}});
    EXPECT_EQ(answer[1]["notUpdated"]["singleton"]["type"], "invalidProperties");
    EXPECT_EQ(answer[1]["notUpdated"]["singleton"]["properties"], json::array({"subject"}));
}

// ---- Email/query over the message text (RFC 8621 4.4.1)

constexpr const char* kPlain =
    "From: Carol <carol@remote.test>\r\nTo: alice@example.test\r\nBcc: secret@remote.test\r\n"
    "Subject: Lunch plans\r\nX-Tracker: ticket 42\r\n\r\nShall we meet at the pelican crossing?\r\n";
constexpr const char* kWithAttachment =
    "From: Dave <dave@remote.test>\r\nTo: alice@example.test\r\nSubject: The map\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSee the "
    "=?x?= attached.\r\n--b\r\nContent-Type: image/png; name=map.png\r\nContent-Disposition: attachment; "
    "filename=map.png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0K\r\n--b--\r\n";
constexpr const char* kHtmlOnly =
    "From: Erin <erin@remote.test>\r\nTo: alice@example.test\r\nSubject: Newsletter\r\nMIME-Version: 1.0\r\n"
    "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    "<p>The <b>Pelican</b> caf=C3=A9 opens.</p>\r\n";

class QueryTest : public MethodsTest {
protected:
    void SetUp() override {
        MethodsTest::SetUp();
        plain_ = deliver_raw(kPlain, 1'700'000'000);
        attached_ = deliver_raw(kWithAttachment, 1'700'000'100);
        html_ = deliver_raw(kHtmlOnly, 1'700'000'200);
    }

    json ids(const json& filter) {
        auto answer = call("Email/query", {{"filter", filter}, {"sort", {{{"property", "receivedAt"}, {"isAscending", true}}}}});
        EXPECT_EQ(answer[0], "Email/query") << answer.dump();
        return answer[1].value("ids", json());
    }

    std::string plain_, attached_, html_;
};

TEST_F(QueryTest, BodyFindsTextInPlainAndHtmlBodiesButNotInHeaders) {
    EXPECT_EQ(ids({{"body", "PELICAN"}}), json::array({plain_, html_}));
    EXPECT_EQ(ids({{"body", "café"}}), json::array({html_}));  // decoded quoted-printable, UTF-8
    EXPECT_EQ(ids({{"body", "Lunch"}}), json::array());       // the subject is no body
    EXPECT_EQ(ids({{"body", "<b>"}}), json::array());         // HTML tags are not text
}

TEST_F(QueryTest, TextLooksInFromToCcBccSubjectAndBody) {
    EXPECT_EQ(ids({{"text", "lunch"}}), json::array({plain_}));      // subject
    EXPECT_EQ(ids({{"text", "dave@"}}), json::array({attached_}));   // from
    EXPECT_EQ(ids({{"text", "secret@"}}), json::array({plain_}));    // bcc
    EXPECT_EQ(ids({{"text", "attached"}}), json::array({attached_})); // body
    EXPECT_EQ(ids({{"text", "pelican"}, {"inMailbox", inbox_id()}}), json::array({plain_, html_}));
    EXPECT_EQ(ids({{"text", "nowhere"}}), json::array());
}

// Several words are several terms, each to be found somewhere (found by a Cyrus/Stalwart comparison: "quick
// fox" found nothing in "The quick brown fox"); a quoted phrase is one term.
TEST_F(QueryTest, TextAndBodyMatchEveryTermAndQuotedPhrases) {
    EXPECT_EQ(ids({{"text", "lunch pelican"}}), json::array({plain_}));  // subject and body
    EXPECT_EQ(ids({{"text", "  pelican   crossing "}}), json::array({plain_}));
    EXPECT_EQ(ids({{"text", "pelican nowhere"}}), json::array());
    EXPECT_EQ(ids({{"text", "\"meet at the\""}}), json::array({plain_}));
    EXPECT_EQ(ids({{"text", "\"meet the\""}}), json::array());
    EXPECT_EQ(ids({{"body", "crossing meet"}}), json::array({plain_}));
    EXPECT_EQ(ids({{"body", "crossing lunch"}}), json::array());  // "lunch" is only in the subject
    // Each term is a filter of its own, so their number is bounded.
    std::string many;
    for (int i = 0; i < 65; ++i) many += "w ";
    auto answer = call("Email/query", {{"filter", {{"text", many}}}});
    EXPECT_EQ(answer[1]["type"], "invalidArguments") << answer.dump();
}

TEST(SearchTerms, SplitsAtBlanksAndKeepsQuotedPhrases) {
    using V = std::vector<std::string>;
    EXPECT_EQ(search_terms("quick brown  fox"), (V{"quick", "brown", "fox"}));
    EXPECT_EQ(search_terms("say \"quick brown\" fox"), (V{"say", "quick brown", "fox"}));
    EXPECT_EQ(search_terms("a\"b c\"d"), (V{"a", "b c", "d"}));
    EXPECT_EQ(search_terms("\"unclosed phrase"), (V{"unclosed phrase"}));
    EXPECT_EQ(search_terms(""), (V{""}));
    EXPECT_EQ(search_terms("  "), (V{"  "}));
    EXPECT_EQ(search_terms("\"\""), (V{"\"\""}));
}

TEST_F(QueryTest, BccHeaderAndHasAttachmentAreAnswered) {
    EXPECT_EQ(ids({{"bcc", "SECRET"}}), json::array({plain_}));
    EXPECT_EQ(ids({{"header", {"X-Tracker"}}}), json::array({plain_}));
    EXPECT_EQ(ids({{"header", {"x-tracker", "TICKET 42"}}}), json::array({plain_}));
    EXPECT_EQ(ids({{"header", {"X-Tracker", "43"}}}), json::array());
    EXPECT_EQ(ids({{"hasAttachment", true}}), json::array({attached_}));
    EXPECT_EQ(ids({{"hasAttachment", false}}), json::array({plain_, html_}));
    EXPECT_EQ(ids({{"operator", "NOT"}, {"conditions", {{{"body", "pelican"}}}}}), json::array({attached_}));
    EXPECT_EQ(ids({{"operator", "OR"}, {"conditions", {{{"hasAttachment", true}}, {{"bcc", "secret"}}}}}),
              json::array({plain_, attached_}));
}

TEST_F(QueryTest, ThreadKeywordConditionsAreAnswered) {
    auto seen = call("Email/set", {{"update", {{plain_, {{"keywords/$seen", true}}}}}});
    ASSERT_TRUE(seen[1]["updated"].contains(plain_)) << seen.dump();
    EXPECT_EQ(ids({{"allInThreadHaveKeyword", "$seen"}}), json::array({plain_}));
    EXPECT_EQ(ids({{"noneInThreadHaveKeyword", "$seen"}}), json::array({attached_, html_}));
    EXPECT_EQ(ids({{"someInThreadHaveKeyword", "$seen"}}), json::array({plain_}));
}

// RFC 8620 5.5: a known condition with a malformed value is invalidArguments; unsupportedFilter is for a
// valid filter the server cannot process (an unknown condition).
TEST_F(QueryTest, MalformedConditionsAreInvalidArguments) {
    for (const json& filter : {json{{"header", json::array()}}, json{{"header", {"a", "b", "c"}}},
                               json{{"hasAttachment", "yes"}}, json{{"body", 3}}, json{{"header", {""}}},
                               json{{"after", "2020-01-01"}}, json{{"before", 5}}, json{{"text", nullptr}}}) {
        auto answer = call("Email/query", {{"filter", filter}});
        EXPECT_EQ(answer[0], "error") << filter.dump();
        EXPECT_EQ(answer[1]["type"], "invalidArguments") << filter.dump();
    }
    auto unknown = call("Email/query", {{"filter", {{"isFlagged", true}}}});
    EXPECT_EQ(unknown[1]["type"], "unsupportedFilter") << unknown.dump();
}

TEST_F(QueryTest, ReadingMoreMessagesThanTheLimitIsRefusedNamingIt) {
    limits_.max_query_message_reads = 2;
    dispatcher_ = make_dispatcher(*store_, account_, limits_);
    auto answer = call("Email/query", {{"filter", {{"body", "pelican"}}}});
    ASSERT_EQ(answer[0], "error");
    EXPECT_EQ(answer[1]["type"], "unsupportedFilter");
    EXPECT_NE(answer[1]["description"].get<std::string>().find("2 messages"), std::string::npos) << answer.dump();
    // Cheap conditions first leave reads for the rest.
    auto narrowed = call("Email/query", {{"filter", {{"subject", "lunch"}, {"body", "pelican"}}}});
    EXPECT_EQ(narrowed[1]["ids"], json::array({plain_})) << narrowed.dump();
}

// [http] max_search_terms: a "text" or "body" value of more terms than the setting is invalidArguments naming the
// limit; as many terms as the setting still search.
TEST_F(QueryTest, MoreSearchTermsThanTheSettingAreRefused) {
    limits_.max_search_terms = 2;
    dispatcher_ = make_dispatcher(*store_, account_, limits_);
    for (const char* key : {"text", "body"}) {
        auto refused = call("Email/query", {{"filter", {{key, "pelican crossing meet"}}}});
        ASSERT_EQ(refused[0], "error") << refused.dump();
        EXPECT_EQ(refused[1]["type"], "invalidArguments") << refused.dump();
        EXPECT_NE(refused[1]["description"].get<std::string>().find("more than 2 search terms"), std::string::npos)
            << refused.dump();
        auto snippets = call("SearchSnippet/get", {{"filter", {{key, "pelican crossing meet"}}}, {"emailIds", {plain_}}});
        EXPECT_EQ(snippets[1]["type"], "invalidArguments") << snippets.dump();
    }
    auto allowed = call("Email/query", {{"filter", {{"body", "pelican crossing"}}}});
    EXPECT_EQ(allowed[1]["ids"], json::array({plain_})) << allowed.dump();
}

// ---- SearchSnippet/get (RFC 8621 5.1)

TEST_F(QueryTest, SearchSnippetsMarkTheTermsInSubjectAndBody) {
    auto answer = call("SearchSnippet/get", {{"filter", {{"operator", "AND"}, {"conditions", {{{"text", "pelican"}}, {{"subject", "lunch"}}}}}},
                                             {"emailIds", {plain_, html_, attached_, "e999999"}}});
    ASSERT_EQ(answer[0], "SearchSnippet/get") << answer.dump();
    const json& list = answer[1]["list"];
    ASSERT_EQ(list.size(), 3u);
    EXPECT_EQ(list[0]["emailId"], plain_);
    EXPECT_EQ(list[0]["subject"], "<mark>Lunch</mark> plans");
    EXPECT_EQ(list[0]["preview"], "Shall we meet at the <mark>pelican</mark> crossing?");
    EXPECT_EQ(list[1]["subject"], nullptr);  // "Newsletter": no term
    EXPECT_EQ(list[1]["preview"], "The <mark>Pelican</mark> café opens.");
    EXPECT_EQ(list[2]["subject"], nullptr);
    EXPECT_EQ(list[2]["preview"], nullptr);
    EXPECT_EQ(answer[1]["notFound"], json::array({"e999999"}));
    // Terms under NOT are not highlighted; no terms, no reads: nulls.
    auto negated = call("SearchSnippet/get", {{"filter", {{"operator", "NOT"}, {"conditions", {{{"text", "pelican"}}}}}},
                                              {"emailIds", {plain_}}});
    EXPECT_EQ(negated[1]["list"][0]["preview"], nullptr);
    auto bad = call("SearchSnippet/get", {{"filter", {{"nonsense", 1}}}, {"emailIds", {plain_}}});
    EXPECT_EQ(bad[1]["type"], "unsupportedFilter");
}

TEST(Highlight, EscapesHtmlAndMarksEveryOccurrence) {
    EXPECT_EQ(highlight("a <b> & PIE pie", {"pie"}), "a &lt;b&gt; &amp; <mark>PIE</mark> <mark>pie</mark>");
    EXPECT_EQ(highlight("nothing here", {"pie"}), std::nullopt);
}

// ---- Email/queryChanges (RFC 8620 5.6), Mailbox/changes and Thread/changes

TEST_F(QueryTest, QueryChangesReportsNewAndChangedEmailsAtTheirIndex) {
    json args = {{"filter", {{"inMailbox", inbox_id()}}}};
    auto first = call("Email/query", args);
    EXPECT_EQ(first[1]["canCalculateChanges"], true);
    const std::string state = first[1]["queryState"];
    // No change: nothing to report.
    json since = args;
    since["sinceQueryState"] = state;
    auto none = call("Email/queryChanges", since);
    ASSERT_EQ(none[0], "Email/queryChanges") << none.dump();
    EXPECT_EQ(none[1]["newQueryState"], state);
    EXPECT_EQ(none[1]["removed"], json::array());
    EXPECT_EQ(none[1]["added"], json::array());
    // A new message (newest: index 0), one moved out of the inbox, one destroyed.
    const std::string fresh = deliver_raw(kPlain, 1'700'000'900);
    auto trash = "m" + std::to_string(mailbox(account_.id, "Trash").id);
    auto moved = call("Email/set", {{"update", {{attached_, {{"mailboxIds", {{trash, true}}}}}}}, {"destroy", {html_}}});
    ASSERT_TRUE(moved[1]["updated"].contains(attached_)) << moved.dump();
    since["calculateTotal"] = true;
    auto changed = call("Email/queryChanges", since);
    ASSERT_EQ(changed[0], "Email/queryChanges") << changed.dump();
    EXPECT_EQ(changed[1]["oldQueryState"], state);
    EXPECT_EQ(changed[1]["newQueryState"], call("Email/query", args)[1]["queryState"]);
    EXPECT_EQ(changed[1]["total"], 2);
    EXPECT_EQ(changed[1]["added"], json::array({{{"id", fresh}, {"index", 0}}}));
    json removed = changed[1]["removed"];
    std::sort(removed.begin(), removed.end());
    json expected = json::array({attached_, html_});
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(removed, expected);
    // Applying the changes to the old ids gives the new ones.
    since["maxChanges"] = 2;
    EXPECT_EQ(call("Email/queryChanges", since)[1]["type"], "tooManyChanges");
}

// RFC 8620 5.6: the old ids with every removed id dropped and each added id spliced in at its index.
json apply_query_changes(const json& ids, const json& changes) {
    json out = json::array();
    for (const auto& id : ids) {
        if (std::find(changes["removed"].begin(), changes["removed"].end(), id) == changes["removed"].end()) out.push_back(id);
    }
    std::vector<std::pair<std::size_t, json>> added;
    for (const auto& item : changes["added"]) added.emplace_back(item["index"].get<std::size_t>(), item["id"]);
    std::sort(added.begin(), added.end());
    for (const auto& [index, id] : added) out.insert(out.begin() + static_cast<std::ptrdiff_t>(std::min(index, out.size())), id);
    return out;
}

TEST_F(QueryTest, QueryChangesFollowCollapsedThreads) {
    // RFC 8621 4.4.3: a reply takes its thread's place in collapsed results; the Email it replaces is removed.
    const std::string root = deliver_raw("Message-ID: <root@x.test>\r\nSubject: Kites\r\n\r\nfly?\r\n", 1'700'000'300);
    json args = {{"filter", {{"inMailbox", inbox_id()}}}, {"collapseThreads", true}};
    auto first = call("Email/query", args);
    EXPECT_EQ(first[1]["canCalculateChanges"], true);
    const std::string reply = deliver_raw("Message-ID: <reply@x.test>\r\nIn-Reply-To: <root@x.test>\r\n"
                                          "References: <root@x.test>\r\nSubject: Re: Kites\r\n\r\nyes\r\n",
                                          1'700'000'400);
    json since = args;
    since["sinceQueryState"] = first[1]["queryState"];
    auto changed = call("Email/queryChanges", since);
    ASSERT_EQ(changed[0], "Email/queryChanges") << changed.dump();
    EXPECT_EQ(changed[1]["added"], json::array({{{"id", reply}, {"index", 0}}}));
    const json& removed = changed[1]["removed"];
    EXPECT_NE(std::find(removed.begin(), removed.end(), root), removed.end()) << changed.dump();
    EXPECT_EQ(apply_query_changes(first[1]["ids"], changed[1]), call("Email/query", args)[1]["ids"]);
    // Without the reply, the root stands for its thread again.
    auto fresh = call("Email/query", args);
    ASSERT_TRUE(call("Email/set", {{"destroy", {reply}}})[1]["destroyed"] == json::array({reply}));
    since["sinceQueryState"] = fresh[1]["queryState"];
    auto back = call("Email/queryChanges", since);
    ASSERT_EQ(back[0], "Email/queryChanges") << back.dump();
    EXPECT_EQ(apply_query_changes(fresh[1]["ids"], back[1]), call("Email/query", args)[1]["ids"]);
    EXPECT_NE(std::find(back[1]["added"].begin(), back[1]["added"].end(), json{{"id", root}, {"index", 0}}),
              back[1]["added"].end()) << back.dump();
}

TEST_F(QueryTest, QueryChangesRefusesWhatItCannotCalculate) {
    auto future = call("Email/queryChanges", {{"sinceQueryState", "999999"}});
    EXPECT_EQ(future[1]["type"], "cannotCalculateChanges");
    auto junk = call("Email/queryChanges", {{"sinceQueryState", "abc"}});
    EXPECT_EQ(junk[1]["type"], "cannotCalculateChanges");
    auto missing = call("Email/queryChanges", json::object());
    EXPECT_EQ(missing[1]["type"], "invalidArguments");
}

TEST_F(QueryTest, MailboxChangesFollowCountsCreationsAndDestructionsFromAnyState) {
    const std::string start = call("Mailbox/get", {{"ids", json::array()}})[1]["state"];
    deliver_raw(kPlain);
    auto counts = call("Mailbox/changes", {{"sinceState", start}});
    ASSERT_EQ(counts[0], "Mailbox/changes") << counts.dump();
    EXPECT_EQ(counts[1]["updated"], json::array({inbox_id()}));
    EXPECT_EQ(counts[1]["updatedProperties"],
              json::array({"totalEmails", "unreadEmails", "totalThreads", "unreadThreads"}));
    const std::string after_delivery = counts[1]["newState"];
    auto made = call("Mailbox/set", {{"create", {{"a", {{"name", "Receipts"}, {"parentId", inbox_id()}}}, {"b", {{"name", "Travel"}, {"parentId", inbox_id()}}}}}});
    ASSERT_TRUE(made[1]["created"].contains("a")) << made.dump();
    const std::string receipts = made[1]["created"]["a"]["id"], travel = made[1]["created"]["b"]["id"];
    // From the very first state: the inbox and the two new ones, paged one at a time.
    std::string state = start;
    std::vector<std::string> seen;
    bool more = true;
    for (int round = 0; more && round < 10; ++round) {
        auto page = call("Mailbox/changes", {{"sinceState", state}, {"maxChanges", 1}});
        ASSERT_EQ(page[0], "Mailbox/changes") << page.dump();
        for (const char* list : {"created", "updated", "destroyed"}) {
            for (const auto& id : page[1][list]) seen.push_back(std::string(list) + " " + id.get<std::string>());
        }
        more = page[1]["hasMoreChanges"];
        state = page[1]["newState"];
    }
    EXPECT_EQ(state, call("Mailbox/get", {{"ids", json::array()}})[1]["state"]);
    EXPECT_EQ(seen, (std::vector<std::string>{"updated " + inbox_id(), "created " + receipts, "created " + travel}));
    auto destroyed = call("Mailbox/set", {{"destroy", {travel}}});
    ASSERT_EQ(destroyed[1]["destroyed"], json::array({travel})) << destroyed.dump();
    auto gone = call("Mailbox/changes", {{"sinceState", after_delivery}});
    EXPECT_EQ(gone[1]["created"], json::array({receipts}));
    EXPECT_EQ(gone[1]["destroyed"], json::array());  // created and destroyed since: never seen
    EXPECT_EQ(call("Mailbox/changes", {{"sinceState", "garbage"}})[1]["type"], "cannotCalculateChanges");
}

TEST_F(QueryTest, ThreadChangesAnswerFromEveryEarlierState) {
    std::vector<std::string> states;
    for (int i = 0; i < 5; ++i) {
        states.push_back(call("Thread/get", {{"ids", json::array()}})[1]["state"]);
        deliver_raw(kPlain, 1'700'001'000 + i);
    }
    for (const auto& state : states) {
        auto answer = call("Thread/changes", {{"sinceState", state}, {"maxChanges", 1}});
        EXPECT_EQ(answer[0], "Thread/changes") << state << " " << answer.dump();
    }
}

}  // namespace
}  // namespace magpie::http
