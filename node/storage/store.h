// Durable storage of a node, behind an interface with two implementations:
// LmdbStore (kvnode) and MemoryStore (the simulator and fast tests). Keys and
// values are opaque bytes; the node encodes objects above this layer. A key is
// 1 or more bytes (the protocol caps user keys at 1024; the store has no cap of
// its own); a value may be empty.
//
// Thread-safety: a Store is used by one thread (the node's event loop), except
// that the LMDB stores' writes may run on the runtime's writer threads
// (node/runtime/commit_thread.h) while the loop reads: LmdbStore::write touches
// no state of the object but the LMDB environment, whose write transaction may
// coexist with the loop's read transactions (MDB_NOTLS); the logged store
// guards its memory with a mutex, and lets one batch's make_durable() run
// beside the next one's append() (below).
// Durability: when write() returns ok, the whole batch survives a crash of the
// process (and, with sync on, of the machine); when it fails, none of it is applied.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/status.h"

namespace kv::node {

// Separate keyspaces, so user keys never collide with the node's own records.
// objects: the replica's stored objects by token, each with its anti-entropy
// entry (node/data/stored_record.h). store: the store's own records (the
// write-ahead log's applied number); the node never uses it.
// data and key_hashes are the layout before objects (a key's object in data,
// keyed by the key, and its entry in key_hashes): a data directory that has
// them is moved to objects at start (node/storage/upgrade.h), and nothing
// else reads or writes them.
enum class Space : uint8_t {
    data = 0,
    meta = 1,
    hints = 2,
    key_hashes = 3,
    store = 4,
    objects = 5
};
constexpr size_t kSpaceCount = 6;

struct StoreWrite {
    Space space = Space::data;
    std::string key;
    std::optional<std::string> value;  // nullopt: erase the key
};

// A write whose bytes the caller keeps alive until the write returns
// (Store::write_views).
struct StoreWriteView {
    Space space = Space::data;
    std::string_view key;
    std::optional<std::string_view> value;  // nullopt: erase the key
};

// A write's value as a view of the caller's string (nullopt stays an erase).
inline std::optional<std::string_view> value_view(const std::optional<std::string>& value) {
    return value ? std::optional<std::string_view>(*value) : std::nullopt;
}

// Keys that differ within their first this many bytes (or of at most this many
// bytes) are visited by scan() in byte order by every implementation.
constexpr size_t kStoreOrderedPrefixBytes = 502;

// The order a store keeps its keys in (Store::order()): byte order, except
// that a key of hashed_key_bytes or more sorts as its first prefix_bytes
// bytes, then `hash` of the whole key (8 bytes, big-endian), then a zero byte,
// which is where LmdbStore files it (store_lmdb.cpp); keys equal that far (a
// 64-bit hash collision among keys sharing prefix_bytes) compare by their
// bytes. Layers over a store (the logged store's memtables, BufferedEnv's
// staged writes) merge their keys into its scans by this order, so a merged
// scan is one order and pages exactly.
struct StoreOrder {
    size_t hashed_key_bytes = SIZE_MAX;  // SIZE_MAX: byte order throughout
    size_t prefix_bytes = 0;
    uint64_t (*hash)(std::string_view key) = nullptr;

    bool less(std::string_view a, std::string_view b) const {
        if (a.size() < hashed_key_bytes && b.size() < hashed_key_bytes) return a < b;
        return compare_hashed(a, b) < 0;
    }
    bool less(Space space_a, std::string_view a, Space space_b, std::string_view b) const {
        if (space_a != space_b) return space_a < space_b;
        return less(a, b);
    }

  private:
    // At least one of the keys is hashed: their first prefix_bytes, then what
    // follows (the rest of an inline key, a hashed key's hash and zero byte).
    int compare_hashed(std::string_view a, std::string_view b) const {
        const std::string_view head_a = a.substr(0, prefix_bytes);
        const std::string_view head_b = b.substr(0, prefix_bytes);
        if (int c = head_a.compare(head_b); c != 0) return c;
        if (head_a.size() < prefix_bytes) return 0;  // both ended: the same key
        std::array<char, 9> hashed_a{}, hashed_b{};
        const std::string_view tail_a = tail(a, hashed_a), tail_b = tail(b, hashed_b);
        if (int c = tail_a.compare(tail_b); c != 0) return c;
        return a.compare(b);
    }
    std::string_view tail(std::string_view key, std::array<char, 9>& hashed) const {
        if (key.size() < hashed_key_bytes) return key.substr(prefix_bytes);
        const uint64_t h = hash(key);
        for (size_t i = 0; i < 8; ++i) hashed[i] = static_cast<char>((h >> (56 - 8 * i)) & 0xff);
        return {hashed.data(), hashed.size()};  // the last byte stays zero
    }
};

// A layer over a store (the logged store's memtables, BufferedEnv's staged
// writes) copies the records of the store below a chunk at a time, to merge
// its own keys in order. The first chunk is this many keys and each next one
// twice the last, up to what the scan may still visit: a visitor that stops
// early (anti-entropy listing one token interval, up to 512 per request) pays
// for about what it visited, not for the whole limit (2,050 records, values
// included, a listing, when chunks were the limit).
constexpr size_t kScanFirstChunkKeys = 16;

class Store {
  public:
    virtual ~Store() = default;

    // The value of a key, or nullopt when absent.
    virtual Result<std::optional<std::string>> get(Space space, std::string_view key) const = 0;

