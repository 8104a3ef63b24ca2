// The hints this node keeps as a stand-in (Dynamo §4.6): versions of keys
// whose home replica was down when they were written, each kept for that home
// (its target) until the target has made it durable. The only writer of the
// hints space (Space::hints); durable like any staged write, so a stand-in
// acknowledges a hint only once it is on disk (Env effects contract).
//
// Layout: one record per (target, key), under hint_key(target, key), holding
// the merge of every version received for that pair (an encoded Object). A
// hint is never minted again: replay merges it at the target.
//
// Bounded per target in keys and bytes (NodeConfig::hints_per_target_max,
// hint_bytes_per_target_max). A hint that does not fit is refused, counted, and
// the token range holding the key is recorded, durably, as under-replicated
// for that target (meta key "under_replicated"), for anti-entropy to take over.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/protocol.h"
#include "client/status.h"
#include "node/data/object.h"
#include "node/env.h"
#include "node/node_config.h"
#include "ring/range_set.h"
#include "ring/ring.h"

namespace kv::node {

// The hints-space key of (target, key): the target id's length (2 bytes, big
// endian), the target id, the key. A target's hints are adjacent in the space.
std::string hint_key(std::string_view target, std::string_view key);
// (target, key) of a hints-space key; nullopt when it is malformed.
std::optional<std::pair<std::string, std::string>> split_hint_key(std::string_view stored);

struct HintSummary {
    uint64_t keys = 0;
    uint64_t bytes = 0;
};

class HintStore {
  public:
    HintStore(const NodeConfig& config, Env& env, NodeStats& stats);

    // Rebuilds the index from the hints space and reads the under-replicated
    // record; storage_error when either is corrupt.
    Status load();

    // Merges `object` into the hint for (target, key), staged. overloaded,
    // naming the limit, when the target's hints are full (nothing staged but
    // the under-replicated mark of `range`); bad_request when the object does
    // not decode. `retarget`: a hint moved from a target that no longer owns
    // the key is taken even past the bounds (it was accepted once already).
    Status add(const std::string& target, const std::string& key, std::string_view object,
               const ring::Range& range, bool retarget = false);

    // Every hint held for the key, whatever its target, merged: what a stand-in
    // answers a read with. Empty when none; storage_error when one is corrupt.
    Result<Object> merged_for_key(const std::string& key);

    // Targets that have hints, in id order.
    std::vector<std::string> targets() const;
    struct Pending {
        std::string key;
        std::string object;
        uint64_t generation = 0;  // changes whenever the hint is merged into
    };
    // Up to `keys_max` hints for the target (and about `bytes_max` bytes, at
    // least one), in key order.
    Result<std::vector<Pending>> batch(const std::string& target, size_t keys_max,
                                       size_t bytes_max);
    // The target made this hint durable: erased (staged) when it is still the
    // generation that was sent; false when it changed since (sent again later).
    bool remove_if_unchanged(const std::string& target, const std::string& key,
                             uint64_t generation);

    HintSummary summary() const;
    // Per target (`replaying` is left false: the replay knows it).
    std::vector<proto::HintStatus> status() const;
    // Ranges marked under-replicated, by target.
    const std::map<std::string, ring::RangeSet>& under_replicated() const {
        return under_replicated_;
    }
    size_t under_replicated_ranges() const;

  private:
    struct Held {
        uint64_t bytes = 0;
        uint64_t generation = 0;
        uint64_t since_ms = 0;
    };
    struct Target {
        std::map<std::string, Held> keys;
        uint64_t bytes = 0;
        uint64_t replayed = 0;
        uint64_t refused = 0;
    };
    void mark_under_replicated(const std::string& target, const ring::Range& range);
    void persist_under_replicated();

    const NodeConfig& config_;
    Env& env_;
    NodeStats& stats_;
    std::map<std::string, Target> targets_;
    uint64_t next_generation_ = 1;
    std::map<std::string, ring::RangeSet> under_replicated_;
};

}  // namespace kv::node
