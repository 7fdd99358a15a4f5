#include "dns/resolver.h"

#include <ares.h>
#include <ares_dns.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>

#include <algorithm>
#include <mutex>
#include <random>
#include <utility>

#include "base/strings.h"

namespace magpie::dns {

struct Resolver::Channel {
    ares_channel channel = nullptr;
    ~Channel() {
        if (channel) ares_destroy(channel);
    }
};

struct Resolver::Lookup {
    std::string domain;
    Callback done;
    Route route;
    std::vector<bool> needs_addresses;  // per target: resolve its host (not given as an address)
    std::vector<std::vector<std::string>> ipv4, ipv6;
    int pending = 0;
    std::string temporary_reason;  // the first temporary failure of an address lookup
};

// One outstanding c-ares query; owned by c-ares until its callback runs.
struct Resolver::Query {
    Resolver* resolver;
    Lookup* lookup;
    int type;
    std::size_t target;
};

// One lookup() in flight; owned by c-ares until on_records runs.
struct Resolver::RecordQuery {
    Resolver* resolver;
    RecordType type;
    std::string name;
    RecordsCallback done;
};

namespace {

Error temporary(std::string message) {
    return make_error(Errc::unavailable, std::move(message));
}

// RFC 1035 2.3.1 / RFC 1123 2.1 host names, as looked up: ASCII labels of 1 to 63 octets, 253 in all.
// (Underscores are let through: they do appear in real names.)
bool is_dns_name(std::string_view name) {
    if (name.empty() || name.size() > 253) return false;
    for (auto label : split(name, '.')) {
        if (label.empty() || label.size() > 63) return false;
        for (char c : label) {
            bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
            if (!ok) return false;
        }
    }
    return true;
}

// "192.0.2.1" or "2001:db8::1" (also "[2001:db8::1]") in canonical text, or nothing.
std::optional<std::string> ip_text(std::string_view text) {
    if (text.size() > 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
    std::string s(text);
    unsigned char buffer[sizeof(in6_addr)];
    char out[INET6_ADDRSTRLEN];
    if (inet_pton(AF_INET, s.c_str(), buffer) == 1 && inet_ntop(AF_INET, buffer, out, sizeof out))
        return std::string(out);
    if (inet_pton(AF_INET6, s.c_str(), buffer) == 1 && inet_ntop(AF_INET6, buffer, out, sizeof out))
        return std::string(out);
    return std::nullopt;
}

// "192.0.2.1" -> "1.2.0.192.in-addr.arpa"; "2001:db8::1" -> nibbles under ip6.arpa (RFC 3596 2.5).
std::optional<std::string> reverse_name(std::string_view address) {
    std::string s(address);
    unsigned char bytes[sizeof(in6_addr)];
    if (inet_pton(AF_INET, s.c_str(), bytes) == 1)
        return fmt::format("{}.{}.{}.{}.in-addr.arpa", bytes[3], bytes[2], bytes[1], bytes[0]);
    if (inet_pton(AF_INET6, s.c_str(), bytes) != 1) return std::nullopt;
    std::string out;
    static constexpr char kHex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; --i) {
        out += kHex[bytes[i] & 0xf];
        out += '.';
        out += kHex[bytes[i] >> 4];
        out += '.';
    }
    return out + "ip6.arpa";
}

int ns_type(RecordType type) {
    switch (type) {
        case RecordType::txt:
            return ns_t_txt;
        case RecordType::a:
            return ns_t_a;
        case RecordType::aaaa:
            return ns_t_aaaa;
        case RecordType::mx:
            return ns_t_mx;
        case RecordType::ptr:
            return ns_t_ptr;
        case RecordType::srv:
            return ns_t_srv;
        case RecordType::cname:
            return ns_t_cname;
        case RecordType::tlsa:
            return 52;  // RFC 6698 7.1 (arpa/nameser.h has no ns_t_tlsa)
    }
    return ns_t_txt;
}

const char* type_name(RecordType type) {
    switch (type) {
        case RecordType::txt:
            return "TXT";
        case RecordType::a:
            return "A";
        case RecordType::aaaa:
            return "AAAA";
        case RecordType::mx:
            return "MX";
        case RecordType::ptr:
            return "PTR";
        case RecordType::srv:
            return "SRV";
        case RecordType::cname:
            return "CNAME";
        case RecordType::tlsa:
            return "TLSA";
    }
    return "?";
}

std::string without_root_dot(const char* name) {
    std::string out = name ? to_lower(name) : std::string();
    if (out.ends_with('.')) out.pop_back();
    return out;
}

// The answer section's records of `type`, each its RDATA's offset and length in `answer` (RFC 1035 4.1),
// at most `max`. c-ares 1.18 has no parser for CNAME (or TLSA) answers, so the walk over the message is
// here: names are skipped with ares_expand_name, which also bounds compression pointers.
struct RawRecord {
    std::size_t offset;
    std::size_t length;
};
int raw_records(const unsigned char* answer, int length, int type, std::size_t max, std::vector<RawRecord>& out) {
    if (length < 12) return ARES_EBADRESP;
    const auto at16 = [&](long at) { return static_cast<unsigned>(answer[at] << 8 | answer[at + 1]); };
    const unsigned questions = at16(4), answers = at16(6);
    long at = 12;
    auto skip_name = [&]() {
        char* name = nullptr;
        long used = 0;
        int status = ares_expand_name(answer + at, answer, length, &name, &used);
        if (name) ares_free_string(name);
        if (status == ARES_SUCCESS) at += used;
        return status;
    };
    for (unsigned i = 0; i < questions; ++i) {
        if (skip_name() != ARES_SUCCESS || at + 4 > length) return ARES_EBADRESP;
        at += 4;
    }
    for (unsigned i = 0; i < answers && out.size() < max; ++i) {
        if (skip_name() != ARES_SUCCESS || at + 10 > length) return ARES_EBADRESP;
        const int rr_type = static_cast<int>(at16(at));
        const std::size_t rdlength = at16(at + 8);
        at += 10;
        if (at + static_cast<long>(rdlength) > length) return ARES_EBADRESP;
        if (rr_type == type) out.push_back(RawRecord{static_cast<std::size_t>(at), rdlength});
        at += static_cast<long>(rdlength);
    }
    return out.empty() ? ARES_ENODATA : ARES_SUCCESS;
}

// Parses an answer of `type` into text records; status is a c-ares status.
int parse_records(RecordType type, const unsigned char* answer, int length, std::vector<std::string>& out) {
    constexpr std::size_t kMax = Resolver::kMaxRecordsPerAnswer;
    char text[INET6_ADDRSTRLEN];
    int status = ARES_SUCCESS;
    if (type == RecordType::txt) {
        ares_txt_ext* replies = nullptr;
        status = ares_parse_txt_reply_ext(answer, length, &replies);
        // One record may hold several strings (RFC 1035 3.3.14): they are joined without separator.
        for (ares_txt_ext* r = replies; status == ARES_SUCCESS && r; r = r->next) {
            if (r->record_start || out.empty()) {
                if (out.size() == kMax) break;
                out.emplace_back();
            }
            out.back().append(reinterpret_cast<const char*>(r->txt), r->length);
        }
        if (replies) ares_free_data(replies);
    } else if (type == RecordType::a) {
        ares_addrttl records[kMax];
        int count = static_cast<int>(kMax);
        status = ares_parse_a_reply(answer, length, nullptr, records, &count);
        for (int i = 0; status == ARES_SUCCESS && i < count; ++i)
            if (inet_ntop(AF_INET, &records[i].ipaddr, text, sizeof text)) out.emplace_back(text);
    } else if (type == RecordType::aaaa) {
        ares_addr6ttl records[kMax];
        int count = static_cast<int>(kMax);
        status = ares_parse_aaaa_reply(answer, length, nullptr, records, &count);
        for (int i = 0; status == ARES_SUCCESS && i < count; ++i)
            if (inet_ntop(AF_INET6, &records[i].ip6addr, text, sizeof text)) out.emplace_back(text);
    } else if (type == RecordType::mx) {
        ares_mx_reply* replies = nullptr;
        status = ares_parse_mx_reply(answer, length, &replies);
        std::vector<std::pair<unsigned short, std::string>> hosts;
        for (ares_mx_reply* r = replies; status == ARES_SUCCESS && r && hosts.size() < kMax; r = r->next)
            hosts.emplace_back(r->priority, without_root_dot(r->host));
        if (replies) ares_free_data(replies);
        std::stable_sort(hosts.begin(), hosts.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
        for (auto& host : hosts) out.push_back(std::move(host.second));
    } else if (type == RecordType::srv) {
        ares_srv_reply* replies = nullptr;
        status = ares_parse_srv_reply(answer, length, &replies);
        for (ares_srv_reply* r = replies; status == ARES_SUCCESS && r && out.size() < kMax; r = r->next) {
            std::string target = without_root_dot(r->host);
            out.push_back(fmt::format("{} {} {} {}", r->priority, r->weight, r->port,
                                      target.empty() ? "." : target));
        }
        if (replies) ares_free_data(replies);
    } else if (type == RecordType::cname) {
        std::vector<RawRecord> records;
        status = raw_records(answer, length, ns_t_cname, kMax, records);
        for (const RawRecord& r : records) {
            char* name = nullptr;
            long used = 0;
            status = ares_expand_name(answer + r.offset, answer, length, &name, &used);
            if (status == ARES_SUCCESS) out.push_back(without_root_dot(name));
            if (name) ares_free_string(name);
            if (status != ARES_SUCCESS) break;
        }
    } else if (type == RecordType::tlsa) {
        std::vector<RawRecord> records;
        status = raw_records(answer, length, 52, kMax, records);
        for (const RawRecord& r : records) {
            if (r.length < 4) continue;  // RFC 6698 2.1: three octets and some data
            const unsigned char* d = answer + r.offset;
            std::string hex;
            for (std::size_t i = 3; i < r.length; ++i) hex += fmt::format("{:02x}", d[i]);
            out.push_back(fmt::format("{} {} {} {}", d[0], d[1], d[2], hex));
        }
    } else {
        hostent* host = nullptr;
        unsigned char unused[sizeof(in6_addr)] = {};
        status = ares_parse_ptr_reply(answer, length, unused, 4, AF_INET, &host);
        if (status == ARES_SUCCESS && host) {
            out.push_back(without_root_dot(host->h_name));
            // c-ares lists the first name again among the aliases.
            for (char** alias = host->h_aliases; alias && *alias && out.size() < kMax; ++alias) {
                std::string name = without_root_dot(*alias);
                if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(std::move(name));
            }
        }
        if (host) ares_free_hostent(host);
    }
    return status;
}

std::once_flag library_once;
int library_status = ARES_SUCCESS;

}  // namespace

bool is_permanent(const Error& error) {
    return error.code == Errc::not_found || error.code == Errc::permission_denied ||
           error.code == Errc::invalid_argument;
}

std::string_view enhanced_status(const Error& error) {
    switch (error.code) {
        case Errc::permission_denied:
            return "5.1.10";  // RFC 7505 4.2
        case Errc::not_found:
        case Errc::invalid_argument:
            return "5.1.2";  // RFC 3463 3.2: bad destination system address
        default:
            return "4.4.3";  // RFC 3463 3.5: directory server failure
    }
}

Resolver::Resolver(ResolverConfig config)
    : config_(std::move(config)), channel_(std::make_unique<Channel>()) {
    rng_state_ = config_.shuffle_seed != 0 ? config_.shuffle_seed : std::random_device{}();
    if (rng_state_ == 0) rng_state_ = 1;
}

Resolver::~Resolver() {
    // c-ares calls every pending callback with ARES_EDESTRUCTION; they free their Query and stop there.
    destroying_ = true;
    channel_.reset();
    lookups_.clear();
}

Result<std::unique_ptr<Resolver>> Resolver::create(ResolverConfig config) {
    std::call_once(library_once, [] { library_status = ares_library_init(ARES_LIB_INIT_ALL); });
    if (library_status != ARES_SUCCESS)
        return make_error(Errc::io_error, std::string("c-ares: ") + ares_strerror(library_status));
    std::unique_ptr<Resolver> resolver(new Resolver(std::move(config)));
    const ResolverConfig& c = resolver->config_;
    ares_options options{};
    options.timeout = std::max(c.timeout_ms, 1);
    options.tries = std::max(c.tries, 1);
    // No search list and no /etc/hosts: a mail domain is always a full name, and DNS is the truth.
    options.flags = ARES_FLAG_NOSEARCH;
    options.lookups = const_cast<char*>("b");
    int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS | ARES_OPT_LOOKUPS;
    int status = ares_init_options(&resolver->channel_->channel, &options, mask);
    if (status != ARES_SUCCESS)
        return make_error(Errc::io_error, std::string("c-ares: ") + ares_strerror(status));
    if (!c.servers.empty()) {
        status = ares_set_servers_ports_csv(resolver->channel_->channel, c.servers.c_str());
        if (status != ARES_SUCCESS)
            return make_error(Errc::invalid_argument, fmt::format("bad DNS server list \"{}\": {}", c.servers,
                                                                  ares_strerror(status)));
    }
    return resolver;
}

void Resolver::resolve(std::string_view domain_in, Callback done) {
    auto owned = std::make_unique<Lookup>();
    Lookup& lookup = *owned;
    lookup.done = std::move(done);
    lookups_.push_back(std::move(owned));

    std::string domain = to_lower(domain_in);
    // RFC 5321 4.1.3: an address literal is the destination itself.
    if (domain.size() > 2 && domain.front() == '[' && domain.back() == ']') {
        std::string_view inner = std::string_view(domain).substr(1, domain.size() - 2);
        bool v6_tag = istarts_with(inner, "ipv6:");
        if (v6_tag) inner.remove_prefix(5);
        auto ip = ip_text(inner);
        if (!ip || (v6_tag != (ip->find(':') != std::string::npos))) {
            finish(lookup, make_error(Errc::invalid_argument, fmt::format("bad address literal {}", domain)));
            return;
        }
        lookup.route.domain = domain;
        lookup.route.targets.push_back(Target{domain, 0, 25, {*ip}});
        finish(lookup, std::move(lookup.route));
        return;
    }
    if (domain.ends_with('.')) domain.pop_back();
    lookup.domain = domain;
    lookup.route.domain = domain;
    if (!is_ascii(domain)) {
        // IDNA (RFC 5891) would turn a U-label into the A-label DNS knows; not done here.
        finish(lookup, make_error(Errc::invalid_argument,
                                  fmt::format("cannot look up {}: not an ASCII domain name", domain)));
        return;
    }
    if (!is_dns_name(domain)) {
        finish(lookup, make_error(Errc::invalid_argument, fmt::format("{} is not a domain name", domain)));
        return;
    }

    auto route = config_.static_routes.find(domain);
    if (route == config_.static_routes.end()) route = config_.static_routes.find("*");
    if (route == config_.static_routes.end()) {
        start_mx(lookup);
        return;
    }
    lookup.route.static_route = true;
    for (const StaticRoute& entry : route->second) {
        auto ip = ip_text(entry.host);
        lookup.route.targets.push_back(Target{to_lower(entry.host), 0, entry.port, {}});
        if (ip) lookup.route.targets.back().addresses.push_back(*ip);
        lookup.needs_addresses.push_back(!ip);
    }
    start_addresses(lookup);
}

void Resolver::start_mx(Lookup& lookup) {
    query(lookup, ns_t_mx, 0);
}

void Resolver::start_addresses(Lookup& lookup) {
    const std::size_t n = lookup.route.targets.size();
    lookup.needs_addresses.resize(n, true);
    lookup.ipv4.assign(n, {});
    lookup.ipv6.assign(n, {});
    // Count every query before sending any: an answer may arrive (and be processed) only later, but a
    // query can also fail at once inside ares_query.
    std::vector<std::pair<int, std::size_t>> queries;
    for (std::size_t i = 0; i < n; ++i) {
        if (!lookup.needs_addresses[i]) continue;
        if (config_.ipv4) queries.emplace_back(ns_t_a, i);
        if (config_.ipv6) queries.emplace_back(ns_t_aaaa, i);
    }
    if (queries.empty()) {
        finish_addresses(lookup);
        return;
    }
    lookup.pending += static_cast<int>(queries.size());
    for (auto [type, target] : queries) query(lookup, type, target);
}

void Resolver::query(Lookup& lookup, int type, std::size_t target) {
    const std::string& name = type == ns_t_mx ? lookup.domain : lookup.route.targets[target].host;
    auto* q = new Query{this, &lookup, type, target};
    ares_query(channel_->channel, name.c_str(), ns_c_in, type, &Resolver::on_answer, q);
}

void Resolver::on_answer(void* arg, int status, int /*timeouts*/, unsigned char* answer, int length) {
    std::unique_ptr<Query> q(static_cast<Query*>(arg));
    if (status == ARES_EDESTRUCTION || q->resolver->destroying_) return;
    q->resolver->answered(*q, status, answer, length);
}

void Resolver::answered(Query& q, int status, const unsigned char* answer, int length) {
    if (q.type == ns_t_mx) {
        on_mx(*q.lookup, status, answer, length);
    } else {
        on_address(*q.lookup, q.type, q.target, status, answer, length);
    }
}

void Resolver::on_mx(Lookup& lookup, int status, const unsigned char* answer, int length) {
    const std::string& domain = lookup.domain;
    ares_mx_reply* replies = nullptr;
    if (status == ARES_SUCCESS) status = ares_parse_mx_reply(answer, length, &replies);
    if (status == ARES_ENODATA) {
        // RFC 5321 5.1: no MX records: the domain itself is the one host, with preference 0.
        lookup.route.implicit_mx = true;
        lookup.route.targets.push_back(Target{domain, 0, 25, {}});
        start_addresses(lookup);
        return;
    }
    if (status == ARES_ENOTFOUND) {
        finish(lookup,
               make_error(Errc::not_found, fmt::format("domain {} does not exist (NXDOMAIN)", domain)));
        return;
    }
    if (status != ARES_SUCCESS) {
        finish(lookup, temporary(fmt::format("MX lookup for {} failed: {}", domain, ares_strerror(status))));
        return;
    }
    std::vector<Target> hosts;
    bool null_mx = false;
    for (ares_mx_reply* r = replies; r; r = r->next) {
        std::string host = r->host ? to_lower(r->host) : std::string();
        if (host.ends_with('.')) host.pop_back();
        // RFC 7505 3: a null MX is "0 ." (the root); as the only record it means: no mail here. Beside
        // other records it is a misconfiguration, and the others are used.
        if (host.empty()) {
            null_mx = true;
            continue;
        }
        hosts.push_back(Target{std::move(host), r->priority, 25, {}});
    }
    ares_free_data(replies);
    if (hosts.empty()) {
        if (null_mx) {
            finish(lookup, make_error(Errc::permission_denied,
                                      fmt::format("domain {} accepts no mail (null MX, RFC 7505)", domain)));
        } else {
            finish(lookup, temporary(fmt::format("MX lookup for {}: empty answer", domain)));
        }
        return;
    }
    // RFC 5321 5.1: lowest preference first; equal preferences in random order, to spread the load.
    std::stable_sort(hosts.begin(), hosts.end(),
                     [](const Target& a, const Target& b) { return a.preference < b.preference; });
    std::minstd_rand rng(rng_state_);
    rng_state_ = static_cast<std::uint32_t>(rng());
    for (auto begin = hosts.begin(); begin != hosts.end();) {
        auto end = std::find_if(begin, hosts.end(),
                                [&](const Target& t) { return t.preference != begin->preference; });
        std::shuffle(begin, end, rng);
        begin = end;
    }
    // The same host may appear twice (two preferences): the first place counts.
    std::vector<Target> unique;
    for (auto& host : hosts) {
        bool seen =
            std::any_of(unique.begin(), unique.end(), [&](const Target& t) { return t.host == host.host; });
        if (!seen && unique.size() < std::max<std::size_t>(config_.max_mx_hosts, 1))
            unique.push_back(std::move(host));
    }
    lookup.route.targets = std::move(unique);
    start_addresses(lookup);
}

void Resolver::on_address(Lookup& lookup, int type, std::size_t target, int status,
                          const unsigned char* answer, int length) {
    constexpr int kMaxRecords = 32;
    auto& out = type == ns_t_a ? lookup.ipv4[target] : lookup.ipv6[target];
    char text[INET6_ADDRSTRLEN];
    if (status == ARES_SUCCESS && type == ns_t_a) {
        ares_addrttl records[kMaxRecords];
        int count = kMaxRecords;
        status = ares_parse_a_reply(answer, length, nullptr, records, &count);
        for (int i = 0; status == ARES_SUCCESS && i < count; ++i) {
            if (inet_ntop(AF_INET, &records[i].ipaddr, text, sizeof text)) out.emplace_back(text);
        }
    } else if (status == ARES_SUCCESS) {
        ares_addr6ttl records[kMaxRecords];
        int count = kMaxRecords;
        status = ares_parse_aaaa_reply(answer, length, nullptr, records, &count);
        for (int i = 0; status == ARES_SUCCESS && i < count; ++i) {
            if (inet_ntop(AF_INET6, &records[i].ip6addr, text, sizeof text)) out.emplace_back(text);
        }
    }
    // No such host or no record of this type: nothing to add. Anything else may pass: remember it.
    if (status != ARES_SUCCESS && status != ARES_ENODATA && status != ARES_ENOTFOUND &&
        lookup.temporary_reason.empty()) {
        lookup.temporary_reason = fmt::format("{} lookup for {} failed: {}", type == ns_t_a ? "A" : "AAAA",
                                              lookup.route.targets[target].host, ares_strerror(status));
    }
    if (--lookup.pending == 0) finish_addresses(lookup);
}

void Resolver::finish_addresses(Lookup& lookup) {
    Route& route = lookup.route;
    const std::size_t limit = std::max<std::size_t>(config_.max_addresses_per_host, 1);
    std::vector<Target> kept;
    for (std::size_t i = 0; i < route.targets.size(); ++i) {
        Target& target = route.targets[i];
        auto& first = config_.prefer_ipv6 ? lookup.ipv6[i] : lookup.ipv4[i];
        auto& second = config_.prefer_ipv6 ? lookup.ipv4[i] : lookup.ipv6[i];
        for (auto* list : {&first, &second}) {
            for (auto& address : *list) {
                if (target.addresses.size() < limit &&
                    std::find(target.addresses.begin(), target.addresses.end(), address) ==
                        target.addresses.end())
                    target.addresses.push_back(std::move(address));
            }
        }
        if (!target.addresses.empty()) kept.push_back(std::move(target));
    }
    route.targets = std::move(kept);
    if (!route.targets.empty()) {
        finish(lookup, std::move(route));
        return;
    }
    const std::string& domain = route.domain;
    if (!lookup.temporary_reason.empty()) {
        finish(lookup, temporary(fmt::format("no address for the mail hosts of {}: {}", domain,
                                             lookup.temporary_reason)));
    } else if (route.implicit_mx) {
        finish(lookup,
               make_error(Errc::not_found, fmt::format("{} has no MX record and no address", domain)));
    } else if (route.static_route) {
        finish(lookup,
               make_error(Errc::not_found, fmt::format("no address for the static route of {}", domain)));
    } else {
        finish(lookup, make_error(Errc::not_found, fmt::format("no MX host of {} has an address", domain)));
    }
}

void Resolver::finish(Lookup& lookup, Result<Route> result) {
    auto it =
        std::find_if(lookups_.begin(), lookups_.end(), [&](const auto& l) { return l.get() == &lookup; });
    std::unique_ptr<Lookup> owned = std::move(*it);
    lookups_.erase(it);
    // The callback may start another lookup: the list is already consistent.
    owned->done(std::move(result));
}

std::vector<Resolver::Socket> Resolver::sockets() const {
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    int bits = ares_getsock(channel_->channel, socks, ARES_GETSOCK_MAXNUM);
    std::vector<Socket> out;
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
        bool read = ARES_GETSOCK_READABLE(bits, i);
        bool write = ARES_GETSOCK_WRITABLE(bits, i);
        if (read || write) out.push_back(Socket{socks[i], read, write});
    }
    return out;
}

std::optional<std::chrono::milliseconds> Resolver::timeout() const {
    timeval tv{};
    timeval* next = ares_timeout(channel_->channel, nullptr, &tv);
    if (!next) return std::nullopt;
    return std::chrono::milliseconds(next->tv_sec * 1000 + (next->tv_usec + 999) / 1000);
}

void Resolver::process(int read_fd, int write_fd) {
    ares_process_fd(channel_->channel, read_fd < 0 ? ARES_SOCKET_BAD : read_fd,
                    write_fd < 0 ? ARES_SOCKET_BAD : write_fd);
}

bool Resolver::busy() const {
    return !lookups_.empty() || record_queries_ > 0;
}

void Resolver::lookup(RecordType type, std::string_view name_in, RecordsCallback done) {
    std::string name = to_lower(name_in);
    if (type == RecordType::ptr) {
        auto reversed = reverse_name(name);
        if (!reversed) {
            done(make_error(Errc::invalid_argument, fmt::format("{} is not an IP address", name)));
            return;
        }
        name = *reversed;
    }
    if (name.ends_with('.')) name.pop_back();
    if (!is_ascii(name) || !is_dns_name(name)) {
        done(make_error(Errc::invalid_argument, fmt::format("{} is not a domain name", name)));
        return;
    }
    ++record_queries_;
    auto* q = new RecordQuery{this, type, name, std::move(done)};
    ares_query(channel_->channel, q->name.c_str(), ns_c_in, ns_type(type), &Resolver::on_records, q);
}

void Resolver::on_records(void* arg, int status, int /*timeouts*/, unsigned char* answer, int length) {
    std::unique_ptr<RecordQuery> q(static_cast<RecordQuery*>(arg));
    if (status == ARES_EDESTRUCTION || q->resolver->destroying_) return;
    --q->resolver->record_queries_;
    std::vector<std::string> records;
    if (status == ARES_SUCCESS) status = parse_records(q->type, answer, length, records);
    if (status == ARES_SUCCESS || status == ARES_ENODATA) {
        q->done(std::move(records));
    } else if (status == ARES_ENOTFOUND) {
        q->done(make_error(Errc::not_found, fmt::format("{} does not exist (NXDOMAIN)", q->name)));
    } else {
        q->done(temporary(
            fmt::format("{} lookup for {} failed: {}", type_name(q->type), q->name, ares_strerror(status))));
    }
}

Result<std::vector<std::string>> Resolver::lookup_blocking(RecordType type, std::string_view name) {
    std::optional<Result<std::vector<std::string>>> out;
    bool finished = false;
    lookup(type, name, [&](Result<std::vector<std::string>> result) {
        out.emplace(std::move(result));
        finished = true;
    });
    wait_until(finished);
    return std::move(*out);
}

Result<Resolver::SecureRecords> Resolver::lookup_secure_blocking(RecordType type, std::string_view name_in) {
    std::string name = to_lower(name_in);
    if (name.ends_with('.')) name.pop_back();
    if (!is_ascii(name) || !is_dns_name(name))
        return make_error(Errc::invalid_argument, fmt::format("{} is not a domain name", name));
    unsigned char* query = nullptr;
    int query_length = 0;
    // EDNS0 with a 1232-octet UDP size (the DNS flag day 2020 value): DNSSEC answers are large.
    int status = ares_create_query(name.c_str(), ns_c_in, ns_type(type), 0, 1, &query, &query_length, 1232);
    if (status != ARES_SUCCESS) return make_error(Errc::invalid_argument, ares_strerror(status));
    std::string packet(reinterpret_cast<const char*>(query), static_cast<std::size_t>(query_length));
    ares_free_string(query);
    // Header flags: AD (RFC 6840 5.7). The OPT record is last: its TTL's third octet holds DO (RFC 3225 3).
    packet[3] = static_cast<char>(packet[3] | 0x20);
    if (packet.size() >= 11) packet[packet.size() - 4] = static_cast<char>(packet[packet.size() - 4] | 0x80);

    struct Outcome {
        bool finished = false;
        Result<SecureRecords> result = SecureRecords{};
        RecordType type;
        std::string name;
    } outcome{false, SecureRecords{}, type, name};
    ++record_queries_;
    ares_send(
        channel_->channel, reinterpret_cast<const unsigned char*>(packet.data()), static_cast<int>(packet.size()),
        [](void* arg, int status, int /*timeouts*/, unsigned char* answer, int length) {
            auto& o = *static_cast<Outcome*>(arg);
            o.finished = true;
            if (status == ARES_EDESTRUCTION) return;
            SecureRecords out;
            if (status == ARES_SUCCESS && length >= 12) {
                const int rcode = answer[3] & 0x0f;
                if (rcode == 3) status = ARES_ENOTFOUND;          // NXDOMAIN
                else if (rcode != 0) status = ARES_ESERVFAIL;     // SERVFAIL: also a bogus answer (RFC 4035)
                else out.authenticated = (answer[3] & 0x20) != 0;
            }
            if (status == ARES_SUCCESS) status = parse_records(o.type, answer, length, out.records);
            if (status == ARES_SUCCESS || status == ARES_ENODATA)
                o.result = std::move(out);
            else if (status == ARES_ENOTFOUND)
                o.result = make_error(Errc::not_found, fmt::format("{} does not exist (NXDOMAIN)", o.name));
            else
                o.result = temporary(fmt::format("{} lookup for {} failed: {}", type_name(o.type), o.name,
                                                 ares_strerror(status)));
        },
        &outcome);
    wait_until(outcome.finished);
    --record_queries_;
    return std::move(outcome.result);
}

Result<Route> Resolver::resolve_blocking(std::string_view domain) {
    std::optional<Result<Route>> out;
    bool finished = false;
    resolve(domain, [&](Result<Route> result) {
        out.emplace(std::move(result));
        finished = true;
    });
    wait_until(finished);
    return std::move(*out);
}

void Resolver::wait_until(const bool& finished) {
    while (!finished) {
        std::vector<Socket> socks = sockets();
        std::vector<pollfd> fds;
        for (const Socket& s : socks) {
            short events = static_cast<short>((s.read ? POLLIN : 0) | (s.write ? POLLOUT : 0));
            fds.push_back(pollfd{s.fd, events, 0});
        }
        auto wait = timeout();
        int ms = wait ? static_cast<int>(std::min<std::int64_t>(wait->count(), 60000)) : 1000;
        int ready = poll(fds.data(), fds.size(), ms);
        if (ready <= 0) {
            process(-1, -1);  // timeouts (and an interrupted poll) are c-ares' to judge
            continue;
        }
        for (const pollfd& p : fds) {
            if (p.revents == 0) continue;
            bool readable = (p.revents & (POLLIN | POLLERR | POLLHUP)) != 0;
            bool writable = (p.revents & POLLOUT) != 0;
            process(readable ? p.fd : -1, writable ? p.fd : -1);
        }
    }
}

}  // namespace magpie::dns
