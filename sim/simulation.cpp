#include "sim/simulation.h"

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cstdio>
#include <limits>
#include <optional>
#include <set>

#include "gossip/cluster_view.h"
#include "node/data/stored_record.h"
#include "ring/ring.h"

namespace kv::sim {

// ---- faults and presets ----------------------------------------------------------

namespace {
struct FaultName {
    std::string_view name;
    bool FaultSet::*flag;
    bool in_all = true;  // part of "all"
};
constexpr FaultName kFaultNames[] = {
    {"partition", &FaultSet::partition},
    {"crash", &FaultSet::crash},
    {"loss", &FaultSet::loss},
    {"dup", &FaultSet::dup},
    {"pause", &FaultSet::pause},
    {"skew", &FaultSet::skew},
    {"diskfail", &FaultSet::diskfail},
    {"unsynced", &FaultSet::unsynced},
    // Not in "all": it changes the cluster's shape for most of the run, which
    // the presets of "all" and their recorded digests predate.
    {"outage", &FaultSet::outage, false},
    // Not in "all" either: the other presets' digests predate it, and a lost
    // disk needs static membership.
    {"wipe", &FaultSet::wipe, false},
};
}  // namespace

Result<FaultSet> parse_faults(std::string_view list) {
    FaultSet out;
    if (list == "none" || list.empty()) return out;
    if (list == "all") {
        for (const auto& f : kFaultNames) out.*f.flag = f.in_all;
        return out;
    }
    while (!list.empty()) {
        const size_t comma = list.find(',');
        const std::string_view name = list.substr(0, comma);
        list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
        if (name == "all") {
            for (const auto& f : kFaultNames) out.*f.flag = out.*f.flag || f.in_all;
            continue;
        }
        auto it = std::find_if(std::begin(kFaultNames), std::end(kFaultNames),
                               [&](const FaultName& f) { return f.name == name; });
        if (it == std::end(kFaultNames)) {
            return Status(ErrorCode::invalid_argument,
                          "unknown fault '" + std::string(name) +
                              "' (known: partition, crash, loss, dup, pause, skew, diskfail, "
                              "unsynced, outage, wipe, all, none)");
        }
        out.*it->flag = true;
    }
    return out;
}

std::string faults_text(const FaultSet& faults) {
    std::string out;
    for (const auto& f : kFaultNames) {
        if (!(faults.*f.flag)) continue;
        if (!out.empty()) out += ",";
        out += f.name;
    }
    if (out.empty()) return "none";
    if (out == "partition,crash,loss,dup,pause,skew,diskfail,unsynced") return "all";
    if (out == "partition,crash,loss,dup,pause,skew,diskfail,unsynced,outage") return "all,outage";
    return out;
}

namespace {
// The share of strict requests in the presets (but the outage ones): the
// checker's quorum-intersection rules (stale_read, resurrection's gets) bind
// only pairs of a strict write and a strict read, about half the pairs at 700,
// which keeps the stale_read mutants caught about as often as before sloppy
// quorums (docs/SIMULATOR.md, "Mutants": 500 caught them in 14-20 of 50 seeds,
// 700 in 22-28), while 30% of requests still exercise sloppy quorums.
constexpr uint32_t kStrictPermille = 700;
SimOptions preset_options(uint32_t nodes, uint32_t clients, uint64_t duration_s, const char* faults,
                          uint32_t keys = 6) {
    SimOptions o;
    o.strict_permille = kStrictPermille;
    o.nodes = nodes;
    o.clients = clients;
    o.duration_s = duration_s;
    o.faults = parse_faults(faults).value();
    o.keys = keys;
    return o;
}
SimOptions membership_options(uint32_t nodes, uint32_t clients, uint64_t duration_s,
                              const char* faults, uint32_t joins, uint32_t leaves) {
    SimOptions o = preset_options(nodes, clients, duration_s, faults);
    o.gossip = true;
    o.joins = joins;
    o.leaves = leaves;
    // Enough cold keys that every range holds some: a range a joiner serves
    // without its data shows (6 keys, overwritten every few hundred ms, hid it).
    o.keys = 300;
    o.hot_keys = 6;
    o.hot_permille = 800;
    return o;
}
// Hot keys under contention and 1,000 cold keys.
SimOptions hot_cold_options(uint64_t duration_s, const char* faults) {
    SimOptions o = preset_options(5, 8, duration_s, faults, 1006);
    o.hot_keys = 6;
    o.hot_permille = 900;
    return o;
}
// Long outages of home replicas, a mixed strict and sloppy workload, and
// enough cold keys that hints pile up for many keys.
SimOptions outage_options(const char* faults, uint32_t steady_nodes) {
    SimOptions o = preset_options(5, 8, 30, faults, 100);
    o.hot_keys = 6;
    o.hot_permille = 800;
    o.steady_nodes = steady_nodes;
    // Half strict, half sloppy: the availability of the two is compared
    // (tests/sim/outage_test.cpp).
    o.strict_permille = 500;
    return o;
}
}  // namespace

const std::vector<Preset>& presets() {
    static const std::vector<Preset> all = [] {
        std::vector<Preset> p = {
            {"default", "5 nodes, 8 clients, 20 s under every fault",
             preset_options(5, 8, 20, "all")},
            {"calm", "5 nodes, no faults: the baseline", preset_options(5, 8, 20, "none")},
            {"partitions", "partitions only, one-way included",
             preset_options(5, 8, 30, "partition")},
            {"crashes", "crash/restart and pauses", preset_options(5, 8, 30, "crash,pause")},
            {"lossy", "loss and duplication with skewed clocks",
             preset_options(5, 8, 30, "loss,dup,skew")},
            {"hot-key", "every client on 2 keys under every fault",
             preset_options(5, 12, 20, "all", 2)},
            {"small", "3 nodes, 4 clients, 10 s under every fault",
             preset_options(3, 4, 10, "all")},
            {"membership",
             "gossip membership, 5 nodes of which 2 join late and 1 leaves, under crashes, "
             "partitions, loss and duplication",
             membership_options(5, 8, 60, "partition,crash,loss,dup", 2, 1)},
            {"mixed",
             "hot and 1,000 cold keys; clients write again with a write's reply context; "
             "every fault",
             [] {
                 SimOptions o = hot_cold_options(30, "all");
                 o.rewrite_permille = 300;
                 return o;
             }()},
            {"retries",
             "hot and 1,000 cold keys; clients retry failed writes and send some requests "
             "to two coordinators; every fault",
             [] {
                 SimOptions o = hot_cold_options(30, "all");
                 o.retry_permille = 500;
                 o.duplicate_permille = 50;
                 return o;
             }()},
            {"storage",
             "failing commits (fail-stop), crashes that lose unsynced batches, pauses and "
             "duplication",
             preset_options(5, 8, 30, "crash,pause,dup,diskfail,unsynced")},
            {"forming",
             "gossip membership formed by 3 seeds at once, then 1 join and 1 leave, under "
             "partitions, crashes, loss, duplication and failing commits",
             [] {
                 SimOptions o = membership_options(
                     5, 8, 60, "partition,crash,loss,dup,diskfail,unsynced", 1, 1);
                 o.seeds = 3;
                 return o;
             }()},
            {"outage",
             "home replicas down for long stretches (1-2 of 5 nodes crashed for 5-15 s at a "
             "time) under partitions, loss and duplication; half the requests strict, half "
             "sloppy; hot and 94 cold keys",
             outage_options("outage,partition,loss,dup", 0)},
            {"outage-replay",
             "outages of n3-n5 only (1-2 at a time, 5-15 s), clients on n1 and n2, no other "
             "fault: the home replicas must converge from hint replay alone, judged before "
             "any read of the simulator's",
             outage_options("outage", 2)},
            {"anti-entropy",
             "read repair and hinted handoff off: replicas converge from anti-entropy alone, "
             "under partitions, crashes, loss and duplication; hot and 94 cold keys",
             [] {
                 SimOptions o = preset_options(5, 8, 30, "partition,crash,loss,dup", 100);
                 o.hot_keys = 6;
                 o.hot_permille = 800;
                 o.read_repair = false;
                 o.hinted_handoff = false;
                 return o;
             }()},
            {"tombstone-gc",
             "deletes purged by tombstone GC (2 s grace) while partitions and crashes keep "
             "replicas from seeing them; 40 s; hot and 94 cold keys",
             [] {
                 SimOptions o = preset_options(5, 8, 40, "partition,crash,loss,dup", 100);
                 o.hot_keys = 6;
                 o.hot_permille = 800;
                 o.strict_permille = 700;
                 o.tombstone_grace_ms = 2000;
                 return o;
             }()},
            {"disk-loss",
             "a node loses its disk (crashed, restarted empty) once, under partitions, "
             "crashes, loss and duplication: it refills before it serves replica reads; "
             "hot and 94 cold keys",
             [] {
                 SimOptions o = preset_options(5, 8, 30, "partition,crash,loss,dup,wipe", 100);
                 o.hot_keys = 6;
                 o.hot_permille = 800;
                 return o;
             }()},
        };
        for (auto& preset : p) preset.options.preset = preset.name;
        return p;
    }();
    return all;
}

const Preset* find_preset(std::string_view name) {
    for (const auto& p : presets()) {
        if (p.name == name) return &p;
    }
    return nullptr;
}

std::string replay_command(const SimOptions& o) {
    // Workload options only when set, so the commands of older runs still hold.
    auto permille = [](const char* flag, uint32_t value) {
        return value == 0 ? std::string() : " " + std::string(flag) + " " + std::to_string(value);
    };
    return "kvsim --seed " + std::to_string(o.seed) + " --nodes " + std::to_string(o.nodes) +
           " --clients " + std::to_string(o.clients) + " --duration " +
           std::to_string(o.duration_s) + " --faults " + faults_text(o.faults) + " --keys " +
           std::to_string(o.keys) + " --replicas " + std::to_string(o.n_replicas) +
           (o.hot_keys == 0 ? ""
                            : " --hot-keys " + std::to_string(o.hot_keys) + " --hot-permille " +
                                  std::to_string(o.hot_permille)) +
           permille("--rewrite-permille", o.rewrite_permille) +
           permille("--retry-permille", o.retry_permille) +
           permille("--duplicate-permille", o.duplicate_permille) +
           permille("--strict-permille", o.strict_permille) +
           (o.hinted_handoff ? "" : " --hinted-handoff false") +
           (o.read_repair ? "" : " --read-repair false") +
           (o.anti_entropy ? "" : " --anti-entropy false") +
           (o.tombstone_grace_ms == 60000
                ? ""
                : " --tombstone-grace-ms " + std::to_string(o.tombstone_grace_ms)) +
           (o.steady_nodes == 0 ? "" : " --steady-nodes " + std::to_string(o.steady_nodes)) +
           (o.blind_deletes ? "" : " --no-blind-deletes") +
           (o.gossip ? " --gossip --joins " + std::to_string(o.joins) + " --leaves " +
                           std::to_string(o.leaves) +
                           (o.seeds == 1 ? "" : " --seed-nodes " + std::to_string(o.seeds))
                     : "");
}

Status validate(const SimOptions& o) {
    if (o.nodes < 1 || o.keys < 1)
        return Status(ErrorCode::invalid_argument, "at least one node and one key");
    if ((o.joins > 0 || o.leaves > 0) && !o.gossip)
        return Status(ErrorCode::invalid_argument,
                      "joins and leaves need gossip membership (--gossip)");
    // n1 is the seed every node joins through: it must be there from the start.
    if (o.joins >= o.nodes)
        return Status(ErrorCode::invalid_argument,
                      "joins must be fewer than nodes (n1, the seed, starts first)");
    if (o.leaves > o.nodes) return Status(ErrorCode::invalid_argument, "leaves exceed nodes");
    if (o.seeds < 1 || o.seeds > o.nodes - o.joins)
        return Status(ErrorCode::invalid_argument,
                      "seeds must be 1..nodes - joins (the seeds start first)");
    if (o.seeds > 1 && !o.gossip)
        return Status(ErrorCode::invalid_argument, "seeds need gossip membership (--gossip)");
    if (o.faults.wipe && o.gossip)
        return Status(ErrorCode::invalid_argument,
                      "the wipe fault needs a static member list (a wiped gossip member "
                      "would have to join again)");
    if (o.steady_nodes >= o.nodes - o.joins)
        return Status(ErrorCode::invalid_argument,
                      "steady nodes must be fewer than the nodes that start first");
    if (o.hot_permille > 1000 || o.rewrite_permille > 1000 || o.retry_permille > 1000 ||
        o.duplicate_permille > 1000 || o.strict_permille > 1000)
        return Status(ErrorCode::invalid_argument, "a permille is at most 1000");
    return {};
}

// ---- one run -----------------------------------------------------------------------

namespace {

// Timing of the workload and the nemesis, in virtual milliseconds.
constexpr uint64_t kRequestDeadlineMs = 1000;  // the node's deadline for each request
// Past the node's deadline plus a slow round trip: a request unanswered by then is
// recorded as indeterminate.
constexpr uint64_t kClientTimeoutMs = 2500;
constexpr uint64_t kThinkMsMax = 30;
// A failed or unanswered write is retried at most this many times.
constexpr uint32_t kClientRetriesMax = 2;
constexpr uint64_t kFaultGapMsMin = 200;
constexpr uint64_t kFaultGapMsMax = 1500;
constexpr uint64_t kFaultMsMin = 300;
constexpr uint64_t kFaultMsMax = 4000;
// unsynced: a batch of a node's writes is durable at most this long after it
// began (kvnode's writer syncs while the loop goes on).
constexpr uint64_t kCommitBatchMsMax = 20;
// diskfail: how long a store's commits keep failing.
constexpr uint64_t kDiskFailMsMin = 20;
constexpr uint64_t kDiskFailMsMax = 1000;
// outage: how long a node stays down, the gap before the next outage begins,
// and how many nodes may be down at once (one or two: of 5 nodes with n = 3,
// both may be home replicas of a key, which then has one home up).
constexpr uint64_t kOutageMsMin = 5000;
constexpr uint64_t kOutageMsMax = 15000;
constexpr uint64_t kOutageGapMsMin = 500;
constexpr uint64_t kOutageGapMsMax = 4000;
constexpr size_t kOutageDownMax = 2;
// wipe: lost disks a run.
constexpr uint64_t kWipesMax = 1;
// Quiet phase: every node's hints must drain (replayed to their targets and
// confirmed durable) within this long after the faults stop and the membership
// settles; far above the replay's own pace (a batch per target in flight, at
// thousands of keys a second), so missing it means stuck, not slow.
constexpr uint64_t kHintDrainMsMax = 60'000;
constexpr uint64_t kHintCheckMs = 100;
// Quiet phase: a wiped node's refill ends within this long after the hints
// drained (every member is up by then; an exchange takes a few round trips).
constexpr uint64_t kRefillEndMsMax = 60'000;
// After the faults stop: peers must be heard again (peer_down_after_ms) before
// the repair reads at `all` can reach every replica.
constexpr uint64_t kSettleMs = 5000;
constexpr uint64_t kRepairDeadlineMs = 5000;
constexpr int kRepairAttempts = 4;
// Membership (gossip runs). Bounds on the waits for the initial members to come
// up and, in the quiet phase, for every join and leave to complete: generous
// against the node's own timers (gossip rounds of 1 s, transfer pages retried
// after 10 s without an answer), so a run that needs more is stuck, not slow.
constexpr uint64_t kFormMsMax = 60'000;
constexpr uint64_t kMembershipSettleMsMax = 120'000;
constexpr uint64_t kMembershipCheckMs = 100;
// Joins start and leaves are asked within these fractions of the workload, so
// they happen under the faults, with time left for faults after them.
constexpr uint64_t kMembershipFromPermille = 100;
constexpr uint64_t kJoinUntilPermille = 400;
constexpr uint64_t kLeaveUntilPermille = 800;
// A leave that cannot be asked yet (too few members would remain, no member
// up) or was refused is tried again after this long.
constexpr uint64_t kLeaveRetryMsMin = 500;
constexpr uint64_t kLeaveRetryMsMax = 2000;
const std::string kRepairClient = "repair";
const std::string kAdminClient = "admin";

enum class FollowUp : uint8_t { none, put, del };

struct Client {
    uint32_t id = 0;
    std::string name;
    uint64_t seq = 0;
    uint64_t request_id = 0;  // of the request in flight; 0 when idle
    int64_t entry = kNoOp;    // its history entry
    FollowUp follow_up = FollowUp::none;
    uint32_t retries = 0;  // of the write in flight
    // The nodes holding the put in flight when its coordinator sent ok (copies_of).
    std::optional<uint32_t> copies_at_ack;
};

class Run {
  public:
    explicit Run(const SimOptions& options);
    SimResult go();

