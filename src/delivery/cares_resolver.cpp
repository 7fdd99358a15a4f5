#include "delivery/cares_resolver.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <poll.h>

#include <mutex>

#include <fmt/format.h>

namespace magpie::delivery {
namespace {

void library_init() {
    static std::once_flag once;
    std::call_once(once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
}

// One query's answer: the raw response or the c-ares status.
struct Raw {
    bool done = false;
    int status = ARES_SUCCESS;
    std::string response;
};

void on_answer(void* arg, int status, int, unsigned char* abuf, int alen) {
    auto* raw = static_cast<Raw*>(arg);
    raw->done = true;
    raw->status = status;
    if (status == ARES_SUCCESS && abuf && alen > 0) raw->response.assign(reinterpret_cast<char*>(abuf), alen);
}

DnsStatus status_of(int code) {
    switch (code) {
        case ARES_SUCCESS: return DnsStatus::ok;
        case ARES_ENODATA: return DnsStatus::no_data;
        case ARES_ENOTFOUND: return DnsStatus::no_domain;
        default: return DnsStatus::temporary;
    }
}

// Runs one query on a fresh channel and waits for it (poll on c-ares's sockets, its own timeouts).
Result<Raw> query(const std::string& server, std::chrono::seconds timeout, const std::string& name, int type) {
    library_init();
    ares_options options{};
    options.timeout = static_cast<int>(std::chrono::milliseconds(timeout).count() / 2);
    options.tries = 2;
    options.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
    ares_channel channel = nullptr;
    int rc = ares_init_options(&channel, &options, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS);
    if (rc != ARES_SUCCESS) return make_error(Errc::unavailable, fmt::format("DNS: {}", ares_strerror(rc)));
    std::unique_ptr<std::remove_pointer_t<ares_channel>, decltype(&ares_destroy)> guard(channel, ares_destroy);
    if (!server.empty()) {
        rc = ares_set_servers_ports_csv(channel, server.c_str());
        if (rc != ARES_SUCCESS) {
            return make_error(Errc::invalid_argument, fmt::format("DNS server '{}': {}", server, ares_strerror(rc)));
        }
    }
    Raw raw;
    ares_query(channel, name.c_str(), ns_c_in, type, on_answer, &raw);
    while (!raw.done) {
        ares_socket_t sockets[ARES_GETSOCK_MAXNUM];
        int mask = ares_getsock(channel, sockets, ARES_GETSOCK_MAXNUM);
        pollfd fds[ARES_GETSOCK_MAXNUM];
        nfds_t n = 0;
        for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
            short events = 0;
            if (ARES_GETSOCK_READABLE(mask, i)) events |= POLLIN;
            if (ARES_GETSOCK_WRITABLE(mask, i)) events |= POLLOUT;
            if (events) fds[n++] = pollfd{sockets[i], events, 0};
        }
        if (n == 0) break;
        timeval tv{};
        timeval* left = ares_timeout(channel, nullptr, &tv);
        int ms = left ? static_cast<int>(left->tv_sec * 1000 + left->tv_usec / 1000) : 1000;
        int ready = ::poll(fds, n, ms);
        if (ready <= 0) {
            ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts
            continue;
        }
        for (nfds_t i = 0; i < n; ++i) {
            ares_process_fd(channel, (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) ? fds[i].fd : ARES_SOCKET_BAD,
                            (fds[i].revents & POLLOUT) ? fds[i].fd : ARES_SOCKET_BAD);
        }
    }
    if (!raw.done) raw = Raw{true, ARES_ETIMEOUT, {}};
    return raw;
}

}  // namespace

Result<std::shared_ptr<CaresResolver>> CaresResolver::create(std::string server, std::chrono::seconds timeout) {
    library_init();
    if (!server.empty()) {
        ares_channel channel = nullptr;
        if (ares_init(&channel) != ARES_SUCCESS) return make_error(Errc::unavailable, "DNS: c-ares does not start");
        int rc = ares_set_servers_ports_csv(channel, server.c_str());
        ares_destroy(channel);
        if (rc != ARES_SUCCESS) {
            return make_error(Errc::invalid_argument, fmt::format("[queue] resolver '{}': {}", server, ares_strerror(rc)));
        }
    }
    return std::shared_ptr<CaresResolver>(new CaresResolver(std::move(server), timeout));
}

MxAnswer CaresResolver::mx(const std::string& domain) {
    MxAnswer answer;
    auto raw = query(server_, timeout_, domain, ns_t_mx);
    if (!raw) return MxAnswer{DnsStatus::temporary, {}, raw.error().message};
    answer.status = status_of(raw->status);
    if (answer.status != DnsStatus::ok) {
        answer.error = ares_strerror(raw->status);
        return answer;
    }
    ares_mx_reply* replies = nullptr;
    int rc = ares_parse_mx_reply(reinterpret_cast<const unsigned char*>(raw->response.data()),
                                 static_cast<int>(raw->response.size()), &replies);
    if (rc == ARES_ENODATA) return MxAnswer{DnsStatus::no_data, {}, {}};
    if (rc != ARES_SUCCESS) return MxAnswer{DnsStatus::temporary, {}, ares_strerror(rc)};
    for (auto* r = replies; r; r = r->next) answer.records.push_back(MxRecord{r->priority, r->host ? r->host : ""});
    ares_free_data(replies);
    return answer;
}

AddressAnswer CaresResolver::addresses(const std::string& host) {
    in6_addr probe6;
    in_addr probe4;
    if (inet_pton(AF_INET, host.c_str(), &probe4) == 1 || inet_pton(AF_INET6, host.c_str(), &probe6) == 1) {
        return AddressAnswer{DnsStatus::ok, {host}, {}};
    }
    AddressAnswer answer;
    answer.status = DnsStatus::no_data;
    for (int type : {ns_t_a, ns_t_aaaa}) {
        auto raw = query(server_, timeout_, host, type);
        DnsStatus status = raw ? status_of(raw->status) : DnsStatus::temporary;
        if (status != DnsStatus::ok) {
            if (status == DnsStatus::no_domain && answer.addresses.empty()) answer.status = DnsStatus::no_domain;
            if (status == DnsStatus::temporary) {
                answer.status = DnsStatus::temporary;
                answer.error = raw ? ares_strerror(raw->status) : raw.error().message;
            }
            continue;
        }
        hostent* entry = nullptr;
        const auto* data = reinterpret_cast<const unsigned char*>(raw->response.data());
        int len = static_cast<int>(raw->response.size());
        int rc = type == ns_t_a ? ares_parse_a_reply(data, len, &entry, nullptr, nullptr)
                                : ares_parse_aaaa_reply(data, len, &entry, nullptr, nullptr);
        if (rc != ARES_SUCCESS || !entry) continue;
        char text[INET6_ADDRSTRLEN];
        for (char** a = entry->h_addr_list; a && *a; ++a) {
            if (inet_ntop(entry->h_addrtype, *a, text, sizeof text)) answer.addresses.emplace_back(text);
        }
        ares_free_hostent(entry);
    }
    if (!answer.addresses.empty()) {
        answer.status = DnsStatus::ok;
        answer.error.clear();
    }
    return answer;
}

}  // namespace magpie::delivery
