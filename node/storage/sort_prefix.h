// A cheap stand-in for comparing two stored records' (space, key): the space
// and the key's first kSortPrefixKeyBytes bytes, zero-padded, as two
// big-endian words. Where two records' prefixes differ they order the records
// as (space, key) byte order does (a key shorter than the prefix pads with
// zeros, and no byte is below zero); where they tie, only the keys themselves
// can tell. The checkpointer sorts a memtable's entries by it (store_logged.cpp):
// a comparison that reads two entries misses the cache twice.
#pragma once

#include <algorithm>
#include <array>
#include <compare>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "node/storage/store.h"

namespace kv::node {

struct SortPrefix {
    uint64_t hi = 0;  // the space, then the key's first 7 bytes
    uint64_t lo = 0;  // the key's next 8 bytes
    auto operator<=>(const SortPrefix&) const = default;
};

constexpr size_t kSortPrefixKeyBytes = 15;

inline SortPrefix sort_prefix(Space space, std::string_view key) {
    std::array<uint8_t, 1 + kSortPrefixKeyBytes> bytes{};
    bytes[0] = static_cast<uint8_t>(space);
    std::memcpy(bytes.data() + 1, key.data(), std::min(key.size(), kSortPrefixKeyBytes));
    SortPrefix p;
    for (size_t i = 0; i < 8; ++i) {
        p.hi = (p.hi << 8) | bytes[i];
        p.lo = (p.lo << 8) | bytes[8 + i];
    }
    return p;
}

}  // namespace kv::node
