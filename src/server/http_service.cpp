#include "server/http_service.h"

#include <array>
#include <set>

#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "auth/authenticator.h"
#include "base/strings.h"
#include "base/time.h"
#include "delivery/outgoing.h"
#include "http/jmap_websocket.h"
#include "http/methods/api_token.h"
#include "http/methods/blob.h"
#include "http/methods/mailbox.h"
#include "http/methods/session.h"
#include "http/push.h"
#include "http/push_state.h"
#include "http/websocket.h"
#include "mailauth/mta_sts.h"
#include "net/proxy_protocol.h"
#include "server/http_request.h"
#include "server/smtp_service.h"
#include "store/summary.h"

namespace magpie::server {

namespace bhttp = boost::beast::http;
using nlohmann::json;

namespace {

http::ApiLimits api_limits(const HttpConfig& c) {
    http::ApiLimits limits;
    limits.max_size_upload = c.max_upload_octets;
    limits.max_concurrent_upload = c.max_concurrent_uploads;
    limits.max_size_request = c.max_request_octets;
    limits.max_concurrent_requests = c.max_concurrent_requests;
    limits.max_calls_in_request = c.max_calls_in_request;
    limits.max_objects_in_get = c.max_objects_in_get;
    limits.max_objects_in_set = c.max_objects_in_set;
    limits.max_query_message_reads = c.max_query_message_reads;
    limits.max_search_terms = c.max_search_terms;
    limits.max_submission_recipients = c.max_submission_recipients;
    limits.max_changes = c.max_changes;
    limits.json.max_depth = c.max_json_depth;
    limits.json.max_string_octets = c.max_json_string_octets;
    return limits;
}

http::Response problem(int status, std::string detail, std::string type = "about:blank", std::string limit = {}) {
    return http::problem_response(http::Problem{status, std::move(type), std::move(detail), std::move(limit)});
}

http::Response json_response(const json& body) {
    http::Response response;
    response.body = http::to_json_text(body);
    return response;
}

http::Response unauthorized(std::string detail) {
    auto response = problem(401, std::move(detail));
    response.headers.emplace_back("WWW-Authenticate", "Basic realm=\"magpie\", charset=\"UTF-8\"");
    return response;
}

constexpr std::string_view kUploadPrefix = "/jmap/upload/";
constexpr std::string_view kDownloadPrefix = "/jmap/download/";

template <class Message>
std::string_view target_of(const Message& message) {
    auto target = message.target();  // Boost 1.74: boost::string_view
    return std::string_view(target.data(), target.size());
}

bool is_upload(std::string_view target) { return target.starts_with(kUploadPrefix); }

// The body bound of a request, by its target: maxSizeUpload for uploads, maxSizeRequest for the rest.
std::uint64_t body_limit_for(std::string_view target, const HttpConfig& config) {
    return is_upload(target) ? config.max_upload_octets : config.max_request_octets;
}

// "http(s)://host" for the session resource's URLs, from the Host header when it is a plain host[:port]
// (RFC 9110 7.2); "" (relative URLs) otherwise.
std::string base_url(const HttpService::Request& request) {
    const std::string& host = request.host;
    if (host.empty() || host.size() > 261 ||
        host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") != std::string::npos) {
        return {};
    }
    return fmt::format("{}://{}", request.secure ? "https" : "http", host);
}

// Beast's parse errors as the problem a client gets before the connection closes.
http::Response parse_problem(const boost::beast::error_code& ec, const HttpConfig& config, bool upload) {
    if (ec == bhttp::error::header_limit) {
        return problem(431, fmt::format("the request line and headers exceed {} octets", config.max_header_octets));
    }
    if (ec == bhttp::error::body_limit && upload) {
        return problem(413, fmt::format("an upload is at most {} octets", config.max_upload_octets),
                       http::kProblemLimit, "maxSizeUpload");
    }
    if (ec == bhttp::error::body_limit) {
        return problem(413, fmt::format("the request body exceeds {} octets", config.max_request_octets),
                       http::kProblemLimit, "maxSizeRequest");
    }
    return problem(400, fmt::format("malformed HTTP request: {}", ec.message()));
}

// RFC 8461 3.2: our own domains' policy (one for all: they share this MX), as `magpie dns` publishes its id.
http::Response mta_sts_policy_response(const HttpService::Request& request, const Config& config) {
    if (request.method != "GET") {
        auto response = problem(405, "method not allowed here");
        response.headers.emplace_back("Allow", "GET");
        return response;
    }
    http::Response response;
    response.content_type = "text/plain";
    response.body = mailauth::sts_policy_text(mailauth::sts_mode_from_name(config.mta_sts.mode), {config.hostname},
                                              config.mta_sts.max_age);
    return response;
}

// RFC 6455 4.2.1 and RFC 8887 4.2: what an upgrade to the JMAP WebSocket must carry, checked before the
// credentials are. A cookie rides along on any site's WebSocket (no CORS there, SameSite aside), so a
// cookie-authenticated upgrade must name the webmail's own Origin.
std::optional<http::Response> websocket_refusal(const HttpService::Request& request) {
    namespace ws = http::websocket;
    if (!ws::has_token(request.upgrade, "websocket", true) || !ws::has_token(request.connection, "upgrade", true)) {
        auto response = problem(426, "this URL speaks JMAP over WebSocket only (RFC 8887)");
        response.headers.emplace_back("Upgrade", "websocket");
        return response;
    }
    if (request.websocket_version != "13") {
        auto response = problem(426, "WebSocket version 13 only (RFC 6455)");
        response.headers.emplace_back("Sec-WebSocket-Version", "13");
        return response;
    }
    if (!ws::valid_key(request.websocket_key)) return problem(400, "missing or malformed Sec-WebSocket-Key");
    if (!ws::has_token(request.websocket_protocol, http::kWebSocketSubprotocol, false)) {
        return problem(400, "the \"jmap\" WebSocket subprotocol is required (RFC 8887 4.2)");
    }
    if (request.authorization.empty() && !request.cookie.empty() &&
        (request.origin.empty() || !http::same_origin(request.origin, request.host, request.secure))) {
        return problem(403, "a cookie-authenticated WebSocket must come from the webmail's own origin");
    }
    return std::nullopt;
}

// RFC 6455 7.1.1 and 5.5.1: after its own close frame the server waits for the client's (data frames still on
// their way are dropped), at most `wait`, and only then closes TCP, so the client reads a clean close rather
// than a reset. A stream that failed (the reader's error) is closed at once (7.1.7).
awaitable<void> close_websocket(net::Connection& connection, http::websocket::Reader& reader, std::uint16_t code,
                                std::string_view reason, std::chrono::seconds write_timeout, std::chrono::seconds wait) {
    namespace ws = http::websocket;
    using Clock = std::chrono::steady_clock;
    if (!co_await connection.write_all(ws::close_frame(code, reason), write_timeout) || reader.error()) co_return;
    const auto until = Clock::now() + wait;
    for (;;) {
        while (auto message = reader.next()) {
            if (message->opcode == ws::Opcode::close) co_return;
        }
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now());
        if (reader.error() || left.count() <= 0 || connection.shutdown_requested()) co_return;
        auto bytes = co_await connection.read_available(left);
        if (!bytes.empty()) {
            reader.feed(bytes);
        } else if (!connection.take_wake()) {
            co_return;  // the time is up, the client went away, or the server is shutting down
        }
    }
}

}  // namespace

