// SEARCH and UID SEARCH over the selected view with every RFC 9051 6.4.4 key, MODSEQ (RFC 7162 3.1.5),
// ESEARCH results (RFC 4731, RFC 9051 6.4.4.1) and SEARCHRES "$" (RFC 5182). Flags, sizes, dates and the
// summary fields come from the view and the stored rows; HEADER, BCC, BODY and TEXT read the blob once per
// message and decode it through the mail library, a large message in slices (never whole: see TextScanner).
#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "base/strings.h"
#include "base/time.h"
#include "base/unicode.h"
#include "imap/session/session.h"
#include "imap/session/support.h"
#include "mail/charset.h"
#include "mail/date.h"
#include "mail/decode.h"
#include "mail/mime.h"
#include "mail/structure.h"
#include "store/object_id.h"

namespace magpie::imap {
namespace {

using namespace session_support;
using Kind = SearchKey::Kind;

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
    return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

// RFC 9051 6.4.4: string matches are case-insensitive substring matches; for every script, that is the
// i;unicode-casemap comparator of RFC 5051. Haystacks are decoded text (RFC 2047 words in the summary
// and header fields, charset-converted bodies), so "åke" finds "=?UTF-8?Q?=C3=85ke?=".
bool contains_text(std::string_view haystack, std::string_view needle) {
    // ASCII on both sides (the common case: a subject or an address searched for a word): i;unicode-casemap
    // is ASCII lower-casing there, so compare in place instead of folding copies of both per message.
    if (is_ascii(haystack) && is_ascii(needle)) {
        if (needle.empty()) return true;
        auto lower = [](unsigned char c) { return c >= 'A' && c <= 'Z' ? static_cast<unsigned char>(c + 32) : c; };
        return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(), [&](char a, char b) {
                   return lower(static_cast<unsigned char>(a)) == lower(static_cast<unsigned char>(b));
               }) != haystack.end();
    }
    return unicode_casemap_contains(haystack, needle);
}

// What a key needs beyond the view: the stored row (sizes, dates, summary) or the blob too.
enum class Needs { view, row, blob };

Needs needs_of(const SearchKey& key) {
    switch (key.kind) {
        case Kind::bcc:
        case Kind::body:
        case Kind::text:
        case Kind::header:
            return Needs::blob;
        case Kind::from:
        case Kind::to:
        case Kind::cc:
        case Kind::subject:
        case Kind::before:
        case Kind::on:
        case Kind::since:
        case Kind::sent_before:
        case Kind::sent_on:
        case Kind::sent_since:
        case Kind::larger:
        case Kind::smaller:
        case Kind::email_id:
        case Kind::thread_id:
            return Needs::row;
        case Kind::not_:
        case Kind::or_:
        case Kind::and_: {
            Needs most = Needs::view;
            for (const auto& child : key.children) most = std::max(most, needs_of(child));
            return most;
        }
        default:
            return Needs::view;
    }
}

bool uses_modseq(const SearchKey& key) {
    if (key.kind == Kind::mod_seq) return true;
    return std::ranges::any_of(key.children, uses_modseq);
}

struct SearchContext {
    store::Store* store;  // nullptr when the view answers alone (no rows then)
    std::uint32_t count = 0;
    std::uint32_t largest_uid = 0;
    const std::vector<std::uint32_t>& saved;
    std::size_t blob_reads = 0;
    std::size_t max_blob_reads = 0;
    bool failed = false;  // a blob could not be read, or the read limit was hit
};

struct Facts {
    std::uint32_t seq = 0;
    std::uint32_t uid = 0;
    std::uint64_t modseq = 0;
    const std::vector<std::string>* flags = nullptr;
    bool recent = false;
    const store::Message* row = nullptr;
    std::optional<std::string> blob;
    std::optional<mail::Message> parsed;
    // A large message (is_large): its blob open for slice reads, its stored structure, its header block.
    std::unique_ptr<store::BlobReader> reader;
    std::optional<mail::Structure> structure;
    std::optional<std::string> header_bytes;
    std::optional<mail::Message> header;  // borrows header_bytes
};

const mail::Message* parsed_message(Facts& facts, SearchContext& ctx) {
    if (facts.parsed) return &*facts.parsed;
    if (!facts.row || ctx.failed) return nullptr;
    if (++ctx.blob_reads > ctx.max_blob_reads) {
        ctx.failed = true;
        return nullptr;
    }
    auto blob = ctx.store->read_blob(facts.row->blob_id);
    if (!blob) {
        ctx.failed = true;
        return nullptr;
    }
    facts.blob = std::move(*blob);
    facts.parsed = mail::Message::parse(*facts.blob);
    return &*facts.parsed;
}

bool header_contains(const mail::Message& message, std::string_view field, std::string_view value) {
    for (const auto* f : message.header().find_all(field))
        if (contains_text(f->decoded(), value)) return true;
    return false;
}

bool body_contains(const mail::Message& message, std::string_view value) {
    for (const auto& part : message.parts()) {
        if (part.kind != mail::PartKind::leaf || !iequals(part.type, "text")) continue;
        if (contains_text(mail::decode_text(message, part), value)) return true;
    }
    return false;
}

// ---- Large messages (issue 11): HEADER, BCC, BODY and TEXT without reading the blob whole. The stored
// structure gives the byte ranges; the header block and each text part's MIME header are read alone
// (bounded), each text part's body in slices, transfer-decoded on the fly (mail::TransferDecoder),
// converted to UTF-8 a run of whole lines at a time and matched with an overlap carried between runs.

// A message above this size is searched in slices of it.
constexpr std::size_t kSearchSlice = 256 * 1024;
// Header blocks are read whole up to this size; beyond, only their beginning is searched.
constexpr std::size_t kMaxSearchedHeader = 1024 * 1024;

// Matches a needle in text that arrives in pieces, holding at most a few slices.
class TextScanner {
public:
    TextScanner(std::string_view needle, std::string charset) : needle_(needle), charset_(std::move(charset)) {}