    // Applies every write of the batch in one atomic, durable transaction. Later
    // writes of a batch to the same key win. Errors: invalid_argument (an empty
    // key; nothing applied), storage_error (the commit failed; nothing applied;
    // after a failed sync the logged store refuses every later write, below).
    virtual Status write(const std::vector<StoreWrite>& batch) = 0;

    // write() of bytes held elsewhere, with the same contract: the logged
    // store's checkpoints apply its memtables' bytes to LMDB this way, without
    // first copying a checkpoint's worth of keys and values into a batch. By
    // default the views are copied into a batch for write().
    virtual Status write_views(const std::vector<StoreWriteView>& batch) {
        std::vector<StoreWrite> copied;
        copied.reserve(batch.size());
        for (const StoreWriteView& w : batch) {
            copied.push_back(
                StoreWrite{w.space, std::string(w.key),
                           w.value ? std::optional<std::string>(*w.value) : std::nullopt});
        }
        return write(copied);
    }

    // write() in two steps, so that a writer may log the next batch while the
    // sync of the one before runs (node/runtime/commit_thread.h): append()
    // puts the batch next in the store's order and returns its ticket (called
    // by one thread at a time, in that order); make_durable(ticket) returns
    // once the batch is durable and readable, and may run on another thread
    // beside the next append() and make_durable(). Batches become readable in
    // append order, each only once those before it are; `batch` must live
    // until its make_durable() returns. After a make_durable() fails, so do
    // the tickets appended after it, and the logged store refuses every
    // later write: a failed sync may have dropped the pages it did not write
    // (Linux marks them clean), so retrying it would claim durability it
    // does not have. By default append() is the whole write() and
    // make_durable() has nothing left to do, so nothing overlaps.
    virtual Result<uint64_t> append(const std::vector<StoreWrite>& batch) {
        if (Status s = write(batch); !s.ok()) return s;
        return uint64_t{0};
    }
    virtual Status make_durable(uint64_t ticket) {
        (void)ticket;
        return {};
    }

    // Visits the keys not before `from` in store order (order()) until `visit`
    // returns false or `limit` keys were visited. The views passed to `visit`
    // die when it returns, and `visit` must not write() to this store.
    //
    // Store order is byte order, with one LmdbStore exception: keys longer than
    // kStoreOrderedPrefixBytes that share their first kStoreOrderedPrefixBytes bytes
    // may be ordered among themselves by a hash when one of them is too long for an
    // LMDB key (StoreOrder). Keys with a common prefix of at most
    // kStoreOrderedPrefixBytes bytes are therefore contiguous, and paging that
    // resumes from the last key visited (skipping it) is exact, whether or not that
    // key is still stored. Resuming from a byte-order successor (last + '\0') can
    // repeat or skip keys longer than kStoreOrderedPrefixBytes: page from the last
    // key instead. The one inexactness: LmdbStore orders long keys whose 64-bit
    // hashes collide (and that share the prefix) by when each was first stored,
    // where StoreOrder orders them by their bytes; a scan from an absent `from`
    // among them visits those >= `from` in byte order.
    virtual Status scan(
        Space space, std::string_view from, size_t limit,
        const std::function<bool(std::string_view key, std::string_view value)>& visit) const = 0;

    // Number of keys in a space.
    virtual Result<uint64_t> count(Space space) const = 0;

    // The order scan() visits keys in.
    virtual StoreOrder order() const { return {}; }
};

// Everything written is "durable": the simulator keeps a MemoryStore across a
// simulated crash of its node, which loses only what was never written.
std::unique_ptr<Store> make_memory_store();

struct LmdbOptions {
    std::string dir;                        // created if missing
    uint64_t map_size_bytes = 64ULL << 30;  // address space reserved, not disk used
    bool sync = true;                       // fsync on every commit (MDB_NOSYNC off)
    // A write-ahead log in front of LMDB (node/storage/store_logged.cpp): a
    // commit is one appended, synced record; batches reach LMDB in background
    // checkpoints of about wal_checkpoint_bytes of log each. Up to about twice
    // that of written keys and values is held in memory meanwhile.
    bool write_ahead_log = false;
    uint64_t wal_checkpoint_bytes = uint64_t{32} << 20;
    // A checkpoint reaches LMDB in transactions of about this many bytes of
    // keys and values each, in key order, so that no one sync of the tree holds
    // up the log's syncs for long (store_logged.cpp, checkpoint_loop).
    uint64_t wal_checkpoint_step_bytes = uint64_t{256} << 10;
    // Opening a log damaged in its middle (whole records after a damaged one,
    // or records missing) fails with storage_error unless this is set; set, the
    // records up to the damage are kept and the rest dropped, told through `log`
    // and recorded in Space::meta (meta::kLostWritesKey) for the node to refill.
    bool wal_discard_damaged = false;
    // Set to true when opening fails for that reason (a log damaged in its
    // middle, wal_discard_damaged not set): trying again changes nothing, an
    // operator must restore the directory or discard (may be null).
    bool* refused_damaged_log = nullptr;
    std::function<void(const std::string&)> log = {};  // notices while opening (may be empty)
};

// Opens (creating if needed) an LMDB environment in options.dir, with its
// write-ahead log when options.write_ahead_log (replaying what the log holds
// beyond LMDB first). Opened without the log, a directory last written with it
// has the log applied to LMDB and removed first, so either may follow the other.
Result<std::unique_ptr<Store>> open_lmdb_store(const LmdbOptions& options);

}  // namespace kv::node
