#include "mail/transfer_choice.h"

#include <algorithm>

#include "mail/base64.h"
#include "mail/quoted_printable.h"

namespace magpie::mail {

BodyStats measure_body(std::string_view body) {
    BodyStats stats;
    stats.octets = body.size();
    std::size_t line = 0;
    for (std::size_t i = 0; i < body.size(); ++i) {
        auto c = static_cast<unsigned char>(body[i]);
        if (c == '\r' && i + 1 < body.size() && body[i + 1] == '\n') {
            stats.longest_line = std::max(stats.longest_line, line);
            line = 0;
            ++i;
            continue;
        }
        ++line;
        if (c >= 0x80) {
            ++stats.eight_bit;
            ++stats.qp_escapes;
        } else if (c == '\r' || c == '\n') {
            ++stats.bare_cr_or_lf;
            ++stats.qp_escapes;
        } else if (c == 0) {
            ++stats.nul;
            ++stats.qp_escapes;
        } else if ((c < 0x20 && c != '\t') || c == 0x7f || c == '=') {
            ++stats.qp_escapes;
        }
    }
    stats.longest_line = std::max(stats.longest_line, line);
    return stats;
}

TransferEncoding choose_transfer_encoding(std::string_view body, bool text, Transport transport) {
    if (transport == Transport::binary) return TransferEncoding::binary;
    BodyStats stats = measure_body(body);
    bool lines_ok = stats.nul == 0 && stats.bare_cr_or_lf == 0 && stats.longest_line <= kMaxBodyLineOctets;
    if (lines_ok && stats.eight_bit == 0) return TransferEncoding::seven_bit;
    if (lines_ok && transport == Transport::eight_bit) return TransferEncoding::eight_bit;
    // Quoted-printable grows an escaped octet to three. Text stays legible with up to one octet in three
    // escaped (accented Latin text); other bodies take it only while it is about as small as base64's 4/3,
    // and never with bare line breaks, which would turn into =0D=0A noise.
    bool mostly_ascii = text ? stats.qp_escapes * 3 <= stats.octets
                             : stats.qp_escapes * 6 <= stats.octets && stats.bare_cr_or_lf == 0;
    if (mostly_ascii) return TransferEncoding::quoted_printable;
    return TransferEncoding::base64;
}

std::string apply_transfer_encoding(std::string_view body, TransferEncoding encoding) {
    switch (encoding) {
        case TransferEncoding::quoted_printable: {
            std::string out = qp_encode(body);
            if (!out.empty() && !out.ends_with("\r\n")) out.append("=\r\n");
            return out;
        }
        case TransferEncoding::base64: {
            std::string out = base64_encode(body);
            if (!out.empty()) out.append("\r\n");
            return out;
        }
        default:
            return std::string(body);
    }
}

}  // namespace magpie::mail
