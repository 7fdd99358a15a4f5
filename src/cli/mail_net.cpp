#include "cli/mail_net.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <array>
#include <exception>
#include <optional>

#include "base/strings.h"
#include "net/asio.h"
#include "net/client_connection.h"

namespace magpie::cli::mail_ui {
namespace {

namespace asio = net::asio;
using net::awaitable;
using net::tcp;

Error io(std::string message) {
    return make_error(Errc::io_error, std::move(message));
}

// Runs one coroutine on `io` to its end: the command-line program does one exchange at a time.
template <class T>
T block(asio::io_context& context, awaitable<T> op) {
    std::optional<T> out;
    std::exception_ptr failure;
    asio::co_spawn(
        context, [&]() -> awaitable<void> { out.emplace(co_await std::move(op)); },
        [&](std::exception_ptr e) { failure = e; });
    context.restart();
    context.run();
    if (failure) std::rethrow_exception(failure);
    return std::move(*out);
}

// Endpoints for host:port. Plaintext is allowed to loopback only: a password must not cross a network
// in the clear.
Result<std::vector<tcp::endpoint>> resolve(asio::io_context& context, const Endpoint& endpoint) {
    tcp::resolver resolver(context);
    boost::system::error_code ec;
    auto results = resolver.resolve(endpoint.host, std::to_string(endpoint.port), ec);
    if (ec) return io("cannot resolve " + endpoint.host + ": " + ec.message());
    std::vector<tcp::endpoint> out;
    for (const auto& r : results) out.push_back(r.endpoint());
    if (out.empty()) return io("no address for " + endpoint.host);
    if (endpoint.security == Security::plaintext) {
        for (const auto& e : out)
            if (!e.address().is_loopback())
                return make_error(Errc::permission_denied, "plaintext to " + endpoint.host +
                                                               " refused: only loopback may go without TLS");
    }
    return out;
}

// Verifying client context: the account's CA file (or the system's store), TLS 1.2 or newer. An IP
// address as host is checked against the certificate's IP entries here; a name is checked by
// ClientConnection::start_tls (`verify_name`).
Result<std::shared_ptr<asio::ssl::context>> tls_context(const Account& account, const std::string& host,
                                                        bool& verify_name) {
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
    SSL_CTX_set_options(ctx->native_handle(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    boost::system::error_code ec;
    if (!account.ca_file.empty()) {
        ctx->load_verify_file(account.ca_file, ec);
        if (ec) return io("cannot read ca_file " + account.ca_file + ": " + ec.message());
    } else {
        ctx->set_default_verify_paths(ec);
    }
    ctx->set_verify_mode(asio::ssl::verify_peer);
    boost::system::error_code not_ip;
    asio::ip::make_address(host, not_ip);
    verify_name = static_cast<bool>(not_ip);
    if (!verify_name &&
        X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(ctx->native_handle()), host.c_str()) != 1)
        return io("cannot check the certificate against " + host);
    return ctx;
}

awaitable<Result<void>> connect(net::ClientConnection& connection,
                                const std::vector<tcp::endpoint>& endpoints, const Account& account,
                                const Endpoint& endpoint) {
    std::string last;
    for (const auto& e : endpoints) {
        auto connected = co_await connection.connect(e, std::chrono::seconds(account.connect_timeout));
        if (connected) co_return Result<void>{};
        last = connected.error().message;
        connection.close();
    }
    co_return io("cannot connect to " + endpoint.host + " port " + std::to_string(endpoint.port) + ": " +
                 last);
}

awaitable<Result<void>> secure(net::ClientConnection& connection, const Account& account,
                               const Endpoint& endpoint) {
    bool verify_name = true;
    const std::string& name = endpoint.tls_name.empty() ? endpoint.host : endpoint.tls_name;
    auto ctx = tls_context(account, name, verify_name);
    if (!ctx) co_return ctx.error();
    auto secured =
        co_await connection.start_tls(*ctx, name, verify_name, std::chrono::seconds(account.command_timeout));
    if (!secured) co_return io(endpoint.host + ": " + secured.error().message);
    co_return Result<void>{};
}

}  // namespace

// ---- IMAP
// --------------------------------------------------------------------------------------------------

struct ImapConnection::Impl {
    explicit Impl(const Account& a) : account(a), connection(context.get_executor()), client(limits(a)) {}

