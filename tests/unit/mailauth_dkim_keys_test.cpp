// DKIM keys on disk: created private (0600 files, 0700 directories), listed back with the records to
// publish, never overwritten, and usable for signing what the published record verifies.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "mailauth/dkim_keys.h"
#include "mailauth/dkim_signer.h"

namespace magpie::mailauth {
namespace {

class DkimKeys : public ::testing::Test {
protected:
    void SetUp() override {
        dir = std::filesystem::temp_directory_path() /
              ("magpie-dkim-keys-" + std::to_string(::getpid()) + "-" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::remove_all(dir);
        std::filesystem::create_directories(dir);
    }
    void TearDown() override { std::filesystem::remove_all(dir); }
    std::filesystem::path dir;
};

unsigned mode_of(const std::filesystem::path& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st.st_mode & 0777;
}

TEST_F(DkimKeys, CreatesOneKeyPerAlgorithmReadableOnlyByItsOwner) {
    auto created = create_dkim_keys(dir, "Example.COM", KeygenOptions{.selector_suffix = "20261129"});
    ASSERT_TRUE(created) << created.error().message;
    ASSERT_EQ(created->size(), 2u);
    EXPECT_EQ((*created)[0].selector, "r20261129");
    EXPECT_EQ((*created)[1].selector, "e20261129");
    EXPECT_EQ(mode_of((*created)[0].path), 0600u);
    EXPECT_EQ(mode_of((*created)[1].path), 0600u);
    EXPECT_EQ(mode_of(dir / "dkim"), 0700u);
    EXPECT_EQ(mode_of(dir / "dkim" / "example.com"), 0700u);
    EXPECT_FALSE(std::filesystem::exists(dir / "dkim" / "example.com" / "r20261129.pem.tmp"));

    auto listed = list_dkim_keys(dir, "example.com");
    ASSERT_TRUE(listed);
    ASSERT_EQ(listed->size(), 2u);
    EXPECT_EQ((*listed)[0].selector, "e20261129");  // by selector
    EXPECT_EQ((*listed)[0].algorithm, mail::dkim::Algorithm::ed25519_sha256);
    EXPECT_EQ((*listed)[0].key_record, (*created)[1].key_record);
    EXPECT_EQ((*listed)[1].key_record.rfind("v=DKIM1; k=rsa; p=", 0), 0u);
}

TEST_F(DkimKeys, StoredKeySignsWhatItsPublishedRecordVerifies) {
    auto created = create_dkim_keys(dir, "example.com", KeygenOptions{.selector_suffix = "1"});
    ASSERT_TRUE(created);
    for (const auto& stored : *created) {
        std::ifstream in(stored.path);
        std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        auto key = mail::dkim::PrivateKey::from_pem(pem);
        ASSERT_TRUE(key);
        mail::dkim::SignOptions options;
        options.domain = "example.com";
        options.selector = stored.selector;
        std::string message = "From: a@example.com\r\n\r\nhi\r\n";
        auto field = mail::dkim::sign(message, *key, options);
        ASSERT_TRUE(field);
        auto results = mail::dkim::verify(
            *field + message,
            [&](std::string_view) -> mail::dkim::TxtAnswer {
                return std::vector<std::string>{stored.key_record};
            },
            0);
        ASSERT_EQ(results.size(), 1u);
        EXPECT_EQ(results[0].status, mail::dkim::Status::pass) << results[0].reason;
    }
}

TEST_F(DkimKeys, RefusesToReplaceExistingSelectors) {
    ASSERT_TRUE(create_dkim_keys(dir, "example.com", KeygenOptions{.selector_suffix = "1"}));
    auto again = create_dkim_keys(dir, "example.com", KeygenOptions{.selector_suffix = "1"});
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code, Errc::already_exists);
}

TEST_F(DkimKeys, NoKeysIsAnEmptyListAndBadNamesAreRefused) {
    auto none = list_dkim_keys(dir, "nokeys.example");
    ASSERT_TRUE(none);
    EXPECT_TRUE(none->empty());
    EXPECT_FALSE(list_dkim_keys(dir, "../etc"));
    EXPECT_FALSE(create_dkim_keys(dir, "a/b", KeygenOptions{}));
    EXPECT_FALSE(create_dkim_keys(dir, "example.com", KeygenOptions{.selector_suffix = "../x"}));
}

TEST_F(DkimKeys, UnreadableKeyFileIsReportedAsCorrupt) {
    std::filesystem::create_directories(dir / "dkim" / "example.com");
    std::ofstream(dir / "dkim" / "example.com" / "bad.pem") << "not a key";
    auto listed = list_dkim_keys(dir, "example.com");
    ASSERT_FALSE(listed);
    EXPECT_EQ(listed.error().code, Errc::corrupt);
}

TEST_F(DkimKeys, SignerSignsWithTheFromDomainsNewestKeyOfEachAlgorithm) {
    ASSERT_TRUE(create_dkim_keys(dir, "example.com", KeygenOptions{.selector_suffix = "20250101"}));
    auto newest = create_dkim_keys(dir, "example.com", KeygenOptions{.selector_suffix = "20261129"});
    ASSERT_TRUE(newest);
    auto signer = DkimSigner::load(dir);
    ASSERT_TRUE(signer) << signer.error().message;
    EXPECT_TRUE(signer->has_keys("Example.com"));
    EXPECT_FALSE(signer->has_keys("other.example"));

    std::string message = "From: Ann <ann@Example.COM>\r\nTo: b@example.net\r\nSubject: s\r\n\r\nhi\r\n";
    auto fields = signer->sign(message, 1700000000);
    ASSERT_TRUE(fields) << fields.error().message;
    auto lookup = [&](std::string_view name) -> mail::dkim::TxtAnswer {
        for (const auto& key : *newest)
            if (name == key.selector + "._domainkey.example.com")
                return std::vector<std::string>{key.key_record};
        return make_error(Errc::not_found, "NXDOMAIN");
    };
    auto results = mail::dkim::verify(*fields + message, lookup, 1700000000);
    ASSERT_EQ(results.size(), 2u);
    std::set<std::string> selectors;
    for (const auto& r : results) {
        EXPECT_EQ(r.status, mail::dkim::Status::pass) << r.selector << ": " << r.reason;
        selectors.insert(r.selector);
    }
    EXPECT_EQ(selectors, (std::set<std::string>{"e20261129", "r20261129"}));

    auto unsigned_message = signer->sign("From: x@other.example\r\n\r\nhi\r\n", 1700000000);
    ASSERT_TRUE(unsigned_message);
    EXPECT_EQ(*unsigned_message, "") << "a domain without keys goes out unsigned";
}

TEST_F(DkimKeys, SignerWithoutAnyKeysSignsNothing) {
    auto signer = DkimSigner::load(dir / "missing");
    ASSERT_TRUE(signer);
    EXPECT_EQ(*signer->sign("From: a@example.com\r\n\r\nx\r\n", 0), "");
}

TEST_F(DkimKeys, RotationAddsNewerSelectorsAndKeepsTheOldOnes) {
    KeygenOptions options{.selector_suffix = "20261129"};
    ASSERT_TRUE(create_dkim_keys(dir, "example.com", options));
    auto rotated = rotate_dkim_keys(dir, "example.com", options);  // same day: the suffix gets a letter
    ASSERT_TRUE(rotated) << rotated.error().message;
    EXPECT_EQ((*rotated)[0].selector, "r20261129b");
    EXPECT_EQ((*rotated)[1].selector, "e20261129b");
    auto again = rotate_dkim_keys(dir, "example.com", options);
    ASSERT_TRUE(again);
    EXPECT_EQ((*again)[0].selector, "r20261129c");
    auto listed = list_dkim_keys(dir, "example.com");
    ASSERT_TRUE(listed);
    EXPECT_EQ(listed->size(), 6u);
    EXPECT_EQ(mode_of((*again)[0].path), 0600u);

    // The signer takes the newest of each algorithm.
    auto signer = DkimSigner::load(dir);
    ASSERT_TRUE(signer) << signer.error().message;
    auto fields = signer->sign("From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n", 1700000000);
    ASSERT_TRUE(fields);
    EXPECT_NE(fields->find("s=r20261129c;"), std::string::npos) << *fields;
    EXPECT_NE(fields->find("s=e20261129c;"), std::string::npos) << *fields;
}

TEST_F(DkimKeys, RemovesRetiredKeysButNeverTheOneSigningNow) {
    KeygenOptions options{.selector_suffix = "1"};
    ASSERT_TRUE(create_dkim_keys(dir, "example.com", options));
    auto refused = remove_dkim_key(dir, "example.com", "r1");
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, Errc::permission_denied);
    ASSERT_TRUE(create_dkim_keys(dir, "example.com", KeygenOptions{.selector_suffix = "2"}));
    ASSERT_TRUE(remove_dkim_key(dir, "example.com", "r1"));
    EXPECT_FALSE(std::filesystem::exists(dir / "dkim" / "example.com" / "r1.pem"));
    auto missing = remove_dkim_key(dir, "example.com", "r1");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, Errc::not_found);
    EXPECT_FALSE(remove_dkim_key(dir, "example.com", "../x"));
    auto listed = list_dkim_keys(dir, "example.com");
    ASSERT_TRUE(listed);
    EXPECT_EQ(listed->size(), 3u);
}

}  // namespace
}  // namespace magpie::mailauth
