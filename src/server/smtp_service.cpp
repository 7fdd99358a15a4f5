#include "server/smtp_service.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <optional>
#include <set>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include "auth/authenticator.h"
#include "base/strings.h"
#include "base/time.h"
#include "store/address.h"
#include "store/senders.h"
#include "smtp/delivered.h"
#include "delivery/outgoing.h"
#include "http/email_view.h"
#include "mail/auto_reply.h"
#include "mail/builder.h"
#include "store/summary.h"

namespace magpie::server {
namespace {

smtp::ServerConfig session_config(const Config& config, const net::Connection& connection, bool submission) {
    smtp::ServerConfig c;
    c.hostname = config.hostname;
    c.limits.max_command_line = config.smtp.max_command_line;
    c.limits.max_text_line = config.smtp.max_text_line;
    c.limits.max_message_size = config.smtp.max_message_size;
    c.limits.max_recipients = config.smtp.max_recipients;
    c.limits.max_bad_commands = config.smtp.max_bad_commands;
    c.limits.max_junk_commands = config.smtp.max_junk_commands;
    c.limits.idle_timeout = std::chrono::seconds(config.smtp.idle_timeout);
    c.limits.min_data_rate = config.smtp.min_data_rate;
    c.limits.max_transaction_time = std::chrono::seconds(config.smtp.max_transaction_time);
    c.starttls_offered = connection.tls_available() && !connection.tls_active();
    c.tls_active = connection.tls_active();
    c.bare_line_ending = config.smtp.bare_line_ending == "normalize" ? smtp::BareLineEnding::normalize
                                                                     : smtp::BareLineEnding::reject;
    c.submission = submission;
    c.auth_plaintext_allowed = submission && config.submission.allow_plaintext_auth;
    c.limits.max_auth_line = config.submission.max_auth_line;
    return c;
}

smtp::AddMissingHeaders add_missing_headers(const std::string& setting) {
    if (setting == "never") return smtp::AddMissingHeaders::never;
    if (setting == "always") return smtp::AddMissingHeaders::always;
    return smtp::AddMissingHeaders::headerless;
}

// The session's clock: steady (never jumps with the wall clock), read only here in the IO layer.
smtp::Millis steady_now() {
    return std::chrono::duration_cast<smtp::Millis>(std::chrono::steady_clock::now().time_since_epoch());
}

std::int64_t steady_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// ---- Vacation replies (RFC 8621 8, RFC 3834).

constexpr std::string_view kVacationType = "VacationResponse";
// Who was answered in the current vacation period: one object per account of a type no JMAP method lists,
// {"vacationState": <the VacationResponse's updated_state>, "senders": [...]}. A changed VacationResponse
// has a new updated_state, which starts a new period (and an empty list).
constexpr std::string_view kRepliedType = "x-magpie-vacation-replied";
// Concurrent deliveries to one account race on the record (write_jmap_objects' if_in_state): retries.
constexpr int kRecordAttempts = 4;
// The store keeps one JMAP object up to 1 MiB of JSON (sqlite/ and postgres/jmap_objects.cpp): the senders'
// array stays below it with room for the record's other field, whatever [smtp] vacation_max_senders says.
constexpr std::size_t kRepliedSendersOctets = (1u << 20) - 256;

struct VacationReply {
    std::string from;  // the account answering, for the log
    store::Delivery delivery;
};

std::optional<std::int64_t> vacation_date(const nlohmann::json& vacation, const char* key) {
    auto it = vacation.find(key);
    if (it == vacation.end() || !it->is_string()) return std::nullopt;
    return http::parse_utc_date(it->get_ref<const std::string&>());
}

std::optional<std::string> vacation_text(const nlohmann::json& vacation, const char* key) {
    auto it = vacation.find(key);
    if (it == vacation.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
}

// Records `sender` as answered in the period `period` of `account_id`; false when it was answered already
// (or the record keeps changing under us: then the sender is better left unanswered than answered twice).
// `max_senders` ([smtp] vacation_max_senders): the senders remembered per account and period; the oldest is
// forgotten beyond it or beyond the store's object size (note_replied), and may then be answered again.
Result<bool> record_replied(store::Store& store, std::int64_t account_id, std::uint64_t period,
                            const std::string& sender, std::size_t max_senders) {
    for (int attempt = 0; attempt < kRecordAttempts; ++attempt) {
        auto list = store.list_jmap_objects(account_id, kRepliedType);
        if (!list) return list.error();
        const store::JmapObject* record = nullptr;
        for (const auto& object : list->objects) {
            if (!object.destroyed) record = &object;
        }
        std::vector<std::string> senders;
        if (record) {
            auto data = nlohmann::json::parse(record->data, nullptr, false);
            if (data.is_object() && data.value("vacationState", std::uint64_t{0}) == period &&
                data.contains("senders") && data["senders"].is_array()) {
                for (const auto& s : data["senders"]) {
                    if (s.is_string()) senders.push_back(s.get<std::string>());
                }
            }
        }
        if (!mail::note_replied(senders, to_lower(sender), max_senders, kRepliedSendersOctets)) return false;
        const std::string data = nlohmann::json{{"vacationState", period}, {"senders", senders}}.dump();
        store::JmapObjectWrite write;
        write.if_in_state = list->state;
        if (record) {
            write.update.emplace_back(record->id, data);
        } else {
            write.create.push_back(data);
        }
        auto written = store.write_jmap_objects(account_id, kRepliedType, write);
        if (!written) return written.error();
        if (!written->state_mismatch) return true;
    }
    return false;
}

// The replies `original` (from `sender`) earns from the local recipients it was stored for: one per account
// whose VacationResponse is on now, when RFC 3834 2 allows it and the sender was not answered this period.
// Each is completed and signed like submitted mail (delivery::prepare_outgoing_message) and goes out with a
// null reverse path (RFC 3834 3.3), so that nothing bounces or answers it back. Errors are logged per account.
std::vector<VacationReply> plan_vacation_replies(store::Store& store, const RecipientPolicy& policy,
                                                 const std::string& hostname, const mail::Message& original,
                                                 const std::string& sender,
                                                 const std::vector<std::pair<store::RecipientResult, std::string>>& recipients,
                                                 const mailauth::DkimSigner& signer, std::int64_t now,
                                                 std::size_t max_replied_senders) {
    std::vector<VacationReply> out;
    std::set<std::int64_t> done;
    for (const auto& [resolved, address] : recipients) {
        if (!done.insert(resolved.account_id).second) continue;
        auto answer = [&]() -> Result<std::optional<VacationReply>> {
            auto list = store.list_jmap_objects(resolved.account_id, kVacationType);
            if (!list) return list.error();
            const store::JmapObject* stored = nullptr;
            for (const auto& object : list->objects) {
                if (!object.destroyed) stored = &object;
            }
            if (!stored) return std::optional<VacationReply>();
            auto vacation = nlohmann::json::parse(stored->data, nullptr, false);
            if (!vacation.is_object()) return std::optional<VacationReply>();
            const auto enabled = vacation.find("isEnabled");
            if (!mail::vacation_active(enabled != vacation.end() && enabled->is_boolean() && enabled->get<bool>(),
                                       vacation_date(vacation, "fromDate"), vacation_date(vacation, "toDate"), now)) {
                return std::optional<VacationReply>();
            }
            // The account is named by its own address and every address of the envelope that reached it.
            std::vector<std::string> names{resolved.canonical_address};
            for (const auto& [other, name] : recipients) {
                if (other.account_id == resolved.account_id) names.push_back(name);
            }
            if (!mail::may_auto_reply(original, sender, names)) return std::optional<VacationReply>();
            auto fresh = record_replied(store, resolved.account_id, stored->updated_state, sender,
                                        max_replied_senders);
            if (!fresh) return fresh.error();
            if (!*fresh) return std::optional<VacationReply>();

            const std::string domain = resolved.canonical_address.substr(resolved.canonical_address.rfind('@') + 1);
            mail::Draft draft = mail::auto_reply_draft(
                original, mail::AutoReplyText{{"", resolved.canonical_address}, sender, vacation_text(vacation, "subject"),
                                              vacation_text(vacation, "textBody"), vacation_text(vacation, "htmlBody")});
            auto built = mail::build_message(draft, mail::BuildOptions{}, mail::system_build_env(domain));
            if (!built) return built.error();
            const std::string log_id = fmt::format("vacation-{}-{}", resolved.account_id, now);
            const std::string trace = fmt::format("Received: by {} (vacation response) for <{}>;\r\n\t{}\r\n",
                                                  hostname, sender, rfc5322_date(now));
            auto prepared = delivery::prepare_outgoing_message(
                delivery::OutgoingDraft{*built, trace, false, domain, now, log_id}, signer);
            if (!prepared) return prepared.error();

            VacationReply reply;
            reply.from = resolved.canonical_address;
            // A local sender gets it in its INBOX (final delivery: Return-Path), anyone else through the queue.
            auto target = resolve_recipient(store, policy, sender);
            if (!target) return target.error();
            if (target->status == store::RecipientStatus::local) {
                auto inbox = store.find_mailbox(target->account_id, "INBOX");
                if (!inbox) return inbox.error();
                reply.delivery.content = "Return-Path: <>\r\n" + *prepared;
                reply.delivery.targets.push_back(store::DeliveryTarget{inbox->id, {}});
            } else {
                reply.delivery.content = std::move(*prepared);
                store::OutgoingMessage queued;
                queued.reverse_path = "";
                queued.queued_at = now;
                queued.first_attempt_at = now;
                queued.recipients.push_back(store::EnvelopeRecipient{sender, "", ""});
                reply.delivery.outgoing = std::move(queued);
            }
            reply.delivery.summary = store::summarize(reply.delivery.content);
            reply.delivery.internal_date = now;
            return std::optional<VacationReply>(std::move(reply));
        }();
        if (!answer) {
            spdlog::error("smtp: vacation reply of account {} to <{}>: {}", resolved.canonical_address, sender,
                          answer.error().message);
        } else if (*answer) {
            out.push_back(std::move(**answer));
        }
    }
    return out;
}

// Whether `account_id` has a VacationResponse that is enabled (its dates are left to plan_vacation_replies);
// true when the store cannot tell, so that the planning decides.
bool vacation_may_be_on(store::Store& store, std::int64_t account_id) {
    auto list = store.list_jmap_objects(account_id, kVacationType);
    if (!list) return true;
    for (const auto& object : list->objects) {
        if (object.destroyed) continue;
        auto vacation = nlohmann::json::parse(object.data, nullptr, false);
        if (!vacation.is_object()) continue;
        const auto enabled = vacation.find("isEnabled");
        if (enabled != vacation.end() && enabled->is_boolean() && enabled->get<bool>()) return true;
    }
    return false;
}

// A short unique id for logs, the Received field and the 250 reply: 16 hex digits. A counter run through
// splitmix64 (a bijection) under a key drawn once per process: never repeated within a process, unrelated
// between processes, and no call into the CSPRNG per message (RAND_bytes took its lock and a getpid each time,
// issue 17). Not a secret: Postfix's queue ids are a clock and an inode number.
std::string new_queue_id() {
    static const std::uint64_t key = [] {
        std::uint64_t drawn = 0;
        RAND_bytes(reinterpret_cast<unsigned char*>(&drawn), sizeof drawn);
        return drawn;
    }();
    static std::atomic<std::uint64_t> counter{0};
    std::uint64_t z = (counter.fetch_add(1, std::memory_order_relaxed) ^ key) + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return fmt::format("{:016X}", z);
}

bool is_postmaster(std::string_view local_part) {
    // "postmaster" quoted is the same local part (RFC 5321 4.1.2), as for every other recipient.
    return iequals(store::unquote_local_part(local_part), "postmaster");
}

store::RecipientResult local(const store::Account& account) {
    return store::RecipientResult{store::RecipientStatus::local, account.id, account.address};
}

// The account an alias of exactly this address (e.g. "postmaster@d" or the catch-all "@d") points to.
Result<std::optional<store::RecipientResult>> alias_target(store::Store& store,
                                                           const std::vector<store::Alias>& aliases,
                                                           std::string_view address) {
    for (const auto& alias : aliases) {
        if (!iequals(alias.address, address)) continue;
        auto target = store.find_account(alias.target);
        if (!target) return target.error();
        return std::optional<store::RecipientResult>(local(*target));
    }
    return std::optional<store::RecipientResult>();
}

// postmaster@domain for a local `domain`, in the order RecipientPolicy gives.
Result<store::RecipientResult> domain_postmaster(store::Store& store, const RecipientPolicy& policy,
                                                 const std::string& domain) {
    std::string address = "postmaster@" + domain;
    auto account = store.find_account(address);
    if (account) return local(*account);
    if (account.error().code != Errc::not_found) return account.error();
    auto aliases = store.list_aliases(domain);
    if (!aliases) return aliases.error();
    auto named = alias_target(store, *aliases, address);
    if (!named) return named.error();
    if (*named) return **named;
    if (!policy.postmaster.empty()) {
        auto configured = store.find_account(policy.postmaster);
        if (configured) return local(*configured);
        if (configured.error().code != Errc::not_found) return configured.error();
    }
    auto catch_all = alias_target(store, *aliases, "@" + domain);
    if (!catch_all) return catch_all.error();
    if (*catch_all) return **catch_all;
    auto accounts = store.list_accounts(domain);
    if (!accounts) return accounts.error();
    const store::Account* oldest = nullptr;
    for (const auto& candidate : *accounts) {
        if (!oldest || candidate.id < oldest->id) oldest = &candidate;
    }
    if (!oldest) return store::RecipientResult{store::RecipientStatus::unknown_user, 0, {}};
    return local(*oldest);
}

// The account's mailbox with the \\Junk role (RFC 6154), if it kept one (accounts are created with it).
Result<std::optional<std::int64_t>> junk_mailbox(store::Store& store, std::int64_t account_id) {
    auto mailboxes = store.list_mailboxes(account_id);
    if (!mailboxes) return mailboxes.error();
    for (const auto& mailbox : *mailboxes)
        if (mailbox.special_use == store::SpecialUse::junk) return std::optional<std::int64_t>(mailbox.id);
    return std::optional<std::int64_t>();
}

}  // namespace

Result<store::RecipientResult> resolve_recipient(store::Store& store, const RecipientPolicy& policy,
                                                 std::string_view address) {
    std::size_t at = address.rfind('@');
    if (at != std::string_view::npos) {
        auto resolved = store.resolve_recipient(address);
        if (!resolved || resolved->status == store::RecipientStatus::not_local_domain ||
            !is_postmaster(address.substr(0, at))) {
            return resolved;
        }
        return domain_postmaster(store, policy, to_lower(address.substr(at + 1)));
    }
    // RFC 5321 4.5.1: a bare "Postmaster" (any case, no domain) is this server's postmaster.
    if (!is_postmaster(address)) return store::RecipientResult{store::RecipientStatus::unknown_user, 0, {}};
    auto domains = store.list_domains();
    if (!domains) return domains.error();
    const std::string& host = policy.hostname;
    for (const auto& domain : *domains) {
        const std::string& name = domain.name;
        bool hosts_us =
            iequals(host, name) || (host.size() > name.size() && host[host.size() - name.size() - 1] == '.' &&
                                    iequals(std::string_view(host).substr(host.size() - name.size()), name));
        if (hosts_us) return domain_postmaster(store, policy, name);
    }
    if (!policy.postmaster.empty()) {
        auto account = store.find_account(policy.postmaster);
        if (account) return local(*account);
    }
    for (const auto& domain : *domains) {
        auto resolved = domain_postmaster(store, policy, domain.name);
        if (!resolved || resolved->status == store::RecipientStatus::local) return resolved;
    }
    return store::RecipientResult{store::RecipientStatus::unknown_user, 0, {}};
}

awaitable<smtp::RcptVerdict> SmtpService::check_recipient(const std::string& address, RcptMemos& memos) {
    // g++ 12 destroys temporaries inside a co_await expression twice: build the operation first, then await it.
    auto config = std::atomic_load(&config_);
    const std::int64_t now = steady_seconds();
    if (remembers_recipients_) {
        // A local recipient resolved a moment ago, and the directory has not changed since: no thread hop and
        // no look-up. The version is read here when that never waits (the embedded store; a WAL reader takes
        // no lock a writer holds), and the delivery checks it again in its own transaction.
        if (auto kept = recipients_.find(address, now)) {
            auto version = store_.directory_version_if_ready();
            if (version && *version == kept->directory_version) {
                if (memos.size() >= config->smtp.max_recipients) memos.clear();
                memos.insert_or_assign(address, *kept);
                co_return smtp::RcptVerdict::accept;
            }
            if (version) recipients_.saw_version(*version);
        }
    }
    auto lookup = executor_.run([this, address,
                                 policy = RecipientPolicy{config->hostname, config->smtp.postmaster}]()
                                    -> Result<RcptMemo> {
        // Read before the look-ups: a change made between them leaves the memo marked older than it is,
        // never newer. (Not where it would cost a round trip per RCPT and no memo is kept.)
        std::uint64_t version = 0;
        if (remembers_recipients_) {
            auto read = store_.directory_version();
            if (!read) return read.error();
            version = *read;
        }
        auto resolved = resolve_recipient(store_, policy, address);
        if (!resolved) return resolved.error();
        RcptMemo memo{*resolved, 0};
        memo.directory_version = version;
        if (resolved->status == store::RecipientStatus::local) {
            // Its INBOX, for the delivery (an account without one is left to store_message's own lookup).
            auto inbox = store_.find_mailbox(resolved->account_id, "INBOX");
            if (inbox) memo.inbox_id = inbox->id;
            if (!submission_) memo.vacation = vacation_may_be_on(store_, resolved->account_id);
        }
        return memo;
    });
    auto memo = co_await std::move(lookup);
    if (!memo) {
        spdlog::error("smtp: recipient lookup for <{}> failed: {}", address, memo.error().message);
        co_return smtp::RcptVerdict::temporary_failure;
    }
    const auto* result = &memo->recipient;
    const bool local = result->status == store::RecipientStatus::local;
    if ((local && memo->inbox_id != 0) ||
        (submission_ && result->status == store::RecipientStatus::not_local_domain)) {
        // Bounded by [smtp] max_recipients: transactions given up (RSET) leave theirs behind until then.
        if (memos.size() >= config->smtp.max_recipients) memos.clear();
        memos.insert_or_assign(address, *memo);
    }
    if (remembers_recipients_) {
        recipients_.saw_version(memo->directory_version);
        recipients_.remember(address, *memo, now);
    }
    switch (result->status) {
        case store::RecipientStatus::local: co_return smtp::RcptVerdict::accept;
        case store::RecipientStatus::unknown_user: co_return smtp::RcptVerdict::unknown_user;
        // Submission: an authenticated user may send anywhere (the queue delivers it).
        case store::RecipientStatus::not_local_domain:
            co_return submission_ ? smtp::RcptVerdict::accept : smtp::RcptVerdict::relay_denied;
    }
    co_return smtp::RcptVerdict::temporary_failure;
}

awaitable<Result<std::string>> SmtpService::store_message(const smtp::MessageReceived& message,
                                                          const net::Connection& connection,
                                                          const Config& config, const RcptMemos& memos) {
    const auto& envelope = message.envelope;
    std::string queue_id = new_queue_id();
    std::int64_t now = unix_now();

    // Issue 18: SPF, DKIM and DMARC of the message as it arrived, off the network threads; forged
    // Authentication-Results fields with our authserv-id go, ours goes on top (RFC 8601 5).
    std::optional<InboundDecision> decision;
    if (inbound_) {
        if (InboundAuthenticator::needs_dns(config)) {
            auto evaluation = inbound_executor_->run([this, &config, ip = connection.peer_ip(), helo = envelope.helo,
                                                      from = envelope.reverse_path, data = message.data] {
                return inbound_->evaluate(config, ip, helo, from, data);
            });
            decision = co_await std::move(evaluation);
        } else {
            // Nothing to look up: a scan of the header section, here rather than a copy of the message and
            // two thread hops (issue 17).
            decision = inbound_->evaluate(config, connection.peer_ip(), envelope.helo, envelope.reverse_path,
                                          message.data);
        }
        spdlog::info("smtp: {} from=<{}> peer={} {}", queue_id, envelope.reverse_path, connection.peer_ip(),
                     decision->summary);
        if (decision->action == InboundDecision::Action::reject) {
            spdlog::info("smtp: {} refused: {}", queue_id, decision->reason);
            co_return make_error(Errc::permission_denied, decision->reason);
        }
    }
    const bool junk = decision && decision->action == InboundDecision::Action::junk;
    if (junk) spdlog::info("smtp: {} to Junk: {}", queue_id, decision->reason);

    // The message as received, less any forged Authentication-Results field.
    const std::string_view received =
        decision && decision->rewritten ? std::string_view(decision->message) : std::string_view(message.data);
    // Trace fields go on top (RFC 5321 4.4); Return-Path is added at final delivery, which this is. Our
    // Authentication-Results sits right under our Received, where Postfix with a DMARC milter puts it.
    std::string trace = fmt::format("Return-Path: <{}>\r\n", envelope.reverse_path);
    trace += smtp::received_header(envelope, connection.peer_ip(), config.hostname, queue_id, now);
    if (decision) trace += decision->header;
    // Made again for a second attempt (the first one's went to the store).
    auto make_content = [&] {
        return smtp::delivered_message(trace, envelope, received,
                                       smtp::DeliveryStamp{config.hostname, queue_id, now,
                                                           add_missing_headers(config.smtp.add_missing_headers)});
    };
    std::string content = make_content();

    std::vector<std::string> recipients;
    for (const auto& r : envelope.recipients) recipients.push_back(r.address);

    // Recipients were checked at RCPT time, which found their accounts and INBOXes: each account gets the
    // message once however many of its addresses (aliases) were named. The delivery names the directory
    // version they were resolved at; if the directory changed since (an alias pointed elsewhere, an account
    // removed, a VacationResponse turned on), the store refuses it with Errc::conflict and the recipients are
    // resolved again here, as they are for mail for Junk or a recipient RCPT did not remember. A recipient
    // removed since RCPT then fails the message as a whole (451; the retry meets RCPT's 550).
    std::vector<std::pair<store::RecipientResult, std::string>> local_recipients;  // for vacation replies
    bool vacation = true;  // whether a recipient may have a VacationResponse on (unknown unless RCPT looked)
    Result<store::Delivered> delivered = make_error(Errc::internal, "not delivered");
    std::size_t size = content.size();
    for (bool use_memos = !junk;; use_memos = false) {
        local_recipients.clear();
        vacation = true;
        std::optional<std::vector<store::DeliveryTarget>> remembered;
        std::optional<std::uint64_t> resolved_at;
        if (use_memos) {
            remembered.emplace();
            vacation = false;
            std::set<std::int64_t> accounts;
            for (const auto& address : recipients) {
                auto memo = memos.find(address);
                if (memo == memos.end()) {
                    remembered.reset();
                    local_recipients.clear();
                    vacation = true;
                    break;
                }
                vacation = vacation || memo->second.vacation;
                // The oldest version of any of them: the store checks it is still the newest.
                if (remembers_recipients_ && (!resolved_at || memo->second.directory_version < *resolved_at))
                    resolved_at = memo->second.directory_version;
                local_recipients.emplace_back(memo->second.recipient, address);
                if (accounts.insert(memo->second.recipient.account_id).second)
                    remembered->push_back(store::DeliveryTarget{memo->second.inbox_id, {}});
            }
        }
        Result<std::vector<store::DeliveryTarget>> targets = std::vector<store::DeliveryTarget>();
        if (remembered) {
            targets = std::move(*remembered);
        } else {
            auto lookup =
                executor_.run([this, recipients, junk, &local_recipients,
                               policy = RecipientPolicy{config.hostname, config.smtp.postmaster}]()
                                  -> Result<std::vector<store::DeliveryTarget>> {
                    std::set<std::int64_t> accounts;
                    std::vector<store::DeliveryTarget> out;
                    for (const auto& address : recipients) {
                        auto resolved = resolve_recipient(store_, policy, address);
                        if (!resolved) return resolved.error();
                        // Accepted at RCPT, gone since: the whole message waits (451) rather than being
                        // acknowledged for a recipient it never reaches; the retry meets RCPT's 550.
                        if (resolved->status != store::RecipientStatus::local) {
                            return make_error(Errc::unavailable,
                                              fmt::format("<{}> no longer exists", address));
                        }
                        local_recipients.emplace_back(*resolved, address);
                        if (!accounts.insert(resolved->account_id).second) continue;
                        if (junk) {
                            auto junk_box = junk_mailbox(store_, resolved->account_id);
                            if (!junk_box) return junk_box.error();
                            if (*junk_box) {
                                out.push_back(store::DeliveryTarget{**junk_box, {}});
                                continue;
                            }
                        }
                        auto inbox = store_.find_mailbox(resolved->account_id, "INBOX");
                        if (!inbox) return inbox.error();
                        out.push_back(store::DeliveryTarget{inbox->id, {}});
                    }
                    return out;
                });
            targets = co_await std::move(lookup);
        }
        if (!targets) {
            spdlog::info("smtp: {} from=<{}> not stored: {}", queue_id, envelope.reverse_path, targets.error().message);
            co_return targets.error();
        }
        if (targets->empty()) co_return make_error(Errc::not_found, "no recipient exists any more");

        store::Delivery delivery;
        if (content.empty()) content = make_content();
        delivery.summary = store::summarize(content);
        delivery.content = std::move(content);
        content.clear();
        delivery.internal_date = now;
        delivery.targets = std::move(*targets);
        delivery.directory_version = resolved_at;
        // RFC 3461 5.2.2: a sender that asked for success notifications gets one once the queue exists; keep what
        // it needs (the envelope with its DSN parameters) beside the message, in the same commit.
        bool wants_success = false;
        for (const auto& r : envelope.recipients)
            wants_success = wants_success || to_upper(r.notify).find("SUCCESS") != std::string::npos;
        if (wants_success) {
            store::EnvelopeRecord record{envelope.reverse_path, envelope.dsn_ret, envelope.dsn_envid, {}};
            for (const auto& r : envelope.recipients) record.recipients.push_back({r.address, r.notify, r.orcpt});
            delivery.envelope = std::move(record);
        }
        auto commit = executor_.deliver(store_, std::move(delivery));
        delivered = co_await std::move(commit);
        if (resolved_at && !delivered && delivered.error().code == Errc::conflict) {
            spdlog::info("smtp: {} recipients resolved again: {}", queue_id, delivered.error().message);
            // What RCPT keeps from before that change is stale too.
            recipients_.saw_version(*resolved_at + 1);
            continue;
        }
        break;
    }
    if (!delivered) {
        spdlog::error("smtp: {} from=<{}> size={} not stored: {}", queue_id, envelope.reverse_path, size,
                      delivered.error().message);
        co_return delivered.error();
    }
    spdlog::info("smtp: {} from=<{}> to={} size={} peer={} stored blob={}", queue_id, envelope.reverse_path,
                 fmt::join(recipients, ","), size, connection.peer_ip(), delivered->blob_id.substr(0, 16));
    // RFC 3834 2: nothing answers a null reverse path, nor mail we filed as junk.
    if (auto_reply_signer_ && !junk && vacation && !envelope.reverse_path.empty()) {
        auto replying = send_auto_replies(received, envelope.reverse_path, std::move(local_recipients), config);
        co_await std::move(replying);
    }
    co_return queue_id;
}

awaitable<void> SmtpService::send_auto_replies(std::string_view message, const std::string& reverse_path,
                                               std::vector<std::pair<store::RecipientResult, std::string>> recipients,
                                               const Config& config) {
    auto signer = auto_reply_signer_();
    if (!signer) co_return;
    const std::int64_t now = unix_now();
    auto planning = executor_.run([this, message, &reverse_path, &recipients, &config, &signer, now] {
        return plan_vacation_replies(store_, RecipientPolicy{config.hostname, config.smtp.postmaster}, config.hostname,
                                     mail::Message::parse(message), reverse_path, recipients, *signer, now,
                                     config.smtp.vacation_max_senders);
    });
    auto replies = co_await std::move(planning);
    for (auto& reply : replies) {
        const bool queued = reply.delivery.outgoing.has_value();
        auto commit = executor_.deliver(store_, std::move(reply.delivery));
        auto delivered = co_await std::move(commit);
        if (!delivered) {
            spdlog::error("smtp: vacation reply from {} to <{}> not queued: {}", reply.from, reverse_path,
                          delivered.error().message);
            continue;
        }
        spdlog::info("smtp: vacation reply from {} to <{}> queue_entry={}", reply.from, reverse_path,
                     delivered->queue_id);
        if (queued && auto_reply_queued_) auto_reply_queued_();
    }
}

awaitable<void> SmtpService::serve(std::shared_ptr<net::Connection> connection) {
    auto config = std::atomic_load(&config_);
    const auto idle = std::chrono::seconds(config->smtp.idle_timeout);
    smtp::ServerSession session(session_config(*config, *connection, submission_.has_value()), connection->peer_ip(),
                                steady_now());
    std::optional<auth::SaslServer> sasl;  // the AUTH exchange under way, if any
    RcptMemos memos;                       // what RCPT learned in the transaction under way (port 25)
    // No read buffer here: this frame lives as long as the connection, and most of that time is spent waiting
    // for the client (read_available's buffer is the connection's, and unwritten until bytes arrive).
    std::string output;
    // Writes what the session has to say. (The output lives in a named variable: see store_executor.h.)
    auto flush = [&]() -> awaitable<bool> {
        output = session.take_output();
        return connection->write_all(output, idle);
    };

    for (;;) {
        // Answer every event the session raised, in order; each answer may release pipelined commands.
        while (auto event = session.poll_event()) {
            if (auto* rcpt = std::get_if<smtp::RcptCheck>(&*event)) {
                session.rcpt_checked(co_await check_recipient(rcpt->address, memos));
            } else if (auto* message = std::get_if<smtp::MessageReceived>(&*event)) {
                if (submission_) {
                    session.stored(co_await submit_message(*message, *connection, *config, memos));
                    memos.clear();
                } else {
                    session.stored(co_await store_message(*message, *connection, *config, memos));
                    memos.clear();
                }
            } else if (std::holds_alternative<smtp::AuthBegin>(*event) ||
                       std::holds_alternative<smtp::AuthResponse>(*event)) {
                session.auth_answered(co_await authenticate(sasl, *event, connection->peer_ip()));
            } else if (std::holds_alternative<smtp::StartTls>(*event)) {
                if (!co_await flush()) co_return;
                auto started = co_await connection->start_tls(idle);
                if (!started) {
                    spdlog::info("smtp: {}: {}", connection->peer_ip(), started.error().message);
                    co_return;  // the stream is in an unknown state: nothing more can be said on it
                }
                session.tls_started();
            } else if (std::holds_alternative<smtp::Close>(*event)) {
                co_await flush();
                co_return;
            }
        }
        if (!co_await flush()) co_return;
        // With every event answered the session consumes all it is fed, so it always wants input here
        // unless it has closed (then its Close event ended the loop above).
        if (!session.wants_input()) co_return;

        // One read waits at most idle_timeout, and never past the session's own deadline (a command line
        // or message content arriving too slowly, a transaction running too long).
        auto now = steady_now();
        auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(idle);
        if (auto deadline = session.input_deadline())
            wait = std::clamp(*deadline - now, smtp::Millis{0}, wait);
        std::string_view input = co_await connection->read_available(wait);
        if (input.empty()) {
            if (connection->shutdown_requested()) {
                session.shutting_down();
            } else if (connection->timed_out()) {
                session.timed_out(steady_now());
            } else {
                co_return;  // the client went away
            }
            co_await flush();
            co_return;
        }
        session.feed(input, steady_now());  // `input` lasts until the next read
    }
}

awaitable<smtp::AuthAnswer> SmtpService::authenticate(std::optional<auth::SaslServer>& sasl, const smtp::Event& event,
                                                      const std::string& peer_ip) {
    using Kind = smtp::AuthAnswer::Kind;
    auto& services = *submission_;
    auth::SaslOutcome outcome;
    if (const auto* begin = std::get_if<smtp::AuthBegin>(&event)) {
        auto created = auth::SaslServer::create(begin->mechanism);
        if (!created) co_return smtp::AuthAnswer{Kind::unsupported, {}, {}, {}};
        sasl.emplace(std::move(*created));
        outcome = sasl->start_encoded(begin->initial_response);
    } else {
        if (!sasl) co_return smtp::AuthAnswer{Kind::malformed, {}, {}, {}};
        outcome = sasl->step_encoded(std::get<smtp::AuthResponse>(event).line);
    }
    // Password checks (argon2id, ~90 ms) and SCRAM key lookups run on the login pool, never here.
    bool checked = false;
    if (outcome.kind == auth::SaslOutcome::Kind::verify_password ||
        outcome.kind == auth::SaslOutcome::Kind::need_scram_credentials) {
        checked = true;
        auto check = services.login_executor.run([this, &services, &sasl, request = outcome, peer_ip] {
            return auth::answer_sasl_request(store_, services.hash_limiter, services.throttle, *sasl, request, peer_ip,
                                             unix_now(), services.verified_cache);
        });
        outcome = co_await std::move(check);
    }
    switch (outcome.kind) {
        case auth::SaslOutcome::Kind::challenge:
            co_return smtp::AuthAnswer{Kind::challenge, auth::encode_sasl_base64(outcome.data), {}, {}};
        case auth::SaslOutcome::Kind::success: {
            // With shared counters (PostgreSQL) the throttle asks the store: on the login pool, never here.
            auto record = services.login_executor.run([&services, &sasl, &outcome, peer_ip] {
                auth::record_sasl_result(services.throttle, *sasl, outcome, peer_ip, unix_now());
                return true;
            });
            co_await std::move(record);
            sasl.reset();
            auto lookup = services.login_executor.run([this, user = outcome.authcid] {
                auto account = store_.find_account(user);
                if (!account) return Result<std::pair<std::string, std::vector<std::string>>>(account.error());
                auto addresses = store::sender_addresses(store_, account->address);
                if (!addresses) return Result<std::pair<std::string, std::vector<std::string>>>(addresses.error());
                return Result<std::pair<std::string, std::vector<std::string>>>(
                    std::make_pair(account->address, std::move(*addresses)));
            });
            auto found = co_await std::move(lookup);
            if (!found) {
                spdlog::error("submission: {}: account lookup after login failed: {}", peer_ip, found.error().message);
                co_return smtp::AuthAnswer{Kind::temporary, {}, {}, {}};
            }
            spdlog::info("submission: {} authenticated as {}", peer_ip, found->first);
            co_return smtp::AuthAnswer{Kind::success, {}, found->first, std::move(found->second)};
        }
        default: break;
    }
    // A failure (never with the password in the log).
    auto record = services.login_executor.run([&services, &sasl, &outcome, peer_ip] {
        auth::record_sasl_result(services.throttle, *sasl, outcome, peer_ip, unix_now());
        return true;
    });
    co_await std::move(record);
    sasl.reset();
    const Error& error = outcome.error;
    spdlog::info("submission: {}: authentication failed{}: {}", peer_ip,
                 outcome.authcid.empty() ? std::string() : " for " + outcome.authcid, error.message);
    switch (error.code) {
        case Errc::auth_failed:
        case Errc::permission_denied:
        case Errc::not_found: co_return smtp::AuthAnswer{Kind::failed, {}, {}, {}};
        case Errc::invalid_argument:
            co_return smtp::AuthAnswer{error.message == "authentication cancelled" ? Kind::cancelled : Kind::malformed,
                                       {},
                                       {},
                                       {}};
        // Before a check, limit_exceeded is an over-long response; from the check it is the throttle.
        case Errc::limit_exceeded:
            co_return smtp::AuthAnswer{checked ? Kind::temporary : Kind::too_long, {}, {}, {}};
        default: co_return smtp::AuthAnswer{Kind::temporary, {}, {}, {}};
    }
}

awaitable<Result<std::string>> SmtpService::submit_message(const smtp::MessageReceived& message,
                                                           const net::Connection& connection, const Config& config,
                                                           const RcptMemos& memos) {
    const auto& envelope = message.envelope;
    auto& services = *submission_;
    std::string queue_id = new_queue_id();
    std::int64_t now = unix_now();

    // RFC 6409 8: complete the message (From checked by the session; Date, Message-ID, To when missing; Bcc
    // out), put the Received field on top and sign it: the one preparation JMAP's EmailSubmission shares.
    std::string sender_domain = envelope.reverse_path.substr(envelope.reverse_path.rfind('@') + 1);
    auto signer = services.dkim_signer();
    delivery::OutgoingDraft draft{message.data,
                                  smtp::received_header(envelope, connection.peer_ip(), config.hostname, queue_id, now),
                                  envelope.smtputf8, sender_domain.empty() ? config.hostname : sender_domain, now,
                                  queue_id};
    // Signing (RSA-2048 and Ed25519, about a third of a submission's CPU) runs on the store pool, never on a
    // network thread, where it would hold up every other connection of that thread.
    auto prepare = executor_.run([&draft, &signer] { return delivery::prepare_outgoing_message(draft, *signer); });
    auto prepared = co_await std::move(prepare);
    if (!prepared) co_return make_error(Errc::invalid_argument, prepared.error().message);
    const std::string& outgoing = *prepared;

    // Local recipients go straight to their INBOXes, the rest to the outgoing queue.
    std::vector<std::string> recipients;
    for (const auto& r : envelope.recipients) recipients.push_back(r.address);
    struct Plan {
        std::vector<store::DeliveryTarget> local;
        std::vector<store::EnvelopeRecipient> remote;
    };
    // RCPT resolved every recipient (and found the local ones' INBOXes): used as found then, as on port 25
    // (store_message). A recipient it did not remember is resolved again here.
    const bool remembered = std::ranges::all_of(envelope.recipients, [&](const smtp::Recipient& r) {
        return memos.contains(r.address);
    });
    auto plan_recipients = [this, &envelope, save_sent = config.submission.save_sent, remembered, &memos,
                            policy = RecipientPolicy{config.hostname, config.smtp.postmaster}]() -> Result<Plan> {
        Plan plan;
        std::set<std::int64_t> accounts;
        for (const auto& r : envelope.recipients) {
            if (remembered) {
                const RcptMemo& memo = memos.find(r.address)->second;
                if (memo.recipient.status == store::RecipientStatus::not_local_domain) {
                    plan.remote.push_back(store::EnvelopeRecipient{r.address, r.notify, r.orcpt});
                } else if (accounts.insert(memo.recipient.account_id).second) {
                    plan.local.push_back(store::DeliveryTarget{memo.inbox_id, {}});
                }
                continue;
            }
            auto resolved = resolve_recipient(store_, policy, r.address);
            if (!resolved) return resolved.error();
            if (resolved->status == store::RecipientStatus::not_local_domain) {
                plan.remote.push_back(store::EnvelopeRecipient{r.address, r.notify, r.orcpt});
                continue;
            }
            if (resolved->status != store::RecipientStatus::local) continue;  // removed since RCPT
            if (!accounts.insert(resolved->account_id).second) continue;
            auto inbox = store_.find_mailbox(resolved->account_id, "INBOX");
            if (!inbox) return inbox.error();
            plan.local.push_back(store::DeliveryTarget{inbox->id, {}});
        }
        if (save_sent) {
            auto account = store_.find_account(envelope.auth_user);
            if (!account) return account.error();
            auto mailboxes = store_.list_mailboxes(account->id);
            if (!mailboxes) return mailboxes.error();
            for (const auto& mailbox : *mailboxes) {
                if (mailbox.special_use != store::SpecialUse::sent) continue;
                // \Seen: the user wrote it.
                plan.local.push_back(store::DeliveryTarget{mailbox.id, {"\\Seen"}});
                break;
            }
        }
        return plan;
    };
    // Without a store read to make, no thread hop either.
    Result<Plan> plan = Plan{};
    if (remembered && !config.submission.save_sent) {
        plan = plan_recipients();
    } else {
        auto lookup = executor_.run(plan_recipients);
        plan = co_await std::move(lookup);
    }
    if (!plan) co_return plan.error();
    if (plan->local.empty() && plan->remote.empty()) co_return make_error(Errc::not_found, "no recipient exists any more");

    // One delivery, one transaction: the local copies and the queue entry share one blob and commit together,
    // and the 250 waits for that commit. The local copies carry a Return-Path (RFC 5321 4.4: final delivery
    // adds it) that the queue leaves out (send_offset).
    store::Delivery delivery;
    std::string return_path;
    if (!plan->local.empty()) return_path = fmt::format("Return-Path: <{}>\r\n", envelope.reverse_path);
    delivery.content = return_path + outgoing;
    delivery.summary = store::summarize(delivery.content);
    delivery.internal_date = now;
    delivery.targets = std::move(plan->local);
    const bool remote = !plan->remote.empty();
    if (remote) {
        store::OutgoingMessage queued;
        queued.reverse_path = envelope.reverse_path;
        queued.dsn_ret = envelope.dsn_ret;
        queued.dsn_envid = envelope.dsn_envid;
        queued.smtputf8 = envelope.smtputf8;
        queued.queued_at = now;
        queued.first_attempt_at = now;
        queued.send_offset = return_path.size();
        queued.recipients = std::move(plan->remote);
        delivery.outgoing = std::move(queued);
    }
    auto commit = executor_.deliver(store_, std::move(delivery));
    auto delivered = co_await std::move(commit);
    if (!delivered) {
        spdlog::error("submission: {} from=<{}> not stored: {}", queue_id, envelope.reverse_path,
                      delivered.error().message);
        co_return delivered.error();
    }
    const std::int64_t entry_id = delivered->queue_id;
    if (remote && services.queue_changed) services.queue_changed();
    spdlog::info("submission: {} user={} from=<{}> to={} size={} peer={} queue_entry={}", queue_id,
                 envelope.auth_user, envelope.reverse_path, fmt::join(recipients, ","), outgoing.size(),
                 connection.peer_ip(), entry_id);
    co_return queue_id;
}

}  // namespace magpie::server