// A WebSocket connection's push (RFC 8887 4.3.5): off until WebSocketPushEnable, then the types wanted and
// the states last reported.
struct HttpService::WebSocketPush {
    std::optional<http::PushStateTracker> tracker;  // set while enabled: the types wanted, the states last told
};

// The connection's first authenticated request moves its limiter slot from the client's address to the
// account and address ([http] max_connections_per_user_ip): the per-address limit then bounds only
// connections that have not authenticated, so the users behind one address (a NAT, an office, a reverse
// proxy on this host) are not refused together. A connection keeps the account of its first request. Over
// the account's limit the request is refused (503) and the connection closed.
bool HttpService::admit(net::Connection& connection, const std::string& client_ip, std::int64_t account_id,
                        const Config& config) {
    auto* slot = connection.limiter_slot();
    if (slot == nullptr || slot->moved()) return true;
    if (slot->move_to(fmt::format("{}|{}", account_id, client_ip), config.http.max_connections_per_user_ip)) {
        return true;
    }
    spdlog::info(
        "http: {}: request refused: account {} has {} connections from this address already "
        "([http] max_connections_per_user_ip)",
        client_ip, account_id, config.http.max_connections_per_user_ip);
    return false;
}

bool HttpService::enter(std::int64_t account_id, std::size_t limit, bool upload) {
    std::lock_guard lock(running_mutex_);
    auto& running = (upload ? uploading_ : running_)[account_id];
    if (running >= limit) return false;
    ++running;
    return true;
}

