// The gossip round (push-pull with digests, as in Cassandra's Gossiper and the
// anti-entropy of Demers et al.): each round this node bumps its heartbeat,
// runs the failure detector and sends a digest (id -> version) to one random
// live peer, and to a seed it has never heard from while there is one (so
// nodes seeded with each other cannot stay in separate islands); the peer
// answers with the entries it has newer and the ids it wants; the initiator
// then sends what was wanted. Only newer entries travel.
//
// A pure state machine for a single-threaded owner: time and randomness come
// in as arguments, outgoing messages come back as values for the caller to
// send. Messages may be lost, duplicated or reordered: every handler is a
// merge, so a late or repeated message is harmless.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "gossip/cluster_view.h"
#include "gossip/failure_detector.h"

namespace kv::gossip {

// Wire limits (gossip_codec.h enforces them on decode; the Gossiper keeps its
// own messages within them).
constexpr size_t kGossipFrameBytesMax = 1024 * 1024;
constexpr size_t kGossipIdBytesMax = 256;  // member ids and endpoints
constexpr size_t kGossipItemsMax = 1024;   // digests, entries or wants in one message
constexpr size_t kGossipTokensPerMemberMax = 4096;

// One member's version as digests carry it (no endpoint, no tokens).
struct DigestEntry {
    std::string id;
    uint64_t incarnation = 0;
    uint64_t heartbeat = 0;
    MemberStatus declared = MemberStatus::joining;
    Liveness liveness = Liveness::alive;
    bool operator==(const DigestEntry&) const = default;
};

// Round step 1, initiator -> peer: everything the initiator knows, as versions.
struct GossipSyn {
    std::string from_id;
    std::string from_endpoint;
    std::vector<DigestEntry> digests;
    bool operator==(const GossipSyn&) const = default;
};

// Step 2, peer -> initiator: entries the peer has newer (or the initiator lacks)
// and the ids whose entries the initiator has newer.
struct GossipAck {
    std::string from_id;
    std::string from_endpoint;
    std::vector<MemberState> entries;
    std::vector<std::string> wants;
    bool operator==(const GossipAck&) const = default;
};

// Step 3, initiator -> peer: the wanted entries.
struct GossipAck2 {
    std::string from_id;
    std::vector<MemberState> entries;
    bool operator==(const GossipAck2&) const = default;
};

using GossipMessage = std::variant<GossipSyn, GossipAck, GossipAck2>;

// A message to send. peer_id is empty when only the endpoint is known (a seed).
struct Outgoing {
    std::string peer_id;
    std::string endpoint;
    GossipMessage message;
};

struct GossipConfig {
    uint64_t interval_ms = 1'000;  // one round per interval
    uint32_t members_max = 1'024;  // view size (<= kGossipItemsMax); more are ignored, counted
    // Encoded-size budget for the entries of one ack or ack2 (estimated); the
    // rest travels in later rounds, new members and status changes first.
    size_t entries_bytes_max = 512 * 1024;  // < kGossipFrameBytesMax
    FailureDetectorConfig detector;
};

struct GossipStats {
    uint64_t rounds = 0;
    uint64_t refutations = 0;
    uint64_t members_rejected = 0;  // entries ignored because the view was full
    uint64_t entries_deferred = 0;  // entries left out of a message by the byte budget
};

class Gossiper {
  public:
    // `seed_endpoints`: where to join through (this node's own endpoint is
    // skipped). `now_ms` starts the round clock: the first round runs at now_ms.
    Gossiper(GossipConfig config, MemberState self, std::vector<std::string> seed_endpoints,
             uint64_t now_ms);

    const ClusterView& view() const { return view_; }
    const FailureDetector& detector() const { return detector_; }
    const GossipStats& stats() const { return stats_; }
    const GossipConfig& config() const { return config_; }

    // Runs a round if one is due at now_ms (at most one per call).
    std::vector<Outgoing> tick(uint64_t now_ms, std::mt19937_64& rng);
    uint64_t next_round_ms() const { return next_round_ms_; }

    // Handles a message from a peer; returns the replies.
    std::vector<Outgoing> handle(const GossipMessage& message, uint64_t now_ms);

    // Merges entries this node saved in an earlier life (its view as last
    // persisted), as if heard now; newer gossip supersedes them as usual.
    void restore(const std::vector<MemberState>& entries, uint64_t now_ms) {
        merge_entries(entries, now_ms);
    }

    // This node's own entry (each spreads with the next rounds).
    void declare(MemberStatus status) { view_.declare(status); }
    void set_tokens(std::vector<uint64_t> tokens) { view_.set_tokens(std::move(tokens)); }

    // The digest this node would send now (exposed for tests and status pages).
    GossipSyn make_syn() const;

  private:
    std::vector<Outgoing> on_syn(const GossipSyn& syn, uint64_t now_ms);
    std::vector<Outgoing> on_ack(const GossipAck& ack, uint64_t now_ms);
    std::vector<Outgoing> on_ack2(const GossipAck2& ack2, uint64_t now_ms);
    void merge_entries(const std::vector<MemberState>& entries, uint64_t now_ms);
    void run_detector(uint64_t now_ms);
    std::vector<Outgoing> choose_peers(std::mt19937_64& rng) const;
    std::vector<MemberState> within_budget(std::vector<const MemberState*> ranked);

    GossipConfig config_;
    ClusterView view_;
    FailureDetector detector_;
    std::vector<std::string> seeds_;
    uint64_t next_round_ms_;
    GossipStats stats_;
};

}  // namespace kv::gossip
