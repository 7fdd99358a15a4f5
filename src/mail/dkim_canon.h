// DKIM canonicalization (RFC 6376 3.4): the "simple" and "relaxed" forms of header fields and of the body
// that signers and verifiers hash. Pure text transforms: no crypto, no IO. Line ends are taken as CRLF or a
// bare LF (what the parser tolerates) and always come out as CRLF, so a message stored with LF line ends
// hashes as it did on the wire.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace magpie::mail::dkim {

enum class Canon { simple, relaxed };

const char* canon_name(Canon canon);

// One header field in canonical form, ending with CRLF. `field` is the whole field as written (name, colon,
// value with its folds, final line end optional), e.g. a HeaderField's [offset, offset + length).
//   simple  (3.4.1): unchanged, but every line end becomes CRLF.
//   relaxed (3.4.2): name lower-cased, folds removed, runs of WSP become one SP, WSP at the end of the
//                    value and around the colon removed.
std::string canonicalize_header(std::string_view field, Canon canon);

// The canonical body (3.4.3 / 3.4.4), at most `max_octets` long (longer input is cut there; the caller
// treats that as a limit when it matters). simple: an empty body becomes CRLF; trailing empty lines are
// removed. relaxed: WSP at line ends removed, runs of WSP become one SP, trailing empty lines removed, and
// an empty body stays empty (RFC 6376 erratum 3192).
std::string canonicalize_body(std::string_view body, Canon canon, std::size_t max_octets = SIZE_MAX);

}  // namespace magpie::mail::dkim
