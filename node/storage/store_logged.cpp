// LoggedStore: a write-ahead log in front of an LMDB store (LmdbOptions::
// write_ahead_log, kvnode --wal).
//
// Why. An LMDB commit writes every B-tree page the batch touched (the data
// record, the anti-entropy index record, their branch pages) at scattered
// offsets and syncs twice (pages, then the meta page). Under load that costs
// milliseconds per commit on the request path. Here a commit appends one record
// to a log and syncs it (one sequential write); the writes are then served from
// memory until a background checkpoint applies many batches to LMDB in
// ordinary, synced LMDB transactions (steps of wal_checkpoint_step_bytes, in
// key order). LMDB itself is never run without sync, so it is always a
// consistent snapshot, at most part of a checkpoint ahead of its applied
// number: the log replays everything after that number over it.
//
// Files, in the store's directory: wal-0 and wal-1, used in turn. A record is
//   u32 payload length | u64 sequence number | u64 XXH3-64 of the payload,
//   seeded with the sequence number | payload (the batch: per write u8 space,
//   u8 has value, u32 key length, key, and with a value u32 length, value),
// little-endian. Sequence numbers rise by one from record to record, across
// files. Each file is written from offset 0 when it becomes the active one, so
// what follows the last record written is an older cycle's (lower numbers), a
// torn record (its hash fails) or the zeros written ahead of the records
// (append(): sequence number 0): reading a file stops at the first record that
// does not continue the sequence.
//
// Memory. Writes appended to the active file are also kept in `active_`. When
// the active file passes checkpoint_bytes, the writes become `frozen_` (the
// other file becomes active, from offset 0) and the checkpointer thread applies
// them to LMDB, in steps, the last step with the highest sequence number they
// hold (Space::store key kWalAppliedKey); then frozen_ is dropped. The next freeze waits for that,
// so at most about 2 x checkpoint_bytes of writes are held. Reads look at active_, then frozen_,
// then LMDB.
//
// Recovery (open): the records of both files numbered above the applied
// number, in order and without a gap, are applied to LMDB in one transaction.
// A file is read up to its first record that is torn or does not follow. That
// is where a crash leaves it: at most two records are written and not yet
// synced (append() and make_durable(): the writer logs a batch while the one
// before syncs; neither is acknowledged before both before it are durable),
// so after a torn one come only zeros, the record after it (kUnsyncedRecords)
// whole or torn, and an older cycle's records, numbered lower. A whole record
// numbered higher still, found anywhere after that point, means the log was
// damaged after it was written (a flipped byte, a lost block), and a gap between LMDB's number and
// the log's records (both files damaged, or LMDB older than its log) means records are missing:
// either is refused with storage_error, as replaying would silently drop writes that were
// acknowledged. LmdbOptions::wal_discard_damaged (kvnode
// --wal-discard-damaged) opens anyway: it keeps the records up to the damage,
// logs what it drops, marks the directory for the node to refill (meta
// lost_writes), and empties both files once LMDB holds what was kept, so that
// no record dropped can be read back later. A crash in the middle of
// a checkpoint leaves LMDB holding some of the frozen writes (whole ones, in
// key order) beyond its number; replay writes them again. Should the frozen
// file also be damaged before them, those writes stay (each acknowledged),
// where an all-or-nothing checkpoint would have dropped them with the rest.
//
// Threads: write(), or append() then make_durable(), on the runtime's
// writer threads (appends one at a time; a sync beside the next append); get, scan
// and count on another (the event loop); the checkpointer on its own, at a
// lower CPU priority than the process's (lower_priority()). mu_
// guards active_, frozen_ and the counters; frozen_ changes only while no
// checkpoint is pending (freeze) or by the checkpointer (clear).
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cassert>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "node/storage/meta_codec.h"
#include "node/storage/sort_prefix.h"
#include "node/storage/store.h"
#include "node/storage/store_lmdb_testing.h"