  private:
    uint64_t uniform(uint64_t lo, uint64_t hi) {
        return std::uniform_int_distribution<uint64_t>(lo, hi)(cluster_.rng());
    }
    bool chance(double p) {
        return std::uniform_real_distribution<double>(0, 1)(cluster_.rng()) < p;
    }
    // No draw at all when off, so runs without the option keep their digests.
    bool chance_permille(uint32_t permille) { return permille > 0 && uniform(0, 999) < permille; }
    proto::Level random_level() {
        constexpr proto::Level levels[] = {proto::Level::one, proto::Level::two,
                                           proto::Level::quorum, proto::Level::all};
        return levels[uniform(0, 3)];
    }

    // Workload.
    void start_next(Client& c);
    std::string pick_key();
    // A retry (retry_of: the first attempt's index) writes the first attempt's value.
    void issue(Client& c, OpKind kind, const std::string& key, std::optional<std::string> context,
               int64_t context_from, int64_t retry_of = kNoOp);
    bool retry(Client& c, const HistoryEntry& e);
    void on_reply(const std::string& client, const node::Message& m);
    void complete(Client& c, const node::Message* reply);
    void after(Client& c);

    // Membership nemesis (gossip runs).
    void schedule_membership();
    void start_late(size_t node);
    void try_leave();
    void send_leave();
    void on_admin_reply(const node::Message& m);
    bool leave_keeps_enough_members(size_t node);
    // Empty when every started node is up, declared up or left, has no transfers
    // pending, a ring that is not moving, and the same view of everyone's
    // status and tokens and the same ring as the others; else what is not so.
    std::string membership_problem();
    bool wait_for_membership(uint64_t ms_max);
    ring::Ring final_ring();

