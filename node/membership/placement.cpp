#include "node/membership/placement.h"

#include <algorithm>

#include "node/storage/meta_codec.h"

namespace kv::node {

bool has_id(const std::vector<std::string>& ids, std::string_view id) {
    return std::find(ids.begin(), ids.end(), id) != ids.end();
}

uint64_t ring_digest(const ring::Ring& current, const ring::Ring& future) {
    std::string bytes;
    for (const ring::Ring* r : {&current, &future}) {
        for (const auto& t : r->tokens()) {
            meta::put_u64(bytes, t.position);
            bytes += r->nodes()[t.node_index];
            bytes.push_back('\0');
        }
        bytes += "|";
    }
    return ring::hash64(bytes);
}

Placement::Placement(std::string self_id, uint32_t n_replicas, uint32_t vnodes)
    : self_(std::move(self_id)), n_replicas_(n_replicas), vnodes_(vnodes) {}

bool Placement::refresh(const gossip::Membership& membership, const gossip::ClusterView* view) {
    if (version_ == membership.version() && !ring_.empty()) return false;
    version_ = membership.version();
    dynamic_ = view != nullptr;
    if (view != nullptr) {
        // Every member computes the same ring from the same view: the tokens
        // each member claimed and gossiped.
        std::vector<std::pair<std::string, std::vector<uint64_t>>> tokens;
        for (auto& n : view->ring_input()) tokens.emplace_back(n.id, std::move(n.tokens));
        ring_ = ring::Ring::from_tokens(std::move(tokens));
        std::vector<std::pair<std::string, std::vector<uint64_t>>> future;
        for (auto& n : view->future_ring_input()) future.emplace_back(n.id, std::move(n.tokens));
        future_ring_ = ring::Ring::from_tokens(std::move(future));
        moving_ =
            !(future_ring_.tokens() == ring_.tokens() && future_ring_.nodes() == ring_.nodes());
    } else {
        std::vector<std::string> ids;
        for (const auto& m : membership.members()) ids.push_back(m.id);
        ring_ = ring::Ring(std::move(ids), vnodes_);
        future_ring_ = ring_;
        moving_ = false;
    }
    digest_ = ring_digest(ring_, future_ring_);
    return true;
}

uint32_t Placement::n() const {
    return std::min<uint32_t>(n_replicas_, static_cast<uint32_t>(ring_.nodes().size()));
}

uint32_t Placement::n_future() const {
    return std::min<uint32_t>(n_replicas_, static_cast<uint32_t>(future_ring_.nodes().size()));
}

std::vector<std::string> Placement::replicas(std::string_view key) const {
    return ring_.preference_list(key, n());
}

std::vector<std::string> Placement::replicas_for_hash(uint64_t hash) const {
    return ring_.preference_list_for_hash(hash, n());
}

std::vector<std::string> Placement::future_replicas_for_hash(uint64_t hash) const {
    return future_ring_.preference_list_for_hash(hash, n_future());
}

bool Placement::is_replica_for_hash(uint64_t hash, std::string_view id) const {
    return ring_.in_preference_list(hash, n(), id);
}

bool Placement::is_future_replica_for_hash(uint64_t hash, std::string_view id) const {
    return future_ring_.in_preference_list(hash, n_future(), id);
}

std::vector<std::string> Placement::pending_replicas(std::string_view key) const {
    if (!moving_) return {};
    return pending_replicas_for_hash(ring::hash64(key));
}

std::vector<std::string> Placement::pending_replicas_for_hash(uint64_t hash) const {
    if (!moving_) return {};
    const std::vector<std::string> current = replicas_for_hash(hash);
    std::vector<std::string> out;
    for (auto& id : future_replicas_for_hash(hash)) {
        if (!has_id(current, id)) out.push_back(std::move(id));
    }
    return out;
}

ReplicaTargets Placement::targets(std::string_view key,
                                  const std::function<bool(const std::string&)>& reachable,
                                  bool sloppy) const {
    const uint64_t hash = ring::hash64(key);
    return targets_for_hash(hash, replicas_for_hash(hash), reachable, sloppy);
}

ReplicaTargets Placement::targets_for_hash(uint64_t hash, std::vector<std::string> homes,
                                           const std::function<bool(const std::string&)>& reachable,
                                           bool sloppy) const {
    ReplicaTargets out;
    out.homes = std::move(homes);
    out.homes_up.reserve(out.homes.size());
    std::vector<std::string> down;
    for (const auto& h : out.homes) {
        if (reachable(h)) {
            out.homes_up.push_back(h);
        } else {
            down.push_back(h);
        }
    }
    if (down.empty()) return out;
    if (!sloppy) {
        out.homes_uncovered = std::move(down);
        return out;
    }
    // Every member in ring order from the key: the first n are its homes.
    const std::vector<std::string> walk =
        ring_.preference_list_for_hash(hash, static_cast<uint32_t>(ring_.nodes().size()));
    size_t next = out.homes.size();
    for (auto& home : down) {
        while (next < walk.size() && !reachable(walk[next])) ++next;
        if (next >= walk.size()) {
            out.homes_uncovered.push_back(std::move(home));
            continue;
        }
        out.stand_ins.push_back(StandIn{walk[next], std::move(home)});
        ++next;
    }
    return out;
}

ring::Range Placement::range_of(uint64_t hash) const {
    const auto& tokens = ring_.tokens();
    if (tokens.size() <= 1) return ring::Range{0, 0};
    auto it = std::lower_bound(tokens.begin(), tokens.end(), hash,
                               [](const ring::Token& t, uint64_t h) { return t.position < h; });
    if (it == tokens.end()) it = tokens.begin();  // wraps: owned by the first token
    const auto prev = it == tokens.begin() ? tokens.end() - 1 : it - 1;
    // Two members' tokens at one position: (p, p] would mean the whole ring.
    if (prev->position == it->position) return ring::Range{hash - 1, hash};
    return ring::Range{prev->position, it->position};
}

bool Placement::self_in_future() const {
    const auto& nodes = future_ring_.nodes();
    return std::find(nodes.begin(), nodes.end(), self_) != nodes.end();
}

std::vector<ring::OwnershipChange> Placement::diff() const {
    return ring::ownership_diff(ring_, future_ring_, n_replicas_);
}

}  // namespace kv::node
