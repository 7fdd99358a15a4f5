#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "imap/parser.h"

namespace magpie::imap {
namespace {

using namespace std::string_literals;

// Feeds bytes in chunks of `chunk` octets and drains every event after each chunk.
std::vector<Event> run(Parser& parser, std::string_view bytes, std::size_t chunk = 1 << 30) {
    std::vector<Event> events;
    for (std::size_t at = 0; at < bytes.size(); at += chunk) {
        parser.feed(bytes.substr(at, chunk));
        while (auto event = parser.next()) events.push_back(std::move(*event));
    }
    return events;
}

std::vector<Event> run(std::string_view bytes, std::size_t chunk = 1 << 30, Limits limits = {}) {
    Parser parser(limits);
    return run(parser, bytes, chunk);
}

// The one command a line must produce.
Command command(std::string_view bytes, bool utf8 = false) {
    Parser parser;
    parser.set_utf8_mailbox_names(utf8);
    auto events = run(parser, bytes);
    std::vector<Command> commands;
    for (Event& event : events) {
        if (auto* error = std::get_if<ParseError>(&event)) ADD_FAILURE() << bytes << ": " << error->message;
        if (auto* c = std::get_if<Command>(&event)) commands.push_back(std::move(*c));
    }
    EXPECT_EQ(commands.size(), 1u) << bytes;
    if (commands.empty()) return Command{};
    return commands[0];
}

template <class T>
T body(std::string_view bytes, bool utf8 = false) {
    Command c = command(bytes, utf8);
    const T* value = std::get_if<T>(&c.body);
    EXPECT_NE(value, nullptr) << bytes;
    return value != nullptr ? *value : T{};
}

// The one parse error a line must produce.
ParseError error(std::string_view bytes, Limits limits = {}, bool utf8 = false) {
    Parser parser(limits);
    parser.set_utf8_mailbox_names(utf8);
    auto events = run(parser, bytes);
    for (Event& event : events) {
        if (auto* e = std::get_if<ParseError>(&event)) return *e;
    }
    ADD_FAILURE() << "no error for " << bytes;
    return ParseError{};
}

std::size_t count_commands(const std::vector<Event>& events) {
    std::size_t n = 0;
    for (const Event& event : events) n += std::holds_alternative<Command>(event) ? 1 : 0;
    return n;
}

// ---- Simple commands and tags ---------------------------------------------------------------------------

TEST(ImapParser, ParsesArgumentlessCommands) {
    EXPECT_EQ(command("a001 CAPABILITY\r\n").tag, "a001");
    body<Capability>("a001 capability\r\n");
    body<Noop>("a002 NOOP\r\n");
    body<Logout>("A023 LOGOUT\r\n");
    body<StartTls>("a002 STARTTLS\r\n");
    body<Namespace>("A001 NAMESPACE\r\n");
    body<Idle>("A001 IDLE\r\n");
    body<Check>("FXXZ CHECK\r\n");
    body<Close>("A341 CLOSE\r\n");
    body<Unselect>("A342 UNSELECT\r\n");
    EXPECT_FALSE(body<Expunge>("A202 EXPUNGE\r\n").uids);
}

TEST(ImapParser, AcceptsBareLfLineEnd) {
    body<Noop>("a NOOP\n");
}

TEST(ImapParser, RejectsUnknownCommandWithItsTag) {
    ParseError e = error("x1 FROBNICATE\r\n");
    EXPECT_EQ(e.tag, "x1");
    EXPECT_EQ(e.status, ParseError::Status::bad);
    EXPECT_FALSE(e.close_connection);
}

TEST(ImapParser, RejectsInvalidTagWithStar) {
    EXPECT_EQ(error("a+b NOOP\r\n").tag, "*");
    EXPECT_EQ(error("(x NOOP\r\n").tag, "*");
    EXPECT_EQ(error("NOOP\r\n").tag, "NOOP");
}

TEST(ImapParser, RejectsTrailingGarbageAndMissingArguments) {
    EXPECT_EQ(error("a NOOP now\r\n").tag, "a");
    error("a LOGIN user\r\n");
    error("a SELECT\r\n");
    error("a  NOOP\r\n");
}

TEST(ImapParser, IgnoresBlankLinesBetweenCommands) {
    auto events = run("\r\n\r\na NOOP\r\n\r\n");
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(count_commands(events), 1u);
}

TEST(ImapParser, YieldsPipelinedCommandsOneAtATime) {
    Parser parser;
    parser.feed("a NOOP\r\nb NOOP\r\nc LOGOUT\r\n");
    auto first = parser.next();
    ASSERT_TRUE(first);
    EXPECT_EQ(std::get<Command>(*first).tag, "a");
    auto second = parser.next();
    ASSERT_TRUE(second);
    EXPECT_EQ(std::get<Command>(*second).tag, "b");
    auto third = parser.next();
    ASSERT_TRUE(third);
    EXPECT_TRUE(std::holds_alternative<Logout>(std::get<Command>(*third).body));
    EXPECT_FALSE(parser.next());
}

// ---- Strings and literals -------------------------------------------------------------------------------

TEST(ImapParser, ParsesLoginWithAtomsAndQuotedStrings) {
    Login login = body<Login>("a001 LOGIN SMITH SESAME\r\n");
    EXPECT_EQ(login.user, "SMITH");
    EXPECT_EQ(login.password, "SESAME");
    login = body<Login>("a LOGIN \"demo@example.test\" \"pa ss\\\"w\\\\d\"\r\n");
    EXPECT_EQ(login.user, "demo@example.test");
    EXPECT_EQ(login.password, "pa ss\"w\\d");
    login = body<Login>("a LOGIN \"\" \"\"\r\n");
    EXPECT_EQ(login.user, "");
}

TEST(ImapParser, RejectsBadQuotedStrings) {
    error("a LOGIN \"abc def\r\n");
    error("a LOGIN \"a\\bc\" x\r\n");
    error("a LOGIN \"a\rb\" x\r\n");
}

TEST(ImapParser, AsksForContinuationOnSynchronisingLiteral) {
    Parser parser;
    parser.feed("a LOGIN {4}\r\n");
    auto event = parser.next();
    ASSERT_TRUE(event);
    EXPECT_TRUE(std::holds_alternative<ContinuationRequest>(*event));
    EXPECT_FALSE(parser.next());
    parser.feed("fred {4}\r\n");
    event = parser.next();
    ASSERT_TRUE(event);
    EXPECT_TRUE(std::holds_alternative<ContinuationRequest>(*event));
    parser.feed("p\r\nw\r\n");
    event = parser.next();
    ASSERT_TRUE(event);
    Login login = std::get<Login>(std::get<Command>(*event).body);
    EXPECT_EQ(login.user, "fred");
    EXPECT_EQ(login.password, "p\r\nw");
}

TEST(ImapParser, NonSynchronisingLiteralNeedsNoContinuation) {
    auto events = run("a LOGIN {4+}\r\nfred {2+}\r\npw\r\n");
    ASSERT_EQ(events.size(), 1u);
    Login login = std::get<Login>(std::get<Command>(events[0]).body);
    EXPECT_EQ(login.user, "fred");
    EXPECT_EQ(login.password, "pw");
}

TEST(ImapParser, ParsesTheSameWhateverTheSplit) {
    const std::string session =
        "a1 LOGIN {4}\r\nfred {3+}\r\nx\"y\r\n"
        "a2 APPEND Drafts (\\Seen) \" 5-Jul-1994 02:44:25 -0700\" {21}\r\nSubject: hi\r\n\r\nbody\r\n\r\n"
        "a3 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From)]<0.10>)\r\n"
        "a4 SEARCH OR (FROM {3}\r\nbob) SEEN NOT 2:4\r\n";
    auto whole = run(session);
    ASSERT_EQ(count_commands(whole), 4u);
    for (std::size_t chunk : {1, 2, 3, 7, 13}) {
        auto split = run(session, chunk);
        ASSERT_EQ(split.size(), whole.size()) << chunk;
        for (std::size_t i = 0; i < whole.size(); ++i) {
            ASSERT_EQ(split[i].index(), whole[i].index());
            if (auto* c = std::get_if<Command>(&whole[i])) {
                EXPECT_EQ(std::get<Command>(split[i]).tag, c->tag);
                EXPECT_TRUE(std::get<Command>(split[i]).body == c->body)
                    << "chunk " << chunk << " " << c->tag;
            }
        }
    }
}

TEST(ImapParser, AcceptsEmptyLiteral) {
    auto events = run("a LOGIN {0}\r\n {0+}\r\n\r\n");
    ASSERT_EQ(events.size(), 2u);
    EXPECT_TRUE(std::holds_alternative<ContinuationRequest>(events[0]));
    Login login = std::get<Login>(std::get<Command>(events[1]).body);
    EXPECT_EQ(login.user, "");
    EXPECT_EQ(login.password, "");
}

TEST(ImapParser, RejectsNulInLiteralAndInLine) {
    std::string with_nul = "a LOGIN {3+}\r\na\0b x\r\n"s;
    EXPECT_EQ(error(with_nul).tag, "a");
    std::string nul_line = "a NOOP\0\r\nb NOOP\r\n"s;
    auto events = run(nul_line);
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(std::get<ParseError>(events[0]).tag, "a");
    EXPECT_EQ(std::get<Command>(events[1]).tag, "b");
}

TEST(ImapParser, KeepsConnectionForCompleteBadLineEndingInBrace) {
    ParseError e = error("a LOGIN x\0 y}\r\n"s);
    EXPECT_EQ(e.tag, "a");
    EXPECT_FALSE(e.close_connection);
}

TEST(ImapParser, RefusesLiteral8OutsideAppend) {
    error("a LOGIN ~{3+}\r\nabc x\r\n");
}

// ---- Authentication and modes ---------------------------------------------------------------------------

TEST(ImapParser, ParsesAuthenticateWithAndWithoutInitialResponse) {
    Authenticate auth = body<Authenticate>("A001 AUTHENTICATE plain\r\n");
    EXPECT_EQ(auth.mechanism, "PLAIN");
    EXPECT_FALSE(auth.initial_response);
    auth = body<Authenticate>("a AUTHENTICATE PLAIN AGRlbW8AcGFzcw==\r\n");
    EXPECT_EQ(auth.initial_response, "AGRlbW8AcGFzcw==");
    // RFC 4959 3: "=" is an empty initial response.
    auth = body<Authenticate>("a AUTHENTICATE EXTERNAL =\r\n");
    EXPECT_EQ(auth.initial_response, "");
    error("a AUTHENTICATE PLAIN ab!c\r\n");
}

TEST(ImapParser, ReadsSaslResponseLinesWhenAsked) {
    Parser parser;
    // The response arrives with the command: the switch applies to the bytes after the command.
    parser.feed("a AUTHENTICATE PLAIN\r\nAGRlbW8AcGFzcw==\r\nb NOOP\r\n");
    auto event = parser.next();
    ASSERT_TRUE(event);
    EXPECT_TRUE(std::holds_alternative<Authenticate>(std::get<Command>(*event).body));
    parser.expect_sasl_response();
    event = parser.next();
    ASSERT_TRUE(event);
    EXPECT_EQ(std::get<SaslResponse>(*event).text, "AGRlbW8AcGFzcw==");
    event = parser.next();
    ASSERT_TRUE(event);
    EXPECT_EQ(std::get<Command>(*event).tag, "b");
}

TEST(ImapParser, SaslCancelIsAResponseLine) {
    Parser parser;
    parser.expect_sasl_response();
    parser.feed("*\r\n");
    auto event = parser.next();
    ASSERT_TRUE(event);
    EXPECT_EQ(std::get<SaslResponse>(*event).text, "*");
}

TEST(ImapParser, ReadsIdleDone) {
    Parser parser;
    parser.feed("a IDLE\r\ndone\r\nb NOOP\r\n");
    auto event = parser.next();
    ASSERT_TRUE(event);
    EXPECT_TRUE(std::holds_alternative<Idle>(std::get<Command>(*event).body));
    parser.expect_idle_done();
    event = parser.next();
    ASSERT_TRUE(event);
    EXPECT_TRUE(std::holds_alternative<IdleDone>(*event));
    event = parser.next();
    ASSERT_TRUE(event);
    EXPECT_EQ(std::get<Command>(*event).tag, "b");
}

TEST(ImapParser, AnythingButDoneEndsIdleWithError) {
    Parser parser;
    parser.expect_idle_done();
    parser.feed("b NOOP\r\nc NOOP\r\n");
    auto event = parser.next();
    ASSERT_TRUE(event);
    EXPECT_EQ(std::get<ParseError>(*event).tag, "*");
    event = parser.next();
    ASSERT_TRUE(event);
    EXPECT_EQ(std::get<Command>(*event).tag, "c");
}

TEST(ImapParser, ParsesEnable) {
    Enable enable = body<Enable>("t2 ENABLE CONDSTORE qresync\r\n");
    EXPECT_EQ(enable.capabilities, (std::vector<std::string>{"CONDSTORE", "QRESYNC"}));
    error("t2 ENABLE\r\n");
}

// ---- Mailboxes ------------------------------------------------------------------------------------------

TEST(ImapParser, ParsesSelectAndExamine) {
    Select select = body<Select>("A142 SELECT INBOX\r\n");
    EXPECT_EQ(select.mailbox, "INBOX");
    EXPECT_FALSE(select.read_only);
    select = body<Select>("A932 EXAMINE blurdybloop\r\n");
    EXPECT_EQ(select.mailbox, "blurdybloop");
    EXPECT_TRUE(select.read_only);
    EXPECT_EQ(body<Select>("a SELECT inBox\r\n").mailbox, "INBOX");
}

// RFC 7162 3.1.8 and 3.2.5.
TEST(ImapParser, ParsesCondstoreAndQresyncSelectParameters) {
    EXPECT_TRUE(body<Select>("a SELECT INBOX (CONDSTORE)\r\n").condstore);
    Select select =
        body<Select>("A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n");
    ASSERT_TRUE(select.qresync);
    EXPECT_EQ(select.qresync->uid_validity, 67890007u);
    EXPECT_EQ(select.qresync->mod_seq, 20050715194045000u);
    ASSERT_TRUE(select.qresync->known_uids);
    EXPECT_EQ(select.qresync->known_uids->to_string(), "41,43:211,214:541");
    EXPECT_FALSE(select.qresync->sequence_match);
    select = body<Select>(
        "B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 "
        "15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,29997)))\r\n");
    ASSERT_TRUE(select.qresync && select.qresync->sequence_match);
    EXPECT_EQ(select.qresync->sequence_match->first.to_string(), "5000,7500,9000,9990:9999");
    select = body<Select>("a SELECT INBOX (QRESYNC (1 2))\r\n");
    ASSERT_TRUE(select.qresync);
    EXPECT_FALSE(select.qresync->known_uids);
    error("a SELECT INBOX (QRESYNC (0 2))\r\n");
    error("a SELECT INBOX (FOO)\r\n");
}

TEST(ImapParser, ParsesMailboxManagementCommands) {
    EXPECT_EQ(body<Create>("A003 CREATE owatagusiam/\r\n").mailbox, "owatagusiam/");
    Create create = body<Create>("t1 CREATE \"Important Messages\" (USE (\\Important \\Junk))\r\n");
    EXPECT_EQ(create.mailbox, "Important Messages");
    EXPECT_EQ(create.special_use, (std::vector<std::string>{"\\Important", "\\Junk"}));
    EXPECT_EQ(body<Delete>("A683 DELETE blurdybloop\r\n").mailbox, "blurdybloop");
    Rename rename = body<Rename>("A683 RENAME blurdybloop sarasoop\r\n");
    EXPECT_EQ(rename.from, "blurdybloop");
    EXPECT_EQ(rename.to, "sarasoop");
    EXPECT_EQ(body<Subscribe>("A002 SUBSCRIBE #news.comp.mail.mime\r\n").mailbox, "#news.comp.mail.mime");
    EXPECT_EQ(body<Unsubscribe>("A002 UNSUBSCRIBE #news.comp.mail.mime\r\n").mailbox, "#news.comp.mail.mime");
}

TEST(ImapParser, DecodesModifiedUtf7MailboxNames) {
    EXPECT_EQ(body<Select>("a SELECT ~peter/mail/&U,BTFw-/&ZeVnLIqe-\r\n").mailbox,
              "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
    EXPECT_EQ(body<Create>("a CREATE \"Tom &- Jerry\"\r\n").mailbox, "Tom & Jerry");
    EXPECT_EQ(body<Select>("a SELECT caf&AOk-\r\n").mailbox, "caf\xC3\xA9");
}

// RFC 3501 5.1.3: a name that is not modified UTF-7 is still an astring, so the command parses; it names
// no mailbox, and the session answers NO (issue 12 item 8, as Dovecot does).
TEST(ImapParser, UndecodableMailboxNamesAreNotSyntaxErrors) {
    for (const char* line : {"a SELECT foo&bar\r\n", "a SELECT &AGE-\r\n", "a SELECT \"caf\xC3\xA9\"\r\n",
                             "a SELECT \"a\x01z\"\r\n", "a STATUS foo& (MESSAGES)\r\n",
                             "a RENAME INBOX &Jjo\r\n", "a APPEND foo&bar {1+}\r\nx\r\n",
                             "a COPY 1 foo&bar\r\n", "a DELETE &\r\n", "a CREATE \"a&-&b\"\r\n"}) {
        Command c = command(line);
        ASSERT_TRUE(c.undecodable_mailbox.has_value()) << line;
        EXPECT_THAT(*c.undecodable_mailbox, ::testing::StartsWith("Mailbox name")) << line;
    }
    EXPECT_EQ(body<Select>("a SELECT foo&bar\r\n").mailbox, "foo&bar");
    EXPECT_FALSE(command("a SELECT \"Tom &- Jerry\"\r\n").undecodable_mailbox.has_value());
}

TEST(ImapParser, ListPatternsThatDoNotDecodeMatchNothing) {
    List list = body<List>("a LIST \"\" foo&bar*\r\n");
    EXPECT_TRUE(list.patterns.empty());
    list = body<List>("a LIST \"\" (foo&bar INBOX \"&\")\r\n");
    EXPECT_EQ(list.patterns, (std::vector<std::string>{"INBOX"}));
    EXPECT_TRUE(body<List>("a LIST \"foo&\" *\r\n").patterns.empty());
    EXPECT_FALSE(command("a LIST \"\" foo&bar*\r\n").undecodable_mailbox.has_value());
    EXPECT_TRUE(body<Lsub>("a LSUB \"\" &x\r\n").matches_nothing);
    EXPECT_FALSE(body<Lsub>("a LSUB \"\" *\r\n").matches_nothing);
}

TEST(ImapParser, TakesUtf8MailboxNamesWhenEnabled) {
    EXPECT_EQ(body<Select>("a SELECT \"caf\xC3\xA9\"\r\n", true).mailbox, "caf\xC3\xA9");
    EXPECT_EQ(body<Select>("a SELECT A&B\r\n", true).mailbox, "A&B");
    EXPECT_FALSE(command("a SELECT A&B\r\n", true).undecodable_mailbox.has_value());
    EXPECT_EQ(command("a SELECT \"caf\xC3\"\r\n", true).undecodable_mailbox,
              "Mailbox name is not valid UTF-8");
}

TEST(ImapParser, ParsesBasicList) {
    List list = body<List>("A101 LIST \"\" \"\"\r\n");
    EXPECT_EQ(list.reference, "");
    EXPECT_EQ(list.patterns, (std::vector<std::string>{""}));
    EXPECT_FALSE(list.extended);
    list = body<List>("A202 LIST ~/Mail/ %\r\n");
    EXPECT_EQ(list.reference, "~/Mail/");
    EXPECT_EQ(list.patterns, (std::vector<std::string>{"%"}));
    list = body<List>("a LIST \"\" INBOX.*\r\n");
    EXPECT_EQ(list.patterns, (std::vector<std::string>{"INBOX.*"}));
    EXPECT_EQ(body<List>("a LIST \"\" &ZeVnLIqe-/*\r\n").patterns[0],
              "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e/*");
}

// RFC 5258 5, RFC 5819 and RFC 6154 5.
TEST(ImapParser, ParsesExtendedList) {
    List list = body<List>("A02 LIST (SUBSCRIBED) \"\" \"*\"\r\n");
    EXPECT_TRUE(list.extended);
    EXPECT_TRUE(list.selection.subscribed);
    list = body<List>("A03 LIST () \"\" \"%\" RETURN (CHILDREN)\r\n");
    EXPECT_TRUE(list.returns.children);
    list = body<List>("A04 LIST (REMOTE SUBSCRIBED RECURSIVEMATCH) \"\" \"*\" RETURN (SUBSCRIBED)\r\n");
    EXPECT_TRUE(list.selection.remote && list.selection.recursive_match && list.returns.subscribed);
    list =
        body<List>("A05 LIST \"\" (\"INBOX\" \"Drafts\") RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN))\r\n");
    EXPECT_EQ(list.patterns, (std::vector<std::string>{"INBOX", "Drafts"}));
    EXPECT_TRUE(list.returns.special_use);
    ASSERT_TRUE(list.returns.status);
    EXPECT_EQ(*list.returns.status, (std::vector<StatusItem>{StatusItem::messages, StatusItem::unseen}));
    list = body<List>("t3 LIST (SPECIAL-USE) \"\" \"*\"\r\n");
    EXPECT_TRUE(list.selection.special_use);
    // RFC 5258 3: RECURSIVEMATCH alone, or an unknown option, is BAD.
    error("A04 LIST (RECURSIVEMATCH) \"\" \"*\"\r\n");
    error("A04 LIST (FOO) \"\" \"*\"\r\n");
    error("A04 LIST \"\" \"*\" RETURN (FOO)\r\n");
}

TEST(ImapParser, ParsesLsub) {
    Lsub lsub = body<Lsub>("A002 LSUB \"#news.\" \"comp.mail.*\"\r\n");
    EXPECT_EQ(lsub.reference, "#news.");
    EXPECT_EQ(lsub.pattern, "comp.mail.*");
}

TEST(ImapParser, ParsesStatusItems) {
    Status status = body<Status>("A042 STATUS blurdybloop (UIDNEXT MESSAGES)\r\n");
    EXPECT_EQ(status.mailbox, "blurdybloop");
    EXPECT_EQ(status.items, (std::vector<StatusItem>{StatusItem::uid_next, StatusItem::messages}));
    status = body<Status>(
        "a STATUS INBOX (UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ APPENDLIMIT RECENT "
        "DELETED-STORAGE)\r\n");
    EXPECT_EQ(status.items.size(), 8u);
    EXPECT_EQ(status.items[3], StatusItem::size);
    EXPECT_EQ(status.items[4], StatusItem::highest_mod_seq);
    EXPECT_EQ(status.items[5], StatusItem::append_limit);
    error("a STATUS INBOX ()\r\n");
    error("a STATUS INBOX (BOGUS)\r\n");
}

// ---- APPEND ---------------------------------------------------------------------------------------------

TEST(ImapParser, ParsesRfcAppendExample) {
    const std::string message =
        "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\nFrom: Fred Foobar <foobar@Blurdybloop.example>\r\n"
        "Subject: afternoon meeting\r\n\r\nHello Joe, do you think we can meet at 3:30 tomorrow?\r\n";
    Parser parser;
    auto events =
        run(parser, "A003 APPEND saved-messages (\\Seen) {" + std::to_string(message.size()) + "}\r\n");
    ASSERT_EQ(events.size(), 1u);
    EXPECT_TRUE(std::holds_alternative<ContinuationRequest>(events[0]));
    events = run(parser, message + "\r\n");
    ASSERT_EQ(events.size(), 1u);
    Append append = std::get<Append>(std::get<Command>(events[0]).body);
    EXPECT_EQ(append.mailbox, "saved-messages");
    EXPECT_EQ(append.flags, (std::vector<std::string>{"\\Seen"}));
    EXPECT_FALSE(append.internal_date);
    EXPECT_EQ(append.message, message);
    EXPECT_FALSE(append.binary);
}

TEST(ImapParser, ParsesAppendDateTimeAndCanonicalisesSystemFlags) {
    Append append =
        body<Append>("a APPEND INBOX (\\seen \\DRAFT $Junk) \"17-Jul-1996 02:44:25 -0700\" {3+}\r\nabc\r\n");
    EXPECT_EQ(append.flags, (std::vector<std::string>{"\\Seen", "\\Draft", "$Junk"}));
    ASSERT_TRUE(append.internal_date);
    // 1996-07-17T09:44:25Z
    EXPECT_EQ(append.internal_date->unix_seconds, 837596665);
    EXPECT_EQ(append.internal_date->zone_minutes, -420);
    append = body<Append>("a APPEND INBOX \" 1-Jan-1970 00:00:00 +0000\" {1+}\r\nx\r\n");
    EXPECT_EQ(append.internal_date->unix_seconds, 0);
    EXPECT_TRUE(append.flags.empty());
    error("a APPEND INBOX \"31-Feb-2020 00:00:00 +0000\" {1+}\r\nx\r\n");
    // date-day-fixed wants " 1", but an unpadded day is unambiguous and some clients send it.
    EXPECT_EQ(body<Append>("a APPEND INBOX \"1-Jan-1970 00:01:00 +0000\" {1+}\r\nx\r\n")
                  .internal_date->unix_seconds,
              60);
    error("a APPEND INBOX \"1-Jan-2020 24:00:00 +0000\" {1+}\r\nx\r\n");
    error("a APPEND INBOX \"01-Jan-2020 00:00:00 0000\" {1+}\r\nx\r\n");
    error("a APPEND INBOX \"hello\"\r\n");
}

// RFC 3516 4.4: APPEND with literal8 carries a binary message, NULs included.
TEST(ImapParser, ParsesAppendWithLiteral8) {
    std::string bytes = "a APPEND INBOX ~{4+}\r\nA\0B\0\r\n"s;
    Append append = body<Append>(bytes);
    EXPECT_TRUE(append.binary);
    EXPECT_EQ(append.message, std::string("A\0B\0", 4));
}

// ---- Selected-state commands ----------------------------------------------------------------------------

TEST(ImapParser, ParsesUidExpunge) {
    Expunge expunge = body<Expunge>("A202 UID EXPUNGE 3000:3002\r\n");
    ASSERT_TRUE(expunge.uids);
    EXPECT_EQ(expunge.uids->to_string(), "3000:3002");
}

TEST(ImapParser, ParsesRfcSearchExamples) {
    using K = SearchKey::Kind;
    Search search = body<Search>("A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n");
    EXPECT_FALSE(search.uid);
    ASSERT_EQ(search.criteria.kind, K::and_);
    ASSERT_EQ(search.criteria.children.size(), 3u);
    EXPECT_EQ(search.criteria.children[0].kind, K::flagged);
    EXPECT_EQ(search.criteria.children[1].kind, K::since);
    EXPECT_EQ(search.criteria.children[1].date, (Date{1994, 2, 1}));
    EXPECT_EQ(search.criteria.children[2].kind, K::not_);
    EXPECT_EQ(search.criteria.children[2].children[0].kind, K::from);
    EXPECT_EQ(search.criteria.children[2].children[0].text, "Smith");

    search = body<Search>("A283 SEARCH TEXT \"string not in mailbox\"\r\n");
    EXPECT_EQ(search.criteria.kind, K::text);
    EXPECT_EQ(search.criteria.text, "string not in mailbox");

    search = body<Search>("A284 SEARCH CHARSET UTF-8 TEXT {9+}\r\n\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\r\n");
    EXPECT_EQ(search.charset, "UTF-8");
    EXPECT_EQ(search.criteria.text, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
}

TEST(ImapParser, ParsesEverySearchKey) {
    using K = SearchKey::Kind;
    Search search = body<Search>(
        "a UID SEARCH ALL ANSWERED BCC x BEFORE 1-Jan-2000 BODY y CC z DELETED DRAFT FLAGGED FROM a "
        "HEADER Message-ID \"<1@x>\" KEYWORD $Junk LARGER 100 NEW NOT SEEN OLD ON \"29-Feb-2024\" "
        "OR TO b SUBJECT c RECENT SEEN SENTBEFORE 2-Jan-2000 SENTON 3-Jan-2000 SENTSINCE 4-Jan-2000 "
        "SINCE 5-Jan-2000 SMALLER 5000 SUBJECT s TEXT t TO u UID 1:5,9 UNANSWERED UNDELETED UNDRAFT "
        "UNFLAGGED UNKEYWORD $Seen UNSEEN 1:* (SEEN FLAGGED) MODSEQ 620162338\r\n");
    EXPECT_TRUE(search.uid);
    const auto& keys = search.criteria.children;
    ASSERT_EQ(keys.size(), 38u);
    EXPECT_EQ(keys[10].kind, K::header);
    EXPECT_EQ(keys[10].text, "Message-ID");
    EXPECT_EQ(keys[10].value, "<1@x>");
    EXPECT_EQ(keys[11].kind, K::keyword);
    EXPECT_EQ(keys[11].text, "$Junk");
    EXPECT_EQ(keys[12].kind, K::larger);
    EXPECT_EQ(keys[12].number, 100u);
    EXPECT_EQ(keys[14].kind, K::not_);
    EXPECT_EQ(keys[14].children[0].kind, K::seen);
    EXPECT_EQ(keys[16].kind, K::on);
    EXPECT_EQ(keys[16].date, (Date{2024, 2, 29}));
    EXPECT_EQ(keys[17].kind, K::or_);
    EXPECT_EQ(keys[17].children[1].kind, K::subject);
    EXPECT_EQ(keys[21].kind, K::sent_on);
    EXPECT_EQ(keys[28].kind, K::uid);
    EXPECT_EQ(keys[28].set.to_string(), "1:5,9");
    EXPECT_EQ(keys[33].kind, K::unkeyword);
    EXPECT_EQ(keys[35].kind, K::sequence_set);
    EXPECT_EQ(keys[36].kind, K::and_);
    EXPECT_EQ(keys[36].children.size(), 2u);
    EXPECT_EQ(keys[37].kind, K::mod_seq);
    EXPECT_EQ(keys[37].number, 620162338u);
}

// RFC 7162 3.1.5 example.
TEST(ImapParser, ParsesSearchModseqWithEntry) {
    Search search = body<Search>("a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338\r\n");
    ASSERT_TRUE(search.criteria.mod_seq_entry);
    EXPECT_EQ(search.criteria.mod_seq_entry->name, "/flags/\\draft");
    EXPECT_EQ(search.criteria.mod_seq_entry->type, "all");
    EXPECT_EQ(search.criteria.number, 620162338u);
    error("a SEARCH MODSEQ \"/flags/\\\\draft\" mine 1\r\n");
}

// RFC 4731 and RFC 5182 examples.
TEST(ImapParser, ParsesEsearchReturnOptionsAndSavedResult) {
    Search search =
        body<Search>("A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n");
    ASSERT_TRUE(search.return_options);
    EXPECT_TRUE(search.return_options->min && search.return_options->count);
    EXPECT_FALSE(search.return_options->all);
    search = body<Search>("A283 SEARCH RETURN () FLAGGED\r\n");
    EXPECT_TRUE(search.return_options->all);
    search = body<Search>("A1 UID SEARCH RETURN (SAVE) CHARSET \"us-ascii\" FROM \"fred\"\r\n");
    EXPECT_TRUE(search.return_options->save);
    EXPECT_EQ(search.charset, "US-ASCII");
    search = body<Search>("A2 UID SEARCH UID $ SMALLER 4096\r\n");
    EXPECT_TRUE(search.criteria.children[0].set.is_saved());
    Fetch fetch = body<Fetch>("A3 UID FETCH $ (UID INTERNALDATE FLAGS)\r\n");
    EXPECT_TRUE(fetch.set.is_saved());
    error("a SEARCH RETURN (PARTIAL) ALL\r\n");
}

TEST(ImapParser, RejectsBadSearchInput) {
    error("a SEARCH\r\n");
    error("a SEARCH FOO\r\n");
    error("a SEARCH SINCE 30-Feb-2000\r\n");
    error("a SEARCH SINCE 1-Foo-2000\r\n");
    error("a SEARCH OR SEEN\r\n");
    error("a SEARCH ()\r\n");
    error("a SEARCH (SEEN\r\n");
}

TEST(ImapParser, ParsesRfcFetchExamples) {
    using K = FetchItem::Kind;
    Fetch fetch = body<Fetch>("A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])\r\n");
    EXPECT_EQ(fetch.set.to_string(), "2:4");
    ASSERT_EQ(fetch.items.size(), 2u);
    EXPECT_EQ(fetch.items[0].kind, K::flags);
    EXPECT_EQ(fetch.items[1].kind, K::body_section);
    EXPECT_FALSE(fetch.items[1].peek);
    EXPECT_EQ(fetch.items[1].section.text, Section::Text::header_fields);
    EXPECT_EQ(fetch.items[1].section.fields, (std::vector<std::string>{"DATE", "FROM"}));

    fetch = body<Fetch>("a FETCH 1 BODY.PEEK[1.2.MIME]<0.100>\r\n");
    ASSERT_EQ(fetch.items.size(), 1u);
    EXPECT_TRUE(fetch.items[0].peek);
    EXPECT_EQ(fetch.items[0].section.part, (std::vector<std::uint32_t>{1, 2}));
    EXPECT_EQ(fetch.items[0].section.text, Section::Text::mime);
    ASSERT_TRUE(fetch.items[0].partial);
    EXPECT_EQ(fetch.items[0].partial->offset, 0u);
    EXPECT_EQ(fetch.items[0].partial->length, 100u);

    fetch = body<Fetch>(
        "a FETCH 1 (BODY[] BODY[TEXT] BODY[3] BODY[HEADER.FIELDS.NOT (Received)] BODY[4.1.TEXT] "
        "BODY[2.HEADER])\r\n");
    ASSERT_EQ(fetch.items.size(), 6u);
    EXPECT_EQ(fetch.items[0].section, Section{});
    EXPECT_EQ(fetch.items[1].section.text, Section::Text::text);
    EXPECT_EQ(fetch.items[2].section.part, (std::vector<std::uint32_t>{3}));
    EXPECT_EQ(fetch.items[3].section.text, Section::Text::header_fields_not);
    EXPECT_EQ(fetch.items[4].section.part, (std::vector<std::uint32_t>{4, 1}));
    EXPECT_EQ(fetch.items[4].section.text, Section::Text::text);
    EXPECT_EQ(fetch.items[5].section.text, Section::Text::header);
}

TEST(ImapParser, ExpandsFetchMacros) {
    using K = FetchItem::Kind;
    auto kinds = [](const Fetch& fetch) {
        std::vector<K> out;
        for (const FetchItem& item : fetch.items) out.push_back(item.kind);
        return out;
    };
    EXPECT_EQ(kinds(body<Fetch>("a FETCH 1:* ALL\r\n")),
              (std::vector<K>{K::flags, K::internal_date, K::rfc822_size, K::envelope}));
    EXPECT_EQ(kinds(body<Fetch>("a FETCH 1 fast\r\n")),
              (std::vector<K>{K::flags, K::internal_date, K::rfc822_size}));
    EXPECT_EQ(kinds(body<Fetch>("a FETCH 1 FULL\r\n")),
              (std::vector<K>{K::flags, K::internal_date, K::rfc822_size, K::envelope, K::body}));
    error("a FETCH 1 (ALL)\r\n");
}

TEST(ImapParser, ParsesEveryFetchItem) {
    using K = FetchItem::Kind;
    Fetch fetch = body<Fetch>(
        "a UID FETCH 1:3 (ENVELOPE FLAGS INTERNALDATE RFC822 RFC822.HEADER RFC822.SIZE RFC822.TEXT BODY "
        "BODYSTRUCTURE UID MODSEQ BINARY[1]<0.10> BINARY.PEEK[] BINARY.SIZE[2])\r\n");
    EXPECT_TRUE(fetch.uid);
    ASSERT_EQ(fetch.items.size(), 14u);
    EXPECT_EQ(fetch.items[3].kind, K::rfc822);
    EXPECT_EQ(fetch.items[7].kind, K::body);
    EXPECT_EQ(fetch.items[8].kind, K::body_structure);
    EXPECT_EQ(fetch.items[10].kind, K::mod_seq);
    EXPECT_EQ(fetch.items[11].kind, K::binary);
    EXPECT_EQ(fetch.items[11].section.part, (std::vector<std::uint32_t>{1}));
    EXPECT_TRUE(fetch.items[11].partial);
    EXPECT_TRUE(fetch.items[12].peek);
    EXPECT_EQ(fetch.items[13].kind, K::binary_size);
    error("a FETCH 1 BINARY[HEADER]\r\n");
    error("a FETCH 1 BINARY.SIZE[1]<0.5>\r\n");
    error("a FETCH 1 BODY[MIME]\r\n");
    error("a FETCH 1 BODY[1]<0.0>\r\n");
    error("a FETCH 1 BODY[0]\r\n");
    error("a FETCH 1 (FLAGS\r\n");
    error("a FETCH 1 BODY.PEEK\r\n");
}

// RFC 7162 3.1.4.2 and 3.2.6 examples.
TEST(ImapParser, ParsesChangedSinceAndVanished) {
    Fetch fetch = body<Fetch>("s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)\r\n");
    EXPECT_EQ(fetch.changed_since, 12345u);
    EXPECT_FALSE(fetch.vanished);
    fetch = body<Fetch>("s100 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n");
    EXPECT_TRUE(fetch.vanished);
    error("s100 FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n");
    error("s100 UID FETCH 300:500 (FLAGS) (VANISHED)\r\n");
    error("s100 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 9223372036854775808)\r\n");
}

TEST(ImapParser, ParsesStoreForms) {
    Store store = body<Store>("A003 STORE 2:4 +FLAGS (\\Deleted)\r\n");
    EXPECT_EQ(store.mode, Store::Mode::add);
    EXPECT_FALSE(store.silent);
    EXPECT_EQ(store.flags, (std::vector<std::string>{"\\Deleted"}));
    store = body<Store>("a STORE 1 -FLAGS.SILENT \\Seen $Forwarded\r\n");
    EXPECT_EQ(store.mode, Store::Mode::remove);
    EXPECT_TRUE(store.silent);
    EXPECT_EQ(store.flags, (std::vector<std::string>{"\\Seen", "$Forwarded"}));
    store = body<Store>("a STORE 1 FLAGS ()\r\n");
    EXPECT_EQ(store.mode, Store::Mode::replace);
    EXPECT_TRUE(store.flags.empty());
    // RFC 7162 3.1.3 example.
    store = body<Store>("a103 UID STORE 6,4,8 (UNCHANGEDSINCE 12121230045) +FLAGS.SILENT (\\Deleted)\r\n");
    EXPECT_TRUE(store.uid);
    EXPECT_EQ(store.unchanged_since, 12121230045u);
    EXPECT_EQ(store.set.to_string(), "6,4,8");
    error("a STORE 1 *FLAGS (\\Seen)\r\n");
    error("a STORE 1 FLAGS\r\n");
    error("a STORE 1 (UNCHANGEDSINCE) FLAGS \\Seen\r\n");
}

TEST(ImapParser, ParsesCopyAndMove) {
    Copy copy = body<Copy>("A003 COPY 2:4 MEETING\r\n");
    EXPECT_EQ(copy.set.to_string(), "2:4");
    EXPECT_EQ(copy.mailbox, "MEETING");
    EXPECT_FALSE(copy.uid);
    EXPECT_TRUE(body<Copy>("a UID COPY 1:* Trash\r\n").uid);
    Move move = body<Move>("a UID MOVE 42:69 foo\r\n");
    EXPECT_TRUE(move.uid);
    EXPECT_EQ(move.mailbox, "foo");
    EXPECT_EQ(body<Move>("a MOVE 1 inbox\r\n").mailbox, "INBOX");
    error("a UID LOGIN a b\r\n");
}

// ---- ID and QUOTA ---------------------------------------------------------------------------------------

TEST(ImapParser, ParsesId) {
    Id id = body<Id>(
        "a023 ID (\"name\" \"sodr\" \"version\" \"19.34\" \"vendor\" \"Pink Floyd Music Limited\")\r\n");
    ASSERT_TRUE(id.fields);
    ASSERT_EQ(id.fields->size(), 3u);
    EXPECT_EQ((*id.fields)[2].first, "vendor");
    EXPECT_EQ((*id.fields)[2].second, "Pink Floyd Music Limited");
    EXPECT_FALSE(body<Id>("a ID NIL\r\n").fields);
    id = body<Id>("a ID (\"os\" NIL)\r\n");
    EXPECT_FALSE((*id.fields)[0].second);
    std::string many = "a ID (";
    for (int i = 0; i < 31; ++i) many += (i ? " " : "") + std::string("\"k\" \"v\"");
    error(many + ")\r\n");
}

TEST(ImapParser, ParsesQuotaCommands) {
    EXPECT_EQ(body<GetQuota>("G0001 GETQUOTA \"!partition/sda4\"\r\n").root, "!partition/sda4");
    EXPECT_EQ(body<GetQuotaRoot>("G0002 GETQUOTAROOT INBOX\r\n").mailbox, "INBOX");
    SetQuota set = body<SetQuota>("S0000 SETQUOTA \"#user/alice\" (Storage 510)\r\n");
    EXPECT_EQ(set.root, "#user/alice");
    ASSERT_EQ(set.limits.size(), 1u);
    EXPECT_EQ(set.limits[0].first, "STORAGE");
    EXPECT_EQ(set.limits[0].second, 510u);
}

TEST(ImapParser, NamesCommandsForLogs) {
    EXPECT_EQ(command_name(command("a UID FETCH 1 FLAGS\r\n").body), "UID FETCH");
    EXPECT_EQ(command_name(command("a EXAMINE x\r\n").body), "EXAMINE");
    EXPECT_EQ(command_name(command("a UID EXPUNGE 1\r\n").body), "UID EXPUNGE");
}

// ---- Limits ---------------------------------------------------------------------------------------------

TEST(ImapParser, RejectsTooLongLineAndResyncs) {
    Limits limits;
    limits.max_line_octets = 100;
    std::string long_line = "a1 LOGIN " + std::string(200, 'x') + " y\r\n";
    Parser parser(limits);
    auto events = run(parser, long_line + "a2 NOOP\r\n", 7);
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(std::get<ParseError>(events[0]).tag, "a1");
    EXPECT_EQ(std::get<ParseError>(events[0]).status, ParseError::Status::bad);
    EXPECT_EQ(std::get<Command>(events[1]).tag, "a2");
}

// Found by the fuzzer: the tag of an overlong line with no space in reach came from whatever part of the
// line had arrived.
TEST(ImapParser, TagOfTooLongLineDoesNotDependOnSplit) {
    Limits limits;
    limits.max_line_octets = 50;
    std::string line = std::string(80, 'x') + " NOOP\r\n";
    for (std::size_t chunk : {std::size_t{1} << 30, std::size_t{6}, std::size_t{1}}) {
        auto events = run(line, chunk, limits);
        ASSERT_EQ(events.size(), 1u);
        EXPECT_EQ(std::get<ParseError>(events[0]).tag, "*");
    }
}

// Found by the fuzzer: a SASL or DONE line was counted into the next command's line limit.
TEST(ImapParser, ModeLinesDoNotCountTowardsTheNextCommand) {
    Limits limits;
    limits.max_line_octets = 20;
    Parser parser(limits);
    parser.expect_sasl_response();
    auto events = run(parser, "AGRlbW8AcGFzcw==\r\n");
    ASSERT_EQ(events.size(), 1u);
    parser.expect_idle_done();
    events = run(parser, "DONE\r\na LOGIN user pass\r\n");
    ASSERT_EQ(events.size(), 2u);
    EXPECT_TRUE(std::holds_alternative<IdleDone>(events[0]));
    EXPECT_EQ(std::get<Command>(events[1]).tag, "a");
}

TEST(ImapParser, KeepsMemoryBoundedOnEndlessLine) {
    Limits limits;
    limits.max_line_octets = 1000;
    Parser parser(limits);
    parser.feed("a1 NOOP ");
    std::string chunk(4096, 'x');
    for (int i = 0; i < 1000; ++i) {
        parser.feed(chunk);
        while (parser.next()) {
        }
        ASSERT_LE(parser.buffered_octets(), limits.max_line_octets + chunk.size());
    }
    auto events = run(parser, "\r\na2 NOOP\r\n");
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(std::get<ParseError>(events[0]).tag, "a1");
    EXPECT_EQ(std::get<Command>(events[1]).tag, "a2");
}

TEST(ImapParser, HandlesLongLineFedOneOctetAtATime) {
    std::string line = "a LOGIN x " + std::string(60000, 'p') + "\r\n";
    auto events = run(line, 1);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(std::get<Login>(std::get<Command>(events[0]).body).password.size(), 60000u);
}

TEST(ImapParser, LiteralAnnouncementsCountTowardsTheLineLimit) {
    Limits limits;
    limits.max_line_octets = 100;
    std::string many = "a LOGIN";
    for (int i = 0; i < 40; ++i) many += " {0+}\r\n";
    auto events = run(many + "\r\nb NOOP\r\n", 1 << 30, limits);
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(std::get<ParseError>(events[0]).tag, "a");
    EXPECT_EQ(std::get<Command>(events[1]).tag, "b");
}

TEST(ImapParser, LineLimitCountsAllLinesOfACommand) {
    Limits limits;
    limits.max_line_octets = 40;
    auto events =
        run("a LOGIN {2+}\r\nab {2+}\r\ncd" + std::string(40, ' ') + "\r\nb NOOP\r\n", 1 << 30, limits);
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(std::get<ParseError>(events[0]).tag, "a");
    EXPECT_EQ(std::get<Command>(events[1]).tag, "b");
}

TEST(ImapParser, RefusesOversizedSyncLiteralBeforeContinuation) {
    Limits limits;
    limits.max_literal_octets = 1000;
    Parser parser(limits);
    auto events = run(parser, "a1 LOGIN {1001}\r\n");
    ASSERT_EQ(events.size(), 1u);
    ParseError e = std::get<ParseError>(events[0]);
    EXPECT_EQ(e.tag, "a1");
    EXPECT_EQ(e.code, "TOOBIG");
    EXPECT_EQ(e.status, ParseError::Status::bad);
    // The client never sends the literal; what follows is the next command.
    events = run(parser, "a2 NOOP\r\n");
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(std::get<Command>(events[0]).tag, "a2");
}

// RFC 7889 4: over the APPENDLIMIT, APPEND gets NO [TOOBIG].
TEST(ImapParser, AppendOverLimitGetsNoTooBig) {
    Limits limits;
    limits.max_literal_octets = 1000;
    ParseError e = error("a APPEND INBOX (\\Seen) {5000}\r\n", limits);
    EXPECT_EQ(e.status, ParseError::Status::no);
    EXPECT_EQ(e.code, "TOOBIG");
}

TEST(ImapParser, LiteralLimitCoversAllLiteralsOfACommand) {
    Limits limits;
    limits.max_literal_octets = 10;
    auto events = run("a LOGIN {6}\r\n", 1 << 30, limits);
    ASSERT_EQ(events.size(), 1u);
    Parser parser(limits);
    events = run(parser, "a LOGIN {6}\r\nabcdef {6}\r\n");
    ASSERT_EQ(events.size(), 2u);
    EXPECT_TRUE(std::holds_alternative<ContinuationRequest>(events[0]));
    EXPECT_EQ(std::get<ParseError>(events[1]).code, "TOOBIG");
}

// RFC 7888 4 (LITERAL-): a non-synchronising literal over 4096 octets is read, dropped and answered BAD;
// its content is never run as a command.
TEST(ImapParser, DiscardsOversizedNonSyncLiteralThenBad) {
    std::string literal = "x LOGOUT\r\n" + std::string(5000, 'y');
    std::string bytes =
        "a1 LOGIN {" + std::to_string(literal.size()) + "+}\r\n" + literal + " {3+}\r\nabc\r\na2 NOOP\r\n";
    Limits literal_minus;
    literal_minus.max_non_sync_literal_octets = 4096;
    for (std::size_t chunk : {std::size_t{1} << 30, std::size_t{1}, std::size_t{100}}) {
        auto events = run(bytes, chunk, literal_minus);
        ASSERT_EQ(events.size(), 2u);
        ParseError e = std::get<ParseError>(events[0]);
        EXPECT_EQ(e.tag, "a1");
        EXPECT_EQ(e.code, "TOOBIG");
        EXPECT_EQ(std::get<Command>(events[1]).tag, "a2");
    }
}

TEST(ImapParser, SkipsHugeNonSyncLiteralInConstantMemory) {
    Parser parser;
    auto events = run(parser, "a APPEND INBOX {1073741824+}\r\n");
    EXPECT_TRUE(events.empty());
    std::string chunk(64 * 1024, 'z');
    for (int i = 0; i < 16384; ++i) {
        parser.feed(chunk);
        ASSERT_FALSE(parser.next());
        ASSERT_LE(parser.buffered_octets(), chunk.size());
    }
    events = run(parser, "\r\nb NOOP\r\n");
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(std::get<ParseError>(events[0]).code, "TOOBIG");
    EXPECT_EQ(std::get<ParseError>(events[0]).status, ParseError::Status::no);
    EXPECT_EQ(std::get<Command>(events[1]).tag, "b");
}

// Issue 12 item 1: LITERAL+ is the default; up to the APPENDLIMIT a non-synchronising literal is taken.
TEST(ImapParser, LiteralPlusAllowsLargeNonSyncLiterals) {
    std::string message(10000, 'm');
    auto events = run("a APPEND INBOX {10000+}\r\n" + message + "\r\n");
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(std::get<Append>(std::get<Command>(events[0]).body).message, message);
}

// Over the APPENDLIMIT a LITERAL+ literal is read and dropped (its bytes never parsed as commands), then
// the APPEND gets NO [TOOBIG] and the next command runs; elsewhere it is BAD [TOOBIG].
TEST(ImapParser, LiteralPlusOverTheAppendLimitIsDroppedThenTooBig) {
    Limits limits;
    limits.max_literal_octets = 1000;
    std::string literal = "x LOGOUT\r\n" + std::string(3000, 'y');
    for (std::size_t chunk : {std::size_t{1} << 30, std::size_t{7}}) {
        auto events = run("a APPEND INBOX {" + std::to_string(literal.size()) + "+}\r\n" + literal +
                              "\r\nb LOGIN {2000+}\r\n" + std::string(2000, 'p') + " x\r\nc NOOP\r\n",
                          chunk, limits);
        ASSERT_EQ(events.size(), 3u);
        ParseError append = std::get<ParseError>(events[0]);
        EXPECT_EQ(append.tag, "a");
        EXPECT_EQ(append.status, ParseError::Status::no);
        EXPECT_EQ(append.code, "TOOBIG");
        EXPECT_EQ(std::get<ParseError>(events[1]).status, ParseError::Status::bad);
        EXPECT_EQ(std::get<ParseError>(events[1]).code, "TOOBIG");
        EXPECT_EQ(std::get<Command>(events[2]).tag, "c");
    }
}

TEST(ImapParser, DropsLiteralOfAFailedLineThenResyncs) {
    // The tag is bad, so no continuation is offered; a non-sync literal is skipped.
    auto events = run("+bad LOGIN {5+}\r\nhello\r\nb NOOP\r\n");
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(std::get<ParseError>(events[0]).tag, "*");
    EXPECT_EQ(std::get<Command>(events[1]).tag, "b");
    events = run("+bad LOGIN {5}\r\nb NOOP\r\n");
    ASSERT_EQ(events.size(), 2u);
    EXPECT_TRUE(std::holds_alternative<ParseError>(events[0]));
    EXPECT_EQ(std::get<Command>(events[1]).tag, "b");
}

TEST(ImapParser, ClosesOnUnreadableLiteralSize) {
    ParseError e = error("a LOGIN {99999999999999999999999+}\r\n");
    EXPECT_TRUE(e.close_connection);
    Limits limits;
    limits.max_line_octets = 50;
    e = error("a LOGIN " + std::string(100, 'x') + "{000000000000000000000000000000000000000005+}\r\n",
              limits);
    EXPECT_TRUE(e.close_connection);
}

TEST(ImapParser, SkipsLiteralAnnouncedAtEndOfTooLongLine) {
    Limits limits;
    limits.max_line_octets = 50;
    auto events =
        run("a LOGIN " + std::string(100, 'x') + " {10+}\r\nb LOGOUT\r\n\r\nc NOOP\r\n", 1 << 30, limits);
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(std::get<ParseError>(events[0]).tag, "a");
    EXPECT_EQ(std::get<Command>(events[1]).tag, "c");
}

TEST(ImapParser, EnforcesSequenceSetLimit) {
    Limits limits;
    limits.max_sequence_set_ranges = 3;
    EXPECT_EQ(error("a FETCH 1,2,3,4 FLAGS\r\n", limits).tag, "a");
    Parser parser(limits);
    EXPECT_EQ(count_commands(run(parser, "a FETCH 1,2,3 FLAGS\r\n")), 1u);
}

TEST(ImapParser, EnforcesSearchNestingAndKeyLimits) {
    std::string deep = "a SEARCH ";
    for (int i = 0; i < 100; ++i) deep += "NOT ";
    deep += "SEEN\r\n";
    EXPECT_EQ(error(deep).tag, "a");
    std::string parens = "a SEARCH " + std::string(100, '(') + "SEEN" + std::string(100, ')') + "\r\n";
    EXPECT_EQ(error(parens).tag, "a");
    std::string wide = "a SEARCH";
    for (int i = 0; i < 300; ++i) wide += " SEEN";
    EXPECT_EQ(error(wide + "\r\n").tag, "a");
    Limits limits;
    limits.max_search_keys = 400;
    Parser parser(limits);
    EXPECT_EQ(count_commands(run(parser, wide + "\r\n")), 1u);
}

}  // namespace
}  // namespace magpie::imap

namespace magpie::imap {
namespace {

// Records what the parser hands over instead of holding it.
class RecordingSink final : public LiteralSink {
public:
    explicit RecordingSink(std::string& into) : into_(into) {}
    void write(std::string_view octets) override { into_.append(octets); }

private:
    std::string& into_;
};

// Issue 11: an APPEND literal at or above the spool size goes to the sink as it arrives (however the bytes
// are split); smaller ones and other commands' literals stay in memory; a NUL is still refused.
TEST(ParserSpool, LargeAppendLiteralsGoToTheSinkNotToMemory) {
    for (std::size_t chunk : {1ul, 7ul, 4096ul, 1ul << 30}) {
        std::string spooled;
        std::size_t opened = 0;
        Parser parser;
        parser.spool_appends(16, [&](std::uint64_t size, bool binary) -> std::unique_ptr<LiteralSink> {
            ++opened;
            EXPECT_EQ(size, 21u);
            EXPECT_FALSE(binary);
            return std::make_unique<RecordingSink>(spooled);
        });
        auto events = run(parser,
                          "a APPEND INBOX {21}\r\nSubject: x\r\n\r\nbody!\r\n\r\n"
                          "b APPEND INBOX {5}\r\nsmall\r\nc LOGIN {20}\r\n01234567890123456789 pw\r\n",
                          chunk);
        std::vector<Command> commands;
        for (auto& event : events) {
            if (auto* c = std::get_if<Command>(&event)) commands.push_back(std::move(*c));
            if (auto* e = std::get_if<ParseError>(&event)) ADD_FAILURE() << e->message;
        }
        ASSERT_EQ(commands.size(), 3u) << chunk;
        const auto& large = std::get<Append>(commands[0].body);
        EXPECT_TRUE(large.message.empty());
        ASSERT_NE(large.spooled, nullptr);
        EXPECT_EQ(spooled, "Subject: x\r\n\r\nbody!\r\n");
        const auto& small = std::get<Append>(commands[1].body);
        EXPECT_EQ(small.message, "small");
        EXPECT_EQ(small.spooled, nullptr);
        EXPECT_EQ(std::get<Login>(commands[2].body).user, "01234567890123456789");
        EXPECT_EQ(opened, 1u);
    }
    std::string spooled;
    Parser parser;
    parser.spool_appends(4, [&](std::uint64_t, bool) -> std::unique_ptr<LiteralSink> {
        return std::make_unique<RecordingSink>(spooled);
    });
    auto events = run(parser, "a APPEND INBOX {6}\r\nab\0cd!\r\n"s);
    ASSERT_EQ(events.size(), 2u);  // "+", then the error
    EXPECT_NE(std::get_if<ParseError>(&events[1]), nullptr);
}

TEST(ParserObjectId, ReadsObjectIdItemsAndKeys) {
    auto fetch = body<Fetch>("a FETCH 1 (EMAILID THREADID)\r\n");
    ASSERT_EQ(fetch.items.size(), 2u);
    EXPECT_EQ(fetch.items[0].kind, FetchItem::Kind::email_id);
    EXPECT_EQ(fetch.items[1].kind, FetchItem::Kind::thread_id);
    auto status = body<Status>("a STATUS INBOX (MAILBOXID)\r\n");
    EXPECT_EQ(status.items, std::vector<StatusItem>{StatusItem::mailbox_id});
    auto search = body<Search>("a SEARCH EMAILID e12\r\n");
    EXPECT_EQ(search.criteria.kind, SearchKey::Kind::email_id);
    EXPECT_EQ(search.criteria.text, "e12");
    EXPECT_EQ(body<Search>("a SEARCH THREADID T_x-1\r\n").criteria.kind, SearchKey::Kind::thread_id);
    EXPECT_EQ(error("a SEARCH EMAILID (x)\r\n").status, ParseError::Status::bad);
}

}  // namespace
}  // namespace magpie::imap

namespace magpie::imap {
namespace {

// Issue 17: an idle connection holds no big buffer. After a large literal (fed whole or in pieces) and a
// long pipeline are consumed, the parser keeps no more than a small buffer's capacity.
TEST(ParserMemory, ReleasesBufferCapacityOnceALargeLiteralIsConsumed) {
    const std::string literal(1 << 20, 'x');
    const std::string bytes = "a APPEND INBOX {" + std::to_string(literal.size()) + "}\r\n" + literal + "\r\n";
    for (std::size_t chunk : {std::size_t{1} << 30, std::size_t{16384}, std::size_t{100000}}) {
        Limits limits;
        limits.max_literal_octets = 2 << 20;
        Parser parser(limits);
        auto events = run(parser, bytes, chunk);
        ASSERT_EQ(events.size(), 2u) << chunk;  // the continuation request, then the command
        auto* append = std::get_if<Command>(&events[1]);
        ASSERT_NE(append, nullptr) << chunk;
        EXPECT_EQ(std::get<Append>(append->body).message.size(), literal.size());
        EXPECT_LE(parser.held_octets(), 2 * Parser::kKeptCapacity) << chunk;
        // The parser goes on as before with the next command.
        auto after = run(parser, "b NOOP\r\n");
        ASSERT_EQ(after.size(), 1u);
        EXPECT_TRUE(std::holds_alternative<Noop>(std::get<Command>(after[0]).body));
    }
    // Many small pipelined commands fed at once: their buffer goes once they are all consumed.
    std::string pipeline;
    for (int i = 0; i < 20000; ++i) pipeline += "t" + std::to_string(i) + " NOOP\r\n";
    Parser parser;
    EXPECT_EQ(run(parser, pipeline).size(), 20000u);
    EXPECT_LE(parser.held_octets(), 2 * Parser::kKeptCapacity);
}

}  // namespace
}  // namespace magpie::imap
