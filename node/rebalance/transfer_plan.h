// Which token ranges move where while the ring changes (joins and leaves), as
// pure functions of the current ring and the future one (gossip/cluster_view.h:
// a joiner is in the future ring only, a leaver in the current one only).
//
// A range's new owner pulls it from the replicas it displaces (before \ after):
// with their data it holds everything they held, so the future preference list
// holds every write the current one held (docs/ARCHITECTURE.md, "Rebalancing").
// When it displaces no one (the ring grows below n replicas) it pulls from the
// first current replica, for placement only: the old replicas stay owners.
// When the displaced replica is a member being removed (kvctl removenode: down
// for good, its data gone) it pulls from the first surviving replica of the
// range instead (current list minus the removed member; every one of them
// stays an owner), and hands off to the member that removes it, which tracks
// completion in the removed member's place.
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
    // Where the handoff goes once the pages are in, when not to the source:
    // for a removal, the remover.
    std::string handoff_to;
    bool operator==(const InboundPlan&) const = default;
};

// The removal under way: `member` is displaced without serving, `by` tracks it.
struct RemovalPlan {
    std::string member;
    std::string by;
};

// What `self` must pull, sources in id order, ranges in ring order. With a
// removal, a range whose only current replica was the removed member has no
// copy left to pull and is left out.
std::vector<InboundPlan> plan_inbound(const std::vector<ring::OwnershipChange>& diff,
                                      const std::string& self, size_t ranges_max,
                                      const RemovalPlan* removal = nullptr);

// A range `self` gives up and a node taking it over.
struct OutboundNeed {
    std::string target;
    ring::Range range;
    bool operator==(const OutboundNeed&) const = default;
};
std::vector<OutboundNeed> plan_outbound(const std::vector<ring::OwnershipChange>& diff,
                                        const std::string& self);

// The ranges a removed member gives up whose data survives elsewhere, and the
// new owners that must hand each off to the remover (plan_inbound's plans for
// those ranges, as seen from the remover).
std::vector<OutboundNeed> plan_removal(const std::vector<ring::OwnershipChange>& diff,
                                       const RemovalPlan& removal);

}  // namespace kv::node
