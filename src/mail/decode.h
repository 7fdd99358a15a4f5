// A part's body as a reader wants it: transfer-decoded to bytes (RFC 2045 6), and for text parts also
// converted from its charset to UTF-8. Decoding is tolerant; it never fails on bad input.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "mail/mime.h"

namespace magpie::mail {

// Undoes the transfer encoding; identity encodings (7bit, 8bit, binary) and unknown ones return the bytes.
std::string decode_transfer(std::string_view body, TransferEncoding encoding);

// Size of decode_transfer(body, encoding), computed without building the decoded copy for base64.
std::size_t decoded_transfer_size(std::string_view body, TransferEncoding encoding);

// Undoes a transfer encoding a slice at a time, so a large part is decoded without holding it whole (IMAP
// BINARY of a big attachment): the outputs of feed() over any split of a body, concatenated, equal
// decode_transfer(body, encoding). Memory: one slice plus a short carry, an unfinished base64 quartet or
// the end of a quoted-printable line back to a point where cutting changes nothing (RFC 2045 6.7 rule 3
// drops trailing white space, and "=XX" or a soft break must not be split).
class TransferDecoder {
public:
    explicit TransferDecoder(TransferEncoding encoding) : encoding_(encoding) {}
    // Appends the decoding of the body's next octets to `out`; `last` when the body ends with them.
    void feed(std::string_view chunk, bool last, std::string& out);

private:
    TransferEncoding encoding_;
    std::string carry_;   // undecoded octets held back from the previous chunk
    bool ended_ = false;  // base64 padding seen: what follows carries no data
};

// The decoded bytes of a part's body.
std::string decode_body(const Message& message, const Part& part);

// A text part's body in UTF-8: transfer-decoded, then converted from its charset parameter (RFC 2046 4.1.2,
// default us-ascii; 8-bit text labelled us-ascii or unlabelled is read as UTF-8, then Windows-1252).
std::string decode_text(const Message& message, const Part& part);

}  // namespace magpie::mail
