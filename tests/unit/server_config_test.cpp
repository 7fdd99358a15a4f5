#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>

#include "server/config.h"
#include "server/store_factory.h"

namespace magpie::server {
namespace {

class ConfigFile : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/magpie-config-XXXXXX";
        dir_ = mkdtemp(tmpl);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    Result<Config> load(const std::string& text) {
        auto path = dir_ / "magpie.toml";
        std::ofstream(path) << text;
        return load_config(path);
    }

    std::filesystem::path dir_;
};

// Issue 12 item 10: "* OK Still here" every two minutes of IDLE by default, as Dovecot does.
TEST_F(ConfigFile, IdleKeepaliveIntervalDefaultsToTwoMinutes) {
    auto config = load("");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->imap.idle_keepalive_interval, 120u);
    config = load("[imap]\nidle_keepalive_interval = 30\nidle_timeout = 60\n");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->imap.idle_keepalive_interval, 30u);
    EXPECT_FALSE(load("[imap]\nidle_keepalive_interval = 0\n"));
}

// Issue 12 item 15: FETCH output goes out in bounded slices; the slice is a named limit with a safe default.
TEST_F(ConfigFile, OutputSliceIsBoundedAndDefaultsTo256KiB) {
    auto config = load("");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->imap.output_slice_octets, 256u * 1024);
    config = load("[imap]\noutput_slice_octets = 65536\n");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->imap.output_slice_octets, 65536u);
    EXPECT_FALSE(load("[imap]\noutput_slice_octets = 100\n"));
    EXPECT_FALSE(load("[imap]\noutput_slice_octets = 1000000000\n"));
}

// IMAP's address limit counts connections not logged in; a login counts for the account and the address.
TEST_F(ConfigFile, ImapConnectionLimitsPerAddressAndPerAccountAndAddress) {
    auto config = load("");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->imap.max_connections_per_ip, 50u);
    EXPECT_EQ(config->imap.max_connections_per_user_ip, 20u);
    config = load("[imap]\nmax_connections_per_user_ip = 5\n");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->imap.max_connections_per_user_ip, 5u);
    EXPECT_FALSE(load("[imap]\nmax_connections_per_user_ip = 0\n"));
}

// The load balancers whose connections carry a PROXY protocol header: none unless named, each parsed.
TEST_F(ConfigFile, ProxyTrustedNetworksAreParsedAndCheckedAtLoad) {
    auto config = load("");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_TRUE(config->proxy_trusted_networks.empty());
    config = load("[server]\nproxy_trusted_networks = [\"10.0.0.0/8\", \"2001:DB8::7\"]\n");
    ASSERT_TRUE(config) << config.error().message;
    ASSERT_EQ(config->proxy_trusted_networks.size(), 2u);
    EXPECT_TRUE(net::in_networks(config->proxy_trusted_networks, "10.9.8.7"));
    EXPECT_TRUE(net::in_networks(config->proxy_trusted_networks, "2001:db8::7"));
    EXPECT_FALSE(net::in_networks(config->proxy_trusted_networks, "192.0.2.1"));
    auto bad = load("[server]\nproxy_trusted_networks = [\"10.1.0.0/8\"]\n");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("proxy_trusted_networks"), std::string::npos);
    EXPECT_FALSE(load("[server]\nproxy_trusted_networks = \"10.0.0.0/8\"\n"));  // a list, not a string
    config = load("[http]\nreverse_proxies = [\"127.0.0.1\", \"::1\"]\n");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_TRUE(net::in_networks(config->http.reverse_proxies, "::1"));
    EXPECT_TRUE(config->proxy_trusted_networks.empty());
    EXPECT_FALSE(load("[http]\nreverse_proxies = [\"localhost\"]\n"));
}

// HTTP likewise: connections not authenticated yet per address, authenticated ones per account and address.
TEST_F(ConfigFile, HttpConnectionLimitsPerAddressAndPerAccountAndAddress) {
    auto config = load("");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->http.max_connections_per_ip, 50u);
    EXPECT_EQ(config->http.max_connections_per_user_ip, 20u);
    config = load("[http]\nmax_connections_per_user_ip = 3\n");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->http.max_connections_per_user_ip, 3u);
    EXPECT_FALSE(load("[http]\nmax_connections_per_user_ip = 0\n"));
}

