#include "server/store_factory.h"

#include <fstream>

#include <fmt/format.h>

namespace magpie::server {

Result<store::PostgresOptions> postgres_options(const Config& config) {
    store::PostgresOptions options;
    options.dsn = config.store.dsn;
    options.pool_size = config.store.pool_size;
    options.prepared_statements = config.store.prepared_statements;
    options.max_batch = config.store.max_batch;
    options.max_thread_references = config.store.max_thread_references;
    options.thread_subject_window_seconds = config.store.thread_subject_window;
    options.max_query_results = config.store.max_query_results;
    options.max_filter_nodes = config.store.max_filter_nodes;
    options.migrate_batch_rows = config.store.migrate_batch_rows;
    if (!config.store.password_file.empty()) {
        std::ifstream file(config.store.password_file);
        if (!file) {
            return make_error(Errc::not_found,
                              fmt::format("[store] password_file {} cannot be read", config.store.password_file.string()));
        }
        std::getline(file, options.password);
        if (!options.password.empty() && options.password.back() == '\r') options.password.pop_back();
    }
    return options;
}

Result<std::unique_ptr<store::Store>> open_store(const Config& config, bool read_only) {
    if (config.store.backend == "postgres") {
        auto options = postgres_options(config);
        if (!options) return options.error();
        options->read_only = read_only;
        // A read-only open serves one-shot tools (magpie list, export): they need not hear other nodes.
        options->listen = !read_only;
        return store::open_postgres_store(*options);
    }
    if (config.store.backend != "sqlite") {
        return make_error(Errc::invalid_argument,
                          fmt::format("[store] backend \"{}\" is not built into this magpie", config.store.backend));
    }
    if (read_only && !std::filesystem::exists(config.data_dir / "magpie.db")) {
        return make_error(Errc::not_found, fmt::format("no store in {}", config.data_dir.string()));
    }
    return store::open_sqlite_store(sqlite_options(config, read_only));
}

store::SqliteOptions sqlite_options(const Config& config, bool read_only) {
    store::SqliteOptions options;
    options.data_dir = config.data_dir;
    options.read_only = read_only;
    options.inline_blob_max = config.store.inline_blob_max;
    options.compression_level = static_cast<int>(config.store.compression_level);
    options.states_cache_messages = config.store.states_cache_messages;
    options.max_batch = config.store.max_batch;
    options.checkpoint_frames = config.store.checkpoint_frames;
    options.max_transcript_bytes = config.queue.max_transcript;
    options.max_thread_references = config.store.max_thread_references;
    options.thread_subject_window_seconds = config.store.thread_subject_window;
    options.max_query_results = config.store.max_query_results;
    options.max_filter_nodes = config.store.max_filter_nodes;
    return options;
}

Result<store::CheckReport> check_configured_store(const Config& config) {
    if (config.store.backend == "postgres") {
        auto options = postgres_options(config);
        if (!options) return options.error();
        return store::check_postgres_store(*options);
    }
    return store::check_store(config.data_dir);
}

}  // namespace magpie::server
