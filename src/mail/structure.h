// The compact serialized structure stored beside a message at delivery (ARCHITECTURE rule 4): the part
// table (byte offsets, kinds, types, encodings), ENVELOPE, BODY and BODYSTRUCTURE. Reading it back gives
// every IMAP FETCH item about structure, and the byte ranges of sections, without re-parsing the message.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "mail/mime.h"

namespace magpie::mail {

// Serializes a parsed message's structure. The format is versioned ("MGS1") and little-endian varints.
std::string serialize_structure(const Message& message);

// A deserialized structure. Owns its bytes; parts() views stay valid as long as the Structure lives.
class Structure {
public:
    struct Limits {
        std::size_t max_parts = 100000;       // refuse a blob that claims more parts
        std::size_t max_octets = 64u << 20;   // refuse a larger blob
    };

    // Checks everything it reads (counts, offsets, links) and fails with Errc::corrupt on a bad blob.
    static Result<Structure> parse(std::string_view blob, const Limits& limits);
    static Result<Structure> parse(std::string_view blob) { return parse(blob, Limits{}); }

    std::span<const Part> parts() const { return parts_; }
    std::string_view envelope() const { return envelope_; }
    std::string_view body() const { return body_; }                    // FETCH BODY
    std::string_view body_structure() const { return body_structure_; } // FETCH BODYSTRUCTURE
    std::size_t message_size() const { return message_size_; }

private:
    std::unique_ptr<std::string> blob_;  // heap-held so the views below survive moves
    std::vector<Part> parts_;
    std::string_view envelope_, body_, body_structure_;
    std::size_t message_size_ = 0;
};

}  // namespace magpie::mail
