// One simulator run: a cluster (sim/cluster.h) of the real Node, a workload of
// simulated clients recording a history (sim/history.h), a nemesis injecting the
// chosen faults for `duration_s`, then a quiet phase (faults undone, network
// healed, every crashed node restarted; a bounded wait until every node's
// hints are replayed; the home replicas' stores collected;
// then every key read at `all` through every node, which read-repairs the
// replicas, and the stores collected again) and the checker (sim/checker.h).
// With gossip membership the nemesis also changes the membership (nodes join
// late, members are asked to leave), and the quiet phase first waits, bounded,
// until the membership settles; the stores are read from the replicas of the
// ring the cluster settled on.
// Deterministic: the same SimOptions give the same history and digest.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "client/status.h"
#include "sim/checker.h"
#include "sim/cluster.h"
#include "sim/history.h"

namespace kv::sim {

struct FaultSet {
    bool partition = false;  // any split of the nodes, one-way too; healed later
    bool crash = false;      // crash and later restart
    bool loss = false;       // periods of message loss
    bool dup = false;        // periods of message duplication
    bool pause = false;      // a node handles nothing for a while
    bool skew = false;       // per-node clock offset and drift; long-tail latency
    // A node's store fails its commits for a while: the node fail-stops and is
    // restarted later from what its store holds.
    bool diskfail = false;
    // Commits are pipelined as kvnode's writer pipelines them, each durable up
    // to kCommitBatchMsMax after it began, so a crash loses the steps staged
    // since the last batch began and may lose batches in flight (and the
    // replies they held back).
    bool unsynced = false;
    // Long outages (not in "all"): one or two nodes at a time, never a steady
    // node (SimOptions::steady_nodes), are crashed for kOutageMsMin-kOutageMsMax
    // and then restarted, so home replicas stay down for long stretches and
    // sloppy quorums and hint replay carry the writes meant for them.
    bool outage = false;
    // Disk loss (not in "all"): once a run, with every started node up and
    // none refilling, a node that is not steady crashes and loses its whole
    // store, then restarts on an empty one kFaultMsMin-kFaultMsMax later, as
    // a member whose disk was replaced (static membership only). It refills
    // from the other members before it serves replica reads.
    bool wipe = false;
    bool operator==(const FaultSet&) const = default;
};
// "all" (every fault but outage and wipe), "none", or a comma-separated list of the names above.
Result<FaultSet> parse_faults(std::string_view list);
std::string faults_text(const FaultSet& faults);

struct SimOptions {
    uint64_t seed = 1;
    uint32_t nodes = 5;
    uint32_t clients = 8;
    uint64_t duration_s = 20;  // simulated seconds of workload under faults
    FaultSet faults;
    uint32_t keys = 6;  // a small key set, so clients contend
    // Hot and cold keys: with hot_keys > 0, hot_permille of the operations pick
    // one of k0..k{hot_keys-1} and the others one of the remaining (cold) keys,
    // each uniformly; 0: every key alike.
    uint32_t hot_keys = 0;
    uint32_t hot_permille = 900;
    // A put acknowledged with a context is followed, with this chance, by a put
    // of the same key with that write_reply context (the client writes again).
    uint32_t rewrite_permille = 0;
    // A put or delete that failed (timeout, unavailable, overloaded) or went
    // unanswered is retried with this chance, as a new request with the same
    // value and context to a random coordinator, up to twice.
    uint32_t retry_permille = 0;
    // A request is also sent, same request id, to a second coordinator picked
    // at random (possibly the same node again) with this chance.
    uint32_t duplicate_permille = 0;
    uint32_t n_replicas = 3;
    // Share of gets, puts and deletes sent with Consistency::strict (counting
    // home replicas only), per mille; recorded in each history entry. The
    // simulator's final reads are always strict.
    uint32_t strict_permille = 0;
    // NodeConfig::hinted_handoff of every node: off, every request is strict
    // and no node keeps hints.
    bool hinted_handoff = true;
    // NodeConfig::read_repair, anti_entropy and tombstone_grace_ms of every
    // node: with read repair and hints off, convergence comes from
    // anti-entropy alone (preset anti-entropy).
    bool read_repair = true;
    bool anti_entropy = true;
    uint64_t tombstone_grace_ms = 60000;
    // The first steady_nodes nodes are never crashed (by crash or outage) and,
    // when non-zero, the only ones clients send to: every coordinator lives
    // through the run, so none loses the hints it keeps for replicas that did
    // not acknowledge (what makes convergence from hint replay alone checkable:
    // convergence_judgeable below).
    uint32_t steady_nodes = 0;
    // Deletes without a context (4% of operations). Off works around the known
    // node bug in docs/SIMULATOR.md ("Known bugs"): a duplicated replica write of
    // such a delete re-applies after the acknowledgement.
    bool blind_deletes = true;
    // Membership through gossip instead of a static list; joins and leaves
    // need it. The workload starts once the first nodes - joins members are
    // all up.
    bool gossip = false;
    // With gossip, every node's seed list is n1..n{seeds} (a seed lists itself
    // too), so several seeds may form the cluster at once. Seeds start first:
    // seeds <= nodes - joins.
    uint32_t seeds = 1;
    // The last `joins` nodes start during the workload and join the ring.
    uint32_t joins = 0;
    // Up to `leaves` members are asked to leave during the workload (never
    // below n_replicas members left in the ring).
    uint32_t leaves = 0;
    std::string preset;  // the preset the options came from, if any (for replay)
    bool trace = false;  // every message to stderr (not part of the replay)
};

// Scenarios as data: a named preset is a complete SimOptions but for the seed.
struct Preset {
    std::string name;
    std::string description;
    SimOptions options;
};
const std::vector<Preset>& presets();
const Preset* find_preset(std::string_view name);

struct FaultCounts {
    uint64_t partitions = 0;
    uint64_t one_way_partitions = 0;
    uint64_t crashes = 0;
    uint64_t outages = 0;  // nodes taken down by an outage
    uint64_t wipes = 0;    // nodes that lost their store
    uint64_t pauses = 0;
    uint64_t loss_periods = 0;
    uint64_t dup_periods = 0;
    uint64_t disk_failures = 0;  // periods of failing commits
    uint64_t fail_stops = 0;     // nodes stopped by a failed commit
    bool skewed_clocks = false;
    uint64_t joins = 0;           // late nodes started
    uint64_t leave_requests = 0;  // LeaveRequests sent
    uint64_t leaves = 0;          // members that accepted to leave
};

// The ring the cluster settled on (gossip runs), for summaries.
struct MembershipOutcome {
    bool formed = false;            // the initial members all came up
    bool settled = false;           // the quiet phase's membership wait ended
    uint64_t settle_ms = 0;         // how long that wait took
    std::vector<std::string> ring;  // members of the final ring
    std::vector<std::string> left;  // nodes that left
};

struct SimResult {
    History history;
    // Every home replica's stored object, collected after faults stopped and
    // membership settled, before any read the simulator makes.
    FinalState final_state;
    // The final reads (every key at `all` through every node), and the stores after them.
    std::vector<FinalRead> final_reads;
    FinalState stores_after_reads;
    // Every object every node stored, data and hints, before and after the
    // final reads (the dot_reuse rule).
    std::vector<StoredCopy> copies_before_reads;
    std::vector<StoredCopy> copies_after_reads;
    // For each acknowledged put (history index), how many nodes durably held
    // its version when the coordinator sent the acknowledgement (CheckInput).
    std::map<uint64_t, uint32_t> copies_at_ack;
    // Writes (history index) whose only durable copy may have been on a node
    // the wipe fault took the store of (CheckInput::lost_with_disk).
    std::set<uint64_t> lost_with_disk;
    // The quiet phase's wait for every node's hints to drain: how long it took
    // (hints_drained false: it gave up after kHintDrainMsMax), and the hints
    // held, over all nodes, when the faults stopped and every node restarted.
    bool hints_drained = true;
    uint64_t hint_drain_ms = 0;
    uint64_t hints_at_quiet = 0;
    // Anti-entropy and tombstone GC at the end of the run, summed over the
    // nodes (each since its last start): exchanges completed, keys merged
    // from them, tombstones purged.
    uint64_t ae_exchanges = 0;
    uint64_t ae_keys_received = 0;
    uint64_t tombstones_purged = 0;
    // How late a write that was not acknowledged may still take effect
    // (write_effect_window_ms below), and the longest pause it was computed from.
    uint64_t write_effect_window_ms = 0;
    std::vector<Violation> violations;
    CheckStats check_stats;  // what each checker rule checked and excused
    uint64_t digest = 0;     // of the history
    FaultCounts faults;
    MembershipOutcome membership;
    NetworkStats network;
    uint64_t final_reads_failed = 0;  // final reads that never succeeded (each a violation)
    uint64_t simulated_ms = 0;
    double real_seconds = 0;
    // (kind, outcome) -> count
    std::map<std::pair<OpKind, Outcome>, uint64_t> ops;
};

// Whether the options make a runnable scenario (joins and leaves need gossip,
// n1 is never a late node); invalid_argument naming the problem if not.
Status validate(const SimOptions& options);
// Runs the whole scenario (options must validate).
SimResult run_simulation(const SimOptions& options);
// The bound on when a write may take effect at a replica, counted from when its
// client sent it: the client's request reaches the coordinator (a message's
// latency, plus the wait behind a pause of the coordinator), the coordinator
// sends its replica requests while its deadline runs (kRequestDeadlineMs on its
// own clock, which may run slow by the drift bound), a send may itself wait
// behind a pause of the coordinator, and the replica request reaches the
// replica (latency plus a pause of the replica). Only minting writes drop
// values, and nothing but a replica write request mints, so after this window
// a write that was not acknowledged can no longer take effect. Pauses that
// overlap extend each other, so the run's longest unbroken pause is measured
// (NetworkStats::longest_pause_ms) rather than taken from the nemesis's limit.
uint64_t write_effect_window_ms(const ClusterOptions& cluster, uint64_t longest_pause_ms);
// Whether the run's options make full convergence of the home replicas
// checkable before any read of the simulator's (CheckInput::
// convergence_before_reads): hinted handoff on, static membership, only crash
// and outage faults, and clients that talk only to steady nodes. Under them
// every version a coordinator learns of reaches every home replica through a
// merge or a durable hint, and no version is minted that no coordinator
// learns of (docs/SIMULATOR.md, "Convergence").
bool convergence_judgeable(const SimOptions& options);
// The kvsim command line that replays `options` exactly.
std::string replay_command(const SimOptions& options);
// A human-readable summary (what kvsim prints).
std::string summary(const SimOptions& options, const SimResult& result,
                    size_t violations_shown = 5);

}  // namespace kv::sim
