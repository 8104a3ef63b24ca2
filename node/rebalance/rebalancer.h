// Rebalancing: range transfers while members join and leave
// (docs/ARCHITECTURE.md, "Rebalancing"; plans in transfer_plan.h).
//
// The protocol, from the new owner's side:
//  1. It learns from gossip that its ring is moving (a joiner claimed tokens
//     and declared itself joining, or a member declared itself leaving).
//  2. For each source (a replica it displaces) it pulls pages of the ranges it
//     gains. A source serves only when its ring digest equals the puller's, so
//     it knows of the move and refuses writes that skip the new owner.
//  3. When a source's pages are done it sends a handoff: from then on the source
//     refuses reads and writes of those ranges (not_owner) while its ring keeps
//     moving them, so no coordinator with a stale ring can count it (Handoffs).
//  4. A joiner whose transfers are all handed off declares itself up; a leaver
//     whose ranges were all handed off declares itself left.
// Writes reach both the old and the new owners meanwhile (the coordinator
// writes Placement::pending_replicas too). With a static member list nothing
// moves: transfer requests are refused and leave is not offered.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "node/env.h"
#include "node/membership/gossip_driver.h"
#include "node/membership/peers.h"
#include "node/membership/placement.h"
#include "node/node_config.h"
#include "node/peer_protocol.h"
#include "node/rebalance/transfer_plan.h"
#include "node/replica/handoffs.h"
#include "node/replica/replica.h"

namespace kv::node {

class Rebalancer {
  public:
    Rebalancer(const NodeConfig& config, Env& env, RequestIds& ids, NodeStats& stats,
               const Placement& placement, const Peers& peers, Replica& replica, Handoffs& handoffs,
               GossipDriver* gossip);

    // Replans after the rings changed (Placement::refresh returned true).
    void refresh();
    void tick(uint64_t now_ms);
    // A reply or a failed send of a transfer call; false when the id is not one.
    bool on_reply(const std::string& peer_id, const Message& message);
    bool on_send_failed(const std::string& peer_id, uint64_t request_id);

    // The source's side: a page of a range, and the handoff that fences it.
    void handle(const ReplyTo& from, const StreamRequest& req);
    void handle(const ReplyTo& from, const HandoffRequest& req);
    // kvctl leave: refused when it cannot work, else queued; the leave starts
    // (this node declares itself leaving) in its turn (maybe_start_leave).
    void handle(const ReplyTo& from, const proto::LeaveRequest& req);
    // kvctl removenode: refused when it cannot work, else queued; the removal
    // starts in its turn (maybe_start_removal).
    void handle(const ReplyTo& from, const proto::RemoveNodeRequest& req);

    // Ranges this node still has to receive before the change completes.
    bool transfers_pending() const;
    // Progress for kvctl status: inbound transfers, then outbound by target.
    std::vector<proto::TransferStatus> status();
    // This node's leave for kvctl status (proto::StatusResponse::leave).
    std::string leave_status() const;
    // Why a leave this node accepted (queued) was refused later; empty if not.
    std::string leave_refusal() const;
    // The removal this node was asked for or knows of, for kvctl status
    // (proto::StatusResponse::removal).
    std::string removal_status() const;

  private:
    struct InboundTransfer {
        enum class Phase : uint8_t { streaming, handing_off, done };
        InboundPlan plan;
        Phase phase = Phase::streaming;
        std::optional<std::string> after_key;
        uint64_t keys = 0;
        uint64_t call_id = 0;  // request in flight, 0 when none
        uint64_t call_sent_ms = 0;
        uint64_t retry_at_ms = 0;
    };
    void send_call(InboundTransfer& t, uint64_t now_ms);
    void call_failed(InboundTransfer& t, const std::string& why);
    void on_page(InboundTransfer& t, const StreamResponse& page);
    void maybe_finish_membership_change();
    // "received R ranges (K keys) from X", then `why`: one line per transfer
    // whose every page arrived, so the log accounts for the keys taken in.
    void log_received(const InboundTransfer& t, const std::string& why) const;
    // A transfer given up because the ring changed (`move_completed`: to a
    // ring with nothing moving): what it had received.
    void log_dropped(const InboundTransfer& t, bool move_completed) const;
    void maybe_start_leave();
    void maybe_start_removal();
    void maybe_finish_removal();
    // The removal under way (the active change is a removed member), if any.
    std::optional<RemovalPlan> active_removal() const;
    // Why removing `id` now cannot work; empty when it can. `queued`: judged
    // again in its turn (this node's own ticket is then expected).
    std::string removal_refused(const std::string& id, bool queued) const;
    // Where a transfer's current call goes: its source, or where it hands off.
    const std::string& peer_of(const InboundTransfer& t) const;
    // Why leaving now would take the ring below n_replicas members, counting
    // only the members that stay: empty when it would not. `with_queued`
    // also counts out the members whose leaves are queued (announced).
    std::string below_n(bool with_queued) const;
    void refuse_queued_leave(const std::string& why);
    bool handed_off(const OutboundNeed& need) const {
        return handoffs_.handed_off(need.target, need.range);
    }

    const NodeConfig& config_;
    Env& env_;
    RequestIds& ids_;
    NodeStats& stats_;
    const Placement& placement_;
    const Peers& peers_;
    Replica& replica_;
    Handoffs& handoffs_;
    GossipDriver* gossip_;  // null with a static member list: nothing moves

    std::vector<InboundTransfer> inbound_;
    std::map<uint64_t, size_t> calls_;              // request id -> index in inbound_
    std::vector<OutboundNeed> outbound_needs_;      // ranges this node gives up, and to whom
    std::map<std::string, uint64_t> keys_sent_to_;  // progress of outbound streams
    // The removal this node runs: the ranges the removed member gives up, and
    // to whom (handed off here in its place).
    std::vector<OutboundNeed> removal_needs_;
    std::string last_removed_;  // the member this node removed last, for status
};

}  // namespace kv::node
