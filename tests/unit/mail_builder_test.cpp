// The message builder, checked by parsing what it writes with the library's own parser: same content back,
// 7-bit unless asked otherwise, lines within RFC 5322 2.1.1 limits, and deterministic under a fixed env.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "base/strings.h"
#include "mail/address.h"
#include "mail/base64.h"
#include "mail/builder.h"
#include "mail/dot_stuffing.h"
#include "mail/encoded_word.h"
#include "mail/mime.h"
#include "mail/quoted_printable.h"
#include "mail/transfer_choice.h"

namespace magpie::mail {
namespace {

constexpr std::int64_t kNow = 1795000000;  // 2026-11-18

// Reproducible randomness: splitmix64 from a fixed seed.
BuildEnv test_env(std::uint64_t seed = 1) {
    BuildEnv env;
    env.now = kNow;
    auto state = std::make_shared<std::uint64_t>(seed);
    env.random = [state]() {
        std::uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    };
    env.domain = "mail.example.test";
    return env;
}

Draft simple_draft() {
    Draft draft;
    draft.from = {"Alice", "alice@example.test"};
    draft.to = {{"Bob", "bob@example.test"}};
    draft.subject = "Hello";
    draft.text = "Hi Bob.\r\n";
    return draft;
}

std::string build(const Draft& draft, const BuildOptions& options = {}, std::uint64_t seed = 1) {
    auto built = build_message(draft, options, test_env(seed));
    EXPECT_TRUE(built.ok()) << (built.ok() ? "" : built.error().message);
    return built.ok() ? *built : std::string();
}

std::string decoded(const Message& message, const Part& part) {
    std::string_view body = message.body(part);
    switch (part.encoding) {
        case TransferEncoding::base64:
            return base64_decode(body);
        case TransferEncoding::quoted_printable:
            return qp_decode(body);
        default:
            return std::string(body);
    }
}

std::size_t longest_line(std::string_view text) {
    std::size_t longest = 0;
    for (auto line : split(text, '\n')) {
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        longest = std::max(longest, line.size());
    }
    return longest;
}

bool every_line_ends_crlf(std::string_view text) {
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) return false;
        if (text[i] == '\r' && (i + 1 == text.size() || text[i + 1] != '\n')) return false;
    }
    return text.ends_with("\r\n");
}

std::vector<const Part*> children(const Message& message, const Part& part) {
    std::vector<const Part*> out;
    for (std::uint32_t i = part.first_child; i != kNoPart; i = message.parts()[i].next_sibling)
        out.push_back(&message.parts()[i]);
    return out;
}

TEST(Builder, WritesPlainTextMessageExactly) {
    std::string message = build(simple_draft());
    EXPECT_EQ(message,
              "Date: Wed, 18 Nov 2026 11:06:40 +0000\r\n"
              "From: Alice <alice@example.test>\r\n"
              "To: Bob <bob@example.test>\r\n"
              "Subject: Hello\r\n"
              "Message-ID: " +
                  generate_message_id(test_env()) +
                  "\r\n"
                  "MIME-Version: 1.0\r\n"
                  "Content-Type: text/plain; charset=utf-8\r\n"
                  "Content-Transfer-Encoding: 7bit\r\n"
                  "\r\n"
                  "Hi Bob.\r\n");
}

TEST(Builder, SameEnvGivesSameBytesAndOtherSeedGivesNewIds) {
    EXPECT_EQ(build(simple_draft()), build(simple_draft()));
    EXPECT_NE(generate_message_id(test_env(1)), generate_message_id(test_env(2)));
    EXPECT_NE(generate_boundary(test_env(1)), generate_boundary(test_env(2)));
}

TEST(Builder, MessageIdHasTheEnvDomain) {
    std::string id = generate_message_id(test_env());
    EXPECT_TRUE(id.starts_with("<"));
    EXPECT_TRUE(id.ends_with("@mail.example.test>"));
}

TEST(Builder, KeepsGivenMessageIdAndDate) {
    Draft draft = simple_draft();
    draft.message_id = "<given@example.test>";
    draft.date = 0;
    std::string bytes = build(draft);
    Message parsed = Message::parse(bytes);
    auto header = parsed.header();
    EXPECT_EQ(header.value("Message-ID"), "<given@example.test>");
    EXPECT_EQ(header.value("Date"), "Thu, 1 Jan 1970 00:00:00 +0000");
}