// Issue 15: the webmail's files and sessions, with their documented defaults and bounds.
TEST_F(ConfigFile, WebmailKeysHaveDefaultsAndBounds) {
    auto config = load("");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_TRUE(config->http.webmail_dir.empty());
    EXPECT_EQ(config->http.webmail_max_octets, 32u << 20);
    EXPECT_EQ(config->http.webmail_session_idle, 8u * 3600);
    EXPECT_EQ(config->http.webmail_session_lifetime, 7u * 86400);
    EXPECT_EQ(config->http.webmail_max_sessions, 10000u);
    config = load("[http]\nwebmail_dir = \"/srv/webmail\"\nwebmail_session_idle = 600\nwebmail_session_lifetime = 3600\n");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->http.webmail_dir, "/srv/webmail");
    EXPECT_EQ(config->http.webmail_session_idle, 600u);
    EXPECT_FALSE(load("[http]\nwebmail_session_idle = 10\n"));
    EXPECT_FALSE(load("[http]\nwebmail_session_idle = 7200\nwebmail_session_lifetime = 3600\n"));
    EXPECT_FALSE(load("[http]\nwebmail_max_sessions = 0\n"));
}

// JMAP over WebSocket (RFC 8887): the ping interval and the idle close, positive.
TEST_F(ConfigFile, WebSocketKeysHaveDefaultsAndBounds) {
    auto config = load("");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->http.websocket_ping_interval, 60u);
    EXPECT_EQ(config->http.websocket_idle_timeout, 600u);
    config = load("[http]\nwebsocket_ping_interval = 5\nwebsocket_idle_timeout = 30\n");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->http.websocket_ping_interval, 5u);
    EXPECT_EQ(config->http.websocket_idle_timeout, 30u);
    EXPECT_FALSE(load("[http]\nwebsocket_ping_interval = 0\n"));
    EXPECT_FALSE(load("[http]\nwebsocket_idle_timeout = 0\n"));
}

// Limits that were constants in the code (review debt): named keys with the old values as defaults.
TEST_F(ConfigFile, FormerlyHardCodedLimitsAreKeysWithTheirOldDefaults) {
    auto config = load("");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->smtp.vacation_max_senders, 10000u);
    EXPECT_EQ(config->http.webmail_max_sessions_per_account, 100u);
    EXPECT_EQ(config->http.max_submission_recipients, 1000u);
    config = load("[smtp]\nvacation_max_senders = 50\n[http]\nwebmail_max_sessions_per_account = 3\n"
                  "max_submission_recipients = 20\n");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->smtp.vacation_max_senders, 50u);
    EXPECT_EQ(config->http.webmail_max_sessions_per_account, 3u);
    EXPECT_EQ(config->http.max_submission_recipients, 20u);
    EXPECT_FALSE(load("[smtp]\nvacation_max_senders = 0\n"));
    EXPECT_FALSE(load("[smtp]\nvacation_max_senders = 10001\n"));
    EXPECT_FALSE(load("[http]\nwebmail_max_sessions_per_account = 0\n"));
    EXPECT_FALSE(load("[http]\nmax_submission_recipients = 0\n"));
}

TEST_F(ConfigFile, RecipientCacheIsBoundedAndCanBeTurnedOff) {
    auto config = load("");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->smtp.recipient_cache_seconds, 60u);
    EXPECT_EQ(config->smtp.recipient_cache_entries, 10000u);
    config = load("[smtp]\nrecipient_cache_seconds = 0\nrecipient_cache_entries = 5\n");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->smtp.recipient_cache_seconds, 0u);
    EXPECT_EQ(config->smtp.recipient_cache_entries, 5u);
    EXPECT_FALSE(load("[smtp]\nrecipient_cache_seconds = 3601\n"));
    EXPECT_FALSE(load("[smtp]\nrecipient_cache_entries = 1000001\n"));
}

TEST_F(ConfigFile, CheckpointFramesIsBounded) {
    auto config = load("");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->store.checkpoint_frames, 8000u);
    config = load("[store]\ncheckpoint_frames = 100\n");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->store.checkpoint_frames, 100u);
    EXPECT_FALSE(load("[store]\ncheckpoint_frames = 99\n"));
    EXPECT_FALSE(load("[store]\ncheckpoint_frames = 1000001\n"));
}