    // Feeds transfer-decoded octets; true once the needle was found.
    bool feed(std::string_view decoded, bool last) {
        pending_.append(decoded);
        std::size_t cut = pending_.size();
        if (!last) {
            // Whole lines: a line feed is never inside a character of an ASCII-compatible charset.
            std::size_t newline = pending_.rfind('\n');
            cut = newline == std::string::npos ? 0 : newline + 1;
            if (cut == 0 && pending_.size() > 4 * kSearchSlice) cut = pending_.size();  // no line end in sight
        }
        if (cut == 0) return false;
        std::string haystack = std::move(tail_);
        haystack += to_utf8(std::string_view(pending_).substr(0, cut));
        pending_.erase(0, cut);
        if (contains_text(haystack, needle_)) return true;
        // Case folding may change lengths: keep generously more than the needle, from a character start.
        std::size_t keep = std::min(haystack.size(), needle_.size() * 4 + 16);
        std::size_t from = haystack.size() - keep;
        while (from < haystack.size() && (static_cast<unsigned char>(haystack[from]) & 0xC0) == 0x80) ++from;
        tail_ = haystack.substr(from);
        return false;
    }

private:
    std::string to_utf8(std::string_view bytes) const {
        const std::string lower = to_lower(charset_);
        if (charset_.empty() || lower == "us-ascii" || lower == "ascii") return mail::guess_to_utf8(bytes);
        return mail::to_utf8_lenient(bytes, charset_);
    }

