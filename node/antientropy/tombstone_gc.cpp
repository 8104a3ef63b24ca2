#include "node/antientropy/tombstone_gc.h"

#include <vector>

#include "node/mutant.h"

namespace kv::node {

namespace {
constexpr size_t kSweepPageKeys = 1024;
constexpr uint64_t kSweepPageIntervalMs = 20;
}  // namespace

TombstoneGc::TombstoneGc(const NodeConfig& config, Env& env, NodeStats& stats,
                         const Placement& placement, Replica& replica, KeyIndex& index,
                         const AntiEntropy& anti_entropy, const HintStore& hints)
    : config_(config),
      env_(env),
      stats_(stats),
      placement_(placement),
      replica_(replica),
      index_(index),
      anti_entropy_(anti_entropy),
      hints_(hints) {}

void TombstoneGc::tick(uint64_t now_ms) {
    if (!config_.tombstone_gc || !index_.ready() || placement_.moving()) {
        sweeping_ = false;
        return;
    }
    if (now_ms < next_page_ms_) return;
    next_page_ms_ = now_ms + kSweepPageIntervalMs;
    if (!sweeping_) {
        std::optional<uint64_t> through = anti_entropy_.confirmed_through_ms();
#ifdef KV_MUTANTS
        // Planted (node/mutant.h): GC by the grace timer alone, without waiting
        // for anti-entropy to confirm every replica holds the tombstone.
        if (KV_MUTANT(purge_unconfirmed)) through = now_ms;
#endif
        if (!through || *through <= swept_through_ms_ || index_.tombstones() == 0) return;
        sweeping_ = true;
        sweep_through_ms_ = *through;
        cursor_.clear();
    }
    if (hints_.summary().keys != 0) return;  // an older version may wait in a hint here
    std::vector<KeyEntry> candidates;
    auto next = index_.page(cursor_, kSweepPageKeys, [&](const KeyEntry& e) {
        if (!e.tombstones_only() || e.since_ms >= sweep_through_ms_) return;
        if (now_ms < e.since_ms + config_.tombstone_grace_ms) return;
        candidates.push_back(e);
    });
    if (!next) {
        env_.log(LogLevel::warn, "tombstone GC: index read failed: " + next.status().message());
        return;
    }
    for (const auto& e : candidates) {
        if (!has_id(placement_.replicas_for_hash(e.token), config_.node_id)) continue;
        auto held = replica_.read(e.key);
        if (!held || !held.value()) continue;
        // Only the version the index describes (the since_ms it was judged by).
        if (entry_hash(e.key, *held.value(), true) != e.hash) continue;
        auto purged = replica_.purge(e.key, *held.value());
        if (purged && purged.value()) ++stats_.tombstones_purged;
    }
    cursor_ = next.value();
    if (cursor_.empty()) {
        sweeping_ = false;
        swept_through_ms_ = sweep_through_ms_;
    }
}

}  // namespace kv::node
