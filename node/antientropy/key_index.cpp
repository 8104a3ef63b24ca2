#include "node/antientropy/key_index.h"

#include <xxhash.h>

#include <cassert>

#include "node/data/object.h"
#include "node/storage/meta_codec.h"
#include "ring/ring.h"

namespace kv::node {

namespace {

// Set once every stored key has an index entry (absent in a data directory
// written before the index existed: the node indexes it at start).
constexpr std::string_view kIndexBuiltKey = meta::kKeyHashesBuiltKey;
// Keys indexed, or index entries read into the tree, per tick of the build.
// Scans ask for two more: a page resumes at its cursor (visited again and
// skipped), and one more key past the page tells whether there is more.
constexpr size_t kBuildPageKeys = 2048;

void put_u64(std::string& out, uint64_t v) {
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t get_u64(std::string_view in) {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
    return v;
}

std::string encode_value(uint64_t hash, uint64_t since_ms) {
    std::string out;
    out.reserve(16);
    put_u64(out, hash);
    put_u64(out, since_ms);
    return out;
}

std::optional<KeyEntry> decode_entry(std::string_view stored_key, std::string_view value) {
    if (stored_key.size() < 9 || value.size() != 16) return std::nullopt;
    KeyEntry e;
    e.token = get_u64(stored_key);
    e.key.assign(stored_key.substr(8));
    e.hash = get_u64(value);
    e.since_ms = get_u64(value.substr(8));
    return e;
}

}  // namespace

uint64_t entry_hash(std::string_view key, std::string_view object, bool tombstones_only) {
    // The key's hash seeds the object's: every change of a stored object
    // passes here, so the value is hashed where it lies, never copied.
    const uint64_t h = XXH3_64bits_withSeed(object.data(), object.size(), ring::hash64(key));
    return (h & ~uint64_t{1}) | (tombstones_only ? 1 : 0);
}

std::string key_hashes_key(uint64_t token, std::string_view key) {
    std::string out;
    out.reserve(8 + key.size());
    put_u64(out, token);
    out.append(key);
    return out;
}

KeyIndex::KeyIndex(Env& env) : env_(env) {}

Status KeyIndex::start() {
    auto built = env_.read(Space::meta, kIndexBuiltKey);
    if (!built) return built.status();
    tree_.clear();
    keys_ = tombstones_ = 0;
    cursor_.clear();
    cursor_started_ = false;
    if (built.value()) {
        phase_ = Phase::building_tree;
        return {};
    }
    auto data_keys = env_.count(Space::data);
    if (!data_keys) return data_keys.status();
    if (data_keys.value() == 0) {
        env_.stage_write(StoreWrite{Space::meta, std::string(kIndexBuiltKey), std::string("1")});
        phase_ = Phase::building_tree;
    } else {
        env_.log(LogLevel::info,
                 "indexing " + std::to_string(data_keys.value()) + " stored keys for anti-entropy");
        phase_ = Phase::indexing;
    }
    return {};
}

void KeyIndex::tick() {
    if (phase_ == Phase::indexing) {
        build_index_page();
    } else if (phase_ == Phase::building_tree) {
        build_tree_page();
    }
}

void KeyIndex::build_index_page() {
    std::vector<std::pair<std::string, std::string>> page;
    bool more = false;
    Status scanned = env_.scan(Space::data, cursor_, kBuildPageKeys + 2,
                               [&](std::string_view key, std::string_view value) {
                                   if (cursor_started_ && key == cursor_) return true;
                                   if (page.size() == kBuildPageKeys) {
                                       more = true;
                                       return false;
                                   }
                                   page.emplace_back(std::string(key), std::string(value));
                                   return true;
                               });
    if (!scanned.ok()) {
        env_.log(LogLevel::error, "anti-entropy index build: " + scanned.message());
        return;  // tried again next tick
    }
    for (const auto& [key, object] : page) {
        auto decoded = decode_object(object);
        const bool tombstones_only =
            decoded && !decoded->siblings.empty() && decoded->live_count() == 0;
        const uint64_t token = ring::hash64(key);
        const std::string index_key = key_hashes_key(token, key);
        auto held = env_.read(Space::key_hashes, index_key);
        if (held && held.value()) continue;  // written by a change since start
        env_.stage_write(
            StoreWrite{Space::key_hashes, index_key,
                       encode_value(entry_hash(key, object, tombstones_only), env_.now_ms())});
    }
    if (!page.empty()) {
        cursor_ = page.back().first;
        cursor_started_ = true;
    }
    if (!more) {
        env_.stage_write(StoreWrite{Space::meta, std::string(kIndexBuiltKey), std::string("1")});
        env_.log(LogLevel::info, "anti-entropy index built");
        phase_ = Phase::building_tree;
        cursor_.clear();
        cursor_started_ = false;
    }
}

void KeyIndex::build_tree_page() {
    bool more = false;
    size_t seen = 0;
    std::string last;
    const uint64_t now = env_.now_ms();
    // Times from a clock that restarted (a reboot) would look like the
    // future and hold tombstone GC back until this clock passed them: they
    // become now.
    std::vector<std::pair<std::string, KeyEntry>> from_the_future;
    Status scanned = env_.scan(Space::key_hashes, cursor_, kBuildPageKeys + 2,
                               [&](std::string_view key, std::string_view value) {
                                   if (cursor_started_ && key == cursor_) return true;
                                   if (seen == kBuildPageKeys) {
                                       more = true;
                                       return false;
                                   }
                                   ++seen;
                                   last.assign(key);
                                   if (auto e = decode_entry(key, value)) {
                                       tree_.apply(e->token, e->hash);
                                       ++keys_;
                                       if (e->tombstones_only()) ++tombstones_;
                                       if (e->since_ms > now) {
                                           from_the_future.emplace_back(std::string(key), *e);
                                       }
                                   }
                                   return true;
                               });
    if (!scanned.ok()) {
        env_.log(LogLevel::error, "anti-entropy tree build: " + scanned.message());
        return;
    }
    for (const auto& [index_key, e] : from_the_future) {
        env_.stage_write(StoreWrite{Space::key_hashes, index_key, encode_value(e.hash, now)});
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

bool KeyIndex::tree_covers(const std::string& index_key) const {
    switch (phase_) {
        case Phase::ready:
            return true;
        case Phase::building_tree:
            return cursor_started_ && index_key <= cursor_;
        default:
            return false;
    }
}

void KeyIndex::on_change(const std::string& key, const std::string* previous,
                         bool previous_tombstones_only, const std::optional<std::string>& object,
                         bool tombstones_only) {
    const uint64_t token = ring::hash64(key);
    std::string index_key = key_hashes_key(token, key);
    const uint64_t old_hash =
        previous ? entry_hash(key, *previous, previous_tombstones_only) : uint64_t{0};
    uint64_t new_hash = 0;
    if (object) {
        new_hash = entry_hash(key, *object, tombstones_only);
        env_.stage_write(
            StoreWrite{Space::key_hashes, index_key, encode_value(new_hash, env_.now_ms())});
    } else if (previous) {
        env_.stage_write(StoreWrite{Space::key_hashes, index_key, std::nullopt});
    }
    if (!tree_covers(index_key)) return;
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
    std::string from = key_hashes_key(interval.lo, "");
    bool started = false;
    for (;;) {
        bool more = false;
        size_t seen = 0;
        std::string last;
        Status scanned = env_.scan(Space::key_hashes, from, kBuildPageKeys + 2,
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
    Status scanned = env_.scan(Space::key_hashes, cursor, limit + 2,
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
    const std::string index_key = key_hashes_key(ring::hash64(key), key);
    auto held = env_.read(Space::key_hashes, index_key);
    if (!held) return held.status();
    if (!held.value()) return std::optional<KeyEntry>();
    return decode_entry(index_key, *held.value());
}

}  // namespace kv::node
