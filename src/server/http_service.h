// The HTTP server's IO side (JMAP, RFC 8620/8621): a coroutine per connection that reads HTTP/1.1 requests
// with Boost.Beast's parser (bounded header and body), authenticates them (Basic through auth's throttle
// and verified cache on the login pool), runs the sans-IO JMAP dispatcher on its own API pool, writes the
// response, and keeps EventSource streams (RFC 8620 7.3) open, woken by the ChangeHub.
#pragma once

#include <map>
#include <memory>
#include <mutex>

#include "auth/password.h"
#include "auth/throttle.h"
#include "auth/verified_cache.h"
#include "http/autoconfig.h"
#include "http/api.h"
#include "http/message.h"
#include "http/methods/submission.h"
#include "mailauth/dkim_signer.h"
#include "http/methods/web_session.h"
#include "http/webmail.h"
#include "net/connection.h"
#include "server/change_hub.h"
#include "server/config.h"
#include "server/store_executor.h"
#include "store/store.h"

namespace magpie::server {

struct HttpServices {
    store::Store& store;
    auth::HashLimiter& hash_limiter;
    auth::LoginThrottle& throttle;
    auth::VerifiedCache* verified_cache;
    StoreExecutor& executor;        // authenticated work: the API pool ([http] api_threads)
    // API requests that call a method which writes (…/set, …/import, …/copy): each waits for the group commit's
    // fsync on its thread, so they run apart from the reads ([http] write_threads).
    StoreExecutor& write_executor;
    StoreExecutor& login_executor;  // unauthenticated work: password, token and cookie checks, autoconfig
    ChangeHub& hub;
    // EmailSubmission's way out, shared with SMTP submission: the DKIM keys now, and the queue's wake-up.
    std::function<std::shared_ptr<const mailauth::DkimSigner>()> dkim_signer;
    std::function<void()> queue_changed;
};

class HttpService {
public:
    HttpService(std::shared_ptr<const Config> config, HttpServices services)
        : config_(std::move(config)), services_(services) {
        load_webmail(*config_);
    }

    void reconfigure(std::shared_ptr<const Config> config) {
        load_webmail(*config);
        std::atomic_store(&config_, std::move(config));
    }

    // The IMAP and submission listeners as bound (their real ports), offered to mail clients that set
    // themselves up (http/autoconfig.h). Called once, before the listeners start.
    void set_mail_endpoints(std::vector<http::autoconfig::Endpoint> imap,
                            std::vector<http::autoconfig::Endpoint> submission) {
        imap_endpoints_ = std::move(imap);
        submission_endpoints_ = std::move(submission);
    }

    awaitable<void> serve(std::shared_ptr<net::Connection> connection);

    struct Request;  // one parsed request (http_service.cpp)

private:
    awaitable<http::Response> handle(const Request& request, const std::shared_ptr<net::Connection>& connection,
                                     const Config& config, bool& streamed);
    // Autoconfig, autodiscover, Apple profiles (issue 18): no login; the local domains come from the store.
    awaitable<http::Response> client_setup(const Request& request, const Config& config);
    awaitable<Result<store::Account>> authenticate(const Request& request, const Config& config);
    awaitable<void> event_source(const std::shared_ptr<net::Connection>& connection, const store::Account& account,
                                 const http::EventSourceQuery& query, const Config& config);
    // RFC 8887: after the 101, one coroutine per connection reads frames (http/websocket.h), runs Request
    // messages one at a time (each counts in maxConcurrentRequests) and pushes StateChanges from the ChangeHub
    // as the EventSource does; pings the client every `websocket_ping_interval` and closes after
    // `websocket_idle_timeout` without a frame from it.
    awaitable<void> websocket(const std::shared_ptr<net::Connection>& connection, const store::Account& account,
                              const Request& request, const Config& config);
    struct WebSocketPush;  // http_service.cpp
    awaitable<std::string> websocket_message(const store::Account& account, const Config& config, std::string_view text,
                                             WebSocketPush& push, const std::shared_ptr<net::Connection>& connection);
    awaitable<std::string> websocket_push(const store::Account& account, WebSocketPush& push);
    // The webmail (http_webmail.cpp): its built files, its sign-in routes and cookie sessions.
    void load_webmail(const Config& config);
    awaitable<http::Response> webmail(const Request& request, const Config& config, http::WebmailRoute route);
    awaitable<http::Response> webmail_login(const Request& request, const Config& config);
    // The account of the request's session cookie. auth_failed when there is none, it is unknown or expired,
    // or (for anything but GET/HEAD) the X-Magpie-CSRF header or the Origin does not match the session's.
    awaitable<Result<store::Account>> authenticate_cookie(const Request& request, const Config& config);
    // The request's cookie session and its account, from the store (auth_failed when none or not live).
    awaitable<Result<http::WebSessions::Found>> find_web_session(const Request& request,
                                                                 const Config& config);
    static http::Response webmail_unauthorized(std::string detail);

    // EmailSubmission/set's preparation (http/methods/submission.h), on an API pool thread; the send it returns
    // completes through the group committer's callback.
    Result<http::SubmissionSend> submit(const Config& config, const store::Account& account,
                                        const http::OutgoingSubmission& outgoing);
    // Runs one JMAP request (RFC 8620 3.3; a parsed one for RFC 8887's WebSocket) on the API pool. A deferred
    // method (EmailSubmission/set) pauses it while the group committer works: no pool thread waits.
    awaitable<http::Answer> run_api(const store::Account& account, const Config& config,
                                    std::variant<std::string_view, nlohmann::json> request);
    // Moves the connection's limiter slot to (account, client address) at its first authenticated request;
    // false when the account has [http] max_connections_per_user_ip connections from that address already.
    bool admit(net::Connection& connection, const std::string& client_ip, std::int64_t account_id,
               const Config& config);
    // Per-account count of API requests running (maxConcurrentRequests); false when at the limit.
    // Uploads count apart (maxConcurrentUpload).
    bool enter(std::int64_t account_id, std::size_t limit, bool upload = false);
    void leave(std::int64_t account_id, bool upload = false);
    awaitable<http::Response> blob_transfer(const Request& request, const store::Account& account,
                                            const http::ApiLimits& limits, bool upload);

    std::shared_ptr<const Config> config_;
    HttpServices services_;
    std::mutex running_mutex_;
    std::map<std::int64_t, std::size_t> running_;
    std::vector<http::autoconfig::Endpoint> imap_endpoints_;
    std::vector<http::autoconfig::Endpoint> submission_endpoints_;
    std::map<std::int64_t, std::size_t> uploading_;
    std::shared_ptr<const http::StaticSite> site_;  // atomic_load/atomic_store: replaced on reconfigure
    http::WebSessions web_sessions_;
};

}  // namespace magpie::server
