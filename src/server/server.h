// magpied: opens the store, binds the listeners of every service that exists, drops privileges and serves
// until SIGTERM/SIGINT (drain, then exit) while SIGHUP reloads the configuration.
#pragma once

#include <signal.h>

#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "base/result.h"
#include "net/listener.h"
#include "auth/password.h"
#include "auth/throttle.h"
#include "auth/verified_cache.h"
#include "server/change_hub.h"
#include "server/config.h"
#include "server/delivery_service.h"
#include "delivery/store_queue.h"
#include "mailauth/dkim_signer.h"
#include "server/http_service.h"
#include "server/imap_service.h"
#include "server/smtp_service.h"
#include "server/store_executor.h"
#include "store/store.h"

namespace magpie::server {

class Server {
public:
    // `config_file` is empty for --demo; it is read again on SIGHUP.
    Server(Config config, std::filesystem::path config_file);
    ~Server();

    // Opens the store and binds the listeners (as root if need be), then drops privileges.
    Result<void> start();
    // Serves until a SIGTERM/SIGINT drain completes; returns the process exit code. `blocked` are the signals
    // main() held back during start-up: they are unblocked here, once start() has installed their handlers,
    // so one that arrived meanwhile is handled now.
    int run(const sigset_t& blocked);

private:
    Result<void> prepare_demo();
    Result<void> load_tls();
    Result<void> start_delivery();
    // The bound listeners of (implicit TLS service, STARTTLS service), for autoconfig.
    std::vector<http::autoconfig::Endpoint> mail_endpoints(std::pair<const char*, const char*> services) const;
    // Loads the DKIM keys under <data_dir>/dkim/ (at start and on SIGHUP).
    Result<void> load_dkim();
    std::shared_ptr<const mailauth::DkimSigner> dkim_signer();
    void handle_signal(boost::system::error_code ec, int signal);
    void reload();
    void drain();
    std::shared_ptr<net::asio::ssl::context> tls_context();
    Result<void> bind(const std::vector<ListenAddress>& addresses, const std::string& service, bool implicit_tls,
                      const std::string& busy_reply);

    std::shared_ptr<const Config> config_;
    std::filesystem::path config_file_;
    std::unique_ptr<store::Store> store_;
    std::unique_ptr<StoreExecutor> store_executor_;   // logged-in IMAP sessions
    std::unique_ptr<StoreExecutor> imap_write_executor_;  // their writes, which wait for the group commit
    std::unique_ptr<StoreExecutor> lookup_executor_;  // SMTP recipient checks and deliveries
    std::unique_ptr<StoreExecutor> login_executor_;   // IMAP sessions before authentication
    std::unique_ptr<StoreExecutor> http_executor_;    // authenticated JMAP work ([http] api_threads)
    std::unique_ptr<StoreExecutor> http_write_executor_;  // JMAP requests that write ([http] write_threads)
    std::unique_ptr<net::IoPool> pool_;
    std::shared_ptr<net::ConnectionRegistry> registry_ = std::make_shared<net::ConnectionRegistry>();
    std::shared_ptr<net::ConnectionLimiter> smtp_limiter_;
    std::unique_ptr<SmtpService> smtp_;
    std::unique_ptr<InboundAuthenticator> inbound_;     // SPF/DKIM/DMARC of port-25 mail ([mailauth])
    std::unique_ptr<StoreExecutor> inbound_executor_;  // its evaluations, which block on DNS
    std::unique_ptr<SmtpService> submission_;  // ports 587/465, made once the queue is open
    std::shared_ptr<net::ConnectionLimiter> submission_limiter_;
    std::unique_ptr<delivery::StoreQueue> queue_;  // the scheduler's view of the store's queue
    std::unique_ptr<StoreExecutor> queue_executor_;   // the outgoing queue's store and DNS work
    std::unique_ptr<DeliveryService> delivery_;
    std::unique_ptr<auth::HashLimiter> hash_limiter_;
    std::unique_ptr<auth::LoginThrottle> throttle_;
    std::unique_ptr<auth::VerifiedCache> verified_cache_;
    std::unique_ptr<imap::SessionServices> imap_services_;
    std::shared_ptr<net::ConnectionLimiter> imap_limiter_;
    std::unique_ptr<ImapService> imap_;
    std::shared_ptr<net::ConnectionLimiter> http_limiter_;
    std::unique_ptr<HttpService> http_;
    ChangeHub change_hub_;
    std::vector<std::unique_ptr<net::Listener>> listeners_;
    std::unique_ptr<net::asio::signal_set> signals_;
    std::mutex tls_mutex_;
    std::mutex dkim_mutex_;
    std::shared_ptr<const mailauth::DkimSigner> dkim_;
    std::shared_ptr<net::asio::ssl::context> tls_;
    bool draining_ = false;
};

}  // namespace magpie::server