    static imap::client::ClientLimits limits(const Account& a) {
        imap::client::ClientLimits l;
        l.response.max_literal_octets = a.max_fetch_octets;
        l.response.max_response_octets =
            std::max<std::size_t>(l.response.max_response_octets, a.max_fetch_octets + (1 << 20));
        return l;
    }

    // The next event, pumping bytes both ways until there is one.
    awaitable<imap::client::ClientEvent> next_event() {
        const auto timeout = std::chrono::seconds(account.command_timeout);
        std::array<char, 65536> buffer;
        while (true) {
            if (auto event = client.poll_event()) co_return std::move(*event);
            while (client.has_output()) {
                if (!co_await connection.write_all(client.take_output(), timeout)) {
                    client.connection_closed("cannot write to the IMAP server: " + connection.last_error());
                    break;
                }
            }
            if (auto event = client.poll_event()) co_return std::move(*event);
            std::size_t n = co_await connection.read_some(buffer, timeout);
            if (n == 0) {
                client.connection_closed(connection.timed_out() ? "the IMAP server did not answer in time"
                                         : connection.last_error().empty()
                                             ? "the IMAP server closed the connection"
                                             : connection.last_error());
                continue;
            }
            client.feed(std::string_view(buffer.data(), n));
        }
    }

    awaitable<Result<imap::client::Completed>> run(const imap::client::Command& command, bool allow_no) {
        auto tag = client.submit(command);
        if (!tag) co_return tag.error();
        while (true) {
            auto event = co_await next_event();
            if (auto* closed = std::get_if<imap::client::Closed>(&event)) co_return io(closed->reason);
            auto* done = std::get_if<imap::client::Completed>(&event);
            if (done == nullptr || done->tag != *tag) continue;
            if (done->status != imap::client::Status::ok && !allow_no) {
                co_return make_error(
                    done->status == imap::client::Status::no ? Errc::not_found : Errc::invalid_argument,
                    command.name() + " failed: " +
                        (done->text.code.empty() ? "" : "[" + done->text.code + "] ") + done->text.text);
            }
            co_return std::move(*done);
        }
    }

    awaitable<Result<void>> open(const std::string& password) {
        const Endpoint& endpoint = account.imap;
        auto endpoints = resolve(context, endpoint);
        if (!endpoints) co_return endpoints.error();
        auto connected = co_await connect(connection, *endpoints, account, endpoint);
        if (!connected) co_return connected.error();
        if (endpoint.security == Security::implicit_tls) {
            auto secured = co_await secure(connection, account, endpoint);
            if (!secured) co_return secured.error();
        }
        auto greeting = co_await next_event();
        if (auto* closed = std::get_if<imap::client::Closed>(&greeting)) co_return io(closed->reason);
        const bool preauth =
            std::get<imap::client::Greeting>(greeting).status == imap::client::Status::preauth;
        if (client.capabilities().empty()) {
            auto caps = co_await run(imap::client::Command("CAPABILITY"), false);
            if (!caps) co_return caps.error();
        }
        if (endpoint.security == Security::starttls && !preauth) {
            if (!client.has_capability("STARTTLS")) co_return io(endpoint.host + " does not offer STARTTLS");
            auto started = co_await run(imap::client::Command("STARTTLS"), false);
            if (!started) co_return started.error();
            auto secured = co_await secure(connection, account, endpoint);
            if (!secured) co_return secured.error();
            if (!client.tls_started())
                co_return io("the IMAP server sent data after STARTTLS's OK (injection?)");
            auto caps = co_await run(imap::client::Command("CAPABILITY"), false);
            if (!caps) co_return caps.error();
        }
        if (!preauth) {
            if (client.has_capability("LOGINDISABLED"))
                co_return io("the IMAP server does not allow LOGIN here");
            imap::client::Command login("LOGIN");
            login.astring(account.login()).astring(password);
            auto logged_in = co_await run(login, true);
            if (!logged_in) co_return logged_in.error();
            if (logged_in->status != imap::client::Status::ok)
                co_return make_error(Errc::auth_failed, "IMAP login failed: " + logged_in->text.text);
            if (logged_in->text.code != "CAPABILITY") {
                auto caps = co_await run(imap::client::Command("CAPABILITY"), false);
                if (!caps) co_return caps.error();
            }
        }
        co_return Result<void>{};
    }

