#include "cli/mail_account.h"

#include <sys/wait.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "base/strings.h"
#include "cli/mail_compose.h"
#include "cli/password_input.h"

namespace magpie::cli::mail_ui {
namespace {

Error invalid(std::string message) {
    return make_error(Errc::invalid_argument, std::move(message));
}

constexpr std::size_t kMaxPassword = 1024;

Result<void> read_endpoint(const toml::table& table, std::string_view name, Endpoint& endpoint) {
    const auto* section = table.get_as<toml::table>(name);
    if (section == nullptr) return {};
    for (const auto& [key, value] : *section) {
        if (key == "host") {
            endpoint.host = value.value_or(std::string());
        } else if (key == "port") {
            auto port = value.value<std::int64_t>();
            if (!port || *port < 1 || *port > 65535)
                return invalid(std::string(name) + ".port must be 1 to 65535");
            endpoint.port = static_cast<std::uint16_t>(*port);
        } else if (key == "tls") {
            auto security = parse_security(value.value_or(std::string()));
            if (!security) return security.error();
            endpoint.security = *security;
        } else if (key == "tls_name") {
            endpoint.tls_name = value.value_or(std::string());
        } else if (!(name == "smtp" && key == "auth")) {
            return invalid("unknown key " + std::string(name) + "." + std::string(key.str()));
        }
    }
    return {};
}

Result<std::string> run_password_command(const std::string& command) {
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) return make_error(Errc::io_error, "cannot run password_command");
    std::string out;
    char buffer[256];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0 && out.size() <= 64 * 1024)
        out.append(buffer, n);
    int status = ::pclose(pipe);
    if (status != 0)
        return make_error(Errc::io_error, "password_command failed (exit status " +
                                              std::to_string(WEXITSTATUS(status)) + ")");
    std::size_t nl = out.find('\n');
    if (nl != std::string::npos) out.resize(nl);
    return out;
}

}  // namespace

Result<Security> parse_security(std::string_view text) {
    if (text == "implicit" || text == "tls") return Security::implicit_tls;
    if (text == "starttls") return Security::starttls;
    if (text == "plain" || text == "none") return Security::plaintext;
    return invalid("tls must be \"implicit\", \"starttls\" or \"plain\", not \"" + std::string(text) + "\"");
}

std::filesystem::path default_account_path() {
    if (const char* explicit_path = std::getenv("MAGPIE_MAIL_CONFIG"); explicit_path && *explicit_path)
        return explicit_path;
    if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg)
        return std::filesystem::path(xdg) / "magpie" / "mail.toml";
    if (const char* home = std::getenv("HOME"); home && *home)
        return std::filesystem::path(home) / ".config" / "magpie" / "mail.toml";
    return {};
}

Result<Account> load_account(const std::filesystem::path& path, bool must_exist) {
    Account account;
    std::error_code ec;
    if (path.empty() || !std::filesystem::exists(path, ec)) {
        if (must_exist) return make_error(Errc::not_found, "no account file " + path.string());
        return account;
    }
    toml::table table;
    try {
        table = toml::parse_file(path.string());
    } catch (const toml::parse_error& e) {
        return invalid(path.string() + ": " + std::string(e.description()));
    }
    for (const auto& [key, value] : table) {
        std::string k(key.str());
        if (value.is_table()) {
            if (k != "imap" && k != "smtp") return invalid("unknown section [" + k + "]");
            continue;
        }
        auto text = value.value<std::string>();
        if (k == "connect_timeout" || k == "command_timeout" || k == "max_fetch_octets") {
            auto n = value.value<std::int64_t>();
            if (!n || *n < 1) return invalid(k + " must be a positive integer");
            if (k == "connect_timeout") account.connect_timeout = *n;
            if (k == "command_timeout") account.command_timeout = *n;
            if (k == "max_fetch_octets") account.max_fetch_octets = static_cast<std::uint64_t>(*n);
            continue;
        }
        if (!text) return invalid(k + " must be a string");
        if (k == "address")
            account.address = *text;
        else if (k == "name")
            account.name = *text;
        else if (k == "user")
            account.user = *text;
        else if (k == "ca_file")
            account.ca_file = *text;
        else if (k == "password_command")
            account.password_command = *text;
        else if (k == "password_env")
            account.password_env = *text;
        else if (k == "helo_name")
            account.helo_name = *text;
        else if (k == "trash")
            account.trash_mailbox = *text;
        else if (k == "sent")
            account.sent_mailbox = *text;
        else if (k == "password")
            return invalid("a password in the account file is not read: use password_command");
        else
            return invalid("unknown key " + k);
    }
    MAGPIE_TRY(read_endpoint(table, "imap", account.imap));
    MAGPIE_TRY(read_endpoint(table, "smtp", account.smtp));
    if (const auto* smtp = table.get_as<toml::table>("smtp"))
        account.smtp_auth = (*smtp)["auth"].value_or(true);
    return account;
}

Result<void> finish_account(Account& account) {
    for (const auto& [what, value] : {std::pair<const char*, const std::string*>{"address", &account.address},
                                      {"name", &account.name},
                                      {"user", &account.user},
                                      {"imap host", &account.imap.host},
                                      {"smtp host", &account.smtp.host},
                                      {"imap tls_name", &account.imap.tls_name},
                                      {"smtp tls_name", &account.smtp.tls_name},
                                      {"helo_name", &account.helo_name}})
        MAGPIE_TRY(check_header_input(what, *value));
    if (account.address.empty()) return invalid("no address: set address in the account file or give --from");
    auto parsed = parse_recipients("address", account.address);
    if (!parsed || parsed->size() != 1) return invalid("address must be one local@domain");
    if (account.name.empty()) account.name = parsed->front().name;
    account.address = parsed->front().address;
    if (account.imap.port == 0)
        account.imap.port = account.imap.security == Security::implicit_tls ? 993 : 143;
    if (account.smtp.port == 0)
        account.smtp.port = account.smtp.security == Security::implicit_tls ? 465 : 587;
    return {};
}

Result<std::string> obtain_password(const Account& account) {
    std::string password;
    if (!account.password_command.empty()) {
        auto out = run_password_command(account.password_command);
        if (!out) return out.error();
        password = std::move(*out);
    } else if (const char* env =
                   account.password_env.empty() ? nullptr : std::getenv(account.password_env.c_str())) {
        password = env;
    } else {
        auto typed = read_password_from_terminal("Password for " + account.login() + ": ");
        if (!typed)
            return invalid(
                "no password: set password_command or password_env in the account, or run on a terminal");
        password = std::move(*typed);
    }
    if (!password.empty() && password.back() == '\r') password.pop_back();
    if (password.empty()) return invalid("empty password");
    if (password.size() > kMaxPassword) return invalid("password longer than 1024 octets");
    return password;
}

}  // namespace magpie::cli::mail_ui
