#include "node/rebalance/rebalancer.h"

#include <algorithm>
#include <cassert>
#include <set>

#include "node/data/stored_record.h"
#include "node/mutant.h"
#include "ring/range_set.h"

namespace kv::node {

namespace {
// Store keys visited per stream page, matching or not: bounds one step's work
// when few keys of the store fall in the requested ranges.
constexpr size_t kStreamScanKeysMax = 4096;

std::vector<TokenRange> to_wire(const std::vector<ring::Range>& ranges) {
    std::vector<TokenRange> out;
    out.reserve(ranges.size());
    for (const auto& r : ranges) out.push_back(TokenRange{r.start, r.end});
    return out;
}

std::vector<ring::Range> from_wire(const std::vector<TokenRange>& ranges) {
    std::vector<ring::Range> out;
    out.reserve(ranges.size());
    for (const auto& r : ranges) out.push_back(ring::Range{r.start, r.end});
    return out;
}

constexpr const char* kStaticRefusal = "static membership: no ranges move";
constexpr const char* kRingsDiffer = "ring views differ; retry once gossip settles";
}  // namespace

Rebalancer::Rebalancer(const NodeConfig& config, Env& env, RequestIds& ids, NodeStats& stats,
                       const Placement& placement, const Peers& peers, Replica& replica,
                       Handoffs& handoffs, GossipDriver* gossip)
    : config_(config),
      env_(env),
      ids_(ids),
      stats_(stats),
      placement_(placement),
      peers_(peers),
      replica_(replica),
      handoffs_(handoffs),
      gossip_(gossip) {}

bool Rebalancer::transfers_pending() const {
    return std::any_of(inbound_.begin(), inbound_.end(), [](const InboundTransfer& t) {
        return t.phase != InboundTransfer::Phase::done;
    });
}

void Rebalancer::log_received(const InboundTransfer& t, const std::string& why) const {
    env_.log(LogLevel::info, "received " + std::to_string(t.plan.ranges.size()) + " ranges (" +
                                 std::to_string(t.keys) + " keys) from " + t.plan.source + why);
}

void Rebalancer::log_dropped(const InboundTransfer& t, bool move_completed) const {
    if (t.phase == InboundTransfer::Phase::done) return;
    const std::string why = move_completed ? "the move completed" : "the ring changed";
    if (t.phase == InboundTransfer::Phase::handing_off) {
        // Every page arrived, and the handoff's answer did not (the source
        // may have recorded it and completed the move first). Logged as
        // received, so the log accounts for every key this node took in.
        return log_received(t, "; " + why + " before the handoff was answered");
    }
    if (t.keys == 0) return;
    env_.log(LogLevel::info, "transfer of " + std::to_string(t.plan.ranges.size()) +
                                 " ranges from " + t.plan.source + " stopped after " +
                                 std::to_string(t.keys) + " keys: " + why);
}

void Rebalancer::refresh() {
    if (gossip_ == nullptr) return;
    if (!placement_.moving()) {
        for (const auto& t : inbound_) log_dropped(t, true);
        inbound_.clear();
        calls_.clear();
        outbound_needs_.clear();
        keys_sent_to_.clear();
        removal_needs_.clear();
        // The move completed everywhere this node can see: the ranges it
        // handed off are no longer its own in its ring, so nothing is fenced.
        handoffs_.clear();
        return;
    }
    const auto diff = placement_.diff();
    outbound_needs_ = plan_outbound(diff, config_.node_id);
    const std::optional<RemovalPlan> removal = active_removal();
    removal_needs_.clear();
    if (removal && removal->by == config_.node_id) removal_needs_ = plan_removal(diff, *removal);
    std::vector<InboundTransfer> next;
    std::vector<bool> carried(inbound_.size(), false);
    for (auto& plan :
         plan_inbound(diff, config_.node_id, kTransferRangesMax, removal ? &*removal : nullptr)) {
        auto same = std::find_if(inbound_.begin(), inbound_.end(),
                                 [&](const InboundTransfer& t) { return t.plan == plan; });
        if (same != inbound_.end()) {
            carried[static_cast<size_t>(same - inbound_.begin())] = true;
            next.push_back(std::move(*same));  // its progress still holds
        } else {
            InboundTransfer t;
            t.plan = std::move(plan);
            next.push_back(std::move(t));
        }
    }
    for (size_t i = 0; i < inbound_.size(); ++i) {
        if (!carried[i]) log_dropped(inbound_[i], false);
    }
    inbound_ = std::move(next);
    calls_.clear();
    // What was received counts only where the new plan still holds it.
    handoffs_.forget_received();
    for (size_t i = 0; i < inbound_.size(); ++i) {
        if (inbound_[i].call_id != 0) calls_[inbound_[i].call_id] = i;
        if (inbound_[i].phase == InboundTransfer::Phase::done)
            handoffs_.received(inbound_[i].plan.ranges);
    }
}

void Rebalancer::tick(uint64_t now_ms) {
    if (gossip_ == nullptr) return;
    for (auto& t : inbound_) {
        if (t.phase == InboundTransfer::Phase::done) continue;
        if (t.call_id != 0) {
            if (now_ms - t.call_sent_ms < config_.transfer_timeout_ms) continue;
            calls_.erase(t.call_id);
            t.call_id = 0;
        }
        if (now_ms < t.retry_at_ms) continue;
        send_call(t, now_ms);
    }
    maybe_start_leave();
    maybe_start_removal();
    maybe_finish_membership_change();
}

const std::string& Rebalancer::peer_of(const InboundTransfer& t) const {
    const bool handing_off = t.phase == InboundTransfer::Phase::handing_off;
    return handing_off && !t.plan.handoff_to.empty() ? t.plan.handoff_to : t.plan.source;
}

void Rebalancer::send_call(InboundTransfer& t, uint64_t now_ms) {
    assert(t.call_id == 0);
    const std::string& peer = peer_of(t);
    if (peer == config_.node_id) {
        // The handoff of a removal this node runs, for ranges it took over
        // itself: recorded as a handoff from a peer would be.
        handoffs_.record(config_.node_id, t.plan.ranges);
        t.phase = InboundTransfer::Phase::done;
        handoffs_.received(t.plan.ranges);
        log_received(t, "");
        return maybe_finish_membership_change();
    }
    if (!peers_.reachable(peer)) {
        t.retry_at_ms = now_ms + config_.transfer_retry_ms;
        return;
    }
    const uint64_t id = ids_.next();
    t.call_id = id;
    t.call_sent_ms = now_ms;
    calls_[id] = static_cast<size_t>(&t - inbound_.data());
    if (t.phase == InboundTransfer::Phase::streaming) {
        env_.send(t.plan.source,
                  StreamRequest{id, config_.node_id, placement_.digest(), to_wire(t.plan.ranges),
                                t.after_key, config_.stream_keys_per_page});
    } else {
        env_.send(peer,
                  HandoffRequest{id, config_.node_id, placement_.digest(), to_wire(t.plan.ranges)});
    }
}

void Rebalancer::call_failed(InboundTransfer& t, const std::string& why) {
    t.call_id = 0;
    t.retry_at_ms = env_.now_ms() + config_.transfer_retry_ms;
    env_.log(LogLevel::debug, "transfer from " + t.plan.source + " retries: " + why);
}

bool Rebalancer::on_send_failed(const std::string& peer_id, uint64_t request_id) {
    auto call = calls_.find(request_id);
    if (call == calls_.end()) return false;
    InboundTransfer& t = inbound_[call->second];
    calls_.erase(call);
    if (peer_of(t) == peer_id) call_failed(t, "peer " + peer_id + " is not connected");
    return true;
}

bool Rebalancer::on_reply(const std::string& peer_id, const Message& message) {
    auto call = calls_.find(request_id(message));
    if (call == calls_.end()) return false;
    InboundTransfer& t = inbound_[call->second];
    calls_.erase(call);
    if (peer_of(t) != peer_id || t.call_id != request_id(message)) return true;
    t.call_id = 0;
    if (const auto* page = std::get_if<StreamResponse>(&message)) {
        on_page(t, *page);
    } else if (const auto* handoff = std::get_if<HandoffResponse>(&message)) {
        if (handoff->code != ErrorCode::ok) {
            call_failed(t, handoff->message);
            return true;
        }
        t.phase = InboundTransfer::Phase::done;
        handoffs_.received(t.plan.ranges);
        log_received(t, "");
        maybe_finish_membership_change();
    } else if (const auto* error = std::get_if<proto::ErrorResponse>(&message)) {
        call_failed(t, error->message);
    } else {
        call_failed(t, "unexpected '" + std::string(type_name(message)) + "'");
    }
    return true;
}

void Rebalancer::on_page(InboundTransfer& t, const StreamResponse& page) {
    if (page.code != ErrorCode::ok) return call_failed(t, page.message);
    for (size_t i = 0; i < page.keys.size(); ++i) {
        // Merged, not checked: this node is a new owner, not yet a replica.
        Status merged = replica_.merge(page.keys[i], page.objects[i]);
        if (!merged.ok()) return call_failed(t, "merging a streamed key: " + merged.to_string());
    }
    t.keys += page.keys.size();
    stats_.keys_streamed_in += page.keys.size();
    if (page.done) {
        t.phase = InboundTransfer::Phase::handing_off;
    } else if (page.last_key) {
        t.after_key = page.last_key;
    } else {
        return call_failed(t, "a page that is not the last names no last key");
    }
    // The merges are staged before the next request: the effects contract
    // makes them durable before the source hears from us again.
    send_call(t, env_.now_ms());
}

void Rebalancer::maybe_finish_membership_change() {
    maybe_finish_removal();
    const gossip::MemberState& self = gossip_->view().self();
    // A joiner that restarted knows only itself until gossip answers: with no
    // ring to take ranges from it has nothing planned yet, not nothing to do.
    // Only the active change completes (ClusterView::future_ring_input): an
    // inert joiner is not in the future ring, an inert leaver still is.
    const bool in_future = placement_.self_in_future();
    const bool moving = placement_.moving();
    bool pending = transfers_pending();
#ifdef KV_MUTANTS
    // Planted (node/mutant.h): up with one transfer still pending, whose ranges
    // it then serves without their data; convergence and no-lost-write must
    // catch it (with enough keys that the ranges hold some).
    if (KV_MUTANT(joiner_up_early))
        pending = std::count_if(inbound_.begin(), inbound_.end(), [](const InboundTransfer& t) {
                      return t.phase != InboundTransfer::Phase::done;
                  }) > 1;
#endif
    if (self.declared == gossip::MemberStatus::joining && !self.tokens.empty() &&
        !placement_.ring().empty() && moving && in_future && !pending) {
        env_.log(LogLevel::info, "every range streamed in; up");
        return gossip_->declare(gossip::MemberStatus::up);
    }
    if (self.declared != gossip::MemberStatus::leaving || !moving || in_future) return;
    for (const auto& need : outbound_needs_) {
        if (!handed_off(need)) return;
    }
    env_.log(LogLevel::info, "every range handed to its new owner; left the ring");
    gossip_->declare(gossip::MemberStatus::left);
}

std::vector<proto::TransferStatus> Rebalancer::status() {
    std::vector<proto::TransferStatus> out;
    for (const auto& t : inbound_) {
        const char* state = t.phase == InboundTransfer::Phase::done          ? "done"
                            : t.phase == InboundTransfer::Phase::handing_off ? "handing_off"
                            : t.call_id != 0                                 ? "streaming"
                                                                             : "waiting";
        out.push_back(proto::TransferStatus{t.plan.source, "in", state,
                                            static_cast<uint32_t>(t.plan.ranges.size()), t.keys});
    }
    if (placement_.moving()) {
        std::map<std::string, uint32_t> needed, done;
        for (const auto& need : outbound_needs_) {
            ++needed[need.target];
            if (handed_off(need)) ++done[need.target];
        }
        for (const auto& [target, count] : needed) {
            const bool finished = done[target] == count;
            out.push_back(proto::TransferStatus{target, "out", finished ? "done" : "streaming",
                                                count, keys_sent_to_[target]});
        }
    }
    return out;
}

// ---- the source's side ---------------------------------------------------------

void Rebalancer::handle(const ReplyTo& from, const StreamRequest& req) {
    StreamResponse resp;
    resp.id = req.id;
    if (gossip_ == nullptr || req.ring_digest != placement_.digest()) {
        resp.code = ErrorCode::not_owner;
        resp.message = gossip_ != nullptr ? kRingsDiffer : kStaticRefusal;
        return env_.reply(from, std::move(resp));
    }
    ring::RangeSet ranges;
    for (const auto& r : req.ranges) ranges.add(ring::Range{r.start, r.end});
    const size_t keys_max = req.keys_max ? req.keys_max : config_.stream_keys_per_page;
    size_t bytes = 0;
    size_t visited = 0;
    bool stopped = false;
    std::optional<std::string> last = req.after_key;
    Status scanned = env_.scan(
        Space::objects, req.after_key.value_or(std::string()), kStreamScanKeysMax,
        [&](std::string_view stored, std::string_view value) {
            ++visited;
            if (req.after_key && stored == *req.after_key) return true;
            auto record = read_stored_record(stored, value);
            if (record && ranges.contains(record->token)) {
                const size_t record_bytes = record->key.size() + record->object.size();
                if (!resp.keys.empty() && bytes + record_bytes > config_.stream_page_bytes_max) {
                    stopped = true;
                    return false;
                }
                bytes += record_bytes;
                resp.keys.emplace_back(record->key);
                resp.objects.emplace_back(record->object);
            }
            last = std::string(stored);
            if (resp.keys.size() >= keys_max) {
                stopped = true;
                return false;
            }
            return true;
        });
    if (!scanned.ok()) {
        resp = StreamResponse{};
        resp.id = req.id;
        resp.code = ErrorCode::storage_error;
        resp.message = scanned.message();
        return env_.reply(from, std::move(resp));
    }
    resp.done = !stopped && visited < kStreamScanKeysMax;
    resp.last_key = last;
    stats_.keys_streamed_out += resp.keys.size();
    keys_sent_to_[req.from_node] += resp.keys.size();
    env_.reply(from, std::move(resp));
}

void Rebalancer::handle(const ReplyTo& from, const HandoffRequest& req) {
    if (gossip_ == nullptr || req.ring_digest != placement_.digest()) {
        return env_.reply(from,
                          HandoffResponse{req.id, ErrorCode::not_owner,
                                          gossip_ != nullptr ? kRingsDiffer : kStaticRefusal});
    }
    // Staged before the reply: durable before the new owner counts on it.
    handoffs_.record(req.from_node, from_wire(req.ranges));
    env_.reply(from, HandoffResponse{req.id, ErrorCode::ok, {}});
    maybe_finish_membership_change();
}

void Rebalancer::handle(const ReplyTo& from, const proto::LeaveRequest& req) {
    auto answer = [&](ErrorCode code, std::string message) {
        env_.reply(from, proto::AdminResponse{req.id, code, std::move(message)});
    };
    if (gossip_ == nullptr) {
        return answer(ErrorCode::invalid_argument,
                      "this node runs with a static member list (--peers); leaving needs gossip "
                      "membership (--seeds)");
    }
    const gossip::ClusterView& view = gossip_->view();
    const gossip::MemberState& self = view.self();
    if (self.declared == gossip::MemberStatus::left) return answer(ErrorCode::ok, "already left");
    if (self.declared == gossip::MemberStatus::leaving) {
        return answer(ErrorCode::ok, "already leaving; kvctl status shows the transfers");
    }
    if (self.declared != gossip::MemberStatus::up || self.tokens.empty()) {
        return answer(ErrorCode::invalid_argument,
                      "only a member that is up can leave (this one is " +
                          std::string(gossip::status_name(self.declared)) + ")");
    }
    if (!gossip_->removal_target().empty()) {
        return answer(ErrorCode::invalid_argument,
                      "refused: this node's removal of " + gossip_->removal_target() +
                          " is under way; retry once it completes (kvctl status)");
    }
    if (gossip_->leave_queued()) {
        return answer(ErrorCode::ok,
                      "leave already " + leave_status() + "; kvctl status shows its progress");
    }
    bool others = false;
    for (const auto& n : view.ring_input()) others |= n.id != config_.node_id;
    if (!others) return answer(ErrorCode::invalid_argument, "the last member cannot leave");
    // Judged first against this node's view (leaves started or queued that it
    // knows of), and again, with every member's acknowledgement, when its
    // turn comes (maybe_start_leave).
    if (std::string why = below_n(/*with_queued=*/true); !why.empty()) {
        return answer(ErrorCode::invalid_argument, "refused: " + why);
    }
    gossip_->queue_leave();
    answer(ErrorCode::ok,
           "leave queued: it starts once every member has acknowledged it and no other join "
           "or leave is under way or asked earlier (one membership change at a time, "
           "cluster-wide), and is refused then if fewer than n=" +
               std::to_string(config_.n_replicas) +
               " members would remain; kvctl status shows its progress");
}

std::string Rebalancer::below_n(bool with_queued) const {
    const gossip::ClusterView& view = gossip_->view();
    uint32_t staying = 0;
    std::string going;
    for (const auto& [id, s] : view.states()) {
        if (id == config_.node_id || !s.in_ring()) continue;
        const bool leaves =
            s.declared == gossip::MemberStatus::leaving || (with_queued && s.change_ticket != 0);
        if (leaves) {
            going += (going.empty() ? "" : ", ") + id;
        } else {
            ++staying;
        }
    }
    if (staying >= config_.n_replicas) return {};
    return "leaving would keep " + std::to_string(staying) +
           " members for n=" + std::to_string(config_.n_replicas) + " replicas" +
           (going.empty() ? std::string() : " (leaving or queued to leave: " + going + ")");
}

void Rebalancer::refuse_queued_leave(const std::string& why) {
    gossip_->refuse_leave(why);
    env_.log(LogLevel::warn, "the queued leave is refused: " + why);
}

// A queued leave starts in its turn (gossip.h, change_turn: every member
// acknowledged it, nothing else under way or asked earlier). The n check is
// then judged with the cluster-wide state: this node knows all each ring
// member knew after it saw this leave, so any leave that could start
// concurrently is visible here, and no other member is in transition.
void Rebalancer::maybe_start_leave() {
    const gossip::MemberState& self = gossip_->view().self();
    if (self.declared != gossip::MemberStatus::up || !gossip_->leave_queued() ||
        self.tokens.empty()) {
        return;
    }
    // Another leave started meanwhile and leaves too few: refused now rather
    // than when that one completes.
    if (std::string why = below_n(/*with_queued=*/false); !why.empty()) {
        return refuse_queued_leave(why);
    }
    // Waiting for a member that is down, it does not hold its place in line
    // (it would hold back that member's removal): withdrawn, announced again
    // once the member is back or removed.
    if (!gossip_->change_needs_down_member().empty()) {
        if (self.change_ticket != 0) gossip_->suspend_leave();
        return;
    }
    if (self.change_ticket == 0) return gossip_->resume_leave();
    if (gossip_->change_turn().state != gossip::ChangeTurn::State::go) return;
    env_.log(LogLevel::info, "the leave's turn came: every member acknowledged it; leaving");
    gossip_->declare(gossip::MemberStatus::leaving);
}

std::string Rebalancer::leave_status() const {
    if (gossip_ == nullptr) return {};
    const gossip::MemberState& self = gossip_->view().self();
    if (self.declared == gossip::MemberStatus::left) return "left";
    if (self.declared == gossip::MemberStatus::leaving) {
        std::set<std::string> targets;
        size_t done = 0;
        for (const auto& need : outbound_needs_) {
            targets.insert(need.target);
            done += handed_off(need) ? 1 : 0;
        }
        return "leaving: " + std::to_string(done) + " of " +
               std::to_string(outbound_needs_.size()) + " ranges handed to " +
               std::to_string(targets.size()) + " new owners";
    }
    if (self.declared == gossip::MemberStatus::up && gossip_->leave_queued()) {
        if (self.change_ticket == 0) {
            return "queued: waiting for " + gossip_->change_needs_down_member() +
                   ", which is down, to return or be removed (kvctl removenode)";
        }
        return "queued: waiting for " + gossip_->change_turn().waiting_for;
    }
    if (std::string why = gossip_->leave_refusal(); !why.empty()) return "refused: " + why;
    return {};
}

std::string Rebalancer::leave_refusal() const {
    return gossip_ == nullptr ? std::string() : gossip_->leave_refusal();
}

// ---- removal of a member down for good (kvctl removenode) ---------------------

std::optional<RemovalPlan> Rebalancer::active_removal() const {
    const gossip::ClusterView& view = gossip_->view();
    const std::string active = view.active_change();
    if (active.empty()) return std::nullopt;
    const gossip::MemberState* s = view.find(active);
    if (s == nullptr || s->removed_by.empty()) return std::nullopt;
    return RemovalPlan{active, s->removed_by};
}

std::string Rebalancer::removal_refused(const std::string& id, bool queued) const {
    const gossip::ClusterView& view = gossip_->view();
    if (id == config_.node_id)
        return "a node cannot remove itself; a live member leaves with kvctl leave";
    const gossip::MemberState* s = view.find(id);
    if (s == nullptr || s->declared == gossip::MemberStatus::left) {
        return id + " is not a member (kvctl members lists them)";
    }
    // Only the failure detector's verdict: removing a live member would
    // drop a replica that holds data (and it would stop serving when it hears).
    if (s->liveness != gossip::Liveness::down) {
        return id + " is " + std::string(gossip::status_name(s->status())) +
               ", not down: only a member the failure detector reports down can be removed "
               "(a live member leaves with kvctl leave)";
    }
    if (s->in_ring()) {
        uint32_t staying = 0;
        for (const auto& [other, state] : view.states()) {
            if (other != id && state.in_ring() && state.declared != gossip::MemberStatus::leaving) {
                ++staying;
            }
        }
        if (staying < config_.n_replicas) {
            return "removing " + id + " would keep " + std::to_string(staying) +
                   " ring members for n=" + std::to_string(config_.n_replicas) + " replicas";
        }
    }
    if (queued) return {};
    if (view.self().change_ticket != 0) {
        return "this node has a membership change queued already (kvctl status shows it)";
    }
    // A join or leave the member died in is what its removal ends; any
    // other change must complete first (one change at a time).
    if (const std::string active = view.active_change(); !active.empty() && active != id) {
        return "another membership change is under way (" + active + "); retry once it completes";
    }
    return {};
}

void Rebalancer::handle(const ReplyTo& from, const proto::RemoveNodeRequest& req) {
    auto answer = [&](ErrorCode code, std::string message) {
        env_.reply(from, proto::AdminResponse{req.id, code, std::move(message)});
    };
    if (gossip_ == nullptr) {
        return answer(ErrorCode::invalid_argument,
                      "this node runs with a static member list (--peers); removing a member "
                      "needs gossip membership (--seeds)");
    }
    const std::string& id = req.node_id;
    const gossip::MemberState* s = gossip_->view().find(id);
    if (s != nullptr && !s->removed_by.empty()) {
        return answer(ErrorCode::ok, s->declared == gossip::MemberStatus::left
                                         ? id + " was removed by " + s->removed_by
                                         : id + " is being removed by " + s->removed_by +
                                               "; kvctl status shows the transfers");
    }
    if (gossip_->removal_target() == id) {
        return answer(ErrorCode::ok, "removal of " + id + " already queued, waiting for " +
                                         gossip_->change_turn().waiting_for);
    }
    if (std::string why = removal_refused(id, /*queued=*/false); !why.empty()) {
        return answer(ErrorCode::invalid_argument, "refused: " + why);
    }
    gossip_->queue_removal(id);
    env_.log(LogLevel::info, "removal of " + id + " queued");
    answer(ErrorCode::ok,
           "removal of " + id +
               " queued: it starts once every other member has acknowledged it and no other "
               "join or leave is under way or asked earlier; its ranges are then copied from "
               "their surviving replicas to their new owners; kvctl status shows its progress");
}

// In its turn (gossip.h, change_turn), judged again with the cluster-wide
// state: the member still down, and enough members staying.
void Rebalancer::maybe_start_removal() {
    const std::string target = gossip_->removal_target();
    if (target.empty()) return;
    const gossip::MemberState* s = gossip_->view().find(target);
    if (s != nullptr && !s->removed_by.empty()) {
        if (s->removed_by != config_.node_id) {
            gossip_->end_removal(target + " was removed by " + s->removed_by);
        }
        return;  // started: maybe_finish_removal ends it
    }
    if (std::string why = removal_refused(target, /*queued=*/true); !why.empty()) {
        env_.log(LogLevel::warn, "the queued removal of " + target + " is refused: " + why);
        return gossip_->end_removal(why);
    }
    if (gossip_->change_turn().state != gossip::ChangeTurn::State::go) return;
    env_.log(LogLevel::info, "the removal's turn came: removing " + target +
                                 "; its ranges are copied from their surviving replicas");
    gossip_->start_removal();
}

void Rebalancer::maybe_finish_removal() {
    const std::optional<RemovalPlan> removal = active_removal();
    if (removal && removal->by == config_.node_id && placement_.moving()) {
        for (const auto& need : removal_needs_) {
            if (!handed_off(need)) return;
        }
        env_.log(LogLevel::info, "every range of " + removal->member +
                                     " is back on its new owners; it is removed (left)");
        last_removed_ = removal->member;
        gossip_->complete_removal(removal->member);
    }
    // This node's ticket ends with the removal (as a leaver's with its leave).
    const std::string target = gossip_->removal_target();
    if (target.empty()) return;
    const gossip::MemberState* s = gossip_->view().find(target);
    if (s != nullptr && s->removed_by == config_.node_id &&
        s->declared == gossip::MemberStatus::left) {
        last_removed_ = target;
        gossip_->end_removal({});
    }
}

std::string Rebalancer::removal_status() const {
    if (gossip_ == nullptr) return {};
    if (!gossip_->removed_by().empty()) {
        return "this node was removed by " + gossip_->removed_by() +
               " (kvctl removenode); its data is stale and it serves nothing: delete its data "
               "directory to join again as a new node";
    }
    if (gossip_->earlier_life_holds_tokens()) {
        return "waiting: " + config_.node_id +
               " is a ring member holding tokens from an earlier life whose data is gone; this "
               "node joins as a new node once that member is removed (kvctl removenode " +
               config_.node_id + " on a live member)";
    }
    const std::optional<RemovalPlan> removal = active_removal();
    if (removal && removal->by == config_.node_id) {
        std::set<std::string> targets;
        size_t done = 0;
        for (const auto& need : removal_needs_) {
            targets.insert(need.target);
            done += handed_off(need) ? 1 : 0;
        }
        return "removing " + removal->member + ": " + std::to_string(done) + " of " +
               std::to_string(removal_needs_.size()) + " ranges copied to " +
               std::to_string(targets.size()) + " new owners";
    }
    if (removal) return removal->member + " is being removed by " + removal->by;
    if (const std::string target = gossip_->removal_target(); !target.empty()) {
        return "queued: removal of " + target + " waits for " + gossip_->change_turn().waiting_for;
    }
    if (!gossip_->removal_refusal().empty()) return "refused: " + gossip_->removal_refusal();
    if (!last_removed_.empty()) return last_removed_ + " removed";
    return {};
}

}  // namespace kv::node