    std::string_view needle_;
    std::string charset_;
    std::string pending_;  // decoded octets not converted yet (after the last line feed)
    std::string tail_;     // the end of the text already searched
};

bool is_large(const Facts& f) {
    return f.row && f.row->size > kSearchSlice && !f.row->summary.structure.empty();
}

// Opens a large message for slice reads (one blob read for the limit); false once ctx.failed is set.
bool open_large(Facts& f, SearchContext& ctx) {
    if (f.reader) return true;
    if (ctx.failed) return false;
    if (++ctx.blob_reads > ctx.max_blob_reads) {
        ctx.failed = true;
        return false;
    }
    auto structure = mail::Structure::parse(f.row->summary.structure);
    auto reader = ctx.store->open_blob(f.row->blob_id);
    if (!structure || !reader || structure->parts().empty()) {
        ctx.failed = true;
        return false;
    }
    f.structure = std::move(*structure);
    f.reader = std::move(*reader);
    return true;
}

// The header block of a large message, parsed on its own (HEADER, BCC, TEXT).
const mail::Message* large_header(Facts& f, SearchContext& ctx) {
    if (f.header) return &*f.header;
    if (!open_large(f, ctx)) return nullptr;
    const mail::Part& root = f.structure->parts().front();
    auto bytes = f.reader->read(0, std::min(root.body_offset, kMaxSearchedHeader));
    if (!bytes) {
        ctx.failed = true;
        return nullptr;
    }
    f.header_bytes = std::move(*bytes);
    f.header = mail::Message::parse(*f.header_bytes);
    return &*f.header;
}

// BODY over a large message: each text leaf part (as body_contains takes them), streamed.
bool large_body_contains(Facts& f, SearchContext& ctx, std::string_view needle) {
    if (!open_large(f, ctx)) return false;
    std::string decoded;
    for (const mail::Part& part : f.structure->parts()) {
        if (part.kind != mail::PartKind::leaf || !iequals(part.type, "text")) continue;
        // The part's own MIME header names its charset.
        auto header = f.reader->read(part.header_offset, std::min(part.header_length(), kMaxSearchedHeader));
        if (!header) {
            ctx.failed = true;
            return false;
        }
        const mail::Message fields = mail::Message::parse(*header);
        TextScanner scanner(needle, fields.content_type(fields.root()).params.get("charset"));
        mail::TransferDecoder decoder(part.encoding);
        for (std::size_t at = part.body_offset; at < part.end;) {
            const std::size_t length = std::min(kSearchSlice, part.end - at);
            auto slice = f.reader->read(at, length);
            if (!slice || slice->size() != length) {
                ctx.failed = true;
                return false;
            }
            at += length;
            decoded.clear();
            decoder.feed(*slice, at >= part.end, decoded);
            if (scanner.feed(decoded, at >= part.end)) return true;
        }
    }
    return false;
}

std::int64_t search_day(const Date& date) {
    return days_from_civil(date.year, static_cast<unsigned>(date.month), static_cast<unsigned>(date.day));
}

bool compare_day(Kind kind, std::int64_t day, std::int64_t wanted) {
    switch (kind) {
        case Kind::before:
        case Kind::sent_before:
            return day < wanted;
        case Kind::on:
        case Kind::sent_on:
            return day == wanted;
        default:
            return day >= wanted;
    }
}

bool matches(const SearchKey& key, Facts& f, SearchContext& ctx) {
    auto saved_has = [&](std::uint32_t uid) { return std::ranges::find(ctx.saved, uid) != ctx.saved.end(); };
    switch (key.kind) {
        case Kind::all:
            return true;
        case Kind::answered:
            return has_flag(*f.flags, "\\Answered");
        case Kind::deleted:
            return has_flag(*f.flags, "\\Deleted");
        case Kind::draft:
            return has_flag(*f.flags, "\\Draft");
        case Kind::flagged:
            return has_flag(*f.flags, "\\Flagged");
        case Kind::seen:
            return has_flag(*f.flags, "\\Seen");
        case Kind::recent:
            return f.recent;
        case Kind::new_:
            return f.recent && !has_flag(*f.flags, "\\Seen");
        case Kind::old:
            return !f.recent;
        case Kind::unanswered:
            return !has_flag(*f.flags, "\\Answered");
        case Kind::undeleted:
            return !has_flag(*f.flags, "\\Deleted");
        case Kind::undraft:
            return !has_flag(*f.flags, "\\Draft");
        case Kind::unflagged:
            return !has_flag(*f.flags, "\\Flagged");
        case Kind::unseen:
            return !has_flag(*f.flags, "\\Seen");
        case Kind::keyword:
            return has_flag(*f.flags, key.text);
        case Kind::unkeyword:
            return !has_flag(*f.flags, key.text);
        case Kind::from:
            return f.row && contains_text(f.row->summary.from, key.text);
        case Kind::to:
            return f.row && contains_text(f.row->summary.to, key.text);
        case Kind::cc:
            return f.row && contains_text(f.row->summary.cc, key.text);
        case Kind::subject:
            return f.row && contains_text(f.row->summary.subject, key.text);
        case Kind::bcc:
        case Kind::header: {
            const auto* message = is_large(f) ? large_header(f, ctx) : parsed_message(f, ctx);
            if (!message) return false;
            return header_contains(
                *message, key.kind == Kind::bcc ? std::string_view("Bcc") : std::string_view(key.text),
                key.kind == Kind::bcc ? key.text : key.value);
        }
        case Kind::body: {
            if (is_large(f)) return large_body_contains(f, ctx, key.text);
            const auto* message = parsed_message(f, ctx);
            return message && body_contains(*message, key.text);
        }
        case Kind::text: {
            const auto* message = is_large(f) ? large_header(f, ctx) : parsed_message(f, ctx);
            if (!message) return false;
            for (const auto& field : message->header().fields())
                if (contains_text(field.name, key.text) || contains_text(field.decoded(), key.text))
                    return true;
            return is_large(f) ? large_body_contains(f, ctx, key.text) : body_contains(*message, key.text);
        }
        case Kind::before:
        case Kind::on:
        case Kind::since:
            // RFC 9051 6.4.4: the internal date's day, disregarding time (and zone: ours are UTC).
            return f.row &&
                   compare_day(key.kind, floor_div(f.row->internal_date, 86400), search_day(key.date));
        case Kind::sent_before:
        case Kind::sent_on:
        case Kind::sent_since: {
            if (!f.row) return false;
            auto sent = mail::parse_date(f.row->summary.date);
            if (!sent) return false;
            const std::int64_t local = sent->unix_seconds + std::int64_t{sent->zone_minutes} * 60;
            return compare_day(key.kind, floor_div(local, 86400), search_day(key.date));
        }
        case Kind::larger:
            return f.row && f.row->size > key.number;
        case Kind::smaller:
            return f.row && f.row->size < key.number;
        case Kind::uid:
            return key.set.is_saved() ? saved_has(f.uid) : key.set.contains(f.uid, ctx.largest_uid);
        case Kind::sequence_set:
            return key.set.is_saved() ? saved_has(f.uid) : key.set.contains(f.seq, ctx.count);
        case Kind::mod_seq:
            return f.modseq >= key.number;
        case Kind::email_id:
            return f.row && store::parse_object_id(key.text, 'e') == f.row->email_id;
        case Kind::thread_id:
            return f.row && store::parse_object_id(key.text, 't') == f.row->thread_id;
        case Kind::not_:
            return !matches(key.children.at(0), f, ctx);
        case Kind::or_:
            return matches(key.children.at(0), f, ctx) || matches(key.children.at(1), f, ctx);
        case Kind::and_:
            for (const auto& child : key.children)
                if (!matches(child, f, ctx)) return false;
            return true;
    }
    return false;
}

}  // namespace

