// A dnsmasq for tests that need a real DNS server: started on 127.0.0.53 and a free port, answering only
// from the records given on its command line (no upstream, no /etc/hosts); stopped when destroyed.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace magpie::testing {

constexpr const char* kDnsmasq = "/usr/sbin/dnsmasq";
constexpr const char* kAddress = "127.0.0.53";

// A port free for both UDP and TCP on kAddress (dnsmasq binds both), or 0.
inline int free_port() {
    for (int attempt = 0; attempt < 20; ++attempt) {
        int udp = socket(AF_INET, SOCK_DGRAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        inet_pton(AF_INET, kAddress, &addr.sin_addr);
        socklen_t len = sizeof addr;
        if (bind(udp, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
            getsockname(udp, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
            close(udp);
            continue;
        }
        int tcp = socket(AF_INET, SOCK_STREAM, 0);
        bool ok = bind(tcp, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
        close(tcp);
        close(udp);
        if (ok) return ntohs(addr.sin_port);
    }
    return 0;
}

// True while something is bound to kAddress:port over UDP.
inline bool udp_port_taken(int port) {
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    inet_pton(AF_INET, kAddress, &addr.sin_addr);
    bool taken = bind(udp, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0;
    close(udp);
    return taken;
}

class Dnsmasq {
public:
    // Starts dnsmasq; port() is 0 when it could not start (why() says why). Another test process may take
    // the free port first: then it tries again on another.
    explicit Dnsmasq(std::vector<std::string> records) : records_(std::move(records)) {
        installed_ = access(kDnsmasq, X_OK) == 0;
        if (!installed_) {
            why_ = std::string(kDnsmasq) + " is not installed (Debian package dnsmasq-base)";
            return;
        }
        for (int attempt = 0; attempt < 3 && port_ == 0; ++attempt) {
            int port = free_port();
            if (port == 0) {
                why_ = "no free port on 127.0.0.53";
                continue;
            }
            start(port);
        }
    }
    ~Dnsmasq() {
        if (pid_ > 0) {
            kill(pid_, SIGTERM);
            waitpid(pid_, nullptr, 0);
        }
    }
    bool installed() const { return installed_; }
    int port() const { return port_; }
    const std::string& why() const { return why_; }

private:
    void start(int port) {
        std::vector<std::string> args = {
            kDnsmasq,
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            std::string("--listen-address=") + kAddress,
            "--port=" + std::to_string(port),
            "--pid-file=",
            "--user=root",
            "--log-facility=/dev/null",
        };
        args.insert(args.end(), records_.begin(), records_.end());
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        if (posix_spawn(&pid_, kDnsmasq, nullptr, nullptr, argv.data(), environ) != 0) {
            why_ = "posix_spawn of dnsmasq failed";
            pid_ = 0;
            return;
        }
        for (int i = 0; i < 100 && !udp_port_taken(port); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) != 0) {
            why_ = "dnsmasq exited at start";
            pid_ = 0;
            return;
        }
        port_ = port;
    }

    std::vector<std::string> records_;
    bool installed_ = false;
    pid_t pid_ = 0;
    int port_ = 0;
    std::string why_;
};

}  // namespace magpie::testing
