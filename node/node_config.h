// What a Node is configured with, and what it counts. Shared by the facade
// (node/node.h) and its components, which each read the part they need.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "gossip/gossip.h"
#include "ring/ring.h"

namespace kv::node {

// A user made at start when the replicated catalog has no record of its name
// (kvnode --bootstrap-admin NAME=KEY): the first administrator of a cluster.
struct BootstrapUser {
    std::string name;
    std::string public_key_z85;
    bool operator==(const BootstrapUser&) const = default;
};

struct NodeConfig {
    std::string node_id;
    uint32_t n_replicas = 3;
    uint32_t vnodes = ring::kDefaultVnodes;
    uint32_t siblings_max = 100;
    uint32_t siblings_warn = 25;  // log a warning when a key reaches this many siblings
    uint64_t default_deadline_ms = 5000;
    uint64_t ping_interval_ms = 1000;
    // A peer not heard from for this long is unreachable: requests that need
    // it fail fast instead of waiting for their deadline.
    uint64_t peer_down_after_ms = 3000;
    // Admission limits of the coordinator (docs/PROTOCOL.md, "Limits"): client
    // requests not answered yet, in total and per connection (a ReplyTo route),
    // in number and in bytes (key + value + context + kOpOverheadBytes each).
    // Beyond any of them a request is answered `overloaded`, naming the limit.
    size_t requests_in_flight_max = 20000;
    size_t request_bytes_in_flight_max = size_t{256} << 20;
    size_t connection_requests_max = 1000;
    size_t connection_bytes_max = size_t{32} << 20;
    // Answered ops the coordinator keeps for follow-up work (read repair, the
    // replication of a write beyond w): a separate budget, so answered ops
    // never hold a client's slots. Beyond it the follow-up is dropped (counted
    // in NodeStats::background_dropped): a write's merges are already sent,
    // a read skips its read repair (a later read of the key repairs it).
    size_t background_ops_max = 20000;
    size_t background_bytes_max = size_t{128} << 20;
    size_t minted_requests_remembered = 65536;  // duplicate suppression window

    // Sloppy quorums and hinted handoff (docs/ARCHITECTURE.md, "Hinted handoff").
    // Off: every request counts only home replicas, as with `strict`, and no
    // hint is kept (kvnode --hinted-handoff false; to test repair alone).
    bool hinted_handoff = true;
    // Hints this node keeps as a stand-in, per target (intended owner): in
    // keys and in bytes of stored objects. Beyond either a hinted write is
    // refused as a hint and the key's range is marked under-replicated.
    size_t hints_per_target_max = 100000;
    size_t hint_bytes_per_target_max = size_t{256} << 20;
    // Replay to a target that is back: at most this many keys per second, in
    // batches of at most hint_replay_batch_keys keys (one batch in flight per
    // target; an unanswered batch is resent after transfer_timeout_ms).
    uint32_t hint_replay_keys_per_s = 5000;
    uint32_t hint_replay_batch_keys = 256;

    // Read repair (docs/ARCHITECTURE.md, "Read repair"): off only to test
    // the other repairs alone (kvnode --read-repair false).
    bool read_repair = true;
    // Read fan-out (docs/ARCHITECTURE.md, "Requests and consistency"): a get
    // asks only the r replicas its level needs (this node first when it is
    // one); the others, its spares, are asked when an asked one fails, when
    // the asked ones disagree (so the read repairs every replica), or when
    // the read is still unanswered read_spares_after_ms after it started
    // (checked each tick, 10 ms). read_all_replicas asks every replica at once.
    bool read_all_replicas = false;
    uint64_t read_spares_after_ms = 10;
    // Anti-entropy (node/antientropy/anti_entropy.h): an exchange with the
    // next ring member starts every this many ms, so each pair of replicas is
    // compared within (members - 1) x this (each side starts its own).
    bool anti_entropy = true;
    uint64_t anti_entropy_interval_ms = 2000;
    // Tombstone GC (node/antientropy/tombstone_gc.h): a tombstone confirmed
    // on every replica by anti-entropy is purged once it is also this old.
    bool tombstone_gc = true;
    uint64_t tombstone_grace_ms = 60000;

