// imap_load: an IMAP load generator for side-by-side runs (bench/run.py, issue 17 scenario 3). N clients, each a
// thread with a blocking socket, run a mix of commands against one server for a fixed time and report operations
// per second with p50 and p99 latencies, per command kind, as one JSON object on stdout.
//
//   imap_load --host 127.0.0.1 --port 143 --user u@bench.test --password pw --clients 10 --seconds 15
//             --mix realistic|login [--source-base 127.2]
//
// realistic: log in once, SELECT INBOX, then loop over weighted commands: FETCH of a 50-message window (FLAGS
// ENVELOPE) 30%, BODY.PEEK[] of one message 25%, SEARCH 10%, STORE of \Seen on and off 15%, APPEND to a side
// mailbox 5%, NOOP 9%, IDLE entered and left (DONE) 5%, and a rare FETCH 1:* (FLAGS) 1% as a reconnecting
// client's resync (at 10,000 messages that one command outputs 10,000 lines). The clock starts once every client
// has logged in and selected (a barrier): a login storm (argon2id at the peer) is not part of the mix's rate;
// login and select latencies are reported apart ("setup_*" kinds) and left out of the totals. login: connect, LOGIN, SELECT, FETCH 1:10 (FLAGS),
// LOGOUT, again and again, as phones and pollers do. Each client connects from its own loopback source address
// (--source-base A.B gives A.B.x.y) so servers' per-address limits do not apply.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
    std::string host = "127.0.0.1";
    int port = 143;
    std::string user, password;
    int clients = 1;
    int seconds = 10;
    std::string mix = "realistic";
    std::string source_base = "127.2";
};

// One IMAP connection speaking just enough of RFC 9051 to send tagged commands and read to the tagged reply,
// literals included.
class Connection {
public:
    Connection(const Options& options, int index) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd_ < 0) throw std::runtime_error("socket");
        sockaddr_in source{};
        source.sin_family = AF_INET;
        std::string source_ip = options.source_base + "." + std::to_string(index / 250) + "." +
                                std::to_string(index % 250 + 1);
        ::inet_pton(AF_INET, source_ip.c_str(), &source.sin_addr);
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&source), sizeof source) != 0) throw std::runtime_error("bind");
        sockaddr_in peer{};
        peer.sin_family = AF_INET;
        peer.sin_port = htons(static_cast<std::uint16_t>(options.port));
        ::inet_pton(AF_INET, options.host.c_str(), &peer.sin_addr);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&peer), sizeof peer) != 0) {
            ::close(fd_);
            throw std::runtime_error("connect");
        }
        int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        std::string greeting = line();
        if (greeting.rfind("* OK", 0) != 0) throw std::runtime_error("greeting: " + greeting);
    }
    ~Connection() { ::close(fd_); }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Sends `command` (without tag and CRLF) and reads to its tagged reply; true when that reply is OK.
    // Untagged lines go to `untagged` when given (literal octets left out).
    bool run(const std::string& command, std::vector<std::string>* untagged = nullptr) {
        std::string tag = "t" + std::to_string(++tags_);
        send(tag + " " + command + "\r\n");
        return read_until_tagged(tag, untagged);
    }

    // APPEND with a synchronizing literal.
    bool append(const std::string& mailbox, const std::string& message) {
        std::string tag = "t" + std::to_string(++tags_);
        send(tag + " APPEND " + mailbox + " {" + std::to_string(message.size()) + "}\r\n");
        std::string reply = line();
        if (reply.empty() || reply[0] != '+') return false;
        send(message + "\r\n");
        return read_until_tagged(tag);
    }

    // IDLE, its continuation, DONE, the tagged reply; untagged updates on the way are read and dropped.
    bool idle_once() {
        std::string tag = "t" + std::to_string(++tags_);
        send(tag + " IDLE\r\n");
        for (;;) {
            std::string l = line();
            if (!l.empty() && l[0] == '+') break;
            if (l.rfind(tag + " ", 0) == 0) return false;  // refused
        }
        send("DONE\r\n");
        return read_until_tagged(tag);
    }

