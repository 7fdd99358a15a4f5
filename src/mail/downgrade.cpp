#include "mail/downgrade.h"

#include <cstring>
#include <functional>

#include "base/strings.h"
#include "mail/base64.h"
#include "mail/decode.h"
#include "mail/mime.h"
#include "mail/transfer_choice.h"

namespace magpie::mail {

namespace {

bool fits_7bit(const BodyStats& stats) {
    return stats.eight_bit == 0 && stats.nul == 0 && stats.longest_line <= kMaxBodyLineOctets;
}

bool is_identity(TransferEncoding encoding) {
    return encoding == TransferEncoding::seven_bit || encoding == TransferEncoding::eight_bit ||
           encoding == TransferEncoding::binary;
}

class Downgrader {
public:
    explicit Downgrader(const Message& message) : m_(message), s_(message.bytes()) {
        out_.reserve(s_.size() * 5 / 4);
    }

    Result<std::string> run() {
        MAGPIE_TRY(write_part(m_.root()));
        return std::move(out_);
    }

private:
    // Writes the part's header, replacing Content-Transfer-Encoding by `new_encoding` when one is given. A
    // header that ended without a blank line before a non-empty body gets one: the body starts where it
    // did, but a re-encoded first body line or an added field could otherwise be read as part of the header.
    Result<void> write_header(const Part& part, std::string_view new_encoding) {
        std::string_view raw = s_.substr(part.header_offset, part.body_offset - part.header_offset);
        if (!is_ascii(raw)) return make_error(Errc::invalid_argument, "8-bit header field needs SMTPUTF8");
        Header header = m_.header(part);
        std::size_t fields_end = part.header_offset;
        for (const HeaderField& field : header.fields())
            fields_end = std::max(fields_end, field.offset + field.length);
        if (header.fields().empty()) {
            // Only an mbox "From " line and/or the blank line.
            std::size_t blank = 0;
            if (raw == "\n" || raw.ends_with("\n\n")) blank = 1;
            if (raw == "\r\n" || raw.ends_with("\n\r\n")) blank = 2;
            fields_end = part.body_offset - blank;
        }
        std::size_t pos = part.header_offset;
        if (!new_encoding.empty()) {
            for (const HeaderField& field : header.fields()) {
                if (!iequals(trim(field.name), "Content-Transfer-Encoding")) continue;
                out_.append(s_.substr(pos, field.offset - pos));
                pos = field.offset + field.length;
            }
        }
        out_.append(s_.substr(pos, fields_end - pos));
        if (!new_encoding.empty()) {
            if (!out_.empty() && out_.back() != '\n') out_.append("\r\n");
            out_.append("Content-Transfer-Encoding: ").append(new_encoding).append("\r\n");
        }
        if (fields_end < part.body_offset) {
            out_.append(s_.substr(fields_end, part.body_offset - fields_end));  // the blank line
        } else if (part.end > part.body_offset) {
            if (!out_.empty() && out_.back() != '\n') out_.append("\r\n");
            out_.append("\r\n");
        }
        return {};
    }

    // Copies bytes no reader shows (preamble, epilogue, delimiter lines); boundaries are 7-bit already.
    void write_gap(std::size_t from, std::size_t to) {
        for (std::size_t i = from; i < to; ++i) {
            auto c = static_cast<unsigned char>(s_[i]);
            out_.push_back(c >= 0x80 || c == 0 ? '?' : s_[i]);
        }
    }

    Result<void> write_part(const Part& part) {
        if (part.kind == PartKind::leaf) return write_leaf(part);
        if (part.is("message", "global")) {
            // Opened up like message/rfc822 when its header is 7-bit; otherwise encoded whole, which RFC 6532
            // 3.5 allows for message/global only.
            std::size_t mark = out_.size();
            if (write_container(part)) return {};
            out_.resize(mark);
            return write_leaf(part);
        }
        return write_container(part);
    }

