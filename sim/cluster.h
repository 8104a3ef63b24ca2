// A deterministic simulated cluster running the real Node (node/node.h): virtual
// time, an event queue, one seeded random generator, and a network that can
// delay, drop and partition. Nothing here sleeps or reads a real clock, so the
// same seed and the same calls give the same run, byte for byte.
//
// Addresses: clients are named routes ("client:NAME"); a node's peer requests
// arrive as from route "peer:ID", and replies to that route come back to the
// sending node as peer replies, just as the ZeroMQ runtime's DEALER/ROUTER pair
// does. Every message is encoded and decoded with the wire codec on the way.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gossip/membership.h"
#include "node/buffered_env.h"
#include "node/node.h"
#include "node/store.h"

namespace kv::sim {

struct ClusterOptions {
    uint64_t seed = 1;
    uint32_t nodes = 3;
    node::NodeConfig node_config;  // node_id is set per node ("n1".."nK")
    uint64_t latency_ms_min = 1;
    uint64_t latency_ms_max = 5;
    uint64_t tick_interval_ms = 10;
    bool log_to_stderr = false;
};

class Cluster {
public:
    explicit Cluster(ClusterOptions options);
    ~Cluster();

    size_t size() const { return nodes_.size(); }
    const std::string& node_id(size_t i) const;
    uint64_t now_ms() const { return now_ms_; }
    std::mt19937_64& rng() { return rng_; }

    // A client request to node i; its replies collect under `client`.
    void client_send(size_t node, const std::string& client, proto::Message request);
    // Replies received so far by a client, oldest first (and forgets them).
    std::vector<proto::Message> take_replies(const std::string& client);
    // Called for every reply to a client as it arrives, after it is queued.
    void on_client_reply(std::function<void(const std::string& client, const proto::Message&)> fn) {
        client_reply_hook_ = std::move(fn);
    }

    // Advances virtual time by `ms`, handling every event due.
    void run_for(uint64_t ms);
    // Runs until `done()` holds or `ms_max` of virtual time passed; true if done.
    bool run_until(const std::function<bool()>& done, uint64_t ms_max);

    // Faults.
    void crash(size_t node);    // loses all the node's memory and uncommitted effects
    void restart(size_t node);  // a new Node over the same durable store
    bool is_up(size_t node) const;
    // Messages from `a` to `b` are dropped while set (one-way).
    void block(size_t a, size_t b, bool blocked);
    void heal();  // unblocks every link
    void set_loss(double probability) { loss_probability_ = probability; }

    node::Node& node(size_t i);
    node::Store& store(size_t i);

private:
    struct SimNode;
    struct Event {
        uint64_t at_ms = 0;
        uint64_t seq = 0;
        std::function<void()> run;
        bool operator>(const Event& o) const { return at_ms != o.at_ms ? at_ms > o.at_ms : seq > o.seq; }
    };

    void schedule(uint64_t delay_ms, std::function<void()> run);
    uint64_t latency();
    void flush(size_t node);
    void deliver_from(size_t from, node::Outgoing out);
    size_t index_of(const std::string& node_id) const;
    void schedule_tick(size_t node);

    ClusterOptions options_;
    std::mt19937_64 rng_;
    uint64_t now_ms_ = 0;
    uint64_t seq_ = 0;
    double loss_probability_ = 0.0;
    std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
    std::unique_ptr<gossip::StaticMembership> membership_;
    std::vector<std::unique_ptr<SimNode>> nodes_;
    std::set<std::pair<size_t, size_t>> blocked_;
    std::map<std::string, std::vector<proto::Message>> client_inbox_;
    std::function<void(const std::string&, const proto::Message&)> client_reply_hook_;
};

}  // namespace kv::sim
