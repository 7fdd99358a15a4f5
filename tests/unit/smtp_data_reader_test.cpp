// smtp::DataReader: end of data, dot-unstuffing, bare line endings and size bounds, byte by byte.
#include <gtest/gtest.h>

#include "smtp/data_reader.h"

namespace magpie::smtp {
namespace {

DataReaderOptions dot_options(BareLineEnding policy = BareLineEnding::reject) {
    return DataReaderOptions{
        .max_text_line = 1000, .max_message_size = 1000, .bare_line_ending = policy, .dot_stuffed = true};
}

TEST(SmtpDataReader, StopsRightAfterTheEndMarker) {
    DataReader reader(dot_options());
    std::string_view input = "a\r\n.\r\nNEXT";
    EXPECT_EQ(reader.consume(input), 6u);
    EXPECT_TRUE(reader.done());
    EXPECT_EQ(reader.take_data(), "a\r\n");
}

TEST(SmtpDataReader, EndMarkerFoundAcrossOneByteFeeds) {
    DataReader reader(dot_options());
    std::string_view input = "x\r\n..\r\n.\r\n";
    for (char c : input) {
        ASSERT_FALSE(reader.done());
        EXPECT_EQ(reader.consume(std::string_view(&c, 1)), 1u);
    }
    EXPECT_TRUE(reader.done());
    EXPECT_EQ(reader.take_data(), "x\r\n.\r\n");
}

TEST(SmtpDataReader, BareLineEndingsNeverEndTheData) {
    for (std::string_view fake :
         {"\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n", "\r\n.\r", "\r\n.\r\r\n", "\r\n.\n\r\n"}) {
        DataReader reader(dot_options());
        std::string input = "a" + std::string(fake) + "b";
        EXPECT_EQ(reader.consume(input), input.size());
        EXPECT_FALSE(reader.done());
        EXPECT_TRUE(reader.saw_bare_line_ending());
    }
}

TEST(SmtpDataReader, CrLfDotCrLfAfterBareCrStillEnds) {
    // "a\r" + "\r\n.\r\n": the CR before the real CRLF is bare, the CRLF.CRLF is the real end.
    DataReader reader(dot_options());
    EXPECT_EQ(reader.consume("a\r\r\n.\r\n"), 7u);
    EXPECT_TRUE(reader.done());
    EXPECT_TRUE(reader.saw_bare_line_ending());
}

TEST(SmtpDataReader, SizeIsBoundedInMemory) {
    DataReader reader(DataReaderOptions{.max_text_line = 100000,
                                        .max_message_size = 10,
                                        .bare_line_ending = BareLineEnding::reject,
                                        .dot_stuffed = true});
    std::string big(5000, 'x');
    reader.consume(big);
    reader.consume("\r\n.\r\n");
    EXPECT_TRUE(reader.done());
    EXPECT_TRUE(reader.too_big());
    EXPECT_EQ(reader.size(), 5002u);
    EXPECT_LE(reader.take_data().size(), 10u);
}

// Content of a message already sure to be refused is counted, not kept (issue 12 C: memory stays bounded).
TEST(SmtpDataReader, NothingIsKeptOnceTheMessageIsSureToBeRefused) {
    DataReader long_line(DataReaderOptions{.max_text_line = 100,
                                           .max_message_size = 1 << 20,
                                           .bare_line_ending = BareLineEnding::reject,
                                           .dot_stuffed = true});
    long_line.consume("short\r\n" + std::string(200, 'l') + "\r\n" + std::string(100000, 'm') + "\r\n.\r\n");
    EXPECT_TRUE(long_line.done());
    EXPECT_TRUE(long_line.line_too_long());
    EXPECT_EQ(long_line.size(), 7u + 202 + 100002);
    EXPECT_LE(long_line.take_data().size(), 7u + 100);

    DataReader bare(dot_options());
    bare.consume("a\nb" + std::string(900, 'n') + "\r\n.\r\n");
    EXPECT_TRUE(bare.saw_bare_line_ending());
    EXPECT_LE(bare.take_data().size(), 2u);
}

TEST(SmtpDataReader, LineLengthCountsTheStuffingDot) {
    DataReader reader(DataReaderOptions{.max_text_line = 5,
                                        .max_message_size = 1000,
                                        .bare_line_ending = BareLineEnding::reject,
                                        .dot_stuffed = true});
    reader.consume("abc\r\n..x\r\n");
    EXPECT_FALSE(reader.line_too_long());
    reader.consume("..xy\r\n");
    EXPECT_TRUE(reader.line_too_long());
}

// Lines longer than the fast path's search window, and an 8-bit octet past it, read like short ones.
TEST(SmtpDataReader, LongLinesAndLateEightBitOctets) {
    DataReader reader(DataReaderOptions{.max_text_line = 10000, .max_message_size = 100000,
                                        .bare_line_ending = BareLineEnding::normalize, .dot_stuffed = true});
    std::string line(3000, 'x');
    std::string late = std::string(1500, 'y') + "\xc3\xa9";
    std::string input = line + "\r\n" + late + "\r\nbare\nlf\r\n.\r\n";
    EXPECT_EQ(reader.consume(input), input.size());
    EXPECT_TRUE(reader.done());
    EXPECT_TRUE(reader.saw_8bit());
    EXPECT_FALSE(reader.line_too_long());
    EXPECT_EQ(reader.take_data(), line + "\r\n" + late + "\r\nbare\r\nlf\r\n");
}

TEST(SmtpDataReader, ChunkModeKeepsDotsAndEndsLastLine) {
    DataReader reader(DataReaderOptions{.max_text_line = 1000,
                                        .max_message_size = 1000,
                                        .bare_line_ending = BareLineEnding::reject,
                                        .dot_stuffed = false});
    EXPECT_EQ(reader.consume(".\r\n..\r\nend"), 10u);
    EXPECT_FALSE(reader.done());
    reader.finish();
    EXPECT_FALSE(reader.saw_bare_line_ending());
    EXPECT_EQ(reader.take_data(), ".\r\n..\r\nend\r\n");
}

TEST(SmtpDataReader, ChunkModeTrailingCrIsBare) {
    DataReader reader(DataReaderOptions{.max_text_line = 1000,
                                        .max_message_size = 1000,
                                        .bare_line_ending = BareLineEnding::normalize,
                                        .dot_stuffed = false});
    reader.consume("a\r");
    reader.finish();
    EXPECT_TRUE(reader.saw_bare_line_ending());
    EXPECT_EQ(reader.take_data(), "a\r\n");
}

TEST(SmtpDataReader, EightBitIsNoted) {
    DataReader reader(dot_options());
    reader.consume("plain\r\n");
    EXPECT_FALSE(reader.saw_8bit());
    reader.consume("\xe2\x82\xac\r\n");
    EXPECT_TRUE(reader.saw_8bit());
}

}  // namespace
}  // namespace magpie::smtp
