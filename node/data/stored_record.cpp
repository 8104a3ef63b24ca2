#include "node/data/stored_record.h"

#include <xxhash.h>

#include "ring/ring.h"

namespace kv::node {

uint64_t entry_hash(std::string_view key, std::string_view object, bool tombstones_only) {
    // The key's hash seeds the object's: every change of a stored object
    // passes here, so the value is hashed where it lies, never copied.
    const uint64_t h = XXH3_64bits_withSeed(object.data(), object.size(), ring::hash64(key));
    return (h & ~uint64_t{1}) | (tombstones_only ? 1 : 0);
}

std::string stored_key(std::string_view key) {
    return stored_key(ring::hash64(key), key);
}

}  // namespace kv::node
