#include <gtest/gtest.h>

#include "mail/charset.h"
#include "mail/encoded_word.h"
#include "mail/message.h"
#include "mail/mime.h"
#include "mail/mime_params.h"
#include "mail/summary.h"

namespace magpie::mail {
namespace {

std::vector<HeaderField> scan(std::string_view m, HeaderScan* out = nullptr, ParseLimits limits = {}) {
    std::vector<HeaderField> fields;
    HeaderScan s = scan_header(m, 0, m.size(), limits, fields);
    if (out) *out = s;
    return fields;
}

TEST(Header, SplitsFieldsAndBodyAtBlankLine) {
    std::string_view m = "From: a@b\r\nSubject: hi\r\n\r\nbody\r\n";
    HeaderScan s;
    auto fields = scan(m, &s);
    ASSERT_EQ(fields.size(), 2u);
    EXPECT_EQ(fields[0].name, "From");
    EXPECT_EQ(fields[0].raw_value, " a@b");
    EXPECT_EQ(fields[0].offset, 0u);
    EXPECT_EQ(fields[0].length, 11u);
    EXPECT_EQ(fields[1].unfolded(), "hi");
    EXPECT_EQ(s.header_end, 24u);
    EXPECT_EQ(s.body_offset, 26u);
    EXPECT_EQ(m.substr(s.body_offset), "body\r\n");
}

TEST(Header, UnfoldsContinuationLines) {
    // RFC 5322 2.2.3
    std::string_view m = "Subject: This\r\n is a test\r\n\tof folding\r\n\r\n";
    auto fields = scan(m);
    ASSERT_EQ(fields.size(), 1u);
    EXPECT_EQ(fields[0].raw_value, " This\r\n is a test\r\n\tof folding");
    EXPECT_EQ(fields[0].unfolded(), "This is a test\tof folding");
    EXPECT_EQ(fields[0].length, m.size() - 2);
}

TEST(Header, AcceptsBareLfLineEnds) {
    std::string_view m = "A: 1\nB: 2\n folded\n\nbody";
    HeaderScan s;
    auto fields = scan(m, &s);
    ASSERT_EQ(fields.size(), 2u);
    EXPECT_EQ(fields[1].unfolded(), "2 folded");
    EXPECT_EQ(m.substr(s.body_offset), "body");
}

TEST(Header, ObsoleteSpaceBeforeColonIsAccepted) {
    auto fields = scan("Subject : hello\r\n\r\n");  // RFC 5322 4.5.8
    ASSERT_EQ(fields.size(), 1u);
    EXPECT_EQ(fields[0].name, "Subject");
    EXPECT_EQ(fields[0].unfolded(), "hello");
}

TEST(Header, NonFieldLineStartsBodyWithoutBlankLine) {
    std::string_view m = "A: 1\r\nthis is not a header\r\nmore\r\n";
    HeaderScan s;
    auto fields = scan(m, &s);
    ASSERT_EQ(fields.size(), 1u);
    EXPECT_EQ(s.body_offset, 6u);
    EXPECT_EQ(s.header_end, 6u);
}

TEST(Header, MissingBlankLineAndLineEndAtEndOfInput) {
    std::string_view m = "A: 1\r\nB: 2";
    HeaderScan s;
    auto fields = scan(m, &s);
    ASSERT_EQ(fields.size(), 2u);
    EXPECT_EQ(fields[1].raw_value, " 2");
    EXPECT_EQ(s.body_offset, m.size());
}

TEST(Header, KeepsEightBitBytes) {
    auto fields = scan("Subject: caf\xC3\xA9\r\n\r\n");
    ASSERT_EQ(fields.size(), 1u);
    EXPECT_EQ(fields[0].unfolded(), "caf\xC3\xA9");
}

TEST(Header, StopsAtFieldLimit) {
    ParseLimits limits;
    limits.max_header_fields = 2;
    HeaderScan s;
    auto fields = scan("A: 1\r\nB: 2\r\nC: 3\r\n\r\nx", &s, limits);
    EXPECT_EQ(fields.size(), 2u);
    EXPECT_TRUE(s.limit_hit);
    EXPECT_EQ(s.body_offset, 20u);
}

TEST(Header, StopsAtOctetLimitAndLeavesTheRestAsBody) {
    ParseLimits limits;
    limits.max_header_octets = 12;
    HeaderScan s;
    std::string_view m = "A: 1\r\nB: 2\r\nC: 3\r\n\r\nx";
    auto fields = scan(m, &s, limits);
    EXPECT_EQ(fields.size(), 2u);
    EXPECT_TRUE(s.limit_hit);
    EXPECT_EQ(s.body_offset, 12u);
}

TEST(Header, FindsRepeatedFieldsInOrderCaseInsensitively) {
    std::string_view m = "Received: one\r\nreceived: two\r\nX: y\r\n\r\n";
    auto fields = scan(m);
    Header h(fields);
    auto all = h.find_all("RECEIVED");
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0]->unfolded(), "one");
    EXPECT_EQ(all[1]->unfolded(), "two");
    EXPECT_EQ(h.value("x"), "y");
    EXPECT_FALSE(h.has("Subject"));
}

