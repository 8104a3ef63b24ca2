#include "node/node.h"

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <type_traits>

#include "gossip/gossip_codec.h"
#include "gossip/token_claim.h"

namespace kv::node {

namespace {
constexpr std::string_view kActorMetaKey = "actor";
// Gossip: the incarnation of this node's latest life (decimal), and the ring
// positions it claimed (8 bytes little-endian each), kept across restarts so
// that the ring does not move when a member comes back.
constexpr std::string_view kIncarnationMetaKey = "incarnation";
constexpr std::string_view kTokensMetaKey = "tokens";
// The status this node last declared (joining, up, leaving, left), so that a
// restart resumes a join or a leave instead of starting over as up.
constexpr std::string_view kStatusMetaKey = "status";
// The other members as last seen (endpoint, status, tokens), so that a
// restarted node routes by the ring it knew, not by a ring of itself alone
// until gossip reaches it (nobody may talk to a restarted seed for rounds).
constexpr std::string_view kViewMetaKey = "view";

static_assert(kGossipPayloadBytesMax == gossip::kGossipFrameBytesMax);

std::string encode_tokens(const std::vector<uint64_t>& tokens) {
    std::string out;
    out.reserve(tokens.size() * 8);
    for (uint64_t t : tokens) {
        for (int b = 0; b < 8; ++b) out.push_back(static_cast<char>((t >> (8 * b)) & 0xff));
    }
    return out;
}

std::optional<std::vector<uint64_t>> decode_tokens(std::string_view bytes) {
    if (bytes.size() % 8 != 0 || bytes.size() / 8 > gossip::kGossipTokensPerMemberMax) {
        return std::nullopt;
    }
    std::vector<uint64_t> tokens;
    for (size_t i = 0; i < bytes.size(); i += 8) {
        uint64_t t = 0;
        for (int b = 0; b < 8; ++b) t |= uint64_t{static_cast<uint8_t>(bytes[i + b])} << (8 * b);
        tokens.push_back(t);
    }
    std::sort(tokens.begin(), tokens.end());
    tokens.erase(std::unique(tokens.begin(), tokens.end()), tokens.end());
    return tokens;
}

std::optional<uint64_t> parse_u64(std::string_view text) {
    if (text.empty() || text.size() > 20) return std::nullopt;
    uint64_t v = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        const uint64_t digit = static_cast<uint64_t>(c - '0');
        if (v > (UINT64_MAX - digit) / 10) return std::nullopt;
        v = v * 10 + digit;
    }
    return v;
}

template <class>
inline constexpr bool kAlwaysFalse = false;

std::string hex64(uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
}
}  // namespace

enum class OpKind : uint8_t { read, write };

// One coordinated client request, alive until every replica answered or its
// deadline passed (whichever first); the client is answered at most once.
struct Node::Op {
    uint64_t id = 0;
    OpKind kind = OpKind::read;
    ReplyTo client;
    uint64_t client_request_id = 0;
    std::string key;
    std::vector<std::string> replicas;  // the key's preference list
    uint32_t required = 0;              // r or w
    uint64_t deadline_at_ms = 0;
    bool answered = false;
    bool finished = false;
    std::vector<uint64_t> peer_calls;

    // Reads: what each replica answered (nullopt: it holds nothing).
    std::map<std::string, std::optional<Object>> versions;
    std::set<std::string> failed;
    std::string last_failure;  // why the latest replica failed, for the client's error
    bool repairs_sent = false;
    bool repair_failed = false;
    std::set<std::string> repairs_waiting;

    // Writes: `replicas` holds the key's current replicas, then its new owners
    // while its range moves (all written; required counts them too).
    std::vector<std::string> mint_candidates;  // reachable replicas, in the order to try
    size_t mint_index = 0;
    std::optional<std::string> value;  // kept until minted, to try another replica
    std::optional<std::string> context;
    std::set<std::string> acked;
    std::string written;  // the encoded object minted by the coordinating replica
    VersionVector written_context;
    uint32_t sibling_count = 0;
    bool replicating = false;

    size_t responded() const { return versions.size() + failed.size(); }
    bool wants_all() const { return required == replicas.size(); }
};

Node::Node(NodeConfig config, Env& env, const gossip::Membership& membership)
    : config_(std::move(config)), env_(env), membership_(&membership) {
    assert(!config_.node_id.empty());
    assert(config_.n_replicas >= 1);
    assert(config_.seeds.empty());
    refresh_ring();
    assert(member(config_.node_id) != nullptr);
}

Node::Node(NodeConfig config, Env& env) : config_(std::move(config)), env_(env) {
    assert(!config_.node_id.empty());
    assert(config_.n_replicas >= 1);
    assert(!config_.seeds.empty());
    assert(!config_.endpoint.empty());
}

Node::~Node() = default;

Status Node::start() {
    started_ms_ = env_.now_ms();
    // Top bit clear: ids never wrap within a node's life.
    next_id_ = (env_.random_u64() >> 1) | 1;
    auto stored = env_.read(Space::meta, kActorMetaKey);
    if (!stored) return stored.status();
    if (stored.value()) {
        actor_ = *stored.value();
    } else {
        actor_ = config_.node_id + "." + hex64(env_.random_u64());
        env_.stage_write(StoreWrite{Space::meta, std::string(kActorMetaKey), actor_});
    }
    if (!config_.seeds.empty()) {
        Status gossip_started = start_gossip();
        if (!gossip_started.ok()) return gossip_started;
    }
    refresh_ring();
    log(LogLevel::info, "node " + config_.node_id + " started with actor " + actor_ + ", " +
                            std::to_string(membership_->members().size()) +
                            " members, n=" + std::to_string(config_.n_replicas));
    return {};
}

// ---- dispatch ----------------------------------------------------------------

