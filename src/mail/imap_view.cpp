#include "mail/imap_view.h"

#include <algorithm>
#include <cstring>

#include "base/strings.h"
#include "mail/address.h"
#include "mail/decode.h"
#include "mail/header_encode.h"

namespace magpie::mail {
namespace {

constexpr std::size_t kMaxQuoted = 1024;  // longer strings go as literals, which clients handle best

void append_nstring(std::string& out, std::string_view s) { out += imap_nstring(s); }

// RFC 3501 7.4.2: address structures, groups as (NIL NIL "name" NIL) ... (NIL NIL NIL NIL).
void append_address_list(std::string& out, std::string_view value) {
    std::vector<Address> list = parse_address_list(unfold(value));
    if (list.empty()) {
        out += "NIL";
        return;
    }
    auto append_mailbox = [&out](const Mailbox& m) {
        out += '(';
        append_nstring(out, m.raw_name);
        out += ' ';
        append_nstring(out, m.route);
        out += ' ';
        out += imap_string(m.local_part);
        out += ' ';
        out += imap_string(m.domain);  // "" rather than NIL: NIL host marks a group
        out += ')';
    };
    out += '(';
    for (const Address& a : list) {
        if (a.is_group) {
            out += "(NIL NIL ";
            out += imap_string(a.raw_group_name);
            out += " NIL)";
            for (const Mailbox& m : a.members) append_mailbox(m);
            out += "(NIL NIL NIL NIL)";
        } else {
            for (const Mailbox& m : a.members) append_mailbox(m);
        }
    }
    out += ')';
}

// body-fld-lines (RFC 3501 7.4.2): the line ends in exactly the octets BODY[n] returns. The CRLF before a
// boundary belongs to the boundary (RFC 2046 5.1.1), so a part ending "abc" CRLF "--b" has no line end, and
// an unterminated last line is not counted either (Dovecot counts the same way).
std::size_t count_lines(std::string_view body) {
    return static_cast<std::size_t>(std::count(body.begin(), body.end(), '\n'));
}

// Writes BODY and BODYSTRUCTURE in one walk: they differ only by the extension data.
struct BodyOut {
    std::string* basic = nullptr;     // may be null when only the extended form is wanted
    std::string* extended = nullptr;  // may be null when only the basic form is wanted

