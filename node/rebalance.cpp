// Rebalancing: range transfers while members join and leave (node/node.h,
// node/transfer_plan.h, docs/ARCHITECTURE.md "Rebalancing").
//
// The protocol, from the new owner's side:
//  1. It learns from gossip that its ring is moving (a joiner claimed tokens
//     and declared itself joining, or a member declared itself leaving).
//  2. For each source (a replica it displaces) it pulls pages of the ranges it
//     gains. A source serves only when its ring digest equals the puller's, so
//     it knows of the move and refuses writes that skip the new owner.
//  3. When a source's pages are done it sends a handoff: from then on the source
//     refuses reads and writes of those ranges (not_owner) while its ring keeps
//     moving them, so no coordinator with a stale ring can count it.
//  4. A joiner whose transfers are all handed off declares itself up; a leaver
//     whose ranges were all handed off declares itself left.
// Writes reach both the old and the new owners meanwhile (Node::handle_write).
#include <algorithm>
#include <cassert>

#include "node/node.h"

namespace kv::node {

namespace {
// Every handoff this node accepted: target, then its ranges.
constexpr std::string_view kHandoffsMetaKey = "handoffs";
// Store keys visited per stream page, matching or not: bounds one step's work
// when few keys of the store fall in the requested ranges.
constexpr size_t kStreamScanKeysMax = 4096;

void put_u64(std::string& out, uint64_t v) {
    for (int b = 0; b < 8; ++b) out.push_back(static_cast<char>((v >> (8 * b)) & 0xff));
}

bool get_u64(std::string_view& in, uint64_t& v) {
    if (in.size() < 8) return false;
    v = 0;
    for (int b = 0; b < 8; ++b) v |= uint64_t{static_cast<uint8_t>(in[b])} << (8 * b);
    in.remove_prefix(8);
    return true;
}

std::vector<TokenRange> to_wire(const std::vector<ring::Range>& ranges) {
    std::vector<TokenRange> out;
    out.reserve(ranges.size());
    for (const auto& r : ranges) out.push_back(TokenRange{r.start, r.end});
    return out;
}

bool contains(const std::vector<std::string>& ids, const std::string& id) {
    return std::find(ids.begin(), ids.end(), id) != ids.end();
}

std::string join(const std::vector<std::string>& ids) {
    std::string out;
    for (const auto& id : ids) out += (out.empty() ? "" : ",") + id;
    return out;
}
}  // namespace

bool Node::transfers_pending() const {
    return std::any_of(inbound_.begin(), inbound_.end(), [](const InboundTransfer& t) {
        return t.phase != InboundTransfer::Phase::done;
    });
}

std::vector<std::string> Node::pending_replicas(const std::string& key, uint32_t n) const {
    if (!moving_) return {};
    const uint32_t n_future =
        std::min<uint32_t>(config_.n_replicas, static_cast<uint32_t>(future_ring_.nodes().size()));
    const uint64_t hash = ring::hash64(key);
    const std::vector<std::string> current = ring_.preference_list_for_hash(hash, n);
    std::vector<std::string> out;
    for (auto& id : future_ring_.preference_list_for_hash(hash, n_future)) {
        if (!contains(current, id)) out.push_back(std::move(id));
    }
    return out;
}

Status Node::check_replica(const std::string& key, bool is_write,
                           const std::vector<std::string>& targets) const {
    // A static member list never moves ranges; every node computes one ring.
    if (!gossiper_) return {};
    const uint64_t hash = ring::hash64(key);
    const uint32_t n =
        std::min<uint32_t>(config_.n_replicas, static_cast<uint32_t>(ring_.nodes().size()));
    const std::vector<std::string> current = ring_.preference_list_for_hash(hash, n);
    const bool in_current = contains(current, config_.node_id);
    if (!moving_) {
        if (in_current) return {};
        return Status(ErrorCode::not_owner,
                      "node " + config_.node_id +
                          " does not replicate this key (its replicas: " + join(current) + ")");
    }
    const uint32_t n_future =
        std::min<uint32_t>(config_.n_replicas, static_cast<uint32_t>(future_ring_.nodes().size()));
    const std::vector<std::string> future = future_ring_.preference_list_for_hash(hash, n_future);
    const bool in_future = contains(future, config_.node_id);
    if (!in_current && !in_future) {
        return Status(ErrorCode::not_owner,
                      "node " + config_.node_id + " does not replicate this key");
    }
    if (!in_future && fenced_.contains(hash)) {
        return Status(ErrorCode::not_owner,
                      "node " + config_.node_id + " handed this key's range to its new owner");
    }
    if (!is_write && !in_current) {
        return Status(ErrorCode::not_owner,
                      "this key's range is still moving to node " + config_.node_id);
    }
    if (is_write && !targets.empty()) {
        for (const auto& id : future) {
            if (!contains(current, id) && !contains(targets, id)) {
                return Status(ErrorCode::not_owner,
                              "the write skips " + id + ", a new owner of the key's range");
            }
        }
    }
    return {};
}

void Node::refresh_transfers() {
    if (!gossiper_) return;
    if (!moving_) {
        inbound_.clear();
        transfer_calls_.clear();
        outbound_needs_.clear();
        keys_sent_to_.clear();
        if (!handed_off_.empty()) {
            // The move completed everywhere this node can see: the ranges it
            // handed off are no longer its own in its ring, so nothing is fenced.
            handed_off_.clear();
            fenced_.clear();
            persist_handoffs();
        }
        return;
    }
    const auto diff = ring::ownership_diff(ring_, future_ring_, config_.n_replicas);
    outbound_needs_ = plan_outbound(diff, config_.node_id);
    std::vector<InboundTransfer> next;
    for (auto& plan : plan_inbound(diff, config_.node_id, kTransferRangesMax)) {
        auto same = std::find_if(inbound_.begin(), inbound_.end(),
                                 [&](const InboundTransfer& t) { return t.plan == plan; });
        if (same != inbound_.end()) {
            next.push_back(std::move(*same));  // its progress still holds
        } else {
            InboundTransfer t;
            t.plan = std::move(plan);
            next.push_back(std::move(t));
        }
    }
    inbound_ = std::move(next);
    transfer_calls_.clear();
    for (size_t i = 0; i < inbound_.size(); ++i) {
        if (inbound_[i].call_id != 0) transfer_calls_[inbound_[i].call_id] = i;
    }
}

void Node::transfer_tick(uint64_t now_ms) {
    for (auto& t : inbound_) {
        if (t.phase == InboundTransfer::Phase::done) continue;
        if (t.call_id != 0) {
            if (now_ms - t.call_sent_ms < config_.transfer_timeout_ms) continue;
            transfer_calls_.erase(t.call_id);
            t.call_id = 0;
        }
        if (now_ms < t.retry_at_ms) continue;
        send_transfer_call(t, now_ms);
    }
    maybe_finish_membership_change();
}

void Node::send_transfer_call(InboundTransfer& t, uint64_t now_ms) {
    assert(t.call_id == 0);
    if (!reachable(t.plan.source)) {
        t.retry_at_ms = now_ms + config_.transfer_retry_ms;
        return;
    }
    const uint64_t id = next_id_++;
    t.call_id = id;
    t.call_sent_ms = now_ms;
    transfer_calls_[id] = static_cast<size_t>(&t - inbound_.data());
    if (t.phase == InboundTransfer::Phase::streaming) {
        env_.send(t.plan.source,
                  StreamRequest{id, config_.node_id, ring_digest_, to_wire(t.plan.ranges),
                                t.after_key, config_.stream_keys_per_page});
    } else {
        env_.send(t.plan.source,
                  HandoffRequest{id, config_.node_id, ring_digest_, to_wire(t.plan.ranges)});
    }
}

void Node::transfer_call_failed(InboundTransfer& t, const std::string& why) {
    t.call_id = 0;
    t.retry_at_ms = env_.now_ms() + config_.transfer_retry_ms;
    log(LogLevel::debug, "transfer from " + t.plan.source + " retries: " + why);
}

bool Node::on_transfer_reply(const std::string& peer_id, const node::Message& message) {
    auto call = transfer_calls_.find(node::request_id(message));
    if (call == transfer_calls_.end()) return false;
    InboundTransfer& t = inbound_[call->second];
    transfer_calls_.erase(call);
    if (t.plan.source != peer_id || t.call_id != node::request_id(message)) return true;
    t.call_id = 0;
    if (const auto* page = std::get_if<StreamResponse>(&message)) {
        if (page->code != ErrorCode::ok) {
            transfer_call_failed(t, page->message);
            return true;
        }
        for (size_t i = 0; i < page->keys.size(); ++i) {
            // Merged, not checked: this node is a new owner, not yet a replica.
            Status merged = replica_merge(page->keys[i], page->objects[i]);
            if (!merged.ok()) {
                transfer_call_failed(t, "merging a streamed key: " + merged.to_string());
                return true;
            }
        }
        t.keys += page->keys.size();
        stats_.keys_streamed_in += page->keys.size();
        if (page->done) {
            t.phase = InboundTransfer::Phase::handing_off;
        } else if (page->last_key) {
            t.after_key = page->last_key;
        } else {
            transfer_call_failed(t, "a page that is not the last names no last key");
            return true;
        }
        // The merges are staged before the next request: the effects contract
        // makes them durable before the source hears from us again.
        send_transfer_call(t, env_.now_ms());
    } else if (const auto* handoff = std::get_if<HandoffResponse>(&message)) {
        if (handoff->code != ErrorCode::ok) {
            transfer_call_failed(t, handoff->message);
            return true;
        }
        t.phase = InboundTransfer::Phase::done;
        log(LogLevel::info, "received " + std::to_string(t.plan.ranges.size()) + " ranges (" +
                                std::to_string(t.keys) + " keys) from " + t.plan.source);
        maybe_finish_membership_change();
    } else if (const auto* error = std::get_if<proto::ErrorResponse>(&message)) {
        transfer_call_failed(t, error->message);
    } else {
        transfer_call_failed(t, "unexpected '" + std::string(node::type_name(message)) + "'");
    }
    return true;
}

void Node::maybe_finish_membership_change() {
    const gossip::MemberState& self = gossiper_->view().self();
    // A joiner that restarted knows only itself until gossip answers: with no
    // ring to take ranges from it has nothing planned yet, not nothing to do.
    // Only the active change completes (ClusterView::future_ring_input): an
    // inert joiner is not in the future ring, an inert leaver still is.
    const auto& future_nodes = future_ring_.nodes();
    const bool in_future =
        std::find(future_nodes.begin(), future_nodes.end(), config_.node_id) != future_nodes.end();
    if (self.declared == gossip::MemberStatus::joining && !self.tokens.empty() && !ring_.empty() &&
        moving_ && in_future && !transfers_pending()) {
        log(LogLevel::info, "every range streamed in; up");
        return declare(gossip::MemberStatus::up);
    }
    if (self.declared != gossip::MemberStatus::leaving || !moving_ || in_future) return;
    for (const auto& need : outbound_needs_) {
        if (!handed_off(need)) return;
    }
    log(LogLevel::info, "every range handed to its new owner; left the ring");
    declare(gossip::MemberStatus::left);
}

bool Node::handed_off(const OutboundNeed& need) const {
    auto h = handed_off_.find(need.target);
    return h != handed_off_.end() && h->second.count({need.range.start, need.range.end}) != 0;
}

// ---- the source's side ---------------------------------------------------------

void Node::handle(const ReplyTo& from, const StreamRequest& req) {
    StreamResponse resp;
    resp.id = req.id;
    if (!gossiper_ || req.ring_digest != ring_digest_) {
        resp.code = ErrorCode::not_owner;
        resp.message = gossiper_ ? "ring views differ; retry once gossip settles"
                                 : "static membership: no ranges move";
        return env_.reply(from, std::move(resp));
    }
    RangeSet ranges;
    for (const auto& r : req.ranges) ranges.add(ring::Range{r.start, r.end});
    const size_t keys_max = req.keys_max ? req.keys_max : config_.stream_keys_per_page;
    size_t bytes = 0;
    size_t visited = 0;
    bool stopped = false;
    std::optional<std::string> last = req.after_key;
    Status scanned =
        env_.scan(Space::data, req.after_key.value_or(std::string()), kStreamScanKeysMax,
                  [&](std::string_view key, std::string_view object) {
                      ++visited;
                      if (req.after_key && key == *req.after_key) return true;
                      if (ranges.contains(ring::hash64(key))) {
                          if (!resp.keys.empty() &&
                              bytes + key.size() + object.size() > config_.stream_page_bytes_max) {
                              stopped = true;
                              return false;
                          }
                          bytes += key.size() + object.size();
                          resp.keys.emplace_back(key);
                          resp.objects.emplace_back(object);
                      }
                      last = std::string(key);
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

void Node::handle(const ReplyTo& from, const HandoffRequest& req) {
    if (!gossiper_ || req.ring_digest != ring_digest_) {
        return env_.reply(from,
                          HandoffResponse{req.id, ErrorCode::not_owner,
                                          gossiper_ ? "ring views differ; retry once gossip settles"
                                                    : "static membership: no ranges move"});
    }
    auto& mine = handed_off_[req.from_node];
    for (const auto& r : req.ranges) {
        mine.emplace(r.start, r.end);
        fenced_.add(ring::Range{r.start, r.end});
    }
    // Staged before the reply: durable before the new owner counts on it.
    persist_handoffs();
    env_.reply(from, HandoffResponse{req.id, ErrorCode::ok, {}});
    maybe_finish_membership_change();
}

void Node::handle(const ReplyTo& from, const proto::LeaveRequest& req) {
    auto answer = [&](ErrorCode code, std::string message) {
        env_.reply(from, proto::AdminResponse{req.id, code, std::move(message)});
    };
    if (!gossiper_) {
        return answer(ErrorCode::invalid_argument,
                      "this node runs with a static member list (--peers); leaving needs gossip "
                      "membership (--seeds)");
    }
    const gossip::MemberState& self = gossiper_->view().self();
    if (self.declared == gossip::MemberStatus::left) return answer(ErrorCode::ok, "already left");
    if (self.declared == gossip::MemberStatus::leaving) {
        return answer(ErrorCode::ok, "already leaving; kvctl status shows the transfers");
    }
    if (self.declared != gossip::MemberStatus::up || self.tokens.empty()) {
        return answer(ErrorCode::invalid_argument,
                      "only a member that is up can leave (this one is " +
                          std::string(gossip::status_name(self.declared)) + ")");
    }
    bool others = false;
    for (const auto& n : gossiper_->view().ring_input()) others |= n.id != config_.node_id;
    if (!others) return answer(ErrorCode::invalid_argument, "the last member cannot leave");
    // One change at a time: ranges planned against a ring that another change
    // then alters would not reach their real owners.
    for (const auto& [id, s] : gossiper_->view().states()) {
        if (id != config_.node_id && s.in_transition()) {
            return answer(ErrorCode::unavailable, "another membership change is under way (" + id +
                                                      " is " +
                                                      std::string(gossip::status_name(s.declared)) +
                                                      "); retry once it completes");
        }
    }
    declare(gossip::MemberStatus::leaving);
    std::set<std::string> targets;
    for (const auto& need : outbound_needs_) targets.insert(need.target);
    answer(ErrorCode::ok, "leaving: " + std::to_string(outbound_needs_.size()) +
                              " ranges move to " + std::to_string(targets.size()) +
                              " new owners; kvctl status shows the progress");
}

// ---- persistence of handoffs -----------------------------------------------------

void Node::persist_handoffs() {
    std::string bytes;
    for (const auto& [target, ranges] : handed_off_) {
        put_u64(bytes, target.size());
        bytes += target;
        put_u64(bytes, ranges.size());
        for (const auto& [start, end] : ranges) {
            put_u64(bytes, start);
            put_u64(bytes, end);
        }
    }
    env_.stage_write(StoreWrite{Space::meta, std::string(kHandoffsMetaKey),
                                bytes.empty() ? std::nullopt : std::optional(bytes)});
}

void Node::load_handoffs() {
    auto stored = env_.read(Space::meta, kHandoffsMetaKey);
    if (!stored || !stored.value()) return;
    std::string_view in = *stored.value();
    while (!in.empty()) {
        uint64_t size = 0;
        uint64_t count = 0;
        if (!get_u64(in, size) || size > in.size()) break;
        std::string target(in.substr(0, size));
        in.remove_prefix(size);
        if (!get_u64(in, count) || count > in.size() / 16) break;
        for (uint64_t i = 0; i < count; ++i) {
            ring::Range r;
            get_u64(in, r.start);
            get_u64(in, r.end);
            handed_off_[target].emplace(r.start, r.end);
            fenced_.add(r);
        }
    }
    if (!in.empty()) log(LogLevel::error, "the stored handoffs are corrupt; the rest is ignored");
}

}  // namespace kv::node
