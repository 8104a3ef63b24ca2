// Test-only entry to LmdbStore: replaces the hash that names long keys (see
// store_lmdb.cpp), so a test can make long keys collide and exercise the probing
// that keeps colliding keys apart. A store must always be reopened with the hash
// it was written with; production code uses open_lmdb_store().
#pragma once

#include <cstdint>
#include <string_view>

#include "node/storage/store.h"

namespace kv::node {

using LongKeyHash = uint64_t (*)(std::string_view key);

Result<std::unique_ptr<Store>> open_lmdb_store_with_hash(const LmdbOptions& options,
                                                         LongKeyHash hash);

}  // namespace kv::node
