// The Email properties that come from the message bytes (RFC 8621 4.1.2-4.1.4): header fields in every
// parsed form (4.1.2: Raw, Text, Addresses, GroupedAddresses, MessageIds, Date, URLs; "header:X:asY:all"),
// the convenience header properties, bodyStructure with textBody, htmlBody and attachments chosen by the
// RFC's parseStructure algorithm, bodyValues and preview. Sans-IO: bytes in, JSON out, parsed with src/mail;
// the store-side properties (id, mailboxIds, keywords, ...) are the caller's. A part's blob id is the
// message's blob id, '.', and the part's index in the parsed tree, so a part is served from its message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace magpie::http {

struct BodyValueOptions {
    bool fetch_text = false;  // fetchTextBodyValues
    bool fetch_html = false;  // fetchHTMLBodyValues
    bool fetch_all = false;   // fetchAllBodyValues
    std::size_t max_bytes = 0;  // maxBodyValueBytes; 0 = whole values
    std::optional<std::vector<std::string>> body_properties;  // bodyProperties; nullopt = the RFC's default
};

// Is this a property email_view can compute (a convenience property, a body property, or a well-formed
// "header:" property)?
bool is_message_property(std::string_view property);

// The requested message-derived properties of the Email stored as `bytes` with blob id `blob_id`. Unknown
// names are skipped (the caller checked them with is_message_property).
nlohmann::json email_view(std::string_view bytes, std::string_view blob_id, const std::vector<std::string>& properties,
                          const BodyValueOptions& options);

// The text a reader sees (RFC 8621 4.4.1 "body"): the decoded textBody parts, or the htmlBody parts with
// their tags stripped when there is no text, joined by newlines.
std::string email_body_text(std::string_view bytes);

// Part blob ids: "<message blob id>.<part index>".
std::string part_blob_id(std::string_view message_blob_id, std::uint32_t part_index);
std::optional<std::pair<std::string, std::uint32_t>> split_part_blob_id(std::string_view blob_id);
// The decoded bytes of part `part_index` of the message, or nullopt when there is no such leaf part.
std::optional<std::string> part_content(std::string_view bytes, std::uint32_t part_index);

// RFC 3339 UTCDate "2026-11-29T23:00:00Z" (RFC 8620 1.4) and back; parse gives nullopt when malformed.
std::string utc_date(std::int64_t unix_seconds);
std::optional<std::int64_t> parse_utc_date(std::string_view text);

}  // namespace magpie::http
