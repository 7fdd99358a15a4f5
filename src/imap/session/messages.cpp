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

// Whether writing `items` of a message held whole needs its blob: sections and BINARY always, ENVELOPE /
// BODY / BODYSTRUCTURE only for a message stored without its structure.
bool needs_blob(const std::vector<FetchItem>& items, const store::Message& row) {
    using K = FetchItem::Kind;
    return std::ranges::any_of(items, [&](const FetchItem& item) {
        switch (item.kind) {
            case K::rfc822:
            case K::rfc822_header:
            case K::rfc822_text:
            case K::body_section:
            case K::binary:
            case K::binary_size:
                return true;
            case K::envelope:
            case K::body:
            case K::body_structure:
                return row.summary.structure.empty();
            default:
                return false;
        }
    });
}

// One message's bytes and structure for one FETCH response: the stored structure when it is there, else
// (a message stored without one) a parse of the blob. The blob comes from a ReadBlobs request: when it is
// not here yet, blob() fails and blob_wanted() says so (the session asks, then writes the message again).
class MessageData {
public:
    MessageData(const store::Message& row, const Result<std::string>* blob) : row_(row), blob_(blob) {}

    Result<std::string_view> blob() {
        if (blob_ == nullptr) {
            blob_wanted_ = true;
            return make_error(Errc::unavailable, "the blob is not read yet");
        }
        if (!*blob_) return blob_->error();
        return std::string_view(**blob_);
    }
    bool blob_wanted() const { return blob_wanted_; }

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
    const store::Message& row_;
    const Result<std::string>* blob_;
    bool blob_wanted_ = false;
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

    // Each item once, as Dovecot answers: "FETCH 1:* (BODY[] BODY[] ...)" named the same data many times
    // over (a response as many times the mailbox's size as the line could hold items). BODY[] and
    // BODY.PEEK[] are one item, answered as BODY[]; it sets \Seen when either form would.
    std::vector<FetchItem> items;
    items.reserve(command.items.size());
    for (const FetchItem& item : command.items) {
        auto same = std::ranges::find_if(items, [&](const FetchItem& kept) {
            return kept.kind == item.kind && kept.section == item.section && kept.partial == item.partial;
        });
        if (same == items.end()) {
            items.push_back(item);
        } else {
            same->peek = same->peek && item.peek;
        }
    }
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
    if (command.changed_since) {
        std::erase_if(*indexes,
                      [&](std::size_t i) { return view_->messages[i].modseq <= *command.changed_since; });
    }

    // From here the FETCH is fetch_: each store step below is a request, and the last one writes it.
    fetch_.emplace();
    fetch_->tag = tag;
    fetch_->uid = command.uid;
    fetch_->need_rows = std::ranges::any_of(items, needs_message_row);
    fetch_->items = std::move(items);
    fetch_->indexes = std::move(*indexes);
    fetch_->seen_now.assign(view_->messages.size(), false);
    if (command.vanished && command.changed_since) {
        fetch_vanished(command);
        return;
    }
    fetch_mark_seen();
}