void HttpService::leave(std::int64_t account_id, bool upload) {
    std::lock_guard lock(running_mutex_);
    auto& map = upload ? uploading_ : running_;
    if (auto it = map.find(account_id); it != map.end() && --it->second == 0) map.erase(it);
}

awaitable<Result<store::Account>> HttpService::authenticate(const Request& request, const Config& config) {
    if (request.authorization.empty() && !request.cookie.empty()) {
        auto account = co_await authenticate_cookie(request, config);
        co_return account;
    }
    auto credentials = http::parse_authorization(request.authorization);
    if (!credentials) co_return make_error(Errc::auth_failed, "authentication required");
    // RFC 7617 4 and RFC 6750 5.3: credentials travel only over TLS, unless the operator allows plain
    // HTTP (the demo on loopback).
    if (!request.secure && !config.http.allow_plaintext_login) {
        co_return make_error(Errc::auth_failed, "credentials are accepted over TLS only");
    }
    auto& s = services_;
    if (credentials->scheme == http::Credentials::Scheme::bearer) {
        // Not yet authenticated: the login pool, though tokens are cheap to check (random, not argon2id), so a
        // flood of bad tokens cannot take the API pool from logged-in clients.
        auto check = s.login_executor.run([&s, token = credentials->secret, ip = request.client_ip]() {
            return http::authenticate_token(s.store, s.throttle, token, ip, unix_now());
        });
        auto account = co_await std::move(check);
        co_return account;
    }

    auto check = s.login_executor.run([&s, user = credentials->user, password = credentials->secret,
                                       ip = request.client_ip]() {
        return auth::authenticate_plain(s.store, s.hash_limiter, s.throttle, user, password, ip, unix_now(),
                                        s.verified_cache);
    });
    auto account = co_await std::move(check);
    co_return account;
}

awaitable<http::Response> HttpService::handle(const Request& request,
                                              const std::shared_ptr<net::Connection>& connection, const Config& config,
                                              bool& streamed) {
    auto [path, query] = http::split_target(request.target);
    if (http::autoconfig::handles(path)) co_return co_await client_setup(request, config);
    if (path == "/.well-known/mta-sts.txt") co_return mta_sts_policy_response(request, config);
    if (auto route = http::webmail_route(path); route != http::WebmailRoute::none) {
        auto response = co_await webmail(request, config, route);
        co_return response;
    }
    const bool session = path == "/.well-known/jmap" || path == "/jmap/session";
    const bool api = path == "/jmap/api" || path == "/jmap/api/";
    const bool events = path == "/jmap/eventsource" || path == "/jmap/eventsource/";
    const bool upload = path.starts_with(kUploadPrefix);
    const bool download = path.starts_with(kDownloadPrefix);
    const bool websocket = path == "/jmap/ws" || path == "/jmap/ws/";
    if (!session && !api && !events && !upload && !download && !websocket) co_return problem(404, "no such resource");
    const bool post = api || upload;
    if ((post && request.method != "POST") || (!post && request.method != "GET")) {
        auto response = problem(405, "method not allowed here");
        response.headers.emplace_back("Allow", post ? "POST" : "GET");
        co_return response;
    }
    if (websocket) {
        if (auto refusal = websocket_refusal(request)) co_return std::move(*refusal);
    }

    auto authenticated = co_await authenticate(request, config);
    if (!authenticated) {
        const auto& error = authenticated.error();
        switch (error.code) {
            case Errc::limit_exceeded: co_return problem(429, error.message);
            case Errc::unavailable: co_return problem(503, error.message);
            case Errc::permission_denied: co_return problem(403, error.message);
            case Errc::auth_failed:
            case Errc::not_found:
            case Errc::invalid_argument:
                // A browser would open its own password dialog on a Basic challenge to the webmail's fetch().
                co_return request.cookie.empty() ? unauthorized(error.message) : webmail_unauthorized(error.message);
            default: co_return problem(500, "authentication failed on the server's side");
        }
    }
    const store::Account account = *authenticated;
    if (!admit(*connection, request.client_ip, account.id, config)) {
        auto response = problem(503, "too many connections of this account from this address");
        response.close = true;
        co_return response;
    }
    const auto limits = api_limits(config.http);

    if (session) co_return json_response(http::session_resource(account, limits, base_url(request)));
    if (events) {
        auto parsed = http::parse_event_source_query(query);
        if (!parsed) co_return problem(400, "the EventSource query needs types, and closeafter/ping as RFC 8620 7.3 says");
        streamed = true;
        co_await event_source(connection, account, *parsed, config);
        co_return http::Response{};
    }
    if (websocket) {
        streamed = true;
        co_await this->websocket(connection, account, request, config);
        co_return http::Response{};
    }
    if (!enter(account.id, upload ? limits.max_concurrent_upload : limits.max_concurrent_requests, upload)) {
        co_return problem(400, upload ? "too many concurrent uploads for this account"
                                      : "too many concurrent requests for this account",
                          http::kProblemLimit, upload ? "maxConcurrentUpload" : "maxConcurrentRequests");
    }
    // Released however this coroutine ends (a shutdown may destroy it while the store works).
    struct Leave {
        HttpService* service;
        std::int64_t account_id;
        bool upload;
        ~Leave() { service->leave(account_id, upload); }
    } leave_on_exit{this, account.id, upload};
    if (upload || download) co_return co_await blob_transfer(request, account, limits, upload);
    auto answer = co_await run_api(account, config, std::string_view(request.body));
    if (auto* p = std::get_if<http::Problem>(&answer)) co_return http::problem_response(*p);
    co_return json_response(std::get<json>(answer));
}

