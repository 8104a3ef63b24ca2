// Drives gossip::Gossiper for the node: starts it from what an earlier life
// persisted (incarnation, tokens, declared status, the view of the others),
// runs its rounds, answers its messages, claims this node's tokens when it
// joins, and persists every fact a restart needs before the messages that
// announce it leave (Env effects contract). Only with gossip membership.
//
// Whenever the view may have changed it calls `on_view_change`, so the node
// rebuilds its placement at once (not at its next request).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "client/status.h"
#include "gossip/gossip.h"
#include "node/env.h"
#include "node/node_config.h"
#include "node/peer_protocol.h"

namespace kv::node {

class GossipDriver {
  public:
    GossipDriver(const NodeConfig& config, Env& env, RequestIds& ids,
                 std::function<void()> on_view_change);

    // Bumps and persists the incarnation, reloads tokens, status and view.
    // `started_ms` is when the node started (the seed's wait counts from it).
    Status start(uint64_t started_ms);
    void tick(uint64_t now_ms);
    // One step of a round from a peer; bad_request when its payload is not gossip.
    Status handle(const GossipRequest& req);
    // Declares this node's status to the cluster (persisted first). Declaring
    // leaving starts a queued leave: its record is dropped (the status says it).
    void declare(gossip::MemberStatus status);
    // A leave asked of this node: announced to the cluster (a change ticket,
    // gossip.h announce_change) and recorded, so a restart announces it again.
    void queue_leave();
    // A queued leave that will not happen: withdrawn, and the reason recorded
    // (status shows it, across restarts too, until another leave is asked).
    void refuse_leave(const std::string& why);
    // A leave is queued (asked, not started, not refused).
    bool leave_queued() const { return leave_record_ == kLeaveQueued; }
    // A queued leave waiting for a member that is down withdraws its ticket
    // (gossip.h, change_needs_down_member) and announces it again later; it
    // stays queued (the meta record is unchanged).
    void suspend_leave() { gossiper_->withdraw_change(); }
    void resume_leave() { gossiper_->announce_change(); }
    // Whose acknowledgement, missing, a change would wait for while it is down.
    std::string change_needs_down_member() const { return gossiper_->change_needs_down_member(); }
    // Why the last leave asked of this node was refused after it was queued;
    // empty when it was not.
    std::string leave_refusal() const;
    // kvctl removenode of member `id` (gossip.h, announce_removal). Not
    // persisted: a restart of this node before the removal starts forgets it
    // (the operator asks again); once started, the removal entry in gossip is
    // the record, and this node resumes tracking it.
    void queue_removal(const std::string& id);
    // In its turn: writes the removal entry (ClusterView::remove_member).
    void start_removal();
    // The removed member's ranges are all re-replicated: its entry becomes left.
    void complete_removal(const std::string& id);
    // Withdraws this node's removal ticket (completed, or refused: `why`).
    void end_removal(const std::string& why);
    // The member whose removal this node announced (queued or under way).
    const std::string& removal_target() const { return gossiper_->removal_target(); }
    // Why the last removal asked of this node was refused; empty if not.
    const std::string& removal_refusal() const { return removal_refusal_; }
    // Who removed this node while it held tokens (it must not serve, and will
    // not start again with this data); empty when it was not removed.
    const std::string& removed_by() const { return gossiper_->removed_by(); }
    // Gossiper::earlier_life_holds_tokens: waits for its earlier life's removal.
    bool earlier_life_holds_tokens() const { return gossiper_->earlier_life_holds_tokens(); }
    // Whether this node's announced change may start now (gossip.h).
    gossip::ChangeTurn change_turn() const { return gossiper_->change_turn(); }
    // Saves the view of the other members for the next life.
    void persist_view();

    // Null before start().
    const gossip::Gossiper* gossiper() const { return gossiper_.get(); }
    const gossip::ClusterView& view() const { return gossiper_->view(); }

  private:
    void send(std::vector<gossip::Outgoing> out);
    void maybe_claim_tokens(uint64_t now_ms);
    void persist_incarnation(uint64_t incarnation);
    // Records (once) that this node was removed; true when it was.
    bool note_removed();

    const NodeConfig& config_;
    Env& env_;
    RequestIds& ids_;
    std::function<void()> on_view_change_;
    std::unique_ptr<gossip::Gossiper> gossiper_;
    std::mt19937_64 rng_;           // seeded from Env in start(): deterministic in the simulator
    bool seeds_elsewhere_ = false;  // a seed other than this node's own endpoint
    bool self_is_seed_ = false;     // this node's own endpoint is among the seeds
    uint64_t started_ms_ = 0;
    uint64_t ring_known_since_ms_ = 0;  // when a joiner first heard of a ring member
    uint64_t persisted_incarnation_ = 0;
    // The meta record kLeaveKey: empty when absent, kLeaveQueued, or
    // kLeaveRefused followed by the reason.
    static constexpr std::string_view kLeaveQueued = "queued";
    static constexpr std::string_view kLeaveRefused = "refused: ";
    std::string leave_record_;
    std::string removal_refusal_;
    bool removed_recorded_ = false;
    bool earlier_life_warned_ = false;
};

}  // namespace kv::node
