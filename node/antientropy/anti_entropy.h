// Merkle-tree anti-entropy (Dynamo §4.7): replicas of a range compare the
// hashes of the token intervals they share and exchange only the objects that
// differ, merging them (never minting), so a replica that missed writes
// converges without those keys being read.
//
// Schedule: every anti_entropy_interval_ms this node starts one exchange with
// the next ring member in turn (a full pass over n-1 peers every
// (members - 1) x interval); `kvctl repair` queues one with every member at
// once. One exchange is in flight at a time; each step waits for the
// previous reply, so a pass costs a handful of round trips per differing
// leaf and nothing per equal subtree. While ranges move (a join, leave or
// removal) exchanges pause: transfers own the moving ranges.
//
// An exchange with a peer, in steps (docs/ARCHITECTURE.md, "Anti-entropy"):
//  1. ae_compare: the hashes of the intervals both replicate; the peer names
//     those that differ, and the initiator splits each into the children of
//     its tree node, until an interval lies within one leaf;
//  2. ae_keys: the initiator's (key, entry hash) pairs of such intervals; the
//     peer answers with its objects that differ or the initiator lacks, and the
//     keys it wants; the initiator merges them;
//  3. ae_push: the initiator's objects for the wanted keys; the peer merges.
// A key one side holds as tombstones only and the other does not hold at all
// is left alone: for a reader, absent and deleted are the same, and sending
// it back would undo tombstone GC (tombstone_gc.h).
//
// Marks: when an exchange with a peer completes, this node records when it
// started ("verified") and, when the peer then held no hints, that it is
// clean through that time: every version either side held at the start is
// now on both. Tombstone GC asks confirmed_through_ms().
// Pure: time, sends and storage through Env.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "client/protocol.h"
#include "node/antientropy/hash_tree.h"
#include "node/antientropy/key_index.h"
#include "node/env.h"
#include "node/membership/peers.h"
#include "node/membership/placement.h"
#include "node/node_config.h"
#include "node/peer_protocol.h"
#include "node/replica/hint_store.h"
#include "node/replica/replica.h"
#include "ring/ring.h"

namespace kv::node {

// The closed token intervals a ring range (start, end] covers: one, or two
// when it wraps past 2^64 - 1 (start == end: the whole ring).
std::vector<TokenInterval> intervals_of(const ring::Range& range);
// The intervals of `ring` whose preference list (n replicas) holds both nodes,
// adjacent ones joined, in token order.
std::vector<TokenInterval> shared_intervals(const ring::Ring& ring, uint32_t n,
                                            const std::string& a, const std::string& b);

class AntiEntropy {
  public:
    AntiEntropy(const NodeConfig& config, Env& env, RequestIds& ids, NodeStats& stats,
                const Placement& placement, const Peers& peers, Replica& replica, KeyIndex& index,
                const HintStore& hints);

    void tick(uint64_t now_ms);
    bool on_reply(const std::string& peer_id, const Message& message);
    bool on_send_failed(const std::string& peer_id, uint64_t request_id);

    // The peer's side of an exchange.
    void handle(const ReplyTo& from, const AeCompareRequest& req);
    void handle(const ReplyTo& from, const AeKeysRequest& req);
    void handle(const ReplyTo& from, const AePushRequest& req);
    // kvctl repair: an exchange with every other ring member, now, limited to
    // the range when one is given.
    void handle(const ReplyTo& from, const proto::RepairRequest& req);