    void both(std::string_view s) {
        if (basic) basic->append(s);
        if (extended) extended->append(s);
    }
    void both(char c) { both(std::string_view(&c, 1)); }
    void ext(std::string_view s) {
        if (extended) extended->append(s);
    }
};

// body-fld-param. A text part always names its charset: RFC 2045 5.2's default us-ascii is added beside the
// other parameters when none is given (RFC 3501 7.4.2 example; Dovecot adds it last, as here).
void append_params(std::string& out, const ParameterList& params, bool default_charset) {
    std::vector<RawParameter> list = join_rfc2231_sections(params.raw);
    auto is_charset = [](const RawParameter& p) { return iequals(p.name, "charset"); };
    bool has_charset = std::any_of(list.begin(), list.end(), is_charset);
    if (default_charset && !has_charset) list.push_back(RawParameter{"charset", "us-ascii"});
    if (list.empty()) {
        out += "NIL";
        return;
    }
    out += '(';
    bool first = true;
    for (const RawParameter& p : list) {
        if (!first) out += ' ';
        first = false;
        out += imap_string(p.name);
        out += ' ';
        out += imap_string(p.value);
    }
    out += ')';
}

// body-ext-1part / body-ext-mpart tail: disposition, language, location (RFC 3501 7.4.2).
void append_disposition_language_location(std::string& out, const Header& header) {
    out += ' ';
    if (const HeaderField* f = header.find("Content-Disposition")) {
        ContentDisposition cd = parse_content_disposition(f->raw_value);
        if (cd.kind.empty()) {
            out += "NIL";
        } else {
            out += '(';
            out += imap_string(cd.kind);
            out += ' ';
            append_params(out, cd.params, false);
            out += ')';
        }
    } else {
        out += "NIL";
    }
    out += ' ';
    std::string language = header.value("Content-Language");
    std::vector<std::string_view> tags;
    for (std::string_view t : split(language, ',')) {
        t = trim(t);
        if (!t.empty()) tags.push_back(t);
    }
    if (tags.empty()) {
        out += "NIL";
    } else if (tags.size() == 1) {
        out += imap_string(tags[0]);
    } else {
        out += '(';
        for (std::size_t i = 0; i < tags.size(); ++i) {
            if (i) out += ' ';
            out += imap_string(tags[i]);
        }
        out += ')';
    }
    out += ' ';
    append_nstring(out, header.value("Content-Location"));
}

// A multipart the parser could not split (no boundary parameter, no delimiter line, only the close
// delimiter, or beyond the nesting limit): a leaf in the tree, so its octets stay reachable as BODY[n] and
// BODY[TEXT], while IMAP describes it as Dovecot does, a multipart of one empty text/plain part.
bool unsplit_multipart(const Part& part) { return part.kind == PartKind::leaf && iequals(part.type, "multipart"); }

void append_body(BodyOut& out, const Message& m, const Part& part) {
    Header header = m.header(part);
    ContentType ct = m.content_type(part);
    std::string tail;  // extension data, BODYSTRUCTURE only
    if (part.kind == PartKind::multipart || unsplit_multipart(part)) {
        out.both('(');
        for (std::uint32_t c = part.first_child; c != kNoPart; c = m.parts()[c].next_sibling) {
            append_body(out, m, m.parts()[c]);
        }
        if (part.kind != PartKind::multipart) {
            // RFC 3501 9 (body-type-mpart) needs at least one part: an empty text/plain, as Dovecot answers,
            // whose sections (BODY[n.1], n.1.MIME, BINARY) are empty too (resolve_part finds no such part).
            out.both("(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0");
            out.ext(" NIL NIL NIL NIL");
            out.both(")");
        }
        out.both(' ');
        out.both(imap_string(part.subtype));
        if (out.extended) {
            tail += ' ';
            append_params(tail, ct.params, false);
            append_disposition_language_location(tail, header);
            out.ext(tail);
        }
        out.both(')');
        return;
    }
    std::string_view body = m.body(part);
    std::string fields = "(";
    fields += imap_string(part.type);
    fields += ' ';
    fields += imap_string(part.subtype);
    fields += ' ';
    append_params(fields, ct.params, iequals(part.type, "text"));
    fields += ' ';
    append_nstring(fields, header.value("Content-ID"));
    fields += ' ';
    append_nstring(fields, header.value("Content-Description"));
    fields += ' ';
    // body-fld-enc: the mechanism token as written, without comments or trailing junk (RFC 2045 6.1).
    std::string encoding = header.value("Content-Transfer-Encoding");
    std::string_view token = encoding;
    token = token.substr(0, token.find_first_of(" \t(;"));
    fields += imap_string(token.empty() ? std::string_view("7bit") : token);
    fields += ' ';
    fields += std::to_string(body.size());
    out.both(fields);
    if (part.kind == PartKind::message) {
        const Part& inner = m.parts()[part.first_child];
        out.both(' ');
        out.both(imap_envelope(m, inner));
        out.both(' ');
        append_body(out, m, inner);
        out.both(' ');
        out.both(std::to_string(count_lines(body)));
    } else if (iequals(part.type, "message") && (iequals(part.subtype, "rfc822") || iequals(part.subtype, "global"))) {
        // Not parsed (transfer-encoded, or beyond the depth limit), but the grammar (RFC 3501 9, media-message)
        // still wants an envelope, a body and a line count: describe an empty message, as Dovecot does.
        out.both(" (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0");
        out.ext(" NIL NIL NIL NIL");
        out.both(") ");
        out.both(std::to_string(count_lines(body)));
    } else if (iequals(part.type, "text")) {
        out.both(' ');
        out.both(std::to_string(count_lines(body)));
    }
    if (out.extended) {
        tail += ' ';
        append_nstring(tail, header.value("Content-MD5"));
        append_disposition_language_location(tail, header);
        out.ext(tail);
    }
    out.both(')');
}

// A part's body within `message`, clipped: a stored structure may not match the bytes it is used with.
std::string_view clipped_body(const Part& part, std::string_view message) {
    std::size_t from = std::min(part.body_offset, message.size());
    return message.substr(from, std::min(part.end, message.size()) - from);
}

std::size_t find_child(std::span<const Part> parts, std::uint32_t parent, std::uint32_t n) {
    std::uint32_t c = parts[parent].first_child;
    for (std::uint32_t i = 1; c != kNoPart && i < n; ++i) c = parts[c].next_sibling;
    return c;
}

// Scans the header of `target` and keeps the fields named (or not named) in `names`. `window` holds the
// message's octets from `base` on, at least up to the target's body.
SectionData header_fields(std::string_view window, std::size_t base, const Part& target,
                          const std::vector<std::string>& names, bool exclude) {
    std::vector<HeaderField> fields;
    ParseLimits limits;
    HeaderScan scan = scan_header(window, target.header_offset - base, target.body_offset - base, limits, fields);
    SectionData data;
    bool last_unterminated = false;
    for (const HeaderField& f : fields) {
        bool named = std::any_of(names.begin(), names.end(), [&](const std::string& n) { return iequals(n, f.name); });
        if (named == exclude) continue;
        const std::size_t offset = base + f.offset;
        if (!data.ranges.empty() && data.ranges.back().offset + data.ranges.back().length == offset) {
            data.ranges.back().length += f.length;  // adjacent fields: one range
        } else {
            data.ranges.push_back(ByteRange{offset, f.length});
        }
        last_unterminated = window[f.offset + f.length - 1] != '\n';
    }
    // The blank line that ends a header (RFC 3501 6.4.5: HEADER.FIELDS includes it).
    if (scan.body_offset > scan.header_end) {
        data.ranges.push_back(ByteRange{base + scan.header_end, scan.body_offset - scan.header_end});
    } else {
        data.trailer = last_unterminated ? "\r\n\r\n" : "\r\n";
    }
    return data;
}

// The part whose header HEADER, HEADER.FIELDS and TEXT read: the message itself, or the message inside a
// message/rfc822 part. invalid_argument when the part is no message.
Result<const Part*> text_target(std::span<const Part> parts, const Part& part, const SectionSpec& spec) {
    if (spec.part.empty()) return &part;
    if (part.kind != PartKind::message) return make_error(Errc::invalid_argument, "part is not a message");
    return &parts[part.first_child];
}

}  // namespace

std::string imap_string(std::string_view s) {
    bool quotable = s.size() <= kMaxQuoted;
    bool nul = false;
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        nul = nul || u == 0;
        if (u == 0 || u == '\r' || u == '\n' || u >= 0x80) quotable = false;
    }
    if (quotable) return quoted_string(s);
    if (!nul) return "{" + std::to_string(s.size()) + "}\r\n" + std::string(s);
    // No IMAP string may hold NUL (RFC 3501 9: CHAR8 excludes it); U+FFFD stands for it, as in Dovecot.
    std::string text;
    for (char c : s) {
        if (c == '\0') text += "\xEF\xBF\xBD";
        else text += c;
    }
    return "{" + std::to_string(text.size()) + "}\r\n" + text;
}