namespace kv::node {
namespace {

constexpr std::string_view kWalAppliedKey = "wal_applied_seq";  // in Space::store
constexpr size_t kHeaderBytes = 4 + 8 + 8;
// How far past its last record a log file is written with zeros (append()).
constexpr uint64_t kZeroFillBytes = uint64_t{1} << 20;
constexpr std::array<const char*, 2> kWalFiles = {"wal-0", "wal-1"};
// How many records may be written and not yet synced at once (append(),
// make_durable()): at a crash, the last this many of a file may be torn, and
// a record whole after a torn one is one of them, never acknowledged. So
// damage to one of the last two records reads as such a crash.
constexpr uint64_t kUnsyncedRecords = 2;
// The checkpointer's nice value above the process's (lower_priority()).
constexpr int kCheckpointNiceIncrement = 10;

Status io_error(const std::string& what, int err) {
    return {ErrorCode::storage_error, "wal: " + what + ": " + std::strerror(err)};
}

void put_u32(std::string& out, uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_u64(std::string& out, uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
// One load on a little-endian machine (the byte loop is not folded into one:
// it was most of the damage scan at a start, later_record()).
uint32_t get_u32(const char* p) {
    if constexpr (std::endian::native == std::endian::little) {
        uint32_t v;
        std::memcpy(&v, p, sizeof v);
        return v;
    }
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<uint8_t>(p[i])} << (8 * i);
    return v;
}
uint64_t get_u64(const char* p) {
    if constexpr (std::endian::native == std::endian::little) {
        uint64_t v;
        std::memcpy(&v, p, sizeof v);
        return v;
    }
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<uint8_t>(p[i])} << (8 * i);
    return v;
}

std::string encode_seq(uint64_t seq) {
    std::string out;
    put_u64(out, seq);
    return out;
}

// Appends one record for `batch` to `out`.
void encode_record(uint64_t seq, const std::vector<StoreWrite>& batch, std::string& out) {
    const size_t start = out.size();
    out.append(kHeaderBytes, '\0');
    for (const StoreWrite& w : batch) {
        out.push_back(static_cast<char>(w.space));
        out.push_back(w.value ? 1 : 0);
        put_u32(out, static_cast<uint32_t>(w.key.size()));
        out.append(w.key);
        if (w.value) {
            put_u32(out, static_cast<uint32_t>(w.value->size()));
            out.append(*w.value);
        }
    }
    const size_t payload_bytes = out.size() - start - kHeaderBytes;
    const uint64_t hash =
        XXH3_64bits_withSeed(out.data() + start + kHeaderBytes, payload_bytes, seq);
    std::string header;
    put_u32(header, static_cast<uint32_t>(payload_bytes));
    put_u64(header, seq);
    put_u64(header, hash);
    std::memcpy(out.data() + start, header.data(), kHeaderBytes);
}

// Calls on_write(space, key, value or nullopt) for each write of a record's
// payload, in order; false if the payload does not parse (nothing after the
// last whole write is visited).
template <typename OnWrite>
bool walk_payload(std::string_view p, OnWrite&& on_write) {
    while (!p.empty()) {
        if (p.size() < 6) return false;
        const auto space = static_cast<uint8_t>(p[0]);
        const auto has_value = static_cast<uint8_t>(p[1]);
        const uint32_t key_bytes = get_u32(p.data() + 2);
        p.remove_prefix(6);
        if (space >= kSpaceCount || has_value > 1 || p.size() < key_bytes) return false;
        const std::string_view key = p.substr(0, key_bytes);
        p.remove_prefix(key_bytes);
        std::optional<std::string_view> value;
        if (has_value) {
            if (p.size() < 4) return false;
            const uint32_t value_bytes = get_u32(p.data());
            p.remove_prefix(4);
            if (p.size() < value_bytes) return false;
            value = p.substr(0, value_bytes);
            p.remove_prefix(value_bytes);
        }
        on_write(static_cast<Space>(space), key, value);
    }
    return true;
}

Result<std::vector<StoreWrite>> decode_payload(std::string_view p) {
    std::vector<StoreWrite> batch;
    const bool parsed = walk_payload(
        p, [&](Space space, std::string_view key, std::optional<std::string_view> value) {
            batch.push_back(StoreWrite{space, std::string(key),
                                       value ? std::optional<std::string>(*value) : std::nullopt});
        });
    if (!parsed) return Status{ErrorCode::storage_error, "wal: corrupt record payload"};
    return batch;
}

struct LoggedRecord {
    uint64_t seq = 0;
    std::string_view payload;
};

// The record at byte `at` of a file with its hash holding, or nullopt.
std::optional<LoggedRecord> whole_record_at(std::string_view bytes, size_t at) {
    if (bytes.size() - at < kHeaderBytes) return std::nullopt;
    const uint32_t payload_bytes = get_u32(bytes.data() + at);
    const uint64_t seq = get_u64(bytes.data() + at + 4);
    const uint64_t hash = get_u64(bytes.data() + at + 12);
    if (seq == 0 || bytes.size() - at - kHeaderBytes < payload_bytes) return std::nullopt;
    const std::string_view payload = bytes.substr(at + kHeaderBytes, payload_bytes);
    if (XXH3_64bits_withSeed(payload.data(), payload.size(), seq) != hash) return std::nullopt;
    return LoggedRecord{seq, payload};
}

struct ParsedFile {
    std::vector<LoggedRecord> records;  // the head of the file, each continuing the one before
    size_t end = 0;                     // the byte after the last of them
};

// The records at the head of a file that continue each other's numbers.
ParsedFile parse_file(std::string_view bytes) {
    ParsedFile parsed;
    for (;;) {
        const std::optional<LoggedRecord> r = whole_record_at(bytes, parsed.end);
        if (!r || (!parsed.records.empty() && r->seq != parsed.records.back().seq + 1)) break;
        parsed.records.push_back(*r);
        parsed.end += kHeaderBytes + r->payload.size();
    }
    return parsed;
}

struct LaterRecord {
    size_t at = 0;
    uint64_t seq = 0;
};

// The first whole record after byte `from` numbered above `above`: one the log
// was written with after the damaged bytes at `from`, so those are not the torn
// end of a crash (nothing follows that but zeros and an older cycle's records,
// numbered lower). Every offset is tried, as damage may have changed a length;
// what cannot be a later record by its number, or does not parse as a batch,
// is passed over without hashing (hashing every run of bytes that looked like
// a header made a start after a kill take 4.7 s instead of 0.5-0.9 s, 58 MB).
std::optional<LaterRecord> later_record(std::string_view bytes, size_t from, uint64_t above) {
    const uint64_t most = above + bytes.size() / kHeaderBytes;
    for (size_t at = from + 1; at + kHeaderBytes <= bytes.size(); ++at) {
        const uint64_t seq = get_u64(bytes.data() + at + 4);
        if (seq <= above || seq > most) continue;
        const uint32_t payload_bytes = get_u32(bytes.data() + at);
        if (payload_bytes == 0 || bytes.size() - at - kHeaderBytes < payload_bytes ||
            !walk_payload(bytes.substr(at + kHeaderBytes, payload_bytes),
                          [](Space, std::string_view, std::optional<std::string_view>) {}))
            continue;
        if (std::optional<LoggedRecord> r = whole_record_at(bytes, at)) return LaterRecord{at, seq};
    }
    return std::nullopt;
}

Result<std::string> read_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return std::string();
        return io_error("open " + path, errno);
    }
    std::string bytes;
    char buffer[1 << 16];
    for (;;) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int err = errno;
            ::close(fd);
            return io_error("read " + path, err);
        }
        if (n == 0) break;
        bytes.append(buffer, static_cast<size_t>(n));
    }
    ::close(fd);
    return bytes;
}

Status sync_directory(const std::string& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return io_error("open " + dir, errno);
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    return rc == 0 ? Status{} : io_error("fsync " + dir, err);
}

// Memory from malloc (or aligned_alloc), freed with free.
struct FreeBytes {
    void operator()(char* bytes) const { std::free(bytes); }
};
using Bytes = std::unique_ptr<char[], FreeBytes>;

Bytes allocate_bytes(size_t size) {
    auto* bytes = static_cast<char*>(std::malloc(size));
    if (bytes == nullptr) throw std::bad_alloc();
    return Bytes(bytes);
}

// Chunks of memory for the memtables' keys and values (Arena), kept between
// memtables: a memtable's bytes are freed all at once when its checkpoint
// ends, and the next one would otherwise fault the same amount of fresh
// pages in again (docs/BENCHMARKS.md, issue 14, fortieth step). Keeps at most
// `keep_chunks` free chunks; shared by a store's memtables (the writer takes,
// the checkpointer gives back), so it has a mutex of its own, taken after mu_.
class ChunkPool {
  public:
    // Chunks of a huge page's size are aligned to it and advised as huge
    // pages (a hint: the kernel may not have one), so that filling one faults
    // once, not 512 times: a page fault is a costly exit on a virtual machine.
    static constexpr size_t kHugePageBytes = size_t{2} << 20;

    ChunkPool(size_t chunk_bytes, size_t keep_chunks)
        : chunk_bytes_(chunk_bytes), keep_chunks_(keep_chunks) {
        free_.reserve(keep_chunks_);  // give() never allocates (Arena's moves are noexcept)
    }
    size_t chunk_bytes() const { return chunk_bytes_; }
    Bytes take() {
        {
            std::lock_guard lock(mu_);
            if (!free_.empty()) {
                Bytes chunk = std::move(free_.back());
                free_.pop_back();
                return chunk;
            }
        }
        if (chunk_bytes_ != kHugePageBytes) return allocate_bytes(chunk_bytes_);
        auto* bytes = static_cast<char*>(std::aligned_alloc(kHugePageBytes, kHugePageBytes));
        if (bytes == nullptr) throw std::bad_alloc();
        (void)::madvise(bytes, kHugePageBytes, MADV_HUGEPAGE);
        return Bytes(bytes);
    }
    // Takes the chunk back, or frees it when the pool holds enough.
    void give(Bytes chunk) {
        std::lock_guard lock(mu_);
        if (free_.size() < keep_chunks_) free_.push_back(std::move(chunk));
    }