    // Nemesis.
    void nemesis_step();
    void inject_partition();
    void inject_crash();
    void inject_pause();
    void inject_loss();
    void inject_dup();
    void inject_diskfail();
    void inject_wipe();
    // outage: takes one or two nodes down for a long stretch, then schedules the next.
    void outage_step();
    bool crashable(size_t node) const { return node >= options_.steady_nodes; }
    // A random started node a client sends to (only steady nodes when there are any).
    uint32_t pick_coordinator();
    void apply_partitions();
    void stop_faults();

    // Quiet phase.
    void repair_reads();
    void record_membership();
    // Every key's home replicas' stored objects, straight from their stores.
    FinalState collect_stores();
    // How many nodes durably hold the put of `value` (live, or superseded: their
    // data or a hint covers its dot), in data or hints, now; nullopt when no
    // node holds the value (its dot cannot be known).
    // `except`: a node not counted (its dots still are).
    std::optional<uint32_t> copies_of(const std::string& key, const std::string& value,
                                      std::optional<size_t> except = std::nullopt);
    // Every object every node stores, data and hints (for the dot_reuse rule).
    std::vector<StoredCopy> collect_copies();
    // Waits, bounded, until no node holds a hint; empty if so, else which
    // nodes still hold how many.
    std::string wait_for_hints(uint64_t ms_max);
    // Hints held over every node that is up, in keys.
    uint64_t hints_held();