std::string imap_nstring(std::string_view s) { return s.empty() ? std::string("NIL") : imap_string(s); }

std::string imap_envelope(const Message& message, const Part& root) {
    Header h = message.header(root);
    std::string out = "(";
    append_nstring(out, h.value("Date"));
    out += ' ';
    append_nstring(out, h.value("Subject"));
    const HeaderField* from = h.find("From");
    auto address_field = [&](std::string_view name, const HeaderField* fallback) {
        out += ' ';
        const HeaderField* f = h.find(name);
        // RFC 3501 7.4.2: an absent or empty Sender / Reply-To takes the value of From.
        if ((!f || trim(unfold(f->raw_value)).empty()) && fallback) f = fallback;
        if (!f) {
            out += "NIL";
            return;
        }
        append_address_list(out, f->raw_value);
    };
    address_field("From", nullptr);
    address_field("Sender", from);
    address_field("Reply-To", from);
    address_field("To", nullptr);
    address_field("Cc", nullptr);
    address_field("Bcc", nullptr);
    out += ' ';
    append_nstring(out, h.value("In-Reply-To"));
    out += ' ';
    append_nstring(out, h.value("Message-ID"));
    out += ')';
    return out;
}

std::string imap_body_structure(const Message& message, bool extended) {
    std::string out;
    out.reserve(256);
    BodyOut writer;
    (extended ? writer.extended : writer.basic) = &out;
    append_body(writer, message, message.root());
    return out;
}

void imap_body_and_structure(const Message& message, std::string& body, std::string& body_structure) {
    body.clear();
    body_structure.clear();
    BodyOut writer{&body, &body_structure};
    append_body(writer, message, message.root());
}

