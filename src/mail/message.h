// Header fields of an RFC 5322 message or MIME part, read zero-copy over the original bytes: where each field
// starts and ends, its raw (folded) value, and where the header ends and the body begins. Tolerates bare LF,
// obsolete syntax (RFC 5322 4.5), 8-bit bytes and a missing blank line; never reads past the given span.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace magpie::mail {

// Bounds on what one parse may build; exceeding one degrades (fields ignored, parts kept as leaves) and sets
// a flag, never fails or grows without bound.
struct ParseLimits {
    std::size_t max_header_fields = 2000;     // per header block (message or part)
    std::size_t max_total_fields = 50000;     // in the whole message, all parts together
    std::size_t max_header_octets = 1 << 20;  // one header block; the rest is treated as body
    std::size_t max_depth = 32;               // nesting of multipart / message parts (never above 256)
    std::size_t max_parts = 5000;             // parts in the whole tree, root included
};

// One header field. Views point into the message bytes; offsets are from the start of the message.
struct HeaderField {
    std::string_view name;       // as written, without trailing white space before the colon
    std::string_view raw_value;  // after the colon up to (not including) the final line end; folds kept
    std::size_t offset = 0;      // first byte of the field name
    std::size_t length = 0;      // the whole field including its final CRLF or LF

    // RFC 5322 2.2.3: CRLF (or bare LF) followed by WSP removed; leading and trailing WSP trimmed.
    std::string unfolded() const;
    // The unfolded value with RFC 2047 encoded words decoded, in UTF-8 (for unstructured fields).
    std::string decoded() const;
};

// Result of scanning one header block.
struct HeaderScan {
    std::size_t header_end = 0;  // end of the last field (where the blank line, if any, starts)
    std::size_t body_offset = 0; // first byte of the body (after the blank line, or header_end if none)
    bool limit_hit = false;      // a field count or size limit stopped the scan
};

// Scans the header block starting at `begin` within `message[0, end)`, appending fields to `out`. A line
// that is neither a field nor a continuation ends the header without a blank line (it becomes the body),
// except an mbox "From " line at offset 0, which is skipped.
HeaderScan scan_header(std::string_view message, std::size_t begin, std::size_t end, const ParseLimits& limits,
                       std::vector<HeaderField>& out);

// Read-only view over the fields of one header block, in order.
class Header {
public:
    Header() = default;
    explicit Header(std::span<const HeaderField> fields) : fields_(fields) {}

    std::span<const HeaderField> fields() const { return fields_; }
    // First field with this name (ASCII case-insensitive), or nullptr.
    const HeaderField* find(std::string_view name) const;
    // Every field with this name, in message order.
    std::vector<const HeaderField*> find_all(std::string_view name) const;
    // Unfolded value of the first such field; empty when absent.
    std::string value(std::string_view name) const;
    // Decoded (RFC 2047, UTF-8) value of the first such field; empty when absent.
    std::string decoded(std::string_view name) const;
    bool has(std::string_view name) const { return find(name) != nullptr; }

private:
    std::span<const HeaderField> fields_;
};

// Unfolds a raw field value (see HeaderField::unfolded).
std::string unfold(std::string_view raw_value);

// The msg-ids of a Message-ID, In-Reply-To or References value (RFC 5322 3.6.4), each with its angle
// brackets, in order; comments and obsolete phrases between them (RFC 5322 4.5.4) are skipped. A value
// with no brackets at all yields its first word. At most `max_ids` are returned.
std::vector<std::string> parse_message_ids(std::string_view value, std::size_t max_ids = 1000);

}  // namespace magpie::mail