  private:
    const size_t chunk_bytes_;
    const size_t keep_chunks_;
    std::mutex mu_;
    std::vector<Bytes> free_;
};

// The bytes of one memtable's keys and values, appended and never moved or
// freed one by one: a write the commit thread puts in the memtable costs a
// copy and no allocation (its two mallocs a write, most of them faulting
// fresh pages in, were a fifth of the commit thread's time), and the
// checkpointer hands views of them to LMDB. A key written again gets new
// bytes; the old ones stay until the memtable is cleared, so an arena holds
// about what its log file holds (up to checkpoint_bytes, below).
class Arena {
  public:
    explicit Arena(ChunkPool* pool = nullptr) : pool_(pool) {}
    Arena(Arena&& other) noexcept { *this = std::move(other); }
    Arena& operator=(Arena&& other) noexcept {
        if (this == &other) return *this;
        clear();
        pool_ = other.pool_;
        chunks_ = std::move(other.chunks_);
        next_ = std::exchange(other.next_, nullptr);
        left_ = std::exchange(other.left_, 0);
        other.chunks_.clear();
        return *this;
    }
    ~Arena() { clear(); }

    std::string_view copy(std::string_view bytes) {
        static constexpr char kNoBytes = '\0';
        if (bytes.empty()) return {&kNoBytes, 0};  // never null: LMDB is given it
        if (bytes.size() > left_) {
            const size_t chunk_bytes = pool_ != nullptr ? pool_->chunk_bytes() : kOwnChunkBytes;
            if (bytes.size() > chunk_bytes / 16) {
                // A large value gets a block of its own, so that the rest of
                // the current chunk is not wasted.
                chunks_.push_back(Chunk{allocate_bytes(bytes.size()), false});
                std::memcpy(chunks_.back().bytes.get(), bytes.data(), bytes.size());
                return {chunks_.back().bytes.get(), bytes.size()};
            }
            chunks_.push_back(Chunk{pool_ != nullptr ? pool_->take() : allocate_bytes(chunk_bytes),
                                    pool_ != nullptr});
            next_ = chunks_.back().bytes.get();
            left_ = chunk_bytes;
        }
        char* at = next_;
        std::memcpy(at, bytes.data(), bytes.size());
        next_ += bytes.size();
        left_ -= bytes.size();
        return {at, bytes.size()};
    }

    void clear() {
        for (Chunk& chunk : chunks_) {
            if (chunk.pooled) pool_->give(std::move(chunk.bytes));
        }
        chunks_.clear();
        next_ = nullptr;
        left_ = 0;
    }

  private:
    static constexpr size_t kOwnChunkBytes = size_t{64} << 10;  // without a pool (replay)
    struct Chunk {
        Bytes bytes;
        bool pooled = false;  // a pool's chunk, given back to it
    };
    ChunkPool* pool_ = nullptr;
    std::vector<Chunk> chunks_;
    char* next_ = nullptr;  // the free end of the last pooled chunk
    size_t left_ = 0;       // bytes free there
};

// A memtable: the writes of one log file. Every put reads its key's record
// (the object with its anti-entropy entry) and writes it, on each replica, so point
// reads and writes go through an open-addressing hash index over entries that
// are only ever appended (a key written again is assigned in place, its new
// bytes in the arena). Key order is built only when asked for: scans sort what
// was appended since the last scan and merge it into the order they keep
// (under the store's mutex); a checkpoint sorts its own copy. The std::map
// plus hash index this replaces cost three allocations and a ~17-level tree
// walk of string compares per new key (docs/BENCHMARKS.md, "Issue 14, fifth
// step"). The index is never iterated, so its order cannot leak into anything.
class Memtable {
  public:
    struct Entry {
        Space space;
        bool present;            // false: erased here
        std::string_view key;    // in the arena
        std::string_view value;  // in the arena, when present
        uint64_t hash;
        std::optional<std::string_view> value_or_erased() const {
            return present ? std::optional<std::string_view>(value) : std::nullopt;
        }
    };

    // Keys in `order`, the base store's (StoreOrder), so scans merge the two.
    Memtable(ChunkPool* pool, StoreOrder order) : key_order_(order), arena_(pool) {
        assert(order.prefix_bytes >= kSortPrefixKeyBytes || order.hashed_key_bytes == SIZE_MAX);
    }
    // A moved-from table is empty (freeze() and the checkpointer move one).
    Memtable(Memtable&& other) noexcept { *this = std::move(other); }
    Memtable& operator=(Memtable&& other) noexcept {
        if (this == &other) return *this;
        chunks_ = std::move(other.chunks_);
        size_ = std::exchange(other.size_, 0);
        slots_ = std::move(other.slots_);
        order_ = std::move(other.order_);
        key_order_ = other.key_order_;
        arena_ = std::move(other.arena_);
        other.clear();
        return *this;
    }

    // The key's entry, or null if none is; `hash` is hash_of(space, key),
    // the same for every memtable. Its views live until the memtable is
    // cleared or the key written again here.
    const Entry* find(Space space, std::string_view key, uint64_t hash) const {
        const uint32_t at = slot_of(space, key, hash);
        return slots_.empty() || slots_[at] == 0 ? nullptr : &entry(entry_of(slots_[at]));
    }
    static uint64_t hash_of(Space space, std::string_view key) {
        return XXH3_64bits_withSeed(key.data(), key.size(), static_cast<uint64_t>(space));
    }

    // `value` nullopt: the key is erased here.
    void insert_or_assign(Space space, std::string_view key,
                          std::optional<std::string_view> value) {
        if ((size_ + 1) * 2 > slots_.size()) grow();
        const uint64_t hash = hash_of(space, key);
        const uint32_t at = slot_of(space, key, hash);
        const std::string_view held = value ? arena_.copy(*value) : std::string_view();
        if (slots_[at] != 0) {
            Entry& e = entry(entry_of(slots_[at]));
            e.present = value.has_value();
            e.value = held;
            return;
        }
        if (size_ == chunks_.size() << kChunkShift) {
            chunks_.push_back(std::make_unique<Entry[]>(size_t{1} << kChunkShift));
        }
        entry(size_) = Entry{space, value.has_value(), arena_.copy(key), held, hash};
        slots_[at] = slot_value(size_, hash);
        ++size_;
    }

    bool empty() const { return size_ == 0; }
    size_t size() const { return size_; }
    void clear() {
        chunks_.clear();
        size_ = 0;
        slots_.clear();
        order_.clear();
        arena_.clear();
    }

