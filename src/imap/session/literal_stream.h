// A FETCH literal whose octets come from a stored blob a slice at a time (issue 12 item 15): BODY[section]
// and BINARY[section] of a large message are written without holding the message, or the response, whole.
// The session announces "{n}" (or "~{n}") and then asks the stream for at most a budget of octets per
// run(), so one session's memory stays bounded by its output slice whatever the message size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "mail/decode.h"
#include "mail/imap_view.h"
#include "store/blob.h"

namespace magpie::imap {

class LiteralStream {
public:
    // What to send: `ranges` of the blob then `trailer`, transfer-decoded by `encoding` for BINARY of an
    // encoded leaf (identity encodings pass through), of which the `length` octets from `skip` on (the
    // partial fetch <skip.length>, in decoded octets). literal8: sent as "~{n}" octets, NUL allowed;
    // otherwise each NUL goes out as 0x80 (append_literal_octets).
    struct Source {
        std::shared_ptr<store::BlobReader> reader;
        std::vector<mail::ByteRange> ranges;
        std::string trailer;
        mail::TransferEncoding encoding = mail::TransferEncoding::seven_bit;
        std::uint64_t skip = 0;
        std::uint64_t length = 0;
        bool literal8 = false;
    };

    // What a pass over a source's octets found: its (decoded) size, and whether a NUL lies in the octets
    // [skip, skip + length) that a BINARY literal would carry (then it must be literal8, RFC 3516 4.2).
    struct Measure {
        std::uint64_t size = 0;
        bool nul = false;
    };
    // Reads the ranges `slice_octets` at a time (memory bounded by a slice and its decoding).
    static Result<Measure> measure(store::BlobReader& reader, const std::vector<mail::ByteRange>& ranges,
                                   mail::TransferEncoding encoding, std::uint64_t skip, std::uint64_t length,
                                   std::size_t slice_octets);

    LiteralStream(Source source, std::size_t slice_octets);

    std::uint64_t remaining() const { return remaining_; }
    const std::shared_ptr<store::BlobReader>& reader() const { return source_.reader; }
    // Appends up to `budget` more octets of the literal to `out`. Returns true once all `length` octets are
    // written, false when the budget is spent or the stream needs blob octets first (wanted()). It never
    // reads the blob itself: the session asks the store for wanted() (a ReadBlobRange request) and gives
    // the octets to supply(). An error (the blob holds fewer octets than announced) leaves the literal
    // unfinished: the connection cannot go on after it.
    Result<bool> write_some(std::string& out, std::size_t budget);
    // The blob octets (at most a slice) the stream needs before it can write more, if any.
    std::optional<mail::ByteRange> wanted() const { return wanted_; }
    // The octets read for wanted(): all of them (fewer is Errc::corrupt: the announced size cannot be kept).
    Result<void> supply(std::string octets);

private:
    // Moves to the next slice of the source: asks for a range's octets (wanted_) or takes the trailer;
    // false when the source is exhausted.
    bool advance();
    void drop_skipped();

    Source source_;
    std::size_t slice_octets_;
    std::uint64_t remaining_;
    std::size_t range_ = 0;           // the range being read
    std::uint64_t range_offset_ = 0;  // octets of it already read
    bool trailer_sent_ = false;
    std::optional<mail::TransferDecoder> decoder_;
    std::optional<mail::ByteRange> wanted_;  // octets to read before writing more
    std::string pending_;  // decoded octets not written yet (after skipping)
    std::size_t pending_at_ = 0;
};

}  // namespace magpie::imap