    SimOptions options_;
    Cluster cluster_;
    SimResult result_;
    std::vector<Client> clients_;
    std::map<std::string, size_t> client_index_;
    bool stopping_ = false;
    uint64_t next_partition_ = 0;
    std::map<uint64_t, std::vector<std::pair<size_t, size_t>>> partitions_;
    uint32_t loss_periods_active_ = 0;
    uint32_t dup_periods_active_ = 0;
    std::set<size_t> out_;                  // nodes an outage holds down
    std::optional<uint64_t> last_wipe_ms_;  // when the wipe fault last took a node's store
    std::vector<bool> started_;             // false for a late node not started yet
    std::vector<size_t> started_list_;
    // Members sent a LeaveRequest (counted as leaving from then on), and those
    // that accepted it (they must end up left).
    std::set<size_t> leave_asked_;
    std::set<size_t> leave_accepted_;
    uint32_t leaves_to_ask_ = 0;
    std::optional<size_t> leave_target_;  // the LeaveRequest in flight
    uint64_t leave_request_id_ = 0;
    std::string not_formed_;
    std::optional<node::Message> repair_reply_;
    uint64_t repair_request_id_ = 0;
    uint64_t repair_requests_ = 0;
};

ClusterOptions cluster_options(const SimOptions& o) {
    ClusterOptions c;
    c.seed = o.seed;
    c.nodes = o.nodes;
    c.node_config.n_replicas = o.n_replicas;
    c.node_config.hinted_handoff = o.hinted_handoff;
    c.node_config.read_repair = o.read_repair;
    c.node_config.anti_entropy = o.anti_entropy;
    c.node_config.tombstone_grace_ms = o.tombstone_grace_ms;
    c.trace_to_stderr = o.trace;
    c.log_to_stderr = o.trace;  // the nodes' own log lines beside their messages
    if (o.gossip) {
        for (uint32_t s = 1; s <= o.seeds; ++s)
            c.node_config.seeds.push_back("sim://n" + std::to_string(s));
    }
    if (o.faults.unsynced) c.commit_batch_ms_max = kCommitBatchMsMax;
    c.latency_ms_min = 1;
    c.latency_ms_max = 5;
    // A thin tail of slow messages is part of every network: it reorders.
    c.latency_tail_probability = 0.02;
    c.latency_tail_ms_max = 60;
    if (o.faults.skew) {
        c.latency_tail_probability = 0.1;
        c.latency_tail_ms_max = 400;
        c.clock_offset_ms_max = 3'600'000;
        c.clock_drift_ppm_max = 20'000;  // 2%: far worse than quartz, to stress timers
    }
    return c;
}

Run::Run(const SimOptions& options) : options_(options), cluster_(cluster_options(options)) {
    // The configured n: the node judges every level against it, whatever the
    // size of its ring (a ring smaller than n answers unavailable instead).
    result_.history.n_replicas = options_.n_replicas;
    result_.faults.skewed_clocks = options_.faults.skew;
    // Late nodes were built with the others; crashed before their first tick
    // they have said nothing to anyone, and restart() later starts them fresh.
    started_.assign(options_.nodes, true);
    for (size_t i = options_.nodes - options_.joins; i < options_.nodes; ++i) {
        cluster_.crash(i);
        started_[i] = false;
    }
    for (size_t i = 0; i < options_.nodes; ++i) {
        if (started_[i]) started_list_.push_back(i);
    }
    leaves_to_ask_ = options_.leaves;
    for (uint32_t i = 0; i < options_.clients; ++i) {
        Client c;
        c.id = i + 1;
        c.name = "c" + std::to_string(c.id);
        client_index_[c.name] = clients_.size();
        clients_.push_back(std::move(c));
    }
    cluster_.on_client_reply(
        [this](const std::string& client, const node::Message& m) { on_reply(client, m); });
    // Counted when the coordinator answers, not when the answer arrives: by then
    // further replicas may have caught up and hidden an early acknowledgement.
    cluster_.on_client_reply_sent([this](const std::string& client, const node::Message& m) {
        auto it = client_index_.find(client);
        const auto* w = std::get_if<proto::WriteResponse>(&m);
        if (it == client_index_.end() || w == nullptr || w->code != ErrorCode::ok) return;
        Client& c = clients_[it->second];
        if (c.request_id == 0 || w->id != c.request_id || c.copies_at_ack) return;
        const HistoryEntry& e = result_.history.entries[static_cast<size_t>(c.entry)];
        // A node wiped since the put began may have acknowledged it, then lost
        // it: the copies left say nothing of what the coordinator counted.
        if (last_wipe_ms_ && *last_wipe_ms_ >= e.start_ms) return;
        if (e.kind == OpKind::put) c.copies_at_ack = copies_of(e.key, e.value);
    });
    // A node stopped by a failed commit is restarted later, as an operator (or
    // systemd) would; stop_faults() restarts it at the latest.
    cluster_.on_fail_stop([this](size_t i) {
        ++result_.faults.fail_stops;
        cluster_.at(uniform(kFaultMsMin, kFaultMsMax), [this, i] { cluster_.restart(i); });
    });
}

std::string Run::pick_key() {
    const uint32_t hot = std::min(options_.hot_keys, options_.keys);
    if (hot == 0 || hot == options_.keys)
        return "k" + std::to_string(uniform(0, options_.keys - 1));
    if (uniform(0, 999) < options_.hot_permille) return "k" + std::to_string(uniform(0, hot - 1));
    return "k" + std::to_string(uniform(hot, options_.keys - 1));
}

void Run::start_next(Client& c) {
    if (stopping_) return;
    c.retries = 0;
    const std::string key = pick_key();
    const uint64_t pick = uniform(0, 99);
    // A client mostly reads, then writes with the context it read (the way a
    // store like this is meant to be used); a few blind writes make siblings.
    if (pick < 30) {
        c.follow_up = FollowUp::none;
        issue(c, OpKind::get, key, std::nullopt, kNoOp);
    } else if (pick < 65) {
        c.follow_up = FollowUp::put;
        issue(c, OpKind::get, key, std::nullopt, kNoOp);
    } else if (pick < 80) {
        c.follow_up = FollowUp::none;
        issue(c, OpKind::put, key, std::nullopt, kNoOp);
    } else if (pick < 96 || !options_.blind_deletes) {
        c.follow_up = FollowUp::del;
        issue(c, OpKind::get, key, std::nullopt, kNoOp);
    } else {
        c.follow_up = FollowUp::none;
        issue(c, OpKind::del, key, std::nullopt, kNoOp);
    }
}

void Run::issue(Client& c, OpKind kind, const std::string& key, std::optional<std::string> context,
                int64_t context_from, int64_t retry_of) {
    HistoryEntry e;
    e.index = result_.history.entries.size();
    e.client = c.id;
    // Any started node coordinates, left ones included (a left node keeps
    // running and still coordinates; it only stops being a replica).
    e.node = pick_coordinator();
    e.kind = kind;
    e.key = key;
    e.context = std::move(context);
    e.context_from = context_from;
    e.retry_of = retry_of;
    e.level = random_level();
    e.strict = chance_permille(options_.strict_permille);
    e.start_ms = cluster_.now_ms();
    ++c.seq;
    // Unique across the run, so the checker can tell every write apart.
    if (kind == OpKind::put) {
        e.value = retry_of != kNoOp ? result_.history.entries[static_cast<size_t>(retry_of)].value
                                    : c.name + "-" + std::to_string(c.seq);
    }
    c.request_id = (uint64_t{c.id} << 32) | c.seq;
    c.entry = static_cast<int64_t>(e.index);
    const proto::Consistency cl{e.level, 0, e.strict};
    node::Message request;
    switch (kind) {
        case OpKind::get:
            request = proto::GetRequest{c.request_id, key, cl, kRequestDeadlineMs};
            break;
        case OpKind::put:
            request =
                proto::PutRequest{c.request_id, key, e.value, e.context, cl, kRequestDeadlineMs};
            break;
        case OpKind::del:
            request = proto::DelRequest{c.request_id, key, e.context, cl, kRequestDeadlineMs};
            break;
    }
    const size_t node = e.node;
    if (chance_permille(options_.duplicate_permille)) {
        // The same request, same id, to a second coordinator at the same time:
        // a client library that fails over without waiting, or a proxy that
        // resends. The client takes the first reply.
        e.also_sent_to = pick_coordinator();
        cluster_.client_send(*e.also_sent_to, c.name, request);
    }
    result_.history.entries.push_back(std::move(e));
    cluster_.client_send(node, c.name, std::move(request));
    const uint64_t request_id = c.request_id;
    const size_t ci = client_index_[c.name];
    cluster_.at(kClientTimeoutMs, [this, ci, request_id] {
        Client& cl = clients_[ci];
        if (cl.request_id == request_id) complete(cl, nullptr);
    });
}

uint32_t Run::pick_coordinator() {
    if (options_.faults.outage && options_.steady_nodes == 0) {
        // A client whose connection to a node in a long outage is refused uses
        // another at once (a node crashed by `crash` still swallows requests
        // until the client's timeout). Without this, clients spent most of an
        // `outage` run waiting on dead coordinators, and few requests met an
        // outage of home replicas at a live coordinator.
        std::vector<size_t> live;
        for (size_t i : started_list_) {
            if (!out_.count(i)) live.push_back(i);
        }
        return static_cast<uint32_t>(live[uniform(0, live.size() - 1)]);
    }
    if (options_.steady_nodes == 0)
        return static_cast<uint32_t>(started_list_[uniform(0, started_list_.size() - 1)]);
    // Steady nodes start first (validate), so they are the list's first entries.
    return static_cast<uint32_t>(started_list_[uniform(0, options_.steady_nodes - 1)]);
}

void Run::on_reply(const std::string& client, const node::Message& m) {
    if (client == kRepairClient) {
        if (node::request_id(m) == repair_request_id_) repair_reply_ = m;
        cluster_.take_replies(client);
        return;
    }
    if (client == kAdminClient) {
        const node::Message reply = m;
        cluster_.take_replies(client);
        on_admin_reply(reply);
        return;
    }
    auto it = client_index_.find(client);
    assert(it != client_index_.end());
    Client& c = clients_[it->second];
    const node::Message reply = m;
    cluster_.take_replies(client);
    if (c.request_id == 0 || node::request_id(reply) != c.request_id) return;  // late: given up on
    complete(c, &reply);
}

void Run::complete(Client& c, const node::Message* reply) {
    HistoryEntry& e = result_.history.entries[static_cast<size_t>(c.entry)];
    e.end_ms = cluster_.now_ms();
    c.request_id = 0;
    if (reply == nullptr) {
        e.outcome = Outcome::indeterminate;
        e.code = ErrorCode::timeout;
    } else if (const auto* g = std::get_if<proto::GetResponse>(reply)) {
        e.code = g->code;
        e.values = g->values;
        e.context_returned = g->context;
        e.stand_in_used = g->info.stand_in_used;
        e.outcome = g->code == ErrorCode::ok          ? Outcome::ok
                    : g->code == ErrorCode::not_found ? Outcome::not_found
                                                      : Outcome::failed;
    } else if (const auto* w = std::get_if<proto::WriteResponse>(reply)) {
        e.code = w->code;
        e.context_returned = w->context;
        e.stand_in_used = w->info.stand_in_used;
        e.outcome = w->code == ErrorCode::ok ? Outcome::ok : Outcome::failed;
    } else if (const auto* err = std::get_if<proto::ErrorResponse>(reply)) {
        e.code = err->code;
        e.outcome = Outcome::failed;
    } else {
        e.code = ErrorCode::internal;
        e.outcome = Outcome::failed;
    }
    ++result_.ops[{e.kind, e.outcome}];
    if (e.kind == OpKind::put && e.outcome == Outcome::ok && e.retry_of == kNoOp &&
        !e.also_sent_to && c.copies_at_ack) {
        // What the acknowledgement promised: w replicas (home or stand-in) made
        // the version durable before it was sent (the ack_copies rule). Not for
        // a value sent more than once: its versions carry different dots, and
        // the one acknowledged may survive only as a dot some context covers,
        // while a live copy shows another (seed 9034 of `retries`).
        result_.copies_at_ack[e.index] = *c.copies_at_ack;
    }
    c.copies_at_ack.reset();
    after(c);
}

bool Run::retry(Client& c, const HistoryEntry& e) {
    if (e.kind == OpKind::get || c.retries >= kClientRetriesMax) return false;
    const bool retriable = e.outcome == Outcome::indeterminate ||
                           (e.outcome == Outcome::failed &&
                            (e.code == ErrorCode::timeout || e.code == ErrorCode::unavailable ||
                             e.code == ErrorCode::overloaded));
    if (!retriable || !chance_permille(options_.retry_permille)) return false;
    ++c.retries;
    const int64_t first = e.retry_of != kNoOp ? e.retry_of : static_cast<int64_t>(e.index);
    const std::string key = e.key;  // e lives in the history, which issue() appends to
    issue(c, e.kind, key, e.context, e.context_from, first);
    return true;
}

void Run::after(Client& c) {
    const HistoryEntry& e = result_.history.entries[static_cast<size_t>(c.entry)];
    if (!stopping_ && retry(c, e)) return;
    if (!stopping_ && e.kind == OpKind::put && e.outcome == Outcome::ok &&
        !e.context_returned.empty() && chance_permille(options_.rewrite_permille)) {
        // The key again, with the context the write returned (PROTOCOL.md tells
        // clients they may): it supersedes exactly what that write saw and the write.
        c.retries = 0;
        const std::string key = e.key;
        issue(c, OpKind::put, key, e.context_returned, static_cast<int64_t>(e.index));
        return;
    }
    const FollowUp follow_up = e.kind == OpKind::get ? c.follow_up : FollowUp::none;
    c.follow_up = FollowUp::none;
    if (follow_up != FollowUp::none && !stopping_) {
        // Write with what the get returned; a get that returned no context makes
        // the write blind.
        const bool has_context = (e.outcome == Outcome::ok || e.outcome == Outcome::not_found) &&
                                 !e.context_returned.empty();
        std::optional<std::string> context;
        int64_t from = kNoOp;
        if (has_context) {
            context = e.context_returned;
            from = static_cast<int64_t>(e.index);
        }
        const std::string key = e.key;
        if (follow_up == FollowUp::del && !context && !options_.blind_deletes) {
            const size_t ci = client_index_[c.name];
            cluster_.at(uniform(0, kThinkMsMax), [this, ci] { start_next(clients_[ci]); });
            return;
        }
        issue(c, follow_up == FollowUp::put ? OpKind::put : OpKind::del, key, std::move(context),
              from);
        return;
    }
    const size_t ci = client_index_[c.name];
    cluster_.at(uniform(0, kThinkMsMax), [this, ci] { start_next(clients_[ci]); });
}

// ---- nemesis ------------------------------------------------------------------------

void Run::nemesis_step() {
    if (stopping_) return;
    std::vector<void (Run::*)()> kinds;
    if (options_.faults.partition) kinds.push_back(&Run::inject_partition);
    if (options_.faults.crash) kinds.push_back(&Run::inject_crash);
    if (options_.faults.pause) kinds.push_back(&Run::inject_pause);
    if (options_.faults.loss) kinds.push_back(&Run::inject_loss);
    if (options_.faults.dup) kinds.push_back(&Run::inject_dup);
    if (options_.faults.diskfail) kinds.push_back(&Run::inject_diskfail);
    if (options_.faults.wipe) kinds.push_back(&Run::inject_wipe);
    if (kinds.empty()) return;
    (this->*kinds[uniform(0, kinds.size() - 1)])();
    cluster_.at(uniform(kFaultGapMsMin, kFaultGapMsMax), [this] { nemesis_step(); });
}

void Run::inject_partition() {
    if (options_.nodes < 2) return;
    std::vector<size_t> side;
    while (side.empty() || side.size() == options_.nodes) {
        side.clear();
        for (size_t i = 0; i < options_.nodes; ++i) {
            if (chance(0.5)) side.push_back(i);
        }
    }
    const bool one_way = chance(0.3);
    std::vector<std::pair<size_t, size_t>> pairs;
    for (size_t a : side) {
        for (size_t b = 0; b < options_.nodes; ++b) {
            if (std::find(side.begin(), side.end(), b) != side.end()) continue;
            pairs.emplace_back(a, b);
            if (!one_way) pairs.emplace_back(b, a);
        }
    }
    const uint64_t id = next_partition_++;
    partitions_[id] = std::move(pairs);
    apply_partitions();
    ++result_.faults.partitions;
    if (one_way) ++result_.faults.one_way_partitions;
    cluster_.at(uniform(kFaultMsMin, kFaultMsMax), [this, id] {
        partitions_.erase(id);
        apply_partitions();
    });
}

void Run::apply_partitions() {
    cluster_.heal();
    for (const auto& [id, pairs] : partitions_) {
        for (const auto& [a, b] : pairs) cluster_.block(a, b, true);
    }
}

void Run::inject_crash() {
    // Joining and leaving members too: their transfers must survive a crash.
    std::vector<size_t> up;
    size_t up_count = 0;
    for (size_t i : started_list_) {
        if (!cluster_.is_up(i)) continue;
        ++up_count;
        if (crashable(i)) up.push_back(i);
    }
    // Keep a majority of the started nodes up, or most requests would only fail.
    const size_t started = started_list_.size();
    if (up.empty() || (up_count * 2 <= started + 1 && up_count < started)) return;
    const size_t victim = up[uniform(0, up.size() - 1)];
    cluster_.crash(victim);
    ++result_.faults.crashes;
    cluster_.at(uniform(kFaultMsMin, kFaultMsMax), [this, victim] {
        // An outage that took the node down since holds it down.
        if (!out_.count(victim)) cluster_.restart(victim);
    });
}

void Run::inject_pause() {
    const size_t victim = uniform(0, cluster_.size() - 1);
    cluster_.pause(victim, uniform(100, 3000));
    ++result_.faults.pauses;
}

void Run::inject_loss() {
    cluster_.set_loss(0.01 * static_cast<double>(uniform(1, 20)));
    ++loss_periods_active_;
    ++result_.faults.loss_periods;
    cluster_.at(uniform(kFaultMsMin, kFaultMsMax), [this] {
        if (--loss_periods_active_ == 0) cluster_.set_loss(0);
    });
}

void Run::inject_dup() {
    cluster_.set_duplication(0.01 * static_cast<double>(uniform(5, 30)));
    ++dup_periods_active_;
    ++result_.faults.dup_periods;
    cluster_.at(uniform(kFaultMsMin, kFaultMsMax), [this] {
        if (--dup_periods_active_ == 0) cluster_.set_duplication(0);
    });
}

void Run::outage_step() {
    if (stopping_) return;
    std::vector<size_t> candidates;
    size_t up_count = 0;
    for (size_t i : started_list_) {
        if (!cluster_.is_up(i)) continue;
        ++up_count;
        if (crashable(i) && !out_.count(i)) candidates.push_back(i);
    }
    // At most kOutageDownMax down at once, and a majority of the started nodes up.
    const size_t started = started_list_.size();
    size_t room = std::min(kOutageDownMax - std::min(kOutageDownMax, out_.size()),
                           up_count > started / 2 + 1 ? up_count - (started / 2 + 1) : 0);
    room = std::min(room, candidates.size());
    if (room > 0) {
        const size_t victims = uniform(1, room);
        for (size_t v = 0; v < victims; ++v) {
            const size_t pick = uniform(0, candidates.size() - 1);
            const size_t victim = candidates[pick];
            candidates.erase(candidates.begin() + static_cast<std::ptrdiff_t>(pick));
            cluster_.crash(victim);
            out_.insert(victim);
            ++result_.faults.outages;
            cluster_.at(uniform(kOutageMsMin, kOutageMsMax), [this, victim] {
                out_.erase(victim);
                cluster_.restart(victim);
            });
        }
    }
    cluster_.at(uniform(kOutageGapMsMin, kOutageGapMsMax), [this] { outage_step(); });
}

void Run::inject_diskfail() {
    std::vector<size_t> up;
    for (size_t i : started_list_) {
        if (cluster_.is_up(i)) up.push_back(i);
    }
    if (up.empty()) return;
    const size_t victim = up[uniform(0, up.size() - 1)];
    cluster_.fail_commits(victim, uniform(kDiskFailMsMin, kDiskFailMsMax));
    ++result_.faults.disk_failures;
}

void Run::inject_wipe() {
    // Once a run: a second lost disk before the first node's copies were all
    // replaced (its refill, then anti-entropy for what its hints held) could
    // lose a write for good, which no store with two copies promises to survive.
    if (result_.faults.wipes >= kWipesMax) return;
    std::vector<size_t> candidates;
    for (size_t i : started_list_) {
        if (!cluster_.is_up(i) || cluster_.node(i).refilling()) return;
        if (crashable(i)) candidates.push_back(i);
    }
    if (candidates.empty() || started_list_.size() < 2) return;
    const size_t victim = candidates[uniform(0, candidates.size() - 1)];
    // The writes so far (acknowledged or not yet) whose one copy may be the
    // victim's, which does not survive its disk (the checker is told): puts
    // that no other node durably holds, and deletes one acknowledgement
    // answers (a tombstone's dot is not known here; a write that needs w > 1
    // acknowledgements has them from w distinct nodes, each durable).
    for (const HistoryEntry& e : result_.history.entries) {
        if (e.outcome == Outcome::failed) continue;
        const bool lost = e.kind == OpKind::put
                              ? copies_of(e.key, e.value, victim) == 0u
                              : e.kind == OpKind::del &&
                                    proto::replicas_required(proto::Consistency{e.level, 0, false},
                                                             options_.n_replicas) == 1;
        if (lost) result_.lost_with_disk.insert(e.index);
    }
    cluster_.wipe(victim);
    last_wipe_ms_ = cluster_.now_ms();
    ++result_.faults.wipes;
    cluster_.at(uniform(kFaultMsMin, kFaultMsMax), [this, victim] {
        if (!out_.count(victim)) cluster_.restart(victim);
    });
}

void Run::stop_faults() {
    // Pending undo events still fire later; they find nothing left to undo.
    partitions_.clear();
    cluster_.heal();
    cluster_.set_loss(0);
    cluster_.set_duplication(0);
    loss_periods_active_ = 0;
    dup_periods_active_ = 0;
    cluster_.unpause_all();
    for (size_t i = 0; i < cluster_.size(); ++i) cluster_.fail_commits(i, 0);
    out_.clear();
    for (size_t i : started_list_) cluster_.restart(i);
}

// ---- membership nemesis ---------------------------------------------------------------

void Run::schedule_membership() {
    const uint64_t duration_ms = options_.duration_s * 1000;
    const uint64_t from_ms = duration_ms * kMembershipFromPermille / 1000;
    for (size_t i = options_.nodes - options_.joins; i < options_.nodes; ++i) {
        cluster_.at(uniform(from_ms, duration_ms * kJoinUntilPermille / 1000),
                    [this, i] { start_late(i); });
    }
    for (uint32_t l = 0; l < options_.leaves; ++l) {
        cluster_.at(uniform(from_ms, duration_ms * kLeaveUntilPermille / 1000),
                    [this] { try_leave(); });
    }
}

void Run::start_late(size_t i) {
    assert(!started_[i]);
    if (options_.trace)
        std::fprintf(stderr, "%8llu JOIN %s\n", static_cast<unsigned long long>(cluster_.now_ms()),
                     cluster_.node_id(i).c_str());
    started_[i] = true;
    started_list_.push_back(i);
    std::sort(started_list_.begin(), started_list_.end());
    cluster_.restart(i);
    ++result_.faults.joins;
}

bool Run::leave_keeps_enough_members(size_t i) {
    // Counted twice: by what the nemesis did (a started joiner will be a
    // member, an asked leaver will not) and by the leaver's own view.
    const size_t members = started_list_.size() - leave_asked_.size();
    if (members < options_.n_replicas + 1) return false;
    return cluster_.node(i).gossiper()->view().future_ring_input().size() >=
           options_.n_replicas + 1;
}

void Run::try_leave() {
    if (stopping_ || leaves_to_ask_ == 0) return;
    if (leave_target_) {
        // One leave asked at a time; this one waits its turn.
        cluster_.at(uniform(kLeaveRetryMsMin, kLeaveRetryMsMax), [this] { try_leave(); });
        return;
    }
    std::vector<size_t> candidates;
    for (size_t i : started_list_) {
        if (!cluster_.is_up(i) || leave_asked_.count(i)) continue;
        const auto& self = cluster_.node(i).gossiper()->view().self();
        if (self.declared != gossip::MemberStatus::up) continue;
        if (leave_keeps_enough_members(i)) candidates.push_back(i);
    }
    if (candidates.empty()) {
        cluster_.at(uniform(kLeaveRetryMsMin, kLeaveRetryMsMax), [this] { try_leave(); });
        return;
    }
    const size_t victim = candidates[uniform(0, candidates.size() - 1)];
    --leaves_to_ask_;
    leave_asked_.insert(victim);
    leave_target_ = victim;
    send_leave();
}

void Run::send_leave() {
    assert(leave_target_);
    const size_t victim = *leave_target_;
    if (options_.trace)
        std::fprintf(stderr, "%8llu LEAVE %s\n", static_cast<unsigned long long>(cluster_.now_ms()),
                     cluster_.node_id(victim).c_str());
    leave_request_id_ = (uint64_t{1} << 61) + ++result_.faults.leave_requests;
    cluster_.client_send(victim, kAdminClient, proto::LeaveRequest{leave_request_id_});
    const uint64_t request_id = leave_request_id_;
    // Unanswered (lost, or the member crashed): asked again, as an operator
    // would; the node answers a repeated request with ok ("already leaving").
    cluster_.at(kClientTimeoutMs, [this, request_id] {
        if (leave_request_id_ != request_id || !leave_target_) return;
        if (stopping_) {
            // Still counted as asked: it may have arrived; if it did, the
            // member ends up left (record_membership counts it then).
            leave_target_.reset();
            return;
        }
        send_leave();
    });
}

void Run::on_admin_reply(const node::Message& m) {
    if (!leave_target_ || node::request_id(m) != leave_request_id_) return;
    const size_t victim = *leave_target_;
    leave_target_.reset();
    const auto* admin = std::get_if<proto::AdminResponse>(&m);
    if (admin != nullptr && admin->code == ErrorCode::ok) {
        leave_accepted_.insert(victim);
        return;
    }
    // Refused (it restarted joining, say): someone else leaves instead, later.
    leave_asked_.erase(victim);
    ++leaves_to_ask_;
    cluster_.at(uniform(kLeaveRetryMsMin, kLeaveRetryMsMax), [this] { try_leave(); });
}

std::string Run::membership_problem() {
    for (size_t i : started_list_) {
        if (!cluster_.is_up(i)) return cluster_.node_id(i) + " is down";
    }
    std::optional<size_t> reference;  // the first node not left: whose ring the others match
    for (size_t i : started_list_) {
        node::Node& n = cluster_.node(i);
        const std::string& id = cluster_.node_id(i);
        const gossip::MemberState& self = n.gossiper()->view().self();
        if (self.declared == gossip::MemberStatus::joining)
            return id + " still joining" + (self.tokens.empty() ? " (no tokens claimed)" : "");
        if (self.declared == gossip::MemberStatus::leaving) return id + " still leaving";
        // Accepted is queued: the node may refuse it later, in its turn, when
        // too few members would remain; then it says so (status 'leave').
        if (leave_accepted_.count(i) && self.declared != gossip::MemberStatus::left &&
            n.leave_refusal().empty())
            return id + " accepted to leave but is " +
                   std::string(gossip::status_name(self.declared));
        // A change the node announced and has not ended: a leave it queued
        // whose acceptance never reached the simulator (it crashed before
        // answering) is announced again by its next life and runs later.
        if (self.change_ticket != 0)
            return id + " announced a change (ticket " + std::to_string(self.change_ticket) +
                   ") still to make";
        if (n.transfers_pending()) return id + " has transfers pending";
        if (n.ring().tokens() != n.future_ring().tokens()) return id + "'s ring is still moving";
        for (size_t j : started_list_) {
            const gossip::MemberState& truth = cluster_.node(j).gossiper()->view().self();
            const gossip::MemberState* seen = n.gossiper()->view().find(cluster_.node_id(j));
            if (seen == nullptr) return id + " does not know " + cluster_.node_id(j);
            if (seen->declared != truth.declared || seen->tokens != truth.tokens)
                return id + " sees " + cluster_.node_id(j) + " as " +
                       std::string(gossip::status_name(seen->declared)) + " with " +
                       std::to_string(seen->tokens.size()) + " tokens (it is " +
                       std::string(gossip::status_name(truth.declared)) + " with " +
                       std::to_string(truth.tokens.size()) + ")";
        }
        if (self.declared == gossip::MemberStatus::left) continue;
        if (!reference) {
            reference = i;
            continue;
        }
        const ring::Ring& r = cluster_.node(*reference).ring();
        if (n.ring().tokens() != r.tokens() || n.ring().nodes() != r.nodes())
            return id + "'s ring differs from " + cluster_.node_id(*reference) + "'s";
    }
    if (!reference) return "every node left";
    return {};
}

bool Run::wait_for_membership(uint64_t ms_max) {
    const uint64_t end_ms = cluster_.now_ms() + ms_max;
    while (!membership_problem().empty()) {
        if (cluster_.now_ms() >= end_ms) return false;
        cluster_.run_for(kMembershipCheckMs);
    }
    return true;
}

ring::Ring Run::final_ring() {
    if (!options_.gossip) {
        std::vector<std::string> ids;
        for (size_t i = 0; i < cluster_.size(); ++i) ids.push_back(cluster_.node_id(i));
        return ring::Ring(ids, cluster_.options().node_config.vnodes);
    }
    // Settled, every node's ring is this one (membership_problem).
    for (size_t i : started_list_) {
        if (!cluster_.is_up(i)) continue;
        if (cluster_.node(i).gossiper()->view().self().declared == gossip::MemberStatus::left)
            continue;
        return cluster_.node(i).ring();
    }
    return ring::Ring();
}

// ---- quiet phase --------------------------------------------------------------------

void Run::repair_reads() {
    for (uint32_t k = 0; k < options_.keys; ++k) {
        const std::string key = "k" + std::to_string(k);
        for (size_t node : started_list_) {
            FinalRead read{
                key, static_cast<uint32_t>(node), Outcome::failed, ErrorCode::timeout, {}};
            bool done = false;
            for (int attempt = 0; attempt < kRepairAttempts && !done; ++attempt) {
                repair_reply_.reset();
                repair_request_id_ = (uint64_t{1} << 62) + ++repair_requests_;
                cluster_.client_send(
                    node, kRepairClient,
                    proto::GetRequest{repair_request_id_, key,
                                      proto::Consistency{proto::Level::all, 0, true},
                                      kRepairDeadlineMs});
                cluster_.run_until([&] { return repair_reply_.has_value(); },
                                   kRepairDeadlineMs + 1000);
                if (!repair_reply_) continue;
                const auto* g = std::get_if<proto::GetResponse>(&*repair_reply_);
                if (g == nullptr) {
                    read.code = ErrorCode::internal;
                    continue;
                }
                read.code = g->code;
                done = g->code == ErrorCode::ok || g->code == ErrorCode::not_found;
                if (done) {
                    read.outcome = g->code == ErrorCode::ok ? Outcome::ok : Outcome::not_found;
                    read.values = g->values;
                }
            }
            if (!done) ++result_.final_reads_failed;
            result_.final_reads.push_back(std::move(read));
        }
    }
}

void Run::record_membership() {
    result_.membership.ring = final_ring().nodes();
    if (options_.gossip) {
        for (size_t i : started_list_) {
            const bool left =
                cluster_.is_up(i) &&
                cluster_.node(i).gossiper()->view().self().declared == gossip::MemberStatus::left;
            if (left) result_.membership.left.push_back(cluster_.node_id(i));
            // Left, whether its answer arrived or was lost.
            if (left && leave_asked_.count(i)) ++result_.faults.leaves;
        }
    }
}

FinalState Run::collect_stores() {
    FinalState out;
    std::vector<std::string> ids;
    for (size_t i = 0; i < cluster_.size(); ++i) ids.push_back(cluster_.node_id(i));
    const ring::Ring ring = final_ring();
    if (ring.empty()) return out;
    const uint32_t n =
        std::min<uint32_t>(options_.n_replicas, static_cast<uint32_t>(ring.nodes().size()));
    for (uint32_t k = 0; k < options_.keys; ++k) {
        const std::string key = "k" + std::to_string(k);
        auto& replicas = out[key];
        for (const auto& id : ring.preference_list(key, n)) {
            const size_t i =
                static_cast<size_t>(std::find(ids.begin(), ids.end(), id) - ids.begin());
            ReplicaState state{id, std::nullopt};
            auto stored = cluster_.stored_object(i, key);
            assert(stored.ok());
            if (stored.value()) {
                auto object = node::decode_object(*stored.value());
                assert(object.ok() && "a replica stored an undecodable object");
                if (object.ok()) state.object = std::move(object.value());
            }
            replicas.push_back(std::move(state));
        }
    }
    return out;
}

std::optional<uint32_t> Run::copies_of(const std::string& key, const std::string& value,
                                       std::optional<size_t> except) {
    // Each node's stored objects for the key: its data and its hints for any target.
    std::vector<std::vector<node::Object>> held(cluster_.size());
    // The dots carrying the value (one, as the caller asks only about values
    // sent once, minted once; a duplicated replica write is not minted twice).
    std::set<node::Dot> dots;
    for (size_t i = 0; i < cluster_.size(); ++i) {
        std::vector<std::string> stored_keys = {node::stored_key(key)};
        std::vector<node::Space> spaces = {node::Space::objects};
        for (size_t t = 0; t < cluster_.size(); ++t) {
            stored_keys.push_back(node::hint_key(cluster_.node_id(t), key));
            spaces.push_back(node::Space::hints);
        }
        for (size_t s = 0; s < stored_keys.size(); ++s) {
            auto stored = cluster_.store(i).get(spaces[s], stored_keys[s]);
            if (!stored.ok() || !stored.value()) continue;
            std::string_view bytes = *stored.value();
            if (spaces[s] == node::Space::objects) {
                auto record = node::read_stored_record(stored_keys[s], bytes);
                if (!record) continue;
                bytes = record->object;
            }
            auto object = node::decode_object(bytes);
            if (!object.ok()) continue;
            for (const auto& sibling : object.value().siblings) {
                if (sibling.value && *sibling.value == value) dots.insert(sibling.dot);
            }
            held[i].push_back(std::move(object.value()));
        }
    }
    if (dots.empty()) return std::nullopt;
    uint32_t copies = 0;
    for (size_t i = 0; i < held.size(); ++i) {
        if (except == i) continue;
        const auto& objects = held[i];
        const bool has = std::any_of(objects.begin(), objects.end(), [&](const node::Object& o) {
            for (const auto& dot : dots) {
                if (o.context.covers(dot)) return true;
            }
            return std::any_of(o.siblings.begin(), o.siblings.end(), [&](const node::Sibling& s) {
                return s.value && *s.value == value;
            });
        });
        copies += has;
    }
    return copies;
}

std::vector<StoredCopy> Run::collect_copies() {
    std::vector<StoredCopy> out;
    for (size_t i = 0; i < cluster_.size(); ++i) {
        for (node::Space space : {node::Space::objects, node::Space::hints}) {
            Status scanned = cluster_.store(i).scan(
                space, "", std::numeric_limits<size_t>::max(),
                [&](std::string_view stored_key, std::string_view value) {
                    StoredCopy copy;
                    copy.node_id = cluster_.node_id(i);
                    if (space == node::Space::objects) {
                        auto record = node::read_stored_record(stored_key, value);
                        assert(record && "a node stored a malformed record");
                        if (!record) return true;
                        copy.key = std::string(record->key);
                        value = record->object;
                    } else {
                        auto split = node::split_hint_key(stored_key);
                        assert(split && "a node stored a malformed hint key");
                        if (!split) return true;
                        copy.hint_for = std::move(split->first);
                        copy.key = std::move(split->second);
                    }
                    auto object = node::decode_object(value);
                    assert(object.ok() && "a node stored an undecodable object");
                    if (!object.ok()) return true;
                    copy.object = std::move(object.value());
                    out.push_back(std::move(copy));
                    return true;
                });
            assert(scanned.ok());
            (void)scanned;
        }
    }
    return out;
}

uint64_t Run::hints_held() {
    uint64_t keys = 0;
    for (size_t i : started_list_) {
        if (cluster_.is_up(i)) keys += cluster_.node(i).hints_held().keys;
    }
    return keys;
}

std::string Run::wait_for_hints(uint64_t ms_max) {
    auto held = [this] { return hints_held(); };
    const uint64_t from_ms = cluster_.now_ms();
    while (held() > 0 && cluster_.now_ms() < from_ms + ms_max) cluster_.run_for(kHintCheckMs);
    result_.hint_drain_ms = cluster_.now_ms() - from_ms;
    std::string out;
    for (size_t i : started_list_) {
        if (!cluster_.is_up(i)) continue;  // the membership wait names it
        const node::HintSummary h = cluster_.node(i).hints_held();
        if (h.keys == 0) continue;
        out += (out.empty() ? "" : ", ") + cluster_.node_id(i) + " holds " +
               std::to_string(h.keys) + " hints (" + std::to_string(h.bytes) + " bytes)";
    }
    return out;
}

SimResult Run::go() {
    const auto real_start = std::chrono::steady_clock::now();
    if (options_.gossip) {
        // The workload starts on a formed cluster: the initial members found
        // each other through the seed, claimed tokens and are all up.
        result_.membership.formed = wait_for_membership(kFormMsMax);
        if (!result_.membership.formed) not_formed_ = membership_problem();
    }
    for (auto& c : clients_) {
        const size_t ci = client_index_[c.name];
        cluster_.at(uniform(0, 50), [this, ci] { start_next(clients_[ci]); });
    }
    cluster_.at(uniform(kFaultGapMsMin, kFaultGapMsMax), [this] { nemesis_step(); });
    if (options_.faults.outage)
        cluster_.at(uniform(kOutageGapMsMin, kOutageGapMsMax), [this] { outage_step(); });
    if (options_.gossip) schedule_membership();
    cluster_.run_for(options_.duration_s * 1000);
    stopping_ = true;
    // Let requests in flight finish or time out under the same faults.
    cluster_.run_for(kClientTimeoutMs + 100);
    stop_faults();
    // Every node is up again, its hints loaded from its store: what replay must deliver.
    result_.hints_at_quiet = hints_held();
    cluster_.run_for(kSettleMs);
    std::string unsettled;
    if (options_.gossip) {
        const uint64_t wait_from_ms = cluster_.now_ms();
        result_.membership.settled = wait_for_membership(kMembershipSettleMsMax);
        result_.membership.settle_ms = cluster_.now_ms() - wait_from_ms;
        if (!result_.membership.settled) unsettled = membership_problem();
    }
    record_membership();
    // Hints are the node's own repair: the stores are judged once every node
    // has replayed what it holds (a hinted copy is durable, but on a node that
    // is not a home replica of its key).
    const std::string hints_left = wait_for_hints(kHintDrainMsMax);
    result_.hints_drained = hints_left.empty();
    // A wiped node refills before it counts for reads (a read at `all` fails
    // until then): the final reads wait, bounded, for its refill to end.
    auto refilling = [this] {
        std::string out;
        for (size_t i : started_list_) {
            if (cluster_.is_up(i) && cluster_.node(i).refilling())
                out += (out.empty() ? "" : ", ") + cluster_.node_id(i);
        }
        return out;
    };
    for (const uint64_t from_ms = cluster_.now_ms();
         !refilling().empty() && cluster_.now_ms() < from_ms + kRefillEndMsMax;)
        cluster_.run_for(kHintCheckMs);
    const std::string refills_left = refilling();
    // The stores are judged as the node left them: before any read of the
    // simulator's own repairs what the node failed to replicate.
    result_.final_state = collect_stores();
    result_.copies_before_reads = collect_copies();
    repair_reads();
    cluster_.run_for(1000);
    result_.stores_after_reads = collect_stores();
    result_.copies_after_reads = collect_copies();
    result_.simulated_ms = cluster_.now_ms();
    for (size_t i = 0; i < cluster_.size(); ++i) {
        if (!cluster_.is_up(i)) continue;
        const auto& stats = cluster_.node(i).stats();
        result_.ae_exchanges += stats.ae_exchanges;
        result_.ae_keys_received += stats.ae_keys_received;
        result_.tombstones_purged += stats.tombstones_purged;
    }
    result_.network = cluster_.network_stats();
    result_.digest = digest(result_.history);
    result_.write_effect_window_ms =
        write_effect_window_ms(cluster_.options(), result_.network.longest_pause_ms);
    auto flag = [this](ViolationKind kind, std::string what) {
        result_.violations.push_back(Violation{kind, "", {}, std::move(what)});
    };
    if (!result_.membership.formed && options_.gossip)
        flag(ViolationKind::unsettled, "membership did not form: " + not_formed_);
    // No final ring to judge replicas by: only the history is checked.
    if (!unsettled.empty())
        flag(ViolationKind::unsettled, "membership did not settle within " +
                                           std::to_string(kMembershipSettleMsMax / 1000) +
                                           " s: " + unsettled);
    if (!refills_left.empty())
        flag(ViolationKind::unsettled, "refills did not end within " +
                                           std::to_string(kRefillEndMsMax / 1000) +
                                           " s of quiet: " + refills_left);
    if (!hints_left.empty())
        flag(ViolationKind::hints_not_drained, "hints not replayed within " +
                                                   std::to_string(kHintDrainMsMax / 1000) +
                                                   " s of quiet: " + hints_left);
    CheckInput input;
    input.write_effect_window_ms = result_.write_effect_window_ms;
    input.settled = unsettled.empty();
    input.stores_before_reads = result_.final_state;
    input.final_reads = result_.final_reads;
    input.stores_after_reads = result_.stores_after_reads;
    input.copies_before_reads = result_.copies_before_reads;
    input.copies_after_reads = result_.copies_after_reads;
    input.copies_complete = true;
    input.copies_at_ack = result_.copies_at_ack;
    input.lost_with_disk = result_.lost_with_disk;
    // Only where sound: in general a replica may miss a version no hint covers
    // until a read repairs it (convergence_judgeable).
    input.convergence_before_reads = convergence_judgeable(options_);
    CheckReport report = check(result_.history, input);
    for (auto& v : report.violations) result_.violations.push_back(std::move(v));
    result_.check_stats = std::move(report.stats);
    result_.real_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - real_start).count();
    return std::move(result_);
}

}  // namespace

