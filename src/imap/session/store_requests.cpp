#include "imap/session/store_requests.h"

#include <algorithm>
#include <future>

#include "auth/authenticator.h"
#include "imap/session/support.h"

namespace magpie::imap {
namespace {

using session_support::parents_of;

Result<store::Account> run(SessionServices& services, const request::Login& r) {
    return auth::authenticate_plain(services.store, services.hash_limiter, services.throttle, r.user, r.password,
                                    r.client_ip, r.now, services.verified_cache);
}

Result<request::SaslStep::Answer> run(SessionServices& services, const request::SaslStep& r) {
    using Kind = auth::SaslOutcome::Kind;
    request::SaslStep::Answer answer{r.outcome, std::nullopt};
    auto& outcome = answer.outcome;
    while (outcome.kind == Kind::verify_password || outcome.kind == Kind::need_scram_credentials) {
        outcome = auth::answer_sasl_request(services.store, services.hash_limiter, services.throttle, *r.sasl,
                                            outcome, r.client_ip, r.now, services.verified_cache);
    }
    if (outcome.kind == Kind::challenge) return answer;
    auth::record_sasl_result(services.throttle, *r.sasl, outcome, r.client_ip, r.now);
    if (outcome.kind == Kind::success) {
        if (auto account = services.store.find_account(outcome.authcid)) answer.account = std::move(*account);
    }
    return answer;
}

Result<request::Refresh::Answer> run(store::Store& store, const request::Refresh& r) {
    auto changes = store.changes_since(r.mailbox_id, r.since);
    if (!changes) return changes.error();
    request::Refresh::Answer answer;
    const bool arrived = std::ranges::any_of(changes->changed, [&](const store::Message& m) { return m.uid > r.claim_above; });
    if (r.claim && arrived) {
        if (auto recent_from = store.claim_recent(r.mailbox_id)) answer.recent_from = *recent_from;
    }
    answer.changes = std::move(*changes);
    return answer;
}

// The mailbox row and the reads after it are separate transactions, so the mailbox may be deleted and made
// again under its name in between (SQLite may even give the new one the same id): its listing would then be
// answered under the old UIDVALIDITY, and a client would file the new mailbox's UIDs under the old one's.
// The row is read again after the reads; the same id and UIDVALIDITY prove they were this mailbox's, since a
// UIDVALIDITY is never given twice (store-wide counter). Otherwise it starts again, a few times at most.
constexpr int kOpenMailboxAttempts = 3;

Result<request::OpenMailbox::Answer> open_mailbox_once(store::Store& store, const request::OpenMailbox& r);

Result<request::OpenMailbox::Answer> run(store::Store& store, const request::OpenMailbox& r) {
    for (int attempt = 1;; ++attempt) {
        auto answer = open_mailbox_once(store, r);
        const bool last = attempt == kOpenMailboxAttempts;
        if (!answer) {
            // Its row went between the reads (a new one under the name has another id): try the new one.
            if (answer.error().code != Errc::not_found || last || !store.find_mailbox(r.account_id, r.name))
                return answer;
            continue;
        }
        auto again = store.find_mailbox(r.account_id, r.name);
        if (!again) return again.error();  // gone meanwhile: as if it had been gone first
        if (again->id == answer->mailbox.id && again->uidvalidity == answer->mailbox.uidvalidity) return answer;
        if (last) return make_error(Errc::unavailable, "the mailbox was replaced while it was being opened");
    }
}

Result<request::OpenMailbox::Answer> open_mailbox_once(store::Store& store, const request::OpenMailbox& r) {
    auto mailbox = store.find_mailbox(r.account_id, r.name);
    if (!mailbox) return mailbox.error();
    request::OpenMailbox::Answer answer;
    // The narrow listing (uid, modseq, flags): no summaries or structures for a mailbox being opened.
    auto states = store.list_states(mailbox->id);
    if (!states) return states.error();
    answer.states = std::move(*states);
    // RFC 3501 2.3.1.2: the first session to SELECT claims the recent messages; EXAMINE only looks. Either
    // failing leaves no message recent (as before: \Recent is advisory).
    if (r.read_only) {
        if (auto status = store.mailbox_status(mailbox->id)) answer.recent = status->recent;
    } else if (auto recent_from = store.claim_recent(mailbox->id)) {
        answer.recent_from = *recent_from;
    }
    if (r.changes_since) {
        if (auto changes = store.changes_since(mailbox->id, *r.changes_since)) answer.changes = std::move(*changes);
    }
    answer.mailbox = std::move(*mailbox);
    return answer;
}

Result<request::MailboxStatus::Answer> run(store::Store& store, const request::MailboxStatus& r) {
    auto mailbox = store.find_mailbox(r.account_id, r.name);
    if (!mailbox) return mailbox.error();
    // Counters the store keeps (RFC 9051 6.3.11): no scan of the messages, whatever the mailbox size.
    auto status = store.mailbox_status(mailbox->id);
    if (!status) return status.error();
    return request::MailboxStatus::Answer{std::move(*mailbox), *status};
}

Result<request::ListMailboxes::Answer> run(store::Store& store, const request::ListMailboxes& r) {
    auto mailboxes = store.list_mailboxes(r.account_id);
    if (!mailboxes) return mailboxes.error();
    request::ListMailboxes::Answer answer;
    if (r.subscriptions) {
        auto subscriptions = store.list_subscriptions(r.account_id);
        if (!subscriptions) return subscriptions.error();
        answer.subscriptions = std::move(*subscriptions);
    }
    if (r.statuses) {
        for (const auto& mailbox : *mailboxes) {
            auto status = store.mailbox_status(mailbox.id);
            answer.statuses.push_back(status ? std::optional<store::MailboxStatus>(*status) : std::nullopt);
        }
    }
    answer.mailboxes = std::move(*mailboxes);
    return answer;
}

Result<std::vector<std::string>> run(store::Store& store, const request::ListSubscriptions& r) {
    return store.list_subscriptions(r.account_id);
}

// The superiors of `name` that do not exist yet (except `skip`, a mailbox being renamed).
Result<void> create_parents(store::Store& store, std::int64_t account_id, std::string_view name,
                            std::string_view skip = {}) {
    for (const auto& parent : parents_of(name)) {
        if (parent == skip || store.find_mailbox(account_id, parent)) continue;
        auto created = store.create_mailbox(account_id, parent);
        if (!created && created.error().code != Errc::already_exists) return created.error();
    }
    return {};
}

Result<store::Mailbox> run(store::Store& store, const request::CreateMailbox& r) {
    if (store.find_mailbox(r.account_id, r.name)) return make_error(Errc::already_exists, "mailbox already exists");
    // RFC 9051 6.3.4: superiors needed to place the new name are created too.
    MAGPIE_TRY(create_parents(store, r.account_id, r.name));
    return store.create_mailbox(r.account_id, r.name);
}

Result<request::RenameMailbox::Answer> run(store::Store& store, const request::RenameMailbox& r) {
    if (store.find_mailbox(r.account_id, r.to)) return make_error(Errc::already_exists, "target mailbox exists");
    MAGPIE_TRY(create_parents(store, r.account_id, r.to, r.from));
    MAGPIE_TRY(store.rename_mailbox(r.account_id, r.from, r.to));
    return request::RenameMailbox::Answer{};
}

Result<request::DeleteMailbox::Answer> run(store::Store& store, const request::DeleteMailbox& r) {
    MAGPIE_TRY(store.delete_mailbox(r.account_id, r.name));
    return request::DeleteMailbox::Answer{};
}

Result<request::SetSubscribed::Answer> run(store::Store& store, const request::SetSubscribed& r) {
    MAGPIE_TRY(store.set_subscribed(r.account_id, r.name, r.subscribed));
    return request::SetSubscribed::Answer{};
}

Result<request::MailboxUsage::Answer> run(store::Store& store, const request::MailboxUsage& r) {
    request::MailboxUsage::Answer answer;
    if (r.name) {
        auto mailbox = store.find_mailbox(r.account_id, *r.name);
        if (!mailbox) return mailbox.error();
        answer.mailbox = std::move(*mailbox);
    }
    if (r.usage) {
        auto mailboxes = store.list_mailboxes(r.account_id);
        if (!mailboxes) return mailboxes.error();
        for (const auto& m : *mailboxes) answer.used_octets += m.total_size;
    }
    return answer;
}

Result<store::Delivered> run(store::Store& store, request::Deliver& r) {
    std::promise<Result<store::Delivered>> committed;
    auto done = committed.get_future();
    store.deliver(std::move(r.delivery),
                  [&committed](Result<store::Delivered> result) { committed.set_value(std::move(result)); });
    return done.get();
}

Result<std::vector<std::uint32_t>> run(store::Store& store, const request::Expunge& r) {
    return store.expunge(r.mailbox_id, r.uids ? &*r.uids : nullptr);
}

Result<store::FlagStoreResult> run(store::Store& store, const request::StoreFlags& r) {
    return store.store_flags(r.mailbox_id, r.uids, r.update);
}

Result<request::CopyMessages::Answer> run(store::Store& store, const request::CopyMessages& r) {
    auto target = store.find_mailbox(r.account_id, r.target);
    if (!target) return target.error();
    request::CopyMessages::Answer answer;
    answer.copied.uidvalidity = target->uidvalidity;
    if (r.uids.empty()) return answer;  // the target exists: nothing else to do
    if (!r.move && r.quota_kib > 0) {
        // RFC 9208 5.1: a COPY adds the messages' sizes to the account's usage (the blobs are shared, the
        // quota counts what the user sees).
        std::uint64_t octets = 0;
        if (auto rows = store.find_messages(r.mailbox_id, r.uids))
            for (const auto& m : *rows) octets += m.size;
        if (auto mailboxes = store.list_mailboxes(r.account_id))
            for (const auto& m : *mailboxes) octets += m.total_size;
        if ((octets + 1023) / 1024 > r.quota_kib) {
            answer.over_quota = true;
            return answer;
        }
    }
    // RFC 6851 3.3: MOVE into the selected mailbox renumbers the messages in one transaction, keeping their
    // Email ids (RFC 8474 EMAILID).
    auto copied = r.move ? store.move_messages(r.mailbox_id, r.uids, target->id)
                         : store.copy_messages(r.mailbox_id, r.uids, target->id);
    if (!copied) return copied.error();
    answer.copied = std::move(*copied);
    return answer;
}

Result<request::SearchMessages::Answer> run(SessionServices& services, const request::SearchMessages& r) {
    return search_messages(&services.store, r, services.search_rows.get());
}

Result<std::vector<store::Message>> run(store::Store& store, const request::FetchRows& r) {
    auto rows = store.find_messages(r.mailbox_id, r.uids);
    if (!rows) return rows.error();
    std::ranges::sort(*rows, {}, &store::Message::uid);
    return rows;
}

Result<std::vector<Result<std::string>>> run(store::Store& store, const request::ReadBlobs& r) {
    std::vector<Result<std::string>> blobs;
    blobs.reserve(r.blob_ids.size());
    for (const auto& id : r.blob_ids) blobs.push_back(store.read_blob(id));
    return blobs;
}

Result<std::shared_ptr<store::BlobReader>> run(store::Store& store, const request::OpenBlob& r) {
    auto reader = store.open_blob(r.blob_id);
    if (!reader) return reader.error();
    return std::shared_ptr<store::BlobReader>(std::move(*reader));
}

Result<std::string> run(store::Store&, const request::ReadBlobRange& r) {
    return r.reader->read(r.offset, r.length);
}

Result<LiteralStream::Measure> run(store::Store&, const request::MeasureBinary& r) {
    return LiteralStream::measure(*r.reader, r.ranges, r.encoding, r.skip, r.length, r.slice_octets);
}

}  // namespace

StoreAnswer perform(SessionServices& services, StoreRequest request) {
    return std::visit(
        [&](auto& r) -> StoreAnswer {
            using R = std::decay_t<decltype(r)>;
            if constexpr (std::is_same_v<R, request::Login> || std::is_same_v<R, request::SaslStep> ||
                          std::is_same_v<R, request::SearchMessages>)
                return StoreAnswer(std::in_place_index<kRequestIndex<R>>, run(services, r));
            else
                return StoreAnswer(std::in_place_index<kRequestIndex<R>>, run(services.store, r));
        },
        request);
}

}  // namespace magpie::imap