TEST(Header, GivesRawUnfoldedAndDecodedValues) {
    std::string_view m = "Subject: =?UTF-8?Q?caf=C3=A9?=\r\n =?UTF-8?Q?_au_lait?=\r\n\r\n";
    auto fields = scan(m);
    Header h(fields);
    EXPECT_EQ(h.find("subject")->raw_value, " =?UTF-8?Q?caf=C3=A9?=\r\n =?UTF-8?Q?_au_lait?=");
    EXPECT_EQ(h.value("subject"), "=?UTF-8?Q?caf=C3=A9?= =?UTF-8?Q?_au_lait?=");
    EXPECT_EQ(h.decoded("subject"), "caf\xC3\xA9 au lait");
}

TEST(Header, SkipsLeadingMboxFromLine) {
    auto fields = scan("From someone Mon Jan  1 00:00:00 2024\nSubject: s\n\n");
    ASSERT_EQ(fields.size(), 1u);
    EXPECT_EQ(fields[0].name, "Subject");
}

TEST(MessageIds, ParsesListsWithCommentsAndPhrases) {
    auto ids = parse_message_ids(" <1234@local.machine.example> (comment)\r\n <3456@example.net>");
    ASSERT_EQ(ids.size(), 2u);
    EXPECT_EQ(ids[0], "<1234@local.machine.example>");
    EXPECT_EQ(ids[1], "<3456@example.net>");
    auto obs = parse_message_ids("\"Joe\" <a@b> <c @ d>");
    ASSERT_EQ(obs.size(), 2u);
    EXPECT_EQ(obs[1], "<c@d>");
    EXPECT_EQ(parse_message_ids(" bare@id ").front(), "bare@id");
}

TEST(EncodedWord, DecodesRfc2047Examples) {
    // RFC 2047 8
    EXPECT_EQ(decode_encoded_words("=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?="), "Keld J\xC3\xB8rn Simonsen");
    EXPECT_EQ(decode_encoded_words("=?US-ASCII?Q?Keith_Moore?="), "Keith Moore");
    EXPECT_EQ(decode_encoded_words("(=?ISO-8859-1?Q?a?=)"), "(a)");
    EXPECT_EQ(decode_encoded_words("(=?ISO-8859-1?Q?a?= b)"), "(a b)");
    EXPECT_EQ(decode_encoded_words("(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)"), "(ab)");
    EXPECT_EQ(decode_encoded_words("(=?ISO-8859-1?Q?a?=  \r\n  =?ISO-8859-1?Q?b?=)"), "(ab)");
    EXPECT_EQ(decode_encoded_words("(=?ISO-8859-1?Q?a_b?=)"), "(a b)");
    EXPECT_EQ(decode_encoded_words("(=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=)"), "(a b)");
    EXPECT_EQ(decode_encoded_words("=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?="), "If you can read this yo");
}

TEST(EncodedWord, JoinsMultibyteCharacterSplitAcrossWords) {
    // "é" (C3 A9) split across two B words.
    EXPECT_EQ(decode_encoded_words("=?UTF-8?B?w6E=?= =?UTF-8?Q?=C3?= =?UTF-8?Q?=A9?="), "\xC3\xA1\xC3\xA9");
}

