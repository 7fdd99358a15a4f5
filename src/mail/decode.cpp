#include "mail/decode.h"

#include "base/strings.h"
#include "mail/base64.h"
#include "mail/charset.h"
#include "mail/quoted_printable.h"

namespace magpie::mail {

std::string decode_transfer(std::string_view body, TransferEncoding encoding) {
    switch (encoding) {
        case TransferEncoding::base64: return base64_decode(body);
        case TransferEncoding::quoted_printable: return qp_decode(body);
        default: return std::string(body);
    }
}

std::size_t decoded_transfer_size(std::string_view body, TransferEncoding encoding) {
    switch (encoding) {
        case TransferEncoding::base64: return base64_decoded_size(body);
        case TransferEncoding::quoted_printable: return qp_decode(body).size();
        default: return body.size();
    }
}

namespace {

bool is_base64_alphabet(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

// Where a base64 text can be cut so that both halves decode on their own to the whole's decoding: after a
// whole quartet of alphabet octets. npos when a '=' comes first (the data ends there: decode it all).
std::size_t base64_cut(std::string_view text) {
    std::size_t cut = 0;
    int have = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '=') return std::string_view::npos;
        if (!is_base64_alphabet(text[i])) continue;
        if (++have == 4) {
            have = 0;
            cut = i + 1;
        }
    }
    return cut;
}

bool is_blank_octet(char c) { return c == ' ' || c == '\t'; }

// Where a quoted-printable text can be cut without changing its decoding (qp_decode works line by line):
// after the last LF; in a line without one, after an octet that is no white space (which a line end could
// drop), no '=' and no CR, and not the first hex digit of an escape.
std::size_t qp_cut(std::string_view text) {
    std::size_t lf = text.rfind('\n');
    if (lf != std::string_view::npos) return lf + 1;
    for (std::size_t i = text.size(); i >= 2; --i) {
        char c = text[i - 1];
        if (is_blank_octet(c) || c == '=' || c == '\r' || text[i - 2] == '=') continue;
        return i;
    }
    return 0;
}

}  // namespace

void TransferDecoder::feed(std::string_view chunk, bool last, std::string& out) {
    if (encoding_ != TransferEncoding::base64 && encoding_ != TransferEncoding::quoted_printable) {
        out.append(chunk);
        return;
    }
    if (ended_) return;
    std::string data = std::move(carry_);
    data.append(chunk);
    carry_.clear();
    std::size_t cut = data.size();
    if (!last) {
        cut = encoding_ == TransferEncoding::base64 ? base64_cut(data) : qp_cut(data);
        if (cut == std::string_view::npos) {
            ended_ = true;  // base64 padding: the decoding ends in this chunk
            cut = data.size();
        }
    }
    out += decode_transfer(std::string_view(data).substr(0, cut), encoding_);
    carry_.assign(data, cut, std::string::npos);
}

std::string decode_body(const Message& message, const Part& part) {
    return decode_transfer(message.body(part), part.encoding);
}

std::string decode_text(const Message& message, const Part& part) {
    std::string bytes = decode_body(message, part);
    std::string charset = message.content_type(part).params.get("charset");
    std::string lower = to_lower(charset);
    if (charset.empty() || lower == "us-ascii" || lower == "ascii") return guess_to_utf8(bytes);
    return to_utf8_lenient(bytes, charset);
}

}  // namespace magpie::mail
