// Writes: one replica mints the new version, the coordinator merges it into
// the others and answers once w of them made it durable (coordinator.h).
#include <algorithm>
#include <cassert>

#include "node/coordinator/op.h"
#include "node/mutant.h"

namespace kv::node {

void Coordinator::handle_write(const ReplyTo& from, uint64_t client_id, std::string key,
                               std::optional<std::string> value, std::optional<std::string> context,
                               bool replace, const proto::Consistency& consistency,
                               uint64_t deadline_ms, std::optional<uint64_t> received_ms) {
    // Levels count against the configured n, never against how many members
    // the ring has now: a ring still forming (or shrunk) must not acknowledge
    // a quorum write with fewer copies than a quorum of n (issue 10).
    const uint32_t n = placement_.n_replicas();
    const uint32_t required = proto::replicas_required(consistency, n);
    auto reply_error = [&](ErrorCode code, std::string why) {
        env_.reply(from, proto::WriteResponse{client_id, code, std::move(why), {}, {}});
    };
    if (placement_.ring().empty()) {
        ++stats_.unavailable;
        return reply_error(ErrorCode::unavailable, "no ring yet: this node is joining");
    }
    if (required == 0) {
        return reply_error(ErrorCode::invalid_argument,
                           "consistency " + level_text(consistency, "w") +
                               " needs more replicas than n=" + std::to_string(n));
    }
    const size_t bytes = key.size() + (value ? value->size() : 0) +
                         (context ? context->size() : 0) + kOpOverheadBytes;
    if (auto why = refuse_admission(from, bytes)) {
        return reply_error(ErrorCode::overloaded, std::move(*why));
    }
    // A request that waited past its deadline (a stalled node) must not be
    // applied now: nothing may take effect after the deadline's window.
    const uint64_t due_ms = deadline_at(received_ms, deadline_ms);
    if (env_.now_ms() >= due_ms) {
        return reply_error(ErrorCode::timeout, late_request_message(due_ms, deadline_ms));
    }
    // While the key's range moves, its new owners are written too and must
    // acknowledge on top of w (Cassandra's pending ranges), so that once the
    // move completes w of the key's new replicas hold every acknowledged write.
    // One hash and one walk of the ring per write: every list below is of it.
    const uint64_t hash = ring::hash64(key);
    std::vector<std::string> homes = placement_.replicas_for_hash(hash);
    const size_t current_count = homes.size();
    if (required > current_count) {
        ++stats_.unavailable;
        return reply_error(ErrorCode::unavailable,
                           fewer_members_than_n(required, consistency, "w", n, current_count));
    }
    const std::vector<std::string> pending = placement_.pending_replicas_for_hash(hash);
    const uint32_t required_all = required + static_cast<uint32_t>(pending.size());
    // Sloppy quorum (Dynamo §4.6): a home replica that is down is replaced by
    // a stand-in that keeps a hint for it. Not while the key's range moves:
    // its new owners must acknowledge themselves.
    const bool sloppy = config_.hinted_handoff && !consistency.strict && pending.empty();
    // The homes travel through the targets and back, uncopied.
    ReplicaTargets targets = placement_.targets_for_hash(
        hash, std::move(homes), [this](const std::string& id) { return peers_.reachable(id); },
        sloppy);
    homes = std::move(targets.homes);
    const size_t homes_up_count = targets.homes_up.size();
    std::vector<std::string> replicas;
    std::map<std::string, std::string> stand_in_for;
    if (sloppy) {
        replicas = std::move(targets.homes_up);
        for (const auto& s : targets.stand_ins) {
            replicas.push_back(s.node);
            stand_in_for.emplace(s.node, s.for_home);
        }
    } else {
        replicas = homes;
    }
    replicas.insert(replicas.end(), pending.begin(), pending.end());
    std::vector<std::string> up;
    for (const auto& r : replicas) {
        if (peers_.reachable(r)) up.push_back(r);
    }
    if (up.size() < required_all) {
        ++stats_.unavailable;
        std::string why = std::to_string(required_all) + " replicas required (" +
                          level_text(consistency, "w") + " of n=" + std::to_string(n);
        if (!pending.empty())
            why += ", plus " + std::to_string(pending.size()) + " new owner(s) of a moving range";
        why += "), only " + std::to_string(homes_up_count) + " of " + std::to_string(homes.size()) +
               " home replicas reachable";
        if (sloppy) {
            why += " and " + std::to_string(targets.stand_ins.size()) + " stand-in(s)";
        } else if (!pending.empty()) {
            why += " and " + std::to_string(up.size() - homes_up_count) + " of " +
                   std::to_string(pending.size()) + " new owner(s)";
        }
        return reply_error(ErrorCode::unavailable, why);
    }
    std::unique_ptr<Op> op = new_op();
    op->id = ids_.next();
    op->kind = OpKind::write;
    op->client = from;
    op->client_request_id = client_id;
    op->key = std::move(key);
    op->replicas = std::move(replicas);
    op->stand_in_for = std::move(stand_in_for);
    op->sloppy = sloppy;
    op->homes = std::move(homes);
    op->required = required_all;
    op->charged_bytes = bytes;
    // The version is minted by one replica that holds the key's history: this
    // node when it is a home replica (no extra hop), else the first reachable
    // one in preference order; a replica that answers not_owner (its range
    // moved on) or unavailable (it refills, Replica::mint), or that the
    // request could not reach (no connection), passes the turn to the next.
    // Stand-ins mint only when no home replica is reachable
    // (Replica::mint_as_stand_in).
    if (has_id(op->homes, config_.node_id) && !op->is_stand_in(config_.node_id))
        op->mint_candidates.push_back(config_.node_id);
    for (const auto& r : up) {
        if (r != config_.node_id && !op->is_stand_in(r)) op->mint_candidates.push_back(r);
    }
    if (op->mint_candidates.empty()) {
        for (const auto& r : up) op->mint_candidates.push_back(r);
    }
    Op& ref = add_op(std::move(op), due_ms);
    ref.value = std::move(value);
    ref.context = std::move(context);
    ref.replace = replace;
    send_mint(ref);
    if (ref.finished) finish(ref);
}

void Coordinator::send_mint(Op& op) {
    assert(op.mint_index < op.mint_candidates.size());
    const std::string& minter = op.mint_candidates[op.mint_index];
    // Past the deadline nothing more is minted (the op expires at the next tick).
    if (env_.now_ms() >= op.deadline_at_ms) return;
    auto stand_in = op.stand_in_for.find(minter);
    const std::string hint_for = stand_in == op.stand_in_for.end() ? "" : stand_in->second;
    if (minter == config_.node_id) {
        if (hint_for.empty()) {
            Status owner = replica_.check_local_owner(op.key, true, op.replicas);
            if (!owner.ok()) return on_write_reply(op, minter, owner, "", nullptr);
        }
        auto written = hint_for.empty() ? replica_.mint(op.key, op.value, op.context, op.replace)
                                        : replica_.mint_as_stand_in(hint_for, op.key, op.value,
                                                                    op.context, op.replace);
        op.local_writes_mark = env_.writes_staged();
        if (!written) return on_write_reply(op, minter, written.status(), "", nullptr);
        on_write_reply(op, minter, Status{}, written->object, &written->writer_context,
                       written->live_count);
    } else {
        call_peer(op, minter,
                  ReplicaWriteRequest{0, op.key, op.value, op.context, config_.siblings_max,
                                      op.replicas, 0, hint_for, op.replace});
    }
}

bool Coordinator::pass_mint_turn(Op& op, const std::string& replica) {
    if (op.mint_index + 1 >= op.mint_candidates.size() ||
        replica != op.mint_candidates[op.mint_index]) {
        return false;
    }
    ++op.mint_index;
    send_mint(op);
    return true;
}

void Coordinator::on_write_reply(Op& op, const std::string& replica, const Status& status,
                                 const std::string& object, const std::string* writer_context,
                                 std::optional<size_t> live_count) {
    if (op.replicating) return;
    // Refused before minting: not_owner (the replica's range moved on), or
    // unavailable (it refills, and the write would remove what it holds).
    if (!status.ok() &&
        (status.code() == ErrorCode::not_owner || status.code() == ErrorCode::unavailable) &&
        pass_mint_turn(op, replica))
        return;
    if (!status.ok()) return fail(op, status.code(), status.message());
    // A version minted here comes with its count; a replica's is decoded,
    // which also checks it before it is spread.
    if (!live_count) {
        auto decoded = decode_object(object);
        if (!decoded)
            return fail(op, ErrorCode::internal,
                        "replica " + replica + " minted an undecodable object");
        live_count = decoded->live_count();
    }
    // Not the object's whole context: that covers concurrent siblings the
    // writer never saw, which a later write with it would silently supersede.
    if (writer_context != nullptr) op.written_context = *writer_context;
    op.sibling_count = static_cast<uint32_t>(*live_count);
    op.acked.insert(replica);
    if (config_.hinted_handoff) {
        // Kept for fallback hints and for stand-ins that replace a failed home.
        op.object = object;
        charge_more(op, object.size());
    }
    op.value.reset();
    op.context.reset();
    // A mint answered after the deadline (this node stalled) is not spread:
    // the op expires at the next tick and reports the minting replica.
    if (env_.now_ms() >= op.deadline_at_ms) return;
    start_replication(op, object);
}

void Coordinator::start_replication(Op& op, const std::string& object_bytes) {
    op.replicating = true;
    bool local = false;
    // Indexed, each id copied: a replacement stand-in may be appended (and
    // the list moved) while replies come in; those it appends are sent there.
    const size_t count = op.replicas.size();
    for (size_t i = 0; i < count; ++i) {
        const std::string replica = op.replicas[i];
        if (op.acked.count(replica)) continue;
        if (replica == config_.node_id) {
            local = true;
        } else {
            send_merge(op, replica, object_bytes);
        }
    }
    if (local) {
        auto stand_in = op.stand_in_for.find(config_.node_id);
        Status s;
        if (stand_in != op.stand_in_for.end()) {
            s = replica_.keep_hint(stand_in->second, op.key, object_bytes);
        } else {
            s = replica_.check_local_owner(op.key, true, op.replicas);
            if (s.ok()) s = replica_.merge(op.key, object_bytes);
        }
        op.local_writes_mark = env_.writes_staged();
        on_merge_reply(op, config_.node_id, s);
    } else {
        on_merge_reply(op, {}, Status(ErrorCode::ok, ""));  // re-check: w may be 1
    }
}

void Coordinator::send_merge(Op& op, const std::string& replica, const std::string& object_bytes) {
    auto stand_in = op.stand_in_for.find(replica);
    // Ahead of this node's commit: the merge travels while the local copy
    // syncs, so a write waits for one sync on its critical path, not two
    // (Env::send_ahead says why that is safe).
    call_peer(op, replica,
              ReplicaMergeRequest{0, op.key, object_bytes, op.replicas, 0,
                                  stand_in == op.stand_in_for.end() ? "" : stand_in->second},
              /*ahead=*/true);
}

bool Coordinator::replace_failed_home(Op& op, const std::string& home) {
    // Only for a home replica of a sloppy write, once the version exists.
    if (!op.sloppy || op.object.empty() || !has_id(op.homes, home) || op.is_stand_in(home))
        return false;
    const ring::Ring& ring = placement_.ring();
    const std::vector<std::string> walk = ring.preference_list_for_hash(
        ring::hash64(op.key), static_cast<uint32_t>(ring.nodes().size()));
    for (size_t i = op.homes.size(); i < walk.size(); ++i) {
        const std::string& candidate = walk[i];
        if (has_id(op.replicas, candidate) || !peers_.reachable(candidate)) continue;
        op.replicas.push_back(candidate);
        op.stand_in_for.emplace(candidate, home);
        if (candidate == config_.node_id) {
            Status kept = replica_.keep_hint(home, op.key, op.object);
            op.local_writes_mark = env_.writes_staged();
            on_merge_reply(op, candidate, kept);
        } else {
            send_merge(op, candidate, op.object);
        }
        return true;
    }
    return false;
}

void Coordinator::keep_fallback_hints(const Op& op) {
    if (op.kind != OpKind::write || !config_.hinted_handoff || op.object.empty() ||
        op.follow_up_dropped) {
        return;
    }
    for (const auto& home : op.homes) {
        if (home == config_.node_id || op.acked.count(home)) continue;
        bool covered = false;
        for (const auto& [stand_in, for_home] : op.stand_in_for) {
            if (for_home == home && op.acked.count(stand_in)) covered = true;
        }
        if (covered) continue;
        Status kept = replica_.keep_hint(home, op.key, op.object);
        if (!kept.ok()) {
            env_.log(LogLevel::warn,
                     "no hint kept for " + home + " after a write it missed: " + kept.to_string());
        }
    }
}

void Coordinator::on_merge_reply(Op& op, const std::string& replica, const Status& status) {
    if (!replica.empty()) {
        if (status.ok()) {
            op.acked.insert(replica);
#ifdef KV_MUTANTS
            // Planted (node/mutant.h): a stand-in's acknowledgement counts twice.
            if (KV_MUTANT(stand_in_counted_twice) && op.is_stand_in(replica)) ++op.extra_acks;
#endif
        } else {
            op.failed.insert(replica);
            op.last_failure = status.message();
            // A replica that could not be reached is a fact the failure
            // detector already reports (and a strict write with a home down
            // meets it on every request): debug, not a warning per write.
            env_.log(status.code() == ErrorCode::unavailable ? LogLevel::debug : LogLevel::warn,
                     "replica " + replica + " refused a write: " + status.to_string());
            // A sloppy write sends the version to a further stand-in instead,
            // whose answer then counts.
            if (replace_failed_home(op, replica)) return;
        }
    }
    const bool all_done = op.acked.size() + op.failed.size() == op.replicas.size();
    // Every replica done: finished before the answer, so the answer does not
    // move it to the background budget for follow-up work there is none of.
    if (all_done) op.finished = true;
    const size_t acks = op.acked.size() + op.extra_acks;
    size_t required = op.required;
#ifdef KV_MUTANTS
    // Planted (node/mutant.h); read-your-writes must catch both.
    if (KV_MUTANT(early_ack)) required = 1;
    if (KV_MUTANT(ack_at_w_minus_1)) required = std::max<size_t>(1, required - 1);
#endif
    if (!op.answered && acks >= required) {
        op.answered = true;
        bool stand_in_used = false;
        for (const auto& r : op.acked) stand_in_used = stand_in_used || op.is_stand_in(r);
        if (stand_in_used) ++stats_.stand_in_writes;
        // It reveals the version this node wrote (or none) and the replicas'
        // acknowledgements, each sent once durable there: it waits for this
        // node's writes for the op, not for the commit of writes staged since.
        env_.reply_after_writes(
            op.client,
            proto::WriteResponse{op.client_request_id,
                                 ErrorCode::ok,
                                 {},
                                 op.written_context.value_or(std::string()),
                                 proto::ReplyInfo{static_cast<uint32_t>(op.replicas.size()),
                                                  static_cast<uint32_t>(op.acked.size()),
                                                  stand_in_used, op.sibling_count}},
            op.local_writes_mark);
        on_answered(op);
    }
    if (!op.answered && op.replicas.size() - op.failed.size() < op.required && all_done) {
        return fail_unavailable(op, op.acked.size(), "acknowledged");
    }
    if (all_done) op.finished = true;
}

}  // namespace kv::node
