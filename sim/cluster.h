// A deterministic simulated cluster running the real Node (node/node.h): virtual
// time, an event queue, one seeded random generator, and a world that can delay,
// drop, duplicate and reorder messages, partition the network (any split, one-way
// too), crash, restart and pause nodes, and skew and drift each node's clock.
// Nothing here sleeps or reads a real clock, so the same seed and the same calls
// give the same run, byte for byte.
//
// Addresses: clients are named routes ("client:NAME"); a node's peer requests
// arrive as from route "peer:ID", and replies to that route come back to the
// sending node as peer replies, just as the ZeroMQ runtime's DEALER/ROUTER pair
// does. Every message is encoded and decoded with the wire codec on the way.
//
// Fault model (docs/SIMULATOR.md):
//  - latency: uniform in [latency_ms_min, latency_ms_max], and with probability
//    latency_tail_probability uniform up to latency_tail_ms_max instead, so
//    messages overtake each other (reordering);
//  - loss applies to every message, client links included; duplication and
//    partitions apply to node-to-node messages only (clients talk over one
//    reliable-ish connection, as over TCP);
//  - crash drops the node's memory and its uncommitted effects; the store keeps
//    what was committed; restart builds a new Node over that store;
//  - commits: after every step, or (commit_batch_ms_max > 0) pipelined as
//    kvnode's writer pipelines them: a batch begins after a step while fewer
//    than kCommitsInFlight are in flight and is durable 0-commit_batch_ms_max
//    ms later; a crash loses what is staged, and of the batches in flight an
//    oldest-first run survives (each with even odds), none of their messages
//    sent;
//  - a failing store: while set, every commit fails (nothing applied), and the
//    node fail-stops as kvnode does: it is crashed and the fail-stop hook told;
//  - pause: the node handles nothing (requests, replies, ticks wait, in order)
//    until the pause ends; its clock keeps running, so its timers fire late;
//  - clocks: node i's now_ms() = offset_i + t + t * drift_ppm_i / 1e6 for virtual
//    time t; monotonic for any drift above -1e6 ppm.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "gossip/membership.h"
#include "node/buffered_env.h"
#include "node/node.h"
#include "node/storage/store.h"

namespace kv::sim {

struct ClusterOptions {
    uint64_t seed = 1;
    uint32_t nodes = 3;
    // node_id and endpoint are set per node ("n1".."nK", "sim://n1"...). With
    // node_config.seeds set (e.g. {"sim://n1"}) every node runs gossip
    // membership and finds the others through the seeds; else the static list.
    node::NodeConfig node_config;
    // When not empty, node i's seeds are seeds_per_node[i] instead of
    // node_config.seeds (e.g. every node seeded with the others: several seeds
    // forming one cluster at once). One entry per node.
    std::vector<std::vector<std::string>> seeds_per_node;
    uint64_t latency_ms_min = 1;
    uint64_t latency_ms_max = 5;
    double latency_tail_probability = 0.0;
    uint64_t latency_tail_ms_max = 100;
    uint64_t tick_interval_ms = 10;
    // 0: each step's writes are committed (and its messages sent) right after
    // it. Else commits are pipelined as kvnode's writer pipelines them
    // (BufferedEnv::begin_commit, take_sendable, end_commit): after a step,
    // what depends on nothing staged leaves (or waits for the batch in flight
    // that holds what it depends on), and the staged writes begin a batch if
    // fewer than kCommitsInFlight are in flight; each is durable, in order, up
    // to this long after it began. Reads see its writes meanwhile; a crash
    // loses what was staged and may lose batches in flight (node/env.h, the
    // effects contract).
    uint64_t commit_batch_ms_max = 0;
    // Per-node clock error, drawn once at construction: offset in
    // [0, clock_offset_ms_max] and drift in [-clock_drift_ppm_max, +clock_drift_ppm_max].
    uint64_t clock_offset_ms_max = 0;
    uint32_t clock_drift_ppm_max = 0;
    bool log_to_stderr = false;
    // Called with every line a node logs, at any level (tests read what a node
    // reported without parsing stderr).
    std::function<void(size_t node, node::LogLevel level, std::string_view text)> on_log;
    // Prints every message as it is handled (time, route, type, id, key, code).
    bool trace_to_stderr = false;
};

// What the world did to the messages, for summaries.
struct NetworkStats {
    uint64_t messages_sent = 0;
    uint64_t messages_lost = 0;        // dropped by loss
    uint64_t messages_blocked = 0;     // dropped by a partition
    uint64_t messages_duplicated = 0;  // extra copies delivered
    uint64_t messages_to_dead = 0;     // arrived at a crashed node
    uint64_t commits_failed = 0;       // each stopped its node (fail-stop)
    uint64_t commits_lost = 0;         // batches a crash dropped (staged, or in flight and lost)
    // The longest a node stayed paused without a break (pauses that overlap
    // extend each other): what a message may wait at its destination, which
    // bounds how late a request can still take effect (sim/checker.h).
    uint64_t longest_pause_ms = 0;
};

class Cluster {
  public:
    explicit Cluster(ClusterOptions options);
    ~Cluster();

    size_t size() const { return nodes_.size(); }
    const std::string& node_id(size_t i) const;
    uint64_t now_ms() const { return now_ms_; }
    std::mt19937_64& rng() { return rng_; }
    const ClusterOptions& options() const { return options_; }
    const gossip::Membership& membership() const { return *membership_; }