TEST(EncodedWord, KeepsMalformedAndUnknownWords) {
    EXPECT_EQ(decode_encoded_words("=?utf-8?X?abc?="), "=?utf-8?X?abc?=");
    EXPECT_EQ(decode_encoded_words("=?utf-8?Q?a b?="), "=?utf-8?Q?a b?=");
    EXPECT_EQ(decode_encoded_words("a =?utf-8?q?unterminated"), "a =?utf-8?q?unterminated");
    // RFC 2231 5: a language suffix on the charset
    EXPECT_EQ(decode_encoded_words("=?US-ASCII*EN?Q?Keith_Moore?="), "Keith Moore");
}

TEST(EncodedWord, ManyUnclosedWordsTakeLinearTime) {
    // Rescanning for "?=" from every "=?" would be quadratic: minutes on these.
    std::string unclosed;
    std::string far_close;
    for (int i = 0; i < 40000; ++i) {
        unclosed += "=?x?q?a";
        far_close += "=?x?q?a";
    }
    far_close += " b?=";
    EXPECT_EQ(decode_encoded_words(unclosed), unclosed);
    EXPECT_EQ(decode_encoded_words(far_close), far_close);
}

TEST(EncodedWord, ConvertsOtherCharsetsThroughIconv) {
    EXPECT_EQ(decode_encoded_words("=?koi8-r?B?8NLJ18XU?="), "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82");
    EXPECT_EQ(decode_encoded_words("=?ISO-2022-JP?B?GyRCJEYkOSRIGyhC?="), "\xE3\x81\xA6\xE3\x81\x99\xE3\x81\xA8");
}

TEST(Charset, InvalidBytesBecomeReplacementCharacters) {
    EXPECT_EQ(*to_utf8("a\xFF" "b", "utf-8"), "a\xEF\xBF\xBD" "b");
    EXPECT_FALSE(to_utf8("abc\x80", "x-no-such-charset").has_value());
    EXPECT_EQ(to_utf8_lenient("\x93quoted\x94", "x-no-such-charset"), "\xE2\x80\x9Cquoted\xE2\x80\x9D");
}

TEST(Charset, ReadsCommonLabelsAsTheirVendorSupersets) {
    EXPECT_EQ(*to_utf8("\x93q\x94 caf\xE9", "ISO-8859-1"), "\xE2\x80\x9Cq\xE2\x80\x9D caf\xC3\xA9");
    EXPECT_EQ(*to_utf8("\x80\x81\x40", "gb2312"), "\xE2\x82\xAC\xE4\xB8\x82");  // GBK only: euro, U+4E02
    EXPECT_EQ(*to_utf8("\x87\x40", "Shift_JIS"), "\xE2\x91\xA0");  // NEC circled one, CP932 only
}

TEST(MimeParams, ParsesContentTypeWithQuotedParameters) {
    ContentType ct = parse_content_type(" Text/Plain; charset=\"us-ascii\" (Plain text); format=flowed");
    EXPECT_TRUE(ct.present);
    EXPECT_EQ(ct.type, "text");
    EXPECT_EQ(ct.subtype, "plain");
    EXPECT_EQ(ct.params.get("CHARSET"), "us-ascii");
    EXPECT_EQ(ct.params.get("format"), "flowed");
    ASSERT_EQ(ct.params.raw.size(), 2u);
    EXPECT_EQ(ct.params.raw[0].name, "charset");
}

TEST(MimeParams, DefaultsWhenContentTypeIsInvalid) {
    ContentType ct = parse_content_type("garbage; charset=iso-8859-1");
    EXPECT_FALSE(ct.present);
    EXPECT_EQ(ct.type, "text");
    EXPECT_EQ(ct.subtype, "plain");
    EXPECT_EQ(ct.params.get("charset"), "iso-8859-1");
}

