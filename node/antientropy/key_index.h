// Anti-entropy's view of the stored objects: the in-memory HashTree over their
// entries (entry hash and since_ms, kept in each object's own record in token
// order: node/data/stored_record.h), and reads of those entries by token
// interval. It learns of every change of a stored object from the Replica (its
// observer), in the same step, so the tree is always current.
//
// Start: the tree is rebuilt from the stored records a page per tick (no
// request waits). Until then ready() is false and exchanges are refused.
// Pure: storage and time through Env.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "client/status.h"
#include "node/antientropy/hash_tree.h"
#include "node/data/stored_record.h"
#include "node/env.h"

namespace kv::node {

struct KeyEntry {
    uint64_t token = 0;
    std::string key;
    uint64_t hash = 0;      // lowest bit: tombstones only
    uint64_t since_ms = 0;  // this node's clock when it last changed the key
    bool tombstones_only() const { return (hash & 1) != 0; }
};

class KeyIndex {
  public:
    explicit KeyIndex(Env& env);

    // Starts the tree's build, which proceeds in tick().
    Status start();
    // One page of the tree's build while !ready().
    void tick();
    bool ready() const { return phase_ == Phase::ready; }

    // The Replica's observer: `key`'s stored object was `previous` (null:
    // none) and is now `object` (nullopt: erased), staged in the current step.
    // The replica stages the record with its entry (node/data/stored_record.h);
    // this updates the tree. The previous entry's hash comes from `previous`:
    // the replica has read the object anyway, so a change costs no read here.
    void on_change(const std::string& key, const std::string* previous,
                   bool previous_tombstones_only, const std::optional<std::string>& object,
                   bool tombstones_only);

    // The hash of every entry in the interval (ready() only).
    uint64_t interval_hash(TokenInterval interval);
    // Visits the entries in the interval in token order until `visit`
    // returns false.
    Status entries(TokenInterval interval, const std::function<bool(const KeyEntry&)>& visit);
    // Pages through every entry in token order, from after `cursor` (a stored key;
    // empty: the start), at most `limit` entries; returns the new cursor,
    // empty at the end.
    Result<std::string> page(const std::string& cursor, size_t limit,
                             const std::function<void(const KeyEntry&)>& visit);
    // The entry of a key (nullopt: not stored).
    Result<std::optional<KeyEntry>> find(const std::string& key);

    uint64_t root() const { return tree_.root(); }
    uint64_t keys() const { return keys_; }
    uint64_t tombstones() const { return tombstones_; }

  private:
    enum class Phase : uint8_t { stopped, building_tree, ready };
    void build_tree_page();
    // Whether changes of the key are in the tree already (the build has
    // passed its record).
    bool tree_covers(uint64_t token, const std::string& key) const;

    Env& env_;
    Phase phase_ = Phase::stopped;
    std::string cursor_;  // the last stored key built
    bool cursor_started_ = false;
    HashTree tree_;
    uint64_t keys_ = 0;        // entries in the tree
    uint64_t tombstones_ = 0;  // of which tombstones only
};

}  // namespace kv::node
