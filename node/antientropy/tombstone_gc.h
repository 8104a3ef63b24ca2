// Tombstone garbage collection that never resurrects (docs/ARCHITECTURE.md,
// "Tombstone GC"). A key whose every sibling is a tombstone is erased here
// only when all of these hold:
//  - every other ring member completed a whole anti-entropy exchange with this
//    node that started after this node last changed the key, and held no
//    hints as a stand-in then (AntiEntropy::confirmed_through_ms): so every
//    replica of its range holds the tombstone or a later version, or holds
//    nothing of the key, and no stand-in keeps an older version for anyone;
//  - this node holds no hints itself, and is a current home replica of the key;
//  - no range moves (transfers carry versions from before the delete);
//  - the tombstone is at least tombstone_grace_ms old here: a bound on
//    versions still in flight (a write's replication or a read repair sent
//    before the delete), on top of the confirmation, never instead of it.
// A replica that lacks the key entirely is not sent a tombstone by
// anti-entropy (anti_entropy.h), so purged keys stay purged. Sweeps walk the
// index a page per tick, and start again each time the confirmation advances.
// Pure: storage and time through Env.
#pragma once

#include <cstdint>
#include <string>

#include "node/antientropy/anti_entropy.h"
#include "node/antientropy/key_index.h"
#include "node/env.h"
#include "node/membership/placement.h"
#include "node/node_config.h"
#include "node/replica/hint_store.h"
#include "node/replica/replica.h"

namespace kv::node {

class TombstoneGc {
  public:
    TombstoneGc(const NodeConfig& config, Env& env, NodeStats& stats, const Placement& placement,
                Replica& replica, KeyIndex& index, const AntiEntropy& anti_entropy,
                const HintStore& hints);

    void tick(uint64_t now_ms);

  private:
    const NodeConfig& config_;
    Env& env_;
    NodeStats& stats_;
    const Placement& placement_;
    Replica& replica_;
    KeyIndex& index_;
    const AntiEntropy& anti_entropy_;
    const HintStore& hints_;
    bool sweeping_ = false;
    std::string cursor_;
    uint64_t sweep_through_ms_ = 0;  // what the sweep under way may purge before
    uint64_t swept_through_ms_ = 0;  // the last sweep's (a new one waits for more)
    uint64_t next_page_ms_ = 0;
};

}  // namespace kv::node