void Node::on_request(const ReplyTo& from, node::Message message) {
    ++stats_.requests;
    refresh_ring();
    std::visit(
        [&](auto&& m) {
            using T = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<T, proto::GetRequest>) {
                handle(from, std::move(m));
            } else if constexpr (std::is_same_v<T, proto::PutRequest>) {
                handle_write(from, m.id, std::move(m.key), std::move(m.value), std::move(m.context),
                             m.consistency, m.deadline_ms);
            } else if constexpr (std::is_same_v<T, proto::DelRequest>) {
                handle_write(from, m.id, std::move(m.key), std::nullopt, std::move(m.context),
                             m.consistency, m.deadline_ms);
            } else if constexpr (std::is_same_v<T, proto::LocalGetRequest> ||
                                 std::is_same_v<T, proto::StatusRequest> ||
                                 std::is_same_v<T, ReplicaReadRequest> ||
                                 std::is_same_v<T, ReplicaWriteRequest> ||
                                 std::is_same_v<T, ReplicaMergeRequest> ||
                                 std::is_same_v<T, PingRequest> ||
                                 std::is_same_v<T, GossipRequest> ||
                                 std::is_same_v<T, proto::LeaveRequest> ||
                                 std::is_same_v<T, StreamRequest> ||
                                 std::is_same_v<T, HandoffRequest>) {
                handle(from, m);
            } else if constexpr (std::is_same_v<T, proto::GetResponse> ||
                                 std::is_same_v<T, proto::WriteResponse> ||
                                 std::is_same_v<T, proto::StatusResponse> ||
                                 std::is_same_v<T, proto::ErrorResponse> ||
                                 std::is_same_v<T, ReplicaReadResponse> ||
                                 std::is_same_v<T, ReplicaWriteResponse> ||
                                 std::is_same_v<T, ReplicaMergeResponse> ||
                                 std::is_same_v<T, PingResponse> ||
                                 std::is_same_v<T, proto::AdminResponse> ||
                                 std::is_same_v<T, StreamResponse> ||
                                 std::is_same_v<T, HandoffResponse>) {
                on_bad_frame(from, m.id,
                             Status(ErrorCode::bad_request,
                                    "'" + std::string(node::type_name(m)) +
                                        "' is a response; this endpoint takes requests"));
            } else {
                static_assert(kAlwaysFalse<T>, "every message type must be handled");
            }
        },
        message);
}

void Node::on_bad_frame(const ReplyTo& from, uint64_t request_id, const Status& why) {
    ++stats_.bad_frames;
    env_.reply(from, proto::ErrorResponse{request_id, why.code(), why.message()});
}

void Node::on_peer_reply(const std::string& peer_id, node::Message message) {
    heard_from(peer_id);
    if (on_transfer_reply(peer_id, message)) return;
    const uint64_t id = node::request_id(message);
    auto call = pending_.find(id);
    if (call == pending_.end() || call->second.peer != peer_id) return;  // late or unknown
    const uint64_t op_id = call->second.op_id;
    pending_.erase(call);
    auto it = ops_.find(op_id);
    if (it == ops_.end() || it->second->finished) return;
    Op& op = *it->second;
    std::visit(
        [&](auto&& m) {
            using T = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<T, ReplicaReadResponse>) {
                if (op.kind == OpKind::read)
                    on_read_reply(op, peer_id, Status(m.code, m.message), m.object);
            } else if constexpr (std::is_same_v<T, ReplicaWriteResponse>) {
                if (op.kind == OpKind::write)
                    on_write_reply(op, peer_id, Status(m.code, m.message), m.object);
            } else if constexpr (std::is_same_v<T, ReplicaMergeResponse>) {
                if (op.kind == OpKind::read) {
                    on_repair_reply(op, peer_id, Status(m.code, m.message));
                } else {
                    on_merge_reply(op, peer_id, Status(m.code, m.message));
                }
            } else if constexpr (std::is_same_v<T, proto::ErrorResponse>) {
                peer_call_failed(op, peer_id,
                                 Status(m.code, "replica " + peer_id + ": " + m.message));
            } else {
                log(LogLevel::warn, "peer " + peer_id + " answered with unexpected '" +
                                        std::string(node::type_name(m)) + "'");
            }
        },
        message);
    if (op.finished) finish(op.id);
}

void Node::on_send_failed(const std::string& peer_id, uint64_t request_id) {
    if (auto t = transfer_calls_.find(request_id); t != transfer_calls_.end()) {
        InboundTransfer& transfer = inbound_[t->second];
        transfer_calls_.erase(t);
        if (transfer.plan.source == peer_id)
            transfer_call_failed(transfer, "source " + peer_id + " is not connected");
        return;
    }
    auto call = pending_.find(request_id);
    if (call == pending_.end() || call->second.peer != peer_id) return;
    const uint64_t op_id = call->second.op_id;
    pending_.erase(call);
    auto it = ops_.find(op_id);
    if (it == ops_.end() || it->second->finished) return;
    Op& op = *it->second;
    peer_call_failed(op, peer_id,
                     Status(ErrorCode::unavailable, "replica " + peer_id + " is not connected"));
    if (op.finished) finish(op.id);
}

// The peer could not take our request: count it as that replica failing, in
// whichever phase the op is.
void Node::peer_call_failed(Op& op, const std::string& peer_id, const Status& failed) {
    if (op.kind == OpKind::read && !op.repairs_sent) {
        on_read_reply(op, peer_id, failed, std::nullopt);
    } else if (op.kind == OpKind::read) {
        on_repair_reply(op, peer_id, failed);
    } else if (!op.replicating) {
        on_write_reply(op, peer_id, failed, {});
    } else {
        on_merge_reply(op, peer_id, failed);
    }
}

