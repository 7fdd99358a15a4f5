// Building IMAP server responses (RFC 9051 7): status responses with response codes, and data responses
// assembled token by token, with each string written in the safest form it allows (atom, quoted string or
// literal, literal8 "~{n}" for BINARY). The writer only formats; the handlers decide what to say.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "imap/fetch.h"
#include "imap/parser.h"
#include "imap/sequence_set.h"

namespace magpie::imap {

enum class StatusKind { ok, no, bad, preauth, bye };

// A response line built token by token: tokens are separated by one SP automatically, except right after
// the start of a response or an opening parenthesis. Example:
//   ResponseWriter w;
//   w.untagged().number(12).atom("FETCH").open_list().atom("UID").number(4).close_list().end();
// gives "* 12 FETCH (UID 4)\r\n".
class ResponseWriter {
public:
    // utf8: the client enabled IMAP4rev2 or UTF8=ACCEPT, so quoted strings may carry UTF-8 and mailbox
    // names go out as UTF-8 instead of modified UTF-7.
    explicit ResponseWriter(bool utf8 = false) : utf8_(utf8) {}

    ResponseWriter& untagged();                    // "* "
    ResponseWriter& tagged(std::string_view tag);  // "tag "
    ResponseWriter& continuation();                // "+ "

    ResponseWriter& atom(std::string_view token);  // a keyword, flag or other token written as given
    ResponseWriter& number(std::uint64_t value);
    ResponseWriter& nil();
    ResponseWriter& string(std::string_view value);   // quoted when safe, else a literal
    ResponseWriter& astring(std::string_view value);  // an atom when it can be one, else string()
    ResponseWriter& nstring(std::optional<std::string_view> value);
    ResponseWriter& literal(std::string_view value);   // "{n}\r\n" + octets, each NUL sent as 0x80
    ResponseWriter& literal8(std::string_view value);  // "~{n}\r\n" + octets (RFC 3516 4.2)
    // BINARY[...] content: literal8 only when it holds a NUL, which plain literals cannot carry.
    ResponseWriter& binary(std::string_view value);
    // Only the announcement "{n}\r\n" (or "~{n}\r\n"): the caller sends the n octets itself, a slice at a
    // time through append_literal_octets() (FETCH of a large message), then goes on with this writer.
    ResponseWriter& literal_header(std::uint64_t size, bool literal8);
    // A mailbox name held as UTF-8, encoded for this client (modified UTF-7 unless utf8).
    ResponseWriter& mailbox(std::string_view utf8_name);
    ResponseWriter& flags(const std::vector<std::string>& flags);  // "(\Seen $Junk)"
    ResponseWriter& sequence_set(const SequenceSet& set);
    ResponseWriter& open_list();
    ResponseWriter& close_list();
    // Free text up to the end of the line (resp-text); CR and LF become spaces.
    ResponseWriter& text(std::string_view text);
    ResponseWriter& end();  // CRLF: the response line is complete

    const std::string& buffer() const { return out_; }
    std::string take();
    // As take(), but the next token is still separated from what was taken (a streamed literal's octets
    // go between the two).
    std::string take_keeping_separator();

private:
    void separate();

    std::string out_;
    bool utf8_;
    bool need_space_ = false;
};

// Appends a slice of a {n} literal's octets to `out`, each NUL as 0x80 (RFC 9051 4.3: CHAR8 excludes NUL;
// one octet for one, so sizes and partial offsets agree, as Dovecot does). literal8 octets go as they are.
void append_literal_octets(std::string& out, std::string_view octets, bool literal8);

// The name a FETCH reply gives an item (RFC 9051 7.5.2): "BODY[1.2.HEADER.FIELDS (From)]<0>" for
// BODY.PEEK[1.2.HEADER.FIELDS (From)]<0.100> (PEEK dropped, only the partial's origin kept), "UID", ...
std::string fetch_item_name(const FetchItem& item);

// "tag OK [code] text\r\n"; tag "*" for untagged. code is written inside brackets when not empty.
std::string status_response(std::string_view tag, StatusKind kind, std::string_view code,
                            std::string_view text);

// "+ text\r\n": a continuation request, e.g. a SASL challenge (base64) or IDLE's "+ idling".
std::string continuation_response(std::string_view text);

// The reply to a parser error: "tag BAD [code] message\r\n" (or NO), ready to write.
std::string error_response(const ParseError& error);

// Response codes of UIDPLUS (RFC 4315 3): "APPENDUID 38505 3955" and "COPYUID 38505 304,319:320 3956:3958".
std::string appenduid_code(std::uint32_t uid_validity, const SequenceSet& uids);
std::string copyuid_code(std::uint32_t uid_validity, const SequenceSet& source_uids,
                         const SequenceSet& dest_uids);

}  // namespace magpie::imap