namespace {

// A row with only the fields SEARCH's row keys read (see SearchRowCache): no blob id, structure or flags.
// Only fields that never change for a UID are read from it: its modseq is the value when it was cached and
// goes stale with the next flag change, so MODSEQ and flags are matched from the session's view (Facts).
store::Message search_key_row(store::Message&& m) {
    store::Message row;
    row.mailbox_id = m.mailbox_id;
    row.email_id = m.email_id;
    row.thread_id = m.thread_id;
    row.uid = m.uid;
    row.modseq = m.modseq;
    row.size = m.size;
    row.internal_date = m.internal_date;
    row.summary.subject = std::move(m.summary.subject);
    row.summary.from = std::move(m.summary.from);
    row.summary.to = std::move(m.summary.to);
    row.summary.cc = std::move(m.summary.cc);
    row.summary.date = std::move(m.summary.date);
    return row;
}

}  // namespace

Result<std::shared_ptr<const SearchRowCache::Rows>> SearchRowCache::rows(store::Store& store, std::int64_t mailbox_id,
                                                                          std::uint32_t uidvalidity,
                                                                          std::uint32_t largest_uid) {
    Entry entry;
    {
        std::lock_guard lock(mutex_);
        if (auto it = entries_.find(mailbox_id); it != entries_.end()) {
            if (it->second.uidvalidity == uidvalidity) {
                it->second.used = ++clock_;
                entry = it->second;
            } else {
                total_ -= it->second.rows->size();
                entries_.erase(it);
            }
        }
    }
    if (entry.rows && entry.covered >= largest_uid) return entry.rows;
    auto next = std::make_shared<Rows>();
    // Only the UIDs above those read before (new mail); the whole mailbox the first time, or when that is
    // about as much.
    if (entry.rows && largest_uid - entry.covered <= entry.rows->size() + 1024) {
        std::vector<std::uint32_t> uids;
        uids.reserve(largest_uid - entry.covered);
        for (std::uint32_t uid = entry.covered + 1; uid <= largest_uid && uid != 0; ++uid) uids.push_back(uid);
        auto found = store.find_messages(mailbox_id, uids);
        if (!found) return found.error();
        next->reserve(entry.rows->size() + found->size());
        *next = *entry.rows;
        for (auto& m : *found) next->push_back(search_key_row(std::move(m)));
    } else {
        auto listed = store.list_messages(mailbox_id);
        if (!listed) return listed.error();
        next->reserve(listed->size());
        for (auto& m : *listed) next->push_back(search_key_row(std::move(m)));
    }
    // Every UID up to the view's largest is read now: one assigned later is larger (UIDs rise in commit order).
    std::uint32_t covered = largest_uid;
    if (!next->empty()) covered = std::max(covered, next->back().uid);
    std::shared_ptr<const Rows> result = std::move(next);
    std::lock_guard lock(mutex_);
    keep(mailbox_id, Entry{uidvalidity, covered, result, ++clock_});
    return result;
}

