#include "node/node.h"

#include <cassert>
#include <cstdio>
#include <type_traits>

#include "client/metrics.h"
#include "node/access/access.h"
#include "node/antientropy/anti_entropy.h"
#include "node/antientropy/key_index.h"
#include "node/antientropy/tombstone_gc.h"
#include "node/coordinator/coordinator.h"
#include "node/hints/hint_replay.h"
#include "node/membership/gossip_driver.h"
#include "node/membership/peers.h"
#include "node/membership/placement.h"
#include "node/mutant.h"
#include "node/rebalance/rebalancer.h"
#include "node/replica/handoffs.h"
#include "node/replica/hint_store.h"
#include "node/replica/replica.h"
#include "node/storage/meta_codec.h"

namespace kv::node {

namespace {
template <class>
inline constexpr bool kAlwaysFalse = false;

std::string hex64(uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
}
}  // namespace

Node::Node(NodeConfig config, Env& env, const gossip::Membership& membership)
    : config_(std::move(config)), env_(env), membership_(&membership) {
    assert(!config_.node_id.empty());
    assert(config_.n_replicas >= 1);
    assert(config_.seeds.empty());
    construct_components();
    refresh_placement();
    assert(has_id(placement_->ring().nodes(), config_.node_id));
}

Node::Node(NodeConfig config, Env& env) : config_(std::move(config)), env_(env) {
    assert(!config_.node_id.empty());
    assert(config_.n_replicas >= 1);
    assert(!config_.seeds.empty());
    assert(!config_.endpoint.empty());
    construct_components();
}

void Node::construct_components() {
    placement_ = std::make_unique<Placement>(config_.node_id, config_.n_replicas, config_.vnodes);
    handoffs_ = std::make_unique<Handoffs>(env_);
    hints_ = std::make_unique<HintStore>(config_, env_, stats_);
    peers_ = std::make_unique<Peers>(config_, env_, ids_);
    if (!config_.seeds.empty()) {
        gossip_ =
            std::make_unique<GossipDriver>(config_, env_, ids_, [this] { refresh_placement(); });
    }
    replica_ = std::make_unique<Replica>(config_, env_, *placement_, *handoffs_, *hints_);
    rebalancer_ = std::make_unique<Rebalancer>(config_, env_, ids_, stats_, *placement_, *peers_,
                                               *replica_, *handoffs_, gossip_.get());
    coordinator_ =
        std::make_unique<Coordinator>(config_, env_, ids_, stats_, *placement_, *peers_, *replica_);
    access_ = std::make_unique<Access>(config_, env_, ids_);
    hint_replay_ = std::make_unique<HintReplay>(config_, env_, ids_, stats_, *placement_, *peers_,
                                                *replica_, *hints_);
    key_index_ = std::make_unique<KeyIndex>(env_);
    replica_->add_observer([index = key_index_.get()](
                               const std::string& key, const Replica::Previous& previous,
                               const std::optional<std::string>& object, bool tombstones_only) {
        index->on_change(key, previous.object, previous.tombstones_only, object, tombstones_only);
    });
    anti_entropy_ = std::make_unique<AntiEntropy>(config_, env_, ids_, stats_, *placement_, *peers_,
                                                  *replica_, *key_index_, *hints_);
    tombstone_gc_ = std::make_unique<TombstoneGc>(config_, env_, stats_, *placement_, *replica_,
                                                  *key_index_, *anti_entropy_, *hints_);
}

Node::~Node() = default;

Status Node::start() {
    const uint64_t started_ms = env_.now_ms();
    ids_.start(env_.random_u64());
    auto format = env_.read(Space::meta, meta::kFormatKey);
    if (!format) return format.status();
    if (Status known = meta::check_format(format.value()); !known.ok()) return known;
    if (!format.value()) {
        // New, or format 1 (which had no record) with nothing to move. Format 1
        // objects here mean the upgrade did not run: they would be invisible.
        for (Space old : {Space::data, Space::key_hashes}) {
            bool held = false;
            Status scanned = env_.scan(old, "", 1, [&](std::string_view, std::string_view) {
                held = true;
                return false;
            });
            if (!scanned.ok()) return scanned;
            if (held) {
                return Status(ErrorCode::storage_error,
                              "the data directory holds format 1 objects not moved to format " +
                                  std::to_string(meta::kMetaFormat) +
                                  " (kvnode moves them at start)");
            }
        }
        env_.stage_write(StoreWrite{Space::meta, std::string(meta::kFormatKey),
                                    meta::encode_u64_text(meta::kMetaFormat)});
    }
    auto stored = env_.read(Space::meta, meta::kActorKey);
    if (!stored) return stored.status();
    replica_->set_lifetime(env_.random_u64());
    const bool fresh = !stored.value();
    auto running = env_.read(Space::meta, meta::kRunningKey);
    if (!running) return running.status();
    bool renew = fresh || running.value().has_value();
#ifdef KV_MUTANTS
    // Planted (node/mutant.h): the actor survives a crash; the dot of a
    // version that left ahead of the lost commit may be minted again.
    if (KV_MUTANT(actor_kept_after_crash) && !fresh) renew = false;
#endif
    if (!renew) {
        replica_->set_actor(*stored.value());
    } else {
        replica_->set_actor(config_.node_id + "." + hex64(env_.random_u64()));
        env_.stage_write(StoreWrite{Space::meta, std::string(meta::kActorKey), replica_->actor()});
        if (!fresh) {
            env_.log(LogLevel::info, "the last life of " + config_.node_id +
                                         " did not stop cleanly: minting as " + replica_->actor() +
                                         " instead of " + *stored.value());
        }
    }
    // Durable before anything is sent (the runtime commits start()'s writes
    // before it serves), so a crash from here on is seen by the next start.
    env_.stage_write(StoreWrite{Space::meta, std::string(meta::kRunningKey), std::string("1")});
    if (Status loaded = access_->start(replica_->actor()); !loaded.ok()) return loaded;
    if (gossip_) {
        Status gossip_started = gossip_->start(started_ms);
        if (!gossip_started.ok()) return gossip_started;
        membership_ = &gossip_->view();
    }
    if (Status loaded = handoffs_->load(); !loaded.ok()) return loaded;
    if (Status loaded = hints_->load(); !loaded.ok()) return loaded;
    if (Status indexed = key_index_->start(); !indexed.ok()) return indexed;
    if (Status floor = replica_->load_purge_floor(); !floor.ok()) return floor;
    peers_->start(started_ms, gossip_ ? &gossip_->view() : nullptr);
    refresh_placement();
    // With gossip a node that lost its data cannot come back under its old id
    // until that life is removed; it then joins anew and streams its ranges
    // before it counts (rebalance/). A static list has no such step: a node on
    // an empty directory refills, and the record of it (meta refill, durable
    // before anything is sent) makes a later start refill too until one
    // refill has ended; a stop before that must not leave it counted with
    // what little it received.
    std::string refill_why;
    if (fresh && !gossip_) {
        refill_why = "it started on an empty data directory";
        env_.stage_write(StoreWrite{Space::meta, std::string(meta::kRefillKey), refill_why});
    } else {
        auto owed = env_.read(Space::meta, meta::kRefillKey);
        if (!owed) return owed.status();
        if (owed.value())
            refill_why = *owed.value() + " (an earlier start, whose refill was cut short)";
    }
    // Writes this node acknowledged were dropped with a damaged log: a read
    // quorum of it and a replica the write missed would miss them too. With
    // gossip as well, as the node keeps its id and ranges. The mark goes only
    // once the refill is done, so a stop before that refills again next start.
    auto lost = env_.read(Space::meta, meta::kLostWritesKey);
    if (!lost) return lost.status();
    if (lost.value()) {
        env_.log(LogLevel::warn, "this node lost acknowledged writes: " + *lost.value());
        if (!refill_why.empty()) refill_why += "; ";
        refill_why += "its store dropped the writes of a damaged log";
    }
    if (!refill_why.empty()) {
        anti_entropy_->begin_refill(refill_why, [this] {
            for (std::string_view mark : {meta::kRefillKey, meta::kLostWritesKey})
                env_.stage_write(StoreWrite{Space::meta, std::string(mark), std::nullopt});
        });
    }
    env_.log(LogLevel::info, "node " + config_.node_id + " started with actor " +
                                 replica_->actor() + ", " +
                                 std::to_string(membership_->members().size()) +
                                 " members, n=" + std::to_string(config_.n_replicas));
    return {};
}

void Node::stop() {
    env_.stage_write(StoreWrite{Space::meta, std::string(meta::kRunningKey), std::nullopt});
}

// ---- dispatch ----------------------------------------------------------------

void Node::on_request(const ReplyTo& from, Message message, std::optional<uint64_t> received_ms,
                      const Principal& who) {
    ++stats_.requests;
    if (auto why = access_->refusal(who, message)) {
        ++stats_.unauthorized;
        env_.reply(from,
                   proto::ErrorResponse{node::request_id(message), ErrorCode::unauthorized, *why});
        return;
    }
    if (gossip_ && gossip_->gossiper() != nullptr && !gossip_->removed_by().empty() &&
        !std::holds_alternative<proto::StatusRequest>(message)) {
        // Its data is of a life the cluster removed (GossipDriver::note_removed);
        // status still answers, saying so.
        env_.reply(from, proto::ErrorResponse{node::request_id(message), ErrorCode::unavailable,
                                              "this node was removed from the cluster by " +
                                                  gossip_->removed_by() + " (kvctl removenode)"});
        return;
    }
    refresh_placement();
    const uint64_t received = received_ms.value_or(env_.now_ms());
    std::visit(
        [&](auto&& m) {
            using T = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<T, proto::GetRequest>) {
                coordinator_->handle(from, std::move(m), received);
            } else if constexpr (std::is_same_v<T, proto::PutRequest>) {
                coordinator_->handle_write(from, m.id, std::move(m.key), std::move(m.value),
                                           std::move(m.context), m.replace, m.consistency,
                                           m.deadline_ms, received);
            } else if constexpr (std::is_same_v<T, proto::DelRequest>) {
                coordinator_->handle_write(from, m.id, std::move(m.key), std::nullopt,
                                           std::move(m.context), false, m.consistency,
                                           m.deadline_ms, received);
            } else if constexpr (std::is_same_v<T, ReplicaWriteRequest> ||
                                 std::is_same_v<T, ReplicaMergeRequest>) {
                replica_->handle(from, m, received);
            } else if constexpr (std::is_same_v<T, proto::LocalGetRequest> ||
                                 std::is_same_v<T, ReplicaReadRequest> ||
                                 std::is_same_v<T, HintReplayRequest>) {
                replica_->handle(from, m);
            } else if constexpr (std::is_same_v<T, AeCompareRequest> ||
                                 std::is_same_v<T, AeKeysRequest> ||
                                 std::is_same_v<T, AePushRequest> ||
                                 std::is_same_v<T, proto::RepairRequest>) {
                anti_entropy_->handle(from, m);
            } else if constexpr (std::is_same_v<T, PingRequest>) {
                peers_->handle(from, m, *membership_);
            } else if constexpr (std::is_same_v<T, proto::LeaveRequest> ||
                                 std::is_same_v<T, proto::RemoveNodeRequest> ||
                                 std::is_same_v<T, StreamRequest> ||
                                 std::is_same_v<T, HandoffRequest>) {
                rebalancer_->handle(from, m);
            } else if constexpr (std::is_same_v<T, proto::StatusRequest> ||
                                 std::is_same_v<T, proto::StatsRequest> ||
                                 std::is_same_v<T, proto::OwnersRequest> ||
                                 std::is_same_v<T, GossipRequest>) {
                handle(from, m);
            } else if constexpr (std::is_same_v<T, proto::UserAddRequest> ||
                                 std::is_same_v<T, proto::UserDelRequest> ||
                                 std::is_same_v<T, proto::GrantRequest> ||
                                 std::is_same_v<T, proto::RevokeRequest>) {
                access_->handle(from, m, *membership_);
            } else if constexpr (std::is_same_v<T, proto::UserListRequest> ||
                                 std::is_same_v<T, CatalogSyncRequest>) {
                access_->handle(from, m);
            } else if constexpr (std::is_same_v<T, CatalogPushRequest>) {
                access_->handle(m);
            } else if constexpr (std::is_same_v<T, proto::GetResponse> ||
                                 std::is_same_v<T, proto::WriteResponse> ||
                                 std::is_same_v<T, proto::StatusResponse> ||
                                 std::is_same_v<T, proto::StatsResponse> ||
                                 std::is_same_v<T, proto::ErrorResponse> ||
                                 std::is_same_v<T, proto::AdminResponse> ||
                                 std::is_same_v<T, ReplicaReadResponse> ||
                                 std::is_same_v<T, ReplicaWriteResponse> ||
                                 std::is_same_v<T, ReplicaMergeResponse> ||
                                 std::is_same_v<T, PingResponse> ||
                                 std::is_same_v<T, StreamResponse> ||
                                 std::is_same_v<T, HandoffResponse> ||
                                 std::is_same_v<T, proto::UserListResponse> ||
                                 std::is_same_v<T, proto::OwnersResponse> ||
                                 std::is_same_v<T, CatalogSyncResponse> ||
                                 std::is_same_v<T, HintReplayResponse> ||
                                 std::is_same_v<T, AeCompareResponse> ||
                                 std::is_same_v<T, AeKeysResponse> ||
                                 std::is_same_v<T, AePushResponse>) {
                on_bad_frame(from, m.id,
                             Status(ErrorCode::bad_request,
                                    "'" + std::string(node::type_name(message)) +
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

void Node::on_peer_reply(const std::string& peer_id, Message message) {
    peers_->heard_from(peer_id);
    if (access_->on_reply(peer_id, message)) return;
    if (rebalancer_->on_reply(peer_id, message)) return;
    if (hint_replay_->on_reply(peer_id, message)) return;
    if (anti_entropy_->on_reply(peer_id, message)) return;
    coordinator_->on_reply(peer_id, std::move(message));  // last: it may take what it holds
}

void Node::on_send_failed(const std::string& peer_id, uint64_t request_id) {
    if (rebalancer_->on_send_failed(peer_id, request_id)) return;
    if (hint_replay_->on_send_failed(peer_id, request_id)) return;
    if (anti_entropy_->on_send_failed(peer_id, request_id)) return;
    coordinator_->on_send_failed(peer_id, request_id);
}

void Node::tick() {
    const uint64_t now = env_.now_ms();
    coordinator_->expire_due(now);
    if (gossip_) {
        gossip_->tick(now);
        rebalancer_->tick(now);
    }
    peers_->tick(*membership_);
    access_->tick(now, *membership_);
    // Even with --hinted-handoff false: hints taken before, or from peers that
    // have it on, are data to deliver.
    hint_replay_->tick(now);
    key_index_->tick();
    anti_entropy_->tick(now);
    tombstone_gc_->tick(now);
}

void Node::refresh_placement() {
    const gossip::ClusterView* view = gossip_ ? &gossip_->view() : nullptr;
    if (!placement_->refresh(*membership_, view)) return;
    if (gossip_) {
        rebalancer_->refresh();
        gossip_->persist_view();
    }
}

void Node::handle(const ReplyTo& from, const GossipRequest& req) {
    if (!gossip_) return;  // static membership: gossip is not spoken here
    Status handled = gossip_->handle(req);
    if (!handled.ok()) on_bad_frame(from, req.id, handled);
}

// ---- status --------------------------------------------------------------------

void Node::handle(const ReplyTo& from, const proto::StatusRequest& req) {
    refresh_placement();
    proto::StatusResponse resp;
    resp.id = req.id;
    resp.node_id = config_.node_id;
    resp.n_replicas = config_.n_replicas;
    resp.n_effective = placement_->n();
    // Tokens and ring share per member, from the ring this node routes by.
    const ring::Ring& ring = placement_->ring();
    std::map<std::string, std::pair<uint32_t, uint32_t>> placement;
    const std::vector<double> shares = ring.ownership();
    for (size_t i = 0; i < ring.nodes().size(); ++i) {
        placement[ring.nodes()[i]].second = static_cast<uint32_t>(shares[i] * 1e6 + 0.5);
    }
    for (const auto& t : ring.tokens()) ++placement[ring.nodes()[t.node_index]].first;
    if (gossip_) {
        // Every member gossip knows of, ring members or not (joining, down, left).
        for (const auto& [id, state] : gossip_->view().states()) {
            proto::MemberStatus s{id,
                                  state.endpoint,
                                  std::string(gossip::status_name(state.status())),
                                  id == config_.node_id ? 0 : peers_->last_seen_ms_ago(id),
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
                s.state = peers_->reachable(m.id) ? "up" : "unreachable";
                s.last_seen_ms_ago = peers_->last_seen_ms_ago(m.id);
            }
            auto p = placement.find(m.id);
            if (p != placement.end()) std::tie(s.tokens, s.share_ppm) = p->second;
            resp.members.push_back(std::move(s));
        }
    }
    // Anti-entropy's index counts the stored objects as they change (the
    // replica reports each change to it in the same step), so once built it
    // answers at once; the store's own count reads every key its memtables
    // hold, on this loop (docs/OPERATIONS.md). Until then, the store counts.
    if (key_index_->ready()) {
        resp.keys_stored = key_index_->keys();
    } else {
        auto keys = env_.count(Space::objects);
        resp.keys_stored = keys ? keys.value() : 0;
    }
    resp.transfers = rebalancer_->status();
    resp.leave = rebalancer_->leave_status();
    resp.removal = rebalancer_->removal_status();
    resp.hints = hints_->status();
    for (auto& h : resp.hints) h.replaying = hint_replay_->replaying(h.target);
    resp.under_replicated_ranges = hints_->under_replicated_ranges();
    resp.anti_entropy = anti_entropy_->status();
    env_.reply(from, std::move(resp));
}

// ---- metrics -------------------------------------------------------------------

void Node::handle(const ReplyTo& from, const proto::StatsRequest& req) {
    kv::metrics::Exposition out;
    write_metrics(out);
    env_.reply(from, proto::StatsResponse{req.id, out.take()});
}

void Node::write_metrics(kv::metrics::Exposition& out) {
    using kv::metrics::Type;
    out.family("kv_node_info", Type::gauge, "This node: its member id and its current actor.");
    out.sample("kv_node_info", {{"node_id", config_.node_id}, {"actor", actor()}}, uint64_t{1});
    out.counter("kv_node_messages_total",
                "Requests this node handled, from clients and from members.", stats_.requests);
    out.family("kv_requests_refused_total", Type::counter,
               "Requests refused before any work: no grant or no cluster key (unauthorized), "
               "an admission limit (overloaded), a frame that did not decode (bad_frame).");
    out.sample("kv_requests_refused_total", {{"reason", "unauthorized"}}, stats_.unauthorized);
    out.sample("kv_requests_refused_total", {{"reason", "overloaded"}}, stats_.overloaded);
    out.sample("kv_requests_refused_total", {{"reason", "bad_frame"}}, stats_.bad_frames);
    out.gauge("kv_requests_in_flight",
              "Client requests this node is coordinating (waiting for replicas).",
              static_cast<double>(coordinator_->in_flight()));
    out.family("kv_coordinator_failures_total", Type::counter,
               "Coordinated requests that failed: too few replicas reachable (unavailable) "
               "or answering in time (timeout).");
    out.sample("kv_coordinator_failures_total", {{"reason", "unavailable"}}, stats_.unavailable);
    out.sample("kv_coordinator_failures_total", {{"reason", "timeout"}}, stats_.timeouts);
    out.counter("kv_read_repairs_total",
                "Replicas a read found behind and sent the merged version to.",
                stats_.read_repairs);
    out.counter("kv_read_spares_asked_total",
                "Reads that asked replicas beyond the r they needed (a replica failed, "
                "disagreed or was slow).",
                stats_.read_spares_asked);
    out.counter("kv_background_dropped_total",
                "Answered requests whose follow-up work (read repair, late replicas) was "
                "dropped at a limit.",
                stats_.background_dropped);

    // Hinted handoff.
    const HintSummary held = hints_->summary();
    out.counter("kv_stand_in_writes_total",
                "Writes acknowledged with a stand-in replica in place of a home replica.",
                stats_.stand_in_writes);
    out.counter("kv_hints_stored_total", "Hints this node added or merged as a stand-in.",
                stats_.hints_stored);
    out.counter("kv_hints_refused_total", "Hints refused because a target's hints were full.",
                stats_.hints_refused);
    out.counter("kv_hints_replayed_total", "Hints their home replica made durable.",
                stats_.hints_replayed);
    out.gauge("kv_hints_held_keys", "Hints this node holds for other replicas.",
              static_cast<double>(held.keys));
    out.gauge("kv_hints_held_bytes", "Bytes of the objects in the hints this node holds.",
              static_cast<double>(held.bytes));
    out.gauge("kv_under_replicated_ranges",
              "Token ranges marked under-replicated because a hint for them was refused.",
              static_cast<double>(hints_->under_replicated_ranges()));

    // Anti-entropy and the store.
    const proto::AntiEntropyStatus ae = anti_entropy_->status();
    out.family("kv_anti_entropy_exchanges_total", Type::counter,
               "Merkle-tree exchanges with other replicas, by result.");
    out.sample("kv_anti_entropy_exchanges_total", {{"result", "completed"}}, stats_.ae_exchanges);
    out.sample("kv_anti_entropy_exchanges_total", {{"result", "failed"}},
               stats_.ae_exchanges_failed);
    out.family("kv_anti_entropy_keys_total", Type::counter,
               "Objects anti-entropy merged here from peers (received) or sent to them (sent).");
    out.sample("kv_anti_entropy_keys_total", {{"direction", "received"}}, stats_.ae_keys_received);
    out.sample("kv_anti_entropy_keys_total", {{"direction", "sent"}}, stats_.ae_keys_sent);
    out.counter("kv_anti_entropy_messages_total", "Anti-entropy messages, both ways.",
                stats_.ae_messages);
    out.family("kv_anti_entropy_bytes_total", Type::counter,
               "Anti-entropy payload bytes (keys, objects, hashes, bounds), by direction.");
    out.sample("kv_anti_entropy_bytes_total", {{"direction", "sent"}}, stats_.ae_bytes_sent);
    out.sample("kv_anti_entropy_bytes_total", {{"direction", "received"}},
               stats_.ae_bytes_received);
    out.gauge("kv_anti_entropy_tree_ready", "1 once the hash tree over this node's keys is built.",
              ae.tree_ready ? 1.0 : 0.0);
    out.gauge("kv_refilling",
              "1 while a node started on an empty data directory waits for its first exchanges "
              "(its replica reads answer unavailable).",
              ae.refilling ? 1.0 : 0.0);
    out.counter("kv_tombstones_purged_total",
                "Tombstones purged once anti-entropy confirmed them on every replica.",
                stats_.tombstones_purged);
    out.gauge("kv_store_keys",
              "Keys in this node's data space (its key index), tombstones included.",
              static_cast<double>(ae.keys_indexed));
    out.gauge("kv_store_tombstones", "Keys held whose versions are all tombstones.",
              static_cast<double>(ae.tombstones));

    // Rebalancing.
    out.family("kv_transfer_keys_total", Type::counter,
               "Keys streamed in from or out to other nodes by range transfers.");
    out.sample("kv_transfer_keys_total", {{"direction", "in"}}, stats_.keys_streamed_in);
    out.sample("kv_transfer_keys_total", {{"direction", "out"}}, stats_.keys_streamed_out);
    std::map<std::pair<std::string, std::string>, uint64_t> transfers;
    for (const auto& t : rebalancer_->status()) ++transfers[{t.direction, t.state}];
    out.family("kv_transfers", Type::gauge,
               "Range transfers of a membership change under way, by direction and state.");
    for (const auto& [key, count] : transfers) {
        out.sample("kv_transfers", {{"direction", key.first}, {"state", key.second}}, count);
    }

    // Membership.
    std::map<std::string, uint64_t> members;
    if (gossip_) {
        for (const auto& [id, state] : gossip_->view().states()) {
            ++members[std::string(gossip::status_name(state.status()))];
        }
    } else {
        for (const auto& m : membership_->members()) {
            const bool up = m.id == config_.node_id || peers_->reachable(m.id);
            ++members[up ? "up" : "unreachable"];
        }
    }
    out.family("kv_members", Type::gauge,
               "Members this node knows, by status (gossip: joining, up, suspect, down, "
               "leaving, left; a static member list: up or unreachable).");
    for (const auto& [status, count] : members)
        out.sample("kv_members", {{"status", status}}, count);
    out.gauge("kv_ring_members", "Members owning tokens in the ring this node routes by.",
              static_cast<double>(placement_->ring().nodes().size()));
    out.gauge("kv_replicas_effective", "Replicas a key has in that ring: min(n, ring members).",
              static_cast<double>(placement_->n()));
}

// ---- owners --------------------------------------------------------------------

// What a request for the key would use now: the same Placement::targets call
// and reachability verdicts the coordinator acts on, so the answer is this
// node's view, not the cluster's.
void Node::handle(const ReplyTo& from, const proto::OwnersRequest& req) {
    const auto reachable = [this](const std::string& id) { return peers_->reachable(id); };
    // As the coordinator does: while the key's range moves, writes are strict.
    std::vector<std::string> new_owners = placement_->pending_replicas(req.key);
    const bool sloppy = config_.hinted_handoff && new_owners.empty();
    const ReplicaTargets targets = placement_->targets(req.key, reachable, sloppy);
    proto::OwnersResponse resp;
    resp.id = req.id;
    resp.n_replicas = config_.n_replicas;
    resp.sloppy = sloppy;
    for (const auto& home : targets.homes) {
        resp.homes.push_back({home, has_id(targets.homes_up, home) ? "up" : "down"});
    }
    for (const auto& s : targets.stand_ins) resp.stand_ins.push_back({s.node, s.for_home});
    resp.new_owners = std::move(new_owners);
    env_.reply(from, std::move(resp));
}

// ---- accessors -------------------------------------------------------------------

const std::string& Node::actor() const {
    return replica_->actor();
}
const gossip::Gossiper* Node::gossiper() const {
    return gossip_ ? gossip_->gossiper() : nullptr;
}
const ring::Ring& Node::ring() const {
    return placement_->ring();
}
const ring::Ring& Node::future_ring() const {
    return placement_->future_ring();
}
bool Node::transfers_pending() const {
    return rebalancer_->transfers_pending();
}
std::string Node::leave_refusal() const {
    return rebalancer_->leave_refusal();
}
std::optional<std::string> Node::user_of_key(std::string_view public_key_z85) const {
    return access_->user_of_key(public_key_z85);
}
size_t Node::in_flight() const {
    return coordinator_->in_flight();
}
HintSummary Node::hints_held() const {
    return hints_->summary();
}

bool Node::refilling() const {
    return anti_entropy_->refilling();
}

}  // namespace kv::node
