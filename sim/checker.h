// The history checker: judges a workload's history (sim/history.h), the
// replicas' stores collected after faults stopped and membership settled but
// BEFORE any read the simulator makes, the simulator's final reads (every key
// at `all` through every node), and the stores after those reads.
//
// It is an oracle independent of node/: it never calls node::merge nor asks
// node's object semantics who supersedes whom. It keeps its own model of causal
// histories (which writes each write saw; docs/SIMULATOR.md, "The checker"):
//  - a write with the context of a get G saw the writes whose values G returned
//    and what those saw (its *must* past), and may also have seen any delete
//    that started before G ended, with what that delete may have seen (its
//    *may* past: tombstones are in a get's context but not in its answer);
//  - a write with the context of a write X's reply saw X and what X saw;
//  - a blind put saw nothing; a blind delete removes what its minting replica
//    held, so it may have seen any write that started before its own effect
//    window ended, and surely saw a put acknowledged at `all` before it began
//    (every replica held it).
// A write that was not acknowledged may still take effect, but only inside
// its effect window: [start, start + write_effect_window_ms].
//
// Rules (each counted in CheckStats: what it checked and what it excused):
//  - lost_write: an acknowledged put whose value no home replica holds before
//    the reads, or that a successful final read did not return, and that is not
//    in the may past of a write known to have taken effect (acknowledged ok,
//    its value read or stored, or, for a delete, a tombstone is stored);
//  - resurrection: a value in the must past of a write acknowledged at level w
//    returned by a get at level r (r + w > n, both strict) that started after
//    that acknowledgement, by any final read (strict, at all, after the hints
//    drained), or held by a store after the reads;
//  - stale_read: a get answered at level r that started after a put was
//    acknowledged at level w, r + w > n, both strict, returns neither that
//    put's value nor follows a write (started before the get ended) whose may
//    past holds it. Quorums intersect only among home replicas: a sloppy write
//    may sit on stand-ins a strict read never asks;
//  - dot_reuse: two different values (or a value and a tombstone) of one key
//    carry the same dot anywhere: any node's data or hints, before or after
//    the final reads;
//  - final_read_failed: a final read at `all` that never succeeded;
//  - divergence: the home replicas of a key hold different objects after the
//    final reads (and before them too when convergence_before_reads is on);
//  - ack_copies: a put acknowledged at level w whose version fewer than w
//    nodes durably held (live or covered) when the acknowledgement was sent;
//  - unsettled, hints_not_drained (found by the simulation, not here).
// Contract with the workload: every put writes a value no other put of the run
// writes (sim/history.h), and a write's effect window starts when its client
// first sent it. A client retry is a history entry of its own (retry_of) with
// the first attempt's value, and its own effect window; a request sent to two
// coordinators (also_sent_to) is one entry. Either may mint the value as
// several versions, so a read of the value shows one of them existed, not
// which: such a value is never in a must past (no write surely superseded
// every version of it), only in may pasts; resurrection is not claimed for it
// and the writes spared are counted.
// Pure: the same inputs give the same violations and counts in the same order.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "node/data/object.h"
#include "sim/history.h"

namespace kv::sim {

// A key's replicas at one moment: each home replica's stored object (nullopt:
// it stores nothing for the key). The home replicas are the key's preference
// list in the ring the cluster ended with (with gossip membership, the ring
// after every join and leave, not the initial member list). The objects are
// read with node::decode_object, the storage format's reader; the checker looks
// only at their siblings' values (which values and tombstones are stored).
struct ReplicaState {
    std::string node_id;
    std::optional<node::Object> object;
    bool operator==(const ReplicaState&) const = default;
};
using FinalState = std::map<std::string, std::vector<ReplicaState>>;

// One object a node stores for a key: in its data space, or in its hints space
// as a stand-in (hint_for: the target the hint is kept for). Every copy of
// every node, whether or not the node is a home replica of the key.
struct StoredCopy {
    std::string node_id;
    std::string key;
    std::optional<std::string> hint_for;  // nullopt: the data space
    node::Object object;
};

// One of the simulator's final reads: a key at `all` through one node, after
// the stores were collected. outcome ok / not_found with the values, or
// failed when no attempt succeeded.
struct FinalRead {
    std::string key;
    uint32_t node = 0;
    Outcome outcome = Outcome::failed;
    ErrorCode code = ErrorCode::ok;
    std::vector<std::string> values;
};

enum class ViolationKind : uint8_t {
    lost_write,
    stale_read,
    resurrection,
    final_read_failed,
    divergence,
    unsettled,
    dot_reuse,
    hints_not_drained,
    ack_copies
};
std::string_view violation_name(ViolationKind kind);

struct Violation {
    ViolationKind kind = ViolationKind::lost_write;
    std::string key;
    std::vector<uint64_t> ops;  // history indexes involved, the violating one first
    std::string what;
};

// What the checker is told about the run besides the history.
struct CheckInput {
    // How long after it started a write that was not acknowledged may still
    // take effect at a replica (the run's bound: sim/simulation.cpp,
    // write_effect_window_ms).
    uint64_t write_effect_window_ms = 0;
    // The membership settled: there is a final ring, so the stores and final
    // reads below mean something. When false only the history rules run.
    bool settled = true;
    FinalState stores_before_reads;
    std::vector<FinalRead> final_reads;
    FinalState stores_after_reads;
    // Every node's stored objects, data and hints, before and after the final
    // reads (judged by dot_reuse whether or not `settled`).
    std::vector<StoredCopy> copies_before_reads;
    std::vector<StoredCopy> copies_after_reads;
    // The copies above are every object of every node (the simulator's runs):
    // a key with an acknowledged put that none holds was purged by tombstone
    // GC, evidence that a delete of it took effect.
    bool copies_complete = false;
    // For acknowledged puts (history index), how many distinct nodes durably
    // held the put's version, in data or hints, live or covered by a context,
    // when the coordinator sent the acknowledgement (puts whose value no node
    // held then, or sent more than once, are absent). Judged by ack_copies:
    // at least w.
    std::map<uint64_t, uint32_t> copies_at_ack;
    // Writes (history index) whose only durable copy may have been on a node
    // whose store the simulator wiped: puts no other node held (live or
    // covered) just before, deletes at w = 1 begun before. lost_write and
    // stale_read excuse such puts; resurrection, values such writes superseded.
    std::set<uint64_t> lost_with_disk;
    // Judge full convergence of the stores before the reads. Only where the
    // run makes it sound (sim/simulation.h, convergence_judgeable): in general
    // a replica may miss a version no hint covers (a coordinator crashed
    // before keeping its hints, a message lost to a replica that was up) until
    // something reads the key (docs/SIMULATOR.md, "Convergence").
    bool convergence_before_reads = false;
};

// What one rule looked at: `checked` units (acknowledged puts, deletes, or
// (get, put) pairs; see the rule), of which `passed` held without excuse,
// `excused` by reason, and `violated`.
struct RuleStats {
    uint64_t checked = 0;
    uint64_t passed = 0;
    std::map<std::string, uint64_t> excused;
    uint64_t violated = 0;
};
// Rule name -> its counts (names in docs/SIMULATOR.md, "What each rule checked").
using CheckStats = std::map<std::string, RuleStats>;

struct CheckReport {
    std::vector<Violation> violations;
    CheckStats stats;
};

CheckReport check(const History& history, const CheckInput& input);

}  // namespace kv::sim
