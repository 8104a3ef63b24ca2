// Moves a data directory written by an older kvnode to this build's layout,
// before the node starts (kvnode runs it on every start; it returns at once
// when there is nothing to move).
//
// Format 1 (meta "format" absent or 1) kept a key's object in Space::data,
// keyed by the key, and its anti-entropy entry in Space::key_hashes. Format 2
// keeps both in one record of Space::objects, in token order
// (node/data/stored_record.h). The move goes a page of keys at a time, each
// page one atomic batch that writes the new records and erases the old ones,
// so a crash at any point leaves every key in exactly one layout and the next
// start carries on. The format record becomes 2 only when both old spaces are
// empty; a build that reads only format 1 then refuses the directory instead
// of finding it empty.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "client/status.h"
#include "node/storage/store.h"

namespace kv::node {

struct UpgradeStats {
    uint64_t objects_moved = 0;
    uint64_t entries_dropped = 0;  // old index entries without an object
};

// `now_ms` is the node's clock at start: the since_ms of an object that had no
// index entry (a directory written before the index existed). `log` hears
// progress. storage_error when the store fails; the directory is then left
// part moved, which the next start finishes.
Result<UpgradeStats> upgrade_store(Store& store, uint64_t now_ms,
                                   const std::function<void(const std::string&)>& log);

}  // namespace kv::node
