// A set of ring ranges (ring.h, Range: (start, end], wrapping) with a
// logarithmic membership test: the ranges a node handed off, or a stream
// request's ranges.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "ring/ring.h"

namespace kv::ring {

class RangeSet {
  public:
    void add(const Range& range);
    bool contains(uint64_t hash) const;
    // Whether every hash of the range is in the set.
    bool covers(const Range& range) const;
    // The set as disjoint ranges in ring order (add() of each rebuilds it).
    std::vector<Range> ranges() const;
    bool empty() const { return by_first_.empty(); }
    void clear() { by_first_.clear(); }

  private:
    void add_closed(uint64_t first, uint64_t last);
    // Disjoint closed intervals [first, last], keyed by first.
    std::map<uint64_t, uint64_t> by_first_;
};

}  // namespace kv::ring
