#include "node/membership/peers.h"

#include <algorithm>

namespace kv::node {

Peers::Peers(const NodeConfig& config, Env& env, RequestIds& ids)
    : config_(config), env_(env), ids_(ids) {}

void Peers::start(uint64_t now_ms, const gossip::ClusterView* view) {
    started_ms_ = now_ms;
    view_ = view;
}

void Peers::tick(const gossip::Membership& membership) {
    const uint64_t now = env_.now_ms();
    for (const auto& m : membership.members()) {
        if (m.id == config_.node_id) continue;
        PeerState& peer = peers_[m.id];
        if (peer.first_known_ms == 0) peer.first_known_ms = std::max<uint64_t>(now, 1);
        if (peer.last_ping_ms == 0 || now - peer.last_ping_ms >= config_.ping_interval_ms) {
            peer.last_ping_ms = std::max<uint64_t>(now, 1);
            env_.send(m.id, PingRequest{ids_.next(), config_.node_id});
        }
    }
}

void Peers::heard_from(const std::string& peer) {
    PeerState& p = peers_[peer];
    p.heard = true;
    p.last_heard_ms = env_.now_ms();
}

void Peers::handle(const ReplyTo& from, const PingRequest& req,
                   const gossip::Membership& membership) {
    const auto& members = membership.members();
    const bool known = std::any_of(members.begin(), members.end(),
                                   [&](const gossip::Member& m) { return m.id == req.from_node; });
    if (known) heard_from(req.from_node);
    env_.reply(from, PingResponse{req.id, config_.node_id});
}

bool Peers::reachable(const std::string& id) const {
    if (id == config_.node_id) return true;
    // Gossip's verdict first: a member its failure detector marked down.
    if (gossip_says_down(id)) return false;
    auto it = peers_.find(id);
    const uint64_t now = env_.now_ms();
    if (it == peers_.end() || !it->second.heard) {
        // Never heard yet: give the peer the detection window after our own
        // start, or after we first learned of it (a member that just joined).
        const uint64_t since = it == peers_.end() || it->second.first_known_ms == 0
                                   ? started_ms_
                                   : std::max(started_ms_, it->second.first_known_ms);
        return now - since < config_.peer_down_after_ms;
    }
    return now - it->second.last_heard_ms <= config_.peer_down_after_ms;
}

uint64_t Peers::last_seen_ms_ago(const std::string& id) const {
    auto p = peers_.find(id);
    return (p != peers_.end() && p->second.heard) ? env_.now_ms() - p->second.last_heard_ms
                                                  : UINT64_MAX;
}

bool Peers::gossip_says_down(const std::string& id) const {
    if (view_ == nullptr) return false;
    const gossip::MemberState* s = view_->find(id);
    // A removed member (kvctl removenode) is down for good, whatever it says.
    return s != nullptr && (s->liveness == gossip::Liveness::down || !s->removed_by.empty());
}

}  // namespace kv::node