Result<SectionSpec> parse_section(std::string_view text, const SectionLimits& limits) {
    SectionSpec spec;
    std::string_view rest = trim(text);
    while (!rest.empty() && rest[0] >= '0' && rest[0] <= '9') {
        std::size_t dot = rest.find('.');
        std::string_view number = rest.substr(0, dot);
        auto n = parse_uint(number);
        if (!n || *n == 0 || *n > UINT32_MAX) return make_error(Errc::invalid_argument, "bad section part number");
        if (spec.part.size() >= limits.max_part_numbers) return make_error(Errc::limit_exceeded, "section too deep");
        spec.part.push_back(static_cast<std::uint32_t>(*n));
        if (dot == std::string_view::npos) return spec;
        rest = rest.substr(dot + 1);
        if (rest.empty()) return make_error(Errc::invalid_argument, "section ends with a dot");
    }
    if (rest.empty()) return spec;
    auto keyword = [&](std::string_view k) {
        if (rest.size() >= k.size() && iequals(rest.substr(0, k.size()), k) &&
            (rest.size() == k.size() || rest[k.size()] == ' ' || rest[k.size()] == '(')) {
            rest = trim(rest.substr(k.size()));
            return true;
        }
        return false;
    };
    if (keyword("HEADER.FIELDS.NOT")) {
        spec.text = SectionSpec::Text::header_fields_not;
    } else if (keyword("HEADER.FIELDS")) {
        spec.text = SectionSpec::Text::header_fields;
    } else if (keyword("HEADER")) {
        spec.text = SectionSpec::Text::header;
    } else if (keyword("TEXT")) {
        spec.text = SectionSpec::Text::text;
    } else if (keyword("MIME")) {
        if (spec.part.empty()) return make_error(Errc::invalid_argument, "MIME needs a part number");
        spec.text = SectionSpec::Text::mime;
    } else {
        return make_error(Errc::invalid_argument, "unknown section text");
    }
    if (spec.text == SectionSpec::Text::header_fields || spec.text == SectionSpec::Text::header_fields_not) {
        if (rest.size() < 2 || rest.front() != '(' || rest.back() != ')')
            return make_error(Errc::invalid_argument, "HEADER.FIELDS needs a parenthesized list");
        std::string_view list = rest.substr(1, rest.size() - 2);
        for (std::string_view name : split(list, ' ')) {
            name = trim(name);
            if (name.empty()) continue;
            if (name.size() >= 2 && name.front() == '"' && name.back() == '"') name = name.substr(1, name.size() - 2);
            if (spec.fields.size() >= limits.max_fields) return make_error(Errc::limit_exceeded, "too many fields");
            spec.fields.emplace_back(name);
        }
        if (spec.fields.empty()) return make_error(Errc::invalid_argument, "empty HEADER.FIELDS list");
    } else if (!rest.empty()) {
        return make_error(Errc::invalid_argument, "junk after section text");
    }
    return spec;
}

std::size_t SectionData::size() const {
    std::size_t n = trailer.size();
    for (const ByteRange& r : ranges) n += r.length;
    return n;
}

std::string SectionData::materialize(std::string_view message) const {
    std::string out;
    out.reserve(size());
    for (const ByteRange& r : ranges) {
        if (r.offset < message.size()) out.append(message.substr(r.offset, r.length));
    }
    out += trailer;
    return out;
}

SectionData SectionData::slice(std::size_t offset, std::size_t length) const {
    SectionData out;
    for (const ByteRange& r : ranges) {
        if (length == 0) return out;
        if (offset >= r.length) {
            offset -= r.length;
            continue;
        }
        std::size_t take = std::min(r.length - offset, length);
        out.ranges.push_back(ByteRange{r.offset + offset, take});
        length -= take;
        offset = 0;
    }
    if (length > 0 && offset < trailer.size()) out.trailer = trailer.substr(offset, length);
    return out;
}

