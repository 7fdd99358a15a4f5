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
