// Typed readings of the untagged data a client asks for: FETCH items (UID, FLAGS, INTERNALDATE,
// RFC822.SIZE, ENVELOPE, BODYSTRUCTURE, BODY[section]<origin> and BINARY[section] contents), LIST, SEARCH
// and ESEARCH ALL, STATUS, and the APPENDUID/COPYUID codes (RFC 4315). Text meant for people (subjects,
// display names) comes out decoded to UTF-8 (RFC 2047 encoded words); mailbox names from modified UTF-7.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "imap/client/response.h"

namespace magpie::imap::client {

// One address of an ENVELOPE (RFC 9051 7.5.2: name, adl, mailbox, host). Group markers are dropped.
struct EnvelopeAddress {
    std::string name;  // decoded to UTF-8
    std::string mailbox;
    std::string host;
    std::string addr_spec() const;  // "mailbox@host"
    std::string display() const;    // "Name <mailbox@host>" or the bare address
};

struct Envelope {
    std::string date;     // as sent (RFC 5322 date-time)
    std::string subject;  // decoded to UTF-8
    std::vector<EnvelopeAddress> from, sender, reply_to, to, cc, bcc;
    std::string in_reply_to;  // msg-ids as sent
    std::string message_id;
};

// A BODYSTRUCTURE node (RFC 9051 7.5.2) with its section number ("1.2"; "" for a single-part message's
// body, which is section "1" when fetched, RFC 9051 6.4.5).
struct BodyStructure {
    std::string type;                                             // lower case
    std::string subtype;                                          // lower case
    std::vector<std::pair<std::string, std::string>> parameters;  // names lower case, values as sent
    std::string id;
    std::string description;
    std::string encoding;  // lower case
    std::uint64_t size = 0;
    std::string disposition;  // lower case; "" for none
    std::vector<std::pair<std::string, std::string>> disposition_parameters;
    std::vector<BodyStructure> children;  // multipart members, or the one message/rfc822 body
    std::string section;

    bool is_multipart() const { return type == "multipart"; }
    std::string parameter(std::string_view name) const;
    // The file name: the disposition's filename, else the type's name parameter; RFC 2231 and RFC 2047
    // encodings undone.
    std::string filename() const;
    // An attachment to list: a leaf with disposition "attachment", or any non-text leaf with a file name.
    bool is_attachment() const;
};

struct FetchData {
    std::uint32_t sequence = 0;
    std::optional<std::uint32_t> uid;
    std::optional<std::vector<std::string>> flags;
    std::optional<std::uint64_t> size;  // RFC822.SIZE
    std::string internal_date;          // as sent
    std::optional<Envelope> envelope;
    std::optional<BodyStructure> body_structure;
    // BODY[...] / BINARY[...] contents by item name as the server wrote it, upper case, origin dropped:
    // "BODY[]", "BODY[HEADER]", "BINARY[2]". NIL is an empty string.
    std::map<std::string, std::string> sections;
};

// "* n FETCH (...)"; an error when the item list cannot be read.
Result<FetchData> parse_fetch(const Untagged& response);
Result<Envelope> parse_envelope(const Value& value);
// `section` is the number of `value` in its message ("" at the top).
Result<BodyStructure> parse_body_structure(const Value& value, std::string section = {});

struct ListEntry {
    std::vector<std::string> attributes;  // "\HasNoChildren", "\Trash", ...
    std::string delimiter;                // "" for NIL
    std::string name;                     // UTF-8
};
// `utf8`: the client enabled UTF8=ACCEPT or IMAP4rev2, so the server sends names as UTF-8 (RFC 9051 6.3.1,
// RFC 6855 3) and "&" is only "&"; otherwise a name is decoded from modified UTF-7 (RFC 3501 5.1.3) when
// it decodes, and kept as sent when it does not.
Result<ListEntry> parse_list(const Untagged& response, bool utf8 = false);

// Message numbers or UIDs of "* SEARCH n n n" or "* ESEARCH ... ALL 1:3,5" (RFC 4731).
Result<std::vector<std::uint32_t>> parse_search(const Untagged& response);

// "uidvalidity uid" of [APPENDUID ...] or the destination UIDs of [COPYUID validity src dst].
struct UidCode {
    std::uint32_t uid_validity = 0;
    std::vector<std::uint32_t> uids;
};
Result<UidCode> parse_append_uid(const ResponseText& text);
Result<UidCode> parse_copy_uid(const ResponseText& text);

// Expands a sequence set of numbers ("1:3,7") into numbers; "*" is not allowed here. At most `max` values.
Result<std::vector<std::uint32_t>> expand_sequence_set(std::string_view set, std::size_t max = 1'000'000);

}  // namespace magpie::imap::client
