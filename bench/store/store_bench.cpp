// The embedded store on one large mailbox (issue 11's measured fault): fills a mailbox straight through SQL,
// then times STORE 1:* +FLAGS (\Seen), the narrow reads SELECT and STATUS use, a full-row read of 1:*, and
// EXPUNGE of everything, and measures how long a delivery made during the STORE waits for its commit.
// Usage: store_bench [messages] [--chunk N]
//   --chunk N   messages per transaction (default: SqliteOptions' 2,000); a chunk larger than the mailbox
//               is the old single-transaction STORE, for comparison of the delivery's wait.
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "store/sqlite/bulk.h"
#include "store/store.h"

namespace {

using Clock = std::chrono::steady_clock;
using magpie::store::Delivered;
using magpie::store::FlagOperation;
using magpie::store::FlagUpdate;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// Wall time and the process's CPU time (every thread) of one phase: on a shared, loaded machine the CPU
// time is the steadier figure, the wall time the one a client waits for.
struct Phase {
    Clock::time_point wall = Clock::now();
    std::clock_t cpu = std::clock();
    std::string report() const {
        return fmt::format("{:.2f} s wall, {:.2f} s cpu", seconds_since(wall),
                           static_cast<double>(std::clock() - cpu) / CLOCKS_PER_SEC);
    }
};

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "store_bench: %s\n", what.c_str());
    std::exit(1);
}

template <class T>
T must(magpie::Result<T> result, const char* what) {
    if (!result) die(fmt::format("{}: {}", what, result.error().message));
    if constexpr (!std::is_void_v<T>) return std::move(*result);
}

std::unique_ptr<magpie::store::Store> open_store(const std::filesystem::path& dir, std::size_t chunk) {
    magpie::store::SqliteOptions options;
    options.data_dir = dir;
    if (chunk != 0) options.max_messages_per_transaction = chunk;
    return must(magpie::store::open_sqlite_store(options), "open");
}

}  // namespace

int main(int argc, char** argv) {
    std::uint32_t messages = 100'000;
    std::size_t chunk = 0;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--chunk" && i + 1 < argc) {
            chunk = std::stoul(argv[++i]);
        } else {
            messages = static_cast<std::uint32_t>(std::stoul(arg));
        }
    }
    std::string pattern = (std::filesystem::temp_directory_path() / "magpie-store-bench-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) die("mkdtemp");
    const std::filesystem::path dir = pattern;

    std::int64_t inbox = 0;
    {
        auto store = open_store(dir, chunk);
        must(store->add_domain("example.test"), "add_domain");
        auto account = must(store->add_account("bob@example.test", "hash", {}), "add_account");
        inbox = must(store->find_mailbox(account.id, "INBOX"), "find_mailbox").id;
    }
    Phase phase;
    must(magpie::store::sqlite::bulk_append(dir, {inbox, messages, 0, 200}), "bulk_append");
    fmt::print("messages: {}{}\n", messages, chunk != 0 ? fmt::format(", {} per transaction", chunk) : "");
    fmt::print("bulk fill: {}\n", phase.report());

    auto store = open_store(dir, chunk);
    std::vector<std::uint32_t> all(messages);
    for (std::uint32_t i = 0; i < messages; ++i) all[i] = i + 1;

    phase = Phase{};
    auto states = must(store->list_states(inbox), "list_states");
    fmt::print("list_states (SELECT, FETCH 1:* FLAGS): {} for {} messages\n", phase.report(), states.size());
    phase = Phase{};
    auto status = must(store->mailbox_status(inbox), "mailbox_status");
    fmt::print("mailbox_status (STATUS): {:.6f} s wall, unseen {}\n", seconds_since(phase.wall), status.unseen);

    // JMAP's first page: Email/query inMailbox, receivedAt descending, 50 ids and the total.
    const std::int64_t account_id = must(store->find_account("bob@example.test"), "find_account").id;
    magpie::store::EmailQuery first_page;
    first_page.filter.condition.in_mailbox = inbox;
    first_page.limit = 50;
    phase = Phase{};
    auto page = must(store->query_emails(account_id, first_page), "query_emails");
    fmt::print("query_emails (inMailbox, receivedAt desc, first {} of {}): {}\n", page.ids.size(), page.total,
               phase.report());

    // A delivery made 100 ms into the STORE, as an SMTP client would: how long until its own commit?
    std::promise<double> delivery_wait;
    std::thread smtp([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        magpie::store::Delivery delivery;
        delivery.content = "From: a@remote.test\r\n\r\ndelivered during the STORE\r\n";
        delivery.targets = {{inbox, {}}};
        auto issued_at = Clock::now();
        store->deliver(std::move(delivery), [&, issued_at](magpie::Result<Delivered> result) {
            if (!result) die("delivery: " + result.error().message);
            delivery_wait.set_value(seconds_since(issued_at));
        });
    });
    const auto commits_before = store->stats().commits;
    phase = Phase{};
    auto stored = must(store->store_flags(inbox, all, FlagUpdate{FlagOperation::add, {"\\Seen"}, {}}), "store_flags");
    const std::string store_report = phase.report();
    const double waited = delivery_wait.get_future().get();
    smtp.join();
    fmt::print("STORE 1:* +FLAGS (\\Seen): {} for {} changes, {} commits\n", store_report, stored.changed.size(),
               store->stats().commits - commits_before);
    fmt::print("delivery issued 100 ms into the STORE: committed {:.3f} s later\n", waited);

    phase = Phase{};
    auto rows = must(store->find_messages(inbox, all), "find_messages");
    fmt::print("find_messages 1:* (whole rows): {} for {} messages\n", phase.report(), rows.size());
    rows.clear();

    phase = Phase{};
    must(store->store_flags(inbox, all, FlagUpdate{FlagOperation::add, {"\\Deleted"}, {}}), "store_flags");
    fmt::print("STORE 1:* +FLAGS (\\Deleted): {}\n", phase.report());
    phase = Phase{};
    auto expunged = must(store->expunge(inbox), "expunge");
    fmt::print("EXPUNGE: {} for {} messages\n", phase.report(), expunged.size());

    store.reset();
    std::filesystem::remove_all(dir);
    return 0;
}
