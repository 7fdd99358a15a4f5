// 8-bit to 7-bit conversion for a peer without 8BITMIME (RFC 6152): the output is 7-bit with short lines,
// and every part decodes to exactly what it did before.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "base/strings.h"
#include "mail/base64.h"
#include "mail/builder.h"
#include "mail/decode.h"
#include "mail/downgrade.h"
#include "mail/mime.h"

namespace magpie::mail {
namespace {

std::size_t longest_line(std::string_view text) {
    std::size_t longest = 0;
    for (auto line : split(text, '\n')) {
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        longest = std::max(longest, line.size());
    }
    return longest;
}

// Every leaf's type and decoded body, in tree order: what a reader sees.
std::vector<std::pair<std::string, std::string>> reader_view(std::string_view bytes) {
    Message message = Message::parse(bytes);
    std::vector<std::pair<std::string, std::string>> out;
    for (const Part& part : message.parts()) {
        if (part.kind != PartKind::leaf) continue;
        std::string type = to_lower(part.type) + "/" + to_lower(part.subtype);
        out.emplace_back(type, decode_body(message, part));
    }
    return out;
}

std::string downgrade_ok(std::string_view message) {
    auto result = downgrade_to_7bit(message);
    EXPECT_TRUE(result.ok()) << (result.ok() ? "" : result.error().message);
    if (!result.ok()) return {};
    EXPECT_TRUE(is_ascii(*result));
    EXPECT_LE(longest_line(*result), 998u);
    EXPECT_EQ(reader_view(*result), reader_view(message));
    return *result;
}

TEST(Downgrade, LeavesSevenBitMessagesUntouched) {
    std::string message = "From: a@example.test\r\nSubject: hi\r\n\r\nplain\r\n";
    EXPECT_FALSE(needs_7bit_downgrade(message));
    EXPECT_EQ(*downgrade_to_7bit(message), message);
}

TEST(Downgrade, ReencodesEightBitTextAsQuotedPrintable) {
    std::string message =
        "From: a@example.test\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "Subject: hi\r\n"
        "\r\n"
        "Caf\xc3\xa9 cr\xc3\xa8me\r\n";
    EXPECT_TRUE(needs_7bit_downgrade(message));
    std::string out = downgrade_ok(message);
    EXPECT_EQ(out,
              "From: a@example.test\r\n"
              "Content-Type: text/plain; charset=utf-8\r\n"
              "Subject: hi\r\n"
              "Content-Transfer-Encoding: quoted-printable\r\n"
              "\r\n"
              "Caf=C3=A9 cr=C3=A8me\r\n");
}

TEST(Downgrade, MissingTransferEncodingFieldIsAdded) {
    std::string message = "Subject: x\r\n\r\n\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82";
    std::string out = downgrade_ok(message);
    EXPECT_NE(out.find("Content-Transfer-Encoding: base64\r\n"), std::string::npos);
}

TEST(Downgrade, ConvertsOnlyTheEightBitPartsOfAMultipart) {
    std::string seven = "Content-Type: text/plain\r\n\r\nascii only\r\n";
    std::string message =
        "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "preamble \xff\r\n"
        "--b1\r\n" +
        seven +
        "--b1\r\n"
        "Content-Type: text/plain; charset=iso-8859-1\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "caf\xe9\r\n"
        "--b1\r\n"
        "Content-Type: application/octet-stream\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        "\r\n" +
        std::string("\x00\x01\n\r\xff", 5) +
        "\r\n"
        "--b1--\r\n"
        "epilogue \xfe\r\n";
    std::string out = downgrade_ok(message);
    EXPECT_NE(out.find("--b1\r\n" + seven), std::string::npos);  // byte for byte
    EXPECT_NE(out.find("preamble ?\r\n"), std::string::npos);
    EXPECT_NE(out.find("epilogue ?\r\n"), std::string::npos);
    EXPECT_NE(out.find("Content-Transfer-Encoding: 7bit\r\n\r\npreamble"), std::string::npos);
    EXPECT_NE(out.find("caf=E9"), std::string::npos);
    Message parsed = Message::parse(out);
    ASSERT_EQ(parsed.parts().size(), 4u);
    EXPECT_EQ(parsed.parts()[3].encoding, TransferEncoding::base64);
}

TEST(Downgrade, ConvertsInsideAttachedMessages) {
    std::string inner =
        "From: b@example.test\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "na\xc3\xafve\r\n";
    std::string message =
        "Content-Type: multipart/mixed; boundary=b\r\n"
        "\r\n"
        "--b\r\n"
        "Content-Type: message/rfc822\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n" +
        inner + "--b--\r\n";
    std::string out = downgrade_ok(message);
    Message parsed = Message::parse(out);
    ASSERT_EQ(parsed.parts().size(), 3u);
    EXPECT_EQ(parsed.parts()[1].kind, PartKind::message);
    EXPECT_EQ(parsed.parts()[1].encoding, TransferEncoding::seven_bit);
    EXPECT_EQ(parsed.parts()[2].encoding, TransferEncoding::quoted_printable);
}

TEST(Downgrade, OpensMessageGlobalWithSevenBitHeader) {
    std::string message =
        "Content-Type: message/global\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "Subject: ascii\r\nContent-Transfer-Encoding: 8bit\r\n\r\nb\xc3\xb6"
        "dy\r\n";
    std::string out = downgrade_ok(message);
    EXPECT_EQ(Message::parse(out).parts().size(), 2u);
}

TEST(Downgrade, EncodesMessageGlobalWithUtf8HeaderAsAWhole) {
    std::string inner = "Subject: \xc3\xa9t\xc3\xa9\r\n\r\nbody\r\n";
    std::string message = "Content-Type: message/global\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + inner;
    auto out = downgrade_to_7bit(message);
    ASSERT_TRUE(out.ok());
    EXPECT_TRUE(is_ascii(*out));
    Message parsed = Message::parse(*out);
    ASSERT_EQ(parsed.parts().size(), 1u);  // RFC 6532 3.5: an encoded message/global is opaque
    EXPECT_NE(parsed.root().encoding, TransferEncoding::eight_bit);
    EXPECT_EQ(decode_body(parsed, parsed.root()), inner);
}

TEST(Downgrade, SoftBreaksOverlongSevenBitLines) {
    std::string message = "Subject: x\r\n\r\n" + std::string(1500, 'a') + "\r\n";
    EXPECT_TRUE(needs_7bit_downgrade(message));
    std::string out = downgrade_ok(message);
    EXPECT_NE(out.find("Content-Transfer-Encoding: quoted-printable"), std::string::npos);
}

TEST(Downgrade, ASoftBreakNeverMakesABoundaryDelimiter) {
    // Found by fuzz_mail_build: an unterminated multipart whose last leaf ends with "--b--" in mid-line.
    // Re-encoded, a soft break fell just before it, and the new line "--b--" closed the multipart early,
    // cutting the leaf short. The same holds for a delimiter of any enclosing multipart.
    std::string message = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n" +
                          std::string(72, 'x') + "\xe9--b--\r\n";
    downgrade_ok(message);
    message = "Content-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\n"
              "Content-Type: multipart/alternative; boundary=inner\r\n\r\n--inner\r\n\r\n" +
              std::string(60, 'y') + "\xe9" + std::string(12, 'z') + "--outer--\r\n--inner--\r\n--outer--\r\n";
    downgrade_ok(message);
}

TEST(Downgrade, ReencodesAQuotedPrintableBodyWithRaw8BitOctets) {
    std::string message = "Content-Transfer-Encoding: quoted-printable\r\n\r\nraw \xe9 and =E9\r\n";
    downgrade_ok(message);
}

TEST(Downgrade, RefusesEightBitHeaders) {
    auto result = downgrade_to_7bit("Subject: caf\xc3\xa9\r\n\r\ncaf\xc3\xa9\r\n");
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code, Errc::invalid_argument);
}

TEST(Downgrade, RefusesEightBitUnderAnUnknownEncoding) {
    EXPECT_FALSE(downgrade_to_7bit("Content-Transfer-Encoding: x-uuencode\r\n\r\n\xff\r\n").ok());
}

TEST(Downgrade, RefusesTreesBeyondTheParseLimits) {
    std::string message = "Content-Type: multipart/mixed; boundary=b\r\n\r\n";
    for (int i = 0; i < 10; ++i) message += "--b\r\nContent-Type: text/plain\r\n\r\n\xff\r\n";
    message += "--b--\r\n";
    ParseLimits limits;
    limits.max_parts = 4;
    auto result = downgrade_to_7bit(message, limits);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code, Errc::limit_exceeded);
}

