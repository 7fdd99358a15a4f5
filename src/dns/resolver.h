// dns::Resolver: where mail for a domain goes (RFC 5321 5.1): its MX hosts by preference (random order
// among equal preferences), the domain itself when it has no MX (the implicit MX), nothing at all for a
// null MX (RFC 7505), each host with its A/AAAA addresses; or a static route from the configuration.
//
// Shape: an asynchronous c-ares wrapper the IO layer drives. resolve() starts a lookup and returns; the IO
// layer watches sockets() for readability/writability, calls process() when one is ready or when timeout()
// has passed, and the callback runs from inside process(). resolve_blocking() runs that same loop with
// poll() for the CLI and tests. One Resolver is used from one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace magpie::dns {

// A host given in the configuration instead of DNS: a smart host, or a test's peer. An IP address is used
// as it is; a name is resolved to its A/AAAA addresses (never to its MX).
struct StaticRoute {
    std::string host;
    std::uint16_t port = 25;
};

struct ResolverConfig {
    // Name servers as c-ares reads them: "127.0.0.53:5353,[::1]:53". Empty: /etc/resolv.conf.
    std::string servers;
    int timeout_ms = 5000;  // per try and server
    int tries = 3;
    std::size_t max_mx_hosts = 10;           // MX hosts kept, lowest preferences first
    std::size_t max_addresses_per_host = 8;  // addresses kept per host
    bool ipv4 = true;
    bool ipv6 = true;
    bool prefer_ipv6 = false;  // which family a host's address list starts with
    // Domain (lower case, no trailing dot) or "*" for every other domain (a smart host) to its hosts,
    // tried in the order given.
    std::map<std::string, std::vector<StaticRoute>> static_routes;
    std::uint32_t shuffle_seed = 0;  // order among equal MX preferences; 0 draws a random seed
};

// One host to try, with its addresses (text, "192.0.2.1" / "2001:db8::1") in the order to try them.
struct Target {
    std::string host;  // the MX host name, the domain itself (implicit MX), or the static route's host
    std::uint16_t preference = 0;
    std::uint16_t port = 25;
    std::vector<std::string> addresses;
};

struct Route {
    std::string domain;
    std::vector<Target> targets;  // in the order to try; hosts without any address are left out
    bool implicit_mx = false;     // no MX: the domain's own addresses (RFC 5321 5.1)
    bool static_route = false;
};

// Errors of resolve(), each with a message fit for a delivery report:
//   permission_denied  null MX: the domain accepts no mail (RFC 7505), permanent, 5.1.10
//   not_found          no such domain (NXDOMAIN), or no host with an address, permanent, 5.1.2
//   invalid_argument   not a domain name, permanent, 5.1.2
//   unavailable        SERVFAIL, timeout, refused, unreadable answer: temporary, 4.4.3
bool is_permanent(const Error& error);

// Record types lookup() answers, for SPF (RFC 7208 5), DKIM keys (RFC 6376 3.6.2) and DMARC (RFC 7489 6.1),
// and for `magpie dns --check`: SRV (RFC 2782, client setup of RFC 6186) and CNAME (autoconfig hosts).
// TLSA (RFC 6698 2.1) for DANE (RFC 7672): "usage selector matching-type hex-data".
enum class RecordType { txt, a, aaaa, mx, ptr, srv, cname, tlsa };
// RFC 3463 / RFC 7505 enhanced status code for a resolve() error.
std::string_view enhanced_status(const Error& error);

class Resolver {
public:
    using Callback = std::function<void(Result<Route>)>;

    // Errors: invalid_argument for a bad `servers` string, io_error when c-ares cannot start.
    static Result<std::unique_ptr<Resolver>> create(ResolverConfig config);
    ~Resolver();
    Resolver(const Resolver&) = delete;
    Resolver& operator=(const Resolver&) = delete;

