#include "ring/range_set.h"

#include <iterator>

namespace kv::ring {

void RangeSet::add(const Range& range) {
    if (range.start == range.end) return add_closed(0, UINT64_MAX);  // the whole ring
    if (range.start < range.end) return add_closed(range.start + 1, range.end);
    // Wraps: (start, 2^64 - 1] and [0, end].
    if (range.start != UINT64_MAX) add_closed(range.start + 1, UINT64_MAX);
    add_closed(0, range.end);
}

// Keeps the intervals disjoint: the new one absorbs every interval it overlaps.
void RangeSet::add_closed(uint64_t first, uint64_t last) {
    auto it = by_first_.upper_bound(first);
    if (it != by_first_.begin()) {
        auto prev = std::prev(it);
        if (prev->second >= first) {
            if (prev->second >= last) return;
            first = prev->first;
            it = prev;
        }
    }
    while (it != by_first_.end() && it->first <= last) {
        last = std::max(last, it->second);
        it = by_first_.erase(it);
    }
    by_first_.emplace(first, last);
}

bool RangeSet::contains(uint64_t hash) const {
    auto it = by_first_.upper_bound(hash);
    if (it == by_first_.begin()) return false;
    return std::prev(it)->second >= hash;
}

bool RangeSet::covers(const Range& range) const {
    auto covers_closed = [&](uint64_t first, uint64_t last) {
        auto it = by_first_.upper_bound(first);
        if (it == by_first_.begin()) return false;
        return std::prev(it)->second >= last;  // one interval holds [first, last]
    };
    if (range.start == range.end) return covers_closed(0, UINT64_MAX);
    if (range.start < range.end) return covers_closed(range.start + 1, range.end);
    return (range.start == UINT64_MAX || covers_closed(range.start + 1, UINT64_MAX)) &&
           covers_closed(0, range.end);
}

// Each closed interval [first, last] is the range (first - 1, last]; the
// whole ring [0, 2^64 - 1] comes out as (2^64 - 1, 2^64 - 1], its encoding.
// Adjacent intervals were joined on add, so the ranges are disjoint.
std::vector<Range> RangeSet::ranges() const {
    std::vector<Range> out;
    out.reserve(by_first_.size());
    for (const auto& [first, last] : by_first_) out.push_back(Range{first - 1, last});
    return out;
}

}  // namespace kv::ring