    // Gossip membership (gossip/gossip.h), on when `seeds` is non-empty: the
    // node then owns its view of the cluster instead of reading a static list.
    // `endpoint` is this node's ROUTER address as peers dial it; seeds equal
    // to it are skipped (the first node of a cluster lists itself).
    std::vector<std::string> seeds;
    std::string endpoint;
    // Where this node serves links (--link-listen), advertised by gossip so
    // that members dial it instead of the ROUTER; empty: nowhere.
    std::string link_endpoint;
    gossip::GossipConfig gossip;
    // A fresh node claims its tokens once it has heard of the cluster through a
    // seed. A seed (its own endpoint among `seeds`) that hears nothing for this
    // long starts a cluster of its own, which gossip merges once another seed
    // answers; a node that is not a seed waits for the ring however long.
    uint64_t join_wait_ms = 5000;
    // Range transfers (rebalancing): a page request unanswered this long is
    // sent again; a refused one (rings differ, source busy) is retried after
    // transfer_retry_ms.
    uint64_t transfer_timeout_ms = 5000;
    uint64_t transfer_retry_ms = 500;
    uint32_t stream_keys_per_page = 256;
    size_t stream_page_bytes_max = 4 << 20;

    // Users given an admin grant on the whole keyspace at start, unless the
    // catalog already knows their name (docs/SECURITY.md, "Bootstrap").
    std::vector<BootstrapUser> bootstrap_admins;
};

// Counters, each written by one component (named beside it).
struct NodeStats {
    uint64_t requests = 0;      // Node
    uint64_t bad_frames = 0;    // Node
    uint64_t unauthorized = 0;  // Node: requests refused for want of a grant or the cluster key
    uint64_t read_repairs = 0;  // Coordinator
    // Times a read asked replicas beyond the r they needed (a replica failed,
    // the asked ones disagreed, or the read was slow).
    uint64_t read_spares_asked = 0;   // Coordinator
    uint64_t timeouts = 0;            // Coordinator
    uint64_t unavailable = 0;         // Coordinator
    uint64_t overloaded = 0;          // Coordinator: requests refused by an admission limit
    uint64_t background_dropped = 0;  // Coordinator: answered ops whose follow-up was dropped
    uint64_t keys_streamed_in = 0;    // Rebalancer
    uint64_t keys_streamed_out = 0;   // Rebalancer
    uint64_t stand_in_writes = 0;     // Coordinator: writes a stand-in acknowledged
    uint64_t hints_stored = 0;        // HintStore: hints added or merged as a stand-in
    uint64_t hints_refused = 0;       // HintStore: hints refused (a target's store full)
    uint64_t hints_replayed = 0;      // HintReplay: hints the owner made durable
    // AntiEntropy: exchanges completed and given up; keys merged here from
    // peers and objects sent to them; messages and payload bytes (keys,
    // objects, hashes and bounds; not frame overhead) both ways.
    uint64_t ae_exchanges = 0;
    uint64_t ae_exchanges_failed = 0;
    uint64_t ae_keys_received = 0;
    uint64_t ae_keys_sent = 0;
    uint64_t ae_messages = 0;
    uint64_t ae_bytes_sent = 0;
    uint64_t ae_bytes_received = 0;
    uint64_t tombstones_purged = 0;  // TombstoneGc
};

// Ids of the requests this node sends (peer calls, pings, gossip, transfers)
// and of its coordinated ops: one counter for all, so no two are equal. It
// starts at a random point at each start so that ids stay unique across
// restarts: a late reply to a call made before a restart, or a duplicate of
// it, must not match a new call.
class RequestIds {
  public:
    // Top bit clear: ids never wrap within a node's life.
    void start(uint64_t random_bits) { next_ = (random_bits >> 1) | 1; }
    uint64_t next() { return next_++; }

  private:
    uint64_t next_ = 1;
};

}  // namespace kv::node