    Account account;
    asio::io_context context;
    net::ClientConnection connection;
    imap::client::Client client;
};

ImapConnection::ImapConnection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ImapConnection::~ImapConnection() = default;

Result<std::unique_ptr<ImapConnection>> ImapConnection::open(const Account& account,
                                                             const std::string& password) {
    auto impl = std::make_unique<Impl>(account);
    auto opened = block(impl->context, impl->open(password));
    if (!opened) return opened.error();
    return std::unique_ptr<ImapConnection>(new ImapConnection(std::move(impl)));
}

Result<imap::client::Completed> ImapConnection::run(const imap::client::Command& command, bool allow_no) {
    return block(impl_->context, impl_->run(command, allow_no));
}

bool ImapConnection::has_capability(std::string_view name) const {
    return impl_->client.has_capability(name);
}

void ImapConnection::logout() {
    if (!impl_->client.closed()) (void)run(imap::client::Command("LOGOUT"), true);
    impl_->connection.close();
}

// ---- SMTP
// --------------------------------------------------------------------------------------------------

namespace {

// Pumps one SMTP session to its end: events answered, output written, replies fed. The message's result.
awaitable<std::optional<smtp::MessageResult>> pump(smtp::ClientSession& session,
                                                   net::ClientConnection& connection,
                                                   const Account& account) {
    const auto timeout = std::chrono::seconds(account.command_timeout);
    std::optional<smtp::MessageResult> result;
    std::array<char, 16384> buffer;
    bool done = false;
    while (!done) {
        while (auto event = session.poll_event()) {
            if (auto* r = std::get_if<smtp::MessageResult>(&*event)) {
                result = std::move(*r);
            } else if (std::holds_alternative<smtp::TlsHandshake>(*event)) {
                if (!co_await connection.write_all(session.take_output(), timeout)) {
                    session.connection_failed(connection.last_error());
                    continue;
                }
                auto secured = co_await secure(connection, account, account.smtp);
                if (!secured) {
                    session.connection_failed(secured.error().message);
                    continue;
                }
                session.tls_started();
            } else if (std::holds_alternative<smtp::Idle>(*event)) {
                session.quit();
            } else if (std::holds_alternative<smtp::Disconnect>(*event)) {
                done = true;
            }
        }
        bool written = true;
        while (written && session.has_output())
            written = co_await connection.write_all(session.take_output(), timeout);
        if (done || session.closed()) break;
        if (!written) {
            session.connection_failed(connection.last_error());
            continue;
        }
        std::size_t n = co_await connection.read_some(buffer, timeout);
        if (n == 0) {
            session.connection_failed(connection.timed_out() ? "the SMTP server did not answer in time"
                                      : connection.last_error().empty()
                                          ? "the SMTP server closed the connection"
                                          : connection.last_error());
            continue;
        }
        session.feed(std::string_view(buffer.data(), n));
    }
    co_return result;
}

awaitable<Result<std::vector<smtp::RecipientResult>>> submit(const Account& account,
                                                             const std::string& password,
                                                             smtp::OutgoingMessage message,
                                                             asio::io_context& context) {
    const Endpoint& endpoint = account.smtp;
    auto endpoints = resolve(context, endpoint);
    if (!endpoints) co_return endpoints.error();
    net::ClientConnection connection(context.get_executor());
    auto connected = co_await connect(connection, *endpoints, account, endpoint);
    if (!connected) co_return connected.error();
    if (endpoint.security == Security::implicit_tls) {
        auto secured = co_await secure(connection, account, endpoint);
        if (!secured) co_return secured.error();
    }
    smtp::ClientConfig config;
    config.helo_name = account.helo_name;
    config.peer_name = endpoint.host;
    // Submission always under TLS (RFC 8314) unless the account chose plaintext on loopback.
    config.tls = endpoint.security == Security::plaintext ? smtp::TlsMode::disabled : smtp::TlsMode::required;
    config.tls_active = connection.tls_active();
    if (account.smtp_auth) config.auth = smtp::ClientCredentials{account.login(), password};
    smtp::ClientSession session(config);
    session.enqueue(std::move(message));
    auto result = co_await pump(session, connection, account);
    connection.close();
    if (!result) co_return io("the SMTP session ended without a result");
    co_return std::move(result->recipients);
}

}  // namespace

Result<std::vector<smtp::RecipientResult>> submit_message(const Account& account, const std::string& password,
                                                          smtp::OutgoingMessage message) {
    asio::io_context context;
    return block(context, submit(account, password, std::move(message), context));
}

}  // namespace magpie::cli::mail_ui
