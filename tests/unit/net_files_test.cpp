// net: durable file writes (base/file.h), the demo certificate they carry, and keepalive on accepted sockets.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "base/file.h"
#include "net/keepalive.h"
#include "net/tls.h"

namespace magpie::net {
namespace {

class TempDir : public ::testing::Test {
protected:
    void SetUp() override {
        std::string pattern = (std::filesystem::temp_directory_path() / "magpie-net-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        dir_ = pattern;
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    static std::string read(const std::filesystem::path& path) {
        std::ifstream in(path, std::ios::binary);
        std::stringstream text;
        text << in.rdbuf();
        return text.str();
    }
    std::size_t entries() const {
        std::size_t n = 0;
        for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir_)) ++n;
        return n;
    }

    std::filesystem::path dir_;
};

TEST_F(TempDir, DurableWriteReplacesTheWholeFileAndLeavesNoTemporary) {
    auto path = dir_ / "file.pem";
    ASSERT_TRUE(write_file_durably(path, "first", 0600));
    ASSERT_TRUE(write_file_durably(path, "second, longer", 0644));
    EXPECT_EQ(read(path), "second, longer");
    EXPECT_EQ(entries(), 1u);
    struct stat info {};
    ASSERT_EQ(::stat(path.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0644u);
}

TEST_F(TempDir, DurableWriteKeepsTheModeAgainstTheUmask) {
    mode_t old = ::umask(0077);
    auto written = write_file_durably(dir_ / "cert.pem", "x", 0644);
    ::umask(old);
    ASSERT_TRUE(written);
    struct stat info {};
    ASSERT_EQ(::stat((dir_ / "cert.pem").c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0644u);
}

TEST_F(TempDir, DurableWriteFailureNamesTheFileAndKeepsTheOldContent) {
    auto path = dir_ / "missing-dir" / "file.pem";
    auto written = write_file_durably(path, "x", 0600);
    ASSERT_FALSE(written);
    EXPECT_NE(written.error().message.find("missing-dir"), std::string::npos) << written.error().message;

    // A directory in the way of the rename: the old name keeps what it had, no temporary is left.
    std::filesystem::create_directory(dir_ / "taken");
    auto blocked = write_file_durably(dir_ / "taken", "x", 0600);
    ASSERT_FALSE(blocked);
    EXPECT_NE(blocked.error().message.find("taken"), std::string::npos) << blocked.error().message;
    EXPECT_TRUE(std::filesystem::is_directory(dir_ / "taken"));
    EXPECT_EQ(entries(), 1u);
}

TEST_F(TempDir, SelfSignedPairLoadsAndTheKeyIsPrivate) {
    auto cert = dir_ / "demo-cert.pem";
    auto key = dir_ / "demo-key.pem";
    ASSERT_TRUE(generate_self_signed(cert, key, "mail.example.test"));
    EXPECT_TRUE(make_server_tls_context(cert, key));
    struct stat info {};
    ASSERT_EQ(::stat(key.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0600u);
    EXPECT_EQ(entries(), 2u);
}

// What a power cut used to leave (issue 12 G): each damage is refused with a message naming the file, so
// the demo knows to make a new pair and a configured server says which file to fix.
TEST_F(TempDir, DamagedCertificateOrKeyIsRefusedNamingTheFile) {
    auto cert = dir_ / "demo-cert.pem";
    auto key = dir_ / "demo-key.pem";
    ASSERT_TRUE(generate_self_signed(cert, key, "mail.example.test"));
    std::string good_cert = read(cert);
    std::string good_key = read(key);

    ASSERT_TRUE(write_file_durably(cert, "", 0644));
    auto empty_cert = make_server_tls_context(cert, key);
    ASSERT_FALSE(empty_cert);
    EXPECT_NE(empty_cert.error().message.find(cert.string()), std::string::npos)
        << empty_cert.error().message;

    ASSERT_TRUE(write_file_durably(cert, good_cert, 0644));
    ASSERT_TRUE(write_file_durably(key, good_key.substr(0, good_key.size() / 2), 0600));
    auto torn_key = make_server_tls_context(cert, key);
    ASSERT_FALSE(torn_key);
    EXPECT_NE(torn_key.error().message.find(key.string()), std::string::npos) << torn_key.error().message;

    // A new key beside the old certificate (a crash between the two renames).
    auto other = dir_ / "other";
    std::filesystem::create_directory(other);
    ASSERT_TRUE(generate_self_signed(other / "c.pem", other / "k.pem", "mail.example.test"));
    std::filesystem::copy_file(other / "k.pem", key, std::filesystem::copy_options::overwrite_existing);
    auto mismatch = make_server_tls_context(cert, key);
    ASSERT_FALSE(mismatch);
    EXPECT_NE(mismatch.error().message.find(key.string()), std::string::npos) << mismatch.error().message;
    EXPECT_NE(mismatch.error().message.find(cert.string()), std::string::npos) << mismatch.error().message;

    ASSERT_TRUE(generate_self_signed(cert, key, "mail.example.test"));  // what the demo then does
    EXPECT_TRUE(make_server_tls_context(cert, key));
}

// The options are set on the listening socket once (as Listener::bind does) and every accepted socket has
// them: the listener relies on the kernel copying them.
TEST(NetKeepAlive, AcceptedSocketInheritsKeepaliveItsTimingsAndNoDelayFromTheListener) {
    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    ASSERT_TRUE(enable_keepalive(acceptor.native_handle(), KeepAlive{std::chrono::seconds(90), std::chrono::seconds(15), 3}));
    acceptor.set_option(tcp::no_delay(true));
    tcp::socket client(io);
    client.connect(acceptor.local_endpoint());
    tcp::socket accepted = acceptor.accept();

    asio::socket_base::keep_alive on;
    accepted.get_option(on);
    EXPECT_TRUE(on.value());
    auto get = [&](int name) {
        int value = 0;
        socklen_t size = sizeof value;
        EXPECT_EQ(::getsockopt(accepted.native_handle(), IPPROTO_TCP, name, &value, &size), 0);
        return value;
    };
    EXPECT_EQ(get(TCP_KEEPIDLE), 90);
    EXPECT_EQ(get(TCP_KEEPINTVL), 15);
    EXPECT_EQ(get(TCP_KEEPCNT), 3);
    EXPECT_EQ(get(TCP_NODELAY), 1);
    EXPECT_LT(KeepAlive{}.idle, std::chrono::minutes(5));  // the default beats NATs' 5 to 15 minutes
}

}  // namespace
}  // namespace magpie::net