void Node::tick() {
    const uint64_t now = env_.now_ms();
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
        const uint64_t op_id = deadlines_.begin()->second;
        deadlines_.erase(deadlines_.begin());
        auto it = ops_.find(op_id);
        if (it == ops_.end()) continue;
        expire(*it->second);
        finish(op_id);
    }
    if (gossiper_) {
        gossip_tick(now);
        transfer_tick(now);
    }
    for (const auto& m : membership_->members()) {
        if (m.id == config_.node_id) continue;
        PeerState& peer = peers_[m.id];
        if (peer.first_known_ms == 0) peer.first_known_ms = std::max<uint64_t>(now, 1);
        if (peer.last_ping_ms == 0 || now - peer.last_ping_ms >= config_.ping_interval_ms) {
            peer.last_ping_ms = std::max<uint64_t>(now, 1);
            env_.send(m.id, PingRequest{next_id_++, config_.node_id});
        }
    }
}

// ---- client requests ---------------------------------------------------------

namespace {
std::string level_text(const proto::Consistency& c, const char* which) {
    if (c.count != 0) return std::string(which) + "=" + std::to_string(c.count);
    return std::string(proto::level_name(c.level));
}
}  // namespace

void Node::handle(const ReplyTo& from, proto::GetRequest req) {
    const uint32_t n = std::min<uint32_t>(config_.n_replicas, ring_.nodes().size());
    const uint32_t required = proto::replicas_required(req.consistency, n);
    auto reply_error = [&](ErrorCode code, std::string why) {
        env_.reply(from, proto::GetResponse{req.id, code, std::move(why), {}, {}, {}});
    };
    if (ring_.empty()) {
        ++stats_.unavailable;
        return reply_error(ErrorCode::unavailable, "no ring yet: this node is joining");
    }
    if (required == 0) {
        return reply_error(ErrorCode::invalid_argument,
                           "consistency " + level_text(req.consistency, "r") +
                               " needs more replicas than n=" + std::to_string(n));
    }
    if (ops_.size() >= config_.requests_in_flight_max) {
        return reply_error(ErrorCode::overloaded, "too many requests in flight; retry later");
    }
    auto op = std::make_unique<Op>();
    op->id = next_id_++;
    op->kind = OpKind::read;
    op->client = from;
    op->client_request_id = req.id;
    op->key = std::move(req.key);
    op->replicas = ring_.preference_list(op->key, n);
    op->required = required;
    const size_t up = std::count_if(op->replicas.begin(), op->replicas.end(),
                                    [&](const std::string& r) { return reachable(r); });
    if (up < required) {
        ++stats_.unavailable;
        return reply_error(ErrorCode::unavailable,
                           std::to_string(required) + " replicas required (" +
                               level_text(req.consistency, "r") + " of n=" + std::to_string(n) +
                               "), only " + std::to_string(up) + " of " + std::to_string(n) +
                               " reachable");
    }
    const uint64_t deadline_ms = req.deadline_ms ? req.deadline_ms : config_.default_deadline_ms;
    op->deadline_at_ms = env_.now_ms() + deadline_ms;
    deadlines_.emplace(op->deadline_at_ms, op->id);
    Op& ref = *op;
    ops_.emplace(op->id, std::move(op));
    bool local = false;
    for (const auto& replica : ref.replicas) {
        if (replica == config_.node_id) {
            local = true;
        } else {
            call_peer(ref, replica, ReplicaReadRequest{0, ref.key});
        }
    }
    if (local) {
        Status owner = check_local_replica(ref.key, false, {});
        if (!owner.ok()) {
            on_read_reply(ref, config_.node_id, owner, std::nullopt);
        } else {
            auto stored = replica_read(ref.key);
            on_read_reply(ref, config_.node_id, stored.status(),
                          stored ? stored.value() : std::optional<std::string>());
        }
    }
    if (ref.finished) finish(ref.id);
}

void Node::handle_write(const ReplyTo& from, uint64_t client_id, std::string key,
                        std::optional<std::string> value, std::optional<std::string> context,
                        const proto::Consistency& consistency, uint64_t deadline_ms) {
    const uint32_t n = std::min<uint32_t>(config_.n_replicas, ring_.nodes().size());
    const uint32_t required = proto::replicas_required(consistency, n);
    auto reply_error = [&](ErrorCode code, std::string why) {
        env_.reply(from, proto::WriteResponse{client_id, code, std::move(why), {}, {}});
    };
    if (ring_.empty()) {
        ++stats_.unavailable;
        return reply_error(ErrorCode::unavailable, "no ring yet: this node is joining");
    }
    if (required == 0) {
        return reply_error(ErrorCode::invalid_argument,
                           "consistency " + level_text(consistency, "w") +
                               " needs more replicas than n=" + std::to_string(n));
    }
    if (ops_.size() >= config_.requests_in_flight_max) {
        return reply_error(ErrorCode::overloaded, "too many requests in flight; retry later");
    }
    // While the key's range moves, its new owners are written too and must
    // acknowledge on top of w (Cassandra's pending ranges), so that once the
    // move completes w of the key's new replicas hold every acknowledged write.
    std::vector<std::string> replicas = ring_.preference_list(key, n);
    const std::vector<std::string> pending = pending_replicas(key, n);
    const size_t current_count = replicas.size();
    replicas.insert(replicas.end(), pending.begin(), pending.end());
    const uint32_t required_all = required + static_cast<uint32_t>(pending.size());
    std::vector<std::string> up;
    for (const auto& r : replicas) {
        if (reachable(r)) up.push_back(r);
    }
    if (up.size() < required_all) {
        ++stats_.unavailable;
        std::string why = std::to_string(required_all) + " replicas required (" +
                          level_text(consistency, "w") + " of n=" + std::to_string(n);
        if (!pending.empty())
            why += ", plus " + std::to_string(pending.size()) + " new owner(s) of a moving range";
        return reply_error(ErrorCode::unavailable, why + "), only " + std::to_string(up.size()) +
                                                       " of " + std::to_string(replicas.size()) +
                                                       " reachable");
    }
    auto op = std::make_unique<Op>();
    op->id = next_id_++;
    op->kind = OpKind::write;
    op->client = from;
    op->client_request_id = client_id;
    op->key = std::move(key);
    op->replicas = std::move(replicas);
    op->required = required_all;
    // The version is minted by one replica: this node when it is one (no extra
    // hop), else the first reachable replica in preference order; a replica
    // that answers not_owner (its range moved on) passes the turn to the next.
    const auto current_end = op->replicas.begin() + static_cast<std::ptrdiff_t>(current_count);
    if (std::find(op->replicas.begin(), current_end, config_.node_id) != current_end)
        op->mint_candidates.push_back(config_.node_id);
    for (const auto& r : up) {
        if (r != config_.node_id) op->mint_candidates.push_back(r);
    }
    op->deadline_at_ms = env_.now_ms() + (deadline_ms ? deadline_ms : config_.default_deadline_ms);
    deadlines_.emplace(op->deadline_at_ms, op->id);
    Op& ref = *op;
    ops_.emplace(op->id, std::move(op));
    ref.value = std::move(value);
    ref.context = std::move(context);
    send_mint(ref);
    if (ref.finished) finish(ref.id);
}

