// jmap_load: a JMAP load generator for side-by-side runs (bench/run.py, issue 17 scenario 4), the JMAP twin of
// imap_load. N clients, each a thread with one blocking HTTP/1.1 keep-alive connection and Basic authentication,
// run a weighted mix of JMAP requests (RFC 8620, RFC 8621) against one server for a fixed time and report
// requests per second with p50 and p99 latencies, per request kind, as one JSON object on stdout. One more
// connection listens on the server's EventSource (RFC 8620 7.3) and counts the StateChange events pushed.
//
//   jmap_load --host 127.0.0.1 --port 8080 --user u@bench.test --password pw --clients 10 --seconds 15
//             [--session-path /.well-known/jmap] [--source-base 127.3]
//
// The mix, per request: 35% a page (Email/query of 50 in INBOX by receivedAt, descending, at a random position,
// and Email/get of that page's list properties by back-reference, as a client's message list does), 20% one
// message's text body (Email/get with fetchTextBodyValues), 10% the unread ones (Email/query, notKeyword $seen:
// a subject search needs Cyrus's Xapian index, which the peer here runs without), 20%
// Email/set of $seen on or off, 10% Email/changes since the state the client last saw (what a client does when a
// push arrives), 5% Mailbox/get (the folder list with its counts). Each client connects from its own loopback
// source address (--source-base A.B gives A.B.x.y) so servers' per-address limits do not apply.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

constexpr const char* kCore = "urn:ietf:params:jmap:core";
constexpr const char* kMail = "urn:ietf:params:jmap:mail";

struct Options {
    std::string host = "127.0.0.1";
    int port = 80;
    std::string user, password;
    int clients = 1;
    int seconds = 10;
    std::string session_path = "/.well-known/jmap";
    std::string source_base = "127.3";
};

std::string base64(const std::string& in) {
    static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        unsigned v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8 | (unsigned char)in[i + 2];
        for (int s = 18; s >= 0; s -= 6) out += alphabet[(v >> s) & 63];
    }
    if (i + 1 == in.size()) {
        unsigned v = (unsigned char)in[i] << 16;
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += "==";
    } else if (i + 2 == in.size()) {
        unsigned v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8;
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += '=';
    }
    return out;
}

// A URL from the session object: absolute ("http://host:port/path") or a path; only the path is kept, since
// every request goes to --host and --port.
std::string path_of(const std::string& url) {
    std::size_t scheme = url.find("://");
    if (scheme == std::string::npos) return url;
    std::size_t slash = url.find('/', scheme + 3);
    return slash == std::string::npos ? "/" : url.substr(slash);
}

struct Response {
    int status = 0;
    std::map<std::string, std::string> headers;  // names in lower case
    std::string body;
};

// One HTTP/1.1 connection, keep-alive, speaking just enough of RFC 9112 for JMAP: Content-Length and chunked
// bodies, no compression (none is asked for).
class Connection {
public:
    Connection(const Options& options, int index) : options_(options) {
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
        authorization_ = "Basic " + base64(options.user + ":" + options.password);
    }
    ~Connection() { ::close(fd_); }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    Response get(const std::string& path, const std::string& accept = "application/json") {
        send("GET " + path + " HTTP/1.1\r\nHost: " + options_.host + "\r\nAuthorization: " + authorization_ +
             "\r\nAccept: " + accept + "\r\n\r\n");
        return read_response();
    }

    Response post(const std::string& path, const std::string& body) {
        send("POST " + path + " HTTP/1.1\r\nHost: " + options_.host + "\r\nAuthorization: " + authorization_ +
             "\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: " +
             std::to_string(body.size()) + "\r\n\r\n" + body);
        return read_response();
    }

    // Sends a GET and reads only the response head (an EventSource stream goes on after it).
    Response open_stream(const std::string& path) {
        send("GET " + path + " HTTP/1.1\r\nHost: " + options_.host + "\r\nAuthorization: " + authorization_ +
             "\r\nAccept: text/event-stream\r\n\r\n");
        return read_head();
    }

    // The next line of a stream (without LF or CRLF); false when the deadline passed or the peer closed.
    bool stream_line(std::string& out, Clock::time_point until) {
        for (;;) {
            std::size_t end = buffer_.find('\n');
            if (end != std::string::npos) {
                out = buffer_.substr(0, end);
                if (!out.empty() && out.back() == '\r') out.pop_back();
                buffer_.erase(0, end + 1);
                return true;
            }
            auto left = std::chrono::duration_cast<std::chrono::microseconds>(until - Clock::now()).count();
            if (left <= 0) return false;
            timeval tv{static_cast<time_t>(left / 1000000), static_cast<suseconds_t>(left % 1000000)};
            ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            char chunk[16384];
            ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
            if (n <= 0) return false;
            buffer_.append(chunk, static_cast<std::size_t>(n));
        }
    }

private:
    void send(const std::string& bytes) {
        std::size_t sent = 0;
        while (sent < bytes.size()) {
            ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
            if (n <= 0) throw std::runtime_error("send");
            sent += static_cast<std::size_t>(n);
        }
    }

