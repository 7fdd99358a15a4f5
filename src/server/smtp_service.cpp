#include "server/smtp_service.h"

#include <array>
#include <set>

#include <fmt/format.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include "base/strings.h"
#include "base/time.h"
#include "store/summary.h"

namespace magpie::server {
namespace {

smtp::ServerConfig session_config(const Config& config, const net::Connection& connection) {
    smtp::ServerConfig c;
    c.hostname = config.hostname;
    c.limits.max_command_line = config.smtp.max_command_line;
    c.limits.max_text_line = config.smtp.max_text_line;
    c.limits.max_message_size = config.smtp.max_message_size;
    c.limits.max_recipients = config.smtp.max_recipients;
    c.limits.max_bad_commands = config.smtp.max_bad_commands;
    c.starttls_offered = connection.tls_available() && !connection.tls_active();
    c.tls_active = connection.tls_active();
    c.bare_line_ending = config.smtp.bare_line_ending == "normalize" ? smtp::BareLineEnding::normalize
                                                                     : smtp::BareLineEnding::reject;
    return c;
}

// A short unique id for logs and the 250 reply: 12 random bytes, hex.
std::string new_queue_id() {
    std::array<unsigned char, 8> bytes{};
    RAND_bytes(bytes.data(), static_cast<int>(bytes.size()));
    return to_upper(to_hex(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size())));
}

// RFC 5321 4.5.1: a bare "Postmaster" (any case, no domain) must be accepted. It means this server's
// postmaster: the postmaster of the domain the host name belongs to, else of the first local domain that
// has one (an account or an alias named postmaster).
Result<store::RecipientResult> resolve(store::Store& store, const std::string& hostname, const std::string& address) {
    if (address.find('@') != std::string::npos) return store.resolve_recipient(address);
    auto domains = store.list_domains();
    if (!domains) return domains.error();
    std::vector<std::string> candidates;
    for (const auto& domain : *domains) {
        bool hosts_us = hostname.size() > domain.name.size() &&
                        iequals(std::string_view(hostname).substr(hostname.size() - domain.name.size()), domain.name) &&
                        hostname[hostname.size() - domain.name.size() - 1] == '.';
        candidates.insert(hosts_us ? candidates.begin() : candidates.end(), "postmaster@" + domain.name);
    }
    for (const auto& candidate : candidates) {
        auto resolved = store.resolve_recipient(candidate);
        if (!resolved || resolved->status == store::RecipientStatus::local) return resolved;
    }
    return store::RecipientResult{store::RecipientStatus::unknown_user, 0, {}};
}

}  // namespace

awaitable<smtp::RcptVerdict> SmtpService::check_recipient(const std::string& address) {
    // g++ 12 destroys temporaries inside a co_await expression twice: build the operation first, then await it.
    auto lookup = executor_.run([this, address, hostname = std::atomic_load(&config_)->hostname] {
        return resolve(store_, hostname, address);
    });
    auto result = co_await std::move(lookup);
    if (!result) {
        spdlog::error("smtp: recipient lookup for <{}> failed: {}", address, result.error().message);
        co_return smtp::RcptVerdict::temporary_failure;
    }
    switch (result->status) {
        case store::RecipientStatus::local: co_return smtp::RcptVerdict::accept;
        case store::RecipientStatus::unknown_user: co_return smtp::RcptVerdict::unknown_user;
        case store::RecipientStatus::not_local_domain: co_return smtp::RcptVerdict::relay_denied;
    }
    co_return smtp::RcptVerdict::temporary_failure;
}