TEST(Builder, NonAsciiTextBecomesQuotedPrintableAndParsesBack) {
    Draft draft = simple_draft();
    draft.text = "Caf\xc3\xa9 au lait, s'il vous pla\xc3\xaet.\r\n";
    std::string message = build(draft);
    EXPECT_TRUE(is_ascii(message));
    Message parsed = Message::parse(message);
    EXPECT_EQ(parsed.root().encoding, TransferEncoding::quoted_printable);
    EXPECT_EQ(decoded(parsed, parsed.root()), *draft.text);
}

TEST(Builder, MostlyNonAsciiTextBecomesBase64) {
    Draft draft = simple_draft();
    draft.text = "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82, \xd0\xbc\xd0\xb8\xd1\x80!\r\n";
    std::string bytes = build(draft);
    Message parsed = Message::parse(bytes);
    EXPECT_EQ(parsed.root().encoding, TransferEncoding::base64);
    EXPECT_EQ(decoded(parsed, parsed.root()), *draft.text);
}

TEST(Builder, TextLineEndsAreCanonicalCrlf) {
    Draft draft = simple_draft();
    draft.text = "one\ntwo\rthree\r\n";
    std::string bytes = build(draft);
    Message parsed = Message::parse(bytes);
    EXPECT_EQ(decoded(parsed, parsed.root()), "one\r\ntwo\r\nthree\r\n");
}

TEST(Builder, OverlongTextLinesAreSoftBroken) {
    Draft draft = simple_draft();
    draft.text = std::string(2000, 'a') + "\r\n";
    std::string message = build(draft);
    EXPECT_LE(longest_line(message), 78u);
    Message parsed = Message::parse(message);
    EXPECT_EQ(parsed.root().encoding, TransferEncoding::quoted_printable);
    EXPECT_EQ(decoded(parsed, parsed.root()), *draft.text);
}

TEST(Builder, TextLinesOver78AreSoftBrokenToo) {
    Draft draft = simple_draft();
    draft.text =
        "A paragraph typed without line breaks, " + std::string(60, 'x') + " and longer than 78.\r\n";
    std::string message = build(draft);
    EXPECT_LE(longest_line(message), 78u);
    Message parsed = Message::parse(message);
    EXPECT_EQ(parsed.root().encoding, TransferEncoding::quoted_printable);
    EXPECT_EQ(decoded(parsed, parsed.root()), *draft.text);
}

TEST(Builder, EightBitTransportKeepsUtf8TextAs8bit) {
    Draft draft = simple_draft();
    draft.text = "Caf\xc3\xa9\r\n";
    BuildOptions options;
    options.transport = Transport::eight_bit;
    std::string bytes = build(draft, options);
    Message parsed = Message::parse(bytes);
    EXPECT_EQ(parsed.root().encoding, TransferEncoding::eight_bit);
    EXPECT_EQ(parsed.body(parsed.root()), "Caf\xc3\xa9\r\n");
}

TEST(Builder, TextAndHtmlMakeAlternativePlainFirst) {
    Draft draft = simple_draft();
    draft.html = "<p>Hi Bob.</p>\r\n";
    std::string bytes = build(draft);
    Message parsed = Message::parse(bytes);
    ASSERT_TRUE(parsed.root().is("multipart", "alternative"));
    auto parts = children(parsed, parsed.root());
    ASSERT_EQ(parts.size(), 2u);
    EXPECT_TRUE(parts[0]->is("text", "plain"));
    EXPECT_TRUE(parts[1]->is("text", "html"));
    EXPECT_EQ(decoded(parsed, *parts[0]), *draft.text);
    EXPECT_EQ(decoded(parsed, *parts[1]), *draft.html);
    EXPECT_TRUE(parsed.root().closed);
}

