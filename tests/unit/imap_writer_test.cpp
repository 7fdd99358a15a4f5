#include <gtest/gtest.h>

#include "imap/writer.h"

namespace magpie::imap {
namespace {

using namespace std::string_literals;

TEST(ImapWriter, WritesTaggedAndUntaggedStatusResponses) {
    EXPECT_EQ(status_response("a001", StatusKind::ok, "", "LOGIN completed"), "a001 OK LOGIN completed\r\n");
    EXPECT_EQ(status_response("*", StatusKind::ok, "UIDVALIDITY 3857529045", "UIDs valid"),
              "* OK [UIDVALIDITY 3857529045] UIDs valid\r\n");
    EXPECT_EQ(status_response("A003", StatusKind::ok,
                              appenduid_code(38505, SequenceSet::from_numbers({3955})), "APPEND completed"),
              "A003 OK [APPENDUID 38505 3955] APPEND completed\r\n");
    EXPECT_EQ(status_response("*", StatusKind::bye, "", "logging out"), "* BYE logging out\r\n");
    EXPECT_EQ(status_response("*", StatusKind::preauth, "", "hi"), "* PREAUTH hi\r\n");
    EXPECT_EQ(status_response("t", StatusKind::no, "TRYCREATE", ""), "t NO [TRYCREATE] NO\r\n");
}

TEST(ImapWriter, KeepsCrLfOutOfResponseText) {
    EXPECT_EQ(status_response("a", StatusKind::bad, "", "bad\r\n* OK injected"),
              "a BAD bad  * OK injected\r\n");
    EXPECT_EQ(continuation_response("line\nbreak"), "+ line break\r\n");
}

// RFC 4315 3 example.
TEST(ImapWriter, FormatsCopyUidCompactly) {
    EXPECT_EQ(copyuid_code(38505, SequenceSet::from_numbers({304, 319, 320}),
                           SequenceSet::from_numbers({3956, 3957, 3958})),
              "COPYUID 38505 304,319:320 3956:3958");
}

TEST(ImapWriter, FormatsParseErrors) {
    ParseError bad;
    bad.tag = "a1";
    bad.code = "TOOBIG";
    bad.message = "literal too large";
    EXPECT_EQ(error_response(bad), "a1 BAD [TOOBIG] literal too large\r\n");
    bad.status = ParseError::Status::no;
    EXPECT_EQ(error_response(bad), "a1 NO [TOOBIG] literal too large\r\n");
    EXPECT_EQ(error_response(ParseError{}), "* BAD BAD\r\n");
}

TEST(ImapWriter, BuildsFetchResponseWithAutomaticSpacing) {
    ResponseWriter w;
    w.untagged()
        .number(12)
        .atom("FETCH")
        .open_list()
        .atom("FLAGS")
        .flags({"\\Seen", "$Junk"})
        .atom("UID")
        .number(4);
    w.atom("INTERNALDATE").string("17-Jul-1996 02:44:25 -0700").close_list().end();
    EXPECT_EQ(w.take(),
              "* 12 FETCH (FLAGS (\\Seen $Junk) UID 4 INTERNALDATE \"17-Jul-1996 02:44:25 -0700\")\r\n");
    EXPECT_TRUE(w.buffer().empty());
    w.untagged().atom("FLAGS").flags({}).end();
    EXPECT_EQ(w.take(), "* FLAGS ()\r\n");
}

TEST(ImapWriter, ChoosesAtomQuotedOrLiteral) {
    auto astring = [](std::string_view value, bool utf8 = false) {
        ResponseWriter w(utf8);
        w.astring(value);
        return w.take();
    };
    EXPECT_EQ(astring("Drafts"), "Drafts");
    EXPECT_EQ(astring("a]b"), "a]b");
    EXPECT_EQ(astring("x[y"), "\"x[y\"");  // a client reads [ in an atom as a section (fuzz_imapclient_response)
    EXPECT_EQ(astring("[Gmail]"), "\"[Gmail]\"");
    EXPECT_EQ(astring(""), "\"\"");
    EXPECT_EQ(astring("NIL"), "\"NIL\"");
    EXPECT_EQ(astring("Sent Items"), "\"Sent Items\"");
    EXPECT_EQ(astring("say \"hi\" \\o/"), "\"say \\\"hi\\\" \\\\o/\"");
    EXPECT_EQ(astring("a%b"), "\"a%b\"");
    EXPECT_EQ(astring("two\r\nlines"), "{10}\r\ntwo\r\nlines");
    EXPECT_EQ(astring("caf\xC3\xA9"), "{5}\r\ncaf\xC3\xA9");
    EXPECT_EQ(astring("caf\xC3\xA9 x", true), "\"caf\xC3\xA9 x\"");
    EXPECT_EQ(astring("bad\xC3", true), "{4}\r\nbad\xC3");
    std::string heavy(20, '"');
    EXPECT_EQ(astring(heavy), "{20}\r\n" + heavy);
    std::string long_text(2000, 'a');
    long_text[0] = ' ';
    EXPECT_EQ(astring(long_text), "{2000}\r\n" + long_text);
}

TEST(ImapWriter, WritesNstringAndNil) {
    ResponseWriter w;
    w.open_list().nstring(std::nullopt).nstring(std::string_view("x y")).nil().close_list();
    EXPECT_EQ(w.take(), "(NIL \"x y\" NIL)");
}

// RFC 3516 4.2: BINARY content with NUL goes out as literal8.
TEST(ImapWriter, WritesLiteral8OnlyForNul) {
    ResponseWriter w;
    w.atom("BINARY[1]").binary("A\0B"s);
    EXPECT_EQ(w.take(), "BINARY[1] ~{3}\r\nA\0B"s);
    w.atom("BINARY[2]").binary("plain");
    EXPECT_EQ(w.take(), "BINARY[2] {5}\r\nplain");
    w.literal8("x");
    EXPECT_EQ(w.take(), "~{1}\r\nx");
}

// Issue 12 item 3: CHAR8 excludes NUL, so a plain literal (BODY[], a string) never carries one; each NUL
// becomes 0x80, one octet for one, as Dovecot sends it, so the announced sizes still hold.
TEST(ImapWriter, PlainLiteralsNeverCarryNul) {
    ResponseWriter w;
    w.atom("BODY[]").literal("A\0B\0"s);
    EXPECT_EQ(w.take(), "BODY[] {4}\r\nA\x80" "B\x80"s);
    w.string("x\0y"s);
    EXPECT_EQ(w.take(), "{3}\r\nx\x80y"s);
}

// A streamed literal (FETCH of a large message) is its announcement, then slices written by the caller
// under the same NUL rule, then the response goes on with one space as if the literal had been whole.
TEST(ImapWriter, StreamedLiteralsKeepTheNulRuleAndTheSpacing) {
    ResponseWriter w;
    w.untagged().number(1).atom("FETCH").open_list().atom("BODY[]").literal_header(4, false);
    std::string out = w.take_keeping_separator();
    append_literal_octets(out, "A\0"s, false);
    append_literal_octets(out, "B\0"s, false);
    w.atom("BINARY[]").literal_header(2, true);
    out += w.take_keeping_separator();
    append_literal_octets(out, "\0\0"s, true);
    w.close_list().end();
    out += w.take();
    EXPECT_EQ(out, "* 1 FETCH (BODY[] {4}\r\nA\x80" "B\x80 BINARY[] ~{2}\r\n\0\0)\r\n"s);
}

TEST(ImapWriter, EncodesMailboxNamesForTheClient) {
    const std::string name = "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e";
    ResponseWriter legacy;
    legacy.untagged()
        .atom("LIST")
        .open_list()
        .atom("\\HasNoChildren")
        .close_list()
        .string("/")
        .mailbox(name)
        .end();
    EXPECT_EQ(legacy.take(), "* LIST (\\HasNoChildren) \"/\" ~peter/mail/&U,BTFw-/&ZeVnLIqe-\r\n");
    ResponseWriter utf8(true);
    utf8.mailbox(name);
    EXPECT_EQ(utf8.take(), "\"" + name + "\"");
    legacy.mailbox("Tom & Jerry");
    EXPECT_EQ(legacy.take(), "\"Tom &- Jerry\"");
}

TEST(ImapWriter, WritesEsearchWithSequenceSet) {
    ResponseWriter w;
    w.untagged().atom("ESEARCH").open_list().atom("TAG").string("A285").close_list().atom("UID");
    w.atom("ALL").sequence_set(SequenceSet::from_numbers({4, 5, 6, 10})).end();
    EXPECT_EQ(w.take(), "* ESEARCH (TAG \"A285\") UID ALL 4:6,10\r\n");
}

TEST(ImapWriter, NamesFetchItemsAsRepliesDo) {
    FetchItem item;
    item.kind = FetchItem::Kind::body_section;
    item.peek = true;
    item.section.part = {1, 2};
    item.section.text = Section::Text::header_fields;
    item.section.fields = {"From", "Subject"};
    item.partial = Partial{0, 100};
    EXPECT_EQ(fetch_item_name(item), "BODY[1.2.HEADER.FIELDS (From Subject)]<0>");
    item = FetchItem{};
    item.kind = FetchItem::Kind::body_section;
    EXPECT_EQ(fetch_item_name(item), "BODY[]");
    item.section.text = Section::Text::text;
    EXPECT_EQ(fetch_item_name(item), "BODY[TEXT]");
    item.kind = FetchItem::Kind::binary_size;
    item.section = Section{};
    item.section.part = {3};
    EXPECT_EQ(fetch_item_name(item), "BINARY.SIZE[3]");
    item.kind = FetchItem::Kind::rfc822_size;
    EXPECT_EQ(fetch_item_name(item), "RFC822.SIZE");
}

TEST(ImapWriter, WritesContinuationAndText) {
    ResponseWriter w;
    w.continuation().text("idling").end();
    EXPECT_EQ(w.take(), "+ idling\r\n");
    w.tagged("a").atom("OK").text("done\r\n").end();
    EXPECT_EQ(w.take(), "a OK done  \r\n");
}

}  // namespace
}  // namespace magpie::imap
