#include "server/imap_service.h"

#include <algorithm>
#include <chrono>

#include <spdlog/spdlog.h>

#include "base/time.h"

namespace magpie::server {
namespace {

imap::SessionConfig session_config(const Config& config, const net::Connection& connection) {
    imap::SessionConfig c;
    c.hostname = config.hostname;
    c.tls_active = connection.tls_active();
    c.starttls_available = connection.tls_available() && !connection.tls_active();
    c.allow_plaintext_login = config.imap.allow_plaintext_login;
    c.limits.max_line_octets = config.imap.max_line_octets;
    c.limits.max_literal_octets = config.imap.max_literal_octets;
    c.limits.max_nesting_depth = config.imap.max_nesting_depth;
    c.limits.max_sequence_set_ranges = config.imap.max_sequence_set_ranges;
    c.limits.max_search_keys = config.imap.max_search_keys;
    c.max_output_octets_per_run = config.imap.output_slice_octets;
    return c;
}

// A login's success moves the connection's limiter slot from its address to the account and address
// ([imap] max_connections_per_user_ip; Dovecot's mail_max_userip_connections): the per-address limit then
// bounds only connections not logged in yet, so many accounts behind one address (a NAT, a carrier's, a
// webmail host) are not refused together. When the account has that many from the address already, the
// login is answered as unavailable (NO [UNAVAILABLE]) and the connection stays unauthenticated.
void admit_login(imap::StoreAnswer& answer, const Config& config, net::Connection& connection) {
    std::optional<std::int64_t> account;
    if (auto* login = std::get_if<imap::kRequestIndex<imap::request::Login>>(&answer); login && *login) {
        account = (*login)->id;
    } else if (auto* step = std::get_if<imap::kRequestIndex<imap::request::SaslStep>>(&answer);
               step && *step && (*step)->outcome.kind == auth::SaslOutcome::Kind::success &&
               (*step)->account) {
        account = (*step)->account->id;
    }
    auto* slot = connection.limiter_slot();
    if (!account || slot == nullptr) return;
    const auto key = fmt::format("{}|{}", *account, connection.peer_ip());
    if (slot->move_to(key, config.imap.max_connections_per_user_ip)) return;
    spdlog::info(
        "imap: {}: login refused: account {} has {} connections from this address already "
        "([imap] max_connections_per_user_ip)",
        connection.peer_ip(), *account, config.imap.max_connections_per_user_ip);
    Error refused = make_error(Errc::unavailable, "too many connections of this account from this address");
    if (std::get_if<imap::kRequestIndex<imap::request::Login>>(&answer)) {
        answer.emplace<imap::kRequestIndex<imap::request::Login>>(std::move(refused));
    } else {
        answer.emplace<imap::kRequestIndex<imap::request::SaslStep>>(std::move(refused));
    }
}

}  // namespace

awaitable<void> ImapService::serve(std::shared_ptr<net::Connection> connection) {
    auto config = std::atomic_load(&config_);
    const auto timeout = std::chrono::seconds(config->imap.idle_timeout);
    const auto keepalive = std::chrono::seconds(config->imap.idle_keepalive_interval);
    auto last_input = std::chrono::steady_clock::now();
    // The session gets no store: its store work comes out as requests, answered below. It opens spools
    // for large APPEND literals itself (a file; no store round trip).
    imap::Session session(session_config(*config, *connection), connection->peer_ip(),
                          [&store = services_.store] { return store.open_spool(); });
    // The account is watched only while the session idles: a commit wakes just the IDLE sessions, not every
    // logged-in connection of the account (100 clients of one account were 100 wake-ups per STORE; issue 17).
    // Outside IDLE the end of each command reads what changed anyway.
    std::optional<std::int64_t> watched;
    std::uint64_t notifications_before_request = 0;  // hub_.notifications() before the last store request
    bool wake_pending = false;  // a change to tell the idling session once the input already here is read
    // No read buffer here: this frame lives as long as the connection, which mostly waits for its client;
    // read_available's buffer exists only while bytes are being handed over (issue 17).
    std::string output;
    // Writes what the session has to say. (Named variables, not temporaries, around co_await: see
    // store_executor.h.)
    auto flush = [&]() -> awaitable<bool> {
        output = session.take_output();
        return connection->write_all(output, timeout);
    };

    struct Unwatch {
        ChangeHub& hub;
        std::optional<std::int64_t>& account;
        net::Connection* connection;
        ~Unwatch() {
            if (account) hub.unwatch(*account, connection);
        }
    } unwatch{hub_, watched, connection.get()};

    for (;;) {
        if (session.has_work()) session.run(unix_now());  // parsing and formatting only: store work comes as requests
        // The store work the session asked for: no session holds a thread meanwhile. A commit goes to the
        // group committer (no thread waits for its fsync); a password check to the login pool (unauthenticated
        // clients compete only with each other); a write that waits for the group commit to the write pool;
        // everything else is one call on the store executor.
        while (auto request = session.take_request()) {
            notifications_before_request = hub_.notifications();
            std::optional<imap::StoreAnswer> answer;
            if (auto* deliver = std::get_if<imap::request::Deliver>(&*request)) {
                auto committed = executor_.deliver(services_.store, std::move(deliver->delivery));
                Result<store::Delivered> result = co_await std::move(committed);
                answer.emplace(imap::delivered_answer(std::move(result)));
            } else {
                auto& pool = imap::runs_on_login_pool(*request) ? login_executor_
                             : imap::waits_for_commit(*request)   ? write_executor_
                                                                  : executor_;
                auto performed = pool.run([&services = services_, taken = std::move(*request)]() mutable {
                    return imap::perform(services, std::move(taken));
                });
                imap::StoreAnswer result = co_await std::move(performed);
                admit_login(result, *config, *connection);
                answer.emplace(std::move(result));
            }
            session.answer(std::move(*answer), unix_now());
        }
        if (!co_await flush()) {
            spdlog::debug("imap: {}: write failed{}", connection->peer_ip(), connection->timed_out() ? " (timeout)" : "");
            co_return;
        }
        // Issue 17: a FETCH slice's buffer is not kept while the connection waits for its client.
        if (output.capacity() > imap::Parser::kKeptCapacity) std::string().swap(output);
        switch (session.take_action()) {
            case imap::Session::Action::none: break;
            case imap::Session::Action::close:
                spdlog::debug("imap: {}: session closed", connection->peer_ip());
                co_return;
            case imap::Session::Action::start_tls: {
                auto started = co_await connection->start_tls(timeout);
                if (!started) {
                    spdlog::info("imap: {}: {}", connection->peer_ip(), started.error().message);
                    co_return;
                }
                session.tls_started();
                continue;
            }
        }
        if (session.has_work()) continue;  // pipelined commands, or input held back by wants_input()
        if (session.idling() && !watched && session.account_id()) {
            watched = session.account_id();
            hub_.watch(*watched, connection);
            // A commit after the IDLE's Refresh read the store and before this watch woke no one: look again.
            if (hub_.notifications() != notifications_before_request) {
                session.mailbox_changed(unix_now());
                continue;
            }
        } else if (!session.idling() && watched) {
            hub_.unwatch(*watched, connection.get());
            watched.reset();
            connection->take_wake();  // meant for the IDLE that ended; the command's end read the changes
        }
        if (!session.wants_input()) {
            spdlog::warn("imap: {}: session neither has work nor wants input; closing", connection->peer_ip());
            co_return;
        }

        // While idling, wake up every keepalive interval to say "* OK Still here"; the idle timeout still
        // counts from the client's last input.
        const auto silent = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() -
                                                                             last_input);
        const auto left = std::max(std::chrono::seconds(1), timeout - silent);
        auto read_timeout = session.idling() ? std::min(keepalive, left) : left;
        // A change heard while the last Refresh ran: told after a short look for input that is already here.
        // Otherwise a stream of changes (a wake during every Refresh) kept an IDLE from ever reading the
        // client's DONE: 8 s per IDLE at 100 clients (issue 17).
        if (session.idling() && connection->take_wake()) {
            wake_pending = true;
            read_timeout = std::chrono::seconds(0);
        }
        if (!session.idling()) wake_pending = false;
        std::string_view input = co_await connection->read_available(read_timeout);
        if (input.empty()) {
            if (connection->take_wake() || std::exchange(wake_pending, false)) {
                session.mailbox_changed(unix_now());  // asks for a Refresh, answered at the loop's top
                continue;
            }
            if (connection->shutdown_requested()) {
                session.shutting_down();
            } else if (connection->timed_out() && session.idling() &&
                       std::chrono::steady_clock::now() - last_input < timeout) {
                session.idle_keepalive();
                continue;
            } else if (connection->timed_out()) {
                session.idle_timeout();
            } else {
                spdlog::debug("imap: {}: client closed the connection", connection->peer_ip());
                co_return;
            }
            co_await flush();
            co_return;
        }
        last_input = std::chrono::steady_clock::now();
        session.feed(input);  // `input` lasts until the next read
    }
}

}  // namespace magpie::server
