#include "mail/mime.h"

#include <algorithm>
#include <cstring>

#include "base/strings.h"
#include "mail/lexer.h"

namespace magpie::mail {
namespace {

using lex::is_token_char;
using lex::is_ws;
using lex::skip_cfws;

// memmem is handed at most this many bytes at a time. A sanitizer's memmem interceptor checks the whole range
// it is given at every call, so a delimiter-like string recurring through a long part (a one-letter boundary
// in a 30 MB body) cost the rest of the part per hit under AddressSanitizer: quadratic in the test build.
constexpr std::size_t kSearchWindow = 64 * 1024;

// Where `needle` (not empty) next occurs in s[from, end), or npos: memmem over windows that overlap by the
// needle's length less one, so an occurrence across two windows is found in the second.
std::size_t find_bytes(std::string_view s, std::string_view needle, std::size_t from, std::size_t end) {
    const std::size_t window = std::max(kSearchWindow, 2 * needle.size());
    while (from < end && end - from >= needle.size()) {
        const std::size_t length = std::min(end - from, window);
        const void* hit = memmem(s.data() + from, length, needle.data(), needle.size());
        if (hit) return static_cast<std::size_t>(static_cast<const char*>(hit) - s.data());
        if (length == end - from) break;
        from += length - (needle.size() - 1);
    }
    return std::string_view::npos;
}

// "type/subtype" of a raw Content-Type value without allocating; false when it is not one.
bool read_type(std::string_view v, std::string_view& type, std::string_view& subtype, std::size_t& after) {
    std::size_t i = 0;
    skip_cfws(v, i);
    std::size_t start = i;
    while (i < v.size() && is_token_char(v[i])) ++i;
    type = v.substr(start, i - start);
    skip_cfws(v, i);
    if (type.empty() || i >= v.size() || v[i] != '/') return false;
    ++i;
    skip_cfws(v, i);
    start = i;
    while (i < v.size() && is_token_char(v[i])) ++i;
    subtype = v.substr(start, i - start);
    after = i;
    return !subtype.empty();
}

// The boundary parameter, as a view into the field when it needs no unquoting (the usual case), otherwise
// copied into `storage`.
std::string_view find_boundary(std::string_view params, std::string& storage) {
    std::size_t i = 0;
    bool extended = false;
    while (i < params.size()) {
        std::size_t semi = params.find(';', i);
        if (semi == std::string_view::npos) break;
        i = semi + 1;
        skip_cfws(params, i);
        std::size_t name_start = i;
        while (i < params.size() && params[i] != '=' && params[i] != ';' && !is_ws(params[i])) ++i;
        std::string_view name = params.substr(name_start, i - name_start);
        if (istarts_with(name, "boundary*")) extended = true;
        skip_cfws(params, i);
        if (!iequals(name, "boundary") || i >= params.size() || params[i] != '=') continue;
        ++i;
        skip_cfws(params, i);
        if (i < params.size() && params[i] == '"') {
            std::size_t close = i + 1;
            bool plain = true;
            while (close < params.size() && params[close] != '"') {
                if (params[close] == '\\' || params[close] == '\r' || params[close] == '\n') plain = false;
                if (params[close] == '\\') ++close;
                ++close;
            }
            close = std::min(close, params.size());
            if (plain) return params.substr(i + 1, close - i - 1);
            storage.clear();
            for (std::size_t k = i + 1; k < close; ++k) {
                if (params[k] == '\\' && k + 1 < close) ++k;
                if (params[k] != '\r' && params[k] != '\n') storage.push_back(params[k]);
            }
            return storage;
        }
        std::size_t start = i;
        while (i < params.size() && params[i] != ';' && !is_ws(params[i])) ++i;
        return params.substr(start, i - start);
    }
    if (extended) {  // RFC 2231 continuations of a boundary: rare, take the slow path
        storage = parse_parameters(params.substr(params.find(';') + 1)).get("boundary");
        return storage;
    }
    return {};
}

bool only_space_until_eol(std::string_view s, std::size_t i, std::size_t end, std::size_t& next_line) {
    while (i < end && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) ++i;
    if (i < end && s[i] != '\n') return false;
    next_line = i < end ? i + 1 : end;
    return true;
}

}  // namespace

TransferEncoding parse_transfer_encoding(std::string_view value) {
    std::string_view v = trim(value);
    while (!v.empty() && is_ws(v.back())) v.remove_suffix(1);
    while (!v.empty() && is_ws(v.front())) v.remove_prefix(1);
    if (std::size_t cut = v.find_first_of(" \t\r\n(;"); cut != std::string_view::npos) v = v.substr(0, cut);
    if (v.empty() || iequals(v, "7bit")) return TransferEncoding::seven_bit;
    if (iequals(v, "8bit")) return TransferEncoding::eight_bit;
    if (iequals(v, "binary")) return TransferEncoding::binary;
    if (iequals(v, "quoted-printable")) return TransferEncoding::quoted_printable;
    if (iequals(v, "base64")) return TransferEncoding::base64;
    return TransferEncoding::unknown;
}

std::string_view transfer_encoding_name(TransferEncoding encoding) {
    switch (encoding) {
        case TransferEncoding::seven_bit: return "7bit";
        case TransferEncoding::eight_bit: return "8bit";
        case TransferEncoding::binary: return "binary";
        case TransferEncoding::quoted_printable: return "quoted-printable";
        case TransferEncoding::base64: return "base64";
        case TransferEncoding::unknown: break;
    }
    return "unknown";
}

bool Part::is(std::string_view t, std::string_view s) const { return iequals(type, t) && iequals(subtype, s); }

// Builds the flat tree depth-first; recursion is bounded by ParseLimits::max_depth.
class TreeBuilder {
public:
    TreeBuilder(Message& m, const ParseLimits& limits) : m_(m), s_(m.bytes_), limits_(limits) {}