void Node::send_mint(Op& op) {
    assert(op.mint_index < op.mint_candidates.size());
    const std::string& minter = op.mint_candidates[op.mint_index];
    if (minter == config_.node_id) {
        Status owner = check_local_replica(op.key, true, op.replicas);
        if (!owner.ok()) return on_write_reply(op, minter, owner, "");
        auto written = replica_write(op.key, op.value, op.context);
        on_write_reply(op, minter, written.status(), written ? written.value() : "");
    } else {
        call_peer(op, minter,
                  ReplicaWriteRequest{0, op.key, op.value, op.context, config_.siblings_max,
                                      op.replicas});
    }
}

void Node::handle(const ReplyTo& from, const proto::LocalGetRequest& req) {
    proto::GetResponse resp;
    resp.id = req.id;
    auto loaded = load_object(req.key);
    if (!loaded) {
        resp.code = loaded.status().code();
        resp.message = loaded.status().message();
        return env_.reply(from, std::move(resp));
    }
    const Object& object = loaded.value();
    resp.values = object.live_values();
    resp.code = resp.values.empty() ? ErrorCode::not_found : ErrorCode::ok;
    if (!object.context.empty()) resp.context = encode_context(object.context);
    resp.info = proto::ReplyInfo{1, 1, false, static_cast<uint32_t>(resp.values.size())};
    env_.reply(from, std::move(resp));
}

void Node::handle(const ReplyTo& from, const proto::StatusRequest& req) {
    refresh_ring();
    proto::StatusResponse resp;
    resp.id = req.id;
    resp.node_id = config_.node_id;
    resp.n_replicas = config_.n_replicas;
    const uint64_t now = env_.now_ms();
    // Tokens and ring share per member, from the ring this node routes by.
    std::map<std::string, std::pair<uint32_t, uint32_t>> placement;
    const std::vector<double> shares = ring_.ownership();
    for (size_t i = 0; i < ring_.nodes().size(); ++i) {
        placement[ring_.nodes()[i]].second = static_cast<uint32_t>(shares[i] * 1e6 + 0.5);
    }
    for (const auto& t : ring_.tokens()) ++placement[ring_.nodes()[t.node_index]].first;
    auto last_seen = [&](const std::string& id) {
        auto p = peers_.find(id);
        return (p != peers_.end() && p->second.heard) ? now - p->second.last_heard_ms : UINT64_MAX;
    };
    if (gossiper_) {
        // Every member gossip knows of, ring members or not (joining, down, left).
        for (const auto& [id, state] : gossiper_->view().states()) {
            proto::MemberStatus s{id,
                                  state.endpoint,
                                  std::string(gossip::status_name(state.status())),
                                  id == config_.node_id ? 0 : last_seen(id),
                                  0,
                                  0};
            // Claimed tokens show while a member joins; its share once it owns them.
            if (state.holds_tokens()) s.tokens = static_cast<uint32_t>(state.tokens.size());
            auto p = placement.find(id);
            if (p != placement.end()) s.share_ppm = p->second.second;
            resp.members.push_back(std::move(s));
        }
    } else {
        for (const auto& m : membership_->members()) {
            proto::MemberStatus s{m.id, m.endpoint, "self", 0, 0, 0};
            if (m.id != config_.node_id) {
                s.state = reachable(m.id) ? "up" : "unreachable";
                s.last_seen_ms_ago = last_seen(m.id);
            }
            auto p = placement.find(m.id);
            if (p != placement.end()) std::tie(s.tokens, s.share_ppm) = p->second;
            resp.members.push_back(std::move(s));
        }
    }
    auto keys = env_.count(Space::data);
    resp.keys_stored = keys ? keys.value() : 0;
    for (const auto& t : inbound_) {
        const char* state = t.phase == InboundTransfer::Phase::done          ? "done"
                            : t.phase == InboundTransfer::Phase::handing_off ? "handing_off"
                            : t.call_id != 0                                 ? "streaming"
                                                                             : "waiting";
        resp.transfers.push_back(proto::TransferStatus{
            t.plan.source, "in", state, static_cast<uint32_t>(t.plan.ranges.size()), t.keys});
    }
    if (moving_) {
        std::map<std::string, uint32_t> needed, done;
        for (const auto& need : outbound_needs_) {
            ++needed[need.target];
            if (handed_off(need)) ++done[need.target];
        }
        for (const auto& [target, count] : needed) {
            const bool finished = done[target] == count;
            resp.transfers.push_back(proto::TransferStatus{
                target, "out", finished ? "done" : "streaming", count, keys_sent_to_[target]});
        }
    }
    env_.reply(from, std::move(resp));
}