    // Visits the entries of `space` from `from` (or after it, with
    // `exclusive`) in key order while `visit` returns true. Updates the kept
    // order, so callers hold the store's mutex.
    template <typename Visit>
    void visit_in_order(Space space, std::string_view from, bool exclusive, Visit&& visit) const {
        if (order_.size() < size_) extend_order();
        auto it = exclusive ? std::upper_bound(order_.begin(), order_.end(), from,
                                               [&](std::string_view b, uint32_t e) {
                                                   return key_order_.less(space, b, entry(e).space,
                                                                          entry(e).key);
                                               })
                            : std::lower_bound(order_.begin(), order_.end(), from,
                                               [&](uint32_t e, std::string_view b) {
                                                   return key_order_.less(entry(e).space,
                                                                          entry(e).key, space, b);
                                               });
        for (; it != order_.end() && entry(*it).space == space; ++it) {
            if (!visit(entry(*it))) return;
        }
    }

    // Every entry, in key order, without touching the kept order: for the
    // checkpointer, which reads a frozen memtable without the mutex while
    // scans may update that order under it. Each pointer is sorted by its
    // entry's SortPrefix held beside it, and the entries are read only where
    // those tie: sorting bare pointers read two entries a comparison, each a
    // likely cache miss, and was a sixth of the checkpointer's time
    // (docs/BENCHMARKS.md, issue 14, eighteenth step).
    std::vector<const Entry*> sorted_entries() const {
        struct Keyed {
            SortPrefix prefix;
            const Entry* entry;
        };
        std::vector<Keyed> keyed;
        keyed.reserve(size_);
        for (size_t i = 0; i < size_; ++i) {
            const Entry& e = entry(i);
            keyed.push_back(Keyed{sort_prefix(e.space, e.key), &e});
        }
        // The prefix orders as key_order_ does: it is shorter than the bytes
        // that order keeps in byte order.
        std::sort(keyed.begin(), keyed.end(), [this](const Keyed& a, const Keyed& b) {
            if (a.prefix != b.prefix) return a.prefix < b.prefix;
            return before(*a.entry, *b.entry);
        });
        std::vector<const Entry*> out;
        out.reserve(keyed.size());
        for (const Keyed& k : keyed) out.push_back(k.entry);
        return out;
    }

  private:
    // Puts the entries added since the last call into order_. Scans come a page
    // at a time (2,048 keys for anti-entropy) while puts go on, so a call
    // usually has a few new entries against a long order: each is then placed
    // by binary search, moving the order's tail once (memmove of 4-byte
    // indexes), not merged by comparing every key.
    void extend_order() const {
        const size_t sorted = order_.size();
        const auto less = [this](uint32_t a, uint32_t b) { return before(entry(a), entry(b)); };
        std::vector<uint32_t> added;
        added.reserve(size_ - sorted);
        for (size_t i = sorted; i < size_; ++i) added.push_back(static_cast<uint32_t>(i));
        std::sort(added.begin(), added.end(), less);
        order_.resize(size_);
        size_t unplaced = sorted;    // order_[0, unplaced) not yet moved
        size_t out = order_.size();  // order_[out, size) final
        const bool search = added.size() * std::bit_width(sorted) < sorted;
        for (size_t k = added.size(); k-- > 0;) {
            // The old entries after added[k] go right of it.
            size_t from = unplaced;
            if (search) {
                from = static_cast<size_t>(
                    std::upper_bound(order_.begin(),
                                     order_.begin() + static_cast<std::ptrdiff_t>(unplaced),
                                     added[k], less) -
                    order_.begin());
            } else {
                while (from > 0 && less(added[k], order_[from - 1])) --from;
            }
            const size_t moved = unplaced - from;
            std::copy_backward(order_.begin() + static_cast<std::ptrdiff_t>(from),
                               order_.begin() + static_cast<std::ptrdiff_t>(unplaced),
                               order_.begin() + static_cast<std::ptrdiff_t>(out));
            out -= moved;
            unplaced = from;
            order_[--out] = added[k];
        }
    }

    bool before(const Entry& a, const Entry& b) const {
        return key_order_.less(a.space, a.key, b.space, b.key);
    }
    // A slot holds 1 + the entry's index in its low 32 bits (0: empty) and
    // the top 32 bits of the entry's hash above them, so a probe passes
    // entries of other keys without touching them: each touch is a likely
    // cache miss into the entries, and most probes are for keys absent from
    // this memtable (every read and put looks in both memtables).
    static uint64_t slot_value(size_t entry, uint64_t hash) {
        return (hash & ~uint64_t{0xffffffff}) | static_cast<uint32_t>(entry + 1);
    }
    static size_t entry_of(uint64_t slot) { return static_cast<uint32_t>(slot) - size_t{1}; }
    // The slot holding the key, or the empty slot where it would go (linear
    // probing; slots_ is a power of two, at most half full).
    uint32_t slot_of(Space space, std::string_view key, uint64_t hash) const {
        if (slots_.empty()) return 0;
        const size_t mask = slots_.size() - 1;
        const uint64_t tag = hash & ~uint64_t{0xffffffff};
        for (size_t at = hash & mask;; at = (at + 1) & mask) {
            const uint64_t held = slots_[at];
            if (held == 0) return static_cast<uint32_t>(at);
            if ((held & ~uint64_t{0xffffffff}) != tag) continue;
            const Entry& e = entry(entry_of(held));
            if (e.hash == hash && e.space == space && e.key == key)
                return static_cast<uint32_t>(at);
        }
    }
    void grow() {
        std::vector<uint64_t> slots(std::max<size_t>(64, slots_.size() * 2), 0);
        const size_t mask = slots.size() - 1;
        for (size_t i = 0; i < size_; ++i) {
            size_t at = entry(i).hash & mask;
            while (slots[at] != 0) at = (at + 1) & mask;
            slots[at] = slot_value(i, entry(i).hash);
        }
        slots_ = std::move(slots);
    }

    // The entries, in order of first write, never removed or moved: entry i
    // is chunks_[i >> kChunkShift][i & mask]. A std::deque held five to a
    // block, so a probe that reached an entry first read the deque's block
    // map, itself a cache miss in a table of 100,000 keys (a fifth of slot_of's
    // samples under gets; docs/BENCHMARKS.md, issue 14, thirty-fourth step);
    // a chunk holds 1,024, and the chunk list stays in cache.
    static constexpr unsigned kChunkShift = 10;
    Entry& entry(size_t i) {
        return chunks_[i >> kChunkShift][i & ((size_t{1} << kChunkShift) - 1)];
    }
    const Entry& entry(size_t i) const {
        return chunks_[i >> kChunkShift][i & ((size_t{1} << kChunkShift) - 1)];
    }
    std::vector<std::unique_ptr<Entry[]>> chunks_;
    size_t size_ = 0;                      // entries held
    std::vector<uint64_t> slots_;          // slot_value(), 0: empty
    mutable std::vector<uint32_t> order_;  // indexes of the entries in key order (a prefix of them)
    StoreOrder key_order_;                 // the base store's
    Arena arena_;                          // the entries' keys and values
};

class LoggedStore final : public Store {
  public:
    LoggedStore(std::unique_ptr<Store> base, std::string dir, const LmdbOptions& options)
        : base_(std::move(base)),
          dir_(std::move(dir)),
          sync_(options.sync),
          checkpoint_bytes_(options.wal_checkpoint_bytes),
          checkpoint_step_bytes_(std::max<uint64_t>(options.wal_checkpoint_step_bytes, 1)),
          discard_damaged_(options.wal_discard_damaged),
          refused_damaged_log_(options.refused_damaged_log),
          log_(options.log ? options.log : [](const std::string&) {}) {}

