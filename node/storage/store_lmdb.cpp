// LmdbStore: one LMDB environment per node, one named database per Space.
//
// Long keys. An LMDB key holds at most mdb_env_get_maxkeysize() bytes (511 in
// standard builds; `key_bytes_max_` below) while the protocol allows 1024, so a
// record takes one of two forms, told apart by the length of its LMDB key alone:
//   - inline (key shorter than key_bytes_max_): LMDB key = the key,
//     LMDB value = the value;
//   - hashed (key of key_bytes_max_ bytes or more): LMDB key, exactly
//     key_bytes_max_ bytes = the key's first key_bytes_max_ - 9 bytes
//     + XXH3-64 of the whole key (8 bytes, big-endian) + a probe byte;
//     LMDB value = the key's length (u32, little-endian) + the whole key + the value.
// Hashed keys that collide on prefix and hash take distinct probe bytes (0..255),
// and every lookup compares the whole stored key, so a collision never returns
// another key's value; a 257th colliding key is refused with storage_error.
//
// Order. LMDB sorts by LMDB key bytes, so inline keys keep byte order, and a
// hashed key sorts where its prefix puts it: byte order holds except among keys
// that share their first key_bytes_max_ - 9 (>= kStoreOrderedPrefixBytes) bytes,
// which sort by the bytes that follow, i.e. by hash for hashed keys: StoreOrder
// (store.h) is this order. scan_start() says how a `from` is placed so that the
// contract in store.h holds.
//
// Reads reuse one reset/renewed read transaction (MDB_NOTLS, so it may coexist
// with a write transaction or a scan on the same thread): a get costs no
// transaction setup beyond a renew.
#include <lmdb.h>
#include <xxhash.h>

#include <array>
#include <bitset>
#include <cassert>
#include <cstring>
#include <filesystem>
#include <limits>
#include <utility>

#include "node/storage/store.h"
#include "node/storage/store_lmdb_testing.h"

namespace kv::node {
namespace {

constexpr size_t kHashBytes = 8;
constexpr size_t kProbeBytes = 1;
constexpr size_t kProbesMax = 256;
constexpr size_t kKeyLengthBytes = 4;  // u32 prefix of a hashed record's value
constexpr std::array<const char*, kSpaceCount> kDbNames = {"data",       "meta",  "hints",
                                                           "key_hashes", "store", "objects"};

Status lmdb_error(std::string_view what, int rc) {
    return {ErrorCode::storage_error, std::string(what) + ": " + mdb_strerror(rc)};
}

Status corrupt_record(std::string_view why) {
    return {ErrorCode::storage_error, "lmdb: corrupt hashed record: " + std::string(why)};
}

MDB_val to_val(std::string_view bytes) {
    return MDB_val{bytes.size(), const_cast<char*>(bytes.data())};
}

std::string_view to_view(const MDB_val& val) {
    return {static_cast<const char*>(val.mv_data), val.mv_size};
}

struct Record {
    std::string_view key;
    std::string_view value;
};

// Aborts a transaction on every path that does not commit it.
class TxnGuard {
  public:
    explicit TxnGuard(MDB_txn* txn) : txn_(txn) {}
    TxnGuard(const TxnGuard&) = delete;
    TxnGuard& operator=(const TxnGuard&) = delete;
    ~TxnGuard() {
        if (txn_ != nullptr) mdb_txn_abort(txn_);
    }
    MDB_txn* get() const { return txn_; }
    // The transaction is gone after commit, whatever its outcome.
    int commit() { return mdb_txn_commit(std::exchange(txn_, nullptr)); }

  private:
    MDB_txn* txn_;
};

class CursorGuard {
  public:
    explicit CursorGuard(MDB_cursor* cursor) : cursor_(cursor) {}
    CursorGuard(const CursorGuard&) = delete;
    CursorGuard& operator=(const CursorGuard&) = delete;
    ~CursorGuard() { mdb_cursor_close(cursor_); }
    MDB_cursor* get() const { return cursor_; }

