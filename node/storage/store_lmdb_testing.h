// Test-only entry to LmdbStore: replaces the hash that names long keys (see
// store_lmdb.cpp), so a test can make long keys collide and exercise the probing
// that keeps colliding keys apart. A store must always be reopened with the hash
// it was written with; production code uses open_lmdb_store().
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "node/storage/store.h"

namespace kv::node {

using LongKeyHash = uint64_t (*)(std::string_view key);

// Without the write-ahead log, whatever options.write_ahead_log says.
Result<std::unique_ptr<Store>> open_lmdb_store_with_hash(const LmdbOptions& options,
                                                         LongKeyHash hash);
// With the write-ahead log (store_logged.cpp), whatever options.write_ahead_log says.
Result<std::unique_ptr<Store>> open_logged_lmdb_store(const LmdbOptions& options, LongKeyHash hash);
// The records a logged store's scans copied from LMDB and its memtables to
// merge them, since it opened (0 for any other store): what a scan costs.
uint64_t logged_store_scan_copies(const Store& store);
// Applies what a write-ahead log in options.dir holds to LMDB and removes the
// log's files (nothing when there are none): open_lmdb_store() without the log
// calls it first.
Status retire_write_ahead_log(const LmdbOptions& options, LongKeyHash hash);
// The hash open_lmdb_store() names long keys with.
uint64_t lmdb_long_key_hash(std::string_view key);

}  // namespace kv::node