    void fill() {
        char chunk[65536];
        ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
        if (n <= 0) throw std::runtime_error("connection closed");
        buffer_.append(chunk, static_cast<std::size_t>(n));
    }

    std::string line() {
        std::size_t end;
        while ((end = buffer_.find("\r\n")) == std::string::npos) fill();
        std::string out = buffer_.substr(0, end);
        buffer_.erase(0, end + 2);
        return out;
    }

    Response read_head() {
        Response r;
        std::string status = line();
        if (status.rfind("HTTP/1.", 0) != 0 || status.size() < 12) throw std::runtime_error("bad status line");
        r.status = std::atoi(status.c_str() + 9);
        for (;;) {
            std::string l = line();
            if (l.empty()) break;
            std::size_t colon = l.find(':');
            if (colon == std::string::npos) continue;
            std::string name = l.substr(0, colon);
            for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            std::size_t v = l.find_first_not_of(" \t", colon + 1);
            r.headers[name] = v == std::string::npos ? "" : l.substr(v);
        }
        return r;
    }

    Response read_response() {
        Response r = read_head();
        auto te = r.headers.find("transfer-encoding");
        if (te != r.headers.end() && te->second.find("chunked") != std::string::npos) {
            for (;;) {
                std::size_t size = std::strtoull(line().c_str(), nullptr, 16);
                if (size == 0) {
                    while (!line().empty()) {
                    }
                    break;
                }
                while (buffer_.size() < size + 2) fill();
                r.body.append(buffer_, 0, size);
                buffer_.erase(0, size + 2);
            }
        } else {
            auto cl = r.headers.find("content-length");
            std::size_t size = cl == r.headers.end() ? 0 : std::strtoull(cl->second.c_str(), nullptr, 10);
            while (buffer_.size() < size) fill();
            r.body = buffer_.substr(0, size);
            buffer_.erase(0, size);
        }
        auto connection = r.headers.find("connection");
        if (connection != r.headers.end() && connection->second.find("close") != std::string::npos)
            throw std::runtime_error("the server closed the keep-alive connection");
        return r;
    }

    const Options& options_;
    int fd_ = -1;
    std::string authorization_;
    std::string buffer_;
};

// What every client needs from the session object and the first requests.
struct Account {
    std::string api_path;
    std::string event_source_path;
    std::string account_id;
    std::string inbox_id;
    std::size_t total = 0;
};

// The first few failures go to stderr, so that a figure with errors says what they were.
std::atomic<int> failures_shown{0};

bool failed(const std::string& what, const std::string& body) {
    if (failures_shown++ < 3) std::fprintf(stderr, "jmap_load: %s: %.300s\n", what.c_str(), body.c_str());
    return false;
}

// Sends one JMAP request and returns its methodResponses; an HTTP error or any "error" response is a failure.
bool call(Connection& c, const Account& a, const json& calls, json* responses = nullptr) {
    json request = {{"using", {kCore, kMail}}, {"methodCalls", calls}};
    Response r = c.post(a.api_path, request.dump());
    if (r.status != 200) return failed("HTTP " + std::to_string(r.status), r.body);
    json body = json::parse(r.body, nullptr, false);
    if (body.is_discarded() || !body.contains("methodResponses")) return failed("not a JMAP response", r.body);
    for (const auto& response : body["methodResponses"]) {
        if (response.at(0) == "error") return failed("method error", response.dump());
    }
    if (responses) *responses = std::move(body["methodResponses"]);
    return true;
}

std::string expand(std::string url, const std::string& name, const std::string& value) {
    std::string key = "{" + name + "}";
    for (std::size_t at; (at = url.find(key)) != std::string::npos;) url.replace(at, key.size(), value);
    return url;
}