TEST(MimeParams, ReassemblesRfc2231Continuations) {
    // RFC 2231 3 and 4.1 examples
    auto ct = parse_content_type(
        "message/external-body; access-type=URL;\r\n URL*0=\"ftp://\";\r\n URL*1=\"cs.utk.edu/pub/moore/bulk-mailer/bulk-mailer.tar\"");
    EXPECT_EQ(ct.params.get("url"), "ftp://cs.utk.edu/pub/moore/bulk-mailer/bulk-mailer.tar");
    auto enc = parse_content_type("application/x-stuff; title*=us-ascii'en-us'This%20is%20%2A%2A%2Afun%2A%2A%2A");
    const Parameter* title = enc.params.find("title");
    ASSERT_NE(title, nullptr);
    EXPECT_EQ(title->value, "This is ***fun***");
    EXPECT_EQ(title->charset, "us-ascii");
    EXPECT_EQ(title->language, "en-us");
    auto mixed = parse_content_type(
        "application/x-stuff; title*0*=us-ascii'en'This%20is%20even%20more%20; title*1*=%2A%2A%2Afun%2A%2A%2A%20; "
        "title*2=\"isn't it!\"");
    EXPECT_EQ(mixed.params.get("title"), "This is even more ***fun*** isn't it!");
}

TEST(MimeParams, DecodesNonAsciiFilenames) {
    auto cd = parse_content_disposition("attachment; filename*=UTF-8''caf%C3%A9.txt");
    EXPECT_EQ(cd.kind, "attachment");
    EXPECT_EQ(cd.params.get("filename"), "caf\xC3\xA9.txt");
    auto latin = parse_content_disposition("attachment; filename*=iso-8859-1''caf%E9.txt");
    EXPECT_EQ(latin.params.get("filename"), "caf\xC3\xA9.txt");
    auto word = parse_content_disposition("attachment; filename=\"=?UTF-8?B?Y2Fmw6kudHh0?=\"");
    EXPECT_EQ(word.params.get("filename"), "caf\xC3\xA9.txt");
}

TEST(MimeParams, SectionsStopAtGap) {
    auto ct = parse_content_type("a/b; n*0=one; n*2=three");
    EXPECT_EQ(ct.params.get("n"), "one");
}

TEST(Summary, TextFieldsAreAlwaysUtf8) {
    Summary s = summarize("From: J\xF6rg <j\xF6rg@example.de>\r\nDate: 1 Jan 2024 00:00 +0000 \xFF\r\n"
                          "Message-ID: <\xE9@x>\r\n\r\n");
    EXPECT_EQ(s.from, "J\xC3\xB6rg <j\xC3\xB6rg@example.de>");
    EXPECT_EQ(s.date, "1 Jan 2024 00:00 +0000 \xC3\xBF");
    EXPECT_EQ(s.message_id, "<\xC3\xA9@x>");
    EXPECT_EQ(s.sent_at, 1704067200);
}

TEST(Summary, ExtractsDecodedKeyFields) {
    std::string_view m =
        "From: =?UTF-8?Q?Ren=C3=A9?= <rene@example.com>\r\n"
        "To: a@example.net, \"B, Jr.\" <b@example.net>\r\n"
        "Cc: Team: c@example.org;\r\n"
        "Subject: =?UTF-8?B?SGVsbG8gd8O2cmxk?=\r\n"
        "Date: Fri, 21 Nov 1997 09:55:06 -0600\r\n"
        "Message-ID: <1234@local.machine.example>\r\n"
        "In-Reply-To: <1@x>\r\n"
        "References: <0@x>\r\n <1@x>\r\n"
        "\r\n"
        "hi\r\n";
    Summary s = summarize(m);
    EXPECT_EQ(s.subject, "Hello w\xC3\xB6rld");
    EXPECT_EQ(s.from, "Ren\xC3\xA9 <rene@example.com>");
    EXPECT_EQ(s.to, "a@example.net, \"B, Jr.\" <b@example.net>");
    EXPECT_EQ(s.cc, "Team: c@example.org;");
    EXPECT_EQ(s.date, "Fri, 21 Nov 1997 09:55:06 -0600");
    EXPECT_EQ(s.sent_at, 880127706);
    EXPECT_EQ(s.message_id, "<1234@local.machine.example>");
    EXPECT_EQ(s.in_reply_to, "<1@x>");
    EXPECT_EQ(s.references, "<0@x> <1@x>");
}

}  // namespace
}  // namespace magpie::mail