    LoggedStore(const LoggedStore&) = delete;
    LoggedStore& operator=(const LoggedStore&) = delete;

    ~LoggedStore() override {
        if (checkpointer_.joinable()) {
            {
                std::lock_guard lock(mu_);
                stopping_ = true;
            }
            cv_.notify_all();
            checkpointer_.join();  // after any pending checkpoint
        }
        // A clean close leaves nothing to replay (best effort: the log still
        // holds whatever this fails to apply).
        if (checkpoint_error_.ok() && !active_.empty()) {
            const std::string applied = encode_seq(next_seq_ - 1);
            (void)base_->write_views(checkpoint_batch(active_, applied));
        }
        for (int fd : fds_) {
            if (fd >= 0) ::close(fd);
        }
    }

    // Replays the log into the base, opens the files, starts the checkpointer.
    Status start() {
        Result<std::optional<std::string>> applied_value = base_->get(Space::store, kWalAppliedKey);
        if (!applied_value) return applied_value.status();
        uint64_t applied = 0;
        if (applied_value->has_value()) {
            if (applied_value->value().size() != 8) {
                return {ErrorCode::storage_error, "wal: corrupt applied sequence number"};
            }
            applied = get_u64(applied_value->value().data());
        }
        std::array<std::string, 2> contents;
        std::array<ParsedFile, 2> parsed;
        std::vector<LoggedRecord> pending;
        uint64_t highest = applied;  // numbers above this after a file's head: damage
        for (size_t i = 0; i < kWalFiles.size(); ++i) {
            Result<std::string> bytes = read_file(path(i));
            if (!bytes) return bytes.status();
            contents[i] = std::move(bytes.value());
            parsed[i] = parse_file(contents[i]);
            for (const LoggedRecord& r : parsed[i].records) {
                if (r.seq > applied) pending.push_back(r);
                highest = std::max(highest, r.seq);
            }
        }
        // Damage: the log holds records (each possibly acknowledged) that
        // replay cannot reach. Refused unless the operator chose to lose them.
        // A whole record may follow a torn one when both were in flight at
        // the crash (kUnsyncedRecords): dropped, as neither was acknowledged.
        std::string damage;
        bool dropped_unsynced = false;
        for (size_t i = 0; i < kWalFiles.size() && damage.empty(); ++i) {
            const uint64_t unsynced_after_torn = highest + kUnsyncedRecords;
            std::optional<LaterRecord> later = later_record(contents[i], parsed[i].end, highest);
            while (later && later->seq == unsynced_after_torn) {
                dropped_unsynced = true;
                later = later_record(contents[i], later->at, highest);
            }
            if (later) {
                damage = path(i) + " is damaged at byte " + std::to_string(parsed[i].end) +
                         ", yet whole records follow (record " + std::to_string(later->seq) +
                         " at byte " + std::to_string(later->at) + ")";
            }
        }
        std::sort(pending.begin(), pending.end(),
                  [](const LoggedRecord& a, const LoggedRecord& b) { return a.seq < b.seq; });
        uint64_t last = applied;
        Memtable replayed(nullptr, base_->order());
        for (const LoggedRecord& r : pending) {
            if (r.seq != last + 1) {
                if (damage.empty()) {
                    damage = "records " + std::to_string(last + 1) + " to " +
                             std::to_string(r.seq - 1) + " are missing from " + dir_;
                }
                break;
            }
            Result<std::vector<StoreWrite>> batch = decode_payload(r.payload);
            if (!batch) return batch.status();
            for (StoreWrite& w : batch.value()) {
                replayed.insert_or_assign(w.space, w.key, value_view(w.value));
            }
            last = r.seq;
        }
        if (!damage.empty()) {
            if (!discard_damaged_) {
                if (refused_damaged_log_ != nullptr) *refused_damaged_log_ = true;
                return {ErrorCode::storage_error,
                        "wal: " + damage +
                            ": acknowledged writes would be lost. Restore the data directory, or "
                            "start once with --wal-discard-damaged to keep the records up to " +
                            std::to_string(last) + " and lose the rest (replicas repair them)"};
            }
            log_("wal: " + damage + ": discarding every record after " + std::to_string(last) +
                 " (--wal-discard-damaged)");
        }
        if (last > applied) {
            const std::string applied_bytes = encode_seq(last);
            Status s = base_->write_views(checkpoint_batch(replayed, applied_bytes));
            if (!s.ok()) return s;
        }
        if (dropped_unsynced && damage.empty()) {
            log_("wal: dropped record " + std::to_string(highest + kUnsyncedRecords) +
                 ", whole after the torn record " + std::to_string(highest + 1) +
                 " (both unsynced at a crash, neither acknowledged)");
        }
        if (!damage.empty()) {
            // The node refills before it serves replica reads (Node::start);
            // written before the files are emptied, so a crash between the two
            // refuses the next open again instead of losing the mark.
            Status marked = base_->write(
                {StoreWrite{Space::meta, std::string(meta::kLostWritesKey),
                            damage + "; records after " + std::to_string(last) + " dropped"}});
            if (!marked.ok()) return marked;
        }
        if (!damage.empty() || dropped_unsynced) {
            // LMDB holds every record kept: the files are emptied so that
            // records dropped now, numbered as the ones written next will be,
            // can never be read back as part of the log.
            for (size_t i = 0; i < kWalFiles.size(); ++i) {
                if (Status s = empty_file(path(i)); !s.ok()) return s;
            }
        }
        next_seq_ = last + 1;
        bool created = false;
        for (size_t i = 0; i < kWalFiles.size(); ++i) {
            created |= !std::filesystem::exists(path(i));
            fds_[i] = ::open(path(i).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
            if (fds_[i] < 0) return io_error("open " + path(i), errno);
            struct stat st {};
            if (::fstat(fds_[i], &st) != 0) return io_error("stat " + path(i), errno);
            written_bytes_[i] = static_cast<uint64_t>(st.st_size);
        }
        if (created && sync_) {
            // The files' names must survive a machine crash with what they hold.
            Status s = sync_directory(dir_);
            if (!s.ok()) return s;
        }
        checkpointer_ = std::thread([this] { checkpoint_loop(); });
        return {};
    }

    Result<std::optional<std::string>> get(Space space, std::string_view key) const override {
        {
            const uint64_t hash = Memtable::hash_of(space, key);
            std::lock_guard lock(mu_);
            for (const Memtable* table : {&active_, &frozen_}) {
                if (const Memtable::Entry* held = table->find(space, key, hash)) {
                    return held->present ? std::optional<std::string>(held->value) : std::nullopt;
                }
            }
        }
        return base_->get(space, key);
    }

    Status write(const std::vector<StoreWrite>& batch) override {
        Result<uint64_t> ticket = append(batch);
        if (!ticket) return ticket.status();
        return make_durable(ticket.value());
    }

    // Writes the batch's record after the last one, unsynced: the writer may
    // append the next batch while this one's sync runs (make_durable), and
    // two syncs in flight on one file overlap as on two files (docs/
    // BENCHMARKS.md, issue 14, twenty-ninth step). Recovery allows for that:
    // the last two records may be torn, or the second whole after a torn
    // first (start()).
    Result<uint64_t> append(const std::vector<StoreWrite>& batch) override {
        for (const StoreWrite& w : batch) {
            if (w.key.empty()) return Status{ErrorCode::invalid_argument, "store: empty key"};
            if (w.key.size() > UINT32_MAX || (w.value && w.value->size() > UINT32_MAX)) {
                return Status{ErrorCode::invalid_argument, "store: key or value too long"};
            }
        }
        const bool freezing = offset_ >= checkpoint_bytes_;
        {
            std::unique_lock lock(mu_);
            if (!checkpoint_error_.ok()) return checkpoint_error_;
            if (!write_error_.ok()) return write_error_;
            if (batch.empty()) return uint64_t{0};
            // Recovery allows for kUnsyncedRecords records written and not
            // synced, in one file: so this one waits while that many are in
            // flight (a writer deeper than that waits here instead of leaving
            // a log that refuses to open), and a freeze waits for all of them,
            // which also puts every record of the frozen file in the frozen
            // memtable.
            const size_t most_in_flight = freezing ? 0 : kUnsyncedRecords - 1;
            appender_waiting_ = true;
            published_.wait(
                lock, [&] { return in_flight_.size() <= most_in_flight || !write_error_.ok(); });
            appender_waiting_ = false;
            if (!write_error_.ok()) return write_error_;
        }
        // Freezing before logging, so a failed checkpoint fails this write
        // before any of it is logged.
        if (freezing) {
            if (Status s = freeze(); !s.ok()) return s;
        }
        record_.clear();
        encode_record(next_seq_, batch, record_);
        if (Status s = append_bytes(record_); !s.ok()) return s;  // offset_, next_seq_ unchanged
        offset_ += record_.size();
        const uint64_t seq = next_seq_++;
        std::lock_guard lock(mu_);
        in_flight_.push_back(InFlight{seq, active_file_, &batch});
        return seq;
    }

    // Syncs the ticket's record, then, once every record before it is
    // readable, puts its writes in the memtable.
    Status make_durable(uint64_t seq) override {
        if (seq == 0) return {};
        size_t file = 0;
        {
            std::lock_guard lock(mu_);
            file = in_flight(seq).file;
        }
        Status synced;
        if (sync_ && ::fdatasync(fds_[file]) != 0)
            synced = io_error("fdatasync " + path(file), errno);
        std::unique_lock lock(mu_);
        published_.wait(lock, [&] { return in_flight_.front().seq == seq || !write_error_.ok(); });
        if (write_error_.ok() && !synced.ok()) write_error_ = synced;
        if (write_error_.ok()) {
            for (const StoreWrite& w : *in_flight(seq).batch) {
                active_.insert_or_assign(w.space, w.key, value_view(w.value));
            }
        }
        std::erase_if(in_flight_, [&](const InFlight& f) { return f.seq == seq; });
        const bool others_wait = !in_flight_.empty() || appender_waiting_ || !write_error_.ok();
        lock.unlock();
        if (others_wait) published_.notify_all();
        return write_error_;
    }

    Status scan(
        Space space, std::string_view from, size_t limit,
        const std::function<bool(std::string_view, std::string_view)>& visit) const override {
        // The base's records and the memtables' merged in store order, a round
        // at a time. A round copies a chunk of each (store.h: at most
        // kScanFirstChunkKeys the first round, twice as many each next one,
        // never more than the scan may still visit), so a visitor that stops
        // early costs about what it visited: the memtables may hold every key
        // written since the last checkpoint. A round decides the keys up to
        // the lower of its chunks' last keys (a stream that ended bounds
        // nothing), and the next takes both streams up after that key: one
        // cursor, so a key a checkpoint moved from the memtables into the base
        // between rounds is not visited twice. A checkpoint that drops frozen_
        // between a round's base scan and its memtables' copy could hide keys
        // from both, so the round is then read again.
        std::optional<std::string> decided_through;  // every key up to it: visited or erased
        size_t visited = 0;
        size_t chunk_keys = kScanFirstChunkKeys;
        while (visited < limit) {
            const size_t chunk = std::min(limit - visited, chunk_keys);
            chunk_keys = chunk_keys <= limit / 2 ? chunk_keys * 2 : limit;
            // From a stored key the base starts at it (store.h): one more, dropped.
            const size_t wanted = chunk + (decided_through ? 1 : 0);
            std::vector<std::pair<std::string, std::string>> stored;
            std::vector<std::pair<std::string, std::optional<std::string>>> overlay;
            bool overlay_full = false;
            for (;;) {
                const uint64_t cleared = checkpoints_cleared();
                stored.clear();
                Status s = base_->scan(space, decided_through ? *decided_through : from, wanted,
                                       [&](std::string_view k, std::string_view v) {
                                           stored.emplace_back(k, v);
                                           return true;
                                       });
                if (!s.ok()) return s;
                std::lock_guard lock(mu_);
                if (cleared != checkpoints_cleared_) continue;
                overlay = overlay_range(space, from, decided_through, chunk, &overlay_full);
                break;
            }
            scan_copies_.fetch_add(stored.size() + overlay.size(), std::memory_order_relaxed);
            const StoreOrder order = base_->order();
            const auto before = [&order](std::string_view a, std::string_view b) {
                return order.less(a, b);
            };
            const bool stored_full = stored.size() == wanted;
            if (decided_through && !stored.empty() && stored.front().first == *decided_through) {
                stored.erase(stored.begin());  // decided in the last round
            }
            // The round's last key: beyond it either chunk may lack keys.
            std::optional<std::string> bound;
            if (stored_full) bound = stored.back().first;
            if (overlay_full && (!bound || before(overlay.back().first, *bound))) {
                bound = overlay.back().first;
            }
            size_t i = 0, j = 0;
            while (visited < limit) {
                const bool have_stored =
                    i < stored.size() && (!bound || !before(*bound, stored[i].first));
                const bool have_overlay =
                    j < overlay.size() && (!bound || !before(*bound, overlay[j].first));
                if (!have_stored && !have_overlay) break;
                std::string_view key;
                std::optional<std::string_view> value;
                if (have_overlay && (!have_stored || !before(stored[i].first, overlay[j].first))) {
                    if (have_stored && overlay[j].first == stored[i].first) ++i;
                    key = overlay[j].first;
                    if (overlay[j].second) value = *overlay[j].second;
                    ++j;
                } else {
                    key = stored[i].first;
                    value = stored[i].second;
                    ++i;
                }
                if (!value) continue;  // erased in the log
                ++visited;
                if (!visit(key, *value)) return {};
            }
            if (!bound) break;  // both streams ended within the round
            decided_through = std::move(*bound);
        }
        return {};
    }

    uint64_t scan_copies() const { return scan_copies_.load(std::memory_order_relaxed); }

    StoreOrder order() const override { return base_->order(); }

    Result<uint64_t> count(Space space) const override {
        for (;;) {
            std::vector<std::pair<std::string, bool>> logged;  // key, present
            uint64_t cleared = 0;
            {
                std::unique_lock lock(mu_);
                // The base's count and lookups must see the same snapshot: not
                // across a checkpoint's commit.
                cv_.wait(lock, [&] { return !checkpointing_; });
                cleared = checkpoints_cleared_;
                bool more = false;
                for (auto& [key, value] : overlay_range(space, "", std::nullopt, SIZE_MAX, &more)) {
                    logged.emplace_back(std::move(key), value.has_value());
                }
            }
            Result<uint64_t> n = base_->count(space);
            if (!n) return n;
            int64_t delta = 0;
            for (const auto& [key, present] : logged) {
                Result<std::optional<std::string>> stored = base_->get(space, key);
                if (!stored) return stored.status();
                if (present && !stored->has_value()) ++delta;
                if (!present && stored->has_value()) --delta;
            }
            std::lock_guard lock(mu_);
            if (cleared == checkpoints_cleared_ && !checkpointing_) {
                return static_cast<uint64_t>(static_cast<int64_t>(n.value()) + delta);
            }
        }
    }

  private:
    std::string path(size_t i) const { return dir_ + "/" + kWalFiles[i]; }

    struct InFlight {
        uint64_t seq = 0;
        size_t file = 0;
        const std::vector<StoreWrite>* batch = nullptr;
    };

    // Under mu_; `seq` was appended and is not yet readable.
    InFlight& in_flight(uint64_t seq) {
        auto it = std::find_if(in_flight_.begin(), in_flight_.end(),
                               [&](const InFlight& f) { return f.seq == seq; });
        assert(it != in_flight_.end());
        return *it;
    }

    Status empty_file(const std::string& file) const {
        const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0) return errno == ENOENT ? Status{} : io_error("open " + file, errno);
        Status s;
        if (::ftruncate(fd, 0) != 0) {
            s = io_error("truncate " + file, errno);
        } else if (::fsync(fd) != 0) {
            s = io_error("fsync " + file, errno);
        }
        ::close(fd);
        return s;
    }