Account discover(const Options& o) {
    Connection c(o, 4999);
    Response session = c.get(o.session_path);
    for (int redirects = 0; redirects < 3 && session.status >= 300 && session.status < 400; ++redirects)
        session = c.get(path_of(session.headers["location"]));
    if (session.status != 200) throw std::runtime_error("session: HTTP " + std::to_string(session.status));
    json s = json::parse(session.body);
    Account a;
    a.api_path = path_of(s.at("apiUrl"));
    a.account_id = s.at("primaryAccounts").at(kMail);
    if (s.contains("eventSourceUrl")) {
        a.event_source_path = path_of(expand(expand(expand(s["eventSourceUrl"], "types", "*"), "closeafter", "no"),
                                             "ping", "0"));
    }
    json responses;
    if (!call(c, a,
              json::array({json::array({"Mailbox/query", {{"accountId", a.account_id}, {"filter", {{"role", "inbox"}}}},
                                        "0"})}),
              &responses))
        throw std::runtime_error("Mailbox/query failed");
    const auto& ids = responses.at(0).at(1).at("ids");
    if (ids.empty()) throw std::runtime_error("no inbox");
    a.inbox_id = ids.at(0);
    if (!call(c, a,
              json::array({json::array({"Email/query",
                                        {{"accountId", a.account_id},
                                         {"filter", {{"inMailbox", a.inbox_id}}},
                                         {"limit", 1},
                                         {"calculateTotal", true}},
                                        "0"})}),
              &responses))
        throw std::runtime_error("Email/query failed");
    a.total = responses.at(0).at(1).value("total", 0);
    return a;
}

struct Samples {
    std::mutex mutex;
    std::map<std::string, std::vector<double>> millis;  // per request kind
    std::atomic<std::uint64_t> errors{0};
    void add(const std::string& kind, Clock::duration d) {
        std::lock_guard lock(mutex);
        millis[kind].push_back(std::chrono::duration<double, std::milli>(d).count());
    }
};

template <class F>
void timed(Samples& samples, const std::string& kind, F&& f) {
    auto start = Clock::now();
    bool ok = f();
    samples.add(kind, Clock::now() - start);
    if (!ok) ++samples.errors;
}

void client(const Options& o, const Account& a, int index, Clock::time_point until, Samples& samples) {
    std::mt19937 random(static_cast<unsigned>(index) * 7919u + 1);
    Connection c(o, index);
    std::uniform_int_distribution<int> pick(1, 100);
    const std::size_t last_page = a.total > 50 ? a.total - 50 : 0;
    std::uniform_int_distribution<std::size_t> position(0, last_page);
    std::vector<std::string> seen_ids;  // from the pages this client listed
    std::string state;                  // Email state from the last Email/get or /changes
    const json in_inbox = {{"inMailbox", a.inbox_id}};
    const json by_date = json::array({{{"property", "receivedAt"}, {"isAscending", false}}});
    auto page = [&] {
        json responses;
        json calls = json::array(
            {json::array({"Email/query",
                          {{"accountId", a.account_id},
                           {"filter", in_inbox},
                           {"sort", by_date},
                           {"position", position(random)},
                           {"limit", 50}},
                          "q"}),
             json::array({"Email/get",
                          {{"accountId", a.account_id},
                           {"#ids", {{"resultOf", "q"}, {"name", "Email/query"}, {"path", "/ids"}}},
                           {"properties",
                            {"id", "threadId", "mailboxIds", "keywords", "from", "subject", "receivedAt", "size",
                             "preview"}}},
                          "g"})});
        if (!call(c, a, calls, &responses)) return false;
        const auto& got = responses.at(1).at(1);
        if (state.empty()) state = got.value("state", "");
        for (const auto& email : got.at("list")) {
            if (seen_ids.size() < 500) seen_ids.push_back(email.at("id"));
            else seen_ids[random() % seen_ids.size()] = email.at("id");
        }
        return true;
    };
    timed(samples, "page", page);
    while (Clock::now() < until) {
        int p = pick(random);
        const std::string id = seen_ids.empty() ? std::string() : seen_ids[random() % seen_ids.size()];
        if (p <= 35 || id.empty()) {
            timed(samples, "page", page);
        } else if (p <= 55) {
            timed(samples, "get_body", [&] {
                return call(c, a,
                            json::array({json::array({"Email/get",
                                                      {{"accountId", a.account_id},
                                                       {"ids", {id}},
                                                       {"properties", {"id", "textBody", "bodyValues"}},
                                                       {"fetchTextBodyValues", true}},
                                                      "b"})}));
            });
        } else if (p <= 65) {
            timed(samples, "unread", [&] {
                return call(c, a,
                            json::array({json::array({"Email/query",
                                                      {{"accountId", a.account_id},
                                                       {"filter",
                                                        {{"operator", "AND"},
                                                         {"conditions",
                                                          {in_inbox, {{"notKeyword", "$seen"}}}}}},
                                                       {"sort", by_date},
                                                       {"limit", 50}},
                                                      "s"})}));
            });
        } else if (p <= 85) {
            timed(samples, "set_keywords", [&] {
                json patch = {{"keywords/$seen", p % 2 ? json(true) : json(nullptr)}};
                json responses;
                bool ok = call(c, a,
                               json::array({json::array({"Email/set",
                                                         {{"accountId", a.account_id},
                                                          {"update", {{id, patch}}}},
                                                         "k"})}),
                               &responses);
                return ok && responses.at(0).at(1).contains("updated") &&
                       responses.at(0).at(1)["updated"].contains(id);
            });
        } else if (p <= 95) {
            timed(samples, "changes", [&] {
                if (state.empty()) return true;
                json responses;
                bool ok = call(c, a,
                               json::array({json::array({"Email/changes",
                                                         {{"accountId", a.account_id},
                                                          {"sinceState", state},
                                                          {"maxChanges", 256}},
                                                         "c"})}),
                               &responses);
                if (ok) state = responses.at(0).at(1).value("newState", state);
                return ok;
            });
        } else {
            timed(samples, "mailboxes", [&] {
                return call(c, a,
                            json::array({json::array({"Mailbox/get", {{"accountId", a.account_id}, {"ids", nullptr}},
                                                      "m"})}));
            });
        }
    }
}