  private:
    MDB_cursor* cursor_;
};

class LmdbStore final : public Store {
  public:
    LmdbStore(MDB_env* env, std::array<MDB_dbi, kSpaceCount> dbis, LongKeyHash hash)
        : env_(env), dbis_(dbis), key_bytes_max_(mdb_env_get_maxkeysize(env)), hash_(hash) {
        assert(key_bytes_max_ >= kStoreOrderedPrefixBytes + kHashBytes + kProbeBytes);
    }
    LmdbStore(const LmdbStore&) = delete;
    LmdbStore& operator=(const LmdbStore&) = delete;

    ~LmdbStore() override {
        // A transaction must not outlive its environment.
        if (read_txn_ != nullptr) mdb_txn_abort(read_txn_);
        mdb_env_close(env_);
    }

    Result<std::optional<std::string>> get(Space space, std::string_view key) const override {
        if (key.empty()) return std::optional<std::string>{};  // never stored
        Result<MDB_txn*> txn = renew_read_txn();
        if (!txn) return txn.status();
        Result<std::optional<std::string>> result = get_in(txn.value(), dbi(space), key);
        mdb_txn_reset(txn.value());  // a held snapshot would keep LMDB from reusing pages
        return result;
    }

    Status write(const std::vector<StoreWrite>& batch) override {
        std::vector<StoreWriteView> views;
        views.reserve(batch.size());
        for (const StoreWrite& w : batch) {
            views.push_back(StoreWriteView{w.space, w.key, value_view(w.value)});
        }
        return write_views(views);
    }

    Status write_views(const std::vector<StoreWriteView>& batch) override {
        for (const StoreWriteView& w : batch) {
            if (w.key.empty()) return {ErrorCode::invalid_argument, "store: empty key"};
            if (w.key.size() > std::numeric_limits<uint32_t>::max()) {
                return {ErrorCode::invalid_argument, "store: key too long"};
            }
        }
        MDB_txn* raw = nullptr;
        int rc = mdb_txn_begin(env_, nullptr, 0, &raw);
        if (rc != 0) return lmdb_error("lmdb write begin", rc);
        TxnGuard txn(raw);
        // One cursor per database for the whole batch: a put through a cursor
        // already on the leaf page its key belongs to skips the descent from
        // the root that mdb_put makes each time, and a checkpoint's batch comes
        // sorted, so most keys land on the page of the key before. LMDB closes
        // a write transaction's cursors when it ends.
        std::array<MDB_cursor*, kSpaceCount> cursors{};
        for (const StoreWriteView& w : batch) {
            Status status = apply(txn.get(), cursors, w);
            if (!status.ok()) return status;  // the guard aborts: nothing applied
        }
        rc = txn.commit();
        if (rc != 0) return lmdb_error("lmdb commit", rc);
        return {};
    }

    Status scan(
        Space space, std::string_view from, size_t limit,
        const std::function<bool(std::string_view, std::string_view)>& visit) const override {
        if (limit == 0) return {};
        // Its own snapshot, so a visitor may still get() through the cached one.
        MDB_txn* raw = nullptr;
        int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &raw);
        if (rc != 0) return lmdb_error("lmdb scan begin", rc);
        TxnGuard txn(raw);
        MDB_cursor* raw_cursor = nullptr;
        rc = mdb_cursor_open(txn.get(), dbi(space), &raw_cursor);
        if (rc != 0) return lmdb_error("lmdb scan cursor", rc);
        CursorGuard cursor(raw_cursor);

        Result<ScanStart> start = scan_start(txn.get(), dbi(space), from);
        if (!start) return start.status();
        std::string_view group = start->filtered_group;
        MDB_val k = to_val(start->lmdb_key);
        MDB_val v{};
        rc = mdb_cursor_get(cursor.get(), &k, &v, from.empty() ? MDB_FIRST : MDB_SET_RANGE);
        size_t visited = 0;
        while (rc == 0 && visited < limit) {
            Result<Record> record = decode(k, v);
            if (!record) return record.status();
            if (!group.empty() && !to_view(k).starts_with(group)) group = {};
            if (group.empty() || record->key >= from) {
                ++visited;
                if (!visit(record->key, record->value)) return {};
            }
            rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT);
        }
        if (rc != 0 && rc != MDB_NOTFOUND) return lmdb_error("lmdb scan", rc);
        return {};
    }

    StoreOrder order() const override {
        return StoreOrder{
            .hashed_key_bytes = key_bytes_max_, .prefix_bytes = prefix_bytes(), .hash = hash_};
    }

