// The node state machine: coordinator and replica of a leaderless store
// (Dynamo §4). Pure and single-threaded: it sees the world only through Env
// (node/env.h), so the ZeroMQ runtime and the simulator drive the very same code.
//
// Every member coordinates any request. For a key, the preference list is the
// first n distinct members clockwise on the ring (ring/ring.h).
//  - get: read every replica, answer once r agree to answer, merge their
//    versions; after all answered (or the deadline), read-repair the ones that
//    were stale. At r = n the answer waits for the repair.
//  - put/del: one replica (this node when it is one) mints the new version from
//    the value and the client's context, then the coordinator merges that
//    version into every other replica; success once w replicas made it durable.
// A request that cannot meet its level fails with unavailable (too few replicas
// reachable at the start) or timeout (deadline passed), naming how many were
// asked and how many answered. Nothing is acknowledged before it is durable
// (Env effects contract).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gossip/gossip.h"
#include "gossip/membership.h"
#include "node/env.h"
#include "node/object.h"
#include "node/peer_protocol.h"
#include "node/transfer_plan.h"
#include "ring/ring.h"

namespace kv::node {

struct NodeConfig {
    std::string node_id;
    uint32_t n_replicas = 3;
    uint32_t vnodes = ring::kDefaultVnodes;
    uint32_t siblings_max = 100;
    uint32_t siblings_warn = 25;  // log a warning when a key reaches this many siblings
    uint64_t default_deadline_ms = 5000;
    uint64_t ping_interval_ms = 1000;
    // A peer not heard from for this long is unreachable: requests that need
    // it fail fast instead of waiting for their deadline.
    uint64_t peer_down_after_ms = 3000;
    size_t requests_in_flight_max = 20000;
    size_t minted_requests_remembered = 65536;  // duplicate suppression window

    // Gossip membership (gossip/gossip.h), on when `seeds` is non-empty: the
    // node then owns its view of the cluster instead of reading a static list.
    // `endpoint` is this node's ROUTER address as peers dial it; seeds equal
    // to it are skipped (the first node of a cluster lists itself).
    std::vector<std::string> seeds;
    std::string endpoint;
    gossip::GossipConfig gossip;
    // A fresh node claims its tokens once it has heard of the cluster through a
    // seed. A seed (its own endpoint among `seeds`) that hears nothing for this
    // long starts a cluster of its own, which gossip merges once another seed
    // answers; a node that is not a seed waits for the ring however long.
    uint64_t join_wait_ms = 5000;
    // Range transfers (rebalancing): a page request unanswered this long is
    // sent again; a refused one (rings differ, source busy) is retried after
    // transfer_retry_ms.
    uint64_t transfer_timeout_ms = 5000;
    uint64_t transfer_retry_ms = 500;
    uint32_t stream_keys_per_page = 256;
    size_t stream_page_bytes_max = 4 << 20;
};

struct NodeStats {
    uint64_t requests = 0;
    uint64_t bad_frames = 0;
    uint64_t read_repairs = 0;
    uint64_t timeouts = 0;
    uint64_t unavailable = 0;
    uint64_t keys_streamed_in = 0;
    uint64_t keys_streamed_out = 0;
};

class Node {
  public:
    // Static membership: `membership` must outlive the node and include
    // config.node_id; config.seeds must be empty.
    Node(NodeConfig config, Env& env, const gossip::Membership& membership);
    // Gossip membership (config.seeds non-empty): the view is built in start().
    Node(NodeConfig config, Env& env);
    ~Node();

    // Loads (or on first start creates and stages) this node's actor id: a
    // fresh one per data directory, so a node that lost its data never mints
    // a dot it minted before. With gossip, also bumps the persisted incarnation
    // (so news of this life overrides all said of earlier ones) and reloads the
    // tokens claimed in an earlier life.
    Status start();

    // A frame that arrived at the node's ROUTER: a client's request or a peer's.
    void on_request(const ReplyTo& from, node::Message message);
    // A frame that could not be decoded; answered with an ErrorResponse.
    void on_bad_frame(const ReplyTo& from, uint64_t request_id, const Status& why);
    // A reply from a peer to a request this node sent it.
    void on_peer_reply(const std::string& peer_id, node::Message message);
    // The runtime could not hand a request to a peer (no connection): the
    // call fails now instead of at the op's deadline.
    void on_send_failed(const std::string& peer_id, uint64_t request_id);
    // Expires deadlines and pings peers; call at least every ping_interval_ms / 10.
    void tick();

