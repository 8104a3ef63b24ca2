// Liveness of the other members as this node sees it: when each was last heard
// from (any reply or ping), pings to each every ping_interval_ms, and the
// verdict the coordinator and the rebalancer act on (reachable or not). With
// gossip, a member gossip's failure detector marked down is unreachable too.
// Pure apart from the pings it sends through Env; time comes from Env.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "gossip/cluster_view.h"
#include "gossip/membership.h"
#include "node/env.h"
#include "node/node_config.h"
#include "node/peer_protocol.h"

namespace kv::node {

class Peers {
  public:
    Peers(const NodeConfig& config, Env& env, RequestIds& ids);

    // The node started at now_ms; with gossip, `view` gives gossip's verdicts.
    void start(uint64_t now_ms, const gossip::ClusterView* view);
    // Pings every member due for one.
    void tick(const gossip::Membership& membership);
    void heard_from(const std::string& peer);
    // A ping: answered with a pong; counts as hearing from a member.
    void handle(const ReplyTo& from, const PingRequest& req, const gossip::Membership& membership);

    bool reachable(const std::string& member) const;
    // Milliseconds since the member was last heard from; UINT64_MAX if never.
    uint64_t last_seen_ms_ago(const std::string& member) const;

  private:
    struct PeerState {
        uint64_t first_known_ms = 0;  // when this node first had it as a member
        uint64_t last_heard_ms = 0;
        uint64_t last_ping_ms = 0;
        bool heard = false;
    };
    bool gossip_says_down(const std::string& member) const;

    const NodeConfig& config_;
    Env& env_;
    RequestIds& ids_;
    const gossip::ClusterView* view_ = nullptr;
    uint64_t started_ms_ = 0;
    std::map<std::string, PeerState> peers_;
};

}  // namespace kv::node
