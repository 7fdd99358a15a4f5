// RFC 5256 2.1 base subject: a Subject with its reply and forward markers ("Re:", "Fwd:", "[list]" blobs,
// a trailing "(fwd)", a "[Fwd: ...]" wrapper) removed, so that a reply and its parent compare equal. Used to
// thread messages that carry no usable References (the store's fallback) and to sort by subject (JMAP).
#pragma once

#include <string>
#include <string_view>

namespace magpie::mail {

// `subject` is the decoded (UTF-8) Subject field. White space runs become one space; the case is kept
// (compare ASCII case-insensitively, as RFC 5256's i;unicode-casemap does for ASCII). Never fails: a
// subject that is nothing but markers yields "".
std::string base_subject(std::string_view subject);

}  // namespace magpie::mail