awaitable<Result<std::string>> SmtpService::store_message(const smtp::MessageReceived& message,
                                                          const net::Connection& connection,
                                                          const Config& config) {
    const auto& envelope = message.envelope;
    std::string queue_id = new_queue_id();
    std::int64_t now = unix_now();

    // Trace fields go on top (RFC 5321 4.4); Return-Path is added at final delivery, which this is.
    std::string content;
    content.reserve(message.data.size() + 512);
    content += fmt::format("Return-Path: <{}>\r\n", envelope.reverse_path);
    content += smtp::received_header(envelope, connection.peer_ip(), config.hostname, queue_id, now);
    content += message.data;

    std::vector<std::string> recipients;
    for (const auto& r : envelope.recipients) recipients.push_back(r.address);

    // Recipients were checked at RCPT time; resolve them again to accounts and their INBOXes, each account
    // once however many of its addresses (aliases) were named.
    auto lookup = executor_.run([this, recipients, hostname = config.hostname]() -> Result<std::vector<store::DeliveryTarget>> {
        std::set<std::int64_t> accounts;
        std::vector<store::DeliveryTarget> out;
        for (const auto& address : recipients) {
            auto resolved = resolve(store_, hostname, address);
            if (!resolved) return resolved.error();
            if (resolved->status != store::RecipientStatus::local) continue;  // removed since RCPT
            if (!accounts.insert(resolved->account_id).second) continue;
            auto inbox = store_.find_mailbox(resolved->account_id, "INBOX");
            if (!inbox) return inbox.error();
            out.push_back(store::DeliveryTarget{inbox->id, {}});
        }
        return out;
    });
    auto targets = co_await std::move(lookup);
    if (!targets) co_return targets.error();
    if (targets->empty()) co_return make_error(Errc::not_found, "no recipient exists any more");

    store::Delivery delivery;
    delivery.summary = store::summarize(content);
    delivery.content = std::move(content);
    delivery.internal_date = now;
    delivery.targets = std::move(*targets);
    // RFC 3461 5.2.2: a sender that asked for success notifications gets one once the queue exists; keep what
    // it needs (the envelope with its DSN parameters) beside the message, in the same commit.
    bool wants_success = false;
    for (const auto& r : envelope.recipients) wants_success = wants_success || to_upper(r.notify).find("SUCCESS") != std::string::npos;
    if (wants_success) {
        store::EnvelopeRecord record{envelope.reverse_path, envelope.dsn_ret, envelope.dsn_envid, {}};
        for (const auto& r : envelope.recipients) record.recipients.push_back({r.address, r.notify, r.orcpt});
        delivery.envelope = std::move(record);
    }
    std::size_t size = delivery.content.size();
    auto commit = executor_.deliver(store_, std::move(delivery));
    auto delivered = co_await std::move(commit);
    if (!delivered) {
        spdlog::error("smtp: {} from=<{}> size={} not stored: {}", queue_id, envelope.reverse_path, size,
                      delivered.error().message);
        co_return delivered.error();
    }
    spdlog::info("smtp: {} from=<{}> to={} size={} peer={} stored blob={}", queue_id, envelope.reverse_path,
                 fmt::join(recipients, ","), size, connection.peer_ip(), delivered->blob_id.substr(0, 16));
    co_return queue_id;
}

awaitable<void> SmtpService::serve(std::shared_ptr<net::Connection> connection) {
    auto config = std::atomic_load(&config_);
    const auto timeout = std::chrono::seconds(config->smtp.idle_timeout);
    smtp::ServerSession session(session_config(*config, *connection), connection->peer_ip());
    std::array<char, 16384> buffer;
    std::string output;
    // Writes what the session has to say. (The output lives in a named variable: see store_executor.h.)
    auto flush = [&]() -> awaitable<bool> {
        output = session.take_output();
        return connection->write_all(output, timeout);
    };

    for (;;) {
        // Answer every event the session raised, in order; each answer may release pipelined commands.
        while (auto event = session.poll_event()) {
            if (auto* rcpt = std::get_if<smtp::RcptCheck>(&*event)) {
                session.rcpt_checked(co_await check_recipient(rcpt->address));
            } else if (auto* message = std::get_if<smtp::MessageReceived>(&*event)) {
                session.stored(co_await store_message(*message, *connection, *config));
            } else if (std::holds_alternative<smtp::StartTls>(*event)) {
                if (!co_await flush()) co_return;
                auto started = co_await connection->start_tls(timeout);
                if (!started) {
                    spdlog::info("smtp: {}: {}", connection->peer_ip(), started.error().message);
                    co_return;  // the stream is in an unknown state: nothing more can be said on it
                }
                session.tls_started();
            } else if (std::holds_alternative<smtp::Close>(*event)) {
                co_await flush();
                co_return;
            }
        }
        if (!co_await flush()) co_return;

        std::size_t n = co_await connection->read_some(buffer, timeout);
        if (n == 0) {
            if (connection->shutdown_requested()) {
                session.shutting_down();
            } else if (connection->timed_out()) {
                session.idle_timeout();
            } else {
                co_return;  // the client went away
            }
            co_await flush();
            co_return;
        }
        session.feed(std::string_view(buffer.data(), n));
    }
}

}  // namespace magpie::server
