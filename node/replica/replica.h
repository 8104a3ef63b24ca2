// This node as a replica: the only writer of its stored objects (Space::objects,
// node/data/stored_record.h).
// Every change to a key's stored object goes through mint() (a write this
// replica versions) or merge() (a version from elsewhere: replication, read
// repair, a streamed range), and every change is reported to the observers, so
// that a component that must see all writes (anti-entropy trees, tombstone GC)
// has one place to hook in.
//
// It also decides whether this node may serve a key as a replica now (its
// ownership check, from Placement and the Handoffs fence) and suppresses
// duplicated minting requests. Pure: reads and stages writes through Env.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "client/status.h"
#include "node/data/object.h"
#include "node/env.h"
#include "node/membership/placement.h"
#include "node/node_config.h"
#include "node/peer_protocol.h"
#include "node/replica/handoffs.h"
#include "node/replica/hint_store.h"

namespace kv::node {

class Replica {
  public:
    // What a key held before a change: its stored object's bytes (null: none)
    // and whether every sibling of it was a tombstone. The replica read it to
    // make the change, so an observer need not read it again.
    struct Previous {
        const std::string* object = nullptr;
        bool tombstones_only = false;
    };
    // Called after each change is staged, with the key, what it held before,
    // its new encoded object (nullopt: erased) and whether every sibling of
    // that is a tombstone.
    using Observer =
        std::function<void(const std::string& key, const Previous& previous,
                           const std::optional<std::string>& object, bool tombstones_only)>;

    Replica(const NodeConfig& config, Env& env, const Placement& placement,
            const Handoffs& handoffs, HintStore& hints);

    // The actor id this node mints dots with (node/node.h, start()).
    void set_actor(std::string actor) { actor_ = std::move(actor); }
    // Random bits drawn once per start: they make the actor of stand-in mints
    // (mint_as_stand_in) unique to this life of the node.
    void set_lifetime(uint64_t lifetime_bits) { lifetime_bits_ = lifetime_bits; }
    const std::string& actor() const { return actor_; }
    // Reads the purge floor (meta::kPurgeFloorKey); storage_error when corrupt.
    Status load_purge_floor();
    void add_observer(Observer observer) { observers_.push_back(std::move(observer)); }
    // Refill (AntiEntropy::begin_refill): set while this node, started on an
    // empty data directory under a static member list, may still lack writes
    // the other replicas acknowledged. Its replica reads then answer
    // unavailable with `why` (writes and merges still count): a read quorum
    // that counted it could miss a write. So do its mints of writes that
    // remove what it holds (mint). nullopt ends it.
    void set_refilling(std::optional<std::string> why) { refilling_ = std::move(why); }
    bool refilling() const { return refilling_.has_value(); }
    // ok, or unavailable while refilling: whether a read may count this
    // replica's answer (not a stand-in's hints, which are not its own data).
    Status check_readable() const;

    // The stored object's bytes (nullopt: none); storage_error when the store fails.
    Result<std::optional<std::string>> read(const std::string& key);
    // The decoded stored object (empty when absent); storage_error when corrupt.
    Result<Object> load(const std::string& key);
    struct Minted {
        std::string object;          // the whole new object, encoded
        std::string writer_context;  // encoded writer_context (object.h): the write_reply's
        size_t live_count = 0;       // the object's live values (Object::live_count)
    };
    // A write: a new version minted with this replica's actor from the value
    // (nullopt: a tombstone) and the client's context. A delete without a
    // context supersedes all the replica holds (and its writer context covers
    // it), and so does a put without a context when `replace` is set; while
    // this replica refills, those two answer unavailable (nothing minted).
    Result<Minted> mint(const std::string& key, std::optional<std::string> value,
                        const std::optional<std::string>& context, bool replace = false);
    // Merges an encoded version into the stored one (staged only when it changes).
    Status merge(const std::string& key, std::string_view object_bytes);
    // Tombstone GC (node/antientropy/tombstone_gc.h): erases the key if its
    // stored object is still exactly `expected` (encoded) and holds only
    // tombstones; false when it changed since (nothing staged). The purged
    // context held this node's counters for the key: the purge floor rises to
    // the highest, and every later mint starts above it (mint), so no dot a
    // client's old context or a lagging replica covers is minted again.
    Result<bool> purge(const std::string& key, std::string_view expected);
    // A write no home replica could mint (all unreachable), minted here as a
    // stand-in for `home` and kept as a hint for it. This node does not hold
    // the key's history, so it cannot know which counters its own actor used
    // for the key: the version gets the actor of this life as a stand-in
    // (this node's id and random bits drawn at start) and a counter past the
    // last this life minted for the key, so its dot is new whatever happened
    // before (docs/ARCHITECTURE.md, "Dots stay unique").
    // What it supersedes: the client's context, or for a delete (or a
    // `replace` put) without one, every hint this node holds for the key.
    Result<Minted> mint_as_stand_in(const std::string& home, const std::string& key,
                                    std::optional<std::string> value,
                                    const std::optional<std::string>& context,
                                    bool replace = false);
    // Every hint this node holds for the key, merged and encoded (nullopt:
    // none): what it answers as a stand-in.
    Result<std::optional<std::string>> read_hints(const std::string& key);
    // Keeps a version sent to this node as a stand-in for `home`.
    Status keep_hint(const std::string& home, const std::string& key,
                     std::string_view object_bytes);