    // Starts finding the route for `domain` (or an address literal "[192.0.2.1]", "[IPv6:2001:db8::1]",
    // RFC 5321 4.1.3). `done` runs exactly once, from process() or, when no query is needed, at once.
    // Lookups still running when the Resolver is destroyed are dropped without a callback.
    void resolve(std::string_view domain, Callback done);

    // The records of one type at `name`, as text: TXT records each with its strings joined (RFC 7208 3.3,
    // RFC 6376 3.6.2.2); A/AAAA addresses ("192.0.2.1"); MX host names by preference, without the
    // trailing dot (a null MX gives an empty name); PTR names for the address given as `name`
    // ("192.0.2.1" or "2001:db8::1", reversed here into in-addr.arpa / ip6.arpa); SRV records as
    // "priority weight port target" in the server's order (target without the trailing dot, "." for the
    // RFC 2782 "service not available" root); CNAME: the canonical name the owner points at. At most
    // kMaxRecordsPerAnswer records. `done` runs exactly once, like resolve()'s callback. Errors: not_found
    // for NXDOMAIN, invalid_argument for a name that is no DNS name (or a PTR name that is no address),
    // unavailable for SERVFAIL, timeouts and unreadable answers. No records of that type (NODATA) is an
    // empty list, not an error: SPF counts both as void lookups but treats them differently elsewhere.
    using RecordsCallback = std::function<void(Result<std::vector<std::string>>)>;
    static constexpr std::size_t kMaxRecordsPerAnswer = 64;
    void lookup(RecordType type, std::string_view name, RecordsCallback done);
    Result<std::vector<std::string>> lookup_blocking(RecordType type, std::string_view name);

    // lookup() with the DNSSEC question asked (RFC 6840 5.7: the AD bit set in the query, and the DO bit of
    // EDNS0, RFC 3225) and the answer's AD bit reported: `authenticated` is true only when the resolver
    // says it validated the whole answer. c-ares validates nothing itself, so this means something only
    // with a validating resolver on a trusted path (127.0.0.1, RFC 7672 2.1.1); for DANE (RFC 7672) an
    // unauthenticated TLSA answer counts as no TLSA at all. NXDOMAIN is not_found like lookup()'s.
    struct SecureRecords {
        std::vector<std::string> records;
        bool authenticated = false;
    };
    Result<SecureRecords> lookup_secure_blocking(RecordType type, std::string_view name);

    struct Socket {
        int fd;
        bool read;
        bool write;
    };
    // The sockets c-ares waits on now, and how long until process() must be called anyway.
    std::vector<Socket> sockets() const;
    std::optional<std::chrono::milliseconds> timeout() const;
    // After a socket became ready (-1 for the one that did not) or the timeout passed (both -1).
    void process(int read_fd, int write_fd);
    bool busy() const;

    // resolve() and the loop above until it finishes, with poll(). For the CLI and tests.
    Result<Route> resolve_blocking(std::string_view domain);

private:
    struct Lookup;
    struct Query;
    explicit Resolver(ResolverConfig config);

    void start_mx(Lookup& lookup);
    void start_addresses(Lookup& lookup);
    void query(Lookup& lookup, int type, std::size_t target);
    static void on_answer(void* arg, int status, int timeouts, unsigned char* answer, int length);
    void answered(Query& query, int status, const unsigned char* answer, int length);
    void on_mx(Lookup& lookup, int status, const unsigned char* answer, int length);
    void on_address(Lookup& lookup, int type, std::size_t target, int status, const unsigned char* answer,
                    int length);
    void finish(Lookup& lookup, Result<Route> result);
    void finish_addresses(Lookup& lookup);
    struct RecordQuery;
    static void on_records(void* arg, int status, int timeouts, unsigned char* answer, int length);
    void wait_until(const bool& finished);

    ResolverConfig config_;
    struct Channel;
    std::unique_ptr<Channel> channel_;
    std::vector<std::unique_ptr<Lookup>> lookups_;
    std::uint32_t rng_state_ = 0;
    bool destroying_ = false;
    std::size_t record_queries_ = 0;  // lookup() calls whose callback has not run yet
};

}  // namespace magpie::dns
