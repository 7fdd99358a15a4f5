// FETCH of large messages (issue 12 item 15): BODY[section], RFC822* and BINARY[section] of a message above
// max_output_octets_per_run are served from its blob in slices. Section offsets come from the stored
// structure (the header a HEADER.FIELDS scans is the only part read ahead), the literal is announced with
// its exact size, and its octets follow a slice per run(), so memory per session stays bounded by the
// output slice whatever the message size. The same rules as for small messages apply: each NUL of a {n}
// literal goes out as 0x80, BINARY uses ~{n} when its octets hold a NUL (RFC 3516 4.2), partial fetches
// <origin.count> count octets of the section (decoded octets for BINARY).
#include "imap/session/session.h"

namespace magpie::imap {

bool Session::open_stream_reader(const store::Message& row, std::shared_ptr<store::BlobReader>& reader) {
    if (reader) return true;
    auto opened = services_.store.open_blob(row.blob_id);
    if (!opened) return false;
    reader = std::move(*opened);
    return true;
}

void Session::queue_literal(ResponseWriter& w, std::string_view name, LiteralStream::Source source) {
    w.atom(name).literal_header(source.length, source.literal8);
    fetch_->pieces.emplace_back(w.take_keeping_separator());
    fetch_->pieces.emplace_back(LiteralStream(std::move(source), config_.max_output_octets_per_run));
}

Session::StreamOutcome Session::stream_section(ResponseWriter& w, const FetchItem& item,
                                               const mail::SectionSpec& spec,
                                               std::span<const mail::Part> parts, const store::Message& row,
                                               std::shared_ptr<store::BlobReader>& reader) {
    if (!open_stream_reader(row, reader)) return StreamOutcome::failed;
    // Only HEADER.FIELDS (.NOT) reads octets to find its ranges: the header it scans.
    const mail::ByteRange lookup = mail::section_lookup_range(parts, spec);
    std::string window;
    if (lookup.length > 0) {
        auto bytes = reader->read(lookup.offset, lookup.length);
        if (!bytes) return StreamOutcome::failed;
        window = std::move(*bytes);
    }
    auto content = mail::fetch_section(parts, window, lookup.offset, reader->size(), spec);
    mail::SectionData range = content ? std::move(*content) : mail::SectionData{};
    if (item.partial) range = range.slice(item.partial->offset, item.partial->length);
    LiteralStream::Source source;
    source.reader = reader;
    source.length = range.size();
    source.ranges = std::move(range.ranges);
    source.trailer = std::move(range.trailer);
    queue_literal(w, fetch_item_name(item), std::move(source));
    return StreamOutcome::ok;
}

Session::StreamOutcome Session::stream_binary(ResponseWriter& w, const FetchItem& item,
                                              std::span<const mail::Part> parts, const store::Message& row,
                                              std::shared_ptr<store::BlobReader>& reader) {
    if (!open_stream_reader(row, reader)) return StreamOutcome::failed;
    const std::uint64_t size = reader->size();
    // What binary_section() in messages.cpp serves: the whole message for an empty section, a part that
    // does not exist as the empty string, a multipart as BODY[part] gives it, a leaf decoded.
    std::vector<mail::ByteRange> ranges;
    mail::TransferEncoding encoding = mail::TransferEncoding::binary;
    const auto& numbers = item.section.part;
    if (numbers.empty()) {
        ranges.push_back(mail::ByteRange{0, size});
    } else if (auto index = mail::resolve_part(parts, numbers)) {
        const mail::Part& part = parts[*index];
        if (part.kind == mail::PartKind::multipart) {
            mail::SectionSpec spec;
            spec.part = numbers;
            auto section = mail::fetch_section(parts, std::string_view(), 0, size, spec);
            if (section) ranges = std::move(section->ranges);
        } else {
            if (part.encoding == mail::TransferEncoding::unknown) return StreamOutcome::unknown_cte;
            encoding = part.encoding;
            const std::uint64_t from = std::min<std::uint64_t>(part.body_offset, size);
            const std::uint64_t to = std::min<std::uint64_t>(part.end, size);
            if (to > from) ranges.push_back(mail::ByteRange{from, to - from});
        }
    }
    const std::uint64_t skip = item.partial ? item.partial->offset : 0;
    const std::uint64_t length = item.partial ? item.partial->length : UINT64_MAX;
    // One pass for the decoded size (and BINARY.SIZE) and whether the octets sent hold a NUL; the second,
    // the literal itself, follows a slice per run().
    auto measured =
        LiteralStream::measure(*reader, ranges, encoding, skip, length, config_.max_output_octets_per_run);
    if (!measured) return StreamOutcome::failed;
    if (item.kind == FetchItem::Kind::binary_size) {
        w.atom(fetch_item_name(item)).number(measured->size);
        return StreamOutcome::ok;
    }
    LiteralStream::Source source;
    source.reader = reader;
    source.ranges = std::move(ranges);
    source.encoding = encoding;
    source.skip = skip;
    source.length = skip >= measured->size ? 0 : std::min(length, measured->size - skip);
    source.literal8 = measured->nul;
    queue_literal(w, fetch_item_name(item), std::move(source));
    return StreamOutcome::ok;
}

bool Session::write_pieces(std::size_t output_before) {
    auto& pieces = fetch_->pieces;
    while (!pieces.empty()) {
        const std::size_t used = output_.size() - output_before;
        if (used >= config_.max_output_octets_per_run) return false;  // run() goes on from here
        if (auto* text = std::get_if<std::string>(&pieces.front())) {
            output_ += *text;
            pieces.pop_front();
            continue;
        }
        auto& stream = std::get<LiteralStream>(pieces.front());
        auto done = stream.write_some(output_, config_.max_output_octets_per_run - used);
        if (!done) {
            // The literal's size is announced and cannot be kept: the connection ends here (anything written
            // now would be read as the literal's octets).
            fetch_.reset();
            state_ = State::logout;  // no tagged reply and no untagged update may follow
            action_ = Action::close;
            return false;
        }
        if (*done) pieces.pop_front();
    }
    return true;
}

}  // namespace magpie::imap
