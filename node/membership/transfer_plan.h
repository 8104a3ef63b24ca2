// Which token ranges move where while the ring changes (joins and leaves), as
// pure functions of the current ring and the future one (gossip/cluster_view.h:
// a joiner is in the future ring only, a leaver in the current one only).
//
// A range's new owner pulls it from the replicas it displaces (before \ after):
// with their data it holds everything they held, so the future preference list
// holds every write the current one held (docs/ARCHITECTURE.md, "Rebalancing").
// When it displaces no one (the ring grows below n replicas) it pulls from the
// first current replica, for placement only: the old replicas stay owners.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ring/ring.h"

namespace kv::node {

// The ranges one node pulls from one source, at most ranges_max of them.
struct InboundPlan {
    std::string source;
    std::vector<ring::Range> ranges;
    bool operator==(const InboundPlan&) const = default;
};

// What `self` must pull, sources in id order, ranges in ring order.
std::vector<InboundPlan> plan_inbound(const std::vector<ring::OwnershipChange>& diff,
                                      const std::string& self, size_t ranges_max);

// A range `self` gives up and a node taking it over.
struct OutboundNeed {
    std::string target;
    ring::Range range;
    bool operator==(const OutboundNeed&) const = default;
};
std::vector<OutboundNeed> plan_outbound(const std::vector<ring::OwnershipChange>& diff,
                                        const std::string& self);

// Equal on two nodes exactly when both their current and their future rings
// are (up to 64-bit hash collisions): the precondition of a transfer.
uint64_t ring_digest(const ring::Ring& current, const ring::Ring& future);

// A set of ring ranges with a logarithmic membership test.
class RangeSet {
  public:
    void add(const ring::Range& range);
    bool contains(uint64_t hash) const;
    // Whether every hash of the range is in the set.
    bool covers(const ring::Range& range) const;
    // The set as disjoint ranges in ring order (add() of each rebuilds it).
    std::vector<ring::Range> ranges() const;
    bool empty() const { return by_first_.empty(); }
    void clear() { by_first_.clear(); }

  private:
    void add_closed(uint64_t first, uint64_t last);
    // Disjoint closed intervals [first, last], keyed by first.
    std::map<uint64_t, uint64_t> by_first_;
};

}  // namespace kv::node