void SearchRowCache::keep(std::int64_t mailbox_id, Entry entry) {
    if (auto it = entries_.find(mailbox_id); it != entries_.end()) {
        // Another SEARCH of the mailbox may have read further meanwhile: keep the larger.
        if (it->second.uidvalidity == entry.uidvalidity && it->second.covered >= entry.covered) return;
        total_ -= it->second.rows->size();
        entries_.erase(it);
    }
    if (entry.rows->size() > max_messages_) return;  // larger than the bound: read whole each time
    while (total_ + entry.rows->size() > max_messages_ && !entries_.empty()) {
        auto oldest = std::ranges::min_element(entries_, {}, [](const auto& e) { return e.second.used; });
        total_ -= oldest->second.rows->size();
        entries_.erase(oldest);
    }
    total_ += entry.rows->size();
    entries_.emplace(mailbox_id, std::move(entry));
}

std::size_t SearchRowCache::cached_messages() const {
    std::lock_guard lock(mutex_);
    return total_;
}

Result<request::SearchMessages::Answer> search_messages(store::Store* store, const request::SearchMessages& search,
                                                        SearchRowCache* cache) {
    std::vector<store::Message> listed_rows;
    std::shared_ptr<const SearchRowCache::Rows> cached_rows;
    const std::vector<store::Message>* rows_in = &listed_rows;
    if (const Needs needs = needs_of(search.criteria); needs != Needs::view) {
        if (store == nullptr) return make_error(Errc::internal, "SEARCH needs the store");
        if (needs == Needs::row && cache != nullptr) {
            const std::uint32_t largest = search.messages.empty() ? 0 : search.messages.back().uid;
            auto cached = cache->rows(*store, search.mailbox_id, search.uidvalidity, largest);
            if (!cached) return cached.error();
            cached_rows = std::move(*cached);
            rows_in = cached_rows.get();
        } else {
            auto listed = store->list_messages(search.mailbox_id);
            if (!listed) return listed.error();
            listed_rows = std::move(*listed);
        }
    }
    const std::vector<store::Message>& rows = *rows_in;
    const auto& messages = search.messages;
    SearchContext ctx{store,
                      static_cast<std::uint32_t>(messages.size()),
                      messages.empty() ? 0 : messages.back().uid,
                      search.saved_uids,
                      0,
                      search.max_blob_reads,
                      false};
    request::SearchMessages::Answer answer;
    std::size_t r = 0;
    for (std::size_t i = 0; i < messages.size(); ++i) {
        Facts facts;
        facts.seq = static_cast<std::uint32_t>(i + 1);
        facts.uid = messages[i].uid;
        facts.modseq = messages[i].modseq;
        facts.flags = &messages[i].flags;
        facts.recent = messages[i].recent;
        while (r < rows.size() && rows[r].uid < facts.uid) ++r;
        if (r < rows.size() && rows[r].uid == facts.uid) facts.row = &rows[r];
        if (matches(search.criteria, facts, ctx)) answer.matched.push_back(i);
    }
    answer.failed = ctx.failed;
    return answer;
}

