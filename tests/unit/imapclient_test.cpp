// The IMAP client side: response reading (any split, literals, bounds), command writing (quoting, literals,
// LITERAL+), the connection state machine, and the typed readings of FETCH, ENVELOPE, BODYSTRUCTURE, LIST,
// SEARCH and the UIDPLUS codes.
#include <gtest/gtest.h>

#include "imap/client/client.h"
#include "imap/client/command.h"
#include "imap/client/data.h"
#include "imap/client/response.h"

namespace {

using namespace magpie::imap::client;

std::vector<Response> read_all(std::string_view bytes, std::size_t step, ResponseLimits limits = {}) {
    ResponseParser parser(limits);
    std::vector<Response> out;
    for (std::size_t i = 0; i < bytes.size(); i += step) {
        parser.feed(bytes.substr(i, step));
        while (auto r = parser.next()) out.push_back(std::move(*r));
    }
    return out;
}

const char kFetchWithLiteral[] =
    "* 12 FETCH (UID 7 FLAGS (\\Seen $Junk) RFC822.SIZE 44 BODY[] {14}\r\nHi\r\n{5}\r\nthere ENVELOPE (NIL "
    "\"x\" NIL NIL "
    "NIL NIL NIL NIL NIL NIL))\r\n"
    "a1 OK [READ-ONLY] done\r\n";

TEST(ImapClientResponse, ReadsAFetchWithALiteralWhateverTheSplit) {
    for (std::size_t step : {1u, 2u, 7u, 1000u}) {
        auto responses = read_all(kFetchWithLiteral, step);
        ASSERT_EQ(responses.size(), 2u) << step;
        auto& u = std::get<Untagged>(responses[0]);
        EXPECT_EQ(u.name, "FETCH");
        EXPECT_EQ(u.number, 12u);
        auto fetch = parse_fetch(u);
        ASSERT_TRUE(fetch) << fetch.error().message;
        EXPECT_EQ(fetch->uid, 7u);
        EXPECT_EQ(fetch->size, 44u);
        ASSERT_TRUE(fetch->flags);
        EXPECT_EQ(fetch->flags->size(), 2u);
        EXPECT_EQ(fetch->sections["BODY[]"], "Hi\r\n{5}\r\nthere");
        ASSERT_TRUE(fetch->envelope);
        EXPECT_EQ(fetch->envelope->subject, "x");
        auto& t = std::get<Tagged>(responses[1]);
        EXPECT_EQ(t.tag, "a1");
        EXPECT_EQ(t.status, Status::ok);
        EXPECT_EQ(t.text.code, "READ-ONLY");
        EXPECT_EQ(t.text.text, "done");
    }
}

TEST(ImapClientResponse, ReadsStatusResponsesWithCodes) {
    auto responses = read_all(
        "* OK [CAPABILITY IMAP4rev1 LITERAL+ IDLE] ready\r\n+ \r\n+ cmVhZHk=\r\n* 3 EXISTS\r\n"
        "a2 NO [TRYCREATE] no such mailbox\r\n* BYE bye\r\n",
        3);
    ASSERT_EQ(responses.size(), 6u);
    auto& ok = std::get<Untagged>(responses[0]);
    EXPECT_EQ(ok.status, Status::ok);
    EXPECT_EQ(split_words(ok.text.code_args, true),
              (std::vector<std::string>{"IMAP4REV1", "LITERAL+", "IDLE"}));
    EXPECT_EQ(std::get<Continuation>(responses[1]).text, "");
    EXPECT_EQ(std::get<Continuation>(responses[2]).text, "cmVhZHk=");
    EXPECT_EQ(std::get<Untagged>(responses[3]).number, 3u);
    EXPECT_EQ(std::get<Untagged>(responses[3]).name, "EXISTS");
    EXPECT_EQ(std::get<Tagged>(responses[4]).text.code, "TRYCREATE");
    EXPECT_EQ(std::get<Untagged>(responses[5]).status, Status::bye);
}

TEST(ImapClientResponse, ReadsSectionNamesWithSpacesAsOneAtom) {
    auto responses = read_all("* 1 FETCH (BODY[HEADER.FIELDS (FROM SUBJECT)]<0> \"From: a\" UID 3)\r\n", 5);
    auto fetch = parse_fetch(std::get<Untagged>(responses.at(0)));
    ASSERT_TRUE(fetch) << fetch.error().message;
    EXPECT_EQ(fetch->sections.at("BODY[HEADER.FIELDS (FROM SUBJECT)]"), "From: a");
    EXPECT_EQ(fetch->uid, 3u);
}

TEST(ImapClientResponse, MalformedResponseIsSkippedAndTheNextIsRead) {
    auto responses = read_all("* 1 FETCH (UID \"unterminated)\r\n* 2 EXISTS\r\n", 4);
    ASSERT_EQ(responses.size(), 2u);
    EXPECT_TRUE(std::holds_alternative<Malformed>(responses[0]));
    EXPECT_EQ(std::get<Untagged>(responses[1]).name, "EXISTS");
}

TEST(ImapClientResponse, OverlongLineIsFatal) {
    ResponseLimits limits;
    limits.max_line_octets = 64;
    ResponseParser parser(limits);
    parser.feed("* OK " + std::string(200, 'x'));
    EXPECT_FALSE(parser.next());
    ASSERT_TRUE(parser.fatal());
    EXPECT_NE(parser.fatal()->find("line longer"), std::string::npos);
}

TEST(ImapClientResponse, LiteralOverTheLimitIsFatalBeforeItsBytesArrive) {
    ResponseLimits limits;
    limits.max_literal_octets = 100;
    ResponseParser parser(limits);
    parser.feed("* 1 FETCH (BODY[] {101}\r\n");
    EXPECT_FALSE(parser.next());
    ASSERT_TRUE(parser.fatal());
    EXPECT_LE(parser.buffered(), 64u);
}

TEST(ImapClientResponse, NestingPastTheLimitIsMalformed) {
    ResponseLimits limits;
    limits.max_depth = 3;
    auto responses = read_all("* 1 FETCH ((((((x))))))\r\n", 100, limits);
    ASSERT_EQ(responses.size(), 1u);
    EXPECT_TRUE(std::holds_alternative<Malformed>(responses[0]));
}

TEST(ImapClientCommand, QuotesWhatIsNotAnAtomAndLiteralsWhatCannotBeQuoted) {
    Command c("LOGIN");
    c.astring("user@example.test").astring("pa ss\"w\\d");
    auto pieces = c.finish("a1");
    ASSERT_EQ(pieces.size(), 1u);
    EXPECT_EQ(pieces[0].text, "a1 LOGIN user@example.test \"pa ss\\\"w\\\\d\"\r\n");

    Command s("SEARCH");
    s.raw("SUBJECT").astring("line\r\nA2 DELETE INBOX");
    auto lit = s.finish("a2");
    ASSERT_EQ(lit.size(), 2u);
    EXPECT_EQ(lit[0].text, "a2 SEARCH SUBJECT ");
    EXPECT_EQ(lit[0].literal, "line\r\nA2 DELETE INBOX");
    EXPECT_EQ(lit[1].text, "\r\n");
}

TEST(ImapClientCommand, RawArgumentWithALineEndMakesTheCommandInvalid) {
    Command c("STORE");
    c.raw("1 +FLAGS (\\Seen)\r\na9 LOGOUT");
    EXPECT_TRUE(c.error());
    Client client;
    EXPECT_FALSE(client.submit(c));
}

TEST(ImapClientCommand, MailboxNamesGoInModifiedUtf7) {
    Command c("SELECT");
    c.mailbox("Entwürfe");
    EXPECT_EQ(c.finish("a1")[0].text, "a1 SELECT Entw&APw-rfe\r\n");
    Command nil("SELECT");
    nil.mailbox("NIL");
    EXPECT_EQ(nil.finish("a1")[0].text, "a1 SELECT \"NIL\"\r\n");
}

std::string drain(Client& client) {
    std::string out;
    while (client.has_output()) out += client.take_output();
    return out;
}

TEST(ImapClient, WaitsForTheGreetingThenForContinuationBeforeALiteral) {
    Client client;
    Command append("APPEND");
    append.mailbox("INBOX").literal("Subject: x\r\n\r\nbody\r\n");
    auto tag = client.submit(append);
    ASSERT_TRUE(tag);
    EXPECT_EQ(drain(client), "");
    client.feed("* OK [CAPABILITY IMAP4rev1] hi\r\n");
    ASSERT_TRUE(std::holds_alternative<Greeting>(*client.poll_event()));
    EXPECT_EQ(drain(client), "a1 APPEND INBOX {20}\r\n");
    client.feed("+ go\r\n");
    EXPECT_EQ(drain(client), "Subject: x\r\n\r\nbody\r\n\r\n");
    client.feed("a1 OK [APPENDUID 9 4] done\r\n");
    auto done = std::get<Completed>(*client.poll_event());
    EXPECT_EQ(done.status, Status::ok);
    auto uid = parse_append_uid(done.text);
    ASSERT_TRUE(uid);
    EXPECT_EQ(uid->uid_validity, 9u);
    EXPECT_EQ(uid->uids, std::vector<std::uint32_t>{4});
}

TEST(ImapClient, SendsNonSynchronisingLiteralsWhenLiteralPlusIsOffered) {
    Client client;
    client.feed("* OK [CAPABILITY IMAP4rev1 LITERAL+] hi\r\n");
    Command append("APPEND");
    append.mailbox("INBOX").literal("abc");
    ASSERT_TRUE(client.submit(append));
    EXPECT_EQ(drain(client), "a1 APPEND INBOX {3+}\r\nabc\r\n");
}

TEST(ImapClient, LiteralMinusAllowsNonSynchronisingLiteralsUpTo4096Octets) {
    Client client;
    client.feed("* OK [CAPABILITY IMAP4rev1 LITERAL-] hi\r\n");
    Command small("APPEND");
    small.mailbox("INBOX").literal(std::string(4096, 'x'));
    ASSERT_TRUE(client.submit(small));
    EXPECT_EQ(drain(client), "a1 APPEND INBOX {4096+}\r\n" + std::string(4096, 'x') + "\r\n");
    Command large("APPEND");
    large.mailbox("INBOX").literal(std::string(4097, 'x'));
    ASSERT_TRUE(client.submit(large));
    EXPECT_EQ(drain(client), "a2 APPEND INBOX {4097}\r\n");
}

TEST(ImapClient, PipelinesCommandsAndMatchesCompletionsByTag) {
    Client client;
    client.feed("* OK hi\r\n");
    client.poll_event();
    ASSERT_TRUE(client.submit(Command("NOOP")));
    ASSERT_TRUE(client.submit(Command("CHECK")));
    EXPECT_EQ(drain(client), "a1 NOOP\r\na2 CHECK\r\n");
    EXPECT_EQ(client.outstanding(), 2u);
    client.feed("* 4 EXISTS\r\na1 OK noop\r\nzz OK stray\r\na2 NO check\r\n");
    auto first = std::get<Completed>(*client.poll_event());
    EXPECT_EQ(first.tag, "a1");
    EXPECT_EQ(first.untagged.size(), 1u);
    auto second = std::get<Completed>(*client.poll_event());
    EXPECT_EQ(second.tag, "a2");
    EXPECT_EQ(second.status, Status::no);
    ASSERT_EQ(second.malformed.size(), 1u);  // the completion for a tag nobody used
    EXPECT_EQ(client.outstanding(), 0u);
}

TEST(ImapClient, RefusedLiteralDropsTheRestOfTheCommandAndUnblocksTheNext) {
    Client client;
    client.feed("* OK hi\r\n");
    Command append("APPEND");
    append.mailbox("INBOX").literal("abc");
    ASSERT_TRUE(client.submit(append));
    ASSERT_TRUE(client.submit(Command("NOOP")));
    EXPECT_EQ(drain(client), "a1 APPEND INBOX {3}\r\n");
    client.feed("a1 NO [TOOBIG] too big\r\n");
    EXPECT_EQ(drain(client), "a2 NOOP\r\n");
}

TEST(ImapClient, GathersUntaggedDataAndCapabilitiesPerCompletion) {
    Client client;
    client.feed("* OK hi\r\n");
    client.poll_event();
    ASSERT_TRUE(client.submit(Command("CAPABILITY")));
    drain(client);
    client.feed("* CAPABILITY IMAP4rev1 MOVE\r\n* SEARCH 2 4\r\na1 OK done\r\n");
    auto done = std::get<Completed>(*client.poll_event());
    ASSERT_EQ(done.untagged.size(), 2u);
    EXPECT_TRUE(client.has_capability("move"));
    auto found = parse_search(done.untagged[1]);
    ASSERT_TRUE(found);
    EXPECT_EQ(*found, (std::vector<std::uint32_t>{2, 4}));
}

TEST(ImapClient, ByeThenCloseReportsTheServersWords) {
    Client client;
    client.feed("* OK hi\r\n* BYE shutting down\r\n");
    client.poll_event();
    client.connection_closed("eof");
    auto closed = std::get<Closed>(*client.poll_event());
    EXPECT_NE(closed.reason.find("shutting down"), std::string::npos);
    EXPECT_TRUE(client.closed());
}

TEST(ImapClient, GreetingByeClosesAtOnce) {
    Client client;
    client.feed("* BYE too many connections\r\n");
    EXPECT_TRUE(std::holds_alternative<Closed>(*client.poll_event()));
}

TEST(ImapClientData, ReadsEnvelopeAddressesAndEncodedSubjects) {
    auto r = read_all(
        "* 1 FETCH (ENVELOPE (\"Mon, 1 Jan 2024 10:00:00 +0000\" \"=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\" "
        "((\"=?UTF-8?B?SsO8cmdlbg==?=\" NIL \"j\" \"example.test\")) NIL NIL "
        "((NIL NIL \"team\" NIL)(NIL NIL \"a\" \"b.test\")(NIL NIL NIL NIL)) NIL NIL \"<p@x>\" "
        "\"<m@x>\"))\r\n",
        9);
    auto fetch = parse_fetch(std::get<Untagged>(r.at(0)));
    ASSERT_TRUE(fetch) << fetch.error().message;
    const auto& e = *fetch->envelope;
    EXPECT_EQ(e.subject, "Grüße");
    ASSERT_EQ(e.from.size(), 1u);
    EXPECT_EQ(e.from[0].display(), "Jürgen <j@example.test>");
    ASSERT_EQ(e.to.size(), 1u);
    EXPECT_EQ(e.to[0].addr_spec(), "a@b.test");
    EXPECT_EQ(e.in_reply_to, "<p@x>");
    EXPECT_EQ(e.message_id, "<m@x>");
}

TEST(ImapClientData, ReadsANestedBodyStructureWithSectionsAndFileNames) {
    auto r = read_all(
        "* 1 FETCH (BODYSTRUCTURE (((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 5 1 NIL NIL "
        "NIL NIL)"
        "(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 9 1 NIL NIL NIL NIL) "
        "\"alternative\" "
        "(\"boundary\" \"b2\") NIL NIL NIL)"
        "(\"application\" \"pdf\" (\"name\" \"x.pdf\") NIL NIL \"base64\" 100 NIL (\"attachment\" "
        "(\"filename*\" \"UTF-8''r%C3%A9sum%C3%A9.pdf\")) NIL NIL)"
        "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 50 (NIL \"inner\" NIL NIL NIL NIL NIL NIL NIL NIL) "
        "(\"text\" \"plain\" NIL NIL NIL \"7bit\" 4 1 NIL NIL NIL NIL) 3 NIL (\"attachment\" NIL) NIL NIL) "
        "\"mixed\" (\"boundary\" \"b1\") NIL NIL NIL))\r\n",
        11);
    auto fetch = parse_fetch(std::get<Untagged>(r.at(0)));
    ASSERT_TRUE(fetch) << fetch.error().message;
    const auto& b = *fetch->body_structure;
    EXPECT_EQ(b.subtype, "mixed");
    ASSERT_EQ(b.children.size(), 3u);
    EXPECT_EQ(b.children[0].subtype, "alternative");
    EXPECT_EQ(b.children[0].children[1].section, "1.2");
    EXPECT_EQ(b.children[0].children[1].encoding, "quoted-printable");
    EXPECT_FALSE(b.children[0].children[0].is_attachment());
    EXPECT_EQ(b.children[1].section, "2");
    EXPECT_TRUE(b.children[1].is_attachment());
    EXPECT_EQ(b.children[1].filename(), "résumé.pdf");
    EXPECT_EQ(b.children[2].disposition, "attachment");
    ASSERT_EQ(b.children[2].children.size(), 1u);
    EXPECT_EQ(b.children[2].children[0].section, "3.1");
}

TEST(ImapClientData, ReadsListEntriesAndDecodesNames) {
    auto r =
        read_all("* LIST (\\HasNoChildren \\Drafts) \"/\" \"Entw&APw-rfe\"\r\n* LIST () NIL INBOX\r\n", 6);
    auto first = parse_list(std::get<Untagged>(r.at(0)));
    ASSERT_TRUE(first);
    EXPECT_EQ(first->name, "Entwürfe");
    EXPECT_EQ(first->delimiter, "/");
    EXPECT_EQ(first->attributes.size(), 2u);
    auto second = parse_list(std::get<Untagged>(r.at(1)));
    ASSERT_TRUE(second);
    EXPECT_EQ(second->delimiter, "");
}

// With UTF8=ACCEPT enabled a name is UTF-8 as sent: "Entw&APw-rfe" is a name of its own, not "Entwürfe"
// (the fuzz target's writer/reader check found the reader decoding it anyway).
TEST(ImapClientData, ReadsListNamesAsSentOnceUtf8IsEnabled) {
    auto r = read_all("* LIST () \"/\" \"Entw&APw-rfe\"\r\n* LIST () \"/\" \"Entwürfe\"\r\n", 5);
    auto first = parse_list(std::get<Untagged>(r.at(0)), true);
    ASSERT_TRUE(first);
    EXPECT_EQ(first->name, "Entw&APw-rfe");
    auto second = parse_list(std::get<Untagged>(r.at(1)), true);
    ASSERT_TRUE(second);
    EXPECT_EQ(second->name, "Entwürfe");
}

TEST(ImapClientData, ReadsEsearchAllAndCopyUid) {
    auto r = read_all("* ESEARCH (TAG \"a1\") UID ALL 3:5,9\r\na1 OK [COPYUID 7 1:2 10:11] moved\r\n", 8);
    auto found = parse_search(std::get<Untagged>(r.at(0)));
    ASSERT_TRUE(found);
    EXPECT_EQ(*found, (std::vector<std::uint32_t>{3, 4, 5, 9}));
    auto copy = parse_copy_uid(std::get<Tagged>(r.at(1)).text);
    ASSERT_TRUE(copy);
    EXPECT_EQ(copy->uids, (std::vector<std::uint32_t>{10, 11}));
}

TEST(ImapClientData, HugeSequenceSetIsRefused) {
    EXPECT_FALSE(expand_sequence_set("1:4294967295", 1000));
}

}  // namespace

namespace {

TEST(ImapClient, BytesAfterTheStarttlsOkAreRefusedAsInjection) {
    Client clean;
    clean.feed("* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n");
    ASSERT_TRUE(clean.submit(Command("STARTTLS")));
    clean.take_output();
    clean.feed("a1 OK go ahead\r\n");
    EXPECT_TRUE(clean.tls_started());
    EXPECT_TRUE(clean.capabilities().empty());

    Client injected;
    injected.feed("* OK hi\r\n");
    ASSERT_TRUE(injected.submit(Command("STARTTLS")));
    injected.take_output();
    injected.feed("a1 OK go ahead\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n");
    EXPECT_FALSE(injected.tls_started());
}

}  // namespace
