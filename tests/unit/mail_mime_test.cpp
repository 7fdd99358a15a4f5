#include <gtest/gtest.h>

#include "mail/decode.h"
#include "mail/mime.h"
#include "mail/structure.h"

namespace magpie::mail {
namespace {

std::vector<std::uint32_t> children(const Message& m, const Part& p) {
    std::vector<std::uint32_t> out;
    for (std::uint32_t c = p.first_child; c != kNoPart; c = m.parts()[c].next_sibling) out.push_back(c);
    return out;
}

// RFC 2046 5.1.1, the example with preamble and epilogue.
constexpr std::string_view kRfc2046 =
    "From: Nathaniel Borenstein <nsb@bellcore.com>\r\n"
    "To: Ned Freed <ned@innosoft.com>\r\n"
    "Date: Sun, 21 Mar 1993 23:56:48 -0800 (PST)\r\n"
    "Subject: Sample message\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-type: multipart/mixed; boundary=\"simple boundary\"\r\n"
    "\r\n"
    "This is the preamble.  It is to be ignored, though it\r\n"
    "is a handy place for composition agents to include an\r\n"
    "explanatory note to non-MIME conformant readers.\r\n"
    "\r\n"
    "--simple boundary\r\n"
    "\r\n"
    "This is implicitly typed plain US-ASCII text.\r\n"
    "It does NOT end with a linebreak.\r\n"
    "--simple boundary\r\n"
    "Content-type: text/plain; charset=us-ascii\r\n"
    "\r\n"
    "This is explicitly typed plain US-ASCII text.\r\n"
    "It DOES end with a linebreak.\r\n"
    "\r\n"
    "--simple boundary--\r\n"
    "\r\n"
    "This is the epilogue.  It is also to be ignored.\r\n";

TEST(Mime, SplitsRfc2046ExampleIntoTwoParts) {
    Message m = Message::parse(kRfc2046);
    const Part& root = m.root();
    EXPECT_EQ(root.kind, PartKind::multipart);
    EXPECT_TRUE(root.is("MULTIPART", "mixed"));
    EXPECT_TRUE(root.closed);
    auto kids = children(m, root);
    ASSERT_EQ(kids.size(), 2u);
    const Part& first = m.parts()[kids[0]];
    const Part& second = m.parts()[kids[1]];
    EXPECT_TRUE(first.is("text", "plain"));  // implicit type
    EXPECT_EQ(m.header(first).fields().size(), 0u);
    EXPECT_EQ(m.body(first), "This is implicitly typed plain US-ASCII text.\r\nIt does NOT end with a linebreak.");
    EXPECT_EQ(m.body(second), "This is explicitly typed plain US-ASCII text.\r\nIt DOES end with a linebreak.\r\n");
    EXPECT_EQ(m.header(second).value("content-type"), "text/plain; charset=us-ascii");
    std::string_view preamble = m.bytes().substr(root.body_offset, root.preamble_end - root.body_offset);
    EXPECT_TRUE(preamble.starts_with("This is the preamble."));
    EXPECT_TRUE(preamble.ends_with("readers.\r\n"));
    EXPECT_EQ(m.bytes().substr(root.epilogue_offset, root.end - root.epilogue_offset),
              "\r\nThis is the epilogue.  It is also to be ignored.\r\n");
}

TEST(Mime, NestsMultipartsAndEncapsulatedMessages) {
    std::string_view msg =
        "Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
        "--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
        "--inner\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
        "--inner\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n"
        "--inner--\r\n"
        "--outer\r\nContent-Type: message/rfc822\r\n\r\n"
        "Subject: inside\r\nContent-Type: text/plain\r\n\r\ninner body\r\n"
        "--outer--\r\n";
    Message m = Message::parse(msg);
    auto top = children(m, m.root());
    ASSERT_EQ(top.size(), 2u);
    const Part& alt = m.parts()[top[0]];
    EXPECT_EQ(alt.kind, PartKind::multipart);
    auto alts = children(m, alt);
    ASSERT_EQ(alts.size(), 2u);
    EXPECT_EQ(m.body(m.parts()[alts[1]]), "<p>html</p>");
    const Part& rfc822 = m.parts()[top[1]];
    EXPECT_EQ(rfc822.kind, PartKind::message);
    const Part& inner = m.parts()[rfc822.first_child];
    EXPECT_EQ(inner.depth, 2);
    EXPECT_EQ(m.header(inner).value("Subject"), "inside");
    EXPECT_EQ(m.body(inner), "inner body");
}

TEST(Mime, MissingClosingBoundaryEndsAtEndOfParent) {
    std::string_view msg =
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        "--b\r\n\r\none\r\n--b\r\n\r\ntwo\r\n";
    Message m = Message::parse(msg);
    EXPECT_FALSE(m.root().closed);
    auto kids = children(m, m.root());
    ASSERT_EQ(kids.size(), 2u);
    EXPECT_EQ(m.body(m.parts()[kids[1]]), "two\r\n");
}

TEST(Mime, OuterBoundaryClosesUnterminatedInnerMultipart) {
    std::string_view msg =
        "Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
        "--outer\r\nContent-Type: multipart/mixed; boundary=inner\r\n\r\n"
        "--inner\r\n\r\na\r\n"
        "--outer\r\n\r\nb\r\n--outer--\r\n";
    Message m = Message::parse(msg);
    auto top = children(m, m.root());
    ASSERT_EQ(top.size(), 2u);
    auto inner = children(m, m.parts()[top[0]]);
    ASSERT_EQ(inner.size(), 1u);
    EXPECT_EQ(m.body(m.parts()[inner[0]]), "a");
    EXPECT_EQ(m.body(m.parts()[top[1]]), "b");
}

TEST(Mime, BoundaryMustStartALineAndMatchExactly) {
    std::string_view msg =
        "Content-Type: multipart/mixed; boundary=\"b\"\n\n"
        "--b\n\nx --b not a boundary\n--bb not either\n--b  \n\ny\n--b--";
    Message m = Message::parse(msg);
    auto kids = children(m, m.root());
    ASSERT_EQ(kids.size(), 2u);
    EXPECT_EQ(m.body(m.parts()[kids[0]]), "x --b not a boundary\n--bb not either");
    EXPECT_EQ(m.body(m.parts()[kids[1]]), "y");
    EXPECT_TRUE(m.root().closed);
}

// The delimiter search hands memmem 64 KiB windows (mime.cpp kSearchWindow): a delimiter at every offset
// across a window's end is found.
TEST(Mime, DelimitersAcrossSearchWindowsAreFound) {
    const std::string head = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n";
    for (std::size_t shift = 0; shift < 8; ++shift) {
        // The second delimiter's "--b" starts at the filler's size + 4 from where the search for it starts
        // (after the first delimiter line): 65,533 to 65,540, across the first window's end.
        const std::string filler(64 * 1024 - 7 + shift, 'x');
        const std::string msg = head + filler + "\r\n--b\r\n\r\nsecond\r\n--b--\r\n";
        Message m = Message::parse(msg);
        auto kids = children(m, m.root());
        ASSERT_EQ(kids.size(), 2u) << "shift " << shift;
        EXPECT_EQ(m.body(m.parts()[kids[0]]), filler) << "shift " << shift;
        EXPECT_EQ(m.body(m.parts()[kids[1]]), "second") << "shift " << shift;
        EXPECT_TRUE(m.root().closed);
    }
}

TEST(Mime, FromLineStartingAPartIsText) {
    std::string_view msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nFrom me to you\r\n--b--\r\n";
    Message m = Message::parse(msg);
    ASSERT_EQ(m.root().kind, PartKind::multipart);
    EXPECT_EQ(m.body(m.parts()[m.root().first_child]), "From me to you");
}

TEST(Mime, MultipartWithoutBoundaryLineIsALeaf) {
    Message m = Message::parse("Content-Type: multipart/mixed; boundary=zz\r\n\r\nno parts here\r\n");
    EXPECT_EQ(m.root().kind, PartKind::leaf);
    Message none = Message::parse("Content-Type: multipart/mixed\r\n\r\n--\r\n");
    EXPECT_EQ(none.root().kind, PartKind::leaf);
    // Found by fuzzing: only a closing delimiter used to leave a childless multipart.
    Message closed = Message::parse("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b--\r\n");
    EXPECT_EQ(closed.root().kind, PartKind::leaf);
    EXPECT_TRUE(Structure::parse(serialize_structure(closed)));
}

TEST(Mime, DigestChildrenDefaultToMessageRfc822) {
    // RFC 2046 5.1.5
    std::string_view msg =
        "Content-Type: multipart/digest; boundary=d\r\n\r\n"
        "--d\r\n\r\nSubject: one\r\n\r\nfirst\r\n--d--\r\n";
    Message m = Message::parse(msg);
    auto kids = children(m, m.root());
    ASSERT_EQ(kids.size(), 1u);
    const Part& p = m.parts()[kids[0]];
    EXPECT_TRUE(p.is("message", "rfc822"));
    EXPECT_EQ(p.kind, PartKind::message);
    EXPECT_EQ(m.header(m.parts()[p.first_child]).value("subject"), "one");
}

TEST(Mime, EncodedMessageRfc822StaysALeaf) {
    Message m = Message::parse("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeA0KDQp5\r\n");
    EXPECT_EQ(m.root().kind, PartKind::leaf);
    EXPECT_EQ(decode_body(m, m.root()), "Subject: x\r\n\r\ny");
}

TEST(Mime, DepthAndPartLimitsDegradeGracefully) {
    std::string msg;
    for (int i = 0; i < 50; ++i) msg += "Content-Type: message/rfc822\r\n\r\n";
    msg += "bottom";
    ParseLimits limits;
    limits.max_depth = 10;
    Message m = Message::parse(msg, limits);
    EXPECT_TRUE(m.limit_hit());
    EXPECT_LE(m.parts().size(), 10u);
    std::string many = "Content-Type: multipart/mixed; boundary=b\r\n\r\n";
    for (int i = 0; i < 100; ++i) many += "--b\r\n\r\nx\r\n";
    limits.max_parts = 20;
    Message wide = Message::parse(many, limits);
    EXPECT_TRUE(wide.limit_hit());
    EXPECT_EQ(wide.parts().size(), 20u);
}

TEST(Mime, BoundsFieldsAcrossAllParts) {
    std::string many = "Content-Type: multipart/mixed; boundary=b\r\n\r\n";
    for (int i = 0; i < 50; ++i) many += "--b\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\nx\r\n";
    ParseLimits limits;
    limits.max_total_fields = 20;
    Message m = Message::parse(many, limits);
    EXPECT_TRUE(m.limit_hit());
    EXPECT_EQ(m.fields().size(), 20u);
    EXPECT_EQ(m.parts().size(), 51u);  // the tree itself is complete
}

TEST(Mime, EmptyAndHeaderOnlyMessages) {
    Message empty = Message::parse("");
    ASSERT_EQ(empty.parts().size(), 1u);
    EXPECT_EQ(empty.root().body_offset, 0u);
    Message only = Message::parse("Subject: x");
    EXPECT_EQ(only.header().value("subject"), "x");
    EXPECT_EQ(only.body(only.root()), "");
}

TEST(Mime, ParsesRfc3464DeliveryStatusNotification) {
    // RFC 3464 10.1, shortened: multipart/report with the human text, the machine-readable status and the
    // returned headers.
    std::string_view dsn =
        "Date: Thu, 7 Jul 1994 17:16:05 -0400\r\n"
        "From: Mail Delivery Subsystem <MAILER-DAEMON@CS.UTK.EDU>\r\n"
        "Message-Id: <199407072116.RAA14128@CS.UTK.EDU>\r\n"
        "Subject: Returned mail: Cannot send message for 5 days\r\n"
        "To: <owner-info-mime@cs.utk.edu>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status;\r\n"
        "    boundary=\"RAA14128.773615765/CS.UTK.EDU\"\r\n"
        "\r\n"
        "--RAA14128.773615765/CS.UTK.EDU\r\n"
        "\r\n"
        "The original message was received at Sat, 2 Jul 1994 17:10:28 -0400\r\n"
        "\r\n"
        "--RAA14128.773615765/CS.UTK.EDU\r\n"
        "content-type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; cs.utk.edu\r\n"
        "\r\n"
        "Original-Recipient: rfc822;louisl@larry.slip.umd.edu\r\n"
        "Final-Recipient: rfc822;louisl@larry.slip.umd.edu\r\n"
        "Action: failed\r\n"
        "Status: 4.0.0\r\n"
        "\r\n"
        "--RAA14128.773615765/CS.UTK.EDU\r\n"
        "content-type: message/rfc822\r\n"
        "\r\n"
        "Return-Path: <owner-info-mime@cs.utk.edu>\r\n"
        "Subject: Letter\r\n"
        "\r\n"
        "--RAA14128.773615765/CS.UTK.EDU--\r\n";
    Message m = Message::parse(dsn);
    EXPECT_TRUE(m.root().is("multipart", "report"));
    EXPECT_EQ(m.content_type(m.root()).params.get("report-type"), "delivery-status");
    auto kids = children(m, m.root());
    ASSERT_EQ(kids.size(), 3u);
    const Part& status = m.parts()[kids[1]];
    EXPECT_TRUE(status.is("message", "delivery-status"));
    EXPECT_EQ(status.kind, PartKind::leaf);  // its fields are status groups, not a message
    EXPECT_TRUE(m.body(status).starts_with("Reporting-MTA: dns; cs.utk.edu\r\n\r\nOriginal-Recipient"));
    const Part& returned = m.parts()[kids[2]];
    EXPECT_EQ(returned.kind, PartKind::message);
    EXPECT_EQ(m.header(m.parts()[returned.first_child]).value("Subject"), "Letter");
}

TEST(Mime, TransferEncodingNames) {
    EXPECT_EQ(parse_transfer_encoding(" Base64 "), TransferEncoding::base64);
    EXPECT_EQ(parse_transfer_encoding("quoted-printable (comment)"), TransferEncoding::quoted_printable);
    EXPECT_EQ(parse_transfer_encoding(""), TransferEncoding::seven_bit);
    EXPECT_EQ(parse_transfer_encoding("x-uuencode"), TransferEncoding::unknown);
}

TEST(Decode, TextPartsBecomeUtf8) {
    std::string_view msg =
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        "caf=E9 =\r\nsoft\r\n"
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        "Y2Fmw6k=\r\n"
        "--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "caf\xE9\r\n"
        "--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        "AAEC/w==\r\n"
        "--b--\r\n";
    Message m = Message::parse(msg);
    auto kids = children(m, m.root());
    ASSERT_EQ(kids.size(), 4u);
    EXPECT_EQ(decode_text(m, m.parts()[kids[0]]), "caf\xC3\xA9 soft");
    EXPECT_EQ(decode_text(m, m.parts()[kids[1]]), "caf\xC3\xA9");
    EXPECT_EQ(decode_text(m, m.parts()[kids[2]]), "caf\xC3\xA9");  // unlabelled 8-bit: Windows-1252
    EXPECT_EQ(decode_body(m, m.parts()[kids[3]]), std::string("\x00\x01\x02\xFF", 4));
    EXPECT_EQ(decoded_transfer_size(m.body(m.parts()[kids[3]]), TransferEncoding::base64), 4u);
}

}  // namespace
}  // namespace magpie::mail