// ---- peer requests: this node as a replica -----------------------------------

void Node::handle(const ReplyTo& from, const ReplicaReadRequest& req) {
    Status owner = check_replica(req.key, false, {});
    if (!owner.ok()) {
        return env_.reply(from,
                          ReplicaReadResponse{req.id, owner.code(), owner.message(), std::nullopt});
    }
    auto stored = replica_read(req.key);
    env_.reply(from, ReplicaReadResponse{req.id, stored.status().code(), stored.status().message(),
                                         stored ? stored.value() : std::nullopt});
}

void Node::handle(const ReplyTo& from, const ReplicaWriteRequest& req) {
    auto request = std::make_pair(from.route, req.id);
    if (minted_.count(request)) {
        // A duplicate: answer with what the replica holds now, which includes
        // the first copy's version or what superseded it.
        auto stored = replica_read(req.key);
        const bool ok = stored.ok() && stored.value().has_value();
        env_.reply(from, ReplicaWriteResponse{
                             req.id, ok ? ErrorCode::ok : ErrorCode::storage_error,
                             ok ? std::string() : "duplicate write request and no stored version",
                             ok ? *stored.value() : std::string()});
        return;
    }
    Status owner = check_replica(req.key, true, req.targets);
    if (!owner.ok()) {
        return env_.reply(from, ReplicaWriteResponse{req.id, owner.code(), owner.message(), {}});
    }
    // The coordinator's limit is not trusted beyond this node's own.
    auto written = replica_write(req.key, req.value, req.context);
    if (written.ok()) {
        minted_.insert(request);
        minted_order_.push_back(std::move(request));
        if (minted_order_.size() > config_.minted_requests_remembered) {
            minted_.erase(minted_order_.front());
            minted_order_.pop_front();
        }
    }
    env_.reply(from,
               ReplicaWriteResponse{req.id, written.status().code(), written.status().message(),
                                    written ? written.value() : std::string()});
}

void Node::handle(const ReplyTo& from, const ReplicaMergeRequest& req) {
    Status s = check_replica(req.key, true, req.targets);
    if (s.ok()) s = replica_merge(req.key, req.object);
    env_.reply(from, ReplicaMergeResponse{req.id, s.code(), s.message()});
}

void Node::handle(const ReplyTo& from, const PingRequest& req) {
    if (member(req.from_node) != nullptr) heard_from(req.from_node);
    env_.reply(from, PingResponse{req.id, config_.node_id});
}

void Node::handle(const ReplyTo& from, const GossipRequest& req) {
    if (!gossiper_) return;  // static membership: gossip is not spoken here
    auto decoded = gossip::decode(req.payload);
    if (!decoded) return on_bad_frame(from, req.id, decoded.status());
    send_gossip(gossiper_->handle(decoded.value(), env_.now_ms()));
    refresh_ring();
}

// ---- gossip ------------------------------------------------------------------

Status Node::start_gossip() {
    auto stored = env_.read(Space::meta, kIncarnationMetaKey);
    if (!stored) return stored.status();
    uint64_t incarnation = 1;
    if (stored.value()) {
        auto previous = parse_u64(*stored.value());
        if (!previous || *previous == UINT64_MAX) {
            return Status(ErrorCode::storage_error, "corrupt incarnation in the meta space");
        }
        incarnation = *previous + 1;
    }
    persist_incarnation(incarnation);
    gossip::MemberState self;
    self.id = config_.node_id;
    self.endpoint = config_.endpoint;
    self.incarnation = incarnation;
    auto tokens = env_.read(Space::meta, kTokensMetaKey);
    if (!tokens) return tokens.status();
    if (tokens.value()) {
        auto decoded = decode_tokens(*tokens.value());
        if (!decoded) return Status(ErrorCode::storage_error, "corrupt tokens in the meta space");
        // A restart: back at once with the tokens and the status of the
        // earlier life (a join or a leave resumes where it was).
        self.tokens = std::move(*decoded);
        self.declared =
            self.tokens.empty() ? gossip::MemberStatus::joining : gossip::MemberStatus::up;
        auto status = env_.read(Space::meta, kStatusMetaKey);
        if (!status) return status.status();
        if (status.value() && !self.tokens.empty()) {
            for (auto candidate : {gossip::MemberStatus::joining, gossip::MemberStatus::up,
                                   gossip::MemberStatus::leaving, gossip::MemberStatus::left}) {
                if (*status.value() == gossip::status_name(candidate)) self.declared = candidate;
            }
        }
    }
    for (const auto& seed : config_.seeds) {
        seeds_elsewhere_ = seeds_elsewhere_ || seed != config_.endpoint;
        self_is_seed_ = self_is_seed_ || seed == config_.endpoint;
    }
    gossip_rng_.seed(env_.random_u64());
    gossiper_ = std::make_unique<gossip::Gossiper>(config_.gossip, std::move(self), config_.seeds,
                                                   env_.now_ms());
    membership_ = &gossiper_->view();
    auto saved_view = env_.read(Space::meta, kViewMetaKey);
    if (!saved_view) return saved_view.status();
    if (saved_view.value()) {
        auto decoded = gossip::decode(*saved_view.value());
        if (decoded && std::holds_alternative<gossip::GossipAck2>(decoded.value())) {
            gossiper_->restore(std::get<gossip::GossipAck2>(decoded.value()).entries,
                               env_.now_ms());
        } else {
            log(LogLevel::warn, "the saved cluster view is unreadable; waiting for gossip");
        }
    }
    load_handoffs();
    log(LogLevel::info, "gossip: incarnation " + std::to_string(incarnation) + ", " +
                            std::to_string(gossiper_->view().self().tokens.size()) +
                            " tokens from an earlier life");
    return {};
}

void Node::gossip_tick(uint64_t now_ms) {
    maybe_claim_tokens(now_ms);
    send_gossip(gossiper_->tick(now_ms, gossip_rng_));
    refresh_ring();
}