private:
    bool read_until_tagged(const std::string& tag, std::vector<std::string>* untagged = nullptr) {
        for (;;) {
            std::string l = line();
            if (l.rfind(tag + " ", 0) == 0) return l.compare(tag.size() + 1, 2, "OK") == 0;
            if (untagged) untagged->push_back(std::move(l));
        }
    }

    void send(const std::string& bytes) {
        std::size_t sent = 0;
        while (sent < bytes.size()) {
            ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
            if (n <= 0) throw std::runtime_error("send");
            sent += static_cast<std::size_t>(n);
        }
    }

    // One response line with any literals it announces read along (their bytes are skipped).
    std::string line() {
        std::string out;
        for (;;) {
            std::size_t end = buffer_.find("\r\n");
            while (end == std::string::npos) {
                fill();
                end = buffer_.find("\r\n");
            }
            std::string part = buffer_.substr(0, end);
            buffer_.erase(0, end + 2);
            out += part;
            // A literal {n} (or ~{n}) at the end of the line: skip n octets, then the line goes on.
            if (!part.empty() && part.back() == '}') {
                std::size_t open = part.rfind('{');
                if (open != std::string::npos) {
                    std::size_t n = std::strtoull(part.c_str() + open + 1, nullptr, 10);
                    while (buffer_.size() < n) fill();
                    buffer_.erase(0, n);
                    continue;
                }
            }
            return out;
        }
    }

    void fill() {
        char chunk[65536];
        ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
        if (n <= 0) throw std::runtime_error("connection closed");
        buffer_.append(chunk, static_cast<std::size_t>(n));
    }

    int fd_ = -1;
    unsigned tags_ = 0;
    std::string buffer_;
};

struct Samples {
    std::mutex mutex;
    std::map<std::string, std::vector<double>> millis;  // per command kind
    std::atomic<std::uint64_t> errors{0};
    void add(const std::string& kind, Clock::duration d) {
        std::lock_guard lock(mutex);
        millis[kind].push_back(std::chrono::duration<double, std::milli>(d).count());
    }
};

// Every client logs in and selects first; the measured window starts when all are ready (or failed).
struct StartLine {
    std::mutex mutex;
    std::condition_variable changed;
    int waiting = 0;  // clients not yet ready or failed
    bool started = false;
    Clock::time_point until;
    // A client is ready (or gave up): waits for the start and returns the end of the window.
    Clock::time_point arrive() {
        std::unique_lock lock(mutex);
        if (--waiting == 0) changed.notify_all();
        changed.wait(lock, [&] { return started; });
        return until;
    }
    void leave() {
        std::lock_guard lock(mutex);
        if (--waiting == 0) changed.notify_all();
    }
};

template <class F>
void timed(Samples& samples, const std::string& kind, F&& f) {
    auto start = Clock::now();
    bool ok = f();
    samples.add(kind, Clock::now() - start);
    if (!ok) ++samples.errors;
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

void realistic(const Options& o, int index, StartLine& line, Samples& samples, int messages) {
    std::mt19937 random(static_cast<unsigned>(index) * 7919u + 1);
    Clock::time_point until;
    std::optional<Connection> connection;
    try {
        connection.emplace(o, index);
        timed(samples, "setup_login", [&] { return connection->run("LOGIN " + quoted(o.user) + " " + quoted(o.password)); });
        timed(samples, "setup_select", [&] { return connection->run("SELECT INBOX"); });
        connection->run("CREATE bench-append");  // may exist already: NO is fine
    } catch (...) {
        line.leave();
        throw;
    }
    until = line.arrive();
    Connection& c = *connection;
    const std::string append_body =
        "From: load@bench.test\r\nTo: " + o.user + "\r\nSubject: appended\r\n\r\nappended by imap_load\r\n";
    std::uniform_int_distribution<int> pick(1, 100);
    std::uniform_int_distribution<int> message(1, std::max(1, messages));
    while (Clock::now() < until) {
        int p = pick(random);
        int m = message(random);
        if (p <= 30) {
            int last = std::min(messages, m + 49);
            timed(samples, "fetch_window", [&] {
                return c.run("FETCH " + std::to_string(m) + ":" + std::to_string(last) + " (FLAGS ENVELOPE)");
            });
        } else if (p <= 55) {
            timed(samples, "fetch_body", [&] { return c.run("FETCH " + std::to_string(m) + " BODY.PEEK[]"); });
        } else if (p <= 65) {
            timed(samples, "search", [&] { return c.run("SEARCH UNSEEN SUBJECT \"message 7\""); });
        } else if (p <= 80) {
            timed(samples, "store", [&] {
                return c.run("STORE " + std::to_string(m) + (p % 2 ? " +FLAGS (\\Seen)" : " -FLAGS (\\Seen)"));
            });
        } else if (p <= 85) {
            timed(samples, "append", [&] { return c.append("bench-append", append_body); });
        } else if (p <= 94) {
            timed(samples, "noop", [&] { return c.run("NOOP"); });
        } else if (p <= 99) {
            // A client that keeps IDLE between its commands: in, at once out (the updates that came meanwhile
            // are read with the tagged reply).
            timed(samples, "idle", [&] { return c.idle_once(); });
        } else {
            timed(samples, "fetch_all_flags", [&] { return c.run("FETCH 1:* (FLAGS)"); });
        }
    }
    c.run("LOGOUT");
}

void logins(const Options& o, int index, StartLine& line, Samples& samples) {
    Clock::time_point until = line.arrive();
    while (Clock::now() < until) {
        auto start = Clock::now();
        Connection c(o, index);
        bool ok = c.run("LOGIN " + quoted(o.user) + " " + quoted(o.password)) && c.run("SELECT INBOX") &&
                  c.run("FETCH 1:10 (FLAGS)");
        c.run("LOGOUT");
        samples.add("login_cycle", Clock::now() - start);
        if (!ok) ++samples.errors;
    }
}

double percentile(std::vector<double>& v, double q) {
    if (v.empty()) return 0;
    // Nearest rank: the smallest value with at least q of the samples at or below it.
    const double rank = std::ceil(q * static_cast<double>(v.size()));
    std::size_t i = std::min(v.size() - 1, static_cast<std::size_t>(std::max(1.0, rank)) - 1);
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
    return v[i];
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string k = argv[i], v = argv[i + 1];
        if (k == "--host") o.host = v;
        else if (k == "--port") o.port = std::atoi(v.c_str());
        else if (k == "--user") o.user = v;
        else if (k == "--password") o.password = v;
        else if (k == "--clients") o.clients = std::atoi(v.c_str());
        else if (k == "--seconds") o.seconds = std::atoi(v.c_str());
        else if (k == "--mix") o.mix = v;
        else if (k == "--source-base") o.source_base = v;
        else throw std::invalid_argument("unknown option " + k);
    }
    if (o.user.empty() || o.clients < 1 || o.clients > 5000 || o.seconds < 1 || o.seconds > 600) {
        throw std::invalid_argument("need --user, 1..5000 --clients and 1..600 --seconds");
    }
    return o;
}

