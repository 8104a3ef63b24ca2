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

}  // namespace kv::node
