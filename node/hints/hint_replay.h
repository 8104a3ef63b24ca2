// Replays the hints this node holds as a stand-in (node/replica/hint_store.h)
// to their targets once they are back (Dynamo §4.6), driven by tick():
//  - a target that is in the ring and reachable gets batches of its hints
//    (HintReplayRequest), one batch in flight at a time, at most
//    NodeConfig::hint_replay_keys_per_s keys per second; the target merges
//    each key it owns (never mints it again) and answers once they are
//    durable; only then are they deleted here, and only if no newer version
//    was merged into the hint meanwhile (it is sent again);
//  - a key the target answers it does not own any more (its range moved),
//    and every hint for a target that left the ring, goes to the key's
//    current home replicas: merged here when this node is one, else kept as
//    a hint for each of the others;
//  - a batch unanswered after transfer_timeout_ms, or that could not be sent,
//    is sent again later.
// Pure: time, sends and storage through Env.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "node/env.h"
#include "node/membership/peers.h"
#include "node/membership/placement.h"
#include "node/node_config.h"
#include "node/replica/hint_store.h"
#include "node/replica/replica.h"

namespace kv::node {

class HintReplay {
  public:
    HintReplay(const NodeConfig& config, Env& env, RequestIds& ids, NodeStats& stats,
               const Placement& placement, const Peers& peers, Replica& replica, HintStore& hints);

    void tick(uint64_t now_ms);
    // A reply to a replay batch; false when the message is not one of ours.
    bool on_reply(const std::string& peer_id, const Message& message);
    bool on_send_failed(const std::string& peer_id, uint64_t request_id);
    // Whether a batch is in flight to the target now (status).
    bool replaying(const std::string& target) const;

  private:
    struct InFlight {
        uint64_t request_id = 0;
        uint64_t sent_ms = 0;
        std::vector<std::pair<std::string, uint64_t>> keys;  // key, generation sent
        std::vector<std::string> objects;
    };
    struct TargetState {
        uint64_t next_send_ms = 0;  // the rate limit: not before this
        std::optional<InFlight> in_flight;
    };
    void send_batch(const std::string& target, TargetState& state, uint64_t now_ms);
    // Sends the hint for (target, key) to the key's current home replicas
    // other than `target`, and drops it here once that is staged.
    void retarget(const std::string& target, const std::string& key, const std::string& object,
                  uint64_t generation);
    // Retargets up to a batch of the hints of a target that is not in the ring.
    void retarget_all(const std::string& target);

    const NodeConfig& config_;
    Env& env_;
    RequestIds& ids_;
    NodeStats& stats_;
    const Placement& placement_;
    const Peers& peers_;
    Replica& replica_;
    HintStore& hints_;
    std::map<std::string, TargetState> targets_;
};

}  // namespace kv::node