void Session::fetch_vanished(const Fetch& command) {
    // RFC 7162 3.2.6: UIDs in the set expunged since CHANGEDSINCE (a Refresh that claims nothing).
    ask(request::Refresh{view_->mailbox.id, *command.changed_since, 0, false},
        [this, set = command.set](Result<request::Refresh::Answer> refreshed) {
            if (refreshed) {
                std::vector<std::uint32_t> vanished;
                for (std::uint32_t uid : refreshed->changes.expunged)
                    if (!index_of_uid(uid) && set.contains(uid, std::max(uid, view_->mailbox.uidnext)))
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
            fetch_mark_seen();
        });
}

void Session::fetch_mark_seen() {
    // \Seen first, so the FETCH responses carry the new flags (RFC 9051 6.4.5 asks FLAGS to be returned).
    std::vector<std::uint32_t> uids;
    if (!view_->read_only && std::ranges::any_of(fetch_->items, sets_seen)) {
        for (std::size_t i : fetch_->indexes)
            if (!has_flag(view_->messages[i].flags, "\\Seen")) uids.push_back(view_->messages[i].uid);
    }
    if (uids.empty()) {
        resume_fetch();
        return;
    }
    ask(request::StoreFlags{view_->mailbox.id, std::move(uids),
                            store::FlagUpdate{store::FlagOperation::add, {"\\Seen"}, {}}},
        [this](Result<store::FlagStoreResult> result) {
            if (result) {
                for (const auto& change : result->changed) {
                    if (auto i = index_of_uid(change.uid)) {
                        view_->messages[*i].flags = change.flags;
                        view_->messages[*i].modseq = change.modseq;
                        fetch_->seen_now[*i] = true;
                    }
                }
            }
            resume_fetch();
        });
}

void Session::resume_fetch() {
    const bool uid = fetch_->uid;
    continue_fetch();
    // Done: the command ends as any other (its updates, then the tagged reply kept in tagged_).
    if (!fetch_ && !waiting()) finish_command(uid);
}

const store::Message* Session::fetch_row(std::uint32_t uid) const {
    const auto& rows = fetch_->rows;
    auto it = std::lower_bound(rows.begin(), rows.end(), uid,
                               [](const store::Message& m, std::uint32_t u) { return m.uid < u; });
    return it != rows.end() && it->uid == uid ? &*it : nullptr;
}

void Session::continue_fetch() {
    FetchProgress& p = *fetch_;
    for (;; ++p.next) {
        // A streamed message's literals first: the next message waits until they are out.
        if (!p.pieces.empty() && !write_pieces()) return;  // run() or an answer resumes it (or it failed)
        if (p.next >= p.indexes.size()) break;
        if (fetch_output_full()) return;  // run() resumes it
        const std::size_t index = p.indexes[p.next];
        const std::uint32_t uid = view_->messages[index].uid;
        if (p.need_rows && p.next >= p.rows_end) {
            ask_fetch_rows();
            return;
        }
        const store::Message* row = p.need_rows ? fetch_row(uid) : nullptr;
        if (p.need_rows && row == nullptr) {
            p.expunged = true;  // by another session; its EXPUNGE comes at the next allowed point
            continue;
        }
        ResponseWriter w = writer();
        bool flags_written = false;
        const StreamOutcome outcome = write_fetch_message(index, row, flags_written, w);
        if (outcome == StreamOutcome::waiting) {
            p.pieces.clear();  // the message is written again, whole, once the store answers
            return;
        }
        // The message is done with (written or failed): what was read for it goes.
        p.blobs.erase(uid);
        p.reader.reset();
        p.windows.clear();
        p.measures.clear();
        if (outcome != StreamOutcome::ok) {
            p.unknown_cte = p.unknown_cte || outcome == StreamOutcome::unknown_cte;
            p.pieces.clear();  // nothing of it was written yet
            p.failed = true;
            continue;
        }
        const ViewMessage& known = view_->messages[index];
        if (p.seen_now[index] && !flags_written) w.atom("FLAGS").flags(flags_for_client(known));
        if (p.seen_now[index] && condstore_on() &&
            !std::ranges::any_of(p.items, [](const FetchItem& i) { return i.kind == FetchItem::Kind::mod_seq; }))
            w.atom("MODSEQ").open_list().number(known.modseq).close_list();
        w.close_list().end();
        if (p.pieces.empty())
            emit(w);
        else
            p.pieces.emplace_back(w.take());
    }
    const std::string tag = p.tag;
    const bool uid = p.uid;
    const bool unknown_cte = p.unknown_cte, expunged = p.expunged, failed = p.failed;
    fetch_.reset();
    if (unknown_cte)
        reply(tag, StatusKind::no, "UNKNOWN-CTE", "Cannot decode a part's transfer encoding");
    else if (failed)
        reply(tag, StatusKind::no, "", "Some messages could not be fetched");
    else if (expunged && !uid)  // a UID FETCH skips UIDs that are gone, as for any UID it does not find
        reply(tag, StatusKind::no, "EXPUNGEISSUED", "Some of the requested messages no longer exist");
    else
        reply(tag, StatusKind::ok, "", uid ? "UID FETCH completed" : "FETCH completed");
}

Session::StreamOutcome Session::write_fetch_message(std::size_t index, const store::Message* row,
                                                    bool& flags_written, ResponseWriter& w) {
    FetchProgress& p = *fetch_;
    const ViewMessage& known = view_->messages[index];
    std::optional<MessageData> data;
    if (row) {
        auto blob = p.blobs.find(row->uid);
        data.emplace(*row, blob == p.blobs.end() ? nullptr : &blob->second);
    }
    // A message larger than the output slice is never read whole: its literals stream from the blob.
    const bool streamed = row && row->size > config_.max_output_octets_per_run;
    // Its blob (or, streamed, its stored structure) is read before anything of it is written.
    auto blob_or_wait = [&](StreamOutcome otherwise) {
        if (!data->blob_wanted()) return otherwise;
        ask_fetch_blobs();
        return StreamOutcome::waiting;
    };
    w.untagged().number(index + 1).atom("FETCH").open_list();
    for (std::size_t item_index = 0; item_index < p.items.size(); ++item_index) {
        const FetchItem& item = p.items[item_index];
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
                if (!data->load_structure()) return blob_or_wait(StreamOutcome::failed);
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
                Section section = item.section;
                if (item.kind == K::rfc822_header) section.text = Section::Text::header;
                if (item.kind == K::rfc822_text) section.text = Section::Text::text;
                if (streamed) {
                    if (!data->load_structure()) return blob_or_wait(StreamOutcome::failed);
                    auto outcome = stream_section(w, item_index, item, to_spec(section), data->parts(), *row);
                    if (outcome != StreamOutcome::ok) return outcome;
                    break;
                }
                auto bytes = data->blob();
                if (!bytes || !data->load_structure()) return blob_or_wait(StreamOutcome::failed);
                auto content = mail::fetch_section(data->parts(), *bytes, to_spec(section));
                mail::SectionData range = content ? *content : mail::SectionData{};
                if (item.partial) range = range.slice(item.partial->offset, item.partial->length);
                w.atom(fetch_item_name(item)).literal(range.materialize(*bytes));
                break;
            }
            case K::binary:
            case K::binary_size: {
                if (streamed) {
                    if (!data->load_structure()) return blob_or_wait(StreamOutcome::failed);
                    auto outcome = stream_binary(w, item_index, item, data->parts(), *row);
                    if (outcome != StreamOutcome::ok) return outcome;
                    break;
                }
                auto bytes = data->blob();
                if (!bytes || !data->load_structure()) return blob_or_wait(StreamOutcome::failed);
                if (item.kind == K::binary_size) {
                    auto size = binary_section_size(data->parts(), *bytes, item.section.part);
                    if (!size) return StreamOutcome::unknown_cte;
                    w.atom(fetch_item_name(item)).number(*size);
                    break;
                }
                auto decoded = binary_section(data->parts(), *bytes, item.section.part);
                if (!decoded) return StreamOutcome::unknown_cte;
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
    }
    return StreamOutcome::ok;
}

void Session::ask_fetch_rows() {
    FetchProgress& p = *fetch_;
    const std::size_t end = std::min(p.indexes.size(), p.next + kRowBatch);
    std::vector<std::uint32_t> uids;
    for (std::size_t i = p.next; i < end; ++i) uids.push_back(view_->messages[p.indexes[i]].uid);
    std::ranges::sort(uids);
    ask(request::FetchRows{view_->mailbox.id, std::move(uids)}, [this, end](Result<std::vector<store::Message>> rows) {
        if (!rows) {
            const std::string tag = fetch_->tag;
            const bool uid = fetch_->uid;
            fetch_.reset();
            reply_store_error(tag, rows.error());
            finish_command(uid);
            return;
        }
        fetch_->rows = std::move(*rows);
        fetch_->rows_end = end;
        fetch_->blobs.clear();
        resume_fetch();
    });
}

void Session::ask_fetch_blobs() {
    FetchProgress& p = *fetch_;
    // The current message's blob, and those of the next messages of the batch that will need theirs, up to
    // an output slice of octets: one request for many small messages, memory bounded by the slice.
    const std::uint64_t budget = config_.max_output_octets_per_run;
    std::vector<std::uint32_t> uids;
    request::ReadBlobs read;
    std::uint64_t octets = 0;
    for (std::size_t i = p.next; i < p.rows_end; ++i) {
        const store::Message* row = fetch_row(view_->messages[p.indexes[i]].uid);
        if (row == nullptr || p.blobs.contains(row->uid) || std::ranges::find(uids, row->uid) != uids.end())
            continue;
        if (!uids.empty()) {
            if (row->size > budget || !needs_blob(p.items, *row)) continue;
            if (octets + row->size > budget) break;
        }
        octets += row->size;
        uids.push_back(row->uid);
        read.blob_ids.push_back(row->blob_id);
    }
    ask(std::move(read), [this, uids](Result<std::vector<Result<std::string>>> blobs) {
        for (std::size_t k = 0; k < uids.size(); ++k) {
            if (!blobs)
                fetch_->blobs.emplace(uids[k], blobs.error());
            else if (k < blobs->size())
                fetch_->blobs.emplace(uids[k], std::move((*blobs)[k]));
            else
                fetch_->blobs.emplace(uids[k], make_error(Errc::internal, "a blob is missing from the answer"));
        }
        resume_fetch();
    });
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
            if (!qresync_) {
                reply(tag, StatusKind::ok, "", "EXPUNGE completed");
                return;
            }
            // With QRESYNC on, the tagged OK carries HIGHESTMODSEQ (as Dovecot and mox send it), so the
            // client's cache is current without a NOOP. Read after this view has taken in every change up
            // to it, so no change the client has not been told of is covered (RFC 5162 erratum 1810).
            refresh_view([this, tag] {
                std::string code = view_ ? fmt::format("HIGHESTMODSEQ {}", view_->highest_modseq) : std::string();
                reply(tag, StatusKind::ok, code, "EXPUNGE completed");
            });
        });
}

}  // namespace magpie::imap
