// The cluster as one node sees it: one versioned entry per member, merged from
// gossip. Pure and deterministic: no clocks, no I/O, ordered containers only.
//
// Merge rule: every entry carries a version and the greater one wins. Versions
// are ordered by (incarnation, left, heartbeat, liveness), then by content as a
// tie-break, so merge is a max over a total order: commutative, associative and
// idempotent, and any two views that saw the same entries agree.
//  - incarnation: chosen by the member when it starts; a restarted member
//    holding tokens uses a higher one and so overrides everything said of its
//    previous life (one without tokens starts at 1 and refutes what it hears,
//    node/membership/gossip_driver.cpp). A member also bumps it to refute
//    suspicion about itself (SWIM §4.2).
//  - left: 'left' beats every other state of the same incarnation (final).
//  - heartbeat: bumped by the member on every gossip round and on every change
//    it makes to its own entry (status, tokens).
//  - liveness: peers' failure detectors raise it (alive < suspect < down) at
//    the member's current version; any newer version from the member resets it.
// Only the member itself writes its endpoint, declared status, tokens and
// change ticket, with one exception: removal (kvctl removenode) of a member
// that is down for good. The removing node R writes the member's entry for it
// (remove_member): declared leaving (left when it held no ring ranges), at the
// member's highest known incarnation + kRemovalIncarnationStep, with
// removed_by = R and liveness down; once the member's ranges are re-replicated
// R declares that entry left (complete_removal). Being at a higher
// incarnation, it overrides everything the member said of that life and of
// the lives it could start without being heard (each start adds one). A
// member that hears it was removed does not refute it (refute below): one
// that holds tokens (restarted with its old data) reports `removed` and stops
// serving (the node refuses to run with that data); one without tokens (a
// fresh data directory under the old id) waits until the removal is left,
// then refutes it as usual and joins again as a new node. Such a fresh node
// does not refute an entry of its earlier life that holds tokens either:
// that would take the old tokens out of the ring with no transfer, leaving
// their ranges to members that never received them; it waits, reported down,
// until the operator removes the earlier life (kvctl removenode).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "gossip/membership.h"

namespace kv::gossip {

// Bounds on the counters of an entry (issue 11). An incarnation, heartbeat or
// change ticket above kCounterMax is refused by the codec and by merge: with
// 2^64-1 a forged entry would win over every life of its member for good, and
// a member refuting it would wrap to 0. A known member's incarnation, or its
// heartbeat within one incarnation, may rise by at most kCounterJumpMax per
// entry heard, so even a member that lies would need 2^30 messages to walk a
// counter to the bound. Honest counters stay far below both: one incarnation
// per start or refutation, one heartbeat per round (2^32 rounds of 10 ms are
// 16 months without a restart, during which every round raises it by one).
constexpr uint64_t kCounterMax = uint64_t{1} << 62;
constexpr uint64_t kCounterJumpMax = uint64_t{1} << 32;
// How far above a member's highest known incarnation its removal is written:
// the member would need that many starts that no peer heard (each persists a
// higher incarnation) to outbid its removal with its old data. Far below
// kCounterJumpMax, so peers accept the removal entry.
constexpr uint64_t kRemovalIncarnationStep = uint64_t{1} << 16;

// The six states of the design; suspect and down are peers' judgements, the
// others are declared by the member itself.
enum class MemberStatus : uint8_t {
    joining = 0,
    up = 1,
    suspect = 2,
    down = 3,
    leaving = 4,
    left = 5
};
std::string_view status_name(MemberStatus status);

// Liveness as judged by failure detectors at the member's current version.
enum class Liveness : uint8_t { alive = 0, suspect = 1, down = 2 };

// Whether a status can be declared by a member about itself.
bool is_declarable(MemberStatus status);

struct MemberState {
    std::string id;
    std::string endpoint;
    MemberStatus declared = MemberStatus::joining;  // joining, up, leaving or left
    Liveness liveness = Liveness::alive;
    uint64_t incarnation = 0;
    uint64_t heartbeat = 0;
    std::vector<uint64_t> tokens;  // sorted, distinct ring positions
    // The member's announced membership change (a leave it was asked for, or
    // the claim of its tokens as it joins), 0 when none: a Lamport ticket (one
    // above every ticket the member had seen), so changes are ordered by
    // (ticket, id) the same way on every node that sees both. Kept while the
    // change is under way, cleared when it completes (up, left) or is refused.
    // See Gossiper::change_turn() for how it serializes changes.
    uint64_t change_ticket = 0;
    // The member that removed this one (kvctl removenode) and wrote this entry
    // for it; empty in every entry a member writes of itself.
    std::string removed_by;
    // Where the member serves links (its --link-listen), empty when nowhere.
    // Written by the member itself, as `endpoint`; carried beside the entries
    // (gossip_codec.h) so that builds without it read the entries unchanged.
    std::string link_endpoint = {};