    uint64_t checkpoints_cleared() const {
        std::lock_guard lock(mu_);
        return checkpoints_cleared_;
    }

    // The memtables' first max_entries entries of `space` from `from` (or
    // after `after`), frozen_ overridden by active_; `more` says whether
    // there are further ones. Under mu_.
    std::vector<std::pair<std::string, std::optional<std::string>>> overlay_range(
        Space space, std::string_view from, const std::optional<std::string>& after,
        size_t max_entries, bool* more) const {
        // The union's first max_entries keys are each among the first
        // max_entries of every table that holds it; one more a table tells
        // whether the union goes on.
        const size_t per_table = max_entries == SIZE_MAX ? SIZE_MAX : max_entries + 1;
        const StoreOrder order = base_->order();
        const auto before = [&order](const std::string& a, const std::string& b) {
            return order.less(a, b);
        };
        std::map<std::string, std::optional<std::string>, decltype(before)> merged(before);
        for (const Memtable* memtable : {&frozen_, &active_}) {
            size_t taken = 0;
            memtable->visit_in_order(
                space, after ? std::string_view(*after) : from, after.has_value(),
                [&](const Memtable::Entry& e) {
                    merged.insert_or_assign(
                        std::string(e.key),
                        e.present ? std::optional<std::string>(e.value) : std::nullopt);
                    return ++taken < per_table;
                });
        }
        *more = merged.size() > max_entries;
        auto end = merged.begin();
        std::advance(end, std::min(merged.size(), max_entries));
        return {std::make_move_iterator(merged.begin()), std::make_move_iterator(end)};
    }

