// Anti-entropy's view of the data space: a durable index of every stored key
// by token (Space::key_hashes), and the in-memory HashTree over it. The only
// writer of that space; it learns of every change of a stored object from the
// Replica (its observer), in the same step, so index and data are committed
// together and the tree is always current.
//
// Index record: key = token (8 bytes, big endian: store order is token order)
// + the key; value = the entry hash (8 bytes) and the time this node last
// changed the key (8 bytes, its monotonic clock), both big endian. The entry
// hash covers the key and its encoded object; its lowest bit says whether
// every sibling is a tombstone (what the exchange and tombstone GC look for).
//
// Start: the tree is rebuilt from the index a page per tick (no request
// waits); a data directory written before the index existed is indexed first,
// the same way. Until then ready() is false and exchanges are refused.
// Pure: storage and time through Env.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "client/status.h"
#include "node/antientropy/hash_tree.h"
#include "node/env.h"

namespace kv::node {

struct KeyEntry {
    uint64_t token = 0;
    std::string key;
    uint64_t hash = 0;      // lowest bit: tombstones only
    uint64_t since_ms = 0;  // this node's clock when it last changed the key
    bool tombstones_only() const { return (hash & 1) != 0; }
};

// The hash of a key's entry: `object` is its encoded stored object.
uint64_t entry_hash(std::string_view key, std::string_view object, bool tombstones_only);
std::string key_hashes_key(uint64_t token, std::string_view key);

class KeyIndex {
  public:
    explicit KeyIndex(Env& env);

    // Reads whether the index is complete (meta "key_hashes"); the build
    // then proceeds in tick(). storage_error when the store fails.
    Status start();
    // One page of the build (index, then tree) while !ready().
    void tick();
    bool ready() const { return phase_ == Phase::ready; }

    // The Replica's observer: `key`'s stored object was `previous` (null:
    // none) and is now `object` (nullopt: erased), staged in the current step.
    // The previous entry's hash comes from `previous`, not from the index: the
    // index holds exactly the stored objects' hashes, and the replica has read
    // the object anyway, so a put costs the index a write and no read.
    void on_change(const std::string& key, const std::string* previous,
                   bool previous_tombstones_only, const std::optional<std::string>& object,
                   bool tombstones_only);

    // The hash of every entry in the interval (ready() only).
    uint64_t interval_hash(TokenInterval interval);
    // Visits the entries in the interval in token order, from `after` (an
    // index key; empty: the start), until `visit` returns false.
    Status entries(TokenInterval interval, const std::function<bool(const KeyEntry&)>& visit);
    // Pages through the whole index in token order, from after `cursor`
    // (empty: the start), at most `limit` entries; returns the new cursor,
    // empty at the end.
    Result<std::string> page(const std::string& cursor, size_t limit,
                             const std::function<void(const KeyEntry&)>& visit);
    // The entry of a key (nullopt: not stored).
    Result<std::optional<KeyEntry>> find(const std::string& key);

    uint64_t root() const { return tree_.root(); }
    uint64_t keys() const { return keys_; }
    uint64_t tombstones() const { return tombstones_; }

  private:
    enum class Phase : uint8_t { stopped, indexing, building_tree, ready };
    void build_index_page();
    void build_tree_page();
    // Whether changes of the index key are in the tree already (the build
    // has passed it).
    bool tree_covers(const std::string& index_key) const;

    Env& env_;
    Phase phase_ = Phase::stopped;
    std::string cursor_;  // the last key built (data key, then index key)
    bool cursor_started_ = false;
    HashTree tree_;
    uint64_t keys_ = 0;        // entries in the tree
    uint64_t tombstones_ = 0;  // of which tombstones only
};

}  // namespace kv::node
