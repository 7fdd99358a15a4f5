// The IMAP server's IO side (143 with STARTTLS, 993 with implicit TLS): a coroutine per connection that
// feeds client bytes to an imap::Session, runs it, answers its typed store requests (one call each on the
// store executor, writes on a pool of their own; an APPEND's commit through the group committer), writes the
// responses, and wakes IDLE sessions (only those) when the ChangeHub says their account's mail changed. The session itself runs on the network
// thread (it only parses and formats) and holds no store; password checks are requests run on the login pool.
#pragma once

#include <memory>

#include "auth/password.h"
#include "auth/throttle.h"
#include "imap/session/session.h"
#include "net/connection.h"
#include "server/change_hub.h"
#include "server/config.h"
#include "server/store_executor.h"
#include "store/store.h"

namespace magpie::server {

class ImapService {
public:
    // `executor` runs logged-in sessions' commands; `write_executor` their writes that wait for the group commit
    // (imap::waits_for_commit: STORE, EXPUNGE, COPY/MOVE, mailbox changes), so reads never queue behind an fsync;
    // `login_executor` runs everything before authentication, so unauthenticated clients compete only with
    // each other.
    ImapService(std::shared_ptr<const Config> config, imap::SessionServices& services, StoreExecutor& executor,
                StoreExecutor& write_executor, StoreExecutor& login_executor, ChangeHub& hub)
        : config_(std::move(config)), services_(services), executor_(executor), write_executor_(write_executor),
          login_executor_(login_executor), hub_(hub) {}

    void reconfigure(std::shared_ptr<const Config> config) { std::atomic_store(&config_, std::move(config)); }

    awaitable<void> serve(std::shared_ptr<net::Connection> connection);

private:
    std::shared_ptr<const Config> config_;
    imap::SessionServices& services_;
    StoreExecutor& executor_;
    StoreExecutor& write_executor_;
    StoreExecutor& login_executor_;
    ChangeHub& hub_;
};

}  // namespace magpie::server
