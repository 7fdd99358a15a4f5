#include "server/mta_sts_fetch.h"

#include "net/asio.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <fstream>

#include "base/file.h"
#include "base/strings.h"
#include "base/time.h"
#include "dns/resolver.h"

namespace magpie::server {
namespace {

namespace asio = net::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;

dns::ResolverConfig sts_resolver_config(const Config& config) {
    dns::ResolverConfig r;
    r.servers = config.queue.resolver;
    r.tries = 2;
    r.timeout_ms = static_cast<int>(config.queue.dns_timeout * 1000 / 2);
    return r;
}

// A domain as a file name: letters, digits, '-' and '.', which is all a DNS name we route to may hold.
bool safe_name(const std::string& domain) {
    if (domain.empty() || domain.size() > 253 || domain.front() == '.') return false;
    for (char c : domain)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) return false;
    return domain.find("..") == std::string::npos;
}

std::optional<mailauth::CachedStsPolicy> read_cache(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::string bytes(mailauth::kMaxPolicyOctets + 256, '\0');
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    bytes.resize(static_cast<std::size_t>(in.gcount()));
    auto cached = mailauth::parse_cached_sts_policy(bytes);
    if (!cached) return std::nullopt;
    return std::move(*cached);
}

net::awaitable<void> fetch_one(asio::io_context& ioc, asio::ssl::context& tls, const std::string& host,
                          const std::string& address, std::chrono::steady_clock::time_point deadline,
                          Result<std::string>& result) {
    boost::system::error_code ec;
    auto ip = asio::ip::make_address(address, ec);
    if (ec) {
        result = make_error(Errc::unavailable, address + " is no IP address");
        co_return;
    }
    beast::ssl_stream<beast::tcp_stream> stream(ioc, tls);
    SSL* ssl = stream.native_handle();
    SSL_set_tlsext_host_name(ssl, host.c_str());
    // RFC 8461 3.3: the certificate must be valid for mta-sts.DOMAIN (RFC 6125, no partial wildcards).
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    SSL_set1_host(ssl, host.c_str());
    beast::get_lowest_layer(stream).expires_at(deadline);
    co_await beast::get_lowest_layer(stream).async_connect(net::tcp::endpoint(ip, 443),
                                                           asio::redirect_error(net::use_awaitable, ec));
    if (ec) {
        result = make_error(Errc::unavailable, fmt::format("connecting to {} ({}) port 443: {}", host, address, ec.message()));
        co_return;
    }
    co_await stream.async_handshake(asio::ssl::stream_base::client, asio::redirect_error(net::use_awaitable, ec));
    if (ec) {
        std::string reason = fmt::format("TLS with {} ({}): {}", host, address, ec.message());
        long verify = SSL_get_verify_result(ssl);
        if (verify != X509_V_OK) reason += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
        result = make_error(Errc::unavailable, reason);
        co_return;
    }
    bhttp::request<bhttp::empty_body> request{bhttp::verb::get, "/.well-known/mta-sts.txt", 11};
    request.set(bhttp::field::host, host);
    request.set(bhttp::field::user_agent, "magpie");
    request.set(bhttp::field::connection, "close");
    co_await bhttp::async_write(stream, request, asio::redirect_error(net::use_awaitable, ec));
    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.header_limit(16 * 1024);
    parser.body_limit(mailauth::kMaxPolicyOctets);
    if (!ec) co_await bhttp::async_read(stream, buffer, parser, asio::redirect_error(net::use_awaitable, ec));
    if (ec) {
        result = make_error(ec == bhttp::error::body_limit ? Errc::invalid_argument : Errc::unavailable,
                            fmt::format("policy from {}: {}", host, ec.message()));
        co_return;
    }
    const auto& response = parser.get();
    // 3.3: redirects are not followed; anything but 200 is no policy.
    if (response.result_int() != 200) {
        result = make_error(Errc::invalid_argument, fmt::format("policy from {}: HTTP {}", host, response.result_int()));
        co_return;
    }
    std::string type = to_lower(std::string(response[bhttp::field::content_type]));
    if (!type.starts_with("text/plain")) {
        result = make_error(Errc::invalid_argument, fmt::format("policy from {} is {}, not text/plain", host, type));
        co_return;
    }
    result = response.body();  // Connection: close; no TLS close_notify wait for a one-shot fetch
}

}  // namespace