    const std::string& actor() const { return actor_; }
    // The view in use (valid after start()); the runtime dials its members.
    const gossip::Membership& membership() const { return *membership_; }
    // Null with static membership.
    const gossip::Gossiper* gossiper() const { return gossiper_.get(); }
    const ring::Ring& ring() const { return ring_; }
    // The ring once the joins and leaves under way complete (equal to ring()
    // when nothing moves).
    const ring::Ring& future_ring() const { return future_ring_; }
    // Ranges this node still has to receive before the change completes.
    bool transfers_pending() const;
    const NodeStats& stats() const { return stats_; }
    size_t in_flight() const { return ops_.size(); }

  private:
    struct Op;
    struct PeerState {
        uint64_t first_known_ms = 0;  // when this node first had it as a member
        uint64_t last_heard_ms = 0;
        uint64_t last_ping_ms = 0;
        bool heard = false;
    };
    struct PendingPeerCall {
        uint64_t op_id = 0;
        std::string peer;
    };

    // Client requests.
    void handle(const ReplyTo& from, proto::GetRequest req);
    void handle_write(const ReplyTo& from, uint64_t client_id, std::string key,
                      std::optional<std::string> value, std::optional<std::string> context,
                      const proto::Consistency& consistency, uint64_t deadline_ms);
    void send_mint(Op& op);
    void handle(const ReplyTo& from, const proto::LocalGetRequest& req);
    void handle(const ReplyTo& from, const proto::StatusRequest& req);
    // Peer requests (this node as a replica).
    void handle(const ReplyTo& from, const ReplicaReadRequest& req);
    void handle(const ReplyTo& from, const ReplicaWriteRequest& req);
    void handle(const ReplyTo& from, const ReplicaMergeRequest& req);
    void handle(const ReplyTo& from, const PingRequest& req);
    void handle(const ReplyTo& from, const GossipRequest& req);
    void handle(const ReplyTo& from, const proto::LeaveRequest& req);
    void handle(const ReplyTo& from, const StreamRequest& req);
    void handle(const ReplyTo& from, const HandoffRequest& req);

    // Gossip.
    Status start_gossip();
    void gossip_tick(uint64_t now_ms);
    void send_gossip(std::vector<gossip::Outgoing> out);
    void maybe_claim_tokens(uint64_t now_ms);
    void persist_incarnation(uint64_t incarnation);
    void persist_view();
    bool gossip_says_down(const std::string& member) const;
    void declare(gossip::MemberStatus status);

    // Rebalancing (node/rebalance.cpp): this node pulls the ranges it gains from
    // the replicas it displaces, then tells them to stop serving those ranges.
    struct InboundTransfer {
        enum class Phase : uint8_t { streaming, handing_off, done };
        InboundPlan plan;
        Phase phase = Phase::streaming;
        std::optional<std::string> after_key;
        uint64_t keys = 0;
        uint64_t call_id = 0;  // request in flight, 0 when none
        uint64_t call_sent_ms = 0;
        uint64_t retry_at_ms = 0;
    };
    void refresh_transfers();
    void transfer_tick(uint64_t now_ms);
    void send_transfer_call(InboundTransfer& t, uint64_t now_ms);
    bool on_transfer_reply(const std::string& peer_id, const node::Message& message);
    void transfer_call_failed(InboundTransfer& t, const std::string& why);
    void maybe_finish_membership_change();
    bool handed_off(const OutboundNeed& need) const;
    void load_handoffs();
    void persist_handoffs();
    // Whether this node may serve the key as a replica now: ok, or not_owner
    // when the key's range is not its own or was handed off. For writes,
    // `targets` (when non-empty) must include every new owner it knows of.
    Status check_replica(const std::string& key, bool is_write,
                         const std::vector<std::string>& targets) const;
    // check_replica for this node as the replica of an op it coordinates: the
    // op's replicas come from this node's own ring, so while nothing moves the
    // answer is known (ok) and the ring walk is skipped on the request path.
    Status check_local_replica(const std::string& key, bool is_write,
                               const std::vector<std::string>& targets) const {
        return moving_ ? check_replica(key, is_write, targets) : Status{};
    }
    // The key's new owners while its range moves (empty when it does not).
    std::vector<std::string> pending_replicas(const std::string& key, uint32_t n) const;