TEST_F(ConfigFile, EmptyFileGivesDocumentedDefaults) {
    auto config = load("");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->data_dir, "/var/lib/magpie");
    EXPECT_EQ(config->smtp.max_command_line, 2048u);
    EXPECT_EQ(config->smtp.max_text_line, 1u << 20);
    EXPECT_EQ(config->smtp.min_data_rate, 500u);
    EXPECT_EQ(config->smtp.max_transaction_time, 3600u);
    EXPECT_EQ(config->smtp.add_missing_headers, "headerless");
    EXPECT_EQ(config->smtp.postmaster, "");
    EXPECT_EQ(config->smtp.max_message_size, 50u << 20);
    EXPECT_EQ(config->smtp.max_recipients, 100u);
    EXPECT_EQ(config->smtp.idle_timeout, 300u);
    EXPECT_EQ(config->smtp.bare_line_ending, "reject");
    EXPECT_TRUE(config->smtp.listen.empty());
    EXPECT_FALSE(config->hostname.empty());
}

TEST_F(ConfigFile, ReadsListenAddressesAndLimits) {
    auto config = load(R"(
[server]
hostname = "mx.example.org"
[smtp]
listen = ["0.0.0.0:25", "[::1]:2525"]
max_message_size = 1000000
bare_line_ending = "normalize"
)");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->hostname, "mx.example.org");
    ASSERT_EQ(config->smtp.listen.size(), 2u);
    EXPECT_EQ(config->smtp.listen[0].address, "0.0.0.0");
    EXPECT_EQ(config->smtp.listen[0].port, 25);
    EXPECT_EQ(config->smtp.listen[1].address, "::1");
    EXPECT_EQ(config->smtp.listen[1].port, 2525);
    EXPECT_EQ(config->smtp.max_message_size, 1000000u);
    EXPECT_EQ(config->smtp.bare_line_ending, "normalize");
}

TEST_F(ConfigFile, ReadsSmtpPolicyKeys) {
    auto config = load(R"(
[smtp]
max_text_line = 2000
max_junk_commands = 10
min_data_rate = 100
max_transaction_time = 600
add_missing_headers = "always"
postmaster = "admin@example.org"
)");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->smtp.max_text_line, 2000u);
    EXPECT_EQ(config->smtp.max_junk_commands, 10u);
    EXPECT_EQ(config->smtp.min_data_rate, 100u);
    EXPECT_EQ(config->smtp.max_transaction_time, 600u);
    EXPECT_EQ(config->smtp.add_missing_headers, "always");
    EXPECT_EQ(config->smtp.postmaster, "admin@example.org");
    EXPECT_FALSE(load("[smtp]\nadd_missing_headers = \"sometimes\"\n"));
    EXPECT_FALSE(load("[smtp]\npostmaster = \"admin\"\n"));
    EXPECT_FALSE(load("[smtp]\nmin_data_rate = 0\n"));
    EXPECT_FALSE(load("[smtp]\nmax_transaction_time = 0\n"));
    EXPECT_FALSE(load("[smtp]\nmax_text_line = 999\n"));
}

TEST_F(ConfigFile, RejectsUnknownKeysNamingThem) {
    auto config = load("[smtp]\nmax_recipient = 5\n");
    ASSERT_FALSE(config);
    EXPECT_NE(config.error().message.find("max_recipient"), std::string::npos);
}

TEST_F(ConfigFile, RejectsWrongTypesAndUnsafeLimits) {
    EXPECT_FALSE(load("[smtp]\nmax_recipients = \"many\"\n"));
    EXPECT_FALSE(load("[smtp]\nmax_recipients = -1\n"));
    EXPECT_FALSE(load("[smtp]\nmax_command_line = 100\n"));  // below RFC 5321's 512
    // 512 alone leaves no room for what DSN, SIZE, AUTH and SMTPUTF8 add to MAIL and RCPT.
    EXPECT_FALSE(load("[smtp]\nmax_command_line = 512\n"));
    EXPECT_TRUE(load("[smtp]\nmax_command_line = 1148\n"));
    EXPECT_FALSE(load("[smtp]\nbare_line_ending = \"ignore\"\n"));
    EXPECT_FALSE(load("[smtp]\nlisten = [\"localhost\"]\n"));  // no port
    EXPECT_FALSE(load("[tls]\ncertificate = \"/x.pem\"\n"));   // key missing
    EXPECT_FALSE(load("[store]\nbackend = \"mysql\"\n"));
}

