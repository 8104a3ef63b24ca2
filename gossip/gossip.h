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
#include <map>
#include <random>
#include <string>
#include <utility>
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

// Whether this node may start the membership change it announced
// (Gossiper::announce_change), and if not, what it waits for.
struct ChangeTurn {
    enum class State : uint8_t { none, waiting, go };
    State state = State::none;
    // For operators: whose acknowledgement or which change it waits for.
    std::string waiting_for;
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
        ticket_news_.clear();  // old news: its senders ask again if they still wait
    }

    // This node's own entry (each spreads with the next rounds).
    void declare(MemberStatus status) { view_.declare(status); }
    void set_tokens(std::vector<uint64_t> tokens) { view_.set_tokens(std::move(tokens)); }

    // One membership change at a time, cluster-wide (docs/ARCHITECTURE.md,
    // "One change at a time"). A member that wants to change (leave, or claim
    // its tokens as it joins) first announces it with a change ticket, then
    // starts only when change_turn() says go:
    //  1. no other member is in transition (joining with tokens, or leaving);
    //  2. every other member that is not left and holds tokens, and every
    //     other member showing a ticket of its own, has acknowledged the
    //     announcement: a syn from it whose digest of this node is at least
    //     the announcement's version, and this node holds every entry of
    //     that digest at least at the version it gave (the sender's own in
    //     the same incarnation): it knows all the acknowledger knew then;
    //  3. no member it sees has an earlier ticket, by (ticket, id).
    // Why two changes cannot both start: take X and Y that both go. Some
    // member W acknowledged both (W = Y when Y holds tokens and X required
    // it, W = X likewise, else a ring member both know). W's view only grows,
    // so whichever announcement W acknowledged second, its acknowledgement
    // carried W's view holding the other one, or the other's transition: say
    // Y learnt of X's ticket (or saw X in transition, and waited, 1.) before
    // going. X's ticket visible, Y needed X's own acknowledgement (2.), which X
    // sends only after seeing Y's ticket: if X had gone before, that state
    // shows X in transition and Y waits (1.); if not, X sees Y's ticket before
    // it goes too. Both then compare the same two tickets (3.) and exactly one
    // goes; the other waits for it to complete. Tickets are fixed while
    // announced, and an acknowledgement from an earlier life of a member does
    // not count (a restarted member may have forgotten what it saw).
    // Costs: a member that is down and holds tokens (or shows a ticket)
    // blocks every change until it returns, as a down source blocks a join.
    void announce_change();
    // Also forgets a removal announced here.
    void withdraw_change();
    ChangeTurn change_turn() const;

    // Removal (kvctl removenode) of a member down for good, a change like a
    // leave: announced with this node's ticket, started in its turn, where
    // the member itself is not asked to acknowledge (nor waited for, if it
    // died in a change of its own). Starting writes its removal entry
    // (ClusterView::remove_member); the ticket stays until the removal
    // completes (ClusterView::complete_removal, then withdraw_change).
    void announce_removal(std::string id);
    // A member whose acknowledgement this node's change needs (rule 2) and
    // has not got, and which this node's failure detector reports down; empty
    // when none. Such a change does not hold its place in line: its ticket
    // would hold back the removal of that member (rule 3) while it waits
    // for that member, so joins and leaves withdraw it and announce again
    // once no such member is left (node/membership/gossip_driver.cpp,
    // node/rebalance/rebalancer.cpp).
    std::string change_needs_down_member() const;
    const std::string& removal_target() const { return removal_target_; }
    bool start_removal();
    bool complete_removal(std::string_view id) { return view_.complete_removal(id); }
    // Who removed this node, when news of its removal came while it holds
    // tokens (ClusterView::refute): it must not serve; empty otherwise.
    const std::string& removed_by() const { return removed_by_; }
    // This node holds no tokens and heard that its id is a ring member holding
    // tokens (an earlier life whose data is lost): it waits for that member's
    // removal before it joins again (ClusterView::refute).
    bool earlier_life_holds_tokens() const { return earlier_life_holds_tokens_; }
    // Members that acknowledged the current announcement (tests, status).
    std::vector<std::string> change_acknowledged_by() const;

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
    void note_change_ack(const GossipSyn& syn);
    bool change_acked_by(const MemberState& member) const;

    struct Version {
        uint64_t incarnation = 0;
        uint64_t heartbeat = 0;
    };
    // An acknowledgement: the acknowledger's own version in its syn, and the
    // entries its digest held newer than this node did then. It counts once
    // this node holds all of them at least at those versions: then it knows
    // everything the acknowledger knew, so whatever change anyone had
    // announced or started by then is visible here.
    struct ChangeAck {
        Version sender;
        std::vector<std::pair<std::string, Version>> newer;
    };

    GossipConfig config_;
    ClusterView view_;
    FailureDetector detector_;
    std::vector<std::string> seeds_;
    uint64_t next_round_ms_;
    GossipStats stats_;
    // This node's announced change: the version of its entry that first
    // carried the ticket, and per member the version of that member's own
    // entry in the syn that acknowledged it.
    Version change_announced_;
    std::map<std::string, ChangeAck, std::less<>> change_acks_;
    // Members whose ticket this node just learnt of: a syn goes to each at
    // once, so an announcement collects its acknowledgements within a round
    // trip instead of waiting for random rounds to pick its sender.
    std::vector<std::string> ticket_news_;
    std::string removal_target_;  // the member this node's announced change removes
    std::string removed_by_;      // see removed_by()
    bool earlier_life_holds_tokens_ = false;
};

}  // namespace kv::gossip
