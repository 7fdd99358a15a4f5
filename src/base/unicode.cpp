#include "base/unicode.h"

#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <cstdint>
#include <limits>

#include "base/strings.h"

namespace magpie {

std::string unicode_casemap(std::string_view utf8) {
    // ASCII folds to its lower case and NFKD leaves it alone. Text ICU cannot index (over 2 GiB, far
    // beyond any message size limit) gets the same ASCII-only folding rather than a failure.
    if (is_ascii(utf8) || utf8.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
        return to_lower(utf8);
    icu::UnicodeString text =
        icu::UnicodeString::fromUTF8(icu::StringPiece(utf8.data(), static_cast<std::int32_t>(utf8.size())));
    text.foldCase(U_FOLD_CASE_DEFAULT);
    UErrorCode status = U_ZERO_ERROR;
    const icu::Normalizer2* nfkd = icu::Normalizer2::getNFKDInstance(status);
    if (U_SUCCESS(status)) {
        icu::UnicodeString decomposed = nfkd->normalize(text, status);
        if (U_SUCCESS(status)) text = std::move(decomposed);
    }
    std::string out;
    text.toUTF8String(out);
    return out;
}

bool unicode_casemap_contains(std::string_view haystack, std::string_view needle) {
    if (needle.empty()) return true;
    return unicode_casemap(haystack).find(unicode_casemap(needle)) != std::string::npos;
}

}  // namespace magpie