    void parse_part(std::uint32_t index, std::size_t begin, std::size_t end, bool in_digest) {
        {
            Part& part = m_.parts_[index];
            part.header_offset = begin;
            part.end = end;
            part.first_field = static_cast<std::uint32_t>(m_.fields_.size());
        }
        // Fields are kept for every part: bound their total too, not only per header block.
        ParseLimits block = limits_;
        std::size_t used = m_.fields_.size();
        block.max_header_fields = std::min(limits_.max_header_fields,
                                           used < limits_.max_total_fields ? limits_.max_total_fields - used : 0);
        HeaderScan scan = scan_header(s_, begin, end, block, m_.fields_);
        if (scan.limit_hit) m_.limit_hit_ = true;
        Part& part = m_.parts_[index];
        part.field_count = static_cast<std::uint32_t>(m_.fields_.size() - part.first_field);
        part.body_offset = scan.body_offset;
        part.type = in_digest ? "message" : "text";
        part.subtype = in_digest ? "rfc822" : "plain";
        std::string_view content_type;
        bool encoding_seen = false;
        for (std::uint32_t f = part.first_field; f < part.first_field + part.field_count; ++f) {
            const HeaderField& field = m_.fields_[f];
            if (content_type.empty() && iequals(field.name, "Content-Type")) {
                content_type = field.raw_value;
            } else if (!encoding_seen && iequals(field.name, "Content-Transfer-Encoding")) {
                // The first field counts, as for Content-Type and for BODYSTRUCTURE's body-fld-enc.
                part.encoding = parse_transfer_encoding(field.raw_value);
                encoding_seen = true;
            }
        }
        std::size_t params_at = 0;
        std::string_view type, subtype;
        if (!content_type.empty() && read_type(content_type, type, subtype, params_at)) {
            part.type = type;
            part.subtype = subtype;
        }
        // Recursion: whatever the configuration says, never deeper than the stack comfortably allows.
        constexpr std::size_t kHardMaxDepth = 256;
        bool may_nest = part.depth + 1u < std::min(limits_.max_depth, kHardMaxDepth);
        if (iequals(part.type, "multipart")) {
            std::string storage;
            std::string_view boundary = find_boundary(content_type.substr(params_at), storage);
            if (boundary.empty()) return;  // no boundary: served as an opaque leaf
            if (!may_nest) {
                m_.limit_hit_ = true;
                return;
            }
            parse_multipart(index, boundary, iequals(part.subtype, "digest"));
        } else if (iequals(part.type, "message") &&
                   (iequals(part.subtype, "rfc822") || iequals(part.subtype, "global")) &&
                   (part.encoding == TransferEncoding::seven_bit || part.encoding == TransferEncoding::eight_bit ||
                    part.encoding == TransferEncoding::binary)) {
            // RFC 2046 5.2.1: only identity encodings; an encoded message/rfc822 stays a leaf.
            if (!may_nest || m_.parts_.size() >= limits_.max_parts) {
                m_.limit_hit_ = true;
                return;
            }
            std::uint32_t child = add_child(index);
            m_.parts_[index].kind = PartKind::message;
            parse_part(child, m_.parts_[index].body_offset, m_.parts_[index].end, false);
        }
    }

private:
    // Appends a child after `previous` (kNoPart for the first child), so adding k children costs O(k).
    std::uint32_t add_child(std::uint32_t parent, std::uint32_t previous = kNoPart) {
        auto child = static_cast<std::uint32_t>(m_.parts_.size());
        Part node;
        node.parent = parent;
        node.depth = static_cast<std::uint16_t>(m_.parts_[parent].depth + 1);
        m_.parts_.push_back(node);
        if (previous == kNoPart) {
            m_.parts_[parent].first_child = child;
        } else {
            m_.parts_[previous].next_sibling = child;
        }
        return child;
    }

