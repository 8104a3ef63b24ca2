// Cluster membership figures measured from the simulator (issue 5): sim::Cluster
// running the real Node with gossip membership; only the network and time are
// simulated, the protocol is the production code.
//  - spread: rounds until every member of a settled cluster knows of a newcomer;
//  - detection: time until every live member sees a crashed one as down;
//  - rebalance: how many (key, replica) placements move when a node joins.
// Deterministic: the same arguments give the same numbers.
#pragma once

#include <cstdint>
#include <string>

#include "node/node.h"

namespace kv::sim {

// Gossip node settings for a figure. `interval_ms` is also the failure
// detector's assumed first mean, as kvnode sets it from --gossip-interval-ms.
struct GossipSettings {
    uint64_t interval_ms = 1'000;
    double phi_suspect = 8.0;
    uint64_t suspect_to_down_ms = 10'000;
    uint32_t vnodes = ring::kDefaultVnodes;
    uint64_t ping_interval_ms = 1'000;
    // The simulator calls Node::tick this often (gossip rounds start on a tick).
    uint64_t tick_interval_ms = 10;
};

// A NodeConfig that joins through seed n1 with these settings.
node::NodeConfig gossip_node_config(const GossipSettings& settings);

struct SpreadResult {
    bool settled = false;      // every member knew every other as up before the newcomer started
    bool spread = false;       // every member learned of the newcomer within the limit
    uint64_t settle_ms = 0;    // virtual time at which every member knew every other as up
    uint64_t spread_ms = 0;    // from the newcomer's start until the last member knew of it
    uint64_t interval_ms = 0;  // the gossip round
    double rounds() const;     // spread_ms in gossip intervals
};

// A cluster of `members` settles, then one more node starts (seeded with n1);
// measures until every member's view holds the newcomer.
SpreadResult measure_spread(uint32_t members, uint64_t seed, const GossipSettings& settings);

struct DetectionResult {
    bool settled = false;
    bool detected = false;  // every live member saw the crashed one as down within the limit
    std::string crashed_id;
    uint64_t suspect_ms = 0;  // from the crash until every live member suspected it (or worse)
    uint64_t down_ms = 0;     // ... until every live member saw it down
};

// A settled cluster of `members` learns the heartbeat rate, then one node other
// than the seed crashes.
DetectionResult measure_detection(uint32_t members, uint64_t seed, const GossipSettings& settings);

// Placement changes over `keys` sampled keys between the ring of `members` and
// the ring after one more node joined; rings built from the tokens every member
// gossips (view states with tokens), whether the joiner is declared up or joining.
struct RebalanceResult {
    bool settled = false;
    bool joined = false;              // every member saw the joiner's tokens within the limit
    bool views_agree = false;         // every member's token map was the same after the join
    bool ring_before_agrees = false;  // the gossiped tokens rebuild the nodes' own ring
    std::string joiner_id;
    uint64_t keys = 0;
    double joiner_share = 0;        // of the ring, as first replica
    uint64_t primaries_moved = 0;   // n = 1: keys whose first replica changed
    uint64_t placements_moved = 0;  // n = 3: (key, replica) placements gained by some node
    uint64_t keys_changed = 0;      // n = 3: keys whose replica set changed
    uint64_t moved_to_others = 0;  // placements (n = 1 or 3) gained by a node other than the joiner
    // n = 3 after the join: the least and most keys any one node is a replica
    // of, as fractions of the keys (balanced: 3/6 = 0.5 each).
    double replica_load_min = 0;
    double replica_load_max = 0;
};

RebalanceResult measure_rebalance(uint32_t members, uint64_t seed, uint64_t keys,
                                  const GossipSettings& settings);

}  // namespace kv::sim
