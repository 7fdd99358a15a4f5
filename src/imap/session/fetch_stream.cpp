// FETCH of large messages (issue 12 item 15): BODY[section], RFC822* and BINARY[section] of a message above
// max_output_octets_per_run are served from its blob in slices. Section offsets come from the stored
// structure (the header a HEADER.FIELDS scans is the only part read ahead), the literal is announced with
// its exact size, and its octets follow a slice per run(), so memory per session stays bounded by the
// output slice whatever the message size. The same rules as for small messages apply: each NUL of a {n}
// literal goes out as 0x80, BINARY uses ~{n} when its octets hold a NUL (RFC 3516 4.2), partial fetches
// <origin.count> count octets of the section (decoded octets for BINARY).
#include "imap/session/session.h"

namespace magpie::imap {

Session::StreamOutcome Session::stream_reader(const store::Message& row) {
    if (fetch_->reader) return *fetch_->reader ? StreamOutcome::ok : StreamOutcome::failed;
    ask(request::OpenBlob{row.blob_id}, [this](Result<std::shared_ptr<store::BlobReader>> opened) {
        fetch_->reader.emplace(std::move(opened));
        resume_fetch();
    });
    return StreamOutcome::waiting;
}

void Session::queue_literal(ResponseWriter& w, std::string_view name, LiteralStream::Source source) {
    w.atom(name).literal_header(source.length, source.literal8);
    fetch_->pieces.emplace_back(w.take_keeping_separator());
    fetch_->pieces.emplace_back(LiteralStream(std::move(source), config_.max_output_octets_per_run));
}

Session::StreamOutcome Session::stream_section(ResponseWriter& w, std::size_t item_index, const FetchItem& item,
                                               const mail::SectionSpec& spec, std::span<const mail::Part> parts,
                                               const store::Message& row) {
    if (auto opened = stream_reader(row); opened != StreamOutcome::ok) return opened;
    const std::shared_ptr<store::BlobReader>& reader = **fetch_->reader;
    // Only HEADER.FIELDS (.NOT) reads octets to find its ranges: the header it scans.
    const mail::ByteRange lookup = mail::section_lookup_range(parts, spec);
    std::string_view window;
    if (lookup.length > 0) {
        auto read = fetch_->windows.find(item_index);
        if (read == fetch_->windows.end()) {
            ask(request::ReadBlobRange{reader, lookup.offset, static_cast<std::size_t>(lookup.length)},
                [this, item_index](Result<std::string> bytes) {
                    fetch_->windows.emplace(item_index, std::move(bytes));
                    resume_fetch();
                });
            return StreamOutcome::waiting;
        }
        if (!read->second) return StreamOutcome::failed;
        window = *read->second;
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

Session::StreamOutcome Session::stream_binary(ResponseWriter& w, std::size_t item_index, const FetchItem& item,
                                              std::span<const mail::Part> parts, const store::Message& row) {
    if (auto opened = stream_reader(row); opened != StreamOutcome::ok) return opened;
    const std::shared_ptr<store::BlobReader>& reader = **fetch_->reader;
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
    // One pass for the decoded size (and BINARY.SIZE) and whether the octets sent hold a NUL, asked of the
    // store (MeasureBinary); the second, the literal itself, follows a slice per run().
    auto measured = fetch_->measures.find(item_index);
    if (measured == fetch_->measures.end()) {
        ask(request::MeasureBinary{reader, ranges, encoding, skip, length, config_.max_output_octets_per_run},
            [this, item_index](Result<LiteralStream::Measure> measure) {
                fetch_->measures.emplace(item_index, std::move(measure));
                resume_fetch();
            });
        return StreamOutcome::waiting;
    }
    if (!measured->second) return StreamOutcome::failed;
    const LiteralStream::Measure& measure = *measured->second;
    if (item.kind == FetchItem::Kind::binary_size) {
        w.atom(fetch_item_name(item)).number(measure.size);
        return StreamOutcome::ok;
    }
    LiteralStream::Source source;
    source.reader = reader;
    source.ranges = std::move(ranges);
    source.encoding = encoding;
    source.skip = skip;
    source.length = skip >= measure.size ? 0 : std::min(length, measure.size - skip);
    source.literal8 = measure.nul;
    queue_literal(w, fetch_item_name(item), std::move(source));
    return StreamOutcome::ok;
}

bool Session::write_pieces() {
    auto& pieces = fetch_->pieces;
    while (!pieces.empty()) {
        if (fetch_output_full()) return false;  // run() goes on from here
        if (auto* text = std::get_if<std::string>(&pieces.front())) {
            output_ += *text;
            pieces.pop_front();
            continue;
        }
        auto& stream = std::get<LiteralStream>(pieces.front());
        const std::size_t used = output_.size() - output_mark_;
        auto done = stream.write_some(output_, config_.max_output_octets_per_run - used);
        if (!done) {
            fail_stream();
            return false;
        }
        if (*done) {
            pieces.pop_front();
            continue;
        }
        if (auto range = stream.wanted()) {
            // The next slice of the literal, read on the store's executor; the session holds no thread.
            ask(request::ReadBlobRange{stream.reader(), range->offset, static_cast<std::size_t>(range->length)},
                [this](Result<std::string> bytes) {
                    auto& literal = std::get<LiteralStream>(fetch_->pieces.front());
                    if (!bytes || !literal.supply(std::move(*bytes))) {
                        fail_stream();
                        return;
                    }
                    resume_fetch();
                });
            return false;
        }
    }
    return true;
}

void Session::fail_stream() {
    // The literal's size is announced and cannot be kept: the connection ends here (anything written now
    // would be read as the literal's octets).
    fetch_.reset();
    state_ = State::logout;  // no tagged reply and no untagged update may follow
    action_ = Action::close;
}

}  // namespace magpie::imap
