#include "imap/sequence_set.h"

#include <algorithm>
#include <utility>

#include "base/strings.h"

namespace magpie::imap {
namespace {

// seq-number = nz-number / "*"; nz-number = digit-nz *DIGIT, at most 4294967295 (RFC 9051 9).
bool parse_seq_number(std::string_view text, std::uint32_t& out) {
    if (text == "*") {
        out = SequenceSet::star;
        return true;
    }
    if (text.empty() || text[0] == '0') return false;
    auto value = parse_uint(text);
    if (!value || *value > 0xFFFFFFFFu) return false;
    out = static_cast<std::uint32_t>(*value);
    return true;
}

void append_range(std::string& out, const SequenceSet::Range& range) {
    auto number = [&](std::uint32_t n) {
        if (n == SequenceSet::star) {
            out.push_back('*');
        } else {
            out += std::to_string(n);
        }
    };
    number(range.first);
    if (range.last != range.first) {
        out.push_back(':');
        number(range.last);
    }
}

// Turns one range into first <= last with "*" replaced by `largest`; false when it names nothing ("*" in an
// empty mailbox).
bool concrete(SequenceSet::Range& range, std::uint32_t largest) {
    constexpr std::uint32_t star = SequenceSet::star;
    if (range.first == star || range.last == star) {
        if (largest == 0) return false;
        if (range.first == star) range.first = largest;
        if (range.last == star) range.last = largest;
    }
    if (range.first > range.last) std::swap(range.first, range.last);
    return true;
}

}  // namespace

Result<SequenceSet> SequenceSet::parse(std::string_view text, std::size_t max_ranges) {
    if (text == "$") return saved();
    if (text.empty()) return make_error(Errc::invalid_argument, "empty sequence set");
    SequenceSet set;
    std::size_t start = 0;
    while (start <= text.size()) {
        std::size_t comma = text.find(',', start);
        if (comma == std::string_view::npos) comma = text.size();
        if (set.ranges_.size() >= max_ranges) {
            return make_error(Errc::limit_exceeded, "too many ranges in sequence set");
        }
        std::string_view element = text.substr(start, comma - start);
        std::size_t colon = element.find(':');
        Range range;
        bool ok = false;
        if (colon == std::string_view::npos) {
            ok = parse_seq_number(element, range.first);
            range.last = range.first;
        } else {
            ok = parse_seq_number(element.substr(0, colon), range.first) &&
                 parse_seq_number(element.substr(colon + 1), range.last);
        }
        if (!ok) return make_error(Errc::invalid_argument, "invalid sequence set");
        set.ranges_.push_back(range);
        start = comma + 1;
    }
    return set;
}

SequenceSet SequenceSet::saved() {
    SequenceSet set;
    set.saved_ = true;
    return set;
}

SequenceSet SequenceSet::from_numbers(std::vector<std::uint32_t> numbers) {
    std::ranges::sort(numbers);
    SequenceSet set;
    for (std::uint32_t n : numbers) {
        if (n == star) continue;
        if (!set.ranges_.empty() && (set.ranges_.back().last == n || set.ranges_.back().last + 1 == n)) {
            set.ranges_.back().last = n;
        } else {
            set.ranges_.push_back(Range{n, n});
        }
    }
    return set;
}

SequenceSet SequenceSet::from_ranges(std::vector<Range> ranges) {
    SequenceSet set;
    set.ranges_ = std::move(ranges);
    return set;
}

SequenceSet SequenceSet::resolved(std::uint32_t largest) const {
    std::vector<Range> ordered;
    ordered.reserve(ranges_.size());
    for (Range range : ranges_) {
        if (!concrete(range, largest)) continue;
        ordered.push_back(range);
    }
    std::ranges::sort(ordered, [](const Range& a, const Range& b) { return a.first < b.first; });
    SequenceSet out;
    for (const Range& range : ordered) {
        if (!out.ranges_.empty() && static_cast<std::uint64_t>(out.ranges_.back().last) + 1 >= range.first) {
            out.ranges_.back().last = std::max(out.ranges_.back().last, range.last);
        } else {
            out.ranges_.push_back(range);
        }
    }
    return out;
}

bool SequenceSet::contains(std::uint32_t n, std::uint32_t largest) const {
    for (Range range : ranges_) {
        if (!concrete(range, largest)) continue;
        if (n >= range.first && n <= range.last) return true;
    }
    return false;
}

std::uint64_t SequenceSet::count(std::uint32_t largest) const {
    std::uint64_t total = 0;
    for (const Range& range : resolved(largest).ranges_) total += std::uint64_t{range.last} - range.first + 1;
    return total;
}

std::string SequenceSet::to_string() const {
    if (saved_) return "$";
    std::string out;
    for (const Range& range : ranges_) {
        if (!out.empty()) out.push_back(',');
        append_range(out, range);
    }
    return out;
}

}  // namespace magpie::imap