TEST_F(ConfigFile, PostgresBackendNeedsADsnAndReadsItsPasswordFileAndPool) {
    EXPECT_FALSE(load("[store]\nbackend = \"postgres\"\n"));  // no dsn
    EXPECT_FALSE(load("[store]\nbackend = \"postgres\"\ndsn = \"dbname=magpie\"\npool_size = 0\n"));
    auto config = load(
        "[store]\nbackend = \"postgres\"\ndsn = \"host=127.0.0.1 dbname=magpie\"\n"
        "password_file = \"/etc/magpie/pgpass\"\npool_size = 16\n");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->store.backend, "postgres");
    EXPECT_EQ(config->store.dsn, "host=127.0.0.1 dbname=magpie");
    EXPECT_EQ(config->store.password_file, "/etc/magpie/pgpass");
    EXPECT_EQ(config->store.pool_size, 16u);
    EXPECT_EQ(config->store.prepared_statements, 256u);  // the default
    EXPECT_FALSE(load("[store]\nprepared_statements = 10001\n"));
    config = load("[store]\nprepared_statements = 0\n");  // none: a pooler that does not track them
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->store.prepared_statements, 0u);
}

// Issue 11: the Email limits are named keys with the documented defaults, bounded, and reach the store.
TEST_F(ConfigFile, EmailLimitsHaveDefaultsAndBounds) {
    auto config = load("");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->store.max_thread_references, 64u);
    EXPECT_EQ(config->store.thread_subject_window, 30u * 86400);
    EXPECT_EQ(config->store.max_query_results, 10000u);
    EXPECT_EQ(config->store.max_filter_nodes, 256u);
    config = load("[store]\nmax_thread_references = 8\nthread_subject_window = 0\nmax_query_results = 50\n"
                  "max_filter_nodes = 16\n");
    ASSERT_TRUE(config) << config.error().message;
    auto options = sqlite_options(*config);
    EXPECT_EQ(options.max_thread_references, 8u);
    EXPECT_EQ(options.thread_subject_window_seconds, 0);
    EXPECT_EQ(options.max_query_results, 50u);
    EXPECT_EQ(options.max_filter_nodes, 16u);
    EXPECT_FALSE(load("[store]\nmax_thread_references = 0\n"));
    EXPECT_FALSE(load("[store]\nmax_thread_references = 100000\n"));
    EXPECT_FALSE(load("[store]\nmax_query_results = 0\n"));
    EXPECT_FALSE(load("[store]\nmax_filter_nodes = 0\n"));
    EXPECT_FALSE(load("[store]\nthread_subject_window = 999999999\n"));
    EXPECT_FALSE(load("[store]\nthread_subject_window = -1\n"));
}

// `magpie migrate` copies in batches of a named, bounded size that reaches the PostgreSQL options.
TEST_F(ConfigFile, MigrateBatchRowsHasADefaultAndBounds) {
    auto config = load("");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->store.migrate_batch_rows, 1000u);
    config = load("[store]\nmigrate_batch_rows = 50\n");
    ASSERT_TRUE(config) << config.error().message;
    auto options = postgres_options(*config);
    ASSERT_TRUE(options) << options.error().message;
    EXPECT_EQ(options->migrate_batch_rows, 50u);
    EXPECT_FALSE(load("[store]\nmigrate_batch_rows = 0\n"));
    EXPECT_FALSE(load("[store]\nmigrate_batch_rows = 1000000\n"));
}

store::Delivered::Placed deliver_to(store::Store& store, std::int64_t mailbox_id, const std::string& subject,
                                    const std::string& message_id, const std::string& references) {
    store::Delivery delivery;
    delivery.content = "Message-ID: " + message_id + "\r\nSubject: " + subject + "\r\n\r\nbody\r\n";
    delivery.internal_date = 1'700'000'000;
    delivery.targets = {{mailbox_id, {}}};
    delivery.summary.subject = subject;
    delivery.summary.message_id = message_id;
    delivery.summary.references = references;
    std::promise<Result<store::Delivered>> promise;
    auto future = promise.get_future();
    store.deliver(std::move(delivery), [&](Result<store::Delivered> result) { promise.set_value(std::move(result)); });
    auto delivered = future.get();
    EXPECT_TRUE(delivered) << delivered.error().message;
    return delivered ? delivered->placed.front() : store::Delivered::Placed{};
}

