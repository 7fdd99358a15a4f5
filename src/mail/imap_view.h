// What IMAP serves from a message's structure (RFC 3501 / RFC 9051): the ENVELOPE and BODYSTRUCTURE
// strings in exact IMAP syntax, the byte ranges of any BODY[section] in the original message bytes, and
// the decoded BINARY[section] of a part (RFC 3516). Section lookups work on a part table, so they serve a
// freshly parsed Message and a stored Structure alike.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "mail/mime.h"

namespace magpie::mail {

// RFC 3501 7.4.2 ENVELOPE of the message (or of the encapsulated message at `message_root`).
std::string imap_envelope(const Message& message, const Part& message_root);
inline std::string imap_envelope(const Message& message) { return imap_envelope(message, message.root()); }

// BODYSTRUCTURE (extended = true, with extension data) or BODY (extended = false) of the whole message.
std::string imap_body_structure(const Message& message, bool extended);
// Both at once (one walk of the tree), as delivery stores them.
void imap_body_and_structure(const Message& message, std::string& body, std::string& body_structure);

// An IMAP string: quoted when it is short 7-bit text, a literal {n}CRLF... otherwise; NIL never. A NUL,
// which no IMAP string may hold, is sent as U+FFFD.
std::string imap_string(std::string_view s);
// As imap_string, but NIL for an empty value.
std::string imap_nstring(std::string_view s);

// A parsed section-spec (RFC 3501 6.4.5): part numbers, then an optional text part.
struct SectionSpec {
    enum class Text { none, header, header_fields, header_fields_not, text, mime };
    std::vector<std::uint32_t> part;  // "1.2.3" -> {1, 2, 3}; empty for the whole message
    Text text = Text::none;
    std::vector<std::string> fields;  // for HEADER.FIELDS (.NOT)
};

struct SectionLimits {
    std::size_t max_part_numbers = 64;  // depth of "1.2.3..."
    std::size_t max_fields = 256;       // names in HEADER.FIELDS
};

// Parses what is between the brackets of BODY[...]: "", "1.2", "HEADER", "3.TEXT", "1.MIME",
// "HEADER.FIELDS (From To)", "2.HEADER.FIELDS.NOT (X-Y)". Case-insensitive.
Result<SectionSpec> parse_section(std::string_view text, const SectionLimits& limits = {});

struct ByteRange {
    std::size_t offset = 0;
    std::size_t length = 0;
};

// A section's content: slices of the message in order, then `trailer` (a CRLF the message lacks, e.g. the
// blank line ending HEADER.FIELDS when the header had none).
struct SectionData {
    std::vector<ByteRange> ranges;
    std::string trailer;

    std::size_t size() const;
    std::string materialize(std::string_view message) const;
    // The octets [offset, offset + length) of this section, for BODY[...]<offset.length> (RFC 3501 6.4.5);
    // clipped to the section's end.
    SectionData slice(std::size_t offset, std::size_t length) const;
};

// Resolves a section over a part table (Message::parts() or Structure::parts()) and the message bytes.
// A section that does not exist yields an empty SectionData (RFC 3501 6.4.5 says an empty string); a
// request that cannot apply (HEADER of a part that is not message/rfc822) is invalid_argument.
Result<SectionData> fetch_section(std::span<const Part> parts, std::string_view message, const SectionSpec& spec);

// For a message not held in memory (a large one served from its blob in slices): the octets a section's
// lookup reads besides the part table, which is the header HEADER.FIELDS (.NOT) scans; empty for every
// other section (their ranges follow from the part table alone).
ByteRange section_lookup_range(std::span<const Part> parts, const SectionSpec& spec);
// fetch_section over a message of `message_size` octets of which only `window`, the octets at
// [window_offset, window_offset + window.size()), is at hand; the window must cover
// section_lookup_range(parts, spec). The ranges returned are offsets in the whole message.
Result<SectionData> fetch_section(std::span<const Part> parts, std::string_view window, std::size_t window_offset,
                                  std::size_t message_size, const SectionSpec& spec);

// The part a list of part numbers names, or not_found.
Result<std::uint32_t> resolve_part(std::span<const Part> parts, const std::vector<std::uint32_t>& numbers);

// BINARY[part] (RFC 3516): the transfer-decoded body of a part. An unknown transfer encoding is
// invalid_argument (the server answers [UNKNOWN-CTE]); a multipart's body is returned as it is, since a
// multipart is identity-encoded by definition (RFC 2045 6.4). A part that does not exist is not_found.
Result<std::string> fetch_binary(std::span<const Part> parts, std::string_view message,
                                 const std::vector<std::uint32_t>& numbers);
// BINARY.SIZE[part]: the size of what fetch_binary returns.
Result<std::size_t> binary_size(std::span<const Part> parts, std::string_view message,
                                const std::vector<std::uint32_t>& numbers);

}  // namespace magpie::mail
