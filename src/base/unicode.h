// Unicode-aware text comparison for searches: the i;unicode-casemap comparator of RFC 5051, which IMAP
// SEARCH (RFC 9051 6.4.4, "case-insensitive" for every script) and JMAP text filters use. ICU does the
// Unicode work (case folding, normalization), not tables of our own.
#pragma once

#include <string>
#include <string_view>

namespace magpie {

// The RFC 5051 canonical form of UTF-8 text: full Unicode case folding, then compatibility decomposition
// (NFKD), returned as UTF-8. "Åke MÖTE" and "åke möte" map to the same octets; so do "ﬁ" and "fi".
// Ill-formed UTF-8 sequences become U+FFFD. ASCII text takes a fast path (ASCII lower-casing is exact).
std::string unicode_casemap(std::string_view utf8);

// RFC 5051 substring match: `needle` occurs in `haystack` once both are mapped by unicode_casemap.
// An empty needle matches everything (RFC 9051 6.4.4 SEARCH with an empty string).
bool unicode_casemap_contains(std::string_view haystack, std::string_view needle);

}  // namespace magpie
