// magpied: the Magpie mail server. Runs in the foreground; SIGTERM or Ctrl-C drains and exits, SIGHUP
// reloads the configuration.
#include <signal.h>

#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "base/log.h"
#include "server/config.h"
#include "server/server.h"

int main(int argc, char** argv) {
    // SIGTERM, SIGINT and SIGHUP stay pending from the first instruction until Server::run() has its handlers in
    // place, so a signal at any moment of start-up (opening the store, binding) ends in a clean drain, never in
    // the default action. Every thread started before then inherits the blocked mask.
    sigset_t control_signals;
    sigemptyset(&control_signals);
    sigaddset(&control_signals, SIGTERM);
    sigaddset(&control_signals, SIGINT);
    sigaddset(&control_signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &control_signals, nullptr);

    CLI::App app{"magpied: the Magpie mail server"};
    std::string config_file;
    std::string data_dir;
    bool demo = false;
    app.add_option("-c,--config", config_file, "configuration file (magpie.toml)");
    app.add_option("--data", data_dir, "data directory (overrides [server] data_dir)");
    app.add_flag("--demo", demo, "run the demo: example.test on loopback ports, no configuration file");
    app.add_flag_callback("--version", [] {
        std::puts("magpied " MAGPIE_VERSION);
        std::exit(0);
    }, "print the version");
    CLI11_PARSE(app, argc, argv);

    if (demo == !config_file.empty()) {
        std::cerr << "magpied: give either -c FILE or --demo\n";
        return 2;
    }
    magpie::server::Config config;
    if (demo) {
        config = magpie::server::demo_config(data_dir.empty() ? "magpie-data" : data_dir);
    } else {
        auto loaded = magpie::server::load_config(config_file);
        if (!loaded) {
            std::cerr << "magpied: " << loaded.error().message << "\n";
            return 2;
        }
        config = std::move(*loaded);
        if (!data_dir.empty()) config.data_dir = data_dir;
    }
    magpie::setup_logging(config.log_level);

    magpie::server::Server server(config, demo ? std::filesystem::path() : std::filesystem::path(config_file));
    if (auto started = server.start(); !started) {
        spdlog::error("magpied: {}", started.error().message);
        return 1;
    }
    if (demo) {
        namespace ports = magpie::server::demo_ports;
        std::printf(
            "\nMagpie demo is running (Ctrl-C stops it). Data: %s\n"
            "  domain example.test, user demo@example.test, password demo\n"
            "  SMTP   127.0.0.1:%u  (port 25's role: receives mail for example.test; STARTTLS, self-signed)\n"
            "  SUBMIT 127.0.0.1:%u  (STARTTLS, AUTH; plaintext AUTH allowed on loopback) and 127.0.0.1:%u (TLS)\n"
            "  IMAP   127.0.0.1:%u  (STARTTLS; plaintext login allowed on loopback) and 127.0.0.1:%u (TLS)\n"
            "  WEB    http://127.0.0.1:%u/  (the webmail: sign in as demo@example.test, password demo)\n"
            "  JMAP   http://127.0.0.1:%u/.well-known/jmap  (RFC 8620/8621; HTTP Basic allowed on loopback)\n"
            "  send a message:  swaks --server 127.0.0.1:%u --from you@example.org --to demo@example.test\n"
            "  submit one:      swaks --server 127.0.0.1:%u --tls --auth PLAIN --auth-user demo@example.test \\\n"
            "                         --auth-password demo --from demo@example.test --to someone@example.org\n"
            "  read it:         mutt -f imap://demo%%40example.test@127.0.0.1:%u/INBOX\n"
            "                   magpie --data %s export demo@example.test INBOX --uid 1\n"
            "                   magpie --data %s queue list\n\n",
            config.data_dir.c_str(), ports::smtp, ports::submission, ports::submissions, ports::imap, ports::imaps,
            ports::http, ports::http, ports::smtp, ports::submission, ports::imap, config.data_dir.c_str(),
            config.data_dir.c_str());
        std::fflush(stdout);
    }
    return server.run(control_signals);
}
