// The history checker: judges a workload's history (sim/history.h) and the final
// state of the replicas after faults stopped, the network healed and every key was
// read at `all` (read repair). The rules, and why each is sound (never flags a
// correct store), are in docs/SIMULATOR.md, "The checker". In short:
//  - lost_write: a put acknowledged ok whose value is not live in the final state
//    of its key, and that no write superseded (a put or delete that carried the
//    context of a get that returned the value, or a context-less delete that had
//    not ended before the put started);
//  - stale_read: a get answered ok/not_found at level r that started after a put
//    was acknowledged at level w, with r + w > n, returns neither that put's value
//    nor follows a write (started before the get ended) that transitively
//    superseded it;
//  - divergence: the replicas of a key (its preference list) do not hold the same
//    object at the end;
//  - unsettled (found by the simulation, not here): with gossip membership, the
//    cluster did not settle on one ring with every join and leave complete
//    within the quiet phase's bound, so there is no final ring to judge.
// Pure: the same inputs give the same violations in the same order.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "node/data/object.h"
#include "sim/history.h"

namespace kv::sim {

// A key's replicas at the end of a run: each home replica's stored object
// (nullopt: it stores nothing for the key). The home replicas are the key's
// preference list in the ring the cluster ended with (with gossip membership,
// the ring after every join and leave, not the initial member list).
struct ReplicaState {
    std::string node_id;
    std::optional<node::Object> object;
};
using FinalState = std::map<std::string, std::vector<ReplicaState>>;

enum class ViolationKind : uint8_t { lost_write, stale_read, divergence, unsettled };
std::string_view violation_name(ViolationKind kind);

struct Violation {
    ViolationKind kind = ViolationKind::lost_write;
    std::string key;
    std::vector<uint64_t> ops;  // history indexes involved, the violating one first
    std::string what;
};

std::vector<Violation> check_lost_writes(const History& history, const FinalState& final_state);
std::vector<Violation> check_read_your_writes(const History& history);
std::vector<Violation> check_convergence(const FinalState& final_state);
// All three, in that order.
std::vector<Violation> check(const History& history, const FinalState& final_state);

}  // namespace kv::sim