    // Finds the next boundary line ("--boundary" or "--boundary--", then only white space) at or after
    // `from`. Returns its start, sets `after` to the next line and `close` for a closing delimiter.
    std::size_t find_delimiter(std::string_view boundary, std::size_t from, std::size_t end, std::size_t& after,
                               bool& close) const {
        const std::size_t floor = from;
        std::string dash_boundary = "--";
        dash_boundary += boundary;
        while (from < end) {
            const std::size_t line = find_bytes(s_, dash_boundary, from, end);
            if (line == std::string_view::npos) return std::string_view::npos;
            from = line + 1;
            if (line != floor && s_[line - 1] != '\n') continue;  // RFC 2046 5.1.1: at the start of a line
            std::size_t i = line + dash_boundary.size();
            close = i + 1 < end && s_[i] == '-' && s_[i + 1] == '-';
            if (close) i += 2;
            if (!only_space_until_eol(s_, i, end, after)) {
                if (!close) continue;
                close = false;
                continue;
            }
            return line;
        }
        return std::string_view::npos;
    }

    // Where a part before a delimiter line ends: the CRLF (or LF) before the line belongs to the delimiter.
    std::size_t content_end_before(std::size_t line, std::size_t floor) const {
        if (line > floor && s_[line - 1] == '\n') {
            --line;
            if (line > floor && s_[line - 1] == '\r') --line;
        }
        return line;
    }

    void parse_multipart(std::uint32_t index, std::string_view boundary, bool digest) {
        const std::size_t body = m_.parts_[index].body_offset;
        const std::size_t end = m_.parts_[index].end;
        m_.parts_[index].kind = PartKind::multipart;
        m_.parts_[index].closed = false;
        std::size_t after = 0;
        bool close = false;
        std::size_t line = find_delimiter(boundary, body, end, after, close);
        m_.parts_[index].preamble_end = line == std::string_view::npos ? end : content_end_before(line, body);
        m_.parts_[index].epilogue_offset = end;
        if (line == std::string_view::npos) {
            m_.parts_[index].kind = PartKind::leaf;  // no boundary line at all: nothing to split
            return;
        }
        if (close) {
            m_.parts_[index].closed = true;
            m_.parts_[index].epilogue_offset = after;
        }
        std::uint32_t previous = kNoPart;
        while (!close) {
            std::size_t child_begin = after;
            std::size_t next_after = 0;
            bool next_close = false;
            std::size_t next = find_delimiter(boundary, child_begin, end, next_after, next_close);
            std::size_t child_end = next == std::string_view::npos ? end : content_end_before(next, child_begin);
            if (m_.parts_.size() >= limits_.max_parts) {
                m_.limit_hit_ = true;
                break;
            }
            std::uint32_t child = add_child(index, previous);
            previous = child;
            parse_part(child, child_begin, child_end, digest);
            if (next == std::string_view::npos) break;  // missing closing boundary: the part runs to the end
            after = next_after;
            close = next_close;
            if (close) {
                m_.parts_[index].closed = true;
                m_.parts_[index].epilogue_offset = after;
            }
        }
        if (m_.parts_[index].first_child == kNoPart) {
            // Only a closing delimiter, or no room for a child: nothing to split (see the no-boundary case).
            m_.parts_[index].kind = PartKind::leaf;
        }
    }

    Message& m_;
    std::string_view s_;
    const ParseLimits& limits_;
};

Message Message::parse(std::string_view bytes, const ParseLimits& limits) {
    Message m;
    m.bytes_ = bytes;
    m.parts_.reserve(8);
    m.fields_.reserve(32);
    m.parts_.emplace_back();
    TreeBuilder(m, limits).parse_part(0, 0, bytes.size(), false);
    return m;
}

Header Message::header(const Part& part) const {
    return Header(std::span<const HeaderField>(fields_).subspan(part.first_field, part.field_count));
}

std::string_view Message::raw_header(const Part& part) const {
    return bytes_.substr(part.header_offset, part.body_offset - part.header_offset);
}

std::string_view Message::body(const Part& part) const { return bytes_.substr(part.body_offset, part.end - part.body_offset); }

ContentType Message::content_type(const Part& part) const {
    const HeaderField* f = header(part).find("Content-Type");
    ContentType ct = f ? parse_content_type(f->raw_value) : ContentType{};
    if (!ct.present && iequals(part.type, "message")) {  // digest default, RFC 2046 5.1.5
        ct.type = "message";
        ct.subtype = "rfc822";
    }
    return ct;
}

ContentDisposition Message::content_disposition(const Part& part) const {
    const HeaderField* f = header(part).find("Content-Disposition");
    return f ? parse_content_disposition(f->raw_value) : ContentDisposition{};
}

}  // namespace magpie::mail
