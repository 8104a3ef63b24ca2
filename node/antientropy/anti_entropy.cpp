#include "node/antientropy/anti_entropy.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <utility>

namespace kv::node {

namespace {

// Bytes of objects per ae_keys reply and per ae_push.
constexpr size_t kObjectBytesPerStepMax = size_t{4} << 20;
// Steps of one exchange before it is given up (a peer that never converges).
constexpr size_t kStepsMax = 100000;
// A refill exchange that failed (a peer not ready or unreachable) is retried
// after this (tick_refill says when a member that is down is waited for).
constexpr uint64_t kRefillRetryMs = 100;

std::string names_of(const std::set<std::string>& ids) {
    std::string names;
    for (const auto& id : ids) names += (names.empty() ? "" : ", ") + id;
    return names;
}

size_t payload_bytes(const std::vector<std::string>& items) {
    size_t n = 0;
    for (const auto& s : items) n += s.size();
    return n;
}

}  // namespace

std::vector<TokenInterval> intervals_of(const ring::Range& range) {
    constexpr uint64_t kMax = ~uint64_t{0};
    if (range.start == range.end) return {TokenInterval{0, kMax}};
    if (range.start < range.end) return {TokenInterval{range.start + 1, range.end}};
    std::vector<TokenInterval> out;
    out.push_back(TokenInterval{0, range.end});
    if (range.start != kMax) out.push_back(TokenInterval{range.start + 1, kMax});
    return out;
}

std::vector<TokenInterval> shared_intervals(const ring::Ring& ring, uint32_t n,
                                            const std::string& a, const std::string& b) {
    std::vector<TokenInterval> all;
    const auto& tokens = ring.tokens();
    for (size_t i = 0; i < tokens.size(); ++i) {
        const uint64_t end = tokens[i].position;
        const uint64_t start = tokens[(i + tokens.size() - 1) % tokens.size()].position;
        if (i > 0 && start == end) continue;  // an empty arc (equal positions)
        const auto replicas = ring.preference_list_for_hash(end, n);
        if (!has_id(replicas, a) || !has_id(replicas, b)) continue;
        for (const auto& iv : intervals_of(ring::Range{start, end})) all.push_back(iv);
    }
    std::sort(all.begin(), all.end(),
              [](const TokenInterval& x, const TokenInterval& y) { return x.lo < y.lo; });
    std::vector<TokenInterval> joined;
    for (const auto& iv : all) {
        if (!joined.empty() && joined.back().hi != ~uint64_t{0} && joined.back().hi + 1 >= iv.lo) {
            joined.back().hi = std::max(joined.back().hi, iv.hi);
        } else {
            joined.push_back(iv);
        }
    }
    return joined;
}

AntiEntropy::AntiEntropy(const NodeConfig& config, Env& env, RequestIds& ids, NodeStats& stats,
                         const Placement& placement, const Peers& peers, Replica& replica,
                         KeyIndex& index, const HintStore& hints)
    : config_(config),
      env_(env),
      ids_(ids),
      stats_(stats),
      placement_(placement),
      peers_(peers),
      replica_(replica),
      index_(index),
      hints_(hints) {}

std::vector<std::string> AntiEntropy::ring_peers() const {
    std::vector<std::string> out;
    for (const auto& id : placement_.ring().nodes()) {
        if (id != config_.node_id) out.push_back(id);
    }
    return out;
}

void AntiEntropy::tick(uint64_t now_ms) {
    if (current_) {
        if (placement_.moving()) return finish(false, "ranges started moving");
        if (current_->call_id != 0 &&
            now_ms >= current_->call_sent_ms + config_.transfer_timeout_ms) {
            return finish(false, "no answer from " + current_->peer);
        }
        return;
    }
    if (!index_.ready() || placement_.moving()) return;
    if (tick_refill(now_ms)) return;
    if (!repair_queue_.empty()) {
        const std::string peer = repair_queue_.front();
        repair_queue_.pop_front();
        if (!has_id(placement_.ring().nodes(), peer) || !peers_.reachable(peer)) {
            ++repair_failed_;
            env_.log(LogLevel::warn, "repair: " + peer + " is unreachable; skipped");
            return;
        }
        start_exchange(peer, now_ms, repair_range_);
        if (current_) current_->for_repair = true;
        return;
    }
    if (!config_.anti_entropy || now_ms < next_start_ms_) return;
    next_start_ms_ = now_ms + config_.anti_entropy_interval_ms;
    const auto peers = ring_peers();
    if (peers.empty()) return;
    // Round robin, skipping members that are down now (they are retried on
    // their next turn; a mark never advances without a completed exchange).
    for (size_t tried = 0; tried < peers.size(); ++tried) {
        const std::string& peer = peers[next_peer_++ % peers.size()];
        if (peers_.reachable(peer)) return start_exchange(peer, now_ms, std::nullopt);
    }
}

void AntiEntropy::begin_refill(std::string why, std::function<void()> when_done) {
    refill_why_ = std::move(why);
    refill_keys_received_at_begin_ = stats_.ae_keys_received;
    refill_down_logged_ = false;
    if (when_done) refill_done_ = std::move(when_done);
    for (const auto& peer : ring_peers()) refill_waiting_.insert(peer);
    if (refill_waiting_.empty()) {
        if (auto done = std::exchange(refill_done_, nullptr)) done();
        return;
    }
    env_.log(LogLevel::info, "refill: " + refill_why_ +
                                 "; replica reads wait for an exchange with each of " +
                                 std::to_string(refill_waiting_.size()) + " other members");
    publish_refill();
}

void AntiEntropy::publish_refill() {
    if (refill_waiting_.empty()) {
        replica_.set_refilling(std::nullopt);
        env_.log(LogLevel::info, "refill: done; replica reads are served");
        if (auto done = std::exchange(refill_done_, nullptr)) done();
        return;
    }
    replica_.set_refilling(config_.node_id + " is refilling: " + refill_why_ +
                           " and has not yet exchanged with " + names_of(refill_waiting_));
}

bool AntiEntropy::tick_refill(uint64_t now_ms) {
    if (refill_waiting_.empty()) return false;
    const auto& nodes = placement_.ring().nodes();
    bool dropped = false;
    for (auto it = refill_waiting_.begin(); it != refill_waiting_.end();) {
        if (!has_id(nodes, *it)) {
            env_.log(LogLevel::warn, "refill: " + *it + " left the ring; not waited for");
            it = refill_waiting_.erase(it);
            dropped = true;
        } else {
            ++it;
        }
    }
    std::vector<std::string> up;
    for (const auto& peer : refill_waiting_) {
        if (peers_.reachable(peer)) up.push_back(peer);
    }
    // Only members that are down are left. What only they and the lost disk
    // held comes back with them, and a replica read counted here before would
    // miss it: they are waited for, unless anti-entropy brought nothing since
    // the refill began (a new cluster, where no member held anything to
    // lose). Keys a peer's own exchange pushed count too: its push can leave
    // the refill's exchange with that peer nothing to bring (kvsim seed 92019
    // of disk-loss).
    if (!refill_waiting_.empty() && up.empty()) {
        if (stats_.ae_keys_received == refill_keys_received_at_begin_) {
            env_.log(LogLevel::warn,
                     "refill: the other members held nothing for this node (a new cluster); "
                     "not waiting for " +
                         names_of(refill_waiting_) + ", which " +
                         (refill_waiting_.size() == 1 ? "is" : "are") + " down");
            refill_waiting_.clear();
            dropped = true;
        } else if (!refill_down_logged_) {
            refill_down_logged_ = true;
            env_.log(LogLevel::warn,
                     "refill: waiting for " + names_of(refill_waiting_) +
                         ", down: writes only they and this node's lost data held come back "
                         "with them; until then replica reads here answer unavailable");
        }
    }
    if (dropped) publish_refill();
    // Nothing to do until a member is up: scheduled exchanges and repairs go on.
    if (refill_waiting_.empty() || up.empty()) return false;
    if (now_ms < refill_retry_ms_) return true;
    // Round robin, so one member that keeps refusing does not hold up the rest.
    const std::string& peer = up[refill_next_++ % up.size()];
    start_exchange(peer, now_ms, std::nullopt);
    if (current_) current_->for_refill = true;
    return true;
}

void AntiEntropy::start_exchange(const std::string& peer, uint64_t now_ms,
                                 std::optional<ring::Range> only) {
    Exchange ex;
    ex.peer = peer;
    ex.started_ms = now_ms;
    ex.whole = !only.has_value();
    auto shared = shared_intervals(placement_.ring(), placement_.n(), config_.node_id, peer);
    if (only) {
        std::vector<TokenInterval> limited;
        for (const auto& r : intervals_of(*only)) {
            for (const auto& s : shared) {
                const uint64_t lo = std::max(r.lo, s.lo);
                const uint64_t hi = std::min(r.hi, s.hi);
                if (lo <= hi) limited.push_back(TokenInterval{lo, hi});
            }
        }
        shared = std::move(limited);
    }
    ex.to_compare.assign(shared.begin(), shared.end());
    current_ = std::move(ex);
    advance(now_ms);
}

void AntiEntropy::advance(uint64_t now_ms) {
    Exchange& ex = *current_;
    if (++ex.steps > kStepsMax) return finish(false, "too many steps");
    ex.call_id = ids_.next();
    ex.call_sent_ms = now_ms;
    ex.call_intervals.clear();
    // A first compare goes out even with nothing to compare: its reply says
    // whether the peer holds hints, which tombstone GC needs from every member.
    if (!ex.to_compare.empty() || ex.first_reply) {
        AeCompareRequest req{ex.call_id, config_.node_id, placement_.digest(), {}, {}};
        while (!ex.to_compare.empty() && ex.call_intervals.size() < kAeIntervalsMax) {
            const TokenInterval iv = ex.to_compare.front();
            ex.to_compare.pop_front();
            ex.call_intervals.push_back(iv);
            req.bounds.push_back(iv.lo);
            req.bounds.push_back(iv.hi);
            req.hashes.push_back(index_.interval_hash(iv));
        }
        stats_.ae_bytes_sent += 8 * (req.bounds.size() + req.hashes.size());
        ++stats_.ae_messages;
        env_.send(ex.peer, std::move(req));
        return;
    }
    if (!ex.to_list.empty()) {
        AeKeysRequest req{ex.call_id, config_.node_id, placement_.digest(), {}, {}, {}};
        while (!ex.to_list.empty() && ex.call_intervals.size() < kAeIntervalsMax) {
            const TokenInterval iv = ex.to_list.front();
            std::vector<KeyEntry> held;
            Status listed = index_.entries(iv, [&](const KeyEntry& e) {
                held.push_back(e);
                return held.size() <= kAeEntriesMax;
            });
            if (!listed.ok()) return finish(false, "index read failed: " + listed.message());
            if (req.keys.size() + held.size() > kAeEntriesMax) {
                if (!req.keys.empty()) break;  // the next request takes it
                if (iv.lo == iv.hi) return finish(false, "too many keys at one token");
                // One interval with too many keys: halve it.
                ex.to_list.pop_front();
                const uint64_t mid = iv.lo + (iv.hi - iv.lo) / 2;
                ex.to_list.push_front(TokenInterval{mid + 1, iv.hi});
                ex.to_list.push_front(TokenInterval{iv.lo, mid});
                continue;
            }
            ex.to_list.pop_front();
            ex.call_intervals.push_back(iv);
            req.bounds.push_back(iv.lo);
            req.bounds.push_back(iv.hi);
            for (auto& e : held) {
                req.keys.push_back(std::move(e.key));
                req.hashes.push_back(e.hash);
            }
        }
        stats_.ae_bytes_sent +=
            payload_bytes(req.keys) + 8 * (req.bounds.size() + req.hashes.size());
        ++stats_.ae_messages;
        env_.send(ex.peer, std::move(req));
        return;
    }
    if (!ex.to_push.empty()) {
        AePushRequest req{ex.call_id, config_.node_id, {}, {}};
        size_t bytes = 0;
        while (!ex.to_push.empty() && req.keys.size() < kAeObjectsMax &&
               (req.keys.empty() || bytes < kObjectBytesPerStepMax)) {
            std::string key = std::move(ex.to_push.front());
            ex.to_push.pop_front();
            auto held = replica_.read(key);
            if (!held) return finish(false, "store read failed: " + held.status().message());
            if (!held.value()) continue;  // purged meanwhile: nothing to send
            bytes += key.size() + held.value()->size();
            req.keys.push_back(std::move(key));
            req.objects.push_back(std::move(*held.value()));
        }
        if (req.keys.empty()) return advance(now_ms);
        stats_.ae_keys_sent += req.keys.size();
        stats_.ae_bytes_sent += bytes;
        ++stats_.ae_messages;
        env_.send(ex.peer, std::move(req));
        return;
    }
    ex.call_id = 0;
    finish(true, "");
}

void AntiEntropy::finish(bool completed, const std::string& why) {
    Exchange& ex = *current_;
    const bool from_repair = ex.for_repair;
    if (completed) {
        ++stats_.ae_exchanges;
        if (ex.whole) {
            PeerMark& mark = marks_[ex.peer];
            mark.verified_ms = ex.started_ms;
            if (ex.peer_clean) mark.clean_through_ms = ex.started_ms;
        }
        if (from_repair) ++repair_done_;
        if (ex.whole && refill_waiting_.erase(ex.peer) != 0) publish_refill();
    } else {
        // Retried after a pause, not in a loop against a peer that refuses.
        if (ex.for_refill) refill_retry_ms_ = env_.now_ms() + kRefillRetryMs;
        ++stats_.ae_exchanges_failed;
        if (from_repair) ++repair_failed_;
        env_.log(LogLevel::info, "anti-entropy exchange with " + ex.peer + " stopped: " + why);
    }
    current_.reset();
}

bool AntiEntropy::on_reply(const std::string& peer_id, const Message& message) {
    if (!current_ || current_->call_id == 0 || current_->peer != peer_id) return false;
    if (request_id(message) != current_->call_id) return false;
    Exchange& ex = *current_;
    ex.call_id = 0;
    ++stats_.ae_messages;
    const uint64_t now = env_.now_ms();
    if (const auto* r = std::get_if<AeCompareResponse>(&message)) {
        if (r->code != ErrorCode::ok) {
            finish(false, std::string(error_name(r->code)) + ": " + r->message);
            return true;
        }
        if (ex.first_reply) {
            ex.first_reply = false;
            ex.peer_clean = r->hints_held == 0;
        }
        stats_.ae_bytes_received += 8 * r->differ.size();
        for (uint64_t i : r->differ) {
            if (i >= ex.call_intervals.size()) continue;
            const TokenInterval iv = ex.call_intervals[i];
            auto children = HashTree::split(iv);
            if (children.empty()) {
                ex.to_list.push_back(iv);
            } else {
                for (const auto& c : children) ex.to_compare.push_back(c);
            }
        }
    } else if (const auto* r = std::get_if<AeKeysResponse>(&message)) {
        if (r->code != ErrorCode::ok) {
            finish(false, std::string(error_name(r->code)) + ": " + r->message);
            return true;
        }
        stats_.ae_bytes_received +=
            payload_bytes(r->keys) + payload_bytes(r->objects) + payload_bytes(r->wants);
        for (size_t i = 0; i < r->keys.size(); ++i) {
            Status merged = replica_.merge(r->keys[i], r->objects[i]);
            if (!merged.ok()) {
                env_.log(LogLevel::warn, "anti-entropy: a version of a key from " + peer_id +
                                             " was refused: " + merged.message());
                continue;
            }
            ++stats_.ae_keys_received;
        }
        for (const auto& k : r->wants) ex.to_push.push_back(k);
        if (r->truncated) {
            for (const auto& iv : ex.call_intervals) ex.to_list.push_back(iv);
        }
    } else if (const auto* r = std::get_if<AePushResponse>(&message)) {
        if (r->code != ErrorCode::ok) {
            finish(false, std::string(error_name(r->code)) + ": " + r->message);
            return true;
        }
    } else if (const auto* r = std::get_if<proto::ErrorResponse>(&message)) {
        finish(false, std::string(error_name(r->code)) + ": " + r->message);
        return true;
    } else {
        finish(false, "unexpected reply");
        return true;
    }
    advance(now);
    return true;
}

bool AntiEntropy::on_send_failed(const std::string& peer_id, uint64_t request_id) {
    if (!current_ || current_->call_id != request_id || current_->peer != peer_id) return false;
    finish(false, "could not send to " + peer_id);
    return true;
}

Message AntiEntropy::not_ready_reply(uint64_t id, ErrorCode code, std::string why,
                                     bool is_compare) const {
    if (is_compare) return AeCompareResponse{id, code, std::move(why), {}, 0};
    return AeKeysResponse{id, code, std::move(why), {}, {}, {}, false};
}

bool AntiEntropy::refuse_if_not_ready(const ReplyTo& from, uint64_t id, uint64_t ring_digest,
                                      bool is_compare) {
    if (placement_.moving() || ring_digest != placement_.digest()) {
        env_.reply(from, not_ready_reply(id, ErrorCode::not_owner,
                                         "rings differ or ranges are moving", is_compare));
        return true;
    }
    if (!index_.ready()) {
        env_.reply(from, not_ready_reply(id, ErrorCode::unavailable,
                                         "the hash tree is still being built", is_compare));
        return true;
    }
    return false;
}

void AntiEntropy::handle(const ReplyTo& from, const AeCompareRequest& req) {
    if (refuse_if_not_ready(from, req.id, req.ring_digest, true)) return;
    AeCompareResponse out{req.id, ErrorCode::ok, "", {}, hints_.summary().keys};
    for (size_t i = 0; i < req.hashes.size(); ++i) {
        const TokenInterval iv{req.bounds[2 * i], req.bounds[2 * i + 1]};
        if (index_.interval_hash(iv) != req.hashes[i]) out.differ.push_back(i);
    }
    env_.reply(from, std::move(out));
}

void AntiEntropy::handle(const ReplyTo& from, const AeKeysRequest& req) {
    if (refuse_if_not_ready(from, req.id, req.ring_digest, false)) return;
    std::map<std::string_view, uint64_t> theirs;
    for (size_t i = 0; i < req.keys.size(); ++i) theirs.emplace(req.keys[i], req.hashes[i]);
    AeKeysResponse out{req.id, ErrorCode::ok, "", {}, {}, {}, false};
    size_t bytes = 0;
    auto send_mine = [&](const std::string& key) {
        if (out.truncated) return;
        if (out.keys.size() >= kAeObjectsMax || bytes >= kObjectBytesPerStepMax) {
            out.truncated = true;
            return;
        }
        auto held = replica_.read(key);
        if (!held || !held.value()) return;
        bytes += key.size() + held.value()->size();
        out.keys.push_back(key);
        out.objects.push_back(std::move(*held.value()));
    };
    for (size_t i = 0; i + 1 < req.bounds.size(); i += 2) {
        const TokenInterval iv{req.bounds[i], req.bounds[i + 1]};
        Status listed = index_.entries(iv, [&](const KeyEntry& mine) {
            auto it = theirs.find(mine.key);
            if (it == theirs.end()) {
                if (!mine.tombstones_only()) send_mine(mine.key);
                return true;
            }
            if (it->second != mine.hash) {
                send_mine(mine.key);
                out.wants.push_back(mine.key);
            }
            theirs.erase(it);
            return true;
        });
        if (!listed.ok()) {
            env_.reply(from,
                       AeKeysResponse{
                           req.id, ErrorCode::storage_error, listed.message(), {}, {}, {}, false});
            return;
        }
    }
    for (size_t i = 0; i < req.keys.size(); ++i) {
        // Keys only the initiator holds: wanted unless they hold only tombstones.
        if (theirs.count(req.keys[i]) != 0 && (req.hashes[i] & 1) == 0) {
            out.wants.push_back(req.keys[i]);
        }
    }
    stats_.ae_keys_sent += out.keys.size();
    env_.reply(from, std::move(out));
}

void AntiEntropy::handle(const ReplyTo& from, const AePushRequest& req) {
    for (size_t i = 0; i < req.keys.size(); ++i) {
        if (!replica_.check_owner(req.keys[i], false, {}).ok()) continue;
        Status merged = replica_.merge(req.keys[i], req.objects[i]);
        if (merged.code() == ErrorCode::storage_error) {
            env_.reply(from, AePushResponse{req.id, merged.code(), merged.message()});
            return;
        }
        if (merged.ok()) ++stats_.ae_keys_received;
    }
    env_.reply(from, AePushResponse{req.id, ErrorCode::ok, ""});
}

void AntiEntropy::handle(const ReplyTo& from, const proto::RepairRequest& req) {
    if (!req.stop_waiting_for.empty()) return stop_waiting_for(from, req);
    if (placement_.moving()) {
        env_.reply(from, proto::AdminResponse{req.id, ErrorCode::unavailable,
                                              "ranges are moving; repair after the change"});
        return;
    }
    repair_queue_.clear();
    for (const auto& peer : ring_peers()) repair_queue_.push_back(peer);
    repair_range_.reset();
    if (req.whole_ring == false) repair_range_ = ring::Range{req.start, req.end};
    repair_total_ = repair_queue_.size();
    repair_done_ = repair_failed_ = 0;
    env_.reply(
        from, proto::AdminResponse{req.id, ErrorCode::ok,
                                   "repair started: " + std::to_string(repair_queue_.size()) +
                                       " exchange(s) queued" +
                                       (repair_range_ ? " for range (" + std::to_string(req.start) +
                                                            ", " + std::to_string(req.end) + "]"
                                                      : std::string())});
}

void AntiEntropy::stop_waiting_for(const ReplyTo& from, const proto::RepairRequest& req) {
    const auto answer = [&](ErrorCode code, std::string text) {
        env_.reply(from, proto::AdminResponse{req.id, code, std::move(text)});
    };
    if (refill_waiting_.empty()) {
        return answer(ErrorCode::invalid_argument,
                      config_.node_id + " is not refilling: it waits for no member");
    }
    std::set<std::string> released;
    std::set<std::string> not_waited;
    for (const auto& member : req.stop_waiting_for) {
        if (refill_waiting_.erase(member) > 0) {
            released.insert(member);
        } else if (!released.contains(member)) {
            not_waited.insert(member);
        }
    }
    if (released.empty()) {
        return answer(ErrorCode::invalid_argument,
                      "the refill of " + config_.node_id + " does not wait for " +
                          names_of(not_waited) + "; it waits for " + names_of(refill_waiting_));
    }
    env_.log(LogLevel::warn,
             "refill: no longer waiting for " + names_of(released) +
                 " (kvctl repair --stop-waiting-for): writes only they and this node's lost "
                 "data held are missing from its replica reads until they are back");
    std::string text = "refill: no longer waiting for " + names_of(released);
    if (!not_waited.empty()) text += " (" + names_of(not_waited) + " not waited for)";
    text += refill_waiting_.empty() ? "; done, replica reads are served"
                                    : "; still waiting for " + names_of(refill_waiting_);
    publish_refill();
    answer(ErrorCode::ok, std::move(text));
}

std::optional<uint64_t> AntiEntropy::confirmed_through_ms() const {
    std::optional<uint64_t> through;
    for (const auto& peer : ring_peers()) {
        auto it = marks_.find(peer);
        if (it == marks_.end() || !it->second.clean_through_ms) return std::nullopt;
        through = std::min(through.value_or(~uint64_t{0}), *it->second.clean_through_ms);
    }
    // Alone in the ring: every replica is this node.
    return through.value_or(env_.now_ms());
}

proto::AntiEntropyStatus AntiEntropy::status() const {
    proto::AntiEntropyStatus s;
    const uint64_t now = env_.now_ms();
    s.tree_ready = index_.ready();
    s.keys_indexed = index_.keys();
    s.tombstones = index_.tombstones();
    s.tombstones_purged = stats_.tombstones_purged;
    s.exchanges = stats_.ae_exchanges;
    s.exchanges_failed = stats_.ae_exchanges_failed;
    s.keys_received = stats_.ae_keys_received;
    s.keys_sent = stats_.ae_keys_sent;
    s.bytes_sent = stats_.ae_bytes_sent;
    s.bytes_received = stats_.ae_bytes_received;
    s.messages = stats_.ae_messages;
    s.repair_total = repair_total_;
    s.repair_done = repair_done_;
    s.repair_failed = repair_failed_;
    s.refilling = !refill_waiting_.empty();
    for (const auto& peer : ring_peers()) {
        proto::PeerVerified v;
        v.peer = peer;
        auto it = marks_.find(peer);
        if (it != marks_.end() && it->second.verified_ms) {
            v.verified = true;
            v.verified_ms_ago = now - *it->second.verified_ms;
        }
        v.refill_pending = refill_waiting_.contains(peer);
        s.peers.push_back(std::move(v));
    }
    return s;
}

}  // namespace kv::node
