#include <gtest/gtest.h>

#include "imap/mutf7.h"

namespace magpie::imap {
namespace {

std::string decode(std::string_view in) {
    auto result = mutf7_decode(in);
    EXPECT_TRUE(result) << in;
    return result ? *result : std::string();
}

std::string encode(std::string_view in) {
    auto result = mutf7_encode(in);
    EXPECT_TRUE(result) << in;
    return result ? *result : std::string();
}

// RFC 3501 5.1.3: "~peter/mail/&U,BTFw-/&ZeVnLIqe-" is "~peter/mail/台北/日本語".
TEST(Mutf7, DecodesRfc3501Example) {
    EXPECT_EQ(decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
              "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
}

TEST(Mutf7, EncodesRfc3501Example) {
    EXPECT_EQ(encode("~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"),
              "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
}

TEST(Mutf7, AmpersandIsAmpersandDash) {
    EXPECT_EQ(encode("Tom & Jerry"), "Tom &- Jerry");
    EXPECT_EQ(decode("Tom &- Jerry"), "Tom & Jerry");
    EXPECT_EQ(decode("&-&-"), "&&");
}

TEST(Mutf7, PlainAsciiPassesThrough) {
    EXPECT_EQ(encode("INBOX/Sent Items"), "INBOX/Sent Items");
    EXPECT_EQ(decode("INBOX/Sent Items"), "INBOX/Sent Items");
    EXPECT_EQ(encode(""), "");
}

TEST(Mutf7, EncodesSupplementaryPlaneAsSurrogatePair) {
    EXPECT_EQ(encode("\xF0\x9F\x98\x80"), "&2D3eAA-");
    EXPECT_EQ(decode("&2D3eAA-"), "\xF0\x9F\x98\x80");
}

TEST(Mutf7, EncodesOneRunForAdjacentNonAscii) {
    EXPECT_EQ(encode("caf\xC3\xA9\xE2\x98\xBA!"), "caf&AOkmOg-!");
    EXPECT_EQ(decode("caf&AOkmOg-!"), "caf\xC3\xA9\xE2\x98\xBA!");
}

TEST(Mutf7, RoundTripsMixedNames) {
    for (std::string_view name : {"Entw\xC3\xBC"
                                  "rfe",
                                  "a&b\xE2\x98\xBA&c", "\xE6\x97\xA5/\xE6\x97\xA5 &-x"}) {
        EXPECT_EQ(decode(encode(name)), name);
    }
}

TEST(Mutf7, RejectsNonCanonicalAndMalformedInput) {
    EXPECT_FALSE(mutf7_decode("&AGE-"));        // "a" must be written directly
    EXPECT_FALSE(mutf7_decode("&Jjo-&Jjo-"));   // two shifts must be one
    EXPECT_FALSE(mutf7_decode("&Jjo"));         // unterminated
    EXPECT_FALSE(mutf7_decode("&Jjp-"));        // non-zero padding bits
    EXPECT_FALSE(mutf7_decode("&Jj-"));         // partial UTF-16 unit
    EXPECT_FALSE(mutf7_decode("&U/BTFw-"));     // "/" is not in the modified alphabet
    EXPECT_FALSE(mutf7_decode("&2D0-"));        // lone high surrogate
    EXPECT_FALSE(mutf7_decode("&3gA-"));        // lone low surrogate
    EXPECT_FALSE(mutf7_decode("caf\xC3\xA9"));  // raw 8-bit
    EXPECT_FALSE(mutf7_decode("a\tb"));         // control octet
}

TEST(Mutf7, EncodeRejectsInvalidUtf8) {
    EXPECT_FALSE(mutf7_encode("\xC0\xAF"));
    EXPECT_FALSE(mutf7_encode("\xED\xA0\x80"));
}

}  // namespace
}  // namespace magpie::imap