// The store magpied and magpie open (store_factory) obeys the configured Email limits.
TEST_F(ConfigFile, TheOpenedStoreObeysTheConfiguredEmailLimits) {
    auto config = load("[server]\ndata_dir = \"" + (dir_ / "data").string() +
                       "\"\n[store]\nmax_thread_references = 1\nthread_subject_window = 0\n"
                       "max_query_results = 2\nmax_filter_nodes = 2\n");
    ASSERT_TRUE(config) << config.error().message;
    std::filesystem::create_directories(config->data_dir);
    auto opened = open_store(*config);
    ASSERT_TRUE(opened) << opened.error().message;
    store::Store& store = **opened;
    ASSERT_TRUE(store.add_domain("example.test"));
    auto account = store.add_account("bob@example.test", "$argon2id$fake", store::ScramCredentials{});
    ASSERT_TRUE(account) << account.error().message;
    auto inbox = store.find_mailbox(account->id, "INBOX");
    ASSERT_TRUE(inbox);

    auto root = deliver_to(store, inbox->id, "plans", "<root@x>", "");
    // Only the nearest reference is looked up (max_thread_references = 1): it is unknown, so no thread.
    auto far = deliver_to(store, inbox->id, "Re: plans", "<far@x>", "<root@x> <unknown@x>");
    EXPECT_NE(far.thread_id, root.thread_id);
    auto near = deliver_to(store, inbox->id, "other", "<near@x>", "<unknown@x> <root@x>");
    EXPECT_EQ(near.thread_id, root.thread_id);

    store::EmailQuery query;
    auto all = store.query_emails(account->id, query);
    ASSERT_TRUE(all) << all.error().message;
    EXPECT_EQ(all->total, 3u);
    EXPECT_EQ(all->ids.size(), 2u);  // max_query_results
    EXPECT_FALSE(store.find_emails(account->id, {root.email_id, far.email_id, near.email_id}));
    query.filter.op = store::EmailFilter::Operator::all_of;
    query.filter.operands.resize(2);  // three nodes with the operator
    EXPECT_EQ(store.query_emails(account->id, query).error().code, Errc::limit_exceeded);
}

TEST_F(ConfigFile, ReportsSyntaxErrorsWithALine) {
    auto config = load("[server]\nhostname = \n");
    ASSERT_FALSE(config);
    EXPECT_NE(config.error().message.find(":2"), std::string::npos) << config.error().message;
}

TEST_F(ConfigFile, QueueDefaultsFollowTheIssue) {
    auto config = load("");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_TRUE(config->queue.enabled);
    EXPECT_EQ(config->queue.retry.lifetime, 5u * 86400);
    EXPECT_EQ(config->queue.retry.delay_notice_after, 4u * 3600);
    EXPECT_EQ(config->queue.retry.intervals.front(), 300u);
    EXPECT_EQ(config->queue.retry.intervals.back(), 14400u);
    EXPECT_TRUE(config->queue.routing.routes.empty());
}

TEST_F(ConfigFile, QueueRoutesSmartHostAndSchedule) {
    auto config = load(R"([queue]
retry_intervals = [2, 4]
lifetime = 60
delay_notice_after = 0
resolver = "127.0.0.53"
require_tls = ["Bank.example"]
[queue.smart_host]
host = "smtp.provider.example"
port = 465
implicit_tls = true
username = "me"
password = "pw"
[[queue.route]]
domain = "Partner.example"
host = "10.0.0.5"
port = 2525
)");
    ASSERT_TRUE(config) << config.error().message;
    const auto& q = config->queue;
    EXPECT_EQ(q.retry.intervals, (std::vector<std::uint32_t>{2, 4}));
    EXPECT_EQ(q.retry.lifetime, 60u);
    EXPECT_EQ(q.retry.delay_notice_after, 0u);
    EXPECT_EQ(q.resolver, "127.0.0.53");
    EXPECT_EQ(q.routing.require_tls, std::vector<std::string>{"bank.example"});
    ASSERT_EQ(q.routing.routes.size(), 2u);
    EXPECT_EQ(q.routing.routes[0].domain, "partner.example");
    EXPECT_EQ(q.routing.routes[0].port, 2525);
    EXPECT_EQ(q.routing.routes[1].domain, "*");
    EXPECT_TRUE(q.routing.routes[1].implicit_tls);
    EXPECT_EQ(q.routing.routes[1].username, "me");
}

