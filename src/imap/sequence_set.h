// IMAP sequence sets (RFC 9051 9, "sequence-set"): "1:5,7,9:*" for message sequence numbers or UIDs, and
// "$" for the result saved by SEARCH ... RETURN (SAVE) (RFC 5182). Parsed from a command, resolved against
// a mailbox (where "*" means the largest number in use) and formatted compactly for responses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace magpie::imap {

class SequenceSet {
public:
    // "*" inside a range; sequence numbers and UIDs are nz-number, so 0 is free to stand for it.
    static constexpr std::uint32_t star = 0;

    // One "a:b" (or "a", where first == last) as written; first may exceed last ("5:2" means "2:5").
    struct Range {
        std::uint32_t first = 0;
        std::uint32_t last = 0;
        bool operator==(const Range&) const = default;
    };

    SequenceSet() = default;

    // Parses "1:5,7,9:*" or "$". max_ranges bounds how many comma-separated elements are accepted.
    static Result<SequenceSet> parse(std::string_view text, std::size_t max_ranges);

    // The set naming the result saved by SEARCHRES ("$"); the handler substitutes the saved set.
    static SequenceSet saved();

    // A compact set from numbers in any order (duplicates allowed): {1,2,3,5} becomes "1:3,5".
    static SequenceSet from_numbers(std::vector<std::uint32_t> numbers);
    static SequenceSet from_ranges(std::vector<Range> ranges);

    bool is_saved() const { return saved_; }
    bool empty() const { return !saved_ && ranges_.empty(); }
    const std::vector<Range>& ranges() const { return ranges_; }

    // Replaces "*" by largest, orders every range, sorts and merges overlapping or adjacent ranges. "*" is
    // the largest number in use (RFC 9051 6.4.4), so "559:*" with largest 500 keeps 500 (it means 500:559);
    // in an empty mailbox (largest == 0) there is none and ranges naming "*" vanish. Not for "$".
    SequenceSet resolved(std::uint32_t largest) const;

    // True when n is in the set once "*" is read as largest.
    bool contains(std::uint32_t n, std::uint32_t largest) const;

    // How many distinct numbers the set names once resolved against largest.
    std::uint64_t count(std::uint32_t largest) const;

    // "1:3,5,9:*" as the ranges stand (call resolved() first for the canonical form); "$" for saved().
    std::string to_string() const;

    bool operator==(const SequenceSet&) const = default;

private:
    std::vector<Range> ranges_;
    bool saved_ = false;
};

}  // namespace magpie::imap