TEST(Builder, AttachmentsMakeMixedWithAlternativeInside) {
    Draft draft = simple_draft();
    draft.html = "<p>Hi</p>";
    std::string pdf("%PDF-1.4\x00\x01\x02\xff binary", 20);
    draft.attachments.push_back({"r\xc3\xa9sum\xc3\xa9.pdf", "application/pdf", pdf, false, ""});
    draft.attachments.push_back({"notes.txt", "text/plain", "plain notes\r\n", true, "notes@example.test"});
    std::string message = build(draft);
    EXPECT_TRUE(is_ascii(message));
    Message parsed = Message::parse(message);
    ASSERT_TRUE(parsed.root().is("multipart", "mixed"));
    auto parts = children(parsed, parsed.root());
    ASSERT_EQ(parts.size(), 3u);
    EXPECT_TRUE(parts[0]->is("multipart", "alternative"));
    EXPECT_EQ(children(parsed, *parts[0]).size(), 2u);

    EXPECT_TRUE(parts[1]->is("application", "pdf"));
    EXPECT_EQ(parts[1]->encoding, TransferEncoding::base64);
    EXPECT_EQ(decoded(parsed, *parts[1]), pdf);
    auto disposition = parsed.content_disposition(*parts[1]);
    EXPECT_EQ(disposition.kind, "attachment");
    EXPECT_EQ(disposition.params.get("filename"), "r\xc3\xa9sum\xc3\xa9.pdf");
    EXPECT_EQ(parsed.content_type(*parts[1]).params.get("name"), "r\xc3\xa9sum\xc3\xa9.pdf");

    EXPECT_EQ(parsed.content_disposition(*parts[2]).kind, "inline");
    EXPECT_EQ(parsed.header(*parts[2]).value("Content-ID"), "<notes@example.test>");
    EXPECT_EQ(decoded(parsed, *parts[2]), "plain notes\r\n");
}

TEST(Builder, NonAsciiHeadersAreEncodedWordsThatDecodeBack) {
    Draft draft = simple_draft();
    draft.from = {"J\xc3\xb8rn M\xc3\xbcller", "jorn@example.test"};
    draft.subject = "R\xc3\xa9union \xe2\x82\xac 2026 \xe2\x80\x94 ordre du jour";
    std::string message = build(draft);
    EXPECT_TRUE(is_ascii(message));
    Message parsed = Message::parse(message);
    EXPECT_EQ(decode_encoded_words(parsed.header().value("Subject")), draft.subject);
    auto from = mailboxes(parse_address_list(parsed.header().value("From")));
    ASSERT_EQ(from.size(), 1u);
    EXPECT_EQ(from[0].name, draft.from.name);
    EXPECT_EQ(from[0].addr_spec(), "jorn@example.test");
}

TEST(Builder, AddressListsParseBack) {
    Draft draft = simple_draft();
    draft.to = {
        {"Smith, John", "john@example.test"}, {"", "jane@example.test"}, {"Q. Public", "q@example.test"}};
    draft.cc = {{"", "odd local@example.test"}};
    std::string bytes = build(draft);
    Message parsed = Message::parse(bytes);
    auto to = mailboxes(parse_address_list(parsed.header().value("To")));
    ASSERT_EQ(to.size(), 3u);
    EXPECT_EQ(to[0].name, "Smith, John");
    EXPECT_EQ(to[0].addr_spec(), "john@example.test");
    EXPECT_EQ(to[1].addr_spec(), "jane@example.test");
    EXPECT_EQ(to[2].name, "Q. Public");
    auto cc = mailboxes(parse_address_list(parsed.header().value("Cc")));
    ASSERT_EQ(cc.size(), 1u);
    EXPECT_EQ(cc[0].local_part, "odd local");
}

TEST(Builder, Utf8HeadersWriteRawUtf8) {
    Draft draft = simple_draft();
    draft.subject = "caf\xc3\xa9";
    draft.to = {{"", "j\xc3\xb8rn@example.test"}};
    BuildOptions options;
    options.utf8_headers = true;
    std::string message = build(draft, options);
    EXPECT_NE(message.find("Subject: caf\xc3\xa9\r\n"), std::string::npos);
    EXPECT_NE(message.find("To: j\xc3\xb8rn@example.test\r\n"), std::string::npos);
}

TEST(Builder, NonAsciiAddressNeedsUtf8Headers) {
    Draft draft = simple_draft();
    draft.to = {{"", "j\xc3\xb8rn@example.test"}};
    EXPECT_FALSE(build_message(draft, {}, test_env()).ok());
}

TEST(Builder, BccIsLeftOutButStaysAnEnvelopeRecipient) {
    Draft draft = simple_draft();
    draft.to.clear();
    draft.bcc = {{"", "hidden@example.test"}};
    std::string bytes = build(draft);
    Message parsed = Message::parse(bytes);
    EXPECT_FALSE(parsed.header().has("Bcc"));
    EXPECT_EQ(parsed.header().value("To"), "undisclosed-recipients:;");
    EXPECT_EQ(envelope_recipients(draft), std::vector<std::string>{"hidden@example.test"});
}