// The number of messages in INBOX, from EXAMINE's EXISTS, so fetch windows stay inside the mailbox.
int exists(const Options& o) {
    Connection c(o, 4999);
    if (!c.run("LOGIN " + quoted(o.user) + " " + quoted(o.password))) throw std::runtime_error("login failed");
    std::vector<std::string> untagged;
    c.run("EXAMINE INBOX", &untagged);
    c.run("LOGOUT");
    for (const auto& l : untagged) {
        if (l.size() > 2 && l.ends_with(" EXISTS")) return std::atoi(l.c_str() + 2);
    }
    throw std::runtime_error("EXAMINE INBOX gave no EXISTS");
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    try {
        o = parse(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "imap_load: %s\n", e.what());
        return 2;
    }
    int messages = 0;
    try {
        messages = exists(o);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "imap_load: %s\n", e.what());
        return 1;
    }
    Samples samples;
    StartLine line;
    line.waiting = o.clients;
    std::vector<std::thread> threads;
    std::atomic<int> failed_clients{0};
    for (int i = 0; i < o.clients; ++i) {
        threads.emplace_back([&, i] {
            try {
                if (o.mix == "login") logins(o, i, line, samples);
                else realistic(o, i, line, samples, messages);
            } catch (const std::exception& e) {
                ++failed_clients;
                std::fprintf(stderr, "imap_load: client %d: %s\n", i, e.what());
            }
        });
    }
    // The window opens once every client is logged in with INBOX selected (realistic) or at once (login).
    Clock::time_point start;
    {
        std::unique_lock lock(line.mutex);
        line.changed.wait_for(lock, std::chrono::seconds(300), [&] { return line.waiting <= 0; });
        start = Clock::now();
        line.until = start + std::chrono::seconds(o.seconds);
        line.started = true;
    }
    line.changed.notify_all();
    for (auto& t : threads) t.join();
    double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    std::vector<double> all;
    std::printf("{\"clients\": %d, \"seconds\": %.2f, \"errors\": %llu, \"failed_clients\": %d, \"kinds\": {", o.clients,
                elapsed, static_cast<unsigned long long>(samples.errors.load()), failed_clients.load());
    bool first = true;
    for (auto& [kind, v] : samples.millis) {
        if (!kind.starts_with("setup_")) all.insert(all.end(), v.begin(), v.end());
        std::printf("%s\"%s\": {\"ops\": %zu, \"p50_ms\": %.2f, \"p99_ms\": %.2f}", first ? "" : ", ", kind.c_str(),
                    v.size(), percentile(v, 0.5), percentile(v, 0.99));
        first = false;
    }
    std::printf("}, \"ops\": %zu, \"ops_per_second\": %.1f, \"p50_ms\": %.2f, \"p99_ms\": %.2f}\n", all.size(),
                static_cast<double>(all.size()) / elapsed, percentile(all, 0.5), percentile(all, 0.99));
    return failed_clients.load() == o.clients ? 1 : 0;
}