    Result<void> write_container(const Part& part) {
        // A container: identity-encoded by definition (RFC 2045 6.4, RFC 2046 5.2.1); after conversion its
        // content is 7-bit, so an 8bit or binary label becomes 7bit.
        bool relabel =
            part.encoding == TransferEncoding::eight_bit || part.encoding == TransferEncoding::binary;
        MAGPIE_TRY(write_header(part, relabel ? "7bit" : ""));
        std::size_t pos = part.body_offset;
        for (std::uint32_t i = part.first_child; i != kNoPart; i = m_.parts()[i].next_sibling) {
            const Part& child = m_.parts()[i];
            write_gap(pos, child.header_offset);
            MAGPIE_TRY(write_part(child));
            pos = child.end;
        }
        write_gap(pos, part.end);
        return {};
    }

    Result<void> write_leaf(const Part& part) {
        std::string_view body = m_.body(part);
        BodyStats stats = measure_body(body);
        bool text = iequals(part.type, "text");
        if (is_identity(part.encoding) && fits_7bit(stats) && part.encoding != TransferEncoding::binary) {
            // Already 7-bit: only a wrong "8bit" label changes.
            MAGPIE_TRY(write_header(part, part.encoding == TransferEncoding::eight_bit ? "7bit" : ""));
            out_.append(body);
            return {};
        }
        if (!is_identity(part.encoding) && fits_7bit(stats)) {
            MAGPIE_TRY(write_header(part, ""));
            out_.append(body);
            return {};
        }
        if (part.encoding == TransferEncoding::unknown)
            return make_error(Errc::invalid_argument, "8-bit data under an unknown transfer encoding");
        if (iequals(part.type, "multipart"))
            return make_error(Errc::invalid_argument, "8-bit multipart without boundaries");
        // Binary bodies are bytes, never lines: quoted-printable text mode would not keep bare CR/LF intact.
        std::string decoded = decode_transfer(body, part.encoding);
        bool as_text = text && part.encoding != TransferEncoding::binary;
        TransferEncoding encoding = choose_transfer_encoding(decoded, as_text, Transport::seven_bit);
        if (encoding == TransferEncoding::seven_bit) encoding = TransferEncoding::quoted_printable;
        MAGPIE_TRY(write_header(part, transfer_encoding_name(encoding)));
        std::string encoded = apply_transfer_encoding(decoded, encoding);
        // A delimiter's own CRLF follows; the encoded body's final soft break or base64 line break adds none
        // to the decoded content.
        out_.append(encoded);
        return {};
    }

