#include "imap/writer.h"

#include <algorithm>
#include <cstring>

#include "base/strings.h"
#include "imap/mutf7.h"

namespace magpie::imap {
namespace {

// Longer strings go out as literals: clients read those without scanning for escapes.
constexpr std::size_t kMaxQuotedOctets = 1024;
// More escapes than this and a literal is both shorter to read and easier on clients.
constexpr std::size_t kMaxQuotedEscapes = 8;

bool is_atom_char(unsigned char c) {
    if (c <= 0x20 || c >= 0x7F) return false;
    return std::strchr("(){%*\"\\]", c) == nullptr;
}

const char* status_name(StatusKind kind) {
    switch (kind) {
        case StatusKind::ok:
            return "OK";
        case StatusKind::no:
            return "NO";
        case StatusKind::bad:
            return "BAD";
        case StatusKind::preauth:
            return "PREAUTH";
        case StatusKind::bye:
            return "BYE";
    }
    return "BAD";
}

void append_text(std::string& out, std::string_view text) {
    for (char c : text) out.push_back(c == '\r' || c == '\n' || c == '\0' ? ' ' : c);
}

}  // namespace

ResponseWriter& ResponseWriter::untagged() {
    out_ += "* ";
    need_space_ = false;
    return *this;
}

ResponseWriter& ResponseWriter::tagged(std::string_view tag) {
    out_.append(tag);
    out_.push_back(' ');
    need_space_ = false;
    return *this;
}

ResponseWriter& ResponseWriter::continuation() {
    out_ += "+ ";
    need_space_ = false;
    return *this;
}

void ResponseWriter::separate() {
    if (need_space_) out_.push_back(' ');
    need_space_ = true;
}

ResponseWriter& ResponseWriter::atom(std::string_view token) {
    separate();
    out_.append(token);
    return *this;
}

ResponseWriter& ResponseWriter::number(std::uint64_t value) {
    return atom(std::to_string(value));
}

ResponseWriter& ResponseWriter::nil() {
    return atom("NIL");
}

ResponseWriter& ResponseWriter::string(std::string_view value) {
    // RFC 9051 4.3: a quoted string holds no CR, LF or NUL; 8-bit only as UTF-8 and only for UTF-8 clients.
    bool quotable = value.size() <= kMaxQuotedOctets;
    std::size_t escapes = 0;
    for (std::size_t i = 0; quotable && i < value.size(); ++i) {
        auto c = static_cast<unsigned char>(value[i]);
        if (c == '\r' || c == '\n' || c == 0) quotable = false;
        if (c == '"' || c == '\\') ++escapes;
    }
    if (quotable && escapes > kMaxQuotedEscapes) quotable = false;
    if (quotable && !is_ascii(value) && !(utf8_ && is_valid_utf8(value))) quotable = false;
    if (!quotable) return literal(value);
    separate();
    out_.push_back('"');
    for (char c : value) {
        if (c == '"' || c == '\\') out_.push_back('\\');
        out_.push_back(c);
    }
    out_.push_back('"');
    return *this;
}

ResponseWriter& ResponseWriter::astring(std::string_view value) {
    bool atom_ok = !value.empty() && !iequals(value, "NIL");
    for (std::size_t i = 0; atom_ok && i < value.size(); ++i) {
        auto c = static_cast<unsigned char>(value[i]);
        // "[" is an ASTRING-CHAR, but a name like "x[y" or "[Gmail]" goes out quoted, as Gmail and Dovecot
        // send them: clients (ours among them, found by fuzz_imapclient_response) read '[' in an atom as a section.
        if ((!is_atom_char(c) && c != ']') || c == '[') atom_ok = false;
    }
    if (atom_ok) return atom(value);
    return string(value);
}

ResponseWriter& ResponseWriter::nstring(std::optional<std::string_view> value) {
    if (!value) return nil();
    return string(*value);
}

ResponseWriter& ResponseWriter::literal(std::string_view value) {
    literal_header(value.size(), false);
    // Mail stored with a raw NUL (from before APPEND re-encoded binary parts) still never puts one in a
    // literal; BINARY sends literal8 instead.
    append_literal_octets(out_, value, false);
    return *this;
}

ResponseWriter& ResponseWriter::literal8(std::string_view value) {
    literal_header(value.size(), true);
    out_.append(value);
    return *this;
}

ResponseWriter& ResponseWriter::literal_header(std::uint64_t size, bool literal8) {
    separate();
    out_ += literal8 ? "~{" : "{";
    out_ += std::to_string(size);
    out_ += "}\r\n";
    return *this;
}

void append_literal_octets(std::string& out, std::string_view octets, bool literal8) {
    const std::size_t start = out.size();
    out.append(octets);
    if (!literal8) std::replace(out.begin() + static_cast<std::ptrdiff_t>(start), out.end(), '\0', '\x80');
}

ResponseWriter& ResponseWriter::binary(std::string_view value) {
    if (std::memchr(value.data(), 0, value.size()) != nullptr) return literal8(value);
    return literal(value);
}

ResponseWriter& ResponseWriter::mailbox(std::string_view utf8_name) {
    if (utf8_) return astring(utf8_name);
    auto encoded = mutf7_encode(utf8_name);
    // Names come from the store as valid UTF-8; should one not be, its octets go out as a literal rather
    // than as a made-up name.
    if (!encoded) return literal(utf8_name);
    return astring(*encoded);
}

ResponseWriter& ResponseWriter::flags(const std::vector<std::string>& flags) {
    open_list();
    for (const std::string& flag : flags) atom(flag);
    return close_list();
}

ResponseWriter& ResponseWriter::sequence_set(const SequenceSet& set) {
    return atom(set.to_string());
}

ResponseWriter& ResponseWriter::open_list() {
    separate();
    out_.push_back('(');
    need_space_ = false;
    return *this;
}

ResponseWriter& ResponseWriter::close_list() {
    out_.push_back(')');
    need_space_ = true;
    return *this;
}

ResponseWriter& ResponseWriter::text(std::string_view text) {
    separate();
    append_text(out_, text);
    return *this;
}

ResponseWriter& ResponseWriter::end() {
    out_ += "\r\n";
    need_space_ = false;
    return *this;
}

std::string ResponseWriter::take_keeping_separator() {
    std::string out = std::move(out_);
    out_.clear();
    return out;
}

std::string ResponseWriter::take() {
    std::string out = std::move(out_);
    out_.clear();
    need_space_ = false;
    return out;
}

std::string fetch_item_name(const FetchItem& item) {
    using K = FetchItem::Kind;
    std::string out;
    switch (item.kind) {
        case K::envelope:
            return "ENVELOPE";
        case K::flags:
            return "FLAGS";
        case K::internal_date:
            return "INTERNALDATE";
        case K::rfc822:
            return "RFC822";
        case K::rfc822_header:
            return "RFC822.HEADER";
        case K::rfc822_size:
            return "RFC822.SIZE";
        case K::rfc822_text:
            return "RFC822.TEXT";
        case K::body:
            return "BODY";
        case K::body_structure:
            return "BODYSTRUCTURE";
        case K::uid:
            return "UID";
        case K::mod_seq:
            return "MODSEQ";
        case K::email_id:
            return "EMAILID";
        case K::thread_id:
            return "THREADID";
        case K::body_section:
            out = "BODY[";
            break;
        case K::binary:
            out = "BINARY[";
            break;
        case K::binary_size:
            out = "BINARY.SIZE[";
            break;
    }
    const Section& section = item.section;
    for (std::size_t i = 0; i < section.part.size(); ++i) {
        if (i > 0) out.push_back('.');
        out += std::to_string(section.part[i]);
    }
    const char* text = nullptr;
    switch (section.text) {
        case Section::Text::none:
            break;
        case Section::Text::header:
            text = "HEADER";
            break;
        case Section::Text::header_fields:
            text = "HEADER.FIELDS";
            break;
        case Section::Text::header_fields_not:
            text = "HEADER.FIELDS.NOT";
            break;
        case Section::Text::text:
            text = "TEXT";
            break;
        case Section::Text::mime:
            text = "MIME";
            break;
    }
    if (text != nullptr) {
        if (!section.part.empty()) out.push_back('.');
        out += text;
    }
    if (section.text == Section::Text::header_fields || section.text == Section::Text::header_fields_not) {
        ResponseWriter fields;
        fields.open_list();
        for (const std::string& field : section.fields) fields.astring(field);
        fields.close_list();
        out += " " + fields.take();
    }
    out.push_back(']');
    if (item.partial) out += "<" + std::to_string(item.partial->offset) + ">";
    return out;
}

std::string status_response(std::string_view tag, StatusKind kind, std::string_view code,
                            std::string_view text) {
    std::string out(tag);
    out.push_back(' ');
    out += status_name(kind);
    if (!code.empty()) {
        out += " [";
        append_text(out, code);
        out.push_back(']');
    }
    // RFC 9051 7.1: resp-text needs some text; a bare code is followed by a space and text anyway.
    out.push_back(' ');
    append_text(out, text.empty() ? std::string_view(status_name(kind)) : text);
    out += "\r\n";
    return out;
}

std::string continuation_response(std::string_view text) {
    std::string out = "+ ";
    append_text(out, text);
    out += "\r\n";
    return out;
}

std::string error_response(const ParseError& error) {
    return status_response(error.tag,
                           error.status == ParseError::Status::no ? StatusKind::no : StatusKind::bad,
                           error.code, error.message);
}

std::string appenduid_code(std::uint32_t uid_validity, const SequenceSet& uids) {
    return "APPENDUID " + std::to_string(uid_validity) + " " + uids.to_string();
}

std::string copyuid_code(std::uint32_t uid_validity, const SequenceSet& source_uids,
                         const SequenceSet& dest_uids) {
    return "COPYUID " + std::to_string(uid_validity) + " " + source_uids.to_string() + " " +
           dest_uids.to_string();
}

}  // namespace magpie::imap
