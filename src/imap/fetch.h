// The FETCH data items of RFC 9051 6.4.5 (with BINARY from RFC 3516 and MODSEQ from RFC 7162) as typed
// values. Macros (ALL, FAST, FULL) are expanded by the parser into the items they stand for.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace magpie::imap {

// section-spec of RFC 9051 9: an optional part path ("1.2.3") and an optional text part.
struct Section {
    enum class Text {
        none,               // the whole part (or the whole message when part is empty)
        header,             // HEADER
        header_fields,      // HEADER.FIELDS (fields)
        header_fields_not,  // HEADER.FIELDS.NOT (fields)
        text,               // TEXT
        mime,               // MIME (only after a part number)
    };
    std::vector<std::uint32_t> part;
    Text text = Text::none;
    // Header names of the two HEADER.FIELDS forms as the client wrote them (the reply echoes the section);
    // match them case-insensitively.
    std::vector<std::string> fields;
    bool operator==(const Section&) const = default;
};

// "<offset.length>" after a section (RFC 9051 6.4.5).
struct Partial {
    std::uint64_t offset = 0;
    std::uint64_t length = 0;  // nz-number
    bool operator==(const Partial&) const = default;
};

struct FetchItem {
    enum class Kind {
        envelope,
        flags,
        internal_date,
        rfc822,         // rev1: same as BODY[]
        rfc822_header,  // rev1: same as BODY.PEEK[HEADER]
        rfc822_size,
        rfc822_text,  // rev1: same as BODY[TEXT]
        body,         // BODY: the non-extensible BODYSTRUCTURE
        body_structure,
        uid,
        body_section,  // BODY[section]<partial> and BODY.PEEK[...]
        binary,        // BINARY[part]<partial> and BINARY.PEEK[...] (RFC 3516)
        binary_size,   // BINARY.SIZE[part]
        mod_seq,       // MODSEQ (RFC 7162 3.1.4.1)
        email_id,      // EMAILID (RFC 8474 5.1)
        thread_id,     // THREADID (RFC 8474 5.2)
    };
    Kind kind = Kind::flags;
    bool peek = false;  // BODY.PEEK / BINARY.PEEK: do not set \Seen
    Section section;
    std::optional<Partial> partial;
    bool operator==(const FetchItem&) const = default;
};

}  // namespace magpie::imap
