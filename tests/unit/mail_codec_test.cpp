// Codecs of the message library: base64 (RFC 4648, RFC 2045 6.8), quoted-printable (RFC 2045 6.7),
// RFC 2047 encoded words, RFC 2231 parameters and header folding, with RFC examples and random round trips.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>

#include "base/strings.h"
#include "mail/address.h"
#include "mail/base64.h"
#include "mail/decode.h"
#include "mail/encoded_word.h"
#include "mail/header_encode.h"
#include "mail/mime_params.h"
#include "mail/quoted_printable.h"

namespace magpie::mail {
namespace {

std::string random_bytes(std::mt19937& rng, std::size_t max_size, std::string_view favoured = "") {
    std::string s(rng() % (max_size + 1), '\0');
    for (char& c : s) {
        if (!favoured.empty() && rng() % 3 == 0) {
            c = favoured[rng() % favoured.size()];
        } else {
            c = static_cast<char>(rng() & 0xff);
        }
    }
    return s;
}

// Longest line of a CRLF-broken text, CR and LF not counted.
std::size_t longest_line(std::string_view text) {
    std::size_t longest = 0;
    for (auto line : split(text, '\n')) {
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        longest = std::max(longest, line.size());
    }
    return longest;
}

bool only_7bit_printable_lines(std::string_view text) {
    for (std::size_t i = 0; i < text.size(); ++i) {
        auto c = static_cast<unsigned char>(text[i]);
        if (c == '\r') {
            if (i + 1 >= text.size() || text[i + 1] != '\n') return false;
            ++i;
            continue;
        }
        if (c == '\n' || c >= 0x7f || (c < 0x20 && c != '\t')) return false;
    }
    return true;
}

// ---- base64

TEST(Base64, EncodesRfc4648Vectors) {
    EXPECT_EQ(base64_encode(""), "");
    EXPECT_EQ(base64_encode("f"), "Zg==");
    EXPECT_EQ(base64_encode("fo"), "Zm8=");
    EXPECT_EQ(base64_encode("foo"), "Zm9v");
    EXPECT_EQ(base64_encode("foob"), "Zm9vYg==");
    EXPECT_EQ(base64_encode("fooba"), "Zm9vYmE=");
    EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
}

TEST(Base64, DecodesRfc4648Vectors) {
    EXPECT_EQ(base64_decode("Zg=="), "f");
    EXPECT_EQ(base64_decode("Zm8="), "fo");
    EXPECT_EQ(base64_decode("Zm9vYmFy"), "foobar");
    EXPECT_EQ(base64_decoded_size("Zm9vYmE="), 5u);
}

TEST(Base64, BreaksLinesWithCrlfAt76AndNotAtTheEnd) {
    std::string encoded = base64_encode(std::string(114, 'x'));  // exactly two lines of 76
    ASSERT_EQ(encoded.size(), 76u + 2 + 76);
    EXPECT_EQ(encoded.substr(76, 2), "\r\n");
    EXPECT_NE(encoded.back(), '\n');
    EXPECT_EQ(base64_encode(std::string(114, 'x'), 0).find('\r'), std::string::npos);
}

TEST(Base64, DecoderSkipsWhitespaceAndJunk) {
    EXPECT_EQ(base64_decode("Zm9v\r\nYm\tFy"), "foobar");
    EXPECT_EQ(base64_decode(" Zm9v!!Ym*Fy "), "foobar");
    EXPECT_EQ(base64_decoded_size("Zm9v\r\nYm\tFy"), 6u);
}

TEST(Base64, DecoderStopsAtPadding) {
    EXPECT_EQ(base64_decode("Zg==Zm9v"), "f");
    EXPECT_EQ(base64_decoded_size("Zg==Zm9v"), 1u);
}

TEST(Base64, DecoderToleratesMissingPaddingAndDropsDanglingSextet) {
    EXPECT_EQ(base64_decode("Zm8"), "fo");
    EXPECT_EQ(base64_decode("Zg"), "f");
    EXPECT_EQ(base64_decode("Zm9vY"), "foo");
    EXPECT_EQ(base64_decoded_size("Zm9vY"), 3u);
}

TEST(Base64, RoundTripsRandomBytesAtEveryLineLength) {
    std::mt19937 rng(2045);
    for (int n = 0; n < 2000; ++n) {
        std::string bytes = random_bytes(rng, 400);
        for (std::size_t line_length : {0u, 4u, 7u, 76u}) {
            std::string encoded = base64_encode(bytes, line_length);
            ASSERT_EQ(base64_decode(encoded), bytes);
            ASSERT_EQ(base64_decoded_size(encoded), bytes.size());
            ASSERT_EQ(base64_encoded_size(bytes.size(), line_length), encoded.size());
            if (line_length != 0) {
                ASSERT_LE(longest_line(encoded), line_length);
            }
        }
    }
}

// ---- quoted-printable

// IMAP BINARY of a large part decodes it a slice at a time: every split of every body, valid or odd,
// gives exactly what decoding it whole gives.
TEST(TransferDecoder, AnySplitDecodesLikeTheWhole) {
    std::mt19937 random(12);
    const std::string octets = "AZaz09+/=  \t\r\n=3D=0=\r\nx";
    for (TransferEncoding encoding : {TransferEncoding::base64, TransferEncoding::quoted_printable,
                                      TransferEncoding::eight_bit}) {
        for (int round = 0; round < 3000; ++round) {
            std::string body;
            const std::size_t size = random() % 60;
            for (std::size_t i = 0; i < size; ++i) body.push_back(octets[random() % octets.size()]);
            if (round % 3 == 0 && encoding == TransferEncoding::base64) body = base64_encode(body + body, 8);
            const std::string whole = decode_transfer(body, encoding);
            TransferDecoder decoder(encoding);
            std::string out;
            std::size_t at = 0;
            while (at < body.size()) {
                const std::size_t n = std::min<std::size_t>(body.size() - at, random() % 7);
                decoder.feed(std::string_view(body).substr(at, n), at + n == body.size(), out);
                at += n;
            }
            if (body.empty()) decoder.feed("", true, out);
            ASSERT_EQ(out, whole) << static_cast<int>(encoding) << " [" << body << "]";
        }
    }
}

TEST(QuotedPrintable, DecodesRfc2045SoftLineBreaks) {
    // RFC 2045 6.7 rule 5 example.
    EXPECT_EQ(qp_decode("Now's the time =\r\nfor all folk to come=\r\n to the aid of their country."),
              "Now's the time for all folk to come to the aid of their country.");
}

TEST(QuotedPrintable, DecodesEscapesInEitherCase) {
    EXPECT_EQ(qp_decode("caf=C3=A9 caf=c3=a9"), "caf\xc3\xa9 caf\xc3\xa9");
}

TEST(QuotedPrintable, KeepsBadEscapesLiterally) {
    EXPECT_EQ(qp_decode("a=ZZb=4"), "a=ZZb=4");
    EXPECT_EQ(qp_decode("100% = sure"), "100% = sure");
}

TEST(QuotedPrintable, SoftBreakMayHaveTrailingWhitespace) {
    EXPECT_EQ(qp_decode("abc= \t\r\ndef"), "abcdef");
    EXPECT_EQ(qp_decode("abc=\ndef"), "abcdef");
}

TEST(QuotedPrintable, DropsTransportAddedTrailingWhitespace) {
    EXPECT_EQ(qp_decode("abc   \r\ndef\t\r\n"), "abc\r\ndef\r\n");
}

TEST(QuotedPrintable, EncodesEqualsAnd8BitAndKeepsCrlf) {
    EXPECT_EQ(qp_encode("a=b\r\ncaf\xc3\xa9\r\n"), "a=3Db\r\ncaf=C3=A9\r\n");
}

TEST(QuotedPrintable, EncodesWhitespaceBeforeLineBreaks) {
    EXPECT_EQ(qp_encode("end \r\nx\t"), "end=20\r\nx=09");
}

TEST(QuotedPrintable, ProtectsLeadingDotAndFrom) {
    EXPECT_EQ(qp_encode(".\r\nFrom here\r\nFromage"), "=2E\r\n=46rom here\r\nFromage");
}

TEST(QuotedPrintable, NoEncodedLineStartsWithTwoHyphens) {
    // After a hard break and after a soft break alike: such a line could read as a multipart delimiter.
    EXPECT_EQ(qp_encode("--b--\r\n-- \r\n-x"), "=2D-b--\r\n=2D-=20\r\n-x");
    std::string text = std::string(74, 'a') + "\xff--b--";
    EXPECT_EQ(qp_encode(text), std::string(74, 'a') + "=\r\n=FF--b--");
    text = std::string(75, 'a') + "--b--";
    EXPECT_EQ(qp_encode(text), std::string(75, 'a') + "=\r\n=2D-b--");
    EXPECT_EQ(qp_decode(qp_encode(text)), text);
}

TEST(QuotedPrintable, BinaryModeEncodesLineBreaks) {
    EXPECT_EQ(qp_encode("a\r\nb", true), "a=0D=0Ab");
    EXPECT_EQ(qp_encode("a\nb"), "a=0Ab");  // a bare LF is data even in text mode
}

TEST(QuotedPrintable, SoftBreaksKeepLinesWithin76) {
    std::string text(200, 'a');
    std::string encoded = qp_encode(text);
    EXPECT_LE(longest_line(encoded), 76u);
    EXPECT_EQ(encoded.substr(75, 3), "=\r\n");
    EXPECT_EQ(qp_decode(encoded), text);
    // A hard-broken line of exactly 76 octets needs no soft break.
    EXPECT_EQ(qp_encode(std::string(76, 'b') + "\r\n"), std::string(76, 'b') + "\r\n");
}

TEST(QuotedPrintable, NeverSplitsAnEscape) {
    std::string text(74, 'a');
    text += "\xff\xff";
    std::string encoded = qp_encode(text);
    EXPECT_EQ(encoded, std::string(74, 'a') + "=\r\n=FF=FF");
}

TEST(QuotedPrintable, RoundTripsRandomBytesInBothModes) {
    std::mt19937 rng(2045);
    for (int n = 0; n < 3000; ++n) {
        std::string bytes = random_bytes(rng, 300, "\r\n \t.=Fa");
        for (bool binary : {false, true}) {
            std::string encoded = qp_encode(bytes, binary);
            ASSERT_EQ(qp_decode(encoded), bytes);
            ASSERT_LE(longest_line(encoded), 76u);
            ASSERT_TRUE(only_7bit_printable_lines(encoded));
            if (binary) {
                for (std::size_t p = encoded.find("\r\n"); p != std::string::npos;
                     p = encoded.find("\r\n", p + 2))
                    ASSERT_EQ(encoded[p - 1], '=');  // only soft breaks
            }
        }
    }
}

// ---- RFC 2047 encoding

TEST(EncodedWords, LeavesPlainAsciiAlone) {
    EXPECT_EQ(*encode_unstructured("Hello world"), "Hello world");
    EXPECT_EQ(*encode_phrase("John Smith"), "John Smith");
}

TEST(EncodedWords, EncodesOnlyTheNonAsciiWords) {
    // RFC 2047 8 style: "Keld Jørn Simonsen".
    EXPECT_EQ(*encode_phrase("Keld J\xc3\xb8rn Simonsen"), "Keld =?UTF-8?Q?J=C3=B8rn?= Simonsen");
    EXPECT_EQ(*encode_unstructured("caf\xc3\xa9 ok"), "=?UTF-8?Q?caf=C3=A9?= ok");
}

TEST(EncodedWords, AdjacentNonAsciiWordsShareOneRunWithTheirSpace) {
    EXPECT_EQ(*encode_unstructured("caf\xc3\xa9 cr\xc3\xa8me"), "=?UTF-8?Q?caf=C3=A9_cr=C3=A8me?=");
    EXPECT_EQ(*encode_unstructured("caf\xc3\xa9  cr\xc3\xa8me x"), "=?UTF-8?Q?caf=C3=A9__cr=C3=A8me?= x");
}

TEST(EncodedWords, ChoosesBase64WhenShorter) {
    std::string cyrillic = "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82";  // Привет
    EXPECT_EQ(*encode_unstructured(cyrillic), "=?UTF-8?B?" + base64_encode(cyrillic, 0) + "?=");
}

TEST(EncodedWords, WordsAreAtMost75OctetsAndNeverSplitACharacter) {
    std::string text;
    for (int i = 0; i < 60; ++i) text += "\xe2\x82\xac";  // €
    std::string encoded = *encode_unstructured(text);
    for (auto word : split(encoded, ' ')) {
        EXPECT_LE(word.size(), 75u);
        ASSERT_TRUE(word.starts_with("=?UTF-8?B?"));
        std::string decoded = base64_decode(word.substr(10, word.size() - 12));
        EXPECT_EQ(decoded.size() % 3, 0u);  // whole three-octet characters only
        EXPECT_TRUE(is_valid_utf8(decoded));
    }
}

TEST(EncodedWords, EncodesTextThatLooksLikeAnEncodedWord) {
    EXPECT_EQ(*encode_unstructured("=?x?Q?y?="), "=?UTF-8?B?PT94P1E/eT89?=");
    EXPECT_EQ(*encode_unstructured("see =?x?Q?y?= and"), "see =?UTF-8?B?PT94P1E/eT89?= and");
}

TEST(EncodedWords, EncodesControlCharactersSoNoHeaderCanBeInjected) {
    std::string encoded = *encode_unstructured("a\r\nBcc: x@y");
    EXPECT_EQ(encoded.find_first_of("\r\n"), std::string::npos);
}

TEST(EncodedWords, PhraseQUsesOnlyTheRestrictedSet) {
    std::string encoded = *encode_phrase("M\xc3\xbcller, Hans");
    EXPECT_EQ(encoded, "=?UTF-8?Q?M=C3=BCller=2C?= Hans");
}

TEST(EncodedWords, Utf8HeadersKeepRawUtf8) {
    EXPECT_EQ(*encode_unstructured("caf\xc3\xa9", true), "caf\xc3\xa9");
    EXPECT_EQ(*encode_phrase("J\xc3\xb8rn", true), "J\xc3\xb8rn");
}

TEST(EncodedWords, RejectsInvalidUtf8) {
    EXPECT_FALSE(encode_unstructured("\xff").ok());
    EXPECT_FALSE(encode_phrase("\xc3").ok());
}

TEST(EncodedWords, QuotesPhrasesWithSpecials) {
    EXPECT_EQ(*encode_phrase("Smith, John"), "\"Smith, John\"");
    EXPECT_EQ(*encode_phrase("John Q. Public"), "\"John Q. Public\"");
    EXPECT_EQ(*encode_phrase("say \"hi\""), "\"say \\\"hi\\\"\"");
}

// ---- addresses

TEST(Addresses, FormatsMailboxWithAndWithoutName) {
    EXPECT_EQ(*format_mailbox({"", "jdoe@example.org"}), "jdoe@example.org");
    EXPECT_EQ(*format_mailbox({"John Doe", "jdoe@example.org"}), "John Doe <jdoe@example.org>");
    EXPECT_EQ(*format_mailbox_list({{"", "a@x.test"}, {"B", "b@x.test"}}), "a@x.test, B <b@x.test>");
}

TEST(Addresses, QuotesLocalPartThatIsNotADotAtom) {
    EXPECT_EQ(*format_addr_spec("john doe@example.org"), "\"john doe\"@example.org");
    EXPECT_EQ(*format_addr_spec("a..b@example.org"), "\"a..b\"@example.org");
    EXPECT_EQ(*format_addr_spec("\"quoted\"@example.org"), "\"quoted\"@example.org");
    EXPECT_EQ(*format_addr_spec("jdoe@[192.0.2.1]"), "jdoe@[192.0.2.1]");
}

TEST(Addresses, LocalPartWithQuotesAtItsEndsIsQuotedUnlessItIsOneQuotedString) {
    // Quotes at both ends do not make one quoted-string: written as it was, this would be three addresses.
    auto spec = format_addr_spec("\"a\", evil@x.test, \"b\"@example.org");
    ASSERT_TRUE(spec.ok());
    EXPECT_EQ(*spec, "\"\\\"a\\\", evil@x.test, \\\"b\\\"\"@example.org");
    auto list = parse_address_list(*spec);
    ASSERT_EQ(list.size(), 1u);
    ASSERT_EQ(list[0].members.size(), 1u);
    EXPECT_EQ(list[0].members[0].domain, "example.org");
    // A closing quote escaped by the backslash before it does not close.
    EXPECT_EQ(*format_addr_spec("\"a\\\"@example.org"), "\"\\\"a\\\\\\\"\"@example.org");
    EXPECT_EQ(*format_addr_spec("\"a\\\"b\"@example.org"), "\"a\\\"b\"@example.org");
}

TEST(Addresses, RejectsMalformedAndNonAsciiWithoutSmtputf8) {
    EXPECT_FALSE(format_addr_spec("nobody").ok());
    EXPECT_FALSE(format_addr_spec("@example.org").ok());
    EXPECT_FALSE(format_addr_spec("a@").ok());
    EXPECT_FALSE(format_addr_spec("a@bad domain").ok());
    EXPECT_FALSE(format_addr_spec("a\r\n@example.org").ok());
    EXPECT_FALSE(format_addr_spec("j\xc3\xb8rn@example.org").ok());
    EXPECT_EQ(*format_addr_spec("j\xc3\xb8rn@example.org", true), "j\xc3\xb8rn@example.org");
}

// ---- RFC 2231 parameters

TEST(Parameters, WritesTokensPlainAndOthersQuoted) {
    EXPECT_EQ(*encode_parameter("charset", "utf-8"), std::vector<std::string>{"charset=utf-8"});
    EXPECT_EQ(*encode_parameter("filename", "my file.txt"),
              std::vector<std::string>{"filename=\"my file.txt\""});
    EXPECT_EQ(join_parameters("text/plain", *encode_parameter("charset", "utf-8")),
              "text/plain; charset=utf-8");
}

TEST(Parameters, EncodesNonAsciiWithCharsetPerRfc2231) {
    EXPECT_EQ(*encode_parameter("filename", "\xc3\xa9t\xc3\xa9.pdf"),
              std::vector<std::string>{"filename*=UTF-8''%C3%A9t%C3%A9.pdf"});
}

TEST(Parameters, SplitsLongValuesIntoNumberedContinuations) {
    std::string value(150, 'a');
    auto segments = *encode_parameter("filename", value);
    ASSERT_GE(segments.size(), 2u);
    std::string joined;
    for (std::size_t i = 0; i < segments.size(); ++i) {
        std::string head = "filename*" + std::to_string(i) + "=\"";
        ASSERT_TRUE(segments[i].starts_with(head)) << segments[i];
        EXPECT_LE(segments[i].size(), 76u);
        joined += segments[i].substr(head.size(), segments[i].size() - head.size() - 1);
    }
    EXPECT_EQ(joined, value);
}

TEST(Parameters, ExtendedContinuationsCarryCharsetOnlyInTheFirst) {
    std::string value;
    for (int i = 0; i < 40; ++i) value += "\xc3\xa9";
    auto segments = *encode_parameter("filename", value);
    ASSERT_GE(segments.size(), 2u);
    EXPECT_TRUE(segments[0].starts_with("filename*0*=UTF-8''%C3%A9"));
    EXPECT_TRUE(segments[1].starts_with("filename*1*=%C3%A9"));
    for (const auto& segment : segments) {
        EXPECT_LE(segment.size(), 76u);
        // Never cut inside a character: each segment ends after a whole "%C3%A9".
        EXPECT_TRUE(segment.ends_with("%C3%A9")) << segment;
    }
}

// Decodes what encode_parameter wrote (the subset of RFC 2231 it writes), to check round trips.
std::string decode_written_parameter(const std::vector<std::string>& segments) {
    std::string out;
    for (const auto& segment : segments) {
        std::size_t eq = segment.find('=');
        std::string_view name(segment.data(), eq);
        std::string_view value = std::string_view(segment).substr(eq + 1);
        if (name.ends_with("*")) {
            if (std::size_t q = value.find("''");
                q != std::string_view::npos && !name.ends_with("*1*") &&
                (name.ends_with("*0*") || name.find('*') == name.size() - 1)) {
                value.remove_prefix(q + 2);
            }
            for (std::size_t i = 0; i < value.size(); ++i) {
                if (value[i] == '%') {
                    out.push_back(
                        static_cast<char>(std::stoi(std::string(value.substr(i + 1, 2)), nullptr, 16)));
                    i += 2;
                } else {
                    out.push_back(value[i]);
                }
            }
        } else if (!value.empty() && value.front() == '"') {
            for (std::size_t i = 1; i + 1 < value.size(); ++i) {
                if (value[i] == '\\') ++i;
                out.push_back(value[i]);
            }
        } else {
            out.append(value);
        }
    }
    return out;
}

TEST(Parameters, RoundTripsRandomUtf8Values) {
    std::mt19937 rng(2231);
    const std::vector<std::string> pieces = {"a",  "Z", " ", "\"",       "\\",           "%",
                                             "'",  "*", ";", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                             "\t", "="};
    for (int n = 0; n < 2000; ++n) {
        std::string value;
        std::size_t count = rng() % 60 + 1;
        for (std::size_t i = 0; i < count; ++i) value += pieces[rng() % pieces.size()];
        auto segments = encode_parameter("filename", value);
        ASSERT_TRUE(segments.ok());
        for (const auto& segment : *segments) {
            ASSERT_TRUE(is_ascii(segment));
            ASSERT_LE(segment.size(), 76u) << segment;
        }
        ASSERT_EQ(decode_written_parameter(*segments), value);
    }
}

// ---- folding

TEST(Folding, ShortFieldsStayOnOneLine) {
    EXPECT_EQ(*fold_field("Subject", "hello"), "Subject: hello\r\n");
    EXPECT_EQ(*fold_field("Subject", ""), "Subject:\r\n");
}

TEST(Folding, FoldsBeforeWhitespaceWithin78) {
    std::string value;
    for (int i = 0; i < 40; ++i) value += "word" + std::to_string(i) + " ";
    value.pop_back();
    std::string folded = *fold_field("Subject", value);
    EXPECT_LE(longest_line(folded), 78u);
    // Unfolding (RFC 5322 2.2.3: remove CRLF before WSP) gives the line back.
    std::string unfolded = folded.substr(0, folded.size() - 2);
    for (std::size_t p; (p = unfolded.find("\r\n")) != std::string::npos;) unfolded.erase(p, 2);
    EXPECT_EQ(unfolded, "Subject: " + value);
}

TEST(Folding, PrefersBreaksOutsideQuotedStrings) {
    std::string value;
    for (int i = 0; i < 8; ++i)
        value += "\"Person Number " + std::to_string(i) + "\" <p" + std::to_string(i) + "@example.org>, ";
    value.resize(value.size() - 2);
    std::string folded = *fold_field("To", value);
    EXPECT_LE(longest_line(folded), 78u);
    for (auto line : split(folded, '\n')) {
        EXPECT_EQ(std::count(line.begin(), line.end(), '"') % 2, 0) << line;  // never cut inside quotes
    }
}

TEST(Folding, FoldsInsideAQuotedStringOnlyWhenNothingElseFits) {
    // RFC 5322 3.2.4: FWS is allowed in a quoted-string, and unfolding gives the same string back.
    std::string value = "\"" + std::string(30, 'a') + " " + std::string(60, 'b') + "\" <x@example.org>";
    EXPECT_EQ(*fold_field("From", value),
              "From: \"" + std::string(30, 'a') + "\r\n " + std::string(60, 'b') + "\" <x@example.org>\r\n");
}

TEST(Folding, AStrayQuoteInUnstructuredTextDoesNotStopFolding) {
    std::string value =
        "say \"" + std::string(50, 'a') + " " + std::string(50, 'b') + " " + std::string(50, 'c');
    EXPECT_LE(longest_line(*fold_field("Subject", value)), 78u);
}

TEST(Folding, BreaksInsideLongRunsOfWhiteSpaceButNeverLeavesABlankLine) {
    std::string value = "a" + std::string(200, ' ') + "b";
    std::string folded = *fold_field("Subject", value);
    // RFC 5322 3.2.2: no line may be white space only, so the run is split between the two words' lines.
    EXPECT_LE(folded.find("\r\n"), 78u);
    EXPECT_LE(longest_line(folded), 998u);
    std::string unfolded = folded.substr(0, folded.size() - 2);
    for (std::size_t p; (p = unfolded.find("\r\n")) != std::string::npos;) unfolded.erase(p, 2);
    EXPECT_EQ(unfolded, "Subject: " + value);
    std::string_view lines(folded.data(), folded.size() - 2);
    for (auto line : split(lines, '\n')) EXPECT_NE(line.find_first_not_of(" \t\r"), std::string_view::npos);
}

TEST(Folding, HugeWhiteSpaceRunsFoldInLinearTime) {
    // A megabyte of spaces must not take quadratic time; it cannot fold within 998, so it is refused.
    auto folded = fold_field("Subject", "a" + std::string(1 << 20, ' ') + "b");
    ASSERT_FALSE(folded.ok());
    EXPECT_EQ(folded.error().code, Errc::limit_exceeded);
}

TEST(Folding, AcceptsLongUnbreakableRunsUpTo998AndRejectsLonger) {
    EXPECT_TRUE(fold_field("X-Long", std::string(990, 'a')).ok());
    auto too_long = fold_field("X-Long", std::string(1000, 'a'));
    ASSERT_FALSE(too_long.ok());
    EXPECT_EQ(too_long.error().code, Errc::limit_exceeded);
}

TEST(Folding, RejectsLineBreaksInValues) {
    EXPECT_FALSE(fold_field("Subject", "a\r\nBcc: evil@example.org").ok());
}

TEST(Folding, LongSubjectOfOneWordIsEncodedSoItCanFold) {
    std::string word(300, 'x');
    std::string folded = *fold_field("Subject", *encode_unstructured(word));
    EXPECT_LE(longest_line(folded), 78u);
}

TEST(EncodedWords, RoundTripsRandomUtf8ThroughQAndB) {
    // Decodes our own encoded words with the base64 / QP decoders, to check the split is lossless.
    std::mt19937 rng(2047);
    const std::vector<std::string> pieces = {
        "a", " ", "_", "=", "?", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\t", "(", "\""};
    for (int n = 0; n < 2000; ++n) {
        std::string text;
        std::size_t count = rng() % 50 + 1;
        for (std::size_t i = 0; i < count; ++i) text += pieces[rng() % pieces.size()];
        for (bool phrase : {false, true}) {
            std::string encoded = encode_words(text, phrase);
            std::string decoded;
            for (auto word : split(encoded, ' ')) {
                ASSERT_LE(word.size(), 75u);
                ASSERT_TRUE(word.ends_with("?="));
                std::string_view payload = word.substr(10, word.size() - 12);
                if (word.starts_with("=?UTF-8?B?")) {
                    decoded += base64_decode(payload);
                } else {
                    for (std::size_t i = 0; i < payload.size(); ++i) {
                        if (payload[i] == '_') {
                            decoded.push_back(' ');
                        } else if (payload[i] == '=') {
                            decoded.push_back(static_cast<char>(
                                std::stoi(std::string(payload.substr(i + 1, 2)), nullptr, 16)));
                            i += 2;
                        } else {
                            decoded.push_back(payload[i]);
                        }
                    }
                }
            }
            ASSERT_EQ(decoded, text);
        }
    }
}

// ---- round trips through the library's own readers (mail-parse's decoders)

std::string random_utf8(std::mt19937& rng, std::size_t max_pieces) {
    static const std::vector<std::string> pieces = {
        "a",       "Z", "0", " ", " ", "_",  "=",  "?",  "\"",       "\\",           "(",
        "%",       "'", "*", ";", ",", "\t", "=?", "?=", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
        "\xd0\x9f"};
    std::string text;
    std::size_t count = rng() % max_pieces + 1;
    for (std::size_t i = 0; i < count; ++i) text += pieces[rng() % pieces.size()];
    return text;
}

TEST(RoundTrip, UnstructuredTextDecodesBackWithTheParsersDecoder) {
    std::mt19937 rng(20472);
    for (int n = 0; n < 3000; ++n) {
        std::string text = random_utf8(rng, 40);
        // Readers trim a field value's ends (RFC 5322 2.2.3); the encoder writes the rest unchanged.
        std::string_view expected = trim(text);
        if (expected.empty()) continue;
        auto encoded = encode_unstructured(expected);
        ASSERT_TRUE(encoded.ok());
        ASSERT_TRUE(is_ascii(*encoded));
        ASSERT_EQ(decode_encoded_words(*encoded), expected) << *encoded;
    }
}

TEST(RoundTrip, ParametersDecodeBackWithTheParsersRfc2231Reader) {
    std::mt19937 rng(22312);
    for (int n = 0; n < 3000; ++n) {
        std::string value = random_utf8(rng, 60);
        auto segments = encode_parameter("filename", value);
        ASSERT_TRUE(segments.ok());
        std::string field = join_parameters("attachment", *segments);
        ParameterList params = parse_parameters(field.substr(field.find(';')));
        ASSERT_EQ(params.get("filename"), value) << field;
    }
}

// A value that looks like RFC 2047 words (fuzz_mail_build found the long one): readers decode such words in
// plain parameters, so it is written in the extended form, short or continued, and reads back as itself.
TEST(RoundTrip, ParameterValuesWithEncodedWordsComeBackAsWritten) {
    for (std::string value : {std::string("=?utf-8?Q?caf=C3=A9?=.txt"),
                              std::string("\"a\"--=_eb7d49b4bc1484a05646=?!?Q?y25b0555da3119b4bc1484a056?=Q46?\?!yfb?125e")}) {
        auto segments = encode_parameter("filename", value);
        ASSERT_TRUE(segments.ok());
        std::string field = join_parameters("attachment", *segments);
        EXPECT_NE(field.find("*=UTF-8''"), std::string::npos) << field;
        EXPECT_EQ(parse_parameters(field.substr(field.find(';'))).get("filename"), value) << field;
    }
}

TEST(RoundTrip, Rfc2231ExampleValueComesBack) {
    // RFC 2231 4: the example value "This is ***fun***", here written by us and read by the parser.
    auto segments = encode_parameter("title", "This is ***fun***");
    ASSERT_TRUE(segments.ok());
    EXPECT_EQ(*segments, std::vector<std::string>{"title=\"This is ***fun***\""});
    EXPECT_EQ(parse_parameters("; " + segments->front()).get("title"), "This is ***fun***");
}

}  // namespace
}  // namespace magpie::mail
