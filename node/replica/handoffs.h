// The ranges this node handed to their new owners while a membership change
// moves them (node/rebalance/rebalancer.h, step 3 of the protocol). Durable:
// once a handoff is answered the new owner counts on this node refusing the
// ranges (not_owner) for as long as its ring keeps moving them, across restarts.
// The only state of handoffs: the fence the replica checks and the leaver's
// completion check both read it.
//
// The other side, in memory only: the ranges this node, a new owner, has
// received whole in the change under way (every page merged, the handoff
// answered). It may answer reads of them in place of the replica that
// handed them off (Replica::check_new_owner_read); after a restart it pulls
// them again before it does.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "client/status.h"
#include "node/env.h"
#include "ring/range_set.h"

namespace kv::node {

class Handoffs {
  public:
    explicit Handoffs(Env& env) : env_(env) {}

    // Reads the record at start; storage_error when it is corrupt (a node that
    // forgot a handoff could serve ranges it promised to refuse).
    Status load();
    // The target now holds these ranges; staged durable before the reply.
    void record(const std::string& target, const std::vector<ring::Range>& ranges);
    // The move completed: nothing is fenced any more (staged), nothing is
    // received.
    void clear();

    bool empty() const { return by_target_.empty(); }
    // Whether `range` was handed to `target`.
    bool handed_off(const std::string& target, const ring::Range& range) const;
    // Whether the hash lies in a range handed to anyone.
    bool fenced(uint64_t hash) const;

    // This node received these ranges whole from the source that held them.
    void received(const std::vector<ring::Range>& ranges);
    // The change's plan changed: what was received counts no more.
    void forget_received() { received_ = {}; }
    // Whether the hash lies in a range received whole.
    bool has_received(uint64_t hash) const { return received_.contains(hash); }

  private:
    void persist();

    Env& env_;
    std::map<std::string, ring::RangeSet> by_target_;
    ring::RangeSet received_;
};

}  // namespace kv::node
