// Where keys live (Dynamo §4.2-4.3), computed in one place: the current ring
// (members up or leaving), the future ring (the current one with the active
// join or leave applied; equal to it while nothing moves), the replicas per key
// in each (the effective n = min(n_replicas, members)), preference lists and the new owners
// of a key whose range moves. The coordinator, the replica's ownership check
// and the rebalancer all ask this class; none of them computes placement itself.
//
// Pure: rebuilt from a membership view when its version changes; no Env.
// Invariant: future_ring() == ring() whenever !moving().
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "gossip/cluster_view.h"
#include "gossip/membership.h"
#include "ring/ring.h"

namespace kv::node {

bool has_id(const std::vector<std::string>& ids, std::string_view id);

// Equal on two nodes exactly when both their current and their future rings
// are (up to 64-bit hash collisions): the precondition of a range transfer.
uint64_t ring_digest(const ring::Ring& current, const ring::Ring& future);

// The replicas a request for a key uses now (Dynamo §4.6, sloppy quorum):
// its home replicas, and for each home replica that is down a stand-in, the
// next reachable member clockwise past the home replicas that is neither one
// of them nor another home's stand-in. The stand-in keeps what it receives as
// a hint for that home and replays it once the home is back.
struct StandIn {
    std::string node;
    std::string for_home;  // the home replica it stands in for (the hint's target)
    bool operator==(const StandIn&) const = default;
};
struct ReplicaTargets {
    std::vector<std::string> homes;     // the key's preference list, in order
    std::vector<std::string> homes_up;  // those reachable now, in the same order
    std::vector<StandIn> stand_ins;     // for homes down, in the homes' order
    // Homes down with no reachable member left to stand in for them.
    std::vector<std::string> homes_uncovered;
};

class Placement {
  public:
    Placement(std::string self_id, uint32_t n_replicas, uint32_t vnodes);

    // Rebuilds the rings when the membership's version changed, or while there
    // is no ring yet; true when it rebuilt. With gossip (`view` non-null) the
    // rings come from the tokens members claimed and may move; with a static
    // list (`view` null) every node hashes the same ids and nothing moves.
    bool refresh(const gossip::Membership& membership, const gossip::ClusterView* view);

    // Ranges can move (gossip membership); false for a static member list.
    bool dynamic() const { return dynamic_; }
    const ring::Ring& ring() const { return ring_; }
    const ring::Ring& future_ring() const { return future_ring_; }
    bool moving() const { return moving_; }
    // ring_digest(ring(), future_ring()).
    uint64_t digest() const { return digest_; }
    const std::string& self() const { return self_; }
    // The configured n: what consistency levels are judged against.
    uint32_t n_replicas() const { return n_replicas_; }

    // Replicas per key in the current and in the future ring (the effective
    // n: smaller than n_replicas() while the ring has fewer members).
    uint32_t n() const;
    uint32_t n_future() const;
    // The key's preference list in the current ring (n() distinct members).
    std::vector<std::string> replicas(std::string_view key) const;
    std::vector<std::string> replicas_for_hash(uint64_t hash) const;
    std::vector<std::string> future_replicas_for_hash(uint64_t hash) const;
    // Whether `id` is among replicas_for_hash(hash) (future_: the future
    // ring's), without building the list.
    bool is_replica_for_hash(uint64_t hash, std::string_view id) const;
    bool is_future_replica_for_hash(uint64_t hash, std::string_view id) const;
    // The key's new owners while its range moves: in its future preference
    // list but not in its current one (empty when it does not move).
    std::vector<std::string> pending_replicas(std::string_view key) const;
    std::vector<std::string> pending_replicas_for_hash(uint64_t hash) const;
    // The key's home replicas and, when `sloppy`, a stand-in for each that
    // `reachable` says is down (ReplicaTargets above).
    ReplicaTargets targets(std::string_view key,
                           const std::function<bool(const std::string&)>& reachable,
                           bool sloppy) const;
    // The same for a key of token `hash` whose home replicas, `homes`, the
    // caller has computed already (replicas_for_hash(hash)).
    ReplicaTargets targets_for_hash(uint64_t hash, std::vector<std::string> homes,
                                    const std::function<bool(const std::string&)>& reachable,
                                    bool sloppy) const;
    // The token range of the current ring holding the hash (the whole ring
    // when the ring has one token or none).
    ring::Range range_of(uint64_t hash) const;
    // Whether the future ring includes this node.
    bool self_in_future() const;
    // Ranges whose replicas differ between the current and the future ring.
    std::vector<ring::OwnershipChange> diff() const;

  private:
    std::string self_;
    uint32_t n_replicas_;
    uint32_t vnodes_;
    bool dynamic_ = false;
    uint64_t version_ = 0;
    ring::Ring ring_;
    ring::Ring future_ring_;
    bool moving_ = false;
    uint64_t digest_ = 0;
};

}  // namespace kv::node