bool convergence_judgeable(const SimOptions& o) {
    // Why each condition (docs/SIMULATOR.md, "Convergence"):
    //  - hinted handoff: without it nothing but reads repairs a replica;
    //  - clients only on steady nodes: a coordinator keeps a hint for every home
    //    replica that did not acknowledge when its write finishes; one that
    //    crashes first loses them, and the version stays on fewer homes;
    //  - crash and outage faults only: a crash drops messages in flight *to* the
    //    node (the coordinator then keeps a hint), never a reply it already
    //    sent, and every step commits at once, so a minting replica's reply
    //    always reaches the (living) coordinator. Loss and partitions can drop
    //    that reply (a version no coordinator learns of, hinted nowhere);
    //    pauses and skew can delay it past the coordinator's deadline; unsynced
    //    commits and failing disks lose or stop a step after its mint;
    //  - static membership: a range moving under a write is not hinted.
    FaultSet allowed;
    allowed.crash = o.faults.crash;
    allowed.outage = o.faults.outage;
    return o.hinted_handoff && o.steady_nodes > 0 && !o.gossip && o.faults == allowed;
}

uint64_t write_effect_window_ms(const ClusterOptions& c, uint64_t longest_pause_ms) {
    const uint64_t latency_ms = std::max(c.latency_ms_max, c.latency_tail_ms_max);
    // kRequestDeadlineMs on a clock that runs slow by up to the drift bound.
    const uint64_t deadline_ms =
        (kRequestDeadlineMs * 1'000'000 + (1'000'000 - c.clock_drift_ppm_max) - 1) /
        (1'000'000 - c.clock_drift_ppm_max);
    // Client to coordinator, the coordinator's deadline and a pause during it,
    // coordinator to replica.
    return (latency_ms + longest_pause_ms) + (deadline_ms + longest_pause_ms) +
           (latency_ms + longest_pause_ms);
}

