// magpie_fill_mailbox DATA_DIR ADDRESS MAILBOX COUNT: appends COUNT copies of one small message to a mailbox
// of the store in DATA_DIR through store::sqlite::bulk_append (one transaction; every invariant `magpie
// check` verifies is kept). Run it while magpied is stopped. Prints the last UID. Exit 1 on any error.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "store/sqlite/bulk.h"
#include "store/store.h"

namespace {

int fail(const std::string& what, const magpie::Error& error) {
    std::fprintf(stderr, "magpie_fill_mailbox: %s: %s\n", what.c_str(), error.message.c_str());
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: magpie_fill_mailbox DATA_DIR ADDRESS MAILBOX COUNT\n");
        return 2;
    }
    const std::filesystem::path data_dir = argv[1];
    const unsigned long count = std::strtoul(argv[4], nullptr, 10);
    std::int64_t mailbox_id = 0;
    {
        magpie::store::SqliteOptions options;
        options.data_dir = data_dir;
        auto store = magpie::store::open_sqlite_store(options);
        if (!store) return fail("open", store.error());
        auto account = (*store)->find_account(argv[2]);
        if (!account) return fail("find_account", account.error());
        auto mailbox = (*store)->find_mailbox(account->id, argv[3]);
        if (!mailbox) return fail("find_mailbox", mailbox.error());
        mailbox_id = mailbox->id;
    }  // closed before the bulk write, which bypasses the store's writer
    magpie::store::sqlite::BulkFill fill;
    fill.mailbox_id = mailbox_id;
    fill.count = static_cast<std::uint32_t>(count);
    auto last = magpie::store::sqlite::bulk_append(data_dir, fill);
    if (!last) return fail("bulk_append", last.error());
    std::printf("%u\n", *last);
    return 0;
}