TEST(Builder, EnvelopeRecipientsAreDeduplicatedInOrder) {
    Draft draft = simple_draft();
    draft.cc = {{"", "carol@example.test"}, {"", "bob@example.test"}};
    draft.bcc = {{"", "dave@example.test"}};
    EXPECT_EQ(envelope_recipients(draft),
              (std::vector<std::string>{"bob@example.test", "carol@example.test", "dave@example.test"}));
}

TEST(Builder, RejectsFieldsItOwnsAndBadIds) {
    Draft draft = simple_draft();
    draft.extra_fields = {{"Content-Type", "text/html"}};
    EXPECT_FALSE(build_message(draft, {}, test_env()).ok());
    draft = simple_draft();
    draft.in_reply_to = "<a@b>\r\nBcc: x@y";
    EXPECT_FALSE(build_message(draft, {}, test_env()).ok());
    draft = simple_draft();
    draft.message_id = "no-brackets@example.test";
    EXPECT_FALSE(build_message(draft, {}, test_env()).ok());
}

TEST(Builder, ExtraFieldsCannotInjectHeaders) {
    Draft draft = simple_draft();
    draft.extra_fields = {{"X-Note", "a\r\nBcc: evil@example.test"}};
    std::string bytes = build(draft);
    Message parsed = Message::parse(bytes);
    EXPECT_FALSE(parsed.header().has("Bcc"));
    EXPECT_EQ(decode_encoded_words(parsed.header().value("X-Note")), "a\r\nBcc: evil@example.test");
}

TEST(Builder, ThreadingFieldsAreWritten) {
    Draft draft = simple_draft();
    draft.in_reply_to = "<parent@example.test>";
    draft.references = "<root@example.test> <parent@example.test>";
    std::string bytes = build(draft);
    Message parsed = Message::parse(bytes);
    EXPECT_EQ(parsed.header().value("In-Reply-To"), "<parent@example.test>");
    EXPECT_EQ(parsed.header().value("References"), "<root@example.test> <parent@example.test>");
}

TEST(Builder, EnforcesAttachmentAndSizeLimits) {
    Draft draft = simple_draft();
    BuildOptions options;
    options.max_attachments = 1;
    draft.attachments.resize(2);
    auto too_many = build_message(draft, options, test_env());
    ASSERT_FALSE(too_many.ok());
    EXPECT_EQ(too_many.error().code, Errc::limit_exceeded);
    draft.attachments.resize(1);
    draft.attachments[0].data = std::string(4000, 'x');
    options.max_message_octets = 1000;
    auto too_big = build_message(draft, options, test_env());
    ASSERT_FALSE(too_big.ok());
    EXPECT_EQ(too_big.error().code, Errc::limit_exceeded);
}

TEST(Builder, BoundaryIsRegeneratedWhenContentHoldsIt) {
    // The first boundary this env generates is written into the text on purpose.
    std::string first = generate_boundary(test_env());
    Draft draft = simple_draft();
    draft.text = "--" + first + "\r\n";
    draft.html = "<p>x</p>";
    std::string bytes = build(draft);
    Message parsed = Message::parse(bytes);
    std::string boundary = parsed.content_type(parsed.root()).params.get("boundary");
    EXPECT_FALSE(boundary.empty());
    EXPECT_NE(boundary, first);
    auto parts = children(parsed, parsed.root());
    ASSERT_EQ(parts.size(), 2u);
    EXPECT_EQ(decoded(parsed, *parts[0]), *draft.text);
}

TEST(Builder, SevenBitMessageAttachmentStaysIdentityEncoded) {
    Draft draft = simple_draft();
    std::string inner = "From: x@example.test\r\nSubject: inner\r\n\r\nbody\r\n";
    draft.attachments.push_back({"", "message/rfc822", inner, false, ""});
    std::string bytes = build(draft);
    Message parsed = Message::parse(bytes);
    auto parts = children(parsed, parsed.root());
    ASSERT_EQ(parts.size(), 2u);
    EXPECT_EQ(parts[1]->kind, PartKind::message);
    EXPECT_EQ(parts[1]->encoding, TransferEncoding::seven_bit);
    EXPECT_EQ(parsed.body(*parts[1]), inner);
}