namespace {

// The strings a search compares with message text, converted from `charset` to UTF-8 (false: unknown).
bool strings_to_utf8(SearchKey& key, std::string_view charset) {
    using Kind = SearchKey::Kind;
    switch (key.kind) {
        case Kind::bcc: case Kind::body: case Kind::cc: case Kind::from: case Kind::subject: case Kind::text:
        case Kind::to: {
            auto text = mail::to_utf8(key.text, charset);
            if (!text) return false;
            key.text = std::move(*text);
            break;
        }
        case Kind::header: {
            auto value = mail::to_utf8(key.value, charset);
            if (!value) return false;
            key.value = std::move(*value);
            break;
        }
        default: break;
    }
    for (SearchKey& child : key.children)
        if (!strings_to_utf8(child, charset)) return false;
    return true;
}

}  // namespace

void Session::on_search(const std::string& tag, const Search& given) {
    std::optional<Search> converted;
    if (given.charset && !iequals(*given.charset, "UTF-8") && !iequals(*given.charset, "US-ASCII")) {
        // RFC 9051 6.4.4: other charsets MAY be supported. Any the message library converts (iconv's) is
        // taken: its strings become UTF-8, as the messages are searched; an unknown one is BADCHARSET.
        converted = given;
        // A non-ASCII probe: to_utf8 passes ASCII through whatever the name.
        if (!mail::to_utf8("\x80", *given.charset) || !strings_to_utf8(converted->criteria, *given.charset)) {
            reply(tag, StatusKind::no, "BADCHARSET (UTF-8 US-ASCII)", "Unsupported charset");
            return;
        }
    }
    const Search& command = converted ? *converted : given;
    if (uses_modseq(command.criteria)) enable_condstore();  // RFC 7162 3.1: SEARCH MODSEQ enables CONDSTORE
    request::SearchMessages search;
    search.mailbox_id = view_->mailbox.id;
    search.uidvalidity = view_->mailbox.uidvalidity;
    search.criteria = command.criteria;
    search.messages.reserve(view_->messages.size());
    for (const auto& m : view_->messages) search.messages.push_back({m.uid, m.modseq, m.flags, m.recent});
    search.saved_uids = saved_uids_;
    search.max_blob_reads = config_.max_search_blob_reads;
    if (needs_of(command.criteria) == Needs::view) {
        // Flags, numbers and MODSEQs: the view answers alone, without the store.
        write_search(tag, command, search_messages(nullptr, search));
        return;
    }
    ask(std::move(search), [this, tag, command](Result<request::SearchMessages::Answer> found) {
        write_search(tag, command, found);
    });
}

