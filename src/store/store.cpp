// The defaults of the Store operations a backend may lack: an honest "unavailable", never a fake answer.
#include "store/store.h"

#include <fmt/format.h>

namespace magpie::store {
namespace {

Error unsupported(const char* operation) {
    return make_error(Errc::unavailable, fmt::format("{} is not supported by this store backend", operation));
}

}  // namespace

Result<std::unique_ptr<BlobSpool>> Store::open_spool() { return unsupported("open_spool"); }

Result<std::unique_ptr<BlobReader>> Store::open_blob(std::string_view blob_id) {
    auto content = read_blob(blob_id);
    if (!content) return content.error();
    return std::unique_ptr<BlobReader>(std::make_unique<MemoryBlobReader>(std::move(*content)));
}

Result<Mailbox> Store::create_mailbox(std::int64_t, std::string_view) { return unsupported("create_mailbox"); }
Result<void> Store::rename_mailbox(std::int64_t, std::string_view, std::string_view) {
    return unsupported("rename_mailbox");
}
Result<void> Store::delete_mailbox(std::int64_t, std::string_view) { return unsupported("delete_mailbox"); }
Result<void> Store::set_subscribed(std::int64_t, std::string_view, bool) { return unsupported("set_subscribed"); }
Result<FlagStoreResult> Store::store_flags(std::int64_t, const std::vector<std::uint32_t>&, const FlagUpdate&) {
    return unsupported("store_flags");
}
Result<std::vector<std::uint32_t>> Store::expunge(std::int64_t, const std::vector<std::uint32_t>*) {
    return unsupported("expunge");
}
Result<CopyResult> Store::copy_messages(std::int64_t, const std::vector<std::uint32_t>&, std::int64_t) {
    return unsupported("copy_messages");
}
Result<CopyResult> Store::move_messages(std::int64_t, const std::vector<std::uint32_t>&, std::int64_t) {
    return unsupported("move_messages");
}
Result<MailboxChanges> Store::changes_since(std::int64_t, std::uint64_t) { return unsupported("changes_since"); }
Result<std::vector<std::pair<std::int64_t, EnvelopeRecord>>> Store::pending_envelopes(std::size_t) {
    return unsupported("pending_envelopes");
}
Result<void> Store::delete_envelope(std::int64_t) { return unsupported("delete_envelope"); }
Result<std::vector<MessageState>> Store::list_states(std::int64_t) { return unsupported("list_states"); }
Result<MailboxStatus> Store::mailbox_status(std::int64_t) { return unsupported("mailbox_status"); }
Result<std::vector<Message>> Store::find_messages(std::int64_t, const std::vector<std::uint32_t>&) {
    return unsupported("find_messages");
}
Result<std::uint32_t> Store::claim_recent(std::int64_t) { return unsupported("claim_recent"); }
Result<std::vector<QueueEntry>> Store::lease_due(std::string_view, std::int64_t, std::int64_t, std::size_t) {
    return unsupported("lease_due");
}
Result<std::size_t> Store::record_attempts(std::string_view, const std::vector<AttemptOutcome>&, std::vector<Delivery>) {
    return unsupported("record_attempts");
}
Result<std::size_t> Store::release_leases(std::string_view) { return unsupported("release_leases"); }
Result<std::optional<std::int64_t>> Store::next_queue_due() { return unsupported("next_queue_due"); }
Result<std::vector<QueueEntry>> Store::list_queue(std::size_t, bool) { return unsupported("list_queue"); }
Result<QueueEntry> Store::find_queue_entry(std::int64_t) { return unsupported("find_queue_entry"); }
Result<void> Store::delete_queue_entry(std::int64_t) { return unsupported("delete_queue_entry"); }
Result<void> Store::set_queue_held(std::int64_t, bool) { return unsupported("set_queue_held"); }
Result<std::size_t> Store::retry_queue_now(std::optional<std::int64_t>, std::int64_t) {
    return unsupported("retry_queue_now");
}
Result<std::size_t> Store::purge_finished_queue(std::int64_t) { return unsupported("purge_finished_queue"); }
Result<GarbageReport> Store::collect_garbage(std::int64_t, std::int64_t) { return unsupported("collect_garbage"); }
Result<std::vector<std::string>> Store::list_subscriptions(std::int64_t) {
    return unsupported("list_subscriptions");
}

Result<ApiToken> Store::add_api_token(std::int64_t, std::string_view, std::string_view, std::int64_t,
                                     std::optional<std::int64_t>) {
    return unsupported("add_api_token");
}
Result<std::vector<ApiToken>> Store::list_api_tokens(std::int64_t) { return unsupported("list_api_tokens"); }
Result<void> Store::revoke_api_token(std::int64_t, std::string_view) { return unsupported("revoke_api_token"); }
Result<ApiToken> Store::find_api_token(std::string_view) { return unsupported("find_api_token"); }

Result<UploadedBlob> Store::add_upload(std::int64_t, std::string_view, std::string_view, std::int64_t, std::int64_t) {
    return unsupported("add_upload");
}
Result<std::string> Store::read_account_blob(std::int64_t, std::string_view) { return unsupported("read_account_blob"); }
Result<UploadedBlob> Store::find_upload(std::int64_t, std::string_view) { return unsupported("find_upload"); }
Result<JmapObjectList> Store::list_jmap_objects(std::int64_t, std::string_view) {
    return unsupported("list_jmap_objects");
}
Result<JmapObjectWritten> Store::write_jmap_objects(std::int64_t, std::string_view, const JmapObjectWrite&) {
    return unsupported("write_jmap_objects");
}
Result<void> Store::set_special_use(std::int64_t, std::int64_t, SpecialUse) { return unsupported("set_special_use"); }
Result<std::uint64_t> Store::account_state(std::int64_t) { return unsupported("account_state"); }
Result<std::vector<Email>> Store::find_emails(std::int64_t, const std::vector<std::int64_t>&) {
    return unsupported("find_emails");
}
Result<EmailQueryResult> Store::query_emails(std::int64_t, const EmailQuery&) { return unsupported("query_emails"); }
Result<std::vector<EmailThread>> Store::find_threads(std::int64_t, const std::vector<std::int64_t>&) {
    return unsupported("find_threads");
}
Result<EmailChanges> Store::email_changes(std::int64_t, std::uint64_t, std::size_t) {
    return unsupported("email_changes");
}
Result<EmailChanges> Store::thread_changes(std::int64_t, std::uint64_t, std::size_t) {
    return unsupported("thread_changes");
}
Result<std::vector<Result<void>>> Store::update_emails(std::int64_t, const std::vector<EmailUpdate>&) {
    return unsupported("update_emails");
}
Result<std::vector<Result<void>>> Store::destroy_emails(std::int64_t, const std::vector<std::int64_t>&) {
    return unsupported("destroy_emails");
}

}  // namespace magpie::store
