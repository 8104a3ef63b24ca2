#include "node/storage/upgrade.h"

#include <vector>

#include "node/data/object.h"
#include "node/data/stored_record.h"
#include "node/storage/meta_codec.h"

namespace kv::node {

namespace {

// Keys moved per atomic batch: large enough that the syncs do not dominate,
// small enough that a batch stays a few MiB with large values.
constexpr size_t kPageKeys = 1024;

// The keys of one page of `space` after `after` (empty: from the start), with
// their values when `with_values`.
Status read_page(Store& store, Space space, const std::string& after, bool with_values,
                 std::vector<std::pair<std::string, std::string>>& page) {
    page.clear();
    return store.scan(
        space, after, kPageKeys + 1, [&](std::string_view key, std::string_view value) {
            if (!after.empty() && key == after) return true;
            if (page.size() == kPageKeys) return false;
            page.emplace_back(std::string(key), with_values ? std::string(value) : std::string());
            return true;
        });
}

}  // namespace

Result<UpgradeStats> upgrade_store(Store& store, uint64_t now_ms,
                                   const std::function<void(const std::string&)>& log) {
    UpgradeStats stats;
    auto format = store.get(Space::meta, meta::kFormatKey);
    if (!format) return format.status();
    if (format.value()) {
        auto number = meta::decode_u64_text(*format.value());
        // Format 2 or one this build does not know: Node::start decides.
        if (!number || *number != 1) return stats;
    }
    std::vector<std::pair<std::string, std::string>> page;
    std::string after;
    for (;;) {
        if (Status s = read_page(store, Space::data, after, true, page); !s.ok()) return s;
        if (page.empty()) break;
        if (stats.objects_moved == 0) log("moving stored objects to the format 2 layout");
        std::vector<StoreWrite> batch;
        batch.reserve(3 * page.size());
        for (auto& [key, object] : page) {
            const std::string stored = stored_key(key);
            auto entry = store.get(Space::key_hashes, stored);
            if (!entry) return entry.status();
            // The old entry's since_ms, or now for an object the index never
            // held. Its value (entry hash, since_ms) is the new record's header.
            const auto old_entry = entry.value() && entry.value()->size() == kStoredHeaderBytes
                                       ? read_stored_record(stored, *entry.value())
                                       : std::nullopt;
            const uint64_t since = old_entry ? old_entry->since_ms : now_ms;
            auto decoded = decode_object(object);
            if (!decoded) {
                // Kept as it was: the replica reports it corrupt when read,
                // as it did before the move.
                log("stored object of a key is corrupt (" + decoded.status().message() +
                    "); moved as it is");
            }
            const bool tombstones_only =
                decoded && !decoded->siblings.empty() && decoded->live_count() == 0;
            batch.push_back(
                StoreWrite{Space::objects, stored,
                           stored_value(entry_hash(key, object, tombstones_only), since, object)});
            batch.push_back(StoreWrite{Space::key_hashes, stored, std::nullopt});
            batch.push_back(StoreWrite{Space::data, key, std::nullopt});
        }
        if (Status s = store.write(batch); !s.ok()) return s;
        stats.objects_moved += page.size();
        after = page.back().first;
        if (stats.objects_moved % (64 * kPageKeys) == 0) {
            log("moved " + std::to_string(stats.objects_moved) + " stored objects");
        }
    }
    // Entries whose object was gone (none, as both were written together;
    // erased so that the old space ends empty).
    after.clear();
    for (;;) {
        if (Status s = read_page(store, Space::key_hashes, after, false, page); !s.ok()) return s;
        if (page.empty()) break;
        std::vector<StoreWrite> batch;
        for (auto& entry : page) batch.push_back(StoreWrite{Space::key_hashes, entry.first, {}});
        if (Status s = store.write(batch); !s.ok()) return s;
        stats.entries_dropped += page.size();
        after = page.back().first;
    }
    auto index_built = store.get(Space::meta, meta::kKeyHashesBuiltKey);
    if (!index_built) return index_built.status();
    if (!format.value() && !index_built.value() && stats.objects_moved == 0 &&
        stats.entries_dropped == 0) {
        return stats;  // nothing of format 1: a new directory (Node::start records the format)
    }
    Status done =
        store.write({StoreWrite{Space::meta, std::string(meta::kKeyHashesBuiltKey), std::nullopt},
                     StoreWrite{Space::meta, std::string(meta::kFormatKey),
                                meta::encode_u64_text(meta::kMetaFormat)}});
    if (!done.ok()) return done;
    log("data directory at format " + std::to_string(meta::kMetaFormat) + ": " +
        std::to_string(stats.objects_moved) + " stored objects moved");
    return stats;
}

}  // namespace kv::node