    // A client request to node i; its replies collect under `client`. `who`:
    // the sender as the transport would have authenticated it.
    void client_send(size_t node, const std::string& client, node::Message request,
                     const node::Principal& who = node::Principal::local());
    // Replies received so far by a client, oldest first (and forgets them).
    std::vector<node::Message> take_replies(const std::string& client);
    // Called for every reply to a client as it arrives, after it is queued.
    void on_client_reply(std::function<void(const std::string& client, const node::Message&)> fn) {
        client_reply_hook_ = std::move(fn);
    }
    // Called for every reply to a client as its node sends it (after the step's
    // commit, before the network may lose it): what the node's stores hold at
    // the moment a coordinator answers.
    void on_client_reply_sent(
        std::function<void(const std::string& client, const node::Message&)> fn) {
        client_reply_sent_hook_ = std::move(fn);
    }

    // Runs `fn` after `delay_ms` of virtual time (workloads and fault schedules).
    void at(uint64_t delay_ms, std::function<void()> fn) { schedule(delay_ms, std::move(fn)); }

    // Advances virtual time by `ms`, handling every event due.
    void run_for(uint64_t ms);
    // Runs until `done()` holds or `ms_max` of virtual time passed; true if done.
    bool run_until(const std::function<bool()>& done, uint64_t ms_max);

    // Faults.
    void crash(size_t node);    // loses all the node's memory and uncommitted effects
    void restart(size_t node);  // a new Node over the same durable store
    // A lost disk: crashes the node (if up) and gives it an empty store; the
    // next restart() comes up on an empty data directory under the same id.
    void wipe(size_t node);
    // A clean stop, as kvnode's on SIGTERM: Node::stop, everything staged
    // committed and sent, then down (with its memory) until restart.
    void stop(size_t node);
    bool is_up(size_t node) const;
    // The node handles nothing until `ms` from now (extends a running pause).
    void pause(size_t node, uint64_t ms);
    bool is_paused(size_t node) const;
    void unpause_all();
    // Messages from `a` to `b` are dropped while set (one-way).
    void block(size_t a, size_t b, bool blocked);
    // Cuts every link from `side` to the rest, and back unless `one_way`.
    void partition(const std::vector<size_t>& side, bool one_way);
    bool is_blocked(size_t a, size_t b) const { return blocked_.count({a, b}) != 0; }
    void heal();  // unblocks every link
    void set_loss(double probability) { loss_probability_ = probability; }
    // The node's store fails every commit until `ms` from now (0: heals it).
    void fail_commits(size_t node, uint64_t ms);
    // Called when a node stopped because a commit failed (it is down now).
    void on_fail_stop(std::function<void(size_t node)> fn) { fail_stop_hook_ = std::move(fn); }
    void set_duplication(double probability) { duplication_probability_ = probability; }

    // The node's clock reading now (what its Env's now_ms() returns).
    uint64_t node_clock_ms(size_t node) const;
    int64_t clock_drift_ppm(size_t node) const;
    const NetworkStats& network_stats() const { return net_; }

    node::Node& node(size_t i);
    node::Store& store(size_t i);
    // Node i's stored object of a key, as its replica reads it (nullopt: none).
    Result<std::optional<std::string>> stored_object(size_t i, const std::string& key);

  private:
    struct SimNode;
    struct Event {
        uint64_t at_ms = 0;
        uint64_t seq = 0;
        std::function<void()> run;
        bool operator>(const Event& o) const {
            return at_ms != o.at_ms ? at_ms > o.at_ms : seq > o.seq;
        }
    };

    void schedule(uint64_t delay_ms, std::function<void()> run);
    // Runs `fn` on node i now, or when its pause ends; nothing if it died meanwhile.
    void on_node(size_t i, uint64_t life, std::function<void(node::Node&)> fn);
    uint64_t latency();
    bool chance(double probability);
    // After a step: commits now, or (commit_batch_ms_max) sends what may
    // leave and begins a batch if fewer than kCommitsInFlight are in flight.
    void flush(size_t node);
    // A batch's sync is done: the oldest batch in flight is written to the
    // store and its messages leave (a failed write fail-stops the node).
    void on_commit_due(size_t node, uint64_t life);
    void end_oldest_commit(size_t node);
    // A commit failed: the node stops (crash), as kvnode fail-stops.
    void fail_stop(size_t node, const Status& why);
    // As kvnode's default --commits-in-flight.
    static constexpr size_t kCommitsInFlight = 2;
    // Drops the node and its memory (crash and stop): down until restart.
    void take_down(size_t node);
    void commit(size_t node);
    void deliver_from(size_t from, node::Outgoing out);
    size_t index_of(const std::string& node_id) const;
    void schedule_tick(size_t node);
    void step();
    void trace(const std::string& route, const node::Message& m) const;

    ClusterOptions options_;
    std::mt19937_64 rng_;
    uint64_t now_ms_ = 0;
    uint64_t seq_ = 0;
    double loss_probability_ = 0.0;
    double duplication_probability_ = 0.0;
    NetworkStats net_;
    std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
    std::unique_ptr<gossip::StaticMembership> membership_;
    std::vector<std::unique_ptr<SimNode>> nodes_;
    std::set<std::pair<size_t, size_t>> blocked_;
    std::map<std::string, std::vector<node::Message>> client_inbox_;
    std::function<void(const std::string&, const node::Message&)> client_reply_hook_;
    std::function<void(const std::string&, const node::Message&)> client_reply_sent_hook_;
    std::function<void(size_t)> fail_stop_hook_;
};

}  // namespace kv::sim
