// Commands on the selected mailbox's messages: FETCH (from the stored structure and blob byte ranges),
// STORE, COPY / MOVE (UIDPLUS COPYUID) and EXPUNGE, with their UID forms and the CONDSTORE / QRESYNC
// modifiers (RFC 9051 6.4, RFC 3516, RFC 4315, RFC 6851, RFC 7162).
#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "base/strings.h"
#include "imap/session/session.h"
#include "imap/session/support.h"
#include "mail/imap_view.h"
#include "mail/mime.h"
#include "mail/structure.h"
#include "store/object_id.h"

namespace magpie::imap {
namespace {

using namespace session_support;

// Whole rows (summary, structure) are read for the UIDs a FETCH names, this many per store call: one
// round trip per batch, never one per message nor the whole mailbox, and memory bounded by the batch.
constexpr std::size_t kRowBatch = 256;

bool needs_message_row(const FetchItem& item) {
    using K = FetchItem::Kind;
    return item.kind != K::uid && item.kind != K::flags && item.kind != K::mod_seq;  // EMAILID, THREADID: rows
}

// RFC 9051 6.4.5: BODY[...] (not PEEK), BINARY[...] and RFC822 / RFC822.TEXT set \Seen.
bool sets_seen(const FetchItem& item) {
    using K = FetchItem::Kind;
    if (item.kind == K::rfc822 || item.kind == K::rfc822_text) return true;
    return (item.kind == K::body_section || item.kind == K::binary) && !item.peek;
}

mail::SectionSpec to_spec(const Section& section) {
    mail::SectionSpec spec;
    spec.part = section.part;
    spec.fields = section.fields;
    switch (section.text) {
        case Section::Text::none:
            spec.text = mail::SectionSpec::Text::none;
            break;
        case Section::Text::header:
            spec.text = mail::SectionSpec::Text::header;
            break;
        case Section::Text::header_fields:
            spec.text = mail::SectionSpec::Text::header_fields;
            break;
        case Section::Text::header_fields_not:
            spec.text = mail::SectionSpec::Text::header_fields_not;
            break;
        case Section::Text::text:
            spec.text = mail::SectionSpec::Text::text;
            break;
        case Section::Text::mime:
            spec.text = mail::SectionSpec::Text::mime;
            break;
    }
    return spec;
}

// BINARY[part] (RFC 3516 4.1, RFC 9051 6.4.5). An empty section is the whole message, and a part that is
// no leaf (a multipart) is its octets as BODY[part] gives them: a multipart's own transfer encoding is
// always an identity one (RFC 2046 5.1), and the parts inside keep theirs. A part that does not exist is
// the empty string (as BODY[] answers, and Dovecot). Only a leaf is decoded; an unknown encoding is the
// error the reply turns into NO [UNKNOWN-CTE].
Result<std::string> binary_section(std::span<const mail::Part> parts, std::string_view message,
                                   const std::vector<std::uint32_t>& numbers) {
    if (numbers.empty()) return std::string(message);
    auto index = mail::resolve_part(parts, numbers);
    if (!index) return std::string();
    if (parts[*index].kind == mail::PartKind::multipart) {
        mail::SectionSpec spec;
        spec.part = numbers;
        auto section = mail::fetch_section(parts, message, spec);
        return section ? section->materialize(message) : std::string();
    }
    return mail::fetch_binary(parts, message, numbers);
}

// BINARY.SIZE[part]: the size of what binary_section returns, without decoding where it can.
Result<std::size_t> binary_section_size(std::span<const mail::Part> parts, std::string_view message,
                                        const std::vector<std::uint32_t>& numbers) {
    if (numbers.empty()) return message.size();
    auto index = mail::resolve_part(parts, numbers);
    if (!index) return std::size_t{0};
    if (parts[*index].kind == mail::PartKind::multipart) {
        mail::SectionSpec spec;
        spec.part = numbers;
        auto section = mail::fetch_section(parts, message, spec);
        return section ? section->size() : std::size_t{0};
    }
    return mail::binary_size(parts, message, numbers);
}

// One message's bytes and structure, loaded at most once per command: the stored structure when it is
// there, else (a message stored without one) a parse of the blob.
class MessageData {
public:
    MessageData(store::Store& store, const store::Message& row) : store_(store), row_(row) {}

