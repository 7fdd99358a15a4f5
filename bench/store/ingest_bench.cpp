// Delivery ingest on both backends in one run (issue 16): `senders` threads each deliver `each` messages of
// 4 KB to one mailbox, on the embedded store and on PostgreSQL with group commit (max_batch 256) and
// without it (max_batch 1). Prints messages per second and commits, and the ratios between them.
//   ingest_bench DATA_DIR "host=... dbname=..." [senders] [each]
// The PostgreSQL database must be empty (a fresh one per run: the bench adds domains and accounts).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "store/postgres/postgres.h"
#include "store/store.h"

namespace {

using namespace magpie::store;

struct Figure {
    double seconds = 0;
    StoreStats stats;
};

Figure run(Store& store, const std::string& domain, int senders, int each) {
    (void)store.add_domain(domain);
    auto account = store.add_account("bench@" + domain, "$argon2id$bench", {"salt", 4096, "k", "k"});
    if (!account) {
        std::fprintf(stderr, "add_account: %s\n", account.error().message.c_str());
        std::exit(1);
    }
    const std::int64_t inbox = store.find_mailbox(account->id, "INBOX")->id;
    const std::string body(4096, 'x');
    auto started = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int t = 0; t < senders; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < each; ++i) {
                Delivery delivery;
                delivery.content = fmt::format("Subject: {} {}\r\n\r\n{}\r\n", t, i, body);
                delivery.targets = {{inbox, {}}};
                std::promise<bool> done;
                store.deliver(std::move(delivery), [&](magpie::Result<Delivered> r) { done.set_value(bool(r)); });
                if (!done.get_future().get()) std::abort();
            }
        });
    }
    for (auto& thread : threads) thread.join();
    Figure figure;
    figure.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    figure.stats = store.stats();
    return figure;
}

void print(const char* name, const Figure& f, int total) {
    std::printf("%-28s %8.0f msgs/s  %6llu commits for %d messages\n", name, total / f.seconds,
                static_cast<unsigned long long>(f.stats.commits), total);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: ingest_bench DATA_DIR DSN [senders] [each]\n");
        return 2;
    }
    const int senders = argc > 3 ? std::atoi(argv[3]) : 10;
    const int each = argc > 4 ? std::atoi(argv[4]) : 100;
    const int total = senders * each;
    SqliteOptions sqlite_options;
    sqlite_options.data_dir = argv[1];
    auto sqlite = open_sqlite_store(sqlite_options);
    if (!sqlite) return std::fprintf(stderr, "%s\n", sqlite.error().message.c_str()), 1;
    Figure embedded = run(**sqlite, "sqlite.test", senders, each);
    sqlite->reset();

    PostgresOptions grouped;
    grouped.dsn = argv[2];
    auto pg = open_postgres_store(grouped);
    if (!pg) return std::fprintf(stderr, "%s\n", pg.error().message.c_str()), 1;
    Figure group = run(**pg, "grouped.test", senders, each);
    pg->reset();

    PostgresOptions single = grouped;
    single.max_batch = 1;
    auto pg1 = open_postgres_store(single);
    if (!pg1) return std::fprintf(stderr, "%s\n", pg1.error().message.c_str()), 1;
    Figure one = run(**pg1, "single.test", senders, each);

    std::printf("%d senders x %d messages of 4 KB\n", senders, each);
    print("sqlite (group commit)", embedded, total);
    print("postgres, max_batch 256", group, total);
    print("postgres, max_batch 1", one, total);
    std::printf("postgres group commit / no group commit: %.2fx\n", one.seconds / group.seconds);
    std::printf("postgres / sqlite: %.2fx\n", embedded.seconds / group.seconds);
    return 0;
}