    // This node may lack writes it acknowledged before: with a static member
    // list it started on an empty data directory (its actor was created at
    // this start, so it cannot tell a wipe from a new cluster), or its store
    // dropped the records after a damaged stretch of its write-ahead log
    // (kvnode --wal-discard-damaged). `why` says which ("it started on an
    // empty data directory"). Until a whole exchange it started with each
    // other member completes, the replica answers reads unavailable and mints
    // no write that removes what it holds (Replica::set_refilling). A member
    // that is down is waited for until it is back (what only it and the lost
    // data held returns with it), or leaves the ring; not when anti-entropy
    // brought nothing since the refill began, as on a new cluster, where none
    // held anything to lose; or when an admin says so (kvctl repair
    // --stop-waiting-for, stop_waiting_for). These exchanges start at once,
    // one after another, ahead of the schedule and of kvctl repair; on a new
    // cluster each is one round trip. `when_done` (may be empty) runs once they have, or at once
    // when there is no other member.
    void begin_refill(std::string why, std::function<void()> when_done = {});
    bool refilling() const { return !refill_waiting_.empty(); }

    // The time (this node's clock) through which every other member of the
    // ring is confirmed: each completed a whole exchange with this node that
    // started at or after it, holding no hints then. nullopt while some
    // member has not.
    std::optional<uint64_t> confirmed_through_ms() const;
    proto::AntiEntropyStatus status() const;

  private:
    struct Exchange {
        std::string peer;
        uint64_t started_ms = 0;
        bool whole = true;  // every shared interval (not a kvctl repair --range)
        bool for_repair = false;
        bool for_refill = false;
        bool peer_clean = false;
        bool first_reply = true;
        std::deque<TokenInterval> to_compare;
        std::deque<TokenInterval> to_list;
        std::deque<std::string> to_push;
        // The call in flight.
        uint64_t call_id = 0;
        uint64_t call_sent_ms = 0;
        std::vector<TokenInterval> call_intervals;
        size_t steps = 0;
    };
    struct PeerMark {
        std::optional<uint64_t> verified_ms;       // start of the last whole exchange
        std::optional<uint64_t> clean_through_ms;  // ... in which the peer held no hints
    };
    void start_exchange(const std::string& peer, uint64_t now_ms, std::optional<ring::Range> only);
    // Sends the next step, or completes the exchange when nothing is left.
    void advance(uint64_t now_ms);
    void finish(bool completed, const std::string& why);
    bool refuse_if_not_ready(const ReplyTo& from, uint64_t id, uint64_t ring_digest,
                             bool is_compare);
    Message not_ready_reply(uint64_t id, ErrorCode code, std::string why, bool is_compare) const;
    std::vector<std::string> ring_peers() const;
    // Drops waiting members that left the ring or are down, ends the refill
    // when none is left, else starts an exchange with the next one when due.
    // True when the refill holds the schedule (an exchange started or due).
    bool tick_refill(uint64_t now_ms);
    // kvctl repair --stop-waiting-for: the members named no longer hold up
    // the refill (invalid_argument when none of them does).
    void stop_waiting_for(const ReplyTo& from, const proto::RepairRequest& req);
    void publish_refill();

    const NodeConfig& config_;
    Env& env_;
    RequestIds& ids_;
    NodeStats& stats_;
    const Placement& placement_;
    const Peers& peers_;
    Replica& replica_;
    KeyIndex& index_;
    const HintStore& hints_;

    std::optional<Exchange> current_;
    uint64_t next_start_ms_ = 0;
    size_t next_peer_ = 0;
    std::map<std::string, PeerMark> marks_;
    // kvctl repair: the peers still to exchange with, and its range.
    std::deque<std::string> repair_queue_;
    std::optional<ring::Range> repair_range_;
    uint64_t repair_total_ = 0;
    uint64_t repair_done_ = 0;
    uint64_t repair_failed_ = 0;
    // Refill: the members still to exchange with, whose turn is next, and
    // when a failed one may be retried.
    std::set<std::string> refill_waiting_;
    std::string refill_why_;
    std::function<void()> refill_done_;  // begin_refill's when_done, until it ran
    size_t refill_next_ = 0;
    uint64_t refill_retry_ms_ = 0;
    // NodeStats::ae_keys_received when the refill began: whether anti-entropy
    // (the refill's exchanges, or a peer's) brought anything since.
    uint64_t refill_keys_received_at_begin_ = 0;
    bool refill_down_logged_ = false;
};

}  // namespace kv::node