    // The table's writes in key order, then the applied sequence number
    // (`applied`, encode_seq() of the table's last record): views of the
    // table's bytes, valid while it is not cleared or written.
    static std::vector<StoreWriteView> checkpoint_batch(const Memtable& table,
                                                        const std::string& applied) {
        std::vector<StoreWriteView> batch;
        batch.reserve(table.size() + 1);
        for (const Memtable::Entry* e : table.sorted_entries())
            batch.push_back(StoreWriteView{e->space, e->key, e->value_or_erased()});
        batch.push_back(StoreWriteView{Space::store, kWalAppliedKey, applied});
        return batch;
    }

    Status write_at(int fd, const char* bytes, size_t size, uint64_t at) {
        size_t done = 0;
        while (done < size) {
            const ssize_t n =
                ::pwrite(fd, bytes + done, size - done, static_cast<off_t>(at + done));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return io_error("write " + path(active_file_), errno);
            done += static_cast<size_t>(n);
        }
        return {};
    }

    // Writes `bytes` at offset_ (make_durable() syncs them). A record that
    // would pass the file's written end first extends the file with zeros,
    // kZeroFillBytes beyond the record, in the same sync: fdatasync after an
    // append must also write the file's new size (the inode, or a journal
    // commit; 2-4x the sync's cost, docs/ARCHITECTURE.md), while over blocks
    // already written it only writes the data. Zeros read as the end of the
    // log (a zero sequence number), so recovery is unchanged.
    Status append_bytes(const std::string& bytes) {
        const int fd = fds_[active_file_];
        const uint64_t end = offset_ + bytes.size();
        if (Status s = write_at(fd, bytes.data(), bytes.size(), offset_); !s.ok()) return s;
        uint64_t& written_end = written_bytes_[active_file_];
        if (end > written_end) {
            const uint64_t from = end;
            const uint64_t to = end + kZeroFillBytes;
            static const std::string zeros(64 * 1024, '\0');
            for (uint64_t at = from; at < to; at += zeros.size()) {
                const size_t n = static_cast<size_t>(std::min<uint64_t>(zeros.size(), to - at));
                if (Status s = write_at(fd, zeros.data(), n, at); !s.ok()) return s;
            }
            written_end = to;
        }
        return {};
    }