TEST(Downgrade, AddsTheFieldAfterAnMboxFromLine) {
    downgrade_ok("From someone Mon Jan 1 00:00:00 2024\nb\xff\n");
    downgrade_ok("From someone Mon Jan 1 00:00:00 2024\r\n\r\nb\xff\n");
    downgrade_ok("\r\nSubject: looks like a field \xff\r\n");
}

TEST(Downgrade, HeadersWithoutBlankLineKeepTheirStructure) {
    downgrade_ok(
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n"
        "no header line \xb8\r\n--b--\r\n");
    downgrade_ok("Subject: x\r\nbody starts here: \xff\r\n");
}

TEST(Downgrade, ReencodesABinaryPartEvenWhenItsOctetsAre7Bit) {
    // SMTP without BINARYMIME would turn the bare LF into CRLF (RFC 5321 2.3.8), so it must be encoded.
    std::string message =
        "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\nab\ncd";
    EXPECT_FALSE(needs_7bit_downgrade(message));
    std::string out = downgrade_ok(message);
    EXPECT_EQ(out.find("binary"), std::string::npos);
}

TEST(Downgrade, KeepsBareLfLineEndsOfTheOriginal) {
    std::string message = "Content-Type: text/plain\nContent-Transfer-Encoding: 8bit\n\ncaf\xc3\xa9\n";
    downgrade_ok(message);
}

