#include "node/antientropy/key_index.h"

#include <cassert>

#include "node/data/stored_record.h"
#include "ring/ring.h"

namespace kv::node {

namespace {

// Entries read into the tree per tick of the build. Scans ask for two more: a
// page resumes at its cursor (visited again and skipped), and one more key
// past the page tells whether there is more.
constexpr size_t kBuildPageKeys = 2048;

std::optional<KeyEntry> decode_entry(std::string_view stored, std::string_view value) {
    auto r = read_stored_record(stored, value);
    if (!r) return std::nullopt;
    return KeyEntry{r->token, std::string(r->key), r->hash, r->since_ms};
}

}  // namespace

KeyIndex::KeyIndex(Env& env) : env_(env) {}

Status KeyIndex::start() {
    tree_.clear();
    keys_ = tombstones_ = 0;
    cursor_.clear();
    cursor_started_ = false;
    phase_ = Phase::building_tree;
    return {};
}

void KeyIndex::tick() {
    if (phase_ == Phase::building_tree) build_tree_page();
}

void KeyIndex::build_tree_page() {
    bool more = false;
    size_t seen = 0;
    std::string last;
    const uint64_t now = env_.now_ms();
    // Times from a clock that restarted (a reboot) would look like the
    // future and hold tombstone GC back until this clock passed them: they
    // become now.
    std::vector<std::pair<std::string, std::string>> from_the_future;  // key, value now
    Status scanned =
        env_.scan(Space::objects, cursor_, kBuildPageKeys + 2,
                  [&](std::string_view key, std::string_view value) {
                      if (cursor_started_ && key == cursor_) return true;
                      if (seen == kBuildPageKeys) {
                          more = true;
                          return false;
                      }
                      ++seen;
                      last.assign(key);
                      if (auto r = read_stored_record(key, value)) {
                          tree_.apply(r->token, r->hash);
                          ++keys_;
                          if ((r->hash & 1) != 0) ++tombstones_;
                          if (r->since_ms > now) {
                              from_the_future.emplace_back(std::string(key),
                                                           stored_value(r->hash, now, r->object));
                          }
                      }
                      return true;
                  });
    if (!scanned.ok()) {
        env_.log(LogLevel::error, "anti-entropy tree build: " + scanned.message());
        return;
    }
    for (auto& [key, value] : from_the_future) {
        env_.stage_write(StoreWrite{Space::objects, std::move(key), std::move(value)});
    }
    if (seen > 0) {
        cursor_ = last;
        cursor_started_ = true;
    }
    if (!more) {
        phase_ = Phase::ready;
        cursor_.clear();
        cursor_started_ = false;
        env_.log(LogLevel::info, "anti-entropy tree ready: " + std::to_string(keys_) + " keys, " +
                                     std::to_string(tombstones_) + " tombstones");
    }
}

bool KeyIndex::tree_covers(uint64_t token, const std::string& key) const {
    switch (phase_) {
        case Phase::ready:
            return true;
        case Phase::building_tree:
            // In the order the build scans in: keys sharing a long prefix
            // may sort by hash (Store::scan).
            return cursor_started_ && !env_.store_order().less(cursor_, stored_key(token, key));
        default:
            return false;
    }
}

void KeyIndex::on_change(const std::string& key, const std::string* previous,
                         bool previous_tombstones_only, const std::optional<std::string>& object,
                         bool tombstones_only) {
    const uint64_t token = ring::hash64(key);
    if (!tree_covers(token, key)) return;
    const uint64_t old_hash =
        previous ? entry_hash(key, *previous, previous_tombstones_only) : uint64_t{0};
    const uint64_t new_hash = object ? entry_hash(key, *object, tombstones_only) : uint64_t{0};
    tree_.apply(token, old_hash ^ new_hash);
    if (previous) {
        --keys_;
        if (previous_tombstones_only) --tombstones_;
    }
    if (object) {
        ++keys_;
        if (tombstones_only) ++tombstones_;
    }
}

uint64_t KeyIndex::interval_hash(TokenInterval interval) {
    assert(ready());
    return tree_.interval_hash(interval, [this](TokenInterval leaf) {
        uint64_t h = 0;
        Status s = entries(leaf, [&](const KeyEntry& e) {
            h ^= e.hash;
            return true;
        });
        (void)s;  // a failed read only makes the interval look different
        return h;
    });
}

Status KeyIndex::entries(TokenInterval interval,
                         const std::function<bool(const KeyEntry&)>& visit) {
    std::string from = stored_key(interval.lo, "");
    bool started = false;
    for (;;) {
        bool more = false;
        size_t seen = 0;
        std::string last;
        Status scanned = env_.scan(Space::objects, from, kBuildPageKeys + 2,
                                   [&](std::string_view key, std::string_view value) {
                                       if (started && key == from) return true;
                                       auto e = decode_entry(key, value);
                                       if (!e) return true;
                                       if (e->token > interval.hi) return false;
                                       if (seen == kBuildPageKeys) {
                                           more = true;
                                           return false;
                                       }
                                       ++seen;
                                       last.assign(key);
                                       if (!visit(*e)) return false;
                                       return true;
                                   });
        if (!scanned.ok()) return scanned;
        if (!more) return {};
        from = last;
        started = true;
    }
}

Result<std::string> KeyIndex::page(const std::string& cursor, size_t limit,
                                   const std::function<void(const KeyEntry&)>& visit) {
    size_t seen = 0;
    bool more = false;
    std::string last;
    Status scanned = env_.scan(Space::objects, cursor, limit + 2,
                               [&](std::string_view key, std::string_view value) {
                                   if (!cursor.empty() && key == cursor) return true;
                                   if (seen == limit) {
                                       more = true;
                                       return false;
                                   }
                                   ++seen;
                                   last.assign(key);
                                   if (auto e = decode_entry(key, value)) visit(*e);
                                   return true;
                               });
    if (!scanned.ok()) return scanned;
    return more ? last : std::string();
}

Result<std::optional<KeyEntry>> KeyIndex::find(const std::string& key) {
    const std::string stored = stored_key(key);
    auto held = env_.read(Space::objects, stored);
    if (!held) return held.status();
    if (!held.value()) return std::optional<KeyEntry>();
    return decode_entry(stored, *held.value());
}

}  // namespace kv::node
