#include "node/membership/gossip_driver.h"

#include <algorithm>
#include <optional>

#include "gossip/gossip_codec.h"
#include "gossip/token_claim.h"
#include "node/storage/meta_codec.h"

namespace kv::node {

static_assert(kGossipPayloadBytesMax == gossip::kGossipFrameBytesMax);

GossipDriver::GossipDriver(const NodeConfig& config, Env& env, RequestIds& ids,
                           std::function<void()> on_view_change)
    : config_(config), env_(env), ids_(ids), on_view_change_(std::move(on_view_change)) {}

Status GossipDriver::start(uint64_t started_ms) {
    started_ms_ = started_ms;
    auto stored = env_.read(Space::meta, meta::kIncarnationKey);
    if (!stored) return stored.status();
    std::optional<uint64_t> previous;
    if (stored.value()) {
        previous = meta::decode_u64_text(*stored.value());
        if (!previous) {
            return Status(ErrorCode::storage_error, "corrupt incarnation in the meta space");
        }
    }
    auto removed = env_.read(Space::meta, meta::kRemovedKey);
    if (!removed) return removed.status();
    if (removed.value()) {
        return Status(ErrorCode::invalid_argument,
                      "this node was removed from the cluster by " + *removed.value() +
                          " (kvctl removenode) and its data is stale: delete its data "
                          "directory to join again as a new node");
    }
    gossip::MemberState self;
    self.id = config_.node_id;
    self.endpoint = config_.endpoint;
    self.link_endpoint = config_.link_endpoint;
    auto tokens = env_.read(Space::meta, meta::kTokensKey);
    if (!tokens) return tokens.status();
    if (tokens.value()) {
        auto decoded = meta::decode_tokens(*tokens.value(), gossip::kGossipTokensPerMemberMax);
        if (!decoded) return Status(ErrorCode::storage_error, "corrupt tokens in the meta space");
        // A restart: back at once with the tokens and the status of the
        // earlier life (a join or a leave resumes where it was).
        self.tokens = std::move(*decoded);
        self.declared =
            self.tokens.empty() ? gossip::MemberStatus::joining : gossip::MemberStatus::up;
        auto status = env_.read(Space::meta, meta::kStatusKey);
        if (!status) return status.status();
        if (status.value() && !self.tokens.empty()) {
            bool known = false;
            for (auto candidate : {gossip::MemberStatus::joining, gossip::MemberStatus::up,
                                   gossip::MemberStatus::leaving, gossip::MemberStatus::left}) {
                if (*status.value() != gossip::status_name(candidate)) continue;
                self.declared = candidate;
                known = true;
            }
            // Guessing would be worse than stopping: a leaver or a left node
            // restarted as up would serve ranges it gave away.
            if (!known) return Status(ErrorCode::storage_error, "corrupt status in the meta space");
        }
    }
    // Only a life holding tokens starts above its earlier ones, to override
    // what was said of them at once. A node without tokens starts at 1 and
    // refutes what it hears of its earlier lives (ClusterView::refute), one
    // round later: started higher, it would override an entry of its id that
    // holds tokens (a directory lost, then this node restarted while it
    // waited for that life's removal) and the ring would drop those ranges
    // uncopied.
    uint64_t incarnation = 1;
    if (previous && !self.tokens.empty()) {
        // At the bound (a forged claim about this node refuted by a build
        // before the bound, or 2^62 lives): start at the bound, which the
        // cluster accepts, rather than refuse to start (gossip/cluster_view.h).
        incarnation = std::min(*previous, gossip::kCounterMax - 1) + 1;
        if (*previous >= gossip::kCounterMax) {
            env_.log(LogLevel::error, "gossip: the stored incarnation " +
                                          std::to_string(*previous) +
                                          " is at or beyond 2^62; starting at 2^62");
        }
    }
    persist_incarnation(incarnation);
    self.incarnation = incarnation;
    for (const auto& seed : config_.seeds) {
        seeds_elsewhere_ = seeds_elsewhere_ || seed != config_.endpoint;
        self_is_seed_ = self_is_seed_ || seed == config_.endpoint;
    }
    rng_.seed(env_.random_u64());
    gossiper_ = std::make_unique<gossip::Gossiper>(config_.gossip, std::move(self), config_.seeds,
                                                   env_.now_ms());
    auto saved_view = env_.read(Space::meta, meta::kViewKey);
    if (!saved_view) return saved_view.status();
    if (saved_view.value()) {
        if (saved_view.value()->size() > gossip::kGossipFrameBytesMax) {
            // A known limit, not corruption: a view of more than about 400
            // members of 256 tokens does not fit one frame.
            env_.log(LogLevel::warn,
                     "the saved cluster view is larger than a gossip frame; "
                     "waiting for gossip");
        } else {
            auto decoded = gossip::decode(*saved_view.value());
            // Corrupt, the view is not guessed at: waiting for gossip with a ring
            // of this node alone is what once made restarted nodes serve with n = 1.
            if (!decoded || !std::holds_alternative<gossip::GossipAck2>(decoded.value())) {
                return Status(ErrorCode::storage_error, "corrupt cluster view in the meta space");
            }
            gossiper_->restore(std::get<gossip::GossipAck2>(decoded.value()).entries,
                               env_.now_ms());
        }
    }
    auto queued = env_.read(Space::meta, meta::kLeaveKey);
    if (!queued) return queued.status();
    if (queued.value()) {
        leave_record_ = *queued.value();
        const gossip::MemberState& self = gossiper_->view().self();
        if (leave_record_ == kLeaveQueued) {
            if (self.declared == gossip::MemberStatus::up && !self.tokens.empty()) {
                // Announced again in this life, after the view is restored (its
                // ticket orders after every ticket this node knew of); the
                // acknowledgements of the earlier life no longer count.
                gossiper_->announce_change();
                env_.log(LogLevel::info,
                         "gossip: the leave queued in an earlier life is announced again");
            } else {
                refuse_leave("this node is " + std::string(gossip::status_name(self.declared)) +
                             ", no longer up");
            }
        } else if (leave_refusal().empty()) {
            // Guessing would be worse: a leave the operator was told is queued
            // would be dropped silently, or one refused started.
            return Status(ErrorCode::storage_error, "corrupt leave record in the meta space");
        }
    }
    env_.log(LogLevel::info, "gossip: incarnation " + std::to_string(incarnation) + ", " +
                                 std::to_string(gossiper_->view().self().tokens.size()) +
                                 " tokens from an earlier life");
    return {};
}

void GossipDriver::tick(uint64_t now_ms) {
    if (note_removed()) return;  // silent: this life is over for the cluster
    maybe_claim_tokens(now_ms);
    send(gossiper_->tick(now_ms, rng_));
    on_view_change_();
}

Status GossipDriver::handle(const GossipRequest& req) {
    auto decoded = gossip::decode(req.payload);
    if (!decoded) return decoded.status();
    if (!gossiper_->removed_by().empty()) return {};
    auto replies = gossiper_->handle(decoded.value(), env_.now_ms());
    if (note_removed()) return {};
    if (gossiper_->earlier_life_holds_tokens() && !earlier_life_warned_) {
        earlier_life_warned_ = true;
        env_.log(LogLevel::warn, "gossip: " + config_.node_id +
                                     " is still a ring member holding tokens from an earlier "
                                     "life whose data this node does not have; it joins again "
                                     "as a new node once that member is removed (kvctl "
                                     "removenode " +
                                     config_.node_id + " on a live member)");
    }
    send(std::move(replies));
    on_view_change_();
    return {};
}

bool GossipDriver::note_removed() {
    const std::string& by = gossiper_->removed_by();
    if (by.empty()) return false;
    if (!removed_recorded_) {
        removed_recorded_ = true;
        env_.stage_write(StoreWrite{Space::meta, std::string(meta::kRemovedKey), by});
        env_.log(LogLevel::error,
                 "gossip: this node was removed from the cluster by " + by +
                     " (kvctl removenode) while it was down; its data is stale, so it stops "
                     "taking part and refuses requests. Delete its data directory to join "
                     "again as a new node");
    }
    return true;
}

void GossipDriver::queue_removal(const std::string& id) {
    removal_refusal_.clear();
    gossiper_->announce_removal(id);
}

void GossipDriver::start_removal() {
    if (gossiper_->start_removal()) on_view_change_();
}

void GossipDriver::complete_removal(const std::string& id) {
    if (gossiper_->complete_removal(id)) on_view_change_();
}

void GossipDriver::end_removal(const std::string& why) {
    removal_refusal_ = why;
    gossiper_->withdraw_change();
}

// A refutation raises the incarnation in memory; the next life must start
// above it too, or peers would keep the old life's higher heartbeat.
void GossipDriver::persist_incarnation(uint64_t incarnation) {
    if (incarnation <= persisted_incarnation_) return;
    env_.stage_write(StoreWrite{Space::meta, std::string(meta::kIncarnationKey),
                                meta::encode_u64_text(incarnation)});
    persisted_incarnation_ = incarnation;
}

void GossipDriver::persist_view() {
    gossip::GossipAck2 saved{config_.node_id, {}};
    for (const auto& [id, s] : gossiper_->view().states()) {
        if (id == config_.node_id) continue;
        gossip::MemberState entry = s;
        entry.liveness = gossip::Liveness::alive;  // a verdict of the past life's detector
        saved.entries.push_back(std::move(entry));
    }
    env_.stage_write(StoreWrite{Space::meta, std::string(meta::kViewKey), gossip::encode(saved)});
}

void GossipDriver::send(std::vector<gossip::Outgoing> out) {
    // Staged before the sends: the effects contract makes it durable first.
    persist_incarnation(gossiper_->view().self().incarnation);
    for (auto& o : out) {
        // By endpoint always: the peer may not be a ring member (joining, or a
        // seed whose id we do not know yet), and gossip is never answered.
        env_.send_to_endpoint(
            o.endpoint, GossipRequest{ids_.next(), config_.node_id, gossip::encode(o.message)});
    }
}

// A joining node claims its tokens (Dynamo §4.2 with Cassandra-style balanced
// claims) once it knows the ring it joins. Claims are a function of the ring
// alone, so two joiners claiming from the same ring would take the same
// positions: joiners take turns. A joiner first listens for a few rounds after
// it hears of the ring (so it knows the other joiners, who all talk to the
// seeds), then waits while a live joiner with a smaller id has not claimed yet
// (join_wait_ms bounds that wait: a joiner that died before claiming blocks no
// one) and while another join or leave is under way (unbounded: one change
// moves data at a time). A node that is not itself a seed never starts a
// cluster of its own: until it hears of the ring it has nothing to serve.
void GossipDriver::maybe_claim_tokens(uint64_t now_ms) {
    const gossip::ClusterView& view = gossiper_->view();
    if (!view.self().tokens.empty()) return;
    // Claiming now would put new tokens in place of the earlier life's with no
    // transfer of its ranges: wait for its removal (ClusterView::refute).
    if (gossiper_->earlier_life_holds_tokens()) return;
    bool ring_known = false;
    bool earlier_joiner = false;
    bool change_under_way = false;
    for (const auto& [id, s] : view.states()) {
        if (id == config_.node_id) continue;
        ring_known = ring_known || s.in_ring();
        change_under_way = change_under_way || s.in_transition();
        earlier_joiner =
            earlier_joiner || (s.declared == gossip::MemberStatus::joining && s.tokens.empty() &&
                               s.liveness == gossip::Liveness::alive && id < config_.node_id);
    }
    if (ring_known && ring_known_since_ms_ == 0)
        ring_known_since_ms_ = std::max<uint64_t>(now_ms, 1);
    // One membership change at a time, however long it takes: a joiner waits
    // for a join or a leave under way to complete before it claims.
    if (change_under_way) return;
    if (seeds_elsewhere_) {
        if (!ring_known && (!self_is_seed_ || now_ms - started_ms_ < config_.join_wait_ms)) return;
        if (ring_known) {
            const uint64_t listened_ms = now_ms - ring_known_since_ms_;
            if (listened_ms < 3 * config_.gossip.interval_ms) return;
            if (earlier_joiner && listened_ms < config_.join_wait_ms) return;
        }
    }
    std::vector<gossip::NodeTokens> others = view.ring_input();
    std::erase_if(others, [&](const gossip::NodeTokens& n) { return n.id == config_.node_id; });
    if (!others.empty()) {
        // Claiming tokens starts a join, a membership change like a leave:
        // announced first, claimed only in its turn (gossip.h, change_turn),
        // so no leave or other join can be under way unseen.
        // Waiting for a member that is down, the join does not hold its place
        // in line (gossip.h, change_needs_down_member): it announces again
        // once that member is back or removed.
        if (!gossiper_->change_needs_down_member().empty()) {
            if (view.self().change_ticket != 0) gossiper_->withdraw_change();
            return;
        }
        if (view.self().change_ticket == 0) gossiper_->announce_change();
        if (gossiper_->change_turn().state != gossip::ChangeTurn::State::go) return;
    }
    std::vector<uint64_t> tokens =
        gossip::claim_tokens(others, config_.node_id, config_.vnodes, config_.n_replicas);
    env_.stage_write(
        StoreWrite{Space::meta, std::string(meta::kTokensKey), meta::encode_tokens(tokens)});
    gossiper_->set_tokens(std::move(tokens));
    // With a ring to join, the node owns nothing until its ranges streamed in
    // (the rebalancer declares it up); the first node of a cluster is up at once.
    declare(others.empty() ? gossip::MemberStatus::up : gossip::MemberStatus::joining);
    env_.log(LogLevel::info, "claimed " + std::to_string(config_.vnodes) + " tokens among " +
                                 std::to_string(others.size()) + " members" +
                                 (others.empty() ? "" : "; streaming its ranges in"));
}

void GossipDriver::declare(gossip::MemberStatus status) {
    gossiper_->declare(status);
    env_.stage_write(StoreWrite{Space::meta, std::string(meta::kStatusKey),
                                std::string(gossip::status_name(status))});
    if (status != gossip::MemberStatus::up && !leave_record_.empty()) {
        // Leaving (or left): the status record carries the leave from now on.
        env_.stage_write(StoreWrite{Space::meta, std::string(meta::kLeaveKey), std::nullopt});
        leave_record_.clear();
    }
    on_view_change_();
}

void GossipDriver::queue_leave() {
    leave_record_ = kLeaveQueued;
    env_.stage_write(StoreWrite{Space::meta, std::string(meta::kLeaveKey), leave_record_});
    gossiper_->announce_change();
}

void GossipDriver::refuse_leave(const std::string& why) {
    leave_record_ = std::string(kLeaveRefused) + why;
    env_.stage_write(StoreWrite{Space::meta, std::string(meta::kLeaveKey), leave_record_});
    gossiper_->withdraw_change();
}

std::string GossipDriver::leave_refusal() const {
    if (!leave_record_.starts_with(kLeaveRefused)) return {};
    return leave_record_.substr(kLeaveRefused.size());
}

}  // namespace kv::node