    const Message& m_;
    std::string_view s_;
    std::string out_;
};

}  // namespace

bool needs_7bit_downgrade(std::string_view message) {
    BodyStats stats = measure_body(message);
    return !fits_7bit(stats);
}

Result<std::string> downgrade_to_7bit(std::string_view message, const ParseLimits& limits) {
    // A 7-bit message with bare line ends may still hold a "binary" part that SMTP would corrupt.
    BodyStats stats = measure_body(message);
    if (fits_7bit(stats) && stats.bare_cr_or_lf == 0) return std::string(message);
    Message parsed = Message::parse(message, limits);
    if (parsed.limit_hit()) return make_error(Errc::limit_exceeded, "message structure beyond parse limits");
    return Downgrader(parsed).run();
}

namespace {

// A leaf a plain literal cannot carry as it is (see reencode_binary_parts).
bool needs_base64(const Part& part, std::string_view body) {
    if (part.kind != PartKind::leaf || iequals(part.type, "multipart")) return false;
    if (iequals(part.type, "message") && !iequals(part.subtype, "global")) return false;
    if (part.encoding == TransferEncoding::binary) return true;
    // An unknown encoding cannot be decoded, so it cannot be re-encoded either.
    return part.encoding != TransferEncoding::unknown && std::memchr(body.data(), 0, body.size()) != nullptr;
}

// One replacement of the bytes [from, to) of the message; edits are made in increasing, disjoint order. A
// body edit carries the part to write as base64 (made in slices when written) instead of its text.
struct Edit {
    std::size_t from = 0;
    std::size_t to = 0;
    std::string text;
    const Part* base64_of = nullptr;
};

// base64_encode(decoded, 76) written in slices of whole lines (57 octets make one 76-character line), so a
// large binary part is never encoded whole: the slices joined by CRLF are exactly the one-piece encoding.
void write_base64(std::string_view decoded, const std::function<void(std::string_view)>& write) {
    constexpr std::size_t kSlice = 57 * 1024;
    for (std::size_t at = 0; at < decoded.size(); at += kSlice) {
        if (at > 0) write("\r\n");
        write(base64_encode(decoded.substr(at, kSlice), 76));
    }
}

void plan_base64(const Message& m, const Part& part, std::vector<Edit>& edits) {
    std::string_view s = m.bytes();
    Header header = m.header(part);
    bool written = false;
    std::size_t fields_end = part.header_offset;
    for (const HeaderField& field : header.fields()) {
        fields_end = std::max(fields_end, field.offset + field.length);
        if (!iequals(trim(field.name), "Content-Transfer-Encoding")) continue;
        // The first such field becomes base64 where it stands, with its own line end; any others go.
        std::string text;
        if (!written) {
            std::string_view whole = s.substr(field.offset, field.length);
            std::string_view eol = whole.ends_with("\r\n") ? "\r\n" : whole.ends_with("\n") ? "\n" : "";
            text = std::string("Content-Transfer-Encoding: base64").append(eol);
            written = true;
        }
        edits.push_back(Edit{field.offset, field.offset + field.length, std::move(text)});
    }
    std::string added;
    bool unterminated = fields_end > part.header_offset && s[fields_end - 1] != '\n';
    if (!written) {
        if (unterminated) added = "\r\n";
        added += "Content-Transfer-Encoding: base64\r\n";
        unterminated = false;
    }
    // No blank line (the header ran to the body's first line, or to the part's end): give it one, or the
    // first base64 line would read as a header field.
    bool has_blank_line = fields_end < part.body_offset ||
                          (header.fields().empty() && part.body_offset > part.header_offset);
    if (!has_blank_line && part.end > part.body_offset) added += unterminated ? "\r\n\r\n" : "\r\n";
    if (!added.empty()) {
        std::size_t at = has_blank_line ? fields_end : part.body_offset;
        edits.push_back(Edit{at, at, std::move(added)});
    }
    edits.push_back(Edit{part.body_offset, part.end, "", &part});
}

}  // namespace

bool reencode_binary_parts(std::string_view message, const std::function<void(std::string_view)>& write,
                           const ParseLimits& limits) {
    Message parsed = Message::parse(message, limits);
    std::vector<Edit> edits;
    for (const Part& part : parsed.parts()) {
        if (needs_base64(part, parsed.body(part))) plan_base64(parsed, part, edits);
    }
    std::size_t pos = 0;
    for (const Edit& edit : edits) {
        write(message.substr(pos, edit.from - pos));
        if (edit.base64_of == nullptr) {
            write(edit.text);
        } else if (std::string_view body = parsed.body(*edit.base64_of); is_identity(edit.base64_of->encoding)) {
            write_base64(body, write);  // binary, 7bit, 8bit: the body is its decoded octets
        } else {
            write_base64(decode_transfer(body, edit.base64_of->encoding), write);
        }
        pos = edit.to;
    }
    write(message.substr(pos));
    return !edits.empty();
}

std::optional<std::string> reencode_binary_parts(std::string_view message, const ParseLimits& limits) {
    std::string out;
    out.reserve(message.size() + message.size() / 3 + 64);
    if (!reencode_binary_parts(message, [&](std::string_view piece) { out.append(piece); }, limits))
        return std::nullopt;
    return out;
}

}  // namespace magpie::mail