    Result<uint64_t> count(Space space) const override {
        Result<MDB_txn*> txn = renew_read_txn();
        if (!txn) return txn.status();
        MDB_stat stat{};
        int rc = mdb_stat(txn.value(), dbi(space), &stat);
        mdb_txn_reset(txn.value());
        if (rc != 0) return lmdb_error("lmdb stat", rc);
        return uint64_t{stat.ms_entries};
    }

  private:
    // Where a hashed key lives, or where it would be put.
    struct Slot {
        bool found = false;
        std::string lmdb_key;    // empty: absent, and all probes are taken
        std::string_view value;  // valid while the transaction lives
    };

    MDB_dbi dbi(Space space) const {
        assert(static_cast<size_t>(space) < kSpaceCount);
        return dbis_[static_cast<size_t>(space)];
    }

    bool is_hashed(std::string_view key) const { return key.size() >= key_bytes_max_; }
    size_t prefix_bytes() const { return key_bytes_max_ - kHashBytes - kProbeBytes; }

    // The LMDB key of a hashed key without its probe byte.
    std::string hashed_base(std::string_view key) const {
        assert(is_hashed(key));
        std::string base(key.substr(0, prefix_bytes()));
        uint64_t hash = hash_(key);
        for (int shift = 56; shift >= 0; shift -= 8) {
            base.push_back(static_cast<char>((hash >> shift) & 0xff));
        }
        return base;
    }

    Result<MDB_txn*> renew_read_txn() const {
        int rc = read_txn_ == nullptr ? mdb_txn_begin(env_, nullptr, MDB_RDONLY, &read_txn_)
                                      : mdb_txn_renew(read_txn_);
        if (rc == 0) return read_txn_;
        if (read_txn_ != nullptr) mdb_txn_abort(read_txn_);
        read_txn_ = nullptr;
        return lmdb_error("lmdb read begin", rc);
    }

    Result<Record> decode(const MDB_val& k, const MDB_val& v) const {
        if (k.mv_size != key_bytes_max_) return Record{to_view(k), to_view(v)};
        std::string_view stored = to_view(v);
        if (stored.size() < kKeyLengthBytes) return corrupt_record("short value");
        uint32_t key_bytes = 0;
        for (size_t i = 0; i < kKeyLengthBytes; ++i) {
            key_bytes |= uint32_t{static_cast<uint8_t>(stored[i])} << (8 * i);
        }
        if (stored.size() - kKeyLengthBytes < key_bytes) return corrupt_record("short key");
        return Record{stored.substr(kKeyLengthBytes, key_bytes),
                      stored.substr(kKeyLengthBytes + key_bytes)};
    }

