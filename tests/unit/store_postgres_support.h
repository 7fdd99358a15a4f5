// A real PostgreSQL for the store's unit tests: one throw-away cluster per test binary, started by
// tests/postgres-cluster.sh (initdb into a temporary directory, 127.0.0.1 and a free port, stopped when the
// binary ends), and a fresh database per test. MAGPIE_TEST_PG_DSN names a server to use instead (a
// database on it is created and dropped per test). Without PostgreSQL on the machine the postgres cases
// skip, saying why.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "store/postgres/pg.h"

namespace magpie::store {

class PostgresServer {
public:
    // The process-wide server, started on first use; empty dsn() when none could be started.
    static PostgresServer& instance() {
        static PostgresServer server;
        return server;
    }
    const std::string& dsn() const { return dsn_; }  // of the maintenance database
    const std::string& why_not() const { return why_not_; }

    // A new empty database; returns its DSN.
    std::string create_database() {
        std::string name = fmt::format("t{}_{}", ::getpid(), ++databases_);
        auto admin = postgres::Connection::open(dsn_, "");
        if (!admin) throw std::runtime_error(admin.error().message);
        auto made = (*admin)->run("CREATE DATABASE " + name);
        if (!made) throw std::runtime_error(made.error().message);
        return dsn_with_database(name);
    }
    void drop_database(const std::string& dsn) {
        auto admin = postgres::Connection::open(dsn_, "");
        if (!admin) return;
        std::string name = dsn.substr(dsn.rfind('=') + 1);
        (void)(*admin)->run("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)");
    }

    // Restarts the server this binary started (every client connection breaks); false for a given one.
    bool restart() {
        if (dir_.empty()) return false;
        return std::system(fmt::format("{} restart {} >/dev/null 2>&1", script(), dir_.string()).c_str()) == 0;
    }

    ~PostgresServer() {
        if (!dir_.empty()) {
            (void)std::system(fmt::format("{} discard {} >/dev/null 2>&1", script(), dir_.string()).c_str());
            std::error_code ignored;
            std::filesystem::remove_all(dir_, ignored);
        }
    }

private:
    PostgresServer() {
        if (const char* given = std::getenv("MAGPIE_TEST_PG_DSN"); given != nullptr && *given != '\0') {
            dsn_ = given;
            return;
        }
        std::string pattern = (std::filesystem::temp_directory_path() / "magpie-pg-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) {
            why_not_ = "mkdtemp failed";
            return;
        }
        std::filesystem::path dir = pattern;
        int port = free_port();
        int status = std::system(fmt::format("{} start {} {} >{}/start.log 2>&1", script(), dir.string(), port,
                                             dir.string()).c_str());
        if (status != 0) {
            why_not_ = fmt::format("tests/postgres-cluster.sh start failed (see {}/start.log)", dir.string());
            return;
        }
        dir_ = dir;
        // Another port when something took this one first (another test binary's cluster was handed it too).
        std::ifstream chosen(dir / "port");
        if (!(chosen >> port)) {
            why_not_ = fmt::format("tests/postgres-cluster.sh left no {}/port", dir.string());
            return;
        }
        dsn_ = fmt::format("host=127.0.0.1 port={} user=magpie dbname=magpie", port);
    }

    std::string dsn_with_database(const std::string& name) const {
        std::string dsn = dsn_;
        auto at = dsn.find("dbname=");
        if (at != std::string::npos) dsn = dsn.substr(0, at);
        return dsn + " dbname=" + name;
    }

    static std::string script() { return std::string(MAGPIE_TEST_DATA_DIR) + "/../postgres-cluster.sh"; }

    static int free_port() {
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
        socklen_t length = sizeof address;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
        ::close(fd);
        return ntohs(address.sin_port);
    }

    std::filesystem::path dir_;
    std::string dsn_;
    std::string why_not_;
    std::atomic<int> databases_{0};
};

}  // namespace magpie::store