TEST(Builder, EnclosedMessageWithBareLfIsMadeCanonical) {
    Draft draft = simple_draft();
    std::string inner = "From: x@example.test\nSubject: inner\n\nline one\nline two\n";
    draft.attachments.push_back({"", "message/rfc822", inner, false, ""});
    std::string bytes = build(draft);
    Message parsed = Message::parse(bytes);
    auto parts = children(parsed, parsed.root());
    ASSERT_EQ(parts.size(), 2u);
    ASSERT_EQ(parts[1]->kind, PartKind::message);
    const Part& enclosed = parsed.parts()[parts[1]->first_child];
    EXPECT_EQ(parsed.header(enclosed).value("Subject"), "inner");
    EXPECT_EQ(parsed.body(enclosed), "line one\r\nline two\r\n");
}

TEST(Builder, EnclosedMessageWithABinaryPartGetsItReencoded) {
    Draft draft = simple_draft();
    std::string blob("\x00\x01\n\r\x02", 5);
    std::string inner =
        "Subject: inner\r\nContent-Transfer-Encoding: binary\r\n"
        "Content-Type: application/octet-stream\r\n\r\n" +
        blob;
    draft.attachments.push_back({"", "message/rfc822", inner, false, ""});
    BuildOptions options;
    options.transport = Transport::eight_bit;  // 8BITMIME still has no room for binary (RFC 6152)
    std::string bytes = build(draft, options);
    Message parsed = Message::parse(bytes);
    auto parts = children(parsed, parsed.root());
    ASSERT_EQ(parts.size(), 2u);
    const Part& enclosed = parsed.parts()[parts[1]->first_child];
    EXPECT_EQ(enclosed.encoding, TransferEncoding::base64);
    EXPECT_EQ(decoded(parsed, enclosed), blob);
}

// Any content the builder takes comes back from the parser unchanged, in pure 7-bit with short lines.
TEST(Builder, RandomContentRoundTripsThroughTheParser) {
    std::mt19937 rng(5322);
    const std::vector<std::string> pieces = {
        "a",  "b",  " ", "\r\n", ".", "=", "-", "From ", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
        "\t", "--", "x"};
    for (int n = 0; n < 200; ++n) {
        Draft draft = simple_draft();
        std::string text;
        std::size_t count = rng() % 400;
        for (std::size_t i = 0; i < count; ++i) text += pieces[rng() % pieces.size()];
        draft.text = text;
        draft.subject = text.substr(0, std::min<std::size_t>(text.size(), 200));
        if (!is_valid_utf8(draft.subject)) draft.subject.clear();
        for (auto& c : draft.subject)
            if (c == '\r' || c == '\n') c = ' ';
        if (rng() % 2) draft.html = "<pre>" + text + "</pre>";
        std::string blob(rng() % 3000, '\0');
        for (char& c : blob) c = static_cast<char>(rng());
        if (rng() % 2) draft.attachments.push_back({"data.bin", "application/octet-stream", blob, false, ""});

        std::string message = build(draft, {}, static_cast<std::uint64_t>(n));
        ASSERT_TRUE(is_ascii(message));
        ASSERT_LE(longest_line(message), 78u);
        ASSERT_TRUE(every_line_ends_crlf(message));
        Message parsed = Message::parse(message);
        ASSERT_FALSE(parsed.limit_hit());
        // Unfolding trims white space at both ends of a field value (RFC 5322 2.2.3), so spaces there go.
        std::string_view subject = draft.subject;
        while (subject.starts_with(' ')) subject.remove_prefix(1);
        while (subject.ends_with(' ')) subject.remove_suffix(1);
        EXPECT_EQ(decode_encoded_words(parsed.header().value("Subject")), subject);

        const Part* text_part = &parsed.root();
        const Part* html_part = nullptr;
        const Part* blob_part = nullptr;
        if (!draft.attachments.empty()) {
            auto mixed = children(parsed, parsed.root());
            ASSERT_EQ(mixed.size(), 2u);
            text_part = mixed[0];
            blob_part = mixed[1];
        }
        if (draft.html) {
            auto alternative = children(parsed, *text_part);
            ASSERT_EQ(alternative.size(), 2u);
            text_part = alternative[0];
            html_part = alternative[1];
        }
        std::string text_back = decoded(parsed, *text_part);
        // A single top-level 7bit part ends with the message's final CRLF, which the text may lack.
        if (text_part == &parsed.root() && !text.ends_with("\r\n") && text_back.ends_with("\r\n"))
            text_back.resize(text_back.size() - 2);
        EXPECT_EQ(text_back, text);
        if (html_part) {
            EXPECT_EQ(decoded(parsed, *html_part), *draft.html);
        }
        if (blob_part) {
            EXPECT_EQ(decoded(parsed, *blob_part), blob);
        }
    }
}