    // The active writes become frozen_ for the checkpointer; the other file,
    // whose writes the last checkpoint applied, becomes active from offset 0.
    Status freeze() {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return !frozen_pending_ || !checkpoint_error_.ok(); });
        if (!checkpoint_error_.ok()) return checkpoint_error_;
        frozen_ = std::move(active_);
        active_.clear();
        frozen_last_seq_ = next_seq_ - 1;
        frozen_pending_ = true;
        lock.unlock();
        cv_.notify_all();
        active_file_ ^= 1;
        offset_ = 0;
        return {};
    }

    void checkpoint_loop() {
        ::pthread_setname_np(::pthread_self(), "kv-checkpoint");
        lower_priority();
        std::unique_lock lock(mu_);
        for (;;) {
            cv_.wait(lock, [&] { return frozen_pending_ || stopping_; });
            if (!frozen_pending_) return;
            checkpointing_ = true;
            lock.unlock();
            // frozen_ does not change while pending: read without the lock.
            const std::string applied_seq = encode_seq(frozen_last_seq_);
            Status s = apply_in_steps(checkpoint_batch(frozen_, applied_seq));
            lock.lock();
            checkpointing_ = false;
            if (!s.ok()) {
                checkpoint_error_ = Status(s.code(), "wal checkpoint: " + s.message());
                cv_.notify_all();
                return;  // frozen_ stays readable; write() now fails
            }
            // The applied writes are freed after the mutex is let go (their
            // arena's chunks go back to the pool, the rest is freed), so that
            // the loop's reads and the writer do not wait on it.
            Memtable applied = std::move(frozen_);
            frozen_.clear();
            frozen_pending_ = false;
            ++checkpoints_cleared_;
            cv_.notify_all();
            lock.unlock();
            applied.clear();
            lock.lock();
        }
    }

    // A checkpoint is work that can wait, beside threads that answer
    // requests (the event loop, the commit thread). Where runnable threads
    // outnumber the cores, the checkpointer at their priority took whole time
    // slices from them in the middle of requests; at nice +10 it has about a
    // tenth of their weight on a contended core (110 against 1,024), and the
    // puts' p99 fell by a fifth (docs/BENCHMARKS.md, issue 14, twenty-sixth
    // step). An idle core still runs it at full speed, and should it fall
    // behind, the next freeze waits for it (freeze()), which slows the writes
    // instead of growing the memtables. Best effort: if the kernel refuses,
    // it keeps the process's priority.
    static void lower_priority() {
        const auto self = static_cast<id_t>(::gettid());
        errno = 0;
        const int current = ::getpriority(PRIO_PROCESS, self);
        if (errno != 0) return;
        (void)::setpriority(PRIO_PROCESS, self, std::min(current + kCheckpointNiceIncrement, 19));
    }

    static size_t arena_chunk_bytes(uint64_t checkpoint_bytes) {
        return static_cast<size_t>(std::clamp<uint64_t>(checkpoint_bytes / 16, uint64_t{64} << 10,
                                                        uint64_t{ChunkPool::kHugePageBytes}));
    }

    // A checkpoint rewrites much of LMDB's tree, and one transaction's sync of
    // all of it (tens of MiB) held up the log syncs queued behind it on the
    // disk: the puts' p99 and p999 (docs/BENCHMARKS.md, issue 14, twelfth
    // step). So the sorted batch goes in steps of about checkpoint_step_bytes_,
    // each its own transaction, and the applied sequence number (the batch's
    // last write) with the last step only. A crash between steps leaves a
    // prefix applied; the frozen file is kept until the checkpoint completes,
    // so replay writes the same values again.
    Status apply_in_steps(const std::vector<StoreWriteView>& batch) {
        size_t first = 0;
        while (first < batch.size()) {
            size_t end = first;
            uint64_t bytes = 0;
            while (end < batch.size() && (end == first || bytes < checkpoint_step_bytes_)) {
                bytes += batch[end].key.size() + (batch[end].value ? batch[end].value->size() : 0);
                ++end;
            }
            // The applied sequence number never goes alone: with the step before it.
            if (end == batch.size() - 1) ++end;
            const std::vector<StoreWriteView> step(
                batch.begin() + static_cast<std::ptrdiff_t>(first),
                batch.begin() + static_cast<std::ptrdiff_t>(end));
            if (Status s = base_->write_views(step); !s.ok()) return s;
            first = end;
        }
        return {};
    }

    std::unique_ptr<Store> base_;
    std::string dir_;
    bool sync_;
    uint64_t checkpoint_bytes_;
    uint64_t checkpoint_step_bytes_;
    bool discard_damaged_;
    bool* refused_damaged_log_;  // LmdbOptions::refused_damaged_log, may be null
    std::function<void(const std::string&)> log_;
    std::array<int, 2> fds_{-1, -1};
    // The memtables' arena chunks between memtables: about one memtable's
    // worth (checkpoint_bytes), in chunks of a sixteenth of it (64 KiB to a
    // huge page, 2 MiB).
    ChunkPool pool_{arena_chunk_bytes(checkpoint_bytes_),
                    checkpoint_bytes_ / arena_chunk_bytes(checkpoint_bytes_) + 2};

    // The writing thread's (write() and freeze()).
    size_t active_file_ = 0;
    uint64_t offset_ = 0;
    std::array<uint64_t, 2> written_bytes_{0, 0};  // each file's size
    uint64_t next_seq_ = 1;
    std::string record_;  // reused

    // Records scans copied to merge (logged_store_scan_copies), any thread.
    mutable std::atomic<uint64_t> scan_copies_{0};

    // Under mu_.
    mutable std::mutex mu_;
    mutable std::condition_variable cv_;
    Memtable active_{&pool_, base_->order()};
    Memtable frozen_{&pool_, base_->order()};
    uint64_t frozen_last_seq_ = 0;
    bool frozen_pending_ = false;
    bool checkpointing_ = false;  // the checkpointer is writing frozen_ to the base
    uint64_t checkpoints_cleared_ = 0;
    bool stopping_ = false;
    Status checkpoint_error_;
    std::deque<InFlight> in_flight_;  // appended, not yet readable, in append order
    // Told when a record becomes readable, to the next one's make_durable()
    // and an append() waiting for room or a freeze; apart from cv_, so that no
    // commit wakes the checkpointer.
    std::condition_variable published_;
    bool appender_waiting_ = false;
    // The first failed sync: every later write fails with it.
    Status write_error_;
    std::thread checkpointer_;
};

}  // namespace

Result<std::unique_ptr<Store>> open_logged_lmdb_store(const LmdbOptions& options,
                                                      LongKeyHash hash) {
    Result<std::unique_ptr<Store>> base = open_lmdb_store_with_hash(options, hash);
    if (!base) return base.status();
    auto store = std::make_unique<LoggedStore>(std::move(base.value()), options.dir, options);
    if (Status s = store->start(); !s.ok()) return s;
    return std::unique_ptr<Store>(std::move(store));
}

uint64_t logged_store_scan_copies(const Store& store) {
    const auto* logged = dynamic_cast<const LoggedStore*>(&store);
    return logged != nullptr ? logged->scan_copies() : 0;
}

Status retire_write_ahead_log(const LmdbOptions& options, LongKeyHash hash) {
    std::vector<std::string> paths;
    for (const char* name : kWalFiles) {
        std::string path = options.dir + "/" + name;
        if (std::filesystem::exists(path)) paths.push_back(std::move(path));
    }
    if (paths.empty()) return {};
    {
        // Replays the log; closing it applies the rest.
        Result<std::unique_ptr<Store>> logged = open_logged_lmdb_store(options, hash);
        if (!logged) return logged.status();
    }
    for (const std::string& path : paths) {
        if (::unlink(path.c_str()) != 0) return io_error("remove " + path, errno);
    }
    return options.sync ? sync_directory(options.dir) : Status{};
}

}  // namespace kv::node