namespace {

// Whether an API request calls a method that writes (RFC 8620 5.3 /set, 5.4 /copy, RFC 8621 4.8 Email/import):
// such a request waits for the group commit on its thread, so it runs on the write pool. A method name is a
// JSON string, so a body without "/set", "/copy" or "/import" quoted calls none (a false match only picks the
// other pool).
bool writes(const std::variant<std::string_view, json>& request) {
    auto writing = [](std::string_view name) {
        return name.ends_with("/set") || name.ends_with("/copy") || name.ends_with("/import");
    };
    if (auto* body = std::get_if<std::string_view>(&request)) {
        return body->find("/set\"") != std::string_view::npos || body->find("/copy\"") != std::string_view::npos ||
               body->find("/import\"") != std::string_view::npos;
    }
    const json& parsed = std::get<json>(request);
    auto calls = parsed.find("methodCalls");
    if (calls == parsed.end() || !calls->is_array()) return false;
    for (const auto& call : *calls) {
        if (call.is_array() && !call.empty() && call[0].is_string() && writing(call[0].get_ref<const std::string&>()))
            return true;
    }
    return false;
}

}  // namespace

awaitable<http::Answer> HttpService::run_api(const store::Account& account, const Config& config,
                                             std::variant<std::string_view, json> request) {
    auto& store = services_.store;
    auto& executor = writes(request) ? services_.write_executor : services_.executor;
    const auto limits = api_limits(config.http);
    auto dispatcher = http::make_dispatcher(
        store, account, limits, [this, &config](const store::Account& who, const http::OutgoingSubmission& outgoing) {
            return submit(config, who, outgoing);
        });
    http::RequestRun run(http::session_state(account));
    auto first = executor.run([&dispatcher, &run, &request]() {
        if (auto* body = std::get_if<std::string_view>(&request)) return dispatcher->begin(run, *body);
        return dispatcher->begin_request(run, std::move(std::get<json>(request)));
    });
    auto answer = co_await std::move(first);
    while (!answer) {
        co_await StoreExecutor::until_done(std::move(run.pending->start));
        auto next = executor.run([&dispatcher, &run]() { return dispatcher->resume(run); });
        answer = co_await std::move(next);
    }
    co_return std::move(*answer);
}

awaitable<http::Response> HttpService::client_setup(const Request& request, const Config& config) {
    auto [path, query] = http::split_target(request.target);
    auto& store = services_.store;
    auto list = services_.login_executor.run([&store] { return store.list_domains(); });  // no login here
    auto domains = co_await std::move(list);
    if (!domains) co_return problem(503, "the domain list cannot be read now");
    http::autoconfig::Settings settings;
    // [autoconfig]: the public name and ports behind NAT or a proxy, else ours as bound.
    const auto& pub = config.autoconfig;
    settings.hostname = pub.hostname.empty() ? config.hostname : pub.hostname;
    settings.imap = http::autoconfig::public_endpoints(imap_endpoints_, pub.imaps_port, pub.imap_port);
    settings.submission =
        http::autoconfig::public_endpoints(submission_endpoints_, pub.submissions_port, pub.submission_port);
    for (const auto& domain : *domains) settings.domains.push_back(domain.name);
    co_return http::autoconfig::answer(http::autoconfig::Request{request.method, path, query, request.host, request.body},
                                       settings);
}

