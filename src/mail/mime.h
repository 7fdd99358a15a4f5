// The MIME tree of a message (RFC 2045, RFC 2046), parsed zero-copy over the message bytes: every part's
// header and body byte ranges, its type, its transfer encoding and its children, held flat in one vector
// (parts()[0] is the message itself) so a parse allocates per message, not per part.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mail/message.h"
#include "mail/mime_params.h"

namespace magpie::mail {

enum class PartKind : std::uint8_t {
    leaf,       // a body of its own
    multipart,  // children between boundaries (RFC 2046 5.1)
    message,    // message/rfc822 or message/global: one child, the encapsulated message (RFC 2046 5.2.1)
};

enum class TransferEncoding : std::uint8_t { seven_bit, eight_bit, binary, quoted_printable, base64, unknown };

// RFC 2045 6.1; a missing field means 7bit, an unknown one `unknown` (its body is served as is).
TransferEncoding parse_transfer_encoding(std::string_view value);
std::string_view transfer_encoding_name(TransferEncoding encoding);  // "7bit", "base64", ...

inline constexpr std::uint32_t kNoPart = UINT32_MAX;

// One node. Offsets are from the start of the message; views point into the message bytes (or, for a
// Structure, into its serialized form).
struct Part {
    std::size_t header_offset = 0;  // first byte of the part's header (its MIME header)
    std::size_t body_offset = 0;    // first byte of the body, after the blank line
    std::size_t end = 0;            // one past the body; the line break before a boundary is not included
    std::size_t preamble_end = 0;   // multipart: where the first boundary line starts
    std::size_t epilogue_offset = 0;// multipart: after the closing boundary line (== end when missing)
    std::uint32_t parent = kNoPart;
    std::uint32_t first_child = kNoPart;
    std::uint32_t next_sibling = kNoPart;
    std::uint32_t first_field = 0;  // into Message::fields()
    std::uint32_t field_count = 0;
    std::uint16_t depth = 0;
    PartKind kind = PartKind::leaf;
    TransferEncoding encoding = TransferEncoding::seven_bit;
    bool closed = true;             // multipart: a closing boundary was seen
    std::string_view type;          // as written (compare case-insensitively); "text" when defaulted
    std::string_view subtype;       // "plain" (or "rfc822" in a digest) when defaulted

    std::size_t header_length() const { return body_offset - header_offset; }
    std::size_t body_length() const { return end - body_offset; }
    bool is(std::string_view t, std::string_view s) const;
};

// A parsed message. Borrows the bytes: they must outlive it.
class Message {
public:
    static Message parse(std::string_view bytes, const ParseLimits& limits = {});

    std::string_view bytes() const { return bytes_; }
    std::span<const Part> parts() const { return parts_; }
    const Part& root() const { return parts_.front(); }
    std::span<const HeaderField> fields() const { return fields_; }

    Header header(const Part& part) const;
    Header header() const { return header(root()); }
    std::string_view raw_header(const Part& part) const;  // header and blank line
    std::string_view body(const Part& part) const;
    ContentType content_type(const Part& part) const;      // fully parsed, parameters included
    ContentDisposition content_disposition(const Part& part) const;
    std::uint32_t index_of(const Part& part) const { return static_cast<std::uint32_t>(&part - parts_.data()); }

    // A ParseLimits bound was reached; the tree is complete up to it.
    bool limit_hit() const { return limit_hit_; }

private:
    friend class TreeBuilder;
    std::string_view bytes_;
    std::vector<HeaderField> fields_;
    std::vector<Part> parts_;
    bool limit_hit_ = false;
};

}  // namespace magpie::mail