    // Replica operations, shared by peer requests and the local replica.
    Result<std::optional<std::string>> replica_read(const std::string& key);
    // The decoded stored object (empty when absent); storage_error when corrupt.
    Result<Object> load_object(const std::string& key);
    Result<std::string> replica_write(const std::string& key, std::optional<std::string> value,
                                      const std::optional<std::string>& context);
    Status replica_merge(const std::string& key, std::string_view object_bytes);

    // Coordinator bookkeeping.
    void on_read_reply(Op& op, const std::string& replica, const Status& status,
                       const std::optional<std::string>& object);
    void on_write_reply(Op& op, const std::string& replica, const Status& status,
                        const std::string& object);
    void on_merge_reply(Op& op, const std::string& replica, const Status& status);
    void on_repair_reply(Op& op, const std::string& replica, const Status& status);
    void peer_call_failed(Op& op, const std::string& peer_id, const Status& failed);
    void start_replication(Op& op, const std::string& object_bytes);
    void maybe_finish_read(Op& op);
    void send_read_repairs(Op& op);
    void answer_read(Op& op);
    void fail(Op& op, ErrorCode code, const std::string& why);
    void fail_unavailable(Op& op, size_t succeeded, const char* verb);
    void finish(uint64_t op_id);
    uint64_t call_peer(Op& op, const std::string& peer, node::Message request);
    void expire(Op& op);

    bool reachable(const std::string& member) const;
    void heard_from(const std::string& peer);
    void refresh_ring();
    const gossip::Member* member(const std::string& id) const;
    void log(LogLevel level, const std::string& text) { env_.log(level, text); }

    NodeConfig config_;
    Env& env_;
    const gossip::Membership* membership_ = nullptr;  // static list, or gossiper_'s view
    std::unique_ptr<gossip::Gossiper> gossiper_;
    std::mt19937_64 gossip_rng_;    // seeded from Env in start(): deterministic in the simulator
    bool seeds_elsewhere_ = false;  // a seed other than this node's own endpoint
    bool self_is_seed_ = false;     // this node's own endpoint is among the seeds
    uint64_t ring_known_since_ms_ = 0;  // when a joiner first heard of a ring member
    uint64_t persisted_incarnation_ = 0;
    uint64_t ring_version_ = 0;
    ring::Ring ring_;
    ring::Ring future_ring_;
    bool moving_ = false;  // future_ring_ differs from ring_
    uint64_t ring_digest_ = 0;
    std::vector<InboundTransfer> inbound_;
    std::map<uint64_t, size_t> transfer_calls_;  // request id -> index in inbound_
    // Ranges handed off to their new owners, by owner (durable): this node
    // stops serving them while its ring still moves them (see check_replica).
    // Each range as (start, end), so the leaver's completion check is a lookup.
    std::map<std::string, std::set<std::pair<uint64_t, uint64_t>>> handed_off_;
    RangeSet fenced_;
    std::vector<OutboundNeed> outbound_needs_;      // ranges this node gives up, and to whom
    std::map<std::string, uint64_t> keys_sent_to_;  // progress of outbound streams
    std::string actor_;
    uint64_t started_ms_ = 0;
    // Request and op ids. Starts at a random point so that ids stay unique
    // across restarts: a late reply to a call made before a restart, or a
    // duplicate of it, must not match a new call.
    uint64_t next_id_ = 1;
    NodeStats stats_;

    std::map<uint64_t, std::unique_ptr<Op>> ops_;
    std::set<std::pair<uint64_t, uint64_t>> deadlines_;  // (deadline_ms, op id)
    std::map<uint64_t, PendingPeerCall> pending_;        // peer request id -> op
    std::map<std::string, PeerState> peers_;

    // Minting requests already applied, by (requester route, request id): a
    // duplicated ReplicaWriteRequest must not mint a second version (it would
    // supersede writes acknowledged since). Bounded; oldest forgotten first.
    std::set<std::pair<std::string, uint64_t>> minted_;
    std::deque<std::pair<std::string, uint64_t>> minted_order_;
};

}  // namespace kv::node
