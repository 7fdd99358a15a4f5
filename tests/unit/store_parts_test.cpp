// The store's small parts: blob ids and blob files, flag sets, and address normalization.
#include <unistd.h>

#include <gtest/gtest.h>

#include "store/address.h"
#include "store/blob.h"
#include "store/flags.h"
#include "store/sqlite/inline_content.h"
#include "store/sqlite/states_cache.h"
#include "store/sqlite/rows.h"

namespace magpie::store {
namespace {

// ---- blobs ----

TEST(BlobId, IsLowerHexSha256) {
    // FIPS 180-2 appendix B.1 and the empty string.
    EXPECT_EQ(blob_id_of("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(blob_id_of(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(BlobId, ValidOnlyAsSixtyFourLowerHexDigits) {
    EXPECT_TRUE(is_valid_blob_id(blob_id_of("x")));
    EXPECT_FALSE(is_valid_blob_id(""));
    EXPECT_FALSE(is_valid_blob_id(std::string(63, 'a')));
    EXPECT_FALSE(is_valid_blob_id(std::string(65, 'a')));
    EXPECT_FALSE(is_valid_blob_id(std::string(64, 'A')));
    EXPECT_FALSE(is_valid_blob_id("../" + std::string(61, 'a')));
}

// ---- the states SELECT lists, kept per mailbox ----

std::vector<MessageState> states_of(std::initializer_list<std::pair<std::uint32_t, std::uint64_t>> rows) {
    std::vector<MessageState> states;
    for (auto [uid, modseq] : rows) states.push_back({uid, modseq, {}});
    return states;
}

std::vector<std::pair<std::uint32_t, std::uint64_t>> rows_of(const std::vector<MessageState>& states) {
    std::vector<std::pair<std::uint32_t, std::uint64_t>> rows;
    for (const auto& s : states) rows.emplace_back(s.uid, s.modseq);
    return rows;
}

TEST(StatesCache, ChangesReplaceJoinAndLeaveInUidOrder) {
    auto base = states_of({{1, 5}, {2, 6}, {4, 7}, {7, 8}});
    base[1].flags = {"\\Seen"};
    auto changed = states_of({{2, 9}, {5, 10}, {9, 11}});
    changed[0].flags = {"\\Flagged"};
    auto result = sqlite::apply_changes(base, changed, {1, 3, 7});
    EXPECT_EQ(rows_of(result), (std::vector<std::pair<std::uint32_t, std::uint64_t>>{{2, 9}, {4, 7}, {5, 10}, {9, 11}}));
    EXPECT_EQ(result[0].flags, std::vector<std::string>{"\\Flagged"});
    // Nothing changed: the same states; everything expunged: none.
    EXPECT_EQ(rows_of(sqlite::apply_changes(base, {}, {})), rows_of(base));
    EXPECT_TRUE(sqlite::apply_changes(base, {}, {1, 2, 4, 7}).empty());
    // Arrivals into an empty listing, and an expunged UID that arrived after the snapshot (never listed).
    EXPECT_EQ(rows_of(sqlite::apply_changes({}, states_of({{3, 4}}), {2})),
              (std::vector<std::pair<std::uint32_t, std::uint64_t>>{{3, 4}}));
}

TEST(StatesCache, KeepsTheNewestSnapshotWithinItsBound) {
    sqlite::StatesCache cache(10);
    auto snapshot = [](std::uint32_t uidvalidity, std::uint64_t modseq, std::size_t messages) {
        auto s = std::make_shared<sqlite::StatesSnapshot>();
        s->uidvalidity = uidvalidity;
        s->highest_modseq = modseq;
        for (std::size_t i = 0; i < messages; ++i) s->states.push_back({static_cast<std::uint32_t>(i + 1), 1, {}});
        return s;
    };
    EXPECT_EQ(cache.find(1), nullptr);
    cache.keep(1, snapshot(7, 20, 4));
    // A reader that finished later with an older snapshot does not replace the newer one.
    cache.keep(1, snapshot(7, 15, 4));
    ASSERT_NE(cache.find(1), nullptr);
    EXPECT_EQ(cache.find(1)->highest_modseq, 20u);
    // Another UIDVALIDITY is another mailbox: it replaces whatever its modseq.
    cache.keep(1, snapshot(8, 2, 3));
    EXPECT_EQ(cache.find(1)->uidvalidity, 8u);
    EXPECT_EQ(cache.cached_messages(), 3u);
    // Beyond 10 states the least recently used goes: 1 was used after 2, so 2 leaves for 3.
    cache.keep(2, snapshot(9, 1, 5));
    ASSERT_NE(cache.find(1), nullptr);
    cache.keep(3, snapshot(10, 1, 4));
    EXPECT_EQ(cache.find(2), nullptr);
    EXPECT_NE(cache.find(1), nullptr);
    EXPECT_NE(cache.find(3), nullptr);
    EXPECT_EQ(cache.cached_messages(), 7u);
    // One larger than the bound is not kept; forget drops one.
    cache.keep(4, snapshot(11, 1, 11));
    EXPECT_EQ(cache.find(4), nullptr);
    cache.forget(1);
    EXPECT_EQ(cache.find(1), nullptr);
    EXPECT_EQ(cache.cached_messages(), 4u);
    // Off: nothing is kept.
    sqlite::StatesCache off(0);
    off.keep(1, snapshot(1, 1, 1));
    EXPECT_EQ(off.find(1), nullptr);
}

// ---- inline bodies (zstd frames) ----

constexpr std::uint64_t kMaxBytes = 1 << 20;  // the store's max_message_bytes in these tests

TEST(InlineContent, AFrameExpandsToTheSameBytesAndOnlyToTheStatedSize) {
    std::string text;
    for (int i = 0; i < 80; ++i) text += "The same line of text, again and again.\r\n";
    auto frame = sqlite::compress_inline(text, 1);
    ASSERT_TRUE(frame);
    EXPECT_LT(frame->size(), text.size() / 4);
    auto back = sqlite::expand_inline(sqlite::kLocationInlineZstd, *frame, text.size(), kMaxBytes);
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, text);
    // A size other than the frame's is corruption, never a short or padded message.
    EXPECT_EQ(sqlite::expand_inline(sqlite::kLocationInlineZstd, *frame, text.size() + 1, kMaxBytes).error().code,
              Errc::corrupt);
    EXPECT_EQ(sqlite::expand_inline(sqlite::kLocationInlineZstd, "not a frame", 11, kMaxBytes).error().code,
              Errc::corrupt);
    auto truncated = frame->substr(0, frame->size() - 3);
    EXPECT_EQ(sqlite::expand_inline(sqlite::kLocationInlineZstd, truncated, text.size(), kMaxBytes).error().code,
              Errc::corrupt);
    // Stored as received: the bytes themselves, which must have the stated size.
    EXPECT_EQ(*sqlite::expand_inline(sqlite::kLocationInline, "abc", 3, kMaxBytes), "abc");
    EXPECT_EQ(sqlite::expand_inline(sqlite::kLocationInline, "abc", 4, kMaxBytes).error().code, Errc::corrupt);
    EXPECT_EQ(sqlite::expand_inline(sqlite::kLocationFile, "abc", 3, kMaxBytes).error().code,
              Errc::invalid_argument);
}

TEST(InlineContent, ASizeAboveTheLimitIsCorruptAndAllocatesNothing) {
    std::string text;
    for (int i = 0; i < 80; ++i) text += "The same line of text, again and again.\r\n";
    auto frame = sqlite::compress_inline(text, 1);
    ASSERT_TRUE(frame);
    // A damaged size row (or a frame header agreeing with it) claiming a terabyte is refused before any
    // allocation, stored as received or compressed.
    constexpr std::uint64_t kHuge = std::uint64_t{1} << 40;
    EXPECT_EQ(sqlite::expand_inline(sqlite::kLocationInlineZstd, *frame, kHuge, kMaxBytes).error().code,
              Errc::corrupt);
    EXPECT_EQ(sqlite::expand_inline(sqlite::kLocationInline, text, kHuge, kMaxBytes).error().code, Errc::corrupt);
    // The limit itself is allowed; one byte below the content is not.
    EXPECT_EQ(*sqlite::expand_inline(sqlite::kLocationInlineZstd, *frame, text.size(), text.size()), text);
    EXPECT_EQ(sqlite::expand_inline(sqlite::kLocationInlineZstd, *frame, text.size(), text.size() - 1).error().code,
              Errc::corrupt);
}

TEST(InlineContent, LeftAsReceivedWhenOffSmallOrNotWorthIt) {
    std::string text(4096, 'a');
    EXPECT_FALSE(sqlite::compress_inline(text, 0));             // level 0: off
    EXPECT_FALSE(sqlite::compress_inline(text.substr(0, 100), 3));  // too small to gain
    std::string noise;
    std::uint32_t x = 7;
    for (int i = 0; i < 4096; ++i) {
        x = x * 1664525u + 1013904223u;
        noise.push_back(static_cast<char>(x >> 24));
    }
    EXPECT_FALSE(sqlite::compress_inline(noise, 19));  // saves less than an eighth
    EXPECT_TRUE(sqlite::compress_inline(text, 25));     // above the highest level: the highest
}

class BlobFilesTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string pattern = (std::filesystem::temp_directory_path() / "magpie-blobs-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        dir_ = pattern;
        files_ = BlobFiles(dir_);
        ASSERT_TRUE(files_.create_layout());
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    std::filesystem::path dir_;
    BlobFiles files_{"unset"};
};

TEST_F(BlobFilesTest, WritesOnceUnderItsHashAndLeavesNoTemporaryFile) {
    EXPECT_TRUE(std::filesystem::is_directory(dir_ / "blobs" / "00"));
    EXPECT_TRUE(std::filesystem::is_directory(dir_ / "blobs" / "ff"));
    std::string content("bytes\0with a NUL", 16);
    std::string id = blob_id_of(content);
    auto first = files_.write(id, content);
    ASSERT_TRUE(first);
    EXPECT_TRUE(*first);
    auto second = files_.write(id, content);
    ASSERT_TRUE(second);
    EXPECT_FALSE(*second);  // immutable: the same name already holds these bytes
    std::size_t entries = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir_ / "blobs" / id.substr(0, 2))) {
        EXPECT_FALSE(BlobFiles::is_temporary(entry.path().filename().string()));
        ++entries;
    }
    EXPECT_EQ(entries, 1u);
    auto read = files_.read(id, 1024);
    ASSERT_TRUE(read);
    EXPECT_EQ(*read, content);
    auto digest = files_.digest(id);
    ASSERT_TRUE(digest);
    EXPECT_EQ(digest->size, content.size());
    EXPECT_EQ(digest->sha256_hex, id);
}

TEST_F(BlobFilesTest, ReadIsBoundedAndReportsAbsence) {
    std::string content(100, 'z');
    std::string id = blob_id_of(content);
    EXPECT_EQ(files_.read(id, 1000).error().code, Errc::not_found);
    ASSERT_TRUE(files_.write(id, content));
    EXPECT_EQ(files_.read(id, 99).error().code, Errc::limit_exceeded);
    EXPECT_EQ(files_.read("../../etc/passwd", 1000).error().code, Errc::invalid_argument);
}

// ---- flags ----

TEST(Flags, SystemFlagsAreCaseInsensitiveAndComeBackCanonical) {
    auto set = parse_flags({"\\SEEN", "\\flagged", "\\Draft"}, FlagLimits{});
    ASSERT_TRUE(set);
    EXPECT_EQ(set->system, flag_seen | flag_flagged | flag_draft);
    EXPECT_TRUE(set->keywords.empty());
    EXPECT_EQ(flag_list(set->system, ""), (std::vector<std::string>{"\\Seen", "\\Flagged", "\\Draft"}));
}

TEST(Flags, KeywordsAreDedupedAndRoundTrip) {
    auto set = parse_flags({"$Forwarded", "work", "$forwarded", "\\Answered"}, FlagLimits{});
    ASSERT_TRUE(set);
    ASSERT_EQ(set->keywords, (std::vector<std::string>{"$Forwarded", "work"}));
    std::string joined = join_keywords(set->keywords);
    EXPECT_EQ(joined, "$Forwarded work");
    EXPECT_EQ(flag_list(set->system, joined), (std::vector<std::string>{"\\Answered", "$Forwarded", "work"}));
}

TEST(Flags, RejectsRecentUnknownSystemFlagsAndNonAtoms) {
    EXPECT_EQ(parse_flags({"\\Recent"}, {}).error().code, Errc::invalid_argument);
    EXPECT_EQ(parse_flags({"\\Important"}, {}).error().code, Errc::invalid_argument);
    for (std::string bad : {"", "two words", "paren(", "star*", "quote\"", "brace{", "bracket]", "tab\t"}) {
        EXPECT_EQ(parse_flags({bad}, {}).error().code, Errc::invalid_argument) << bad;
    }
}

TEST(Flags, EnforcesLimits) {
    FlagLimits limits;
    limits.max_keywords = 2;
    limits.max_keyword_bytes = 5;
    EXPECT_TRUE(parse_flags({"a", "b", "A"}, limits));  // a duplicate does not count
    EXPECT_EQ(parse_flags({"a", "b", "c"}, limits).error().code, Errc::limit_exceeded);
    EXPECT_EQ(parse_flags({"sixsix"}, limits).error().code, Errc::invalid_argument);
}

// ---- addresses ----

TEST(Address, LowerCasesBothParts) {
    auto address = normalize_address("Bob.Smith@Example.TEST");
    ASSERT_TRUE(address);
    EXPECT_EQ(address->address, "bob.smith@example.test");
    EXPECT_EQ(address->local, "bob.smith");
    EXPECT_EQ(address->domain, "example.test");
}

TEST(Address, AcceptsUtf8LocalPartsAndRejectsBrokenOnes) {
    auto address = normalize_address("J\xC3\xB6rg@example.test");  // RFC 6531
    ASSERT_TRUE(address);
    EXPECT_EQ(address->local, "j\xC3\xB6rg");
    EXPECT_FALSE(normalize_address("j\xC3@example.test"));
    EXPECT_FALSE(normalize_address("a b@example.test"));
    EXPECT_FALSE(normalize_address("a<b@example.test"));
    EXPECT_FALSE(normalize_address("a\r\n@example.test"));
}

// RFC 5321 4.1.2: RCPT TO:<"bob.smith"@example.test> is Bob's mailbox; Postfix takes it so too.
TEST(Address, QuotedLocalPartIsItsContentUnquoted) {
    auto quoted = normalize_address("\"Bob.Smith\"@Example.TEST");
    ASSERT_TRUE(quoted);
    EXPECT_EQ(quoted->address, "bob.smith@example.test");
    auto escaped = normalize_address("\"b\\ob\"@example.test");  // quoted-pair: \o is o
    ASSERT_TRUE(escaped);
    EXPECT_EQ(escaped->local, "bob");
    // What no unquoted local part can hold names no mailbox: space, '@', '"', nothing.
    EXPECT_FALSE(normalize_address("\"a b\"@example.test"));
    EXPECT_FALSE(normalize_address("\"a@b\"@example.test"));
    EXPECT_FALSE(normalize_address("\"a\\\"b\"@example.test"));
    EXPECT_FALSE(normalize_address("\"\"@example.test"));
    EXPECT_FALSE(normalize_address("\"@example.test"));
    EXPECT_EQ(unquote_local_part("\"Post\\master\""), "Postmaster");  // what is_postmaster compares
    EXPECT_EQ(unquote_local_part("bob"), "bob");
}

TEST(Address, CatchAllOnlyWhenAllowed) {
    EXPECT_FALSE(normalize_address("@example.test"));
    auto catch_all = normalize_address("@Example.test", /*allow_catch_all=*/true);
    ASSERT_TRUE(catch_all);
    EXPECT_EQ(catch_all->address, "@example.test");
    EXPECT_TRUE(catch_all->local.empty());
}

TEST(Address, EnforcesRfc5321Sizes) {
    EXPECT_TRUE(normalize_address(std::string(64, 'a') + "@example.test"));
    EXPECT_FALSE(normalize_address(std::string(65, 'a') + "@example.test"));
    std::string label(63, 'd');
    EXPECT_TRUE(normalize_domain(label + ".test"));
    EXPECT_FALSE(normalize_domain(std::string(64, 'd') + ".test"));
    std::string long_domain = label + "." + label + "." + label + "." + label;  // 255 octets
    EXPECT_TRUE(normalize_domain(long_domain));
    EXPECT_FALSE(normalize_domain(long_domain + "x"));
    EXPECT_FALSE(normalize_address("a@" + long_domain));  // longer than a path allows
}

TEST(Address, RejectsBadDomains) {
    for (std::string bad : {"", ".", "a..b", "-a.test", "a-.test", "[127.0.0.1]", "a_b.test", "ex ample.test"}) {
        EXPECT_FALSE(normalize_domain(bad)) << bad;
    }
}

}  // namespace
}  // namespace magpie::store