// What the builder writes for an 8BITMIME peer, downgraded, reads the same as what it writes for 7-bit.
TEST(Downgrade, RandomEightBitMessagesReadTheSameAfterDowngrade) {
    std::mt19937 rng(6152);
    const std::vector<std::string> pieces = {"a",  " ", "\r\n", ".", "=", "\xc3\xa9", "\xe2\x82\xac",
                                             "\t", "-"};
    for (int n = 0; n < 150; ++n) {
        Draft draft;
        draft.from = {"", "a@example.test"};
        draft.to = {{"", "b@example.test"}};
        std::string text;
        std::size_t count = rng() % 600;
        for (std::size_t i = 0; i < count; ++i) text += pieces[rng() % pieces.size()];
        if (rng() % 5 == 0) text += std::string(1200, 'x');
        draft.text = text;
        if (rng() % 2) draft.html = "<p>" + text + "</p>";
        if (rng() % 2) {
            std::string blob(rng() % 500, '\0');
            for (char& c : blob) c = static_cast<char>(rng());
            draft.attachments.push_back({"b.bin", "application/octet-stream", blob, false, ""});
        }
        BuildEnv env;
        env.now = 1;
        auto state = std::make_shared<std::uint64_t>(n);
        env.random = [state]() { return ++*state * 0x9e3779b97f4a7c15ULL; };
        BuildOptions options;
        options.transport = Transport::eight_bit;
        auto built = build_message(draft, options, env);
        ASSERT_TRUE(built.ok());
        downgrade_ok(*built);
    }
}

// Re-encoding what a literal8 APPEND brings (RFC 3516 4.4) so that no plain literal ever carries a NUL.
using namespace std::string_literals;