Result<std::string> fetch_mta_sts_policy(const std::string& domain, const std::vector<std::string>& addresses,
                                         std::chrono::seconds timeout) {
    const std::string host = "mta-sts." + domain;
    asio::io_context ioc;
    asio::ssl::context tls(asio::ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
    boost::system::error_code ignored;
    tls.set_default_verify_paths(ignored);  // SSL_CERT_FILE / SSL_CERT_DIR, else the system's store
    tls.set_verify_mode(asio::ssl::verify_peer);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    Result<std::string> result = make_error(Errc::unavailable, host + " has no address");
    for (const auto& address : addresses) {
        if (std::chrono::steady_clock::now() >= deadline) break;
        asio::co_spawn(ioc, fetch_one(ioc, tls, host, address, deadline, result), asio::detached);
        ioc.run_until(deadline + std::chrono::seconds(1));
        ioc.restart();
        if (result || result.error().code == Errc::invalid_argument) break;  // an answer; another address won't differ
    }
    return result;
}

std::optional<mailauth::StsPolicy> mta_sts_policy(const Config& config, const std::string& domain_in,
                                                  std::string& note) {
    const std::string domain = to_lower(domain_in);
    if (!safe_name(domain)) {
        note = "not a domain name";
        return std::nullopt;
    }
    const auto cache_path = config.data_dir / "mta-sts" / domain;
    auto cached = read_cache(cache_path);
    const std::int64_t now = unix_now();
    if (cached && !cached->fresh(now)) cached.reset();

    auto resolver = dns::Resolver::create(sts_resolver_config(config));
    if (!resolver) {
        note = "resolver: " + resolver.error().message;
        return cached ? std::optional(cached->policy) : std::nullopt;
    }
    auto records = (*resolver)->lookup_blocking(dns::RecordType::txt, "_mta-sts." + domain);
    std::optional<std::string> id;
    if (records) {
        for (const auto& txt : *records) {
            if (!istarts_with(txt, "v=STSv1")) continue;
            auto parsed = mailauth::parse_sts_record(txt);
            if (parsed) id = *parsed;
            break;
        }
    }
    // 5.1: no record, but a policy still fresh in the cache: it holds until its max_age.
    if (!id) {
        note = cached ? "no _mta-sts record; cached policy still fresh" : "no MTA-STS policy";
        return cached ? std::optional(cached->policy) : std::nullopt;
    }
    if (cached && cached->id == *id) {
        note = "cached policy, id " + *id;
        return cached->policy;
    }
    std::vector<std::string> addresses;
    for (auto type : {dns::RecordType::a, dns::RecordType::aaaa}) {
        auto found = (*resolver)->lookup_blocking(type, "mta-sts." + domain);
        if (found) addresses.insert(addresses.end(), found->begin(), found->end());
    }
    auto text = fetch_mta_sts_policy(domain, addresses, std::chrono::seconds(config.mta_sts.fetch_timeout));
    auto policy = text ? mailauth::parse_sts_policy(*text) : Result<mailauth::StsPolicy>(text.error());
    if (!policy) {
        // 5.1: a failed refresh keeps a cached policy; without one, deliver as if there were no policy.
        note = "policy fetch failed: " + policy.error().message;
        return cached ? std::optional(cached->policy) : std::nullopt;
    }
    mailauth::CachedStsPolicy fresh{*id, now, *text, *policy};
    std::error_code ec;
    std::filesystem::create_directories(cache_path.parent_path(), ec);
    if (auto written = write_file_durably(cache_path, mailauth::serialize_cached_sts_policy(fresh), 0600); !written)
        spdlog::warn("mta-sts: {} not cached: {}", domain, written.error().message);
    note = fmt::format("policy id {} fetched, mode {}", *id, mailauth::sts_mode_name(policy->mode));
    return *policy;
}

}  // namespace magpie::server
