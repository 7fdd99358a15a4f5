// The SMTP server's IO side (port 25): a coroutine per connection that pumps bytes between the socket and a
// sans-IO smtp::ServerSession, answers its events (is this recipient local? store this message; start TLS)
// with the store and the TLS context, and says goodbye on idle timeout or shutdown.
#pragma once

#include <atomic>
#include <memory>

#include "net/connection.h"
#include "server/config.h"
#include "server/store_executor.h"
#include "smtp/server_session.h"
#include "store/store.h"

namespace magpie::server {

// Who is local, for RCPT TO: an account, else an alias, else the domain's catch-all (the store's rule), with
// the postmaster that RFC 5321 4.5.1 says always exists:
// - postmaster@D (any case) for a local domain D: an account or alias of that exact name first, then the
//   configured [smtp] postmaster account, then D's catch-all, then D's oldest account; unknown only when D
//   has no account at all.
// - a bare "Postmaster": postmaster@ the local domain the host name belongs to (mx.example.org ->
//   example.org, or the host name itself); failing that the configured account, then the first local
//   domain (by name) where postmaster@ resolves.
struct RecipientPolicy {
    std::string hostname;
    std::string postmaster;  // "" when not configured, or when it names no account
};
Result<store::RecipientResult> resolve_recipient(store::Store& store, const RecipientPolicy& policy,
                                                 std::string_view address);

class SmtpService {
public:
    SmtpService(std::shared_ptr<const Config> config, store::Store& store, StoreExecutor& executor)
        : config_(std::move(config)), store_(store), executor_(executor) {}

    // SIGHUP: later connections use the new limits.
    void reconfigure(std::shared_ptr<const Config> config) { std::atomic_store(&config_, std::move(config)); }

    awaitable<void> serve(std::shared_ptr<net::Connection> connection);

private:
    awaitable<smtp::RcptVerdict> check_recipient(const std::string& address);
    awaitable<Result<std::string>> store_message(const smtp::MessageReceived& message,
                                                 const net::Connection& connection, const Config& config);

    std::shared_ptr<const Config> config_;
    store::Store& store_;
    StoreExecutor& executor_;
};

}  // namespace magpie::server
