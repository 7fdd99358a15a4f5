// [imap] keys of magpie.toml that the IMAP session and service read (docs/configuration.md).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "server/config.h"

namespace magpie::server {
namespace {

class ImapConfigFile : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/magpie-imap-config-XXXXXX";
        dir_ = mkdtemp(tmpl);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    Result<Config> load(const std::string& text) {
        auto path = dir_ / "magpie.toml";
        std::ofstream(path) << text;
        return load_config(path);
    }

    std::filesystem::path dir_;
};

// Issue 12 item 10: "* OK Still here" every two minutes of IDLE by default, as Dovecot does.
TEST_F(ImapConfigFile, IdleKeepaliveIntervalDefaultsToTwoMinutes) {
    auto config = load("");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->imap.idle_keepalive_interval, 120u);
    config = load("[imap]\nidle_keepalive_interval = 30\nidle_timeout = 60\n");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->imap.idle_keepalive_interval, 30u);
    EXPECT_FALSE(load("[imap]\nidle_keepalive_interval = 0\n"));
}

}  // namespace
}  // namespace magpie::server
