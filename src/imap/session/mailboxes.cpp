// Mailbox management over the account's own mailboxes: CREATE, DELETE, RENAME, SUBSCRIBE, LIST (with
// LIST-EXTENDED, LIST-STATUS, SPECIAL-USE), LSUB, STATUS, APPEND and QUOTA (RFC 9051 6.3, RFC 5258,
// RFC 5819, RFC 6154, RFC 4315, RFC 7889, RFC 9208). Every store call names account_->id, so no mailbox
// name can reach another account's mail.
#include <fmt/format.h>

#include <algorithm>
#include <future>
#include <map>
#include <set>

#include "base/strings.h"
#include "imap/session/session.h"
#include "imap/session/spool_sink.h"
#include "imap/session/support.h"
#include "mail/builder.h"
#include "mail/downgrade.h"
#include "store/flags.h"
#include "store/object_id.h"
#include "store/summary.h"

namespace magpie::imap {
namespace {

using namespace session_support;

// The store's own bound on names (SqliteOptions::max_mailbox_name_bytes) is the same.
constexpr std::size_t kMaxMailboxNameOctets = 1024;

std::string_view status_item_name(StatusItem item) {
    switch (item) {
        case StatusItem::messages:
            return "MESSAGES";
        case StatusItem::recent:
            return "RECENT";
        case StatusItem::uid_next:
            return "UIDNEXT";
        case StatusItem::uid_validity:
            return "UIDVALIDITY";
        case StatusItem::unseen:
            return "UNSEEN";
        case StatusItem::deleted:
            return "DELETED";
        case StatusItem::size:
            return "SIZE";
        case StatusItem::highest_mod_seq:
            return "HIGHESTMODSEQ";
        case StatusItem::append_limit:
            return "APPENDLIMIT";
        case StatusItem::deleted_storage:
            return "DELETED-STORAGE";
        case StatusItem::mailbox_id:
            return "MAILBOXID";
    }
    return {};
}

}  // namespace

void Session::on_create(const std::string& tag, const Create& command) {
    std::string name = canonical_mailbox(command.mailbox);
    // RFC 9051 6.3.4: a trailing delimiter only says the client intends to create children.
    if (!name.empty() && name.back() == '/') name.pop_back();
    if (name == "INBOX") {
        reply(tag, StatusKind::no, "ALREADYEXISTS", "INBOX always exists");
        return;
    }
    if (!valid_mailbox_name(name, kMaxMailboxNameOctets)) {
        reply(tag, StatusKind::no, "CANNOT", "Invalid mailbox name");
        return;
    }
    if (!command.special_use.empty()) {
        reply(tag, StatusKind::no, "USEATTR", "Special-use attributes cannot be set");
        return;
    }
    // RFC 9051 6.3.4: superiors needed to place the new name are created too (by the request).
    ask(request::CreateMailbox{account_->id, name}, [this, tag](Result<store::Mailbox> created) {
        if (!created) {
            reply_store_error(tag, created.error());
            return;
        }
        // RFC 8474 4.1: the new mailbox's id in the tagged OK.
        reply(tag, StatusKind::ok, fmt::format("MAILBOXID ({})", store::mailbox_object_id(created->id)),
              "CREATE completed");
    });
}

void Session::on_delete(const std::string& tag, const Delete& command) {
    const std::string name = canonical_mailbox(command.mailbox);
    if (name == "INBOX") {
        reply(tag, StatusKind::no, "CANNOT", "INBOX cannot be deleted");
        return;
    }
    if (view_ && view_->mailbox.name == name) {
        reply(tag, StatusKind::no, "INUSE", "Close the mailbox before deleting it");
        return;
    }
    ask(request::DeleteMailbox{account_->id, name}, [this, tag](Result<request::DeleteMailbox::Answer> deleted) {
        if (!deleted) {
            reply_store_error(tag, deleted.error());
            return;
        }
        reply(tag, StatusKind::ok, "", "DELETE completed");
    });
}

void Session::on_rename(const std::string& tag, const Rename& command) {
    const std::string from = canonical_mailbox(command.from);
    std::string to = canonical_mailbox(command.to);
    if (!to.empty() && to.back() == '/') to.pop_back();
    if (to == "INBOX") {
        reply(tag, StatusKind::no, "ALREADYEXISTS", "INBOX always exists");
        return;
    }
    if (!valid_mailbox_name(to, kMaxMailboxNameOctets)) {
        reply(tag, StatusKind::no, "CANNOT", "Invalid mailbox name");
        return;
    }
    if (to.starts_with(from + "/")) {
        reply(tag, StatusKind::no, "CANNOT", "A mailbox cannot become its own child");
        return;
    }
    ask(request::RenameMailbox{account_->id, from, to}, [this, tag](Result<request::RenameMailbox::Answer> renamed) {
        if (!renamed) {
            if (renamed.error().code == Errc::already_exists)
                reply(tag, StatusKind::no, "ALREADYEXISTS", "Target mailbox already exists");
            else
                reply_store_error(tag, renamed.error());
            return;
        }
        reply(tag, StatusKind::ok, "", "RENAME completed");
    });
}

void Session::on_subscribe(const std::string& tag, const std::string& mailbox, bool subscribe) {
    ask(request::SetSubscribed{account_->id, canonical_mailbox(mailbox), subscribe},
        [this, tag, subscribe](Result<request::SetSubscribed::Answer> result) {
            // Unsubscribing a name that is not subscribed leaves things as asked: OK (Dovecot answers the same).
            if (!result && !(!subscribe && result.error().code == Errc::not_found)) {
                reply_store_error(tag, result.error());
                return;
            }
            reply(tag, StatusKind::ok, "", subscribe ? "SUBSCRIBE completed" : "UNSUBSCRIBE completed");
        });
}

void Session::on_list(const std::string& tag, const List& command) {
    // RFC 9051 6.3.9: an empty pattern asks for the hierarchy delimiter and root.
    if (command.patterns.size() == 1 && command.patterns[0].empty() && !command.extended) {
        output_ += "* LIST (\\Noselect) \"/\" \"\"\r\n";
        reply(tag, StatusKind::ok, "", "LIST completed");
        return;
    }
    // Subscriptions are the client's names (RFC 3501 6.3.6): some name no mailbox any more.
    const bool subscriptions = command.selection.subscribed || command.returns.subscribed;
    ask(request::ListMailboxes{account_->id, subscriptions, command.returns.status.has_value()},
        [this, tag, command](Result<request::ListMailboxes::Answer> listed) {
            if (!listed) {
                reply_store_error(tag, listed.error());
                return;
            }
            write_list(tag, command, *listed);
        });
}

void Session::write_list(const std::string& tag, const List& command, request::ListMailboxes::Answer& listed) {
    const auto& selection = command.selection;
    const auto& returns = command.returns;
    const std::set<std::string> subscriptions(listed.subscriptions.begin(), listed.subscriptions.end());
    std::map<std::string, std::size_t> existing;  // name -> index in listed.mailboxes
    for (std::size_t i = 0; i < listed.mailboxes.size(); ++i) existing[listed.mailboxes[i].name] = i;
    std::set<std::string> names;  // real mailboxes and the parents their names imply
    for (const auto& [name, mailbox] : existing) {
        names.insert(name);
        for (auto& parent : parents_of(name)) names.insert(std::move(parent));
    }
    const std::set<std::string> hierarchy = names;  // what \HasChildren looks at: mailboxes, not names
    if (selection.subscribed) {
        // RFC 5258 3.1: LIST (SUBSCRIBED) lists subscribed names whether or not they exist (\NonExistent),
        // and with RECURSIVEMATCH the parents of subscribed names (CHILDINFO).
        for (const auto& name : subscriptions) {
            names.insert(name);
            if (selection.recursive_match)
                for (auto& parent : parents_of(name)) names.insert(std::move(parent));
        }
    }
    auto has_children = [&](const std::string& name) {
        auto lower = hierarchy.lower_bound(name + "/");
        return lower != hierarchy.end() && lower->starts_with(name + "/");
    };
    auto subscribed_child = [&](const std::string& name) {
        auto lower = subscriptions.lower_bound(name + "/");
        return lower != subscriptions.end() && lower->starts_with(name + "/");
    };
    auto listed_by_pattern = [&](const std::string& name) {
        return std::ranges::any_of(command.patterns, [&](const std::string& pattern) {
            return list_match(canonical_mailbox(command.reference + pattern), name);
        });
    };
    // RFC 5258 3.5: a parent that does not meet the selection itself is listed (with CHILDINFO) only for a
    // child that does and that no pattern lists; one whose children are all listed anyway is left out.
    auto unlisted_subscribed_child = [&](const std::string& name) {
        for (auto it = subscriptions.lower_bound(name + "/"); it != subscriptions.end() && it->starts_with(name + "/");
             ++it) {
            if (!listed_by_pattern(*it)) return true;
        }
        return false;
    };
    for (const auto& name : names) {
        if (!listed_by_pattern(name)) continue;
        auto it = existing.find(name);
        const store::Mailbox* mailbox = it == existing.end() ? nullptr : &listed.mailboxes[it->second];
        const bool subscribed = subscriptions.contains(name);
        // RFC 5258 3.5: RECURSIVEMATCH marks (and lists, when not subscribed itself) a mailbox whose
        // children are subscribed, with CHILDINFO.
        const bool child_info = selection.subscribed && selection.recursive_match && subscribed_child(name);
        if (selection.subscribed && !subscribed && (!child_info || !unlisted_subscribed_child(name))) continue;
        if (selection.special_use && (!mailbox || mailbox->special_use == store::SpecialUse::none)) continue;

        ResponseWriter w = writer();
        w.untagged().atom("LIST").open_list();
        const bool in_hierarchy = hierarchy.contains(name);
        if (!mailbox) w.atom(command.extended || !in_hierarchy ? "\\NonExistent" : "\\Noselect");
        // A name only subscribed is no node of the hierarchy: it has no children to speak of (Dovecot).
        if (in_hierarchy || has_children(name))
            w.atom(has_children(name) ? "\\HasChildren" : "\\HasNoChildren");
        if (subscribed && (returns.subscribed || selection.subscribed)) w.atom("\\Subscribed");
        if (mailbox && mailbox->special_use != store::SpecialUse::none)
            w.atom(special_use_attribute(mailbox->special_use));
        w.close_list().string("/").mailbox(name);
        if (child_info)
            w.open_list().string("CHILDINFO").open_list().string("SUBSCRIBED").close_list().close_list();
        w.end();
        emit(w);
        // RFC 5819: STATUS right after its LIST, for selectable mailboxes only.
        if (returns.status && mailbox) {
            const auto& status = listed.statuses.at(it->second);
            if (!status) {
                reply(tag, StatusKind::no, "UNAVAILABLE", "Could not read mailbox status");
                return;
            }
            write_status(*mailbox, *status, *returns.status);
        }
    }
    reply(tag, StatusKind::ok, "", "LIST completed");
}

void Session::on_lsub(const std::string& tag, const Lsub& command) {
    ask(request::ListSubscriptions{account_->id}, [this, tag, command](Result<std::vector<std::string>> listed) {
        if (!listed) {
            reply_store_error(tag, listed.error());
            return;
        }
        write_lsub(tag, command, *listed);
    });
}

void Session::write_lsub(const std::string& tag, const Lsub& command, const std::vector<std::string>& subscriptions) {
    const std::string pattern = canonical_mailbox(command.reference + command.pattern);
    // RFC 3501 6.3.9: every subscribed name that matches, existing or not; and where "%" matches an
    // unsubscribed parent of a subscribed name the pattern does not reach, that parent with \Noselect.
    std::map<std::string, bool> listed;  // name -> subscribed itself
    if (!command.matches_nothing) {
        const std::set<std::string> subscribed(subscriptions.begin(), subscriptions.end());
        for (const auto& name : subscribed) {
            if (list_match(pattern, name)) {
                listed[name] = true;
                continue;
            }
            for (const auto& parent : parents_of(name))
                if (!subscribed.contains(parent) && list_match(pattern, parent))
                    listed.emplace(parent, false);
        }
    }
    for (const auto& [name, subscribed] : listed) {
        ResponseWriter w = writer();
        w.untagged().atom("LSUB").open_list();
        if (!subscribed) w.atom("\\Noselect");
        w.close_list().string("/").mailbox(name).end();
        emit(w);
    }
    reply(tag, StatusKind::ok, "", "LSUB completed");
}

void Session::write_status(const store::Mailbox& mailbox, const store::MailboxStatus& counters,
                           const std::vector<StatusItem>& items) {
    const store::MailboxStatus* status = &counters;
    std::uint64_t recent_count = status->recent;
    if (view_ && view_->mailbox.id == mailbox.id) {
        // This session claimed the selected mailbox's recent messages: they are recent to it (Dovecot too).
        recent_count = static_cast<std::uint64_t>(
            std::ranges::count_if(view_->messages, [](const ViewMessage& m) { return m.recent; }));
    }
    ResponseWriter w = writer();
    w.untagged().atom("STATUS").mailbox(mailbox.name).open_list();
    for (StatusItem item : items) {
        if (item == StatusItem::recent && rev2_) continue;
        w.atom(status_item_name(item));
        switch (item) {
            case StatusItem::messages:
                w.number(status->messages);
                break;
            case StatusItem::recent:
                w.number(recent_count);
                break;
            case StatusItem::uid_next:
                w.number(status->uidnext);
                break;
            case StatusItem::uid_validity:
                w.number(status->uidvalidity);
                break;
            case StatusItem::unseen:
                w.number(status->unseen);
                break;
            case StatusItem::deleted:
                w.number(status->deleted);
                break;
            case StatusItem::size:
                w.number(status->size);
                break;
            case StatusItem::highest_mod_seq:
                w.number(status->highest_modseq);
                break;
            case StatusItem::append_limit:
                w.number(parser_.limits().max_literal_octets);
                break;
            // RFC 9208 5.3: in units of 1024 octets.
            case StatusItem::deleted_storage:
                w.number((status->deleted_size + 1023) / 1024);
                break;
            case StatusItem::mailbox_id:  // RFC 8474 4.2
                w.open_list().atom(store::mailbox_object_id(mailbox.id)).close_list();
                break;
        }
    }
    w.close_list().end();
    emit(w);
}

void Session::on_status(const std::string& tag, const Status& command) {
    ask(request::MailboxStatus{account_->id, canonical_mailbox(command.mailbox)},
        [this, tag, items = command.items](Result<request::MailboxStatus::Answer> status) {
            if (!status) {
                reply_store_error(tag, status.error());
                return;
            }
            write_status(status->mailbox, status->status, items);
            reply(tag, StatusKind::ok, "", "STATUS completed");
        });
}

void Session::on_append(const std::string& tag, Append& command) {
    std::vector<std::string> flags;
    for (const auto& flag : command.flags)
        if (!iequals(flag, "\\Recent")) flags.push_back(flag);
    if (auto parsed = store::parse_flags(flags, store::FlagLimits{}); !parsed) {
        reply(tag, StatusKind::bad, "", parsed.error().message);
        return;
    }
    command.flags = std::move(flags);
    auto taken = std::make_shared<Append>(std::move(command));  // the message (or its spool) goes along
    ask(request::MailboxUsage{account_->id, canonical_mailbox(taken->mailbox), config_.quota_storage_kib > 0},
        [this, tag, taken](Result<request::MailboxUsage::Answer> target) {
            if (!target) {
                // RFC 9051 6.3.12: TRYCREATE tells the client that CREATE would help.
                if (target.error().code == Errc::not_found)
                    reply(tag, StatusKind::no, "TRYCREATE", "No such mailbox");
                else
                    reply_store_error(tag, target.error());
                return;
            }
            append_to(tag, *taken, *target->mailbox, target->used_octets);
        });
}

void Session::append_to(const std::string& tag, Append& command, const store::Mailbox& mailbox,
                        std::uint64_t used_octets) {
    store::Delivery delivery;
    // A large literal was spooled as it arrived (spool_sink.h, bare LFs already CRLF): the store makes the
    // spool file the blob, and parse-once reads it mapped, so the message is never held whole in memory.
    if (command.spooled) {
        auto* sink = dynamic_cast<SpoolSink*>(command.spooled.get());
        Result<std::unique_ptr<store::BlobSpool>> spool = make_error(Errc::internal, "not this session's spool");
        if (sink != nullptr) spool = sink->finish();
        command.spooled.reset();
        if (!spool) {
            reply_store_error(tag, spool.error());
            return;
        }
        if (command.binary) {
            // A literal8's binary parts become base64 (RFC 3516 4.4, as below), streamed from the mapped spool
            // into a second one with bare LFs made CRLF on the way: never held whole in memory either.
            auto reencoded = reencode_spooled(**spool);
            if (!reencoded) {
                reply_store_error(tag, reencoded.error());
                return;
            }
            delivery.spooled = std::move(*reencoded);
        } else {
            delivery.spooled = std::move(*spool);
        }
    }
    if (!delivery.spooled) {
        // The literal moves into the delivery (no copy of a large message).
        delivery.content = std::move(command.message);
        // A literal8's binary parts become base64 before they are stored (RFC 3516 4.4; as Dovecot does), so
        // that no later {n} literal of this message carries a NUL and BODYSTRUCTURE describes the stored bytes.
        if (command.binary) {
            auto reencoded = mail::reencode_binary_parts(delivery.content);
            if (reencoded) delivery.content = std::move(*reencoded);
        }
        // Messages are CRLF text (RFC 5322 2.1; RFC 9051 counts RFC822.SIZE in CRLF octets): a bare LF becomes
        // CRLF when stored, as Dovecot serves such an APPEND (the oracle of tests/e2e/test_dovecot_diff.py), so
        // sizes, sections and BODYSTRUCTURE line counts agree for every client. A lone CR stays, as Dovecot
        // keeps it (and it would be data in a part labelled binary).
        if (mail::has_bare_lf(delivery.content)) delivery.content = mail::bare_lf_to_crlf(delivery.content);
    }
    const std::uint64_t size = delivery.spooled ? delivery.spooled->size() : delivery.content.size();
    if (!quota_allows(used_octets, size)) {
        reply(tag, StatusKind::no, "OVERQUOTA", "The mailbox quota would be exceeded");
        return;
    }
    delivery.internal_date = command.internal_date ? command.internal_date->unix_seconds : 0;
    delivery.targets.push_back(store::DeliveryTarget{mailbox.id, std::move(command.flags)});
    if (delivery.spooled) {
        auto mapped = delivery.spooled->map();
        if (!mapped) {
            reply_store_error(tag, mapped.error());
            return;
        }
        delivery.summary = store::summarize(*mapped);
        delivery.spooled->unmap();  // the store's blob writer takes the spool from here
    } else {
        delivery.summary = store::summarize(delivery.content);
    }
    // Durable before acknowledged: the OK waits for the group commit, which answers the request.
    ask(request::Deliver{std::move(delivery)},
        [this, tag, uidvalidity = mailbox.uidvalidity](Result<store::Delivered> delivered) {
            if (!delivered) {
                if (delivered.error().code == Errc::limit_exceeded)
                    reply(tag, StatusKind::no, "TOOBIG", delivered.error().message);
                else
                    reply_store_error(tag, delivered.error());
                return;
            }
            const auto uid = delivered->placed.empty() ? 0u : delivered->placed.front().uid;
            reply(tag, StatusKind::ok, appenduid_code(uidvalidity, SequenceSet::from_numbers({uid})),
                  "APPEND completed");
        });
}

Result<std::unique_ptr<store::BlobSpool>> Session::reencode_spooled(store::BlobSpool& literal8) {
    auto mapped = literal8.map();
    if (!mapped) return mapped.error();
    if (!open_spool_) {
        literal8.unmap();
        return make_error(Errc::unavailable, "no spool");
    }
    auto target = open_spool_();
    if (!target) {
        literal8.unmap();
        return target.error();
    }
    SpoolSink sink(std::move(*target), /*binary=*/false);
    mail::reencode_binary_parts(*mapped, [&](std::string_view piece) { sink.write(piece); });
    literal8.unmap();
    return sink.finish();
}

bool Session::quota_allows(std::uint64_t used_octets, std::uint64_t extra_octets) const {
    if (config_.quota_storage_kib == 0) return true;
    return (used_octets + extra_octets + 1023) / 1024 <= config_.quota_storage_kib;
}

void Session::on_get_quota_root(const std::string& tag, const GetQuotaRoot& command) {
    const std::string name = canonical_mailbox(command.mailbox);
    const bool quota = config_.quota_storage_kib > 0;
    ask(request::MailboxUsage{account_->id, name, quota},
        [this, tag, name, quota](Result<request::MailboxUsage::Answer> usage) {
            if (!usage) {
                reply_store_error(tag, usage.error());
                return;
            }
            ResponseWriter w = writer();
            w.untagged().atom("QUOTAROOT").mailbox(name);
            if (quota) w.string("");
            w.end();
            emit(w);
            if (quota)
                write_quota(tag, usage->used_octets, "GETQUOTA completed");
            else
                reply(tag, StatusKind::ok, "", "GETQUOTAROOT completed");
        });
}

void Session::on_get_quota(const std::string& tag, const GetQuota& command) {
    if (config_.quota_storage_kib == 0 || !command.root.empty()) {
        reply(tag, StatusKind::no, "NONEXISTENT", "No such quota root");
        return;
    }
    ask(request::MailboxUsage{account_->id, std::nullopt, true}, [this, tag](Result<request::MailboxUsage::Answer> usage) {
        if (!usage) {
            reply_store_error(tag, usage.error());
            return;
        }
        write_quota(tag, usage->used_octets, "GETQUOTA completed");
    });
}

void Session::write_quota(const std::string& tag, std::uint64_t octets, std::string_view completed) {
    ResponseWriter w = writer();
    w.untagged().atom("QUOTA").string("").open_list().atom("STORAGE").number((octets + 1023) / 1024);
    w.number(config_.quota_storage_kib).close_list().end();
    emit(w);
    reply(tag, StatusKind::ok, "", completed);
}

}  // namespace magpie::imap