void Session::write_search(const std::string& tag, const Search& command,
                           const Result<request::SearchMessages::Answer>& found) {
    if (!found) {
        reply_store_error(tag, found.error());
        return;
    }
    if (found->failed) {
        reply(tag, StatusKind::no, "LIMIT", "Search could not read every message");
        return;
    }
    const bool modseq_key = uses_modseq(command.criteria);
    std::vector<std::uint32_t> uids, seqs;
    std::vector<std::uint64_t> modseqs;  // of each match, in the same order
    std::uint64_t highest = 0;
    for (std::size_t i : found->matched) {
        if (i >= view_->messages.size()) continue;
        const auto& m = view_->messages[i];
        uids.push_back(m.uid);
        seqs.push_back(static_cast<std::uint32_t>(i + 1));
        modseqs.push_back(m.modseq);
        highest = std::max(highest, m.modseq);
    }
    const auto& numbers = command.uid ? uids : seqs;

    const bool esearch = command.return_options.has_value() || rev2_;
    if (!esearch) {
        ResponseWriter w = writer();
        w.untagged().atom("SEARCH");
        for (std::uint32_t n : numbers) w.number(n);
        if (modseq_key && !numbers.empty()) w.open_list().atom("MODSEQ").number(highest).close_list();
        w.end();
        emit(w);
        reply(tag, StatusKind::ok, "", command.uid ? "UID SEARCH completed" : "SEARCH completed");
        return;
    }
    SearchReturn options = command.return_options.value_or(SearchReturn{});
    if (!options.min && !options.max && !options.count && !options.all && !options.save) options.all = true;
    if (options.save) {
        // RFC 5182 2.4: with only MIN and/or MAX, just those are saved.
        if ((options.min || options.max) && !options.all && !options.count) {
            saved_uids_.clear();
            if (!uids.empty()) {
                if (options.min) saved_uids_.push_back(uids.front());
                if (options.max && (!options.min || uids.size() > 1)) saved_uids_.push_back(uids.back());
            }
        } else {
            saved_uids_ = uids;
        }
    }
    if (options.save && !options.min && !options.max && !options.count && !options.all) {
        reply(tag, StatusKind::ok, "", command.uid ? "UID SEARCH completed" : "SEARCH completed");
        return;
    }
    ResponseWriter w = writer();
    w.untagged().atom("ESEARCH").open_list().atom("TAG").string(tag).close_list();
    if (command.uid) w.atom("UID");
    if (options.min && !numbers.empty()) w.atom("MIN").number(numbers.front());
    if (options.max && !numbers.empty()) w.atom("MAX").number(numbers.back());
    if (options.all && !numbers.empty()) w.atom("ALL").sequence_set(SequenceSet::from_numbers(numbers));
    if (options.count) w.atom("COUNT").number(numbers.size());
    if (modseq_key && !numbers.empty()) {
        // RFC 4731 3.2: with only MIN and/or MAX the MODSEQ is that of the message(s) named, not of the
        // whole result (Dovecot: MIN MAX gives the higher of the two).
        std::uint64_t reported = highest;
        if (!options.all && !options.count) {
            reported = 0;
            if (options.min) reported = std::max(reported, modseqs.front());
            if (options.max) reported = std::max(reported, modseqs.back());
        }
        w.atom("MODSEQ").number(reported);
    }
    w.end();
    emit(w);
    reply(tag, StatusKind::ok, "", command.uid ? "UID SEARCH completed" : "SEARCH completed");
}

}  // namespace magpie::imap