    Result<std::string_view> blob() {
        if (!blob_) {
            auto content = store_.read_blob(row_.blob_id);
            if (!content) return content.error();
            blob_ = std::move(*content);
        }
        return std::string_view(*blob_);
    }

    Result<void> load_structure() {
        if (structure_ || parsed_) return {};
        if (!row_.summary.structure.empty()) {
            auto parsed = mail::Structure::parse(row_.summary.structure);
            if (parsed) {
                structure_ = std::move(*parsed);
                return {};
            }
        }
        auto bytes = blob();
        if (!bytes) return bytes.error();
        parsed_ = mail::Message::parse(*bytes);
        envelope_ = mail::imap_envelope(*parsed_);
        mail::imap_body_and_structure(*parsed_, body_, body_structure_);
        return {};
    }

    std::span<const mail::Part> parts() const { return structure_ ? structure_->parts() : parsed_->parts(); }
    std::string_view envelope() const { return structure_ ? structure_->envelope() : envelope_; }
    std::string_view body() const { return structure_ ? structure_->body() : body_; }
    std::string_view body_structure() const {
        return structure_ ? structure_->body_structure() : body_structure_;
    }

private:
    store::Store& store_;
    const store::Message& row_;
    std::optional<std::string> blob_;
    std::optional<mail::Structure> structure_;
    std::optional<mail::Message> parsed_;
    std::string envelope_, body_, body_structure_;
};

}  // namespace

void Session::on_fetch(const std::string& tag, const Fetch& command) {
    if (command.vanished && !qresync_) {
        reply(tag, StatusKind::bad, "", "VANISHED needs QRESYNC enabled");
        return;
    }
    // RFC 7162 3.1: CHANGEDSINCE and the MODSEQ item are CONDSTORE-enabling.
    if (command.changed_since || std::ranges::any_of(command.items, [](const FetchItem& i) {
            return i.kind == FetchItem::Kind::mod_seq;
        }))
        enable_condstore();
    auto indexes = resolve_set(tag, command.set, command.uid);
    if (!indexes) return;

    std::vector<FetchItem> items = command.items;
    auto wants = [&](FetchItem::Kind kind) {
        return std::ranges::any_of(items, [&](const FetchItem& i) { return i.kind == kind; });
    };
    // RFC 9051 6.4.8: UID FETCH always returns UID; RFC 7162 3.1.4.1: CHANGEDSINCE implies MODSEQ.
    auto item_of = [](FetchItem::Kind kind) {
        FetchItem item;
        item.kind = kind;
        return item;
    };
    if (command.uid && !wants(FetchItem::Kind::uid))
        items.insert(items.begin(), item_of(FetchItem::Kind::uid));
    if (command.changed_since && !wants(FetchItem::Kind::mod_seq))
        items.push_back(item_of(FetchItem::Kind::mod_seq));
    const bool need_rows = std::ranges::any_of(items, needs_message_row);
    const bool marks_seen = !view_->read_only && std::ranges::any_of(items, sets_seen);

    if (command.changed_since) {
        std::erase_if(*indexes,
                      [&](std::size_t i) { return view_->messages[i].modseq <= *command.changed_since; });
    }
    if (command.vanished && command.changed_since) {
        // RFC 7162 3.2.6: UIDs in the set expunged since CHANGEDSINCE.
        auto changes = services_.store.changes_since(view_->mailbox.id, *command.changed_since);
        if (changes) {
            std::vector<std::uint32_t> vanished;
            for (std::uint32_t uid : changes->expunged)
                if (!index_of_uid(uid) && command.set.contains(uid, std::max(uid, view_->mailbox.uidnext)))
                    vanished.push_back(uid);
            if (!vanished.empty()) {
                ResponseWriter w = writer();
                w.untagged()
                    .atom("VANISHED")
                    .atom("(EARLIER)")
                    .sequence_set(SequenceSet::from_numbers(vanished))
                    .end();
                emit(w);
            }
        }
    }

    // \Seen first, so the FETCH responses carry the new flags (RFC 9051 6.4.5 asks FLAGS to be returned).
    std::vector<bool> seen_now(view_->messages.size(), false);
    if (marks_seen) {
        std::vector<std::uint32_t> uids;
        for (std::size_t i : *indexes)
            if (!has_flag(view_->messages[i].flags, "\\Seen")) uids.push_back(view_->messages[i].uid);
        if (!uids.empty()) {
            auto result = services_.store.store_flags(
                view_->mailbox.id, uids, store::FlagUpdate{store::FlagOperation::add, {"\\Seen"}, {}});
            if (result) {
                for (const auto& change : result->changed) {
                    if (auto i = index_of_uid(change.uid)) {
                        view_->messages[*i].flags = change.flags;
                        view_->messages[*i].modseq = change.modseq;
                        seen_now[*i] = true;
                    }
                }
            }
        }
    }

    fetch_.emplace();
    fetch_->tag = tag;
    fetch_->uid = command.uid;
    fetch_->items = std::move(items);
    fetch_->indexes = std::move(*indexes);
    fetch_->need_rows = need_rows;
    fetch_->seen_now = std::move(seen_now);
    continue_fetch();
}

void Session::continue_fetch() {
    FetchProgress& p = *fetch_;
    const auto& rows = p.rows;
    const auto& items = p.items;
    auto wants = [&](FetchItem::Kind kind) {
        return std::ranges::any_of(items, [&](const FetchItem& i) { return i.kind == kind; });
    };
    auto row_of = [&](std::uint32_t uid) -> const store::Message* {
        auto it = std::lower_bound(rows.begin(), rows.end(), uid,
                                   [](const store::Message& m, std::uint32_t u) { return m.uid < u; });
        return it != rows.end() && it->uid == uid ? &*it : nullptr;
    };
    const std::size_t output_before = output_.size();
    for (;; ++p.next) {
        // A streamed message's literals first: the next message waits until they are out.
        if (!p.pieces.empty() && !write_pieces(output_before)) return;  // run() resumes it (or it failed)
        if (p.next >= p.indexes.size()) break;
        if (output_.size() - output_before >= config_.max_output_octets_per_run) return;  // run() resumes it
        const std::size_t index = p.indexes[p.next];
        const ViewMessage& known = view_->messages[index];
        if (p.need_rows && p.next >= p.rows_end && !load_fetch_rows()) return;  // the tagged NO is written
        const store::Message* row = p.need_rows ? row_of(known.uid) : nullptr;
        if (p.need_rows && row == nullptr) {
            p.missing = true;  // expunged by another session; its EXPUNGE comes at the next allowed point
            continue;
        }
        std::optional<MessageData> data;
        if (row) data.emplace(services_.store, *row);
        // A message larger than the output slice is never read whole: its literals stream from the blob.
        const bool streamed = row && row->size > config_.max_output_octets_per_run;
        std::shared_ptr<store::BlobReader> reader;
        ResponseWriter w = writer();
        w.untagged().number(index + 1).atom("FETCH").open_list();
        bool failed = false;
        bool flags_written = false;
        for (const FetchItem& item : items) {
            using K = FetchItem::Kind;
            switch (item.kind) {
                case K::uid:
                    w.atom("UID").number(known.uid);
                    break;
                case K::flags:
                    w.atom("FLAGS").flags(flags_for_client(known));
                    flags_written = true;
                    break;
                case K::mod_seq:
                    w.atom("MODSEQ").open_list().number(known.modseq).close_list();
                    break;
                case K::email_id:  // RFC 8474 5.1
                    w.atom("EMAILID").open_list().atom(store::email_object_id(row->email_id)).close_list();
                    break;
                case K::thread_id:  // RFC 8474 5.2: every Email has a thread here, so never NIL
                    w.atom("THREADID").open_list().atom(store::thread_object_id(row->thread_id)).close_list();
                    break;
                case K::internal_date:
                    w.atom("INTERNALDATE").atom(fmt::format("\"{}\"", internal_date(row->internal_date)));
                    break;
                case K::rfc822_size:
                    w.atom("RFC822.SIZE").number(row->size);
                    break;
                case K::envelope:
                case K::body:
                case K::body_structure: {
                    if (!data->load_structure()) {
                        failed = true;
                        break;
                    }
                    const char* name = item.kind == K::envelope ? "ENVELOPE"
                                       : item.kind == K::body   ? "BODY"
                                                                : "BODYSTRUCTURE";
                    w.atom(name).atom(item.kind == K::envelope ? data->envelope()
                                      : item.kind == K::body   ? data->body()
                                                               : data->body_structure());
                    break;
                }
                case K::rfc822:
                case K::rfc822_header:
                case K::rfc822_text:
                case K::body_section: {
                    if (streamed) {
                        Section section = item.section;
                        if (item.kind == K::rfc822_header) section.text = Section::Text::header;
                        if (item.kind == K::rfc822_text) section.text = Section::Text::text;
                        failed = !data->load_structure() ||
                                 stream_section(w, item, to_spec(section), data->parts(), *row, reader) !=
                                     StreamOutcome::ok;
                        break;
                    }
                    auto bytes = data->blob();
                    if (!bytes || !data->load_structure()) {
                        failed = true;
                        break;
                    }
                    Section section = item.section;
                    if (item.kind == K::rfc822_header) section.text = Section::Text::header;
                    if (item.kind == K::rfc822_text) section.text = Section::Text::text;
                    auto content = mail::fetch_section(data->parts(), *bytes, to_spec(section));
                    mail::SectionData range = content ? *content : mail::SectionData{};
                    if (item.partial) range = range.slice(item.partial->offset, item.partial->length);
                    w.atom(fetch_item_name(item)).literal(range.materialize(*bytes));
                    break;
                }
                case K::binary:
                case K::binary_size: {
                    if (streamed) {
                        if (!data->load_structure()) {
                            failed = true;
                            break;
                        }
                        auto outcome = stream_binary(w, item, data->parts(), *row, reader);
                        p.unknown_cte = p.unknown_cte || outcome == StreamOutcome::unknown_cte;
                        failed = outcome != StreamOutcome::ok;
                        break;
                    }
                    auto bytes = data->blob();
                    if (!bytes || !data->load_structure()) {
                        failed = true;
                        break;
                    }
                    if (item.kind == K::binary_size) {
                        auto size = binary_section_size(data->parts(), *bytes, item.section.part);
                        if (!size) {
                            p.unknown_cte = true;
                            failed = true;
                            break;
                        }
                        w.atom(fetch_item_name(item)).number(*size);
                        break;
                    }
                    auto decoded = binary_section(data->parts(), *bytes, item.section.part);
                    if (!decoded) {
                        p.unknown_cte = true;
                        failed = true;
                        break;
                    }
                    std::string_view out = *decoded;
                    if (item.partial) {
                        out = item.partial->offset >= out.size()
                                  ? std::string_view()
                                  : out.substr(item.partial->offset, item.partial->length);
                    }
                    w.atom(fetch_item_name(item)).binary(out);
                    break;
                }
            }
            if (failed) break;
        }
        if (failed) {
            p.pieces.clear();  // nothing of it was written yet
            p.missing = true;
            continue;
        }
        if (p.seen_now[index] && !flags_written) w.atom("FLAGS").flags(flags_for_client(known));
        if (p.seen_now[index] && condstore_on() && !wants(FetchItem::Kind::mod_seq))
            w.atom("MODSEQ").open_list().number(known.modseq).close_list();
        w.close_list().end();
        if (p.pieces.empty())
            emit(w);
        else
            p.pieces.emplace_back(w.take());
    }
    const std::string tag = p.tag;
    const bool uid = p.uid;
    const bool unknown_cte = p.unknown_cte, missing = p.missing;
    fetch_.reset();
    if (unknown_cte)
        reply(tag, StatusKind::no, "UNKNOWN-CTE", "Cannot decode a part's transfer encoding");
    else if (missing && !uid)
        reply(tag, StatusKind::no, "", "Some messages could not be fetched (expunged meanwhile?)");
    else
        reply(tag, StatusKind::ok, "", uid ? "UID FETCH completed" : "FETCH completed");
}

bool Session::load_fetch_rows() {
    FetchProgress& p = *fetch_;
    const std::size_t end = std::min(p.indexes.size(), p.next + kRowBatch);
    std::vector<std::uint32_t> uids;
    for (std::size_t i = p.next; i < end; ++i) uids.push_back(view_->messages[p.indexes[i]].uid);
    std::ranges::sort(uids);
    auto rows = services_.store.find_messages(view_->mailbox.id, uids);
    if (!rows) {
        const std::string tag = p.tag;
        fetch_.reset();
        reply_store_error(tag, rows.error());
        return false;
    }
    p.rows = std::move(*rows);
    std::ranges::sort(p.rows, {}, &store::Message::uid);
    p.rows_end = end;
    return true;
}

void Session::on_store(const std::string& tag, const Store& command) {
    if (view_->read_only) {
        reply(tag, StatusKind::no, "READ-ONLY", "The mailbox is read-only");
        return;
    }
    if (command.unchanged_since) enable_condstore();
    auto indexes = resolve_set(tag, command.set, command.uid);
    if (!indexes) return;
    store::FlagUpdate update;
    update.operation = command.mode == Store::Mode::add      ? store::FlagOperation::add
                       : command.mode == Store::Mode::remove ? store::FlagOperation::remove
                                                             : store::FlagOperation::replace;
    // \Recent belongs to the server (RFC 3501 2.3.2): a client's attempt to set it is ignored.
    for (const auto& flag : command.flags)
        if (!iequals(flag, "\\Recent")) update.flags.push_back(flag);
    update.unchanged_since = command.unchanged_since;
    std::vector<std::uint32_t> uids;
    for (std::size_t i : *indexes) uids.push_back(view_->messages[i].uid);
    if (uids.empty()) {
        write_stored(tag, command, *indexes, store::FlagStoreResult{});
        return;
    }
    ask(request::StoreFlags{view_->mailbox.id, std::move(uids), std::move(update)},
        [this, tag, command, indexes = std::move(*indexes)](Result<store::FlagStoreResult> stored) {
            if (!stored) {
                if (stored.error().code == Errc::invalid_argument)
                    reply(tag, StatusKind::bad, "", stored.error().message);
                else
                    reply_store_error(tag, stored.error());
                return;
            }
            write_stored(tag, command, indexes, *stored);
        });
}

void Session::write_stored(const std::string& tag, const Store& command, const std::vector<std::size_t>& indexes,
                           const store::FlagStoreResult& result) {
    for (const auto& change : result.changed) {
        announce_keywords(change.flags);  // even for .SILENT: the client's own flag is news to FLAGS
        if (auto i = index_of_uid(change.uid)) {
            view_->messages[*i].flags = change.flags;
            view_->messages[*i].modseq = change.modseq;
        }
    }
    auto changed = [&](std::uint32_t uid) {
        return std::ranges::any_of(result.changed, [&](const store::FlagChange& c) { return c.uid == uid; });
    };
    for (std::size_t i : indexes) {
        const ViewMessage& m = view_->messages[i];
        const bool was_modified = std::ranges::find(result.modified, m.uid) != result.modified.end();
        if (was_modified) continue;
        // RFC 7162 3.1.3: with CONDSTORE on, a changed message's MODSEQ is reported even when .SILENT (as
        // Dovecot and mox do), so the client's cached MODSEQ follows its own change.
        if (command.silent && !(condstore_on() && changed(m.uid))) continue;
        ResponseWriter w = writer();
        w.untagged().number(i + 1).atom("FETCH").open_list();
        // RFC 7162 3.1: with CONDSTORE on, every untagged FETCH carries the UID and the MODSEQ.
        if (command.uid || condstore_on()) w.atom("UID").number(m.uid);
        if (!command.silent) w.atom("FLAGS").flags(flags_for_client(m));
        if (condstore_on()) w.atom("MODSEQ").open_list().number(m.modseq).close_list();
        w.close_list().end();
        emit(w);
    }
    if (!result.modified.empty()) {
        std::vector<std::uint32_t> numbers;
        for (std::uint32_t uid : result.modified) {
            if (command.uid)
                numbers.push_back(uid);
            else if (auto i = index_of_uid(uid))
                numbers.push_back(static_cast<std::uint32_t>(*i + 1));
        }
        reply(tag, StatusKind::ok, "MODIFIED " + SequenceSet::from_numbers(numbers).to_string(),
              "Conditional STORE failed for some messages");
        return;
    }
    reply(tag, StatusKind::ok, "", command.uid ? "UID STORE completed" : "STORE completed");
}

void Session::on_copy(const std::string& tag, const SequenceSet& set, bool uid, const std::string& mailbox,
                      bool move) {
    if (move && view_->read_only) {
        reply(tag, StatusKind::no, "READ-ONLY", "The mailbox is read-only");
        return;
    }
    auto indexes = resolve_set(tag, set, uid);
    if (!indexes) return;
    std::vector<std::uint32_t> uids;
    for (std::size_t i : *indexes) uids.push_back(view_->messages[i].uid);
    std::ranges::sort(uids);
    // An empty set still names a mailbox that must exist (TRYCREATE): the request answers for both.
    // RFC 6851 3.3 allows MOVE into the selected mailbox, answered as Dovecot does: COPYUID, the EXPUNGEs,
    // then EXISTS for the new UIDs.
    ask(request::CopyMessages{account_->id, view_->mailbox.id, uids, canonical_mailbox(mailbox), move,
                              config_.quota_storage_kib},
        [this, tag, move, empty = uids.empty()](Result<request::CopyMessages::Answer> copied) {
            if (!copied) {
                if (copied.error().code == Errc::not_found)
                    reply(tag, StatusKind::no, "TRYCREATE", "No such mailbox");
                else
                    reply_store_error(tag, copied.error());
                return;
            }
            if (copied->over_quota) {
                reply(tag, StatusKind::no, "OVERQUOTA", "The quota would be exceeded");
                return;
            }
            if (empty) {
                reply(tag, StatusKind::ok, "", fmt::format("{} completed: no messages", move ? "MOVE" : "COPY"));
                return;
            }
            write_copied(tag, move, copied->copied);
        });
}

void Session::write_copied(const std::string& tag, bool move, const store::CopyResult& copied) {
    const store::CopyResult* result = &copied;
    std::vector<std::uint32_t> from, to;
    for (const auto& [source, dest] : result->uids) {
        from.push_back(source);
        to.push_back(dest);
    }
    // RFC 4315 3 COPYUID; the pairs are in ascending source order and new UIDs ascend with them.
    const std::string code = result->uids.empty()
                                 ? std::string()
                                 : copyuid_code(result->uidvalidity, SequenceSet::from_numbers(from),
                                                SequenceSet::from_numbers(to));
    if (!move) {
        reply(tag, StatusKind::ok, code, "COPY completed");
        return;
    }
    // RFC 6851 4.3: COPYUID goes in an untagged OK before the EXPUNGEs.
    if (!code.empty()) output_ += status_response("*", StatusKind::ok, code, "Moved");
    write_expunged(from);
    reply(tag, StatusKind::ok, "", "MOVE completed");
}

void Session::on_expunge(const std::string& tag, const Expunge& command) {
    if (view_->read_only) {
        reply(tag, StatusKind::no, "READ-ONLY", "The mailbox is read-only");
        return;
    }
    std::optional<std::vector<std::uint32_t>> only;
    if (command.uids) {
        auto indexes = resolve_set(tag, *command.uids, true);
        if (!indexes) return;
        only.emplace();
        for (std::size_t i : *indexes) only->push_back(view_->messages[i].uid);
    }
    ask(request::Expunge{view_->mailbox.id, std::move(only)},
        [this, tag](Result<std::vector<std::uint32_t>> expunged) {
            if (!expunged) {
                reply_store_error(tag, expunged.error());
                return;
            }
            write_expunged(*expunged);
            reply(tag, StatusKind::ok, "", "EXPUNGE completed");
        });
}

}  // namespace magpie::imap
