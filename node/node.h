// The node state machine of a leaderless store (Dynamo §4): a thin facade over
// its components, each in its own folder of node/ (docs/ARCHITECTURE.md,
// "Components of a node"). Pure and single-threaded: it sees the world only through Env
// (node/env.h), so the ZeroMQ runtime and the simulator drive the very same code.
//
//   Coordinator   (coordinator/) client get, put and del: N/R/W, deadlines, read repair
//   Rebalancer    (rebalance/)   range transfers on join and leave, kvctl leave
//   Replica       (replica/)     this node as a replica: the only writer of the data space
//   Handoffs      (replica/)     the ranges handed to new owners, which the replica refuses
//   HintStore     (replica/)     hints kept as a stand-in for a home replica that was down
//   Placement     (membership/)  rings, n, preference lists, new owners of moving ranges
//   Peers         (membership/)  liveness of the other members, pings
//   GossipDriver  (membership/)  gossip rounds, token claims, persisted membership facts
//   Access        (access/)      users and grants: the replicated catalog, the checks
//   HintReplay    (hints/)       replays held hints to their targets once they are back
//   KeyIndex      (antientropy/) the token-ordered index of stored keys and its hash tree
//   AntiEntropy   (antientropy/) Merkle exchanges with the other replicas, kvctl repair
//   TombstoneGc   (antientropy/) purges tombstones anti-entropy confirmed on every replica
//
// The facade dispatches each message to the component that owns it, fans out
// tick(), rebuilds placement when the membership changed, and answers status
// and owners.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "gossip/gossip.h"
#include "gossip/membership.h"
#include "node/access/principal.h"
#include "node/env.h"
#include "node/node_config.h"
#include "node/peer_protocol.h"
#include "node/replica/hint_store.h"
#include "ring/ring.h"

namespace kv::metrics {
class Exposition;
}

namespace kv::node {

class Access;
class AntiEntropy;
class KeyIndex;
class TombstoneGc;
class Coordinator;
class GossipDriver;
class Handoffs;
class HintReplay;
class HintStore;
class Peers;
class Placement;
class Rebalancer;
class Replica;

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
    // a dot it minted before, and a fresh one again when the last life did not
    // stop() (it may have sent ahead of its commits versions it then lost, so
    // its counters here may be behind dots its actor minted). With gossip, also bumps the persisted
    // incarnation (so news of this life overrides all said of earlier ones) and reloads the tokens
    // claimed in an earlier life. Fails (the node must stop) when the meta records are corrupt or
    // of a format this build does not read.
    Status start();
    // A clean stop: stages the record that lets the next start keep the actor.
    // The runtime then commits what is staged before it exits; call nothing
    // else on the node afterwards.
    void stop();

    // A frame that arrived at the node's ROUTER: a client's request or a peer's.
    // `received_ms`: this node's clock when the frame arrived, when the runtime
    // handles it later than that (the simulator's paused node); nullopt: now.
    // Deadlines and replica budgets count from it. `who`: the sender as the
    // transport authenticated it; a user may send only client requests its
    // grants allow (docs/SECURITY.md), anything else is refused unauthorized.
    void on_request(const ReplyTo& from, Message message,
                    std::optional<uint64_t> received_ms = std::nullopt,
                    const Principal& who = Principal::local());
    // A frame that could not be decoded; answered with an ErrorResponse.
    void on_bad_frame(const ReplyTo& from, uint64_t request_id, const Status& why);
    // A reply from a peer to a request this node sent it.
    void on_peer_reply(const std::string& peer_id, Message message);
    // The runtime could not hand a request to a peer (no connection): the
    // call fails now instead of at the op's deadline.
    void on_send_failed(const std::string& peer_id, uint64_t request_id);
    // Expires deadlines, runs gossip and transfers, pings peers; call at least
    // every ping_interval_ms / 10.
    void tick();

    const std::string& actor() const;
    // The view in use (valid after start()); the runtime dials its members.
    const gossip::Membership& membership() const { return *membership_; }
    // Null with static membership.
    const gossip::Gossiper* gossiper() const;
    const ring::Ring& ring() const;
    // The ring once the joins and leaves under way complete (equal to ring()
    // when nothing moves).
    const ring::Ring& future_ring() const;
    // Ranges this node still has to receive before the change completes.
    bool transfers_pending() const;
    // Why a leave this node queued was refused later (empty when none).
    std::string leave_refusal() const;
    const NodeStats& stats() const { return stats_; }
    // The user a CURVE public key (Z85) belongs to, nullopt when none: the
    // runtime's ZAP handler admits a client key at the handshake only then.
    std::optional<std::string> user_of_key(std::string_view public_key_z85) const;
    size_t in_flight() const;
    // Hints this node holds as a stand-in, over all targets (the simulator's
    // quiet phase waits for every node's to drain).
    HintSummary hints_held() const;
    // Started on an empty data directory under a static member list, it has
    // not yet exchanged with every other member that is up, so its replica
    // reads answer unavailable (anti_entropy.h, begin_refill).
    bool refilling() const;
    // The user catalog as this node holds it.
    const Access& access() const { return *access_; }
    // This node's own metrics (docs/OPERATIONS.md, "Metrics"): what its
    // components count and hold. The runtime adds the request latencies,
    // commits, connections and process figures it alone sees; a StatsRequest
    // the node answers itself (the simulator) carries only these.
    void write_metrics(kv::metrics::Exposition& out);

  private:
    void construct_components();
    // Rebuilds placement if the membership changed, then replans transfers and
    // saves the view (gossip) when it did.
    void refresh_placement();
    void handle(const ReplyTo& from, const proto::StatusRequest& req);
    void handle(const ReplyTo& from, const proto::OwnersRequest& req);
    void handle(const ReplyTo& from, const proto::StatsRequest& req);
    void handle(const ReplyTo& from, const GossipRequest& req);

    NodeConfig config_;
    Env& env_;
    const gossip::Membership* membership_ = nullptr;  // static list, or the gossip view
    NodeStats stats_;
    RequestIds ids_;
    // Components, in dependency order (each may use those above it).
    std::unique_ptr<Placement> placement_;
    std::unique_ptr<Handoffs> handoffs_;
    std::unique_ptr<HintStore> hints_;
    std::unique_ptr<Peers> peers_;
    std::unique_ptr<GossipDriver> gossip_;  // null with a static member list
    std::unique_ptr<Replica> replica_;
    std::unique_ptr<Rebalancer> rebalancer_;
    std::unique_ptr<Coordinator> coordinator_;
    std::unique_ptr<Access> access_;
    std::unique_ptr<HintReplay> hint_replay_;
    std::unique_ptr<KeyIndex> key_index_;
    std::unique_ptr<AntiEntropy> anti_entropy_;
    std::unique_ptr<TombstoneGc> tombstone_gc_;
};

}  // namespace kv::node
