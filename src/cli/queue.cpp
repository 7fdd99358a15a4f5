#include "cli/queue.h"

#include <fmt/format.h>

#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "base/time.h"
#include "delivery/store_queue.h"
#include "delivery/tracker.h"
#include "delivery/wake.h"
#include "server/store_factory.h"

namespace magpie::cli {
namespace {

int fail(const std::string& message) {
    std::cerr << "magpie: " << message << "\n";
    return 1;
}

// Message files may have LF line ends (written by an editor): the queue keeps CRLF (RFC 5322 2.1).
std::string to_crlf(std::string_view text) {
    std::string out;
    out.reserve(text.size() + text.size() / 32);
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) out += '\r';
        out += text[i];
    }
    if (!out.empty() && !out.ends_with("\r\n")) out += "\r\n";
    return out;
}

}  // namespace

QueueCommands::QueueCommands(CLI::App& app) {
    queue_ = app.add_subcommand("queue", "the outgoing queue and its delivery tracker");
    queue_->require_subcommand(1);
    list_ = queue_->add_subcommand(
        "list", "entries still waiting (--all: finished ones too), with each recipient's state");
    list_->add_flag("--all", all_, "include delivered and failed entries the tracker still keeps");
    show_ = queue_->add_subcommand("show",
                                   "one entry: each recipient's state, attempts and last SMTP conversation");
    show_->add_option("id", id_)->required();
    flush_ = queue_->add_subcommand("flush", "make every waiting recipient due now");
    retry_ = queue_->add_subcommand("retry", "make the entry's waiting recipients due now");
    retry_->add_option("id", id_)->required();
    delete_ = queue_->add_subcommand("delete", "remove an entry (no report is sent)");
    delete_->add_option("id", id_)->required();
    hold_ = queue_->add_subcommand("hold", "keep an entry from being attempted");
    hold_->add_option("id", id_)->required();
    release_ = queue_->add_subcommand("release", "let a held entry be attempted again");
    release_->add_option("id", id_)->required();
    add_ = queue_->add_subcommand("add", "queue a message file (RFC 5322, '-' for stdin) for delivery");
    add_->add_option("--from", from_, "envelope sender (empty for the null sender)")->required();
    add_->add_option("--to", to_, "envelope recipient (repeatable)")->required();
    add_->add_option("file", file_)->required();
}

int QueueCommands::run(const server::Config& config) {
    // The queue is the store's: list and show only read it (safe beside magpied, and on a store that does
    // not exist yet: an empty queue); the others write through the store's committer.
    const bool read_only = list_->parsed() || show_->parsed();
    if (!read_only) {
        std::error_code ec;
        std::filesystem::create_directories(config.data_dir, ec);
    }
    auto opened = server::open_store(config, read_only);
    if (!opened && read_only && opened.error().code == Errc::not_found && list_->parsed()) return 0;
    if (!opened) return fail(opened.error().message);
    delivery::StoreQueue queue(**opened);
    auto done = [](const Result<void>& r) { return r ? 0 : fail(r.error().message); };

    if (list_->parsed()) {
        auto entries = queue.list(all_, 10000);
        if (!entries) return fail(entries.error().message);
        std::cout << delivery::format_list(*entries);
        return 0;
    }
    if (show_->parsed()) {
        auto entry = queue.get(id_);
        if (!entry) return fail(entry.error().message);
        std::cout << delivery::format_entry(*entry);
        return 0;
    }
    if (flush_->parsed() || retry_->parsed()) {
        auto changed =
            queue.retry_now(flush_->parsed() ? std::nullopt : std::optional<std::int64_t>(id_), unix_now());
        if (!changed) return fail(changed.error().message);
        delivery::notify_queue_changed(config.data_dir);
        std::cout << *changed << " recipients due now\n";
        return 0;
    }
    if (delete_->parsed()) return done(queue.remove(id_));
    if (hold_->parsed()) return done(queue.set_held(id_, true));
    if (release_->parsed()) {
        auto released = queue.set_held(id_, false);
        if (released) delivery::notify_queue_changed(config.data_dir);
        return done(released);
    }
    if (add_->parsed()) {
        std::string content;
        if (file_ == "-") {
            content.assign(std::istreambuf_iterator<char>(std::cin), {});
        } else {
            std::ifstream in(file_, std::ios::binary);
            if (!in) return fail("cannot read " + file_);
            content.assign(std::istreambuf_iterator<char>(in), {});
        }
        delivery::NewEntry entry;
        entry.reverse_path = from_;
        entry.content = to_crlf(content);
        entry.queued_at = unix_now();
        for (const auto& to : to_) entry.recipients.push_back(delivery::NewRecipient{to, "", ""});
        auto id = queue.enqueue(entry);
        if (!id) return fail(id.error().message);
        delivery::notify_queue_changed(config.data_dir);
        std::cout << *id << "\n";
        return 0;
    }
    return fail("nothing to do");
}

}  // namespace magpie::cli
