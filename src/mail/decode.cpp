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