    // Walks the records that share the key's prefix and hash.
    Result<Slot> find_hashed(MDB_txn* txn, MDB_dbi db, std::string_view key) const {
        std::string base = hashed_base(key);
        std::string first = base + '\0';
        MDB_cursor* raw_cursor = nullptr;
        int rc = mdb_cursor_open(txn, db, &raw_cursor);
        if (rc != 0) return lmdb_error("lmdb cursor", rc);
        CursorGuard cursor(raw_cursor);
        std::bitset<kProbesMax> probes_used;
        MDB_val k = to_val(first);
        MDB_val v{};
        for (rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_SET_RANGE);
             rc == 0 && k.mv_size == key_bytes_max_ && to_view(k).starts_with(base);
             rc = mdb_cursor_get(cursor.get(), &k, &v, MDB_NEXT)) {
            Result<Record> record = decode(k, v);
            if (!record) return record.status();
            if (record->key == key) return Slot{true, std::string(to_view(k)), record->value};
            probes_used.set(static_cast<uint8_t>(to_view(k).back()));
        }
        if (rc != 0 && rc != MDB_NOTFOUND) return lmdb_error("lmdb probe", rc);
        for (size_t probe = 0; probe < kProbesMax; ++probe) {
            if (!probes_used.test(probe)) return Slot{false, base + static_cast<char>(probe), {}};
        }
        return Slot{};  // absent, and no probe left to put it under
    }

    Result<std::optional<std::string>> get_in(MDB_txn* txn, MDB_dbi db,
                                              std::string_view key) const {
        if (is_hashed(key)) {
            Result<Slot> slot = find_hashed(txn, db, key);
            if (!slot) return slot.status();
            if (!slot->found) return std::optional<std::string>{};
            return std::optional<std::string>{std::string(slot->value)};
        }
        MDB_val k = to_val(key);
        MDB_val v{};
        int rc = mdb_get(txn, db, &k, &v);
        if (rc == MDB_NOTFOUND) return std::optional<std::string>{};
        if (rc != 0) return lmdb_error("lmdb get", rc);
        return std::optional<std::string>{std::string(to_view(v))};
    }

    Status apply(MDB_txn* txn, std::array<MDB_cursor*, kSpaceCount>& cursors,
                 const StoreWriteView& w) const {
        MDB_dbi db = dbi(w.space);
        if (!is_hashed(w.key)) {
            MDB_val k = to_val(w.key);
            if (!w.value) {
                int rc = mdb_del(txn, db, &k, nullptr);
                return rc == 0 || rc == MDB_NOTFOUND ? Status{} : lmdb_error("lmdb del", rc);
            }
            MDB_cursor*& cursor = cursors[static_cast<size_t>(w.space)];
            if (cursor == nullptr) {
                int rc = mdb_cursor_open(txn, db, &cursor);
                if (rc != 0) return lmdb_error("lmdb write cursor", rc);
            }
            MDB_val v = to_val(*w.value);
            int rc = mdb_cursor_put(cursor, &k, &v, 0);
            return rc == 0 ? Status{} : lmdb_error("lmdb put", rc);
        }
        Result<Slot> slot = find_hashed(txn, db, w.key);
        if (!slot) return slot.status();
        MDB_val k = to_val(slot->lmdb_key);
        if (!w.value) {
            if (!slot->found) return {};
            int rc = mdb_del(txn, db, &k, nullptr);
            return rc == 0 ? Status{} : lmdb_error("lmdb del", rc);
        }
        if (!slot->found && slot->lmdb_key.empty()) {
            return {ErrorCode::storage_error, "lmdb: too many long keys share a hash"};
        }
        return put_hashed(txn, db, k, w.key, *w.value);
    }

    // MDB_RESERVE lets the record be assembled in place, without a copy of the value.
    static Status put_hashed(MDB_txn* txn, MDB_dbi db, MDB_val k, std::string_view key,
                             std::string_view value) {
        MDB_val v{kKeyLengthBytes + key.size() + value.size(), nullptr};
        int rc = mdb_put(txn, db, &k, &v, MDB_RESERVE);
        if (rc != 0) return lmdb_error("lmdb put", rc);
        auto* out = static_cast<char*>(v.mv_data);
        auto key_bytes = static_cast<uint32_t>(key.size());
        for (size_t i = 0; i < kKeyLengthBytes; ++i) {
            out[i] = static_cast<char>((key_bytes >> (8 * i)) & 0xff);
        }
        std::memcpy(out + kKeyLengthBytes, key.data(), key.size());
        if (!value.empty())
            std::memcpy(out + kKeyLengthBytes + key.size(), value.data(), value.size());
        return {};
    }

    // Where a scan starts. A `from` shorter than key_bytes_max_ is its own LMDB
    // key, stored or not, so it is the position itself. A hashed stored `from`
    // starts at its own record, so that paging from the last key visited is
    // exact. A hashed absent `from` starts where StoreOrder puts it, its prefix
    // and hash with probe 0, and skips the keys of that probe group (keys whose
    // hashes collide with its own) that are below it in byte order.
    struct ScanStart {
        std::string lmdb_key;
        std::string filtered_group;  // empty: nothing is skipped
    };

    Result<ScanStart> scan_start(MDB_txn* txn, MDB_dbi db, std::string_view from) const {
        if (!is_hashed(from)) return ScanStart{std::string(from), {}};
        Result<std::optional<std::string>> own = own_lmdb_key(txn, db, from);
        if (!own) return own.status();
        if (own->has_value()) return ScanStart{own->value(), {}};
        std::string group = hashed_base(from);
        return ScanStart{group + '\0', group};
    }

    // The LMDB key a stored key lives under, or nullopt when it is absent.
    Result<std::optional<std::string>> own_lmdb_key(MDB_txn* txn, MDB_dbi db,
                                                    std::string_view key) const {
        if (is_hashed(key)) {
            Result<Slot> slot = find_hashed(txn, db, key);
            if (!slot) return slot.status();
            if (!slot->found) return std::optional<std::string>{};
            return std::optional<std::string>{slot->lmdb_key};
        }
        MDB_val k = to_val(key);
        MDB_val v{};
        int rc = mdb_get(txn, db, &k, &v);
        if (rc == MDB_NOTFOUND) return std::optional<std::string>{};
        if (rc != 0) return lmdb_error("lmdb get", rc);
        return std::optional<std::string>{std::string(key)};
    }

    MDB_env* env_;
    std::array<MDB_dbi, kSpaceCount> dbis_;
    size_t key_bytes_max_;
    LongKeyHash hash_;
    mutable MDB_txn* read_txn_ = nullptr;  // reset between reads, renewed by the next
};