// ---- transfer choice and dot-stuffing

TEST(TransferChoice, PicksIdentityWhenTheBytesFit) {
    EXPECT_EQ(choose_transfer_encoding("plain\r\n", true, Transport::seven_bit), TransferEncoding::seven_bit);
    EXPECT_EQ(choose_transfer_encoding("caf\xc3\xa9\r\n", true, Transport::eight_bit),
              TransferEncoding::eight_bit);
    EXPECT_EQ(choose_transfer_encoding(std::string("\0", 1), false, Transport::binary),
              TransferEncoding::binary);
}

TEST(TransferChoice, PicksQuotedPrintableForMostlyAsciiAndBase64Otherwise) {
    EXPECT_EQ(choose_transfer_encoding("caf\xc3\xa9 au lait\r\n", true, Transport::seven_bit),
              TransferEncoding::quoted_printable);
    EXPECT_EQ(choose_transfer_encoding("\xd0\x9f\xd1\x80\xd0\xb8\r\n", true, Transport::seven_bit),
              TransferEncoding::base64);
    EXPECT_EQ(choose_transfer_encoding(std::string("ab\0cd", 5), false, Transport::eight_bit),
              TransferEncoding::base64);  // NUL never travels as 8bit (RFC 2045 2.8)
    EXPECT_EQ(choose_transfer_encoding(std::string(1200, 'a'), true, Transport::eight_bit),
              TransferEncoding::quoted_printable);  // a line over 998 octets
}

TEST(DotStuffing, DoublesLeadingDotsAndEndsWithCrlfDotCrlf) {
    EXPECT_EQ(smtp_data_payload(".hidden\r\n..two\r\nmid.dle\r\n.\r\n"),
              "..hidden\r\n...two\r\nmid.dle\r\n..\r\n.\r\n");
    EXPECT_EQ(smtp_data_payload("no final break"), "no final break\r\n.\r\n");
    EXPECT_EQ(smtp_data_payload(""), ".\r\n");
}

TEST(DotStuffing, TurnsBareLineBreaksIntoCrlf) {
    EXPECT_EQ(dot_stuff("a\nb\rc\r\n.d"), "a\r\nb\r\nc\r\n..d\r\n");
}

TEST(DotStuffing, ChunkBoundariesDoNotMatter) {
    std::string message = "line\r\n.dot\r\n\r\n.\r\nend\r";
    std::string whole = smtp_data_payload(message);
    for (std::size_t cut = 0; cut <= message.size(); ++cut) {
        DotStuffer stuffer;
        std::string out;
        stuffer.feed(std::string_view(message).substr(0, cut), out);
        stuffer.feed(std::string_view(message).substr(cut), out);
        stuffer.finish(out);
        EXPECT_EQ(out, whole) << "cut at " << cut;
    }
}

// IMAP APPEND stores bare LF as CRLF and leaves a lone CR alone, as Dovecot serves such messages.
TEST(Builder, TurnsBareLfIntoCrlfAndLeavesLoneCr) {
    for (std::string_view text : {"", "a", "a\r\n", "a\r\nb\r\n\r\n", "\r\n", "a\rb", "\r"}) {
        EXPECT_FALSE(has_bare_lf(text)) << text;
        EXPECT_EQ(bare_lf_to_crlf(text), text);
    }
    EXPECT_TRUE(has_bare_lf("\n"));
    EXPECT_TRUE(has_bare_lf("a\r\nb\n"));
    EXPECT_EQ(bare_lf_to_crlf("\n"), "\r\n");
    EXPECT_EQ(bare_lf_to_crlf("a\nb\r\nc\rd\n\n"), "a\r\nb\r\nc\rd\r\n\r\n");
    EXPECT_EQ(bare_lf_to_crlf("\r\n\n\r\r\n"), "\r\n\r\n\r\r\n");
}

}  // namespace
}  // namespace magpie::mail