SimResult run_simulation(const SimOptions& options) {
    assert(validate(options).ok());
    Run run(options);
    return run.go();
}

std::string summary(const SimOptions& o, const SimResult& r, size_t violations_shown) {
    std::string out;
    char line[512];
    std::snprintf(line, sizeof line,
                  "seed %llu: %u nodes (n=%u), %u clients, %llu s, faults %s%s\n",
                  static_cast<unsigned long long>(o.seed), o.nodes, r.history.n_replicas, o.clients,
                  static_cast<unsigned long long>(o.duration_s), faults_text(o.faults).c_str(),
                  o.preset.empty() ? "" : (" (preset " + o.preset + ")").c_str());
    out += line;
    out += "operations: " + std::to_string(r.history.entries.size()) + "\n";
    for (OpKind kind : {OpKind::get, OpKind::put, OpKind::del}) {
        out += "  " + std::string(op_kind_name(kind)) + ":";
        for (Outcome oc :
             {Outcome::ok, Outcome::not_found, Outcome::failed, Outcome::indeterminate}) {
            auto it = r.ops.find({kind, oc});
            out += " " + std::string(outcome_name(oc)) + "=" +
                   std::to_string(it == r.ops.end() ? 0 : it->second);
        }
        out += "\n";
    }
    const auto& f = r.faults;
    out += "faults: partitions=" + std::to_string(f.partitions) + " (one-way " +
           std::to_string(f.one_way_partitions) + ") crashes=" + std::to_string(f.crashes) +
           " outages=" + std::to_string(f.outages) +
           (f.wipes == 0 ? "" : " wipes=" + std::to_string(f.wipes)) +
           " pauses=" + std::to_string(f.pauses) +
           " loss-periods=" + std::to_string(f.loss_periods) +
           " dup-periods=" + std::to_string(f.dup_periods) +
           " disk-failures=" + std::to_string(f.disk_failures) + " (fail-stops " +
           std::to_string(f.fail_stops) + ")" +
           " skewed-clocks=" + (f.skewed_clocks ? "yes" : "no") + "\n";
    if (o.gossip) {
        const auto& m = r.membership;
        auto ids = [](const std::vector<std::string>& v) {
            std::string s;
            for (const auto& id : v) s += (s.empty() ? "" : ",") + id;
            return s.empty() ? std::string("-") : s;
        };
        out += "membership: joins=" + std::to_string(f.joins) +
               " leave-requests=" + std::to_string(f.leave_requests) +
               " leaves=" + std::to_string(f.leaves) + " formed=" + (m.formed ? "yes" : "no") +
               " settled=" + (m.settled ? "yes" : "no") + " in " + std::to_string(m.settle_ms) +
               " ms; final ring " + ids(m.ring) + "; left " + ids(m.left) + "\n";
    }
    const auto& n = r.network;
    out += "network: sent=" + std::to_string(n.messages_sent) +
           " lost=" + std::to_string(n.messages_lost) +
           " blocked=" + std::to_string(n.messages_blocked) +
           " duplicated=" + std::to_string(n.messages_duplicated) +
           " to-dead=" + std::to_string(n.messages_to_dead) +
           " commit-batches-lost-in-crashes=" + std::to_string(n.commits_lost) + "\n";
    out += "hints: " + std::to_string(r.hints_at_quiet) + " held when the faults stopped, " +
           (r.hints_drained ? "drained" : "NOT drained") + " in " +
           std::to_string(r.hint_drain_ms) + " ms\n";
    out += "anti-entropy (nodes since their last start): " + std::to_string(r.ae_exchanges) +
           " exchanges, " + std::to_string(r.ae_keys_received) + " keys repaired, " +
           std::to_string(r.tombstones_purged) + " tombstones purged\n";
    out += "final reads failed: " + std::to_string(r.final_reads_failed) + "\n";
    out += "checker (write effect window " + std::to_string(r.write_effect_window_ms) +
           " ms, longest pause " + std::to_string(n.longest_pause_ms) + " ms):\n";
    for (const auto& [rule, stats] : r.check_stats) {
        out += "  " + rule + ": checked " + std::to_string(stats.checked) + ", passed " +
               std::to_string(stats.passed) + ", violated " + std::to_string(stats.violated);
        for (const auto& [reason, count] : stats.excused)
            out += ", excused " + std::to_string(count) + " (" + reason + ")";
        out += "\n";
    }
    std::snprintf(line, sizeof line, "history digest: %016llx\n",
                  static_cast<unsigned long long>(r.digest));
    out += line;
    const double sim_s = static_cast<double>(r.simulated_ms) / 1000.0;
    std::snprintf(line, sizeof line,
                  "speed: %.1f simulated s in %.2f real s = %.1f simulated s per real s\n", sim_s,
                  r.real_seconds, r.real_seconds > 0 ? sim_s / r.real_seconds : 0.0);
    out += line;
    out += "violations: " + std::to_string(r.violations.size()) + "\n";
    for (size_t i = 0; i < r.violations.size() && i < violations_shown; ++i) {
        const Violation& v = r.violations[i];
        out += "  " + std::string(violation_name(v.kind)) + (v.key.empty() ? "" : " on " + v.key) +
               ": " + v.what + "\n";
        for (uint64_t op : v.ops) out += "    " + describe(r.history.entries[op]) + "\n";
    }
    if (!r.violations.empty()) out += "replay: " + replay_command(o) + "\n";
    return out;
}

}  // namespace kv::sim