// The one outgoing path of SMTP submission (delivery/outgoing.h, then local INBOXes and the store's queue in
// one delivery), for a message EmailSubmission/set sends. Prepares the delivery on the API pool's thread and
// returns its send: the group committer's callback answers it once the message is durable, so the
// EmailSubmission is created only then and no thread waits for the commit meanwhile.
Result<http::SubmissionSend> HttpService::submit(const Config& config, const store::Account& account,
                                                    const http::OutgoingSubmission& outgoing) {
    auto& store = services_.store;
    const std::int64_t now = unix_now();
    const std::string log_id = fmt::format("jmap-{}-{}", account.id, now);
    std::string domain = outgoing.mail_from.substr(outgoing.mail_from.rfind('@') + 1);
    std::string trace = fmt::format("Received: by {} with HTTP (JMAP EmailSubmission) for account {};\r\n\t{}\r\n",
                                    config.hostname, account.address, rfc5322_date(now));
    // UTF-8 header fields are kept as the user wrote them: SMTPUTF8 is then asked of the next hop.
    const bool utf8 = std::ranges::any_of(outgoing.message, [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
    auto signer = services_.dkim_signer ? services_.dkim_signer() : nullptr;
    if (!signer) return make_error(Errc::unavailable, "no DKIM signer configured");
    auto prepared =
        delivery::prepare_outgoing_message(delivery::OutgoingDraft{outgoing.message, trace, utf8, domain, now, log_id}, *signer);
    if (!prepared) return make_error(Errc::invalid_argument, prepared.error().message);

    http::SubmissionOutcome outcome;
    std::vector<store::DeliveryTarget> local;
    std::vector<store::EnvelopeRecipient> remote;
    std::set<std::int64_t> accounts;
    const RecipientPolicy policy{config.hostname, config.smtp.postmaster};
    for (const auto& address : outgoing.rcpt_to) {
        auto resolved = resolve_recipient(store, policy, address);
        if (!resolved) return make_error(Errc::invalid_argument, fmt::format("{}: {}", address, resolved.error().message));
        if (resolved->status == store::RecipientStatus::not_local_domain) {
            remote.push_back(store::EnvelopeRecipient{address, "", ""});
            continue;
        }
        if (resolved->status != store::RecipientStatus::local) {
            return make_error(Errc::invalid_argument, fmt::format("{}: no such user here", address));
        }
        outcome.local.push_back(address);
        if (!accounts.insert(resolved->account_id).second) continue;
        auto inbox = store.find_mailbox(resolved->account_id, "INBOX");
        if (!inbox) return inbox.error();
        local.push_back(store::DeliveryTarget{inbox->id, {}});
    }
    store::Delivery delivery;
    std::string return_path = local.empty() ? std::string() : fmt::format("Return-Path: <{}>\r\n", outgoing.mail_from);
    delivery.content = return_path + *prepared;
    delivery.summary = store::summarize(delivery.content);
    delivery.internal_date = now;
    delivery.targets = std::move(local);
    const bool queued = !remote.empty();
    if (queued) {
        store::OutgoingMessage message;
        message.reverse_path = outgoing.mail_from;
        message.smtputf8 = utf8;
        message.queued_at = now;
        message.first_attempt_at = now;
        message.send_offset = return_path.size();
        message.recipients = std::move(remote);
        delivery.outgoing = std::move(message);
    }
    auto shared = std::make_shared<store::Delivery>(std::move(delivery));
    return http::SubmissionSend([this, &store, shared, outcome = std::move(outcome), queued, log_id,
                                 address = account.address, outgoing](auto done) mutable {
        store.deliver(std::move(*shared), [this, outcome = std::move(outcome), queued, log_id, address, outgoing,
                                           done = std::move(done)](Result<store::Delivered> delivered) mutable {
            if (!delivered) return done(delivered.error());
            outcome.queue_id = delivered->queue_id;
            if (queued && services_.queue_changed) services_.queue_changed();
            spdlog::info("jmap: {} user={} from=<{}> to={} queue_entry={}", log_id, address, outgoing.mail_from,
                         fmt::join(outgoing.rcpt_to, ","), outcome.queue_id);
            done(std::move(outcome));
        });
    });
}

// RFC 8620 6.1 and 6.2, on the store executor (an upload commits before its 201).
awaitable<http::Response> HttpService::blob_transfer(const Request& request, const store::Account& account,
                                                     const http::ApiLimits& limits, bool upload) {
    auto& store = services_.store;
    auto [path, query] = http::split_target(request.target);
    auto run = services_.executor.run([&store, &account, &limits, &request, path, query, upload]() {
        if (upload) {
            std::string_view rest = path.substr(kUploadPrefix.size());
            if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
            return http::upload_blob(store, account, rest, request.content_type, request.body, limits, unix_now());
        }
        return http::download_blob(store, account, path.substr(kDownloadPrefix.size()), query);
    });
    auto response = co_await std::move(run);
    co_return response;
}

// RFC 8620 7.3: one "state" event per change of the account's state, "ping" events every `ping` seconds.
awaitable<void> HttpService::event_source(const std::shared_ptr<net::Connection>& connection,
                                          const store::Account& account, const http::EventSourceQuery& query,
                                          const Config& config) {
    const auto idle = std::chrono::seconds(config.http.idle_timeout);
    std::string head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";
    if (!co_await connection->write_all(head, idle)) co_return;
    auto& store = services_.store;
    auto read_state = [&]() { return services_.executor.run([&store, &account] { return http::push_states(store, account); }); };

    services_.hub.watch(account.id, connection);
    Unwatch unwatch(services_.hub, account.id, connection.get());

    // A failed read (the store unreachable) keeps the stream: the tracker remembers the last states and the
    // next wake-up or ping reads again (http/push_state.h).
    http::PushStateTracker tracker(query.types);
    auto first = read_state();
    tracker.start(co_await std::move(first));
    // Without ping the stream still wakes now and then to notice a dead peer on the next write.
    const auto wait = std::chrono::seconds(query.ping_seconds ? query.ping_seconds : 300);
    std::array<char, 512> buffer;
    std::string out;
    for (;;) {
        std::size_t n = co_await connection->read_some(buffer, wait);
        if (n > 0) continue;  // nothing is expected from the client; ignore it
        const bool woken = connection->take_wake();
        const bool timed_out = !woken && connection->timed_out();
        if (!woken && !timed_out) co_return;  // the client went away, or the server is shutting down
        if (woken || tracker.retry_pending()) {
            auto next = read_state();
            auto state = co_await std::move(next);
            if (!state) spdlog::debug("jmap: push states of {} unreadable, read again later: {}", account.address, state.error().message);
            if (auto changed = tracker.next(state)) {
                json change = http::state_change(http::jmap_account_id(account), std::move(*changed));
                out = fmt::format("event: state\ndata: {}\n\n", http::to_json_text(change));
                if (!co_await connection->write_all(out, idle)) co_return;
                if (query.close_after_state) co_return;
                continue;
            }
        }
        if (timed_out && query.ping_seconds) {
            out = fmt::format("event: ping\ndata: {{\"interval\":{}}}\n\n", query.ping_seconds);
            if (!co_await connection->write_all(out, idle)) co_return;
        }
    }
}

// The next StateChange message for the enabled push, "" when nothing changed or the states could not be read
// (the tracker then asks for another read at the next ping, as the EventSource does).
awaitable<std::string> HttpService::websocket_push(const store::Account& account, WebSocketPush& push) {
    auto& store = services_.store;
    auto read = services_.executor.run([&store, &account] { return http::push_states(store, account); });
    auto states = co_await std::move(read);
    if (!states) spdlog::debug("jmap: push states of {} unreadable, read again later: {}", account.address, states.error().message);
    auto changed = push.tracker->next(states);
    if (!changed) co_return std::string();
    co_return http::ws_state_change(http::state_change(http::jmap_account_id(account), std::move(*changed)),
                                    http::push_state_token(*push.tracker->known()));
}

// One text message (RFC 8887 4.3): the text to send back, "" for none.
awaitable<std::string> HttpService::websocket_message(const store::Account& account, const Config& config,
                                                      std::string_view text, WebSocketPush& push,
                                                      const std::shared_ptr<net::Connection>& connection) {
    const auto limits = api_limits(config.http);
    auto inbound = http::parse_ws_message(text, limits.json);
    if (auto* refused = std::get_if<http::WsRefused>(&inbound)) co_return http::ws_request_error(refused->problem, refused->id);
    if (std::holds_alternative<http::WsPushDisable>(inbound)) {
        push.tracker.reset();
        services_.hub.unwatch(account.id, connection.get());
        co_return std::string();
    }
    if (auto* enable = std::get_if<http::WsPushEnable>(&inbound)) {
        // Watched before the states are read: a commit in between wakes the loop and is reported.
        if (!push.tracker) services_.hub.watch(account.id, connection);
        push.tracker.emplace(std::move(enable->data_types));
        auto since = enable->push_state ? http::parse_push_state(*enable->push_state) : std::nullopt;
        if (since) {
            push.tracker->assume(std::move(*since));
            co_return co_await websocket_push(account, push);
        }
        // Without a pushState, the states now are the baseline (a failed read: the first good one reports all).
        auto& store = services_.store;
        auto read = services_.executor.run([&store, &account] { return http::push_states(store, account); });
        push.tracker->start(co_await std::move(read));
        co_return std::string();
    }
    auto& request = std::get<http::WsRequest>(inbound);
    if (!enter(account.id, limits.max_concurrent_requests)) {
        co_return http::ws_request_error(http::Problem{400, http::kProblemLimit, "too many concurrent requests for this account",
                                                       "maxConcurrentRequests"},
                                         request.id);
    }
    struct Leave {
        HttpService* service;
        std::int64_t account_id;
        ~Leave() { service->leave(account_id); }
    } leave_on_exit{this, account.id};
    auto answer = co_await run_api(account, config, std::move(request.request));
    if (auto* p = std::get_if<http::Problem>(&answer)) co_return http::ws_request_error(*p, request.id);
    co_return http::ws_response(std::move(std::get<json>(answer)), request.id);
}

awaitable<void> HttpService::websocket(const std::shared_ptr<net::Connection>& connection,
                                       const store::Account& account, const Request& request, const Config& config) {
    namespace ws = http::websocket;
    using Clock = std::chrono::steady_clock;
    const auto write_timeout = std::chrono::seconds(config.http.idle_timeout);
    std::string out = fmt::format("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                  "Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: {}\r\n\r\n",
                                  ws::accept_key(request.websocket_key), http::kWebSocketSubprotocol);
    if (!co_await connection->write_all(out, write_timeout)) co_return;
    Unwatch unwatch(services_.hub, account.id, connection.get());
    ws::Reader reader(config.http.max_request_octets);  // maxSizeRequest bounds a message
    reader.feed(request.early_data);
    WebSocketPush push;
    const auto ping_every = std::chrono::seconds(config.http.websocket_ping_interval);
    const auto idle_limit = std::chrono::seconds(config.http.websocket_idle_timeout);
    const auto close_wait = std::chrono::seconds(config.http.websocket_close_timeout);
    auto heard = Clock::now();
    for (;;) {
        while (auto message = reader.next()) {
            switch (message->opcode) {
                case ws::Opcode::text:
                    out = co_await websocket_message(account, config, message->payload, push, connection);
                    if (!out.empty() && !co_await connection->write_all(ws::frame(ws::Opcode::text, out), write_timeout)) {
                        co_return;
                    }
                    break;
                case ws::Opcode::ping:
                    if (!co_await connection->write_all(ws::frame(ws::Opcode::pong, message->payload), write_timeout)) co_return;
                    break;
                case ws::Opcode::close:  // RFC 6455 5.5.1: answer with a close, then end
                    co_await connection->write_all(ws::close_frame(ws::kCloseNormal, ""), write_timeout);
                    co_return;
                case ws::Opcode::binary:
                    co_await close_websocket(*connection, reader, ws::kCloseUnsupportedData, "JMAP messages are text",
                                             write_timeout, close_wait);
                    co_return;
                default: break;  // pong: the client is alive (heard is set on every read)
            }
        }
        if (reader.error()) {
            co_await close_websocket(*connection, reader, reader.error(), reader.error_reason(), write_timeout, close_wait);
            co_return;
        }
        auto bytes = co_await connection->read_available(ping_every);
        if (!bytes.empty()) {
            reader.feed(bytes);
            heard = Clock::now();
        } else if (connection->take_wake()) {
            if (!push.tracker) continue;
            out = co_await websocket_push(account, push);
            if (!out.empty() && !co_await connection->write_all(ws::frame(ws::Opcode::text, out), write_timeout)) co_return;
        } else if (connection->timed_out() && !connection->shutdown_requested()) {
            if (Clock::now() - heard >= idle_limit) {
                co_await close_websocket(*connection, reader, ws::kCloseGoingAway, "idle", write_timeout, close_wait);
                co_return;
            }
            if (push.tracker && push.tracker->retry_pending()) {  // the last state read failed: try again
                out = co_await websocket_push(account, push);
                if (!out.empty() && !co_await connection->write_all(ws::frame(ws::Opcode::text, out), write_timeout)) co_return;
            }
            if (!co_await connection->write_all(ws::frame(ws::Opcode::ping, ""), write_timeout)) co_return;
        } else {
            if (connection->shutdown_requested()) {
                co_await close_websocket(*connection, reader, ws::kCloseGoingAway, "server shutting down", write_timeout,
                                         close_wait);
            }
            co_return;  // the client went away, or the server is shutting down
        }
    }
}

awaitable<void> HttpService::serve(std::shared_ptr<net::Connection> connection) {
    std::array<char, 16384> buffer;
    std::string pending;
    std::string output;
    for (;;) {
        auto config = std::atomic_load(&config_);
        const auto timeout = std::chrono::seconds(config->http.idle_timeout);
        bhttp::request_parser<bhttp::string_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(config->http.max_header_octets));
        // Uploads may be larger than API requests: the header decides which bound applies (body_limit_for).
        parser.body_limit(std::max<std::uint64_t>(config->http.max_request_octets, config->http.max_upload_octets));
        parser.eager(true);
        boost::beast::error_code ec;
        while (!parser.is_done()) {
            if (!pending.empty()) {
                std::size_t used = parser.put(net::asio::buffer(pending), ec);
                pending.erase(0, used);
                if (ec == bhttp::error::need_more) {
                    ec = {};
                } else if (ec) {
                    break;
                }
                if (parser.is_header_done() && parser.content_length() &&
                    *parser.content_length() > body_limit_for(target_of(parser.get()), config->http)) {
                    ec = bhttp::error::body_limit;
                    break;
                }
                if (parser.is_done() || (used > 0 && !pending.empty())) continue;
            }
            std::size_t n = co_await connection->read_some(buffer, timeout);
            if (n == 0) {
                if (connection->timed_out() && (!pending.empty() || parser.got_some())) {
                    output = http::serialize(problem(408, "the request did not arrive in time"));
                    co_await connection->write_all(output, timeout);
                }
                co_return;
            }
            pending.append(buffer.data(), n);
        }
        if (ec) {
            auto response = parse_problem(ec, config->http, parser.is_header_done() && is_upload(target_of(parser.get())));
            response.close = true;
            output = http::serialize(response);
            co_await connection->write_all(output, timeout);
            co_return;
        }
        auto& message = parser.get();
        Request request{std::string(message.method_string()),
                        std::string(message.target()),
                        std::string(message[bhttp::field::authorization]),
                        std::move(message.body()),
                        std::string(message[bhttp::field::cookie]),
                        std::string(message["X-Magpie-CSRF"]),
                        std::string(message[bhttp::field::content_type]),
                        std::string(message[bhttp::field::origin]),
                        std::string(message[bhttp::field::host]),
                        std::string(message[bhttp::field::if_none_match]),
                        std::string(message[bhttp::field::upgrade]),
                        std::string(message[bhttp::field::connection]),
                        std::string(message[bhttp::field::sec_websocket_key]),
                        std::string(message[bhttp::field::sec_websocket_version]),
                        std::string(message[bhttp::field::sec_websocket_protocol]),
                        {},
                        connection->peer_ip(),
                        connection->tls_active()};
        if (!request.upgrade.empty()) request.early_data = std::move(pending);
        if (net::in_networks(config->http.reverse_proxies, request.client_ip)) {
            // Several field lines are one list in their order (RFC 9110 5.3): a proxy that adds a line of its
            // own rather than appending to the client's must not leave the client's line to be read first.
            std::string forwarded_for;
            std::string_view scheme;
            for (const auto& field : message) {
                const std::string_view name(field.name_string().data(), field.name_string().size());
                const std::string_view value(field.value().data(), field.value().size());
                if (iequals(name, "X-Forwarded-For")) {
                    if (!forwarded_for.empty()) forwarded_for += ',';
                    forwarded_for += value;
                } else if (iequals(name, "X-Forwarded-Proto")) {
                    scheme = value;  // the last line: the nearest proxy's
                }
            }
            request.client_ip = net::forwarded_client(forwarded_for, request.client_ip, config->http.reverse_proxies);
            if (iequals(scheme, "https")) request.secure = true;
            if (iequals(scheme, "http")) request.secure = false;
        }
        bool streamed = false;
        auto response = co_await handle(request, connection, *config, streamed);
        if (streamed) co_return;
        // A refused upgrade closes too: the bytes after it (early_data) were the client's frames.
        response.close = response.close || !message.keep_alive() || connection->shutdown_requested() ||
                         !request.upgrade.empty();
        output = http::serialize(response, request.method == "HEAD");
        if (!co_await connection->write_all(output, timeout) || response.close) co_return;
    }
}

}  // namespace magpie::server