// Opens the environment; closes it again on any failure.
Result<MDB_env*> open_env(const LmdbOptions& options) {
    MDB_env* env = nullptr;
    int rc = mdb_env_create(&env);
    if (rc != 0) return lmdb_error("lmdb env create", rc);
    unsigned flags = MDB_NOTLS | (options.sync ? 0u : unsigned{MDB_NOSYNC});
    if ((rc = mdb_env_set_maxdbs(env, kSpaceCount)) != 0 ||
        (rc = mdb_env_set_mapsize(env, options.map_size_bytes)) != 0 ||
        (rc = mdb_env_open(env, options.dir.c_str(), flags, 0644)) != 0) {
        mdb_env_close(env);
        return lmdb_error("lmdb open " + options.dir, rc);
    }
    auto key_bytes_max = static_cast<size_t>(mdb_env_get_maxkeysize(env));
    if (key_bytes_max < kStoreOrderedPrefixBytes + kHashBytes + kProbeBytes) {
        mdb_env_close(env);
        return Status{ErrorCode::storage_error, "lmdb: built with a max key size below 511"};
    }
    return env;
}

Result<std::array<MDB_dbi, kSpaceCount>> open_dbis(MDB_env* env) {
    MDB_txn* raw = nullptr;
    int rc = mdb_txn_begin(env, nullptr, 0, &raw);
    if (rc != 0) return lmdb_error("lmdb open dbs", rc);
    TxnGuard txn(raw);
    std::array<MDB_dbi, kSpaceCount> dbis{};
    for (size_t i = 0; i < kSpaceCount; ++i) {
        rc = mdb_dbi_open(txn.get(), kDbNames[i], MDB_CREATE, &dbis[i]);
        if (rc != 0) return lmdb_error(std::string("lmdb open db ") + kDbNames[i], rc);
    }
    rc = txn.commit();
    if (rc != 0) return lmdb_error("lmdb open dbs commit", rc);
    return dbis;
}

}  // namespace

// The persisted hash of long keys: XXH3-64 (stable since xxHash 0.8) must never change.
uint64_t lmdb_long_key_hash(std::string_view key) {
    return XXH3_64bits(key.data(), key.size());
}

Result<std::unique_ptr<Store>> open_lmdb_store_with_hash(const LmdbOptions& options,
                                                         LongKeyHash hash) {
    std::error_code ec;
    std::filesystem::create_directories(options.dir, ec);
    if (ec) {
        return Status{ErrorCode::storage_error, "create " + options.dir + ": " + ec.message()};
    }
    Result<MDB_env*> env = open_env(options);
    if (!env) return env.status();
    Result<std::array<MDB_dbi, kSpaceCount>> dbis = open_dbis(env.value());
    if (!dbis) {
        mdb_env_close(env.value());
        return dbis.status();
    }
    return std::unique_ptr<Store>(std::make_unique<LmdbStore>(env.value(), dbis.value(), hash));
}

Result<std::unique_ptr<Store>> open_lmdb_store(const LmdbOptions& options) {
    if (options.write_ahead_log) return open_logged_lmdb_store(options, lmdb_long_key_hash);
    // A store last opened with its log gets what the log holds first.
    if (Status s = retire_write_ahead_log(options, lmdb_long_key_hash); !s.ok()) return s;
    return open_lmdb_store_with_hash(options, lmdb_long_key_hash);
}

}  // namespace kv::node