TEST_F(ConfigFile, QueueRejectsUnsafeValues) {
    EXPECT_FALSE(load("[queue]\nretry_intervals = []\n"));
    EXPECT_FALSE(load("[queue]\nretry_intervals = [0]\n"));
    EXPECT_FALSE(load("[queue]\nlifetime = 0\n"));
    EXPECT_FALSE(load("[queue]\nmax_connections = 0\n"));
    EXPECT_FALSE(load("[queue]\nsmart_hosts = 1\n"));
    EXPECT_FALSE(load("[[queue.route]]\ndomain = \"x.example\"\n"));  // no host
}

TEST(DemoConfig, UsesLoopbackAndTheReservedSmtpPort) {
    auto config = demo_config("magpie-data");
    ASSERT_EQ(config.smtp.listen.size(), 1u);
    EXPECT_EQ(config.smtp.listen[0].address, "127.0.0.1");
    EXPECT_EQ(config.smtp.listen[0].port, 2525);
    EXPECT_TRUE(config.demo);
    EXPECT_EQ(config.tls_certificate, std::filesystem::path("magpie-data") / "demo-cert.pem");
}

TEST_F(ConfigFile, SubmissionSectionHasSafeDefaultsAndBounds) {
    auto defaults = load("");
    ASSERT_TRUE(defaults) << defaults.error().message;
    EXPECT_TRUE(defaults->submission.listen.empty());
    EXPECT_TRUE(defaults->submission.listen_tls.empty());
    EXPECT_FALSE(defaults->submission.allow_plaintext_auth);
    EXPECT_FALSE(defaults->submission.save_sent);
    EXPECT_EQ(defaults->submission.max_auth_line, 12288u);
    auto config = load(R"(
[submission]
listen = ["0.0.0.0:587"]
listen_tls = ["0.0.0.0:465"]
save_sent = true
max_auth_line = 20000
)");
    ASSERT_TRUE(config) << config.error().message;
    ASSERT_EQ(config->submission.listen.size(), 1u);
    EXPECT_EQ(config->submission.listen[0].port, 587);
    EXPECT_EQ(config->submission.listen_tls[0].port, 465);
    EXPECT_TRUE(config->submission.save_sent);
    EXPECT_EQ(config->submission.max_auth_line, 20000u);
    EXPECT_FALSE(load("[submission]\nmax_auth_line = 100\n"));  // below RFC 4954's 12288
    EXPECT_FALSE(load("[submission]\nmax_connections = 0\n"));
    EXPECT_FALSE(load("[submission]\nallow_plaintext = true\n"));  // unknown key
}

TEST(DemoConfig, BindsTheSubmissionPorts) {
    auto config = demo_config("magpie-data");
    ASSERT_EQ(config.submission.listen.size(), 1u);
    EXPECT_EQ(config.submission.listen[0].address, "127.0.0.1");
    EXPECT_EQ(config.submission.listen[0].port, demo_ports::submission);
    ASSERT_EQ(config.submission.listen_tls.size(), 1u);
    EXPECT_EQ(config.submission.listen_tls[0].port, demo_ports::submissions);
}

TEST(DemoConfig, PostmasterIsTheDemoUser) {
    EXPECT_EQ(demo_config("magpie-data").smtp.postmaster, "demo@example.test");
}