// A refutation raises the incarnation in memory; the next life must start
// above it too, or peers would keep the old life's higher heartbeat.
void Node::persist_incarnation(uint64_t incarnation) {
    if (incarnation <= persisted_incarnation_) return;
    env_.stage_write(
        StoreWrite{Space::meta, std::string(kIncarnationMetaKey), std::to_string(incarnation)});
    persisted_incarnation_ = incarnation;
}

void Node::persist_view() {
    gossip::GossipAck2 saved{config_.node_id, {}};
    for (const auto& [id, s] : gossiper_->view().states()) {
        if (id == config_.node_id) continue;
        gossip::MemberState entry = s;
        entry.liveness = gossip::Liveness::alive;  // a verdict of the past life's detector
        saved.entries.push_back(std::move(entry));
    }
    env_.stage_write(StoreWrite{Space::meta, std::string(kViewMetaKey), gossip::encode(saved)});
}

void Node::send_gossip(std::vector<gossip::Outgoing> out) {
    // Staged before the sends: the effects contract makes it durable first.
    persist_incarnation(gossiper_->view().self().incarnation);
    for (auto& o : out) {
        // By endpoint always: the peer may not be a ring member (joining, or a
        // seed whose id we do not know yet), and gossip is never answered.
        env_.send_to_endpoint(
            o.endpoint, GossipRequest{next_id_++, config_.node_id, gossip::encode(o.message)});
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
void Node::maybe_claim_tokens(uint64_t now_ms) {
    const gossip::ClusterView& view = gossiper_->view();
    if (!view.self().tokens.empty()) return;
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
    std::vector<uint64_t> tokens =
        gossip::claim_tokens(others, config_.node_id, config_.vnodes, config_.n_replicas);
    env_.stage_write(StoreWrite{Space::meta, std::string(kTokensMetaKey), encode_tokens(tokens)});
    gossiper_->set_tokens(std::move(tokens));
    // With a ring to join, the node owns nothing until its ranges streamed in
    // (refresh_transfers); the first node of a cluster is up at once.
    declare(others.empty() ? gossip::MemberStatus::up : gossip::MemberStatus::joining);
    log(LogLevel::info, "claimed " + std::to_string(config_.vnodes) + " tokens among " +
                            std::to_string(others.size()) + " members" +
                            (others.empty() ? "" : "; streaming its ranges in"));
}

void Node::declare(gossip::MemberStatus status) {
    gossiper_->declare(status);
    env_.stage_write(StoreWrite{Space::meta, std::string(kStatusMetaKey),
                                std::string(gossip::status_name(status))});
    refresh_ring();
}

Result<std::optional<std::string>> Node::replica_read(const std::string& key) {
    auto stored = env_.read(Space::data, key);
    if (!stored) return Status(ErrorCode::storage_error, stored.status().message());
    return stored;
}

Result<Object> Node::load_object(const std::string& key) {
    auto stored = replica_read(key);
    if (!stored) return stored.status();
    if (!stored.value()) return Object{};
    auto decoded = decode_object(*stored.value());
    if (!decoded) {
        log(LogLevel::error, "stored object of a key is corrupt: " + decoded.status().message());
        return Status(ErrorCode::storage_error, "stored object is corrupt");
    }
    return std::move(decoded.value());
}

Result<std::string> Node::replica_write(const std::string& key, std::optional<std::string> value,
                                        const std::optional<std::string>& context) {
    auto loaded = load_object(key);
    if (!loaded) return loaded.status();
    Object local = std::move(loaded.value());
    VersionVector seen;
    if (context && !context->empty()) {
        auto decoded = decode_context(*context);
        if (!decoded) return decoded.status();
        seen = std::move(decoded.value());
    } else if (!value) {
        seen = local.context;  // a delete without context removes all this replica holds
    }
    const bool is_delete = !value.has_value();
    auto updated =
        update(local, seen, actor_, std::move(value), config_.siblings_max, proto::kObjectBytesMax);
    if (!updated) return updated.status();
    const size_t siblings = updated->siblings.size();
    if (siblings >= config_.siblings_warn && !is_delete) {
        log(LogLevel::warn, "a key has " + std::to_string(siblings) +
                                " siblings; writers should pass the context of a get (limit " +
                                std::to_string(config_.siblings_max) + ")");
    }
    std::string bytes = encode_object(updated.value());
    env_.stage_write(StoreWrite{Space::data, key, bytes});
    return bytes;
}

Status Node::replica_merge(const std::string& key, std::string_view object_bytes) {
    auto incoming = decode_object(object_bytes);
    if (!incoming) return incoming.status();
    auto loaded = load_object(key);
    if (!loaded) return loaded.status();
    Object local = std::move(loaded.value());
    Object merged = merge(local, incoming.value());
    if (!(merged == local)) env_.stage_write(StoreWrite{Space::data, key, encode_object(merged)});
    return {};
}

// ---- coordinator ---------------------------------------------------------------

uint64_t Node::call_peer(Op& op, const std::string& peer, node::Message request) {
    const uint64_t id = next_id_++;
    std::visit([id](auto& m) { m.id = id; }, request);
    pending_.emplace(id, PendingPeerCall{op.id, peer});
    op.peer_calls.push_back(id);
    env_.send(peer, std::move(request));
    return id;
}

void Node::on_read_reply(Op& op, const std::string& replica, const Status& status,
                         const std::optional<std::string>& object) {
    if (op.versions.count(replica) || op.failed.count(replica)) return;  // duplicate
    if (!status.ok()) {
        op.failed.insert(replica);
    } else if (!object) {
        op.versions.emplace(replica, std::nullopt);
    } else {
        auto decoded = decode_object(*object);
        if (decoded) {
            op.versions.emplace(replica, std::move(decoded.value()));
        } else {
            log(LogLevel::warn, "replica " + replica + " sent an undecodable object");
            op.failed.insert(replica);
        }
    }
    if (!op.answered && op.versions.size() >= op.required && !op.wants_all()) answer_read(op);
    if (!status.ok()) op.last_failure = status.message();
    // Once the level cannot be met, wait for the replicas still out so the
    // error reports what really happened, then fail.
    if (!op.answered && op.replicas.size() - op.failed.size() < op.required &&
        op.responded() == op.replicas.size()) {
        return fail_unavailable(op, op.versions.size(), "answered");
    }
    maybe_finish_read(op);
}

void Node::maybe_finish_read(Op& op) {
    if (op.responded() < op.replicas.size()) return;
    if (!op.repairs_sent) send_read_repairs(op);
    if (!op.repairs_waiting.empty()) return;
    if (!op.answered && op.repair_failed) {
        // At `all` the answer promises every replica holds it; one does not.
        return fail(op, ErrorCode::unavailable, op.last_failure);
    }
    if (!op.answered) answer_read(op);
    op.finished = true;
}

namespace {
Object merge_versions(const std::map<std::string, std::optional<Object>>& versions) {
    Object merged;
    for (const auto& [replica, version] : versions) {
        if (version) merged = merge(merged, *version);
    }
    return merged;
}
}  // namespace

void Node::on_repair_reply(Op& op, const std::string& replica, const Status& status) {
    if (!status.ok()) {
        log(LogLevel::warn, "read repair of " + replica + " failed: " + status.to_string());
        op.last_failure = "read repair of " + replica + " failed: " + status.message();
        op.repair_failed = true;
    }
    op.repairs_waiting.erase(replica);
    maybe_finish_read(op);
}

void Node::send_read_repairs(Op& op) {
    op.repairs_sent = true;
    if (op.versions.size() < 2) return;
    const Object merged = merge_versions(op.versions);
    if (merged.empty()) return;
    std::string bytes;
    for (const auto& [replica, version] : op.versions) {
        if (version && *version == merged) continue;
        if (bytes.empty()) bytes = encode_object(merged);
        ++stats_.read_repairs;
        if (replica == config_.node_id) {
            Status s = check_local_replica(op.key, true, {});
            if (s.ok()) s = replica_merge(op.key, bytes);
            if (!s.ok()) log(LogLevel::warn, "local read repair failed: " + s.to_string());
        } else {
            op.repairs_waiting.insert(replica);
            call_peer(op, replica, ReplicaMergeRequest{0, op.key, bytes, {}});
        }
    }
}

void Node::answer_read(Op& op) {
    assert(!op.answered);
    op.answered = true;
    const Object merged = merge_versions(op.versions);
    proto::GetResponse resp;
    resp.id = op.client_request_id;
    resp.values = merged.live_values();
    resp.code = resp.values.empty() ? ErrorCode::not_found : ErrorCode::ok;
    if (resp.values.empty()) resp.message = merged.empty() ? "no such key" : "the key was deleted";
    if (!merged.context.empty()) resp.context = encode_context(merged.context);
    resp.info = proto::ReplyInfo{static_cast<uint32_t>(op.replicas.size()),
                                 static_cast<uint32_t>(op.versions.size()), false,
                                 static_cast<uint32_t>(resp.values.size())};
    env_.reply(op.client, std::move(resp));
}

void Node::on_write_reply(Op& op, const std::string& replica, const Status& status,
                          const std::string& object) {
    if (op.replicating) return;
    if (!status.ok() && status.code() == ErrorCode::not_owner &&
        op.mint_index + 1 < op.mint_candidates.size() &&
        replica == op.mint_candidates[op.mint_index]) {
        ++op.mint_index;
        return send_mint(op);
    }
    if (!status.ok()) return fail(op, status.code(), status.message());
    auto decoded = decode_object(object);
    if (!decoded)
        return fail(op, ErrorCode::internal,
                    "replica " + replica + " minted an undecodable object");
    op.written_context = decoded->context;
    op.sibling_count = static_cast<uint32_t>(decoded->live_count());
    op.acked.insert(replica);
    op.value.reset();
    op.context.reset();
    start_replication(op, object);
}

void Node::start_replication(Op& op, const std::string& object_bytes) {
    op.replicating = true;
    op.written = object_bytes;
    bool local = false;
    for (const auto& replica : op.replicas) {
        if (op.acked.count(replica)) continue;
        if (replica == config_.node_id) {
            local = true;
        } else {
            call_peer(op, replica, ReplicaMergeRequest{0, op.key, object_bytes, op.replicas});
        }
    }
    if (local) {
        Status owner = check_local_replica(op.key, true, op.replicas);
        on_merge_reply(op, config_.node_id,
                       owner.ok() ? replica_merge(op.key, object_bytes) : owner);
    } else {
        on_merge_reply(op, {}, Status(ErrorCode::ok, ""));  // re-check: w may be 1
    }
}

void Node::on_merge_reply(Op& op, const std::string& replica, const Status& status) {
    if (!replica.empty()) {
        if (status.ok()) {
            op.acked.insert(replica);
        } else {
            op.failed.insert(replica);
            log(LogLevel::warn, "replica " + replica + " refused a write: " + status.to_string());
        }
    }
#ifdef KV_PLANTED_FAULT_EARLY_ACK
    // Test-only bug (sim/CMakeLists.txt, kv_core_planted): acknowledge once the
    // minting replica has the write, whatever w asked for.
    if (!op.answered && !op.acked.empty()) {
#else
    if (!op.answered && op.acked.size() >= op.required) {
#endif
        op.answered = true;
        env_.reply(op.client,
                   proto::WriteResponse{op.client_request_id,
                                        ErrorCode::ok,
                                        {},
                                        encode_context(op.written_context),
                                        proto::ReplyInfo{static_cast<uint32_t>(op.replicas.size()),
                                                         static_cast<uint32_t>(op.acked.size()),
                                                         false, op.sibling_count}});
    }
    if (!status.ok()) op.last_failure = status.message();
    if (!op.answered && op.replicas.size() - op.failed.size() < op.required &&
        op.acked.size() + op.failed.size() == op.replicas.size()) {
        return fail_unavailable(op, op.acked.size(), "acknowledged");
    }
    if (op.acked.size() + op.failed.size() == op.replicas.size()) op.finished = true;
}

void Node::fail_unavailable(Op& op, size_t succeeded, const char* verb) {
    ++stats_.unavailable;
    fail(op, ErrorCode::unavailable,
         std::to_string(op.required) + " replicas required, " + std::to_string(succeeded) + " of " +
             std::to_string(op.replicas.size()) + " " + verb + ", " +
             std::to_string(op.failed.size()) + " failed (" + op.last_failure + ")");
}

void Node::fail(Op& op, ErrorCode code, const std::string& why) {
    op.finished = true;
    if (op.answered) return;
    op.answered = true;
    if (op.kind == OpKind::read) {
        env_.reply(op.client,
                   proto::GetResponse{
                       op.client_request_id,
                       code,
                       why,
                       {},
                       {},
                       proto::ReplyInfo{static_cast<uint32_t>(op.replicas.size()),
                                        static_cast<uint32_t>(op.versions.size()), false, 0}});
    } else {
        env_.reply(op.client,
                   proto::WriteResponse{
                       op.client_request_id,
                       code,
                       why,
                       {},
                       proto::ReplyInfo{static_cast<uint32_t>(op.replicas.size()),
                                        static_cast<uint32_t>(op.acked.size()), false, 0}});
    }
}

void Node::expire(Op& op) {
    if (op.answered) {
        // Answered already; repair what we can from the replicas that did answer.
        if (op.kind == OpKind::read && !op.repairs_sent) send_read_repairs(op);
        op.finished = true;
        return;
    }
    const size_t answered = op.kind == OpKind::read ? op.versions.size() : op.acked.size();
    if (op.replicas.size() - op.failed.size() < op.required) {
        return fail_unavailable(op, answered,
                                op.kind == OpKind::read ? "answered" : "acknowledged");
    }
    ++stats_.timeouts;
    std::string why = std::to_string(op.required) + " replicas required, " +
                      std::to_string(answered) + " of " + std::to_string(op.replicas.size()) +
                      " answered before the deadline";
    if (op.kind == OpKind::write && answered > 0) why += " (the write may be visible on those)";
    if (op.kind == OpKind::read && op.repairs_sent && !op.repairs_waiting.empty()) {
        why = "all replicas answered but " + std::to_string(op.repairs_waiting.size()) +
              " did not confirm read repair before the deadline";
    }
    fail(op, ErrorCode::timeout, why);
}

void Node::finish(uint64_t op_id) {
    auto it = ops_.find(op_id);
    if (it == ops_.end()) return;
    Op& op = *it->second;
    for (uint64_t call : op.peer_calls) pending_.erase(call);
    deadlines_.erase({op.deadline_at_ms, op.id});
    ops_.erase(it);
}

// ---- membership -----------------------------------------------------------------

bool Node::reachable(const std::string& id) const {
    if (id == config_.node_id) return true;
    // Gossip's verdict first: a member its failure detector marked down.
    if (gossip_says_down(id)) return false;
    auto it = peers_.find(id);
    const uint64_t now = env_.now_ms();
    if (it == peers_.end() || !it->second.heard) {
        // Never heard yet: give the peer the detection window after our own
        // start, or after we first learned of it (a member that just joined).
        const uint64_t since = it == peers_.end() || it->second.first_known_ms == 0
                                   ? started_ms_
                                   : std::max(started_ms_, it->second.first_known_ms);
        return now - since < config_.peer_down_after_ms;
    }
    return now - it->second.last_heard_ms <= config_.peer_down_after_ms;
}

bool Node::gossip_says_down(const std::string& id) const {
    if (!gossiper_) return false;
    const gossip::MemberState* s = gossiper_->view().find(id);
    return s != nullptr && s->liveness == gossip::Liveness::down;
}

void Node::heard_from(const std::string& peer) {
    PeerState& p = peers_[peer];
    p.heard = true;
    p.last_heard_ms = env_.now_ms();
}

void Node::refresh_ring() {
    if (ring_version_ == membership_->version() && !ring_.empty()) return;
    ring_version_ = membership_->version();
    if (gossiper_) {
        // Every member computes the same ring from the same view: the tokens
        // each member claimed and gossiped.
        std::vector<std::pair<std::string, std::vector<uint64_t>>> tokens;
        for (auto& n : gossiper_->view().ring_input())
            tokens.emplace_back(n.id, std::move(n.tokens));
        ring_ = ring::Ring::from_tokens(std::move(tokens));
        std::vector<std::pair<std::string, std::vector<uint64_t>>> future;
        for (auto& n : gossiper_->view().future_ring_input())
            future.emplace_back(n.id, std::move(n.tokens));
        future_ring_ = ring::Ring::from_tokens(std::move(future));
        moving_ =
            !(future_ring_.tokens() == ring_.tokens() && future_ring_.nodes() == ring_.nodes());
        ring_digest_ = ring_digest(ring_, future_ring_);
        refresh_transfers();
        persist_view();
        return;
    }
    std::vector<std::string> ids;
    for (const auto& m : membership_->members()) ids.push_back(m.id);
    ring_ = ring::Ring(std::move(ids), config_.vnodes);
    future_ring_ = ring_;
    ring_digest_ = ring_digest(ring_, future_ring_);
}

const gossip::Member* Node::member(const std::string& id) const {
    for (const auto& m : membership_->members()) {
        if (m.id == id) return &m;
    }
    return nullptr;
}

}  // namespace kv::node
