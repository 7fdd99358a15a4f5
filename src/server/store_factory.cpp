#include "server/store_factory.h"

#include <fmt/format.h>

namespace magpie::server {

Result<std::unique_ptr<store::Store>> open_store(const Config& config, bool read_only) {
    if (config.store.backend != "sqlite") {
        return make_error(Errc::invalid_argument,
                          fmt::format("[store] backend \"{}\" is not built into this magpie", config.store.backend));
    }
    if (read_only && !std::filesystem::exists(config.data_dir / "magpie.db")) {
        return make_error(Errc::not_found, fmt::format("no store in {}", config.data_dir.string()));
    }
    store::SqliteOptions options;
    options.data_dir = config.data_dir;
    options.read_only = read_only;
    options.inline_blob_max = config.store.inline_blob_max;
    options.max_batch = config.store.max_batch;
    options.max_transcript_bytes = config.queue.max_transcript;
    return store::open_sqlite_store(options);
}

}  // namespace magpie::server