TEST_F(ConfigFile, MailauthRecordsByDefaultWithRfc7208Limits) {
    auto config = load("");
    ASSERT_TRUE(config) << config.error().message;
    const auto& m = config->mailauth;
    EXPECT_TRUE(m.spf && m.dkim && m.dmarc);
    EXPECT_EQ(m.dmarc_policy, "record");
    EXPECT_EQ(m.max_dns_mechanisms, 10u);
    EXPECT_EQ(m.max_void_lookups, 2u);
    EXPECT_EQ(m.dns_timeout, 5u);
    EXPECT_EQ(m.max_time, 20u);
    config = load("[mailauth]\ndmarc_policy = \"enforce\"\nspf = false\nresolver = \"127.0.0.53:5353\"\n");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->mailauth.dmarc_policy, "enforce");
    EXPECT_FALSE(config->mailauth.spf);
    EXPECT_EQ(config->mailauth.resolver, "127.0.0.53:5353");
    EXPECT_FALSE(load("[mailauth]\ndmarc_policy = \"reject\"\n"));
    EXPECT_FALSE(load("[mailauth]\nmax_time = 0\n"));
    EXPECT_FALSE(load("[mailauth]\nmax_dns_mechanisms = 1000\n"));
    EXPECT_FALSE(load("[mailauth]\nmax_lookups = 3\n"));
}

TEST_F(ConfigFile, HashingThreadsRunAtNiceTenByDefault) {
    auto config = load("");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->auth.hash_nice, 10);
    config = load("[auth]\nhash_nice = 0\n");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->auth.hash_nice, 0);
    EXPECT_FALSE(load("[auth]\nhash_nice = 20\n"));
    EXPECT_FALSE(load("[auth]\nhash_nice = -1\n"));
}

TEST_F(ConfigFile, MtaStsHonoursPoliciesAndPublishesTestingByDefault) {
    auto config = load("");
    ASSERT_TRUE(config);
    EXPECT_TRUE(config->mta_sts.enabled);
    EXPECT_EQ(config->mta_sts.mode, "testing");
    EXPECT_EQ(config->mta_sts.max_age, 604800u);
    EXPECT_EQ(config->mta_sts.fetch_timeout, 10u);
    config = load("[mta_sts]\nmode = \"enforce\"\nenabled = false\n");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->mta_sts.mode, "enforce");
    EXPECT_FALSE(config->mta_sts.enabled);
    EXPECT_FALSE(load("[mta_sts]\nmode = \"strict\"\n"));
    EXPECT_FALSE(load("[mta_sts]\nmax_age = 31557601\n"));
    EXPECT_FALSE(load("[mta_sts]\nfetch_timeout = 0\n"));
}

TEST_F(ConfigFile, DaneAndTlsReportingAreOnByDefault) {
    auto config = load("");
    ASSERT_TRUE(config);
    EXPECT_TRUE(config->queue.dane);
    EXPECT_TRUE(config->tlsrpt.record);
    EXPECT_EQ(config->tlsrpt.max_day_octets, 64ull << 20);
    config = load("[queue]\ndane = false\n[tlsrpt]\nrecord = false\nmax_day_octets = 4096\n");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_FALSE(config->queue.dane);
    EXPECT_FALSE(config->tlsrpt.record);
    EXPECT_EQ(config->tlsrpt.max_day_octets, 4096u);
    EXPECT_FALSE(load("[tlsrpt]\nmax_day_octets = 0\n"));
    EXPECT_FALSE(load("[tlsrpt]\nrecords = true\n"));
    EXPECT_FALSE(load("[queue]\ndane = \"yes\"\n"));
}

}  // namespace
}  // namespace magpie::server

namespace magpie::server {
namespace {

// [autoconfig]: absent ports stay "the bound listener", 0 is "not offered", a port out of range is refused.
TEST_F(ConfigFile, AutoconfigPublicHostAndPorts) {
    auto config = load("");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_TRUE(config->autoconfig.hostname.empty());
    EXPECT_FALSE(config->autoconfig.imaps_port);
    config = load("[autoconfig]\nhostname = \"mail.example.org\"\nimaps_port = 993\nimap_port = 0\n");
    ASSERT_TRUE(config) << config.error().message;
    EXPECT_EQ(config->autoconfig.hostname, "mail.example.org");
    EXPECT_EQ(config->autoconfig.imaps_port, std::optional<std::uint16_t>(993));
    EXPECT_EQ(config->autoconfig.imap_port, std::optional<std::uint16_t>(0));
    EXPECT_FALSE(config->autoconfig.submission_port);
    EXPECT_FALSE(load("[autoconfig]\nsubmission_port = 70000\n"));
    EXPECT_FALSE(load("[autoconfig]\nimaps_port = -1\n"));
    EXPECT_FALSE(load("[autoconfig]\nport = 1\n"));
}

}  // namespace
}  // namespace magpie::server
