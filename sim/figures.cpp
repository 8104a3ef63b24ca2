#include "sim/figures.h"

#include <algorithm>
#include <cassert>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "gossip/cluster_view.h"
#include "gossip/token_claim.h"
#include "node/storage/meta_codec.h"
#include "ring/ring.h"
#include "sim/cluster.h"

namespace kv::sim {

namespace {

// Views are checked this often: the figures' time resolution (one node tick).
constexpr uint64_t kCheckEveryMs = 10;
// Bounds on every wait, in gossip intervals: a run that needs more is reported
// as not settled / not spread rather than waited for forever.
constexpr uint64_t kSettleIntervalsMax = 300;
constexpr uint64_t kSpreadIntervalsMax = 200;
// After the views settle, heartbeats keep flowing this long before a figure
// starts: a few rounds so the last news has spread, or many so failure
// detectors have samples of the real arrival rate.
constexpr uint64_t kCalmIntervals = 3;
constexpr uint64_t kDetectorWarmIntervals = 20;

using TokenMap = std::map<std::string, std::vector<uint64_t>>;

// Up to this many initial members claim their tokens as joiners would; larger
// clusters take hashed positions (claims there cost more and hashed positions
// are even anyway at 256 vnodes).
constexpr uint32_t kClaimedMembersMax = 10;

// The initial members start as members restarted with their tokens (written
// to their stores first, in the node's own meta records: node/storage/meta_codec.h),
// so the cluster forms at once: joins move data one at a time, and
// 200 of them in a row would take the simulator an hour of virtual time. The
// cluster's last node is started crashed: it joins when restarted.
std::unique_ptr<Cluster> cluster_with_late_node(uint32_t members, uint64_t seed,
                                                const GossipSettings& settings) {
    ClusterOptions options;
    options.seed = seed;
    options.nodes = members + 1;
    options.node_config = gossip_node_config(settings);
    options.tick_interval_ms = settings.tick_interval_ms;
    const uint32_t vnodes = options.node_config.vnodes;
    const uint32_t replicas = options.node_config.n_replicas;
    auto c = std::make_unique<Cluster>(std::move(options));
    // start() sends nothing (the first gossip round runs on the first tick), so
    // crashing at once leaves no trace of a node anywhere but its store.
    for (uint32_t i = 0; i <= members; ++i) c->crash(i);
    std::vector<gossip::NodeTokens> claimed;
    for (uint32_t i = 0; i < members; ++i) {
        const std::string& id = c->node_id(i);
        std::vector<uint64_t> tokens = members <= kClaimedMembersMax
                                           ? gossip::claim_tokens(claimed, id, vnodes, replicas)
                                           : gossip::default_tokens(id, vnodes);
        const Status written =
            c->store(i).write({{node::Space::meta, std::string(node::meta::kTokensKey),
                                node::meta::encode_tokens(tokens)},
                               {node::Space::meta, std::string(node::meta::kStatusKey),
                                std::string(gossip::status_name(gossip::MemberStatus::up))}});
        assert(written.ok());
        (void)written;
        claimed.push_back(gossip::NodeTokens{id, std::move(tokens)});
        c->restart(i);
    }
    return c;
}

const gossip::MemberState* seen_by(Cluster& c, size_t i, const std::string& id) {
    return c.node(i).gossiper()->view().find(id);
}

// Every one of the first `members` nodes sees all of them up with tokens.
bool all_know_all_up(Cluster& c, uint32_t members) {
    for (size_t i = 0; i < members; ++i) {
        if (!c.is_up(i)) return false;
        for (size_t j = 0; j < members; ++j) {
            const gossip::MemberState* s = seen_by(c, i, c.node_id(j));
            if (s == nullptr || s->status() != gossip::MemberStatus::up || s->tokens.empty())
                return false;
        }
    }
    return true;
}

// Runs until `done` holds (checked every kCheckEveryMs) or `ms_max` passed.
bool run_checking(Cluster& c, uint64_t ms_max, const std::function<bool()>& done,
                  uint64_t check_every_ms = kCheckEveryMs) {
    const uint64_t end_ms = c.now_ms() + ms_max;
    while (!done()) {
        if (c.now_ms() >= end_ms) return false;
        c.run_for(check_every_ms);
    }
    return true;
}

// Runs until every one of the first `members` knows all the others as up,
// then for `then_intervals` rounds; returns the virtual time the views settled, or 0.
uint64_t settle(Cluster& c, uint32_t members, uint64_t interval_ms, uint64_t then_intervals) {
    // Checked once a round: the full check is members^2 lookups.
    if (!run_checking(
            c, kSettleIntervalsMax * interval_ms, [&] { return all_know_all_up(c, members); },
            interval_ms)) {
        return 0;
    }
    const uint64_t settled_ms = c.now_ms();
    c.run_for(then_intervals * interval_ms);
    return settled_ms;
}

// The tokens node i's view holds for every member that has claimed some
// (whatever it declared: up, or joining with tokens).
TokenMap gossiped_tokens(Cluster& c, size_t i) {
    TokenMap out;
    for (const auto& [id, s] : c.node(i).gossiper()->view().states()) {
        if (s.tokens.empty() || s.declared == gossip::MemberStatus::left) continue;
        out[id] = s.tokens;
    }
    return out;
}

ring::Ring ring_of(const TokenMap& tokens) {
    std::vector<std::pair<std::string, std::vector<uint64_t>>> input(tokens.begin(), tokens.end());
    return ring::Ring::from_tokens(std::move(input));
}

// The (key, replica) placements of `after` that `before` did not have.
std::vector<std::string> gained(const std::vector<std::string>& before,
                                const std::vector<std::string>& after) {
    const std::set<std::string> had(before.begin(), before.end());
    std::vector<std::string> out;
    for (const auto& r : after) {
        if (!had.count(r)) out.push_back(r);
    }
    return out;
}

void count_moves(const ring::Ring& before, const ring::Ring& after, uint64_t keys,
                 RebalanceResult& result) {
    result.keys = keys;
    std::map<std::string, uint64_t> replica_of;  // keys per node, n = 3, after
    for (uint64_t k = 0; k < keys; ++k) {
        const std::string key = "key" + std::to_string(k);
        const auto primary_before = before.preference_list(key, 1);
        const auto primary_after = after.preference_list(key, 1);
        if (primary_before != primary_after) {
            ++result.primaries_moved;
            if (primary_after.at(0) != result.joiner_id) ++result.moved_to_others;
        }
        const auto replicas_after = after.preference_list(key, 3);
        for (const auto& r : replicas_after) ++replica_of[r];
        const auto moved = gained(before.preference_list(key, 3), replicas_after);
        if (!moved.empty()) ++result.keys_changed;
        result.placements_moved += moved.size();
        for (const auto& r : moved) {
            if (r != result.joiner_id) ++result.moved_to_others;
        }
    }
    uint64_t least = keys;
    uint64_t most = 0;
    for (const auto& id : after.nodes()) {
        least = std::min(least, replica_of[id]);
        most = std::max(most, replica_of[id]);
    }
    result.replica_load_min = static_cast<double>(least) / static_cast<double>(keys);
    result.replica_load_max = static_cast<double>(most) / static_cast<double>(keys);
}

}  // namespace

node::NodeConfig gossip_node_config(const GossipSettings& settings) {
    node::NodeConfig config;
    config.seeds = {"sim://n1"};
    config.vnodes = settings.vnodes;
    config.ping_interval_ms = settings.ping_interval_ms;
    config.gossip.interval_ms = settings.interval_ms;
    config.gossip.detector.first_interval_ms = settings.interval_ms;
    config.gossip.detector.phi_suspect = settings.phi_suspect;
    config.gossip.detector.suspect_to_down_ms = settings.suspect_to_down_ms;
    return config;
}

double SpreadResult::rounds() const {
    return interval_ms == 0 ? 0.0
                            : static_cast<double>(spread_ms) / static_cast<double>(interval_ms);
}

SpreadResult measure_spread(uint32_t members, uint64_t seed, const GossipSettings& settings) {
    SpreadResult result;
    result.interval_ms = settings.interval_ms;
    auto c = cluster_with_late_node(members, seed, settings);
    result.settle_ms = settle(*c, members, settings.interval_ms, kCalmIntervals);
    result.settled = result.settle_ms != 0;
    if (!result.settled) return result;
    const std::string newcomer = c->node_id(members);
    const uint64_t started_ms = c->now_ms();
    c->restart(members);
    result.spread = run_checking(*c, kSpreadIntervalsMax * settings.interval_ms, [&] {
        for (size_t i = 0; i < members; ++i) {
            if (seen_by(*c, i, newcomer) == nullptr) return false;
        }
        return true;
    });
    result.spread_ms = c->now_ms() - started_ms;
    return result;
}

DetectionResult measure_detection(uint32_t members, uint64_t seed, const GossipSettings& settings) {
    DetectionResult result;
    ClusterOptions options;
    options.seed = seed;
    options.nodes = members;
    options.node_config = gossip_node_config(settings);
    options.tick_interval_ms = settings.tick_interval_ms;
    Cluster c(std::move(options));
    result.settled = settle(c, members, settings.interval_ms, kDetectorWarmIntervals) != 0;
    if (!result.settled) return result;
    // Never the seed: its crash would also stop newcomers joining, another figure.
    const size_t victim = 1 + seed % (members - 1);
    result.crashed_id = c.node_id(victim);
    auto all_see = [&](gossip::Liveness at_least) {
        for (size_t i = 0; i < members; ++i) {
            if (i == victim) continue;
            const gossip::MemberState* s = seen_by(c, i, result.crashed_id);
            if (s == nullptr || s->liveness < at_least) return false;
        }
        return true;
    };
    c.crash(victim);
    const uint64_t crashed_ms = c.now_ms();
    const uint64_t limit_ms =
        kSpreadIntervalsMax * settings.interval_ms + 3 * settings.suspect_to_down_ms;
    bool suspected = false;
    result.detected = run_checking(c, limit_ms, [&] {
        if (!suspected && all_see(gossip::Liveness::suspect)) {
            suspected = true;
            result.suspect_ms = c.now_ms() - crashed_ms;
        }
        return all_see(gossip::Liveness::down);
    });
    result.down_ms = c.now_ms() - crashed_ms;
    return result;
}

RebalanceResult measure_rebalance(uint32_t members, uint64_t seed, uint64_t keys,
                                  const GossipSettings& settings) {
    RebalanceResult result;
    auto c = cluster_with_late_node(members, seed, settings);
    result.settled = settle(*c, members, settings.interval_ms, kCalmIntervals) != 0;
    if (!result.settled) return result;
    const TokenMap before = gossiped_tokens(*c, 0);
    const ring::Ring ring_before = ring_of(before);
    result.ring_before_agrees = ring_before.tokens() == c->node(0).ring().tokens() &&
                                ring_before.nodes() == c->node(0).ring().nodes();

    result.joiner_id = c->node_id(members);
    c->restart(members);
    result.joined = run_checking(*c, kSettleIntervalsMax * settings.interval_ms, [&] {
        for (size_t i = 0; i <= members; ++i) {
            const gossip::MemberState* s = seen_by(*c, i, result.joiner_id);
            if (s == nullptr || s->tokens.empty()) return false;
        }
        return true;
    });
    if (!result.joined) return result;
    const TokenMap after = gossiped_tokens(*c, 0);
    result.views_agree = true;
    for (size_t i = 1; i <= members; ++i) {
        result.views_agree = result.views_agree && gossiped_tokens(*c, i) == after;
    }
    const ring::Ring ring_after = ring_of(after);
    const auto& ids = ring_after.nodes();
    const auto joiner = std::find(ids.begin(), ids.end(), result.joiner_id);
    if (joiner != ids.end())
        result.joiner_share = ring_after.ownership().at(static_cast<size_t>(joiner - ids.begin()));
    count_moves(ring_before, ring_after, keys, result);
    return result;
}

}  // namespace kv::sim