// Listens on the EventSource for the whole run and counts the state events pushed (RFC 8620 7.3).
void push_listener(const Options& o, const Account& a, Clock::time_point until, std::atomic<std::uint64_t>& events,
                   std::string& problem) {
    try {
        Connection c(o, 4998);
        Response head = c.open_stream(a.event_source_path);
        if (head.status != 200) {
            problem = "EventSource: HTTP " + std::to_string(head.status);
            return;
        }
        std::string line;
        while (c.stream_line(line, until)) {
            if (line.rfind("event: state", 0) == 0 || line.rfind("event:state", 0) == 0) ++events;
        }
    } catch (const std::exception& e) {
        problem = std::string("EventSource: ") + e.what();
    }
}

double percentile(std::vector<double>& v, double q) {
    if (v.empty()) return 0;
    std::size_t i = std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())));
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
        else if (k == "--session-path") o.session_path = v;
        else if (k == "--source-base") o.source_base = v;
        else throw std::invalid_argument("unknown option " + k);
    }
    if (o.user.empty() || o.clients < 1 || o.clients > 4000 || o.seconds < 1 || o.seconds > 600) {
        throw std::invalid_argument("need --user, 1..4000 --clients and 1..600 --seconds");
    }
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    Account account;
    try {
        o = parse(argc, argv);
        account = discover(o);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "jmap_load: %s\n", e.what());
        return 1;
    }
    Samples samples;
    auto start = Clock::now();
    auto until = start + std::chrono::seconds(o.seconds);
    std::atomic<std::uint64_t> pushed{0};
    std::string push_problem = account.event_source_path.empty() ? "no eventSourceUrl in the session" : "";
    std::thread listener;
    if (push_problem.empty()) {
        listener = std::thread([&] { push_listener(o, account, until + std::chrono::seconds(1), pushed, push_problem); });
    }
    std::vector<std::thread> threads;
    std::atomic<int> failed_clients{0};
    for (int i = 0; i < o.clients; ++i) {
        threads.emplace_back([&, i] {
            try {
                client(o, account, i, until, samples);
            } catch (const std::exception& e) {
                ++failed_clients;
                std::fprintf(stderr, "jmap_load: client %d: %s\n", i, e.what());
            }
        });
    }
    for (auto& t : threads) t.join();
    double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    if (listener.joinable()) listener.join();
    if (!push_problem.empty()) std::fprintf(stderr, "jmap_load: %s\n", push_problem.c_str());
    std::vector<double> all;
    std::printf("{\"clients\": %d, \"seconds\": %.2f, \"messages\": %zu, \"errors\": %llu, \"failed_clients\": %d, "
                "\"push_events\": %llu, \"kinds\": {",
                o.clients, elapsed, account.total, static_cast<unsigned long long>(samples.errors.load()),
                failed_clients.load(), static_cast<unsigned long long>(pushed.load()));
    bool first = true;
    for (auto& [kind, v] : samples.millis) {
        all.insert(all.end(), v.begin(), v.end());
        std::printf("%s\"%s\": {\"ops\": %zu, \"p50_ms\": %.2f, \"p99_ms\": %.2f}", first ? "" : ", ", kind.c_str(),
                    v.size(), percentile(v, 0.5), percentile(v, 0.99));
        first = false;
    }
    std::printf("}, \"ops\": %zu, \"ops_per_second\": %.1f, \"p50_ms\": %.2f, \"p99_ms\": %.2f}\n", all.size(),
                static_cast<double>(all.size()) / elapsed, percentile(all, 0.5), percentile(all, 0.99));
    return failed_clients.load() == o.clients ? 1 : 0;
}