    // Whether this node may serve the key as a replica now: ok, or not_owner
    // when the key's range is not its own or was handed off. For writes,
    // `targets` (when non-empty) must include every new owner it knows of.
    Status check_owner(const std::string& key, bool is_write,
                       const std::vector<std::string>& targets) const;
    // Whether this node may answer a read of the key asked of it as a new
    // owner (ReplicaReadRequest::new_owner), in place of a replica that handed
    // the key's range off: ok when check_owner is, or when the key's range
    // moves to this node and it has received all of it (Handoffs::
    // has_received); else check_owner's refusal.
    Status check_new_owner_read(const std::string& key) const;
    // check_owner for this node as the replica of an op it coordinates: the
    // op's replicas come from this node's own placement, so while nothing
    // moves the answer is known (ok) and the ring walk is skipped.
    Status check_local_owner(const std::string& key, bool is_write,
                             const std::vector<std::string>& targets) const {
        return placement_.moving() ? check_owner(key, is_write, targets) : Status{};
    }

    // Peer requests: a coordinator asks this node as a replica. `received_ms`
    // is this node's clock when the request arrived (nullopt: now). A write or
    // merge that waited longer than its budget_ms between arrival and handling
    // (a stalled process) is answered with timeout and not applied.
    void handle(const ReplyTo& from, const ReplicaReadRequest& req);
    void handle(const ReplyTo& from, const ReplicaWriteRequest& req,
                std::optional<uint64_t> received_ms = std::nullopt);
    void handle(const ReplyTo& from, const ReplicaMergeRequest& req,
                std::optional<uint64_t> received_ms = std::nullopt);
    // A client's look at this replica alone (debugging, tests).
    void handle(const ReplyTo& from, const proto::LocalGetRequest& req);
    // A stand-in replays hints to this node: each key it owns is merged
    // (never minted again); the others are named back as not owned.
    void handle(const ReplyTo& from, const HintReplayRequest& req);

  private:
    // ok, or timeout when a request with `budget_ms` waited longer than that here.
    Status check_budget(uint64_t budget_ms, std::optional<uint64_t> received_ms);
    // load(), keeping the stored bytes it decoded (nullopt: none) in `bytes`.
    Result<Object> load(const std::string& key, std::optional<std::string>& bytes);
    // The object stored as `bytes` (nullopt: the empty object).
    Result<Object> decode_stored(const std::optional<std::string>& bytes);
    void stage(const std::string& key, const Previous& previous, const Object& object,
               std::string bytes);
    // As above, for bytes whose object is known without decoding them.
    void stage(const std::string& key, const Previous& previous, bool tombstones_only,
               std::string bytes);
    void stage_erase(const std::string& key, const Previous& previous);
    void remember_minted(std::pair<std::string, uint64_t> request);

    const NodeConfig& config_;
    Env& env_;
    const Placement& placement_;
    const Handoffs& handoffs_;
    HintStore& hints_;
    std::string actor_;
    uint64_t lifetime_bits_ = 0;
    uint64_t purge_floor_ = 0;  // see purge()
    std::optional<std::string> refilling_;
    std::string read_key_;  // read()'s record key, reused between reads
    // Per key, the last counter this life's stand-in actor minted; renewed
    // (with the actor) past this many keys.
    static constexpr size_t kStandInKeysMax = 65536;
    std::map<std::string, uint64_t> stand_in_counters_;
    std::vector<Observer> observers_;
    // Minting requests already applied, by (requester route, request id): a
    // duplicated ReplicaWriteRequest must not mint a second version (it would
    // supersede writes acknowledged since). Bounded; oldest forgotten first.
    std::set<std::pair<std::string, uint64_t>> minted_;
    std::deque<std::pair<std::string, uint64_t>> minted_order_;
};

}  // namespace kv::node