// The bytes of BINARY[n] for every leaf, in tree order: what must not change.
std::vector<std::string> binary_view(std::string_view bytes) {
    Message message = Message::parse(bytes);
    std::vector<std::string> out;
    for (const Part& part : message.parts()) {
        if (part.kind == PartKind::leaf) out.push_back(decode_transfer(message.body(part), part.encoding));
    }
    return out;
}

std::string reencoded(std::string_view message) {
    auto out = reencode_binary_parts(message);
    EXPECT_TRUE(out.has_value());
    if (!out) return {};
    EXPECT_EQ(binary_view(*out), binary_view(message));
    EXPECT_EQ(out->find('\0'), std::string::npos);
    return *out;
}

// Issue 11: a large binary part is encoded in slices of whole lines, streamed in pieces; the pieces make
// exactly the one-piece encoding (76-character lines, no final break).
TEST(ReencodeBinary, ALargePartStreamedInSlicesIsTheOnePieceEncoding) {
    std::string binary;
    for (int i = 0; binary.size() < 200 * 1024 + 7; ++i) binary += static_cast<char>(i * 31 % 256);
    const std::string head = "Subject: big\r\nContent-Transfer-Encoding: binary\r\n\r\n";
    std::string streamed;
    std::size_t pieces = 0;
    EXPECT_TRUE(reencode_binary_parts(head + binary, [&](std::string_view piece) {
        streamed.append(piece);
        ++pieces;
    }));
    EXPECT_GT(pieces, 4u);
    EXPECT_EQ(streamed, "Subject: big\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64_encode(binary, 76));
    EXPECT_EQ(reencoded(head + binary), streamed);
    // Nothing to re-encode: the message is written as it is.
    std::string same;
    EXPECT_FALSE(reencode_binary_parts("Subject: x\r\n\r\nplain\r\n", [&](std::string_view p) { same.append(p); }));
    EXPECT_EQ(same, "Subject: x\r\n\r\nplain\r\n");
}

TEST(ReencodeBinary, BinaryPartWithNulBecomesBase64WhereItStands) {
    std::string message =
        "Subject: nul\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        "--b\r\nContent-Transfer-Encoding: binary\r\nContent-Type: application/octet-stream\r\n\r\n"
        "a\0b\r\nc\r\n--b--\r\n"s;
    EXPECT_EQ(reencoded(message),
              "Subject: nul\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
              "--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
              "--b\r\nContent-Transfer-Encoding: base64\r\nContent-Type: application/octet-stream\r\n\r\n"
              "YQBiDQpj\r\n--b--\r\n");  // base64 of "a\0b\r\nc": the CRLF before the boundary is the boundary's
}

TEST(ReencodeBinary, BinaryPartsWithoutNulAreReencodedTooAsDovecotDoes) {
    std::string message = "Content-Type: application/x; name=a\r\nContent-Transfer-Encoding: BINARY\r\n\r\nab\rc\n";
    EXPECT_EQ(reencoded(message), "Content-Type: application/x; name=a\r\nContent-Transfer-Encoding: base64\r\n\r\nYWINYwo=");
}

TEST(ReencodeBinary, LongBodiesGetLinesOf76WithNoFinalBreak) {
    std::string blob(200, '\0');
    for (std::size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>(i * 7);
    std::string out = reencoded("Content-Transfer-Encoding: binary\r\n\r\n" + blob);
    std::string body = out.substr(out.find("\r\n\r\n") + 4);
    EXPECT_EQ(longest_line(body), 76u);
    EXPECT_FALSE(body.ends_with("\n"));
    EXPECT_EQ(base64_decode(body), blob);
}

TEST(ReencodeBinary, NulUnderAnIdentityLabelIsReencodedAndRelabelled) {
    // 7bit and 8bit exclude NUL (RFC 2045 2.7, 2.8): such a body is binary in fact.
    EXPECT_EQ(reencoded("Content-Transfer-Encoding: 8bit\nContent-Type: text/plain\n\nx\0y\n"s),
              "Content-Transfer-Encoding: base64\nContent-Type: text/plain\n\neAB5Cg==");
    // No label at all: the field is added after the last field, before the blank line.
    EXPECT_EQ(reencoded("Subject: s\r\nContent-Type: text/plain\r\n\r\nx\0y"s),
              "Subject: s\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\neAB5");
    // A second Content-Transfer-Encoding field goes: the part has one label.
    EXPECT_EQ(reencoded("Content-Transfer-Encoding: binary\r\nX: 1\r\nContent-Transfer-Encoding: 7bit\r\n\r\n\0"s),
              "Content-Transfer-Encoding: base64\r\nX: 1\r\n\r\nAA==");
}

TEST(ReencodeBinary, HeaderWithoutBlankLineGetsOne) {
    // The header ends at a line that is not a field: that line is body, so a blank line must come first.
    EXPECT_EQ(reencoded("Content-Transfer-Encoding: binary\r\nnot a field\0\r\n"s),
              "Content-Transfer-Encoding: base64\r\n\r\nbm90IGEgZmllbGQADQo=");
    // A MIME part with no header at all and no blank line.
    std::string message = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nno header\0\r\n--b--\r\n"s;
    EXPECT_EQ(reencoded(message),
              "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\n"
              "bm8gaGVhZGVyAA==\r\n--b--\r\n");
}

TEST(ReencodeBinary, ReencodesInsideEncapsulatedMessages) {
    std::string message =
        "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        "Subject: in\r\nContent-Transfer-Encoding: binary\r\n\r\n\0\0\0"s;
    // The container keeps its label (RFC 2046 5.2.1: message/rfc822 is never encoded); its body is re-encoded.
    EXPECT_EQ(reencoded(message),
              "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: binary\r\n\r\n"
              "Subject: in\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA");
}

TEST(ReencodeBinary, NothingToDoGivesNothing) {
    EXPECT_FALSE(reencode_binary_parts("Subject: x\r\n\r\nplain\r\n"));
    // 8-bit header fields and 8-bit bodies are valid in a literal: kept, and nothing to do.
    EXPECT_FALSE(reencode_binary_parts("Subject: Gr\xC3\xBC\xC3\x9F\xC3\xA9\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\xC3\xA9\r\n"));
    // A multipart labelled binary is not a body to encode (RFC 2045 6.4).
    EXPECT_FALSE(reencode_binary_parts(
        "Content-Type: multipart/mixed; boundary=b\r\nContent-Transfer-Encoding: binary\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n"));
    // A NUL in a header field, a preamble or an unknown encoding cannot be re-encoded without changing
    // what a reader sees: left for the server to replace when it writes the literal.
    EXPECT_FALSE(reencode_binary_parts("Subject: a\0b\r\n\r\nx\r\n"s));
    EXPECT_FALSE(reencode_binary_parts(
        "Content-Type: multipart/mixed; boundary=b\r\n\r\npre\0\r\n--b\r\n\r\nx\r\n--b--\r\n"s));
    EXPECT_FALSE(reencode_binary_parts("Content-Transfer-Encoding: x-uue\r\n\r\n\0"s));
    EXPECT_FALSE(reencode_binary_parts(""));
}

TEST(ReencodeBinary, StructureAgreesWithTheBytesAfterwards) {
    std::string message =
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n" +
        std::string(100, '\0') + "\r\n--b--\r\n";
    std::string out = reencoded(message);
    Message m = Message::parse(out);
    const Part& part = m.parts()[1];
    EXPECT_EQ(part.encoding, TransferEncoding::base64);
    EXPECT_EQ(decode_body(m, part), std::string(100, '\0'));
    EXPECT_EQ(m.body(part), base64_encode(std::string(100, '\0'), 76));
}

}  // namespace
}  // namespace magpie::mail