Result<std::uint32_t> resolve_part(std::span<const Part> parts, const std::vector<std::uint32_t>& numbers) {
    if (parts.empty()) return make_error(Errc::not_found, "no such part");
    std::uint32_t current = 0;
    bool at_message = true;  // `current` is a message whose body the next number indexes into
    for (std::uint32_t n : numbers) {
        if (!at_message && parts[current].kind == PartKind::message) {
            current = parts[current].first_child;  // RFC 3501 6.4.5: numbers go on inside the message
            at_message = true;
        }
        const Part& node = parts[current];
        if (node.kind == PartKind::multipart) {
            std::size_t child = find_child(parts, current, n);
            if (child == kNoPart) return make_error(Errc::not_found, "no such part");
            current = static_cast<std::uint32_t>(child);
        } else if (at_message && n == 1 && !unsplit_multipart(node)) {
            // Part 1 of a non-multipart message is its body: the same node.
        } else {
            return make_error(Errc::not_found, "no such part");
        }
        at_message = false;
    }
    return current;
}

Result<SectionData> fetch_section(std::span<const Part> parts, std::string_view message, const SectionSpec& spec) {
    return fetch_section(parts, message, 0, message.size(), spec);
}

ByteRange section_lookup_range(std::span<const Part> parts, const SectionSpec& spec) {
    using Text = SectionSpec::Text;
    if (spec.text != Text::header_fields && spec.text != Text::header_fields_not) return {};
    auto index = resolve_part(parts, spec.part);
    if (!index) return {};
    auto target = text_target(parts, parts[*index], spec);
    if (!target) return {};
    return ByteRange{(*target)->header_offset, (*target)->body_offset - (*target)->header_offset};
}

Result<SectionData> fetch_section(std::span<const Part> parts, std::string_view window, std::size_t window_offset,
                                  std::size_t message_size, const SectionSpec& spec) {
    auto index = resolve_part(parts, spec.part);
    if (!index) return SectionData{};  // RFC 3501 6.4.5: a missing part reads as empty
    const Part& part = parts[*index];
    auto range = [&](std::size_t from, std::size_t to) {
        from = std::min(from, message_size);
        to = std::min(std::max(to, from), message_size);
        SectionData data;
        if (to > from) data.ranges.push_back(ByteRange{from, to - from});
        return data;
    };
    using Text = SectionSpec::Text;
    if (spec.text == Text::none) {
        return spec.part.empty() ? range(0, message_size) : range(part.body_offset, part.end);
    }
    if (spec.text == Text::mime) return range(part.header_offset, part.body_offset);
    // HEADER, HEADER.FIELDS, TEXT: of the message itself or of an encapsulated message/rfc822.
    auto target = text_target(parts, part, spec);
    if (!target) return target.error();
    switch (spec.text) {
        case Text::header:
            // Exactly the header's octets, like MIME: a message with no blank line has none to return, and
            // an added CRLF would make BODY[HEADER] + BODY[TEXT] longer than RFC822.SIZE (Dovecot agrees).
            return range((*target)->header_offset, (*target)->body_offset);
        case Text::header_fields:
        case Text::header_fields_not: {
            const Part& t = **target;
            // scan_header clips to the window, so bytes that do not match the structure are never overrun.
            if (t.header_offset < window_offset || t.body_offset < t.header_offset)
                return make_error(Errc::invalid_argument, "the header is outside the bytes at hand");
            return header_fields(window, window_offset, t, spec.fields, spec.text == Text::header_fields_not);
        }
        case Text::text: return range((*target)->body_offset, (*target)->end);
        default: break;
    }
    return SectionData{};
}

Result<std::string> fetch_binary(std::span<const Part> parts, std::string_view message,
                                 const std::vector<std::uint32_t>& numbers) {
    auto index = resolve_part(parts, numbers);
    if (!index) return index.error();
    const Part& part = parts[*index];
    if (numbers.empty()) return std::string(message);
    std::string_view body = clipped_body(part, message);
    if (part.kind == PartKind::multipart) return std::string(body);  // RFC 2045 6.4: always identity
    if (part.encoding == TransferEncoding::unknown) return make_error(Errc::invalid_argument, "unknown transfer encoding");
    return decode_transfer(body, part.encoding);
}

Result<std::size_t> binary_size(std::span<const Part> parts, std::string_view message,
                                const std::vector<std::uint32_t>& numbers) {
    auto index = resolve_part(parts, numbers);
    if (!index) return index.error();
    const Part& part = parts[*index];
    if (numbers.empty()) return message.size();
    std::string_view body = clipped_body(part, message);
    if (part.kind == PartKind::multipart) return body.size();
    if (part.encoding == TransferEncoding::unknown) return make_error(Errc::invalid_argument, "unknown transfer encoding");
    return decoded_transfer_size(body, part.encoding);
}

}  // namespace magpie::mail