    // left > down > suspect > declared.
    MemberStatus status() const;
    // In the ring: declared up or leaving, with tokens. Suspect and down members
    // stay in the ring (Dynamo §4.8: failures are transient; hints cover them).
    bool in_ring() const;
    // Joining with tokens, or leaving: a membership change under way.
    bool in_transition() const;
    // Takes part in data placement now or after the moves: joining, up or
    // leaving, with tokens. Peers talk to these (a joiner receives writes).
    bool holds_tokens() const;
    bool operator==(const MemberState&) const = default;
};

// <0, 0, >0 as a's version is older, equal or newer than b's (same id assumed),
// ignoring content: the order digests can see.
int compare_version(uint64_t a_incarnation, bool a_left, uint64_t a_heartbeat, Liveness a_liveness,
                    uint64_t b_incarnation, bool b_left, uint64_t b_heartbeat, Liveness b_liveness);
// The full total order of the merge rule (version, then content tie-break).
bool supersedes(const MemberState& a, const MemberState& b);

// A node and its ring positions, the input from which every node computes the
// same ring.
struct NodeTokens {
    std::string id;
    std::vector<uint64_t> tokens;
    bool operator==(const NodeTokens&) const = default;
};

struct MergeOutcome {
    bool changed = false;     // the view changed
    bool heard_from = false;  // the member's (incarnation, heartbeat) advanced or it is new
    bool refuted = false;     // news about this node itself, answered with a new incarnation
    bool rejected = false;    // an unknown member while the view is full
    // News that this node was removed (removed_by set) while it holds tokens:
    // not merged; the node holds data of a life the cluster removed.
    bool removed = false;
    // News that this node, holding no tokens, is a ring member with tokens
    // from an earlier life (its data directory was lost): not refuted, see
    // ClusterView::refute.
    bool earlier_life_holds_tokens = false;
};

// The view is the Membership the node reads: members() lists the ring members.
class ClusterView final : public Membership {
  public:
    // `self` is this node's own entry (its incarnation chosen by the caller:
    // higher than any it used before, e.g. a persisted counter + 1).
    ClusterView(MemberState self, uint32_t members_max);

    const std::string& self_id() const { return self_id_; }
    const MemberState& self() const;
    const MemberState* find(std::string_view id) const;
    // Every known member including self and left ones, ordered by id.
    const std::map<std::string, MemberState, std::less<>>& states() const { return states_; }
    size_t size() const { return states_.size(); }

    // Membership: members holding tokens (MemberState::holds_tokens: the ring's
    // and joiners'), sorted by id.
    const std::vector<Member>& members() const override { return ring_members_; }
    // Changes whenever members(), the declared status of one of them or its
    // tokens change: whatever ring_input() or future_ring_input() depend on.
    uint64_t version() const override { return ring_version_; }
    // Changes on every change of any entry (heartbeats included).
    uint64_t view_version() const { return view_version_; }

    // Ring members with their tokens, sorted by id.
    std::vector<NodeTokens> ring_input() const;
    // One membership change moves data at a time (Cassandra's consistent
    // range movement): the active change is the member in transition with the
    // smallest id; the others wait, inert. The future ring is the ring once the
    // active change completes: ring_input() plus the active joiner, or minus
    // the active leaver. Equal to ring_input() when nothing is in transition.
    std::vector<NodeTokens> future_ring_input() const;
    // The member whose change is active, or empty.
    std::string active_change() const;

    // Merges one entry heard from a peer.
    MergeOutcome merge(const MemberState& heard);
    // A counter of `heard` rises more than kCounterJumpMax above `mine`.
    static bool implausible_jump(const MemberState& mine, const MemberState& heard);
    // Raises a peer's liveness at its current version (never self, never a
    // left member, never lowers). Returns whether the view changed.
    bool raise_liveness(std::string_view id, Liveness liveness);

    // Changes to this node's own entry; each bumps its heartbeat.
    void beat();
    // Declaring up or left ends this node's change: its ticket is cleared.
    void declare(MemberStatus status);  // joining, up, leaving or left
    void set_tokens(std::vector<uint64_t> tokens);
    void set_change_ticket(uint64_t ticket);
    // One above every change ticket in the view (Lamport): a change announced
    // after another was seen orders after it.
    uint64_t next_change_ticket() const;

    // Removal (kvctl removenode) of member `id`, written by this node: the
    // entry described at the top of this file. Returns false (and changes
    // nothing) for this node itself or an unknown or left member.
    bool remove_member(std::string_view id);
    // The removal this node wrote completed (the member's ranges were
    // re-replicated): the entry becomes left. False when it is not one.
    bool complete_removal(std::string_view id);

  private:
    void changed(const MemberState& before, const MemberState& after);
    void rebuild_ring_members();
    MergeOutcome refute(const MemberState& heard);

    std::string self_id_;
    uint32_t members_max_;
    std::map<std::string, MemberState, std::less<>> states_;
    std::vector<Member> ring_members_;
    uint64_t ring_version_ = 1;
    uint64_t view_version_ = 1;
};

}  // namespace kv::gossip
