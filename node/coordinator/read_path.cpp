// Reads: the r replicas a level needs are asked (the others on a failure, a
// disagreement or a slow read), the client is answered once r answered, and
// replicas found stale are read-repaired (coordinator.h).
#include <algorithm>
#include <cassert>

#include "node/coordinator/op.h"
#include "node/mutant.h"
#include "ring/ring.h"

namespace kv::node {

namespace {
using Versions = ReplicaMap<std::shared_ptr<const Object>>;

// Two answers hold the same version: both nothing, or equal objects (the
// same object when the replicas sent the same bytes).
bool same_version(const std::shared_ptr<const Object>& a, const std::shared_ptr<const Object>& b) {
    if (!a || !b) return !a && !b;
    return a == b || *a == *b;
}

// The union of every version a replica answered. A version equal to an
// earlier one adds nothing (merge is idempotent, commutative and associative:
// object.h), so replicas that agree cost one merge, not one each; and when
// they all agree, the union is that version itself, shared: merging a decoded
// (canonical) object into an empty one gives that object back.
std::shared_ptr<const Object> merge_versions(const Versions& versions) {
    std::shared_ptr<const Object> only;  // the one distinct version so far
    std::optional<Object> merged;        // from a second distinct version on
    for (auto it = versions.begin(); it != versions.end(); ++it) {
        const std::shared_ptr<const Object>& version = it->second;
        if (!version) continue;
        const bool seen = std::any_of(versions.begin(), it, [&](const auto& earlier) {
            return earlier.second && same_version(earlier.second, version);
        });
        if (seen) continue;
        if (!only) {
            only = version;
        } else {
            merged = merge(merged ? *merged : *only, *version);
        }
    }
    if (merged) return std::make_shared<const Object>(std::move(*merged));
    return only ? only : std::make_shared<const Object>();
}

bool versions_agree(const Versions& versions) {
    const std::shared_ptr<const Object>* first = nullptr;
    for (const auto& [replica, version] : versions) {
        if (first == nullptr) {
            first = &version;
        } else if (!same_version(version, *first)) {
            return false;
        }
    }
    return true;
}
}  // namespace

void Coordinator::handle(const ReplyTo& from, proto::GetRequest req,
                         std::optional<uint64_t> received_ms) {
    // Against the configured n, as writes are (write_path.cpp).
    const uint32_t n = placement_.n_replicas();
    const uint32_t required = proto::replicas_required(req.consistency, n);
    auto reply_error = [&](ErrorCode code, std::string why) {
        env_.reply(from, proto::GetResponse{req.id, code, std::move(why), {}, {}, {}});
    };
    if (placement_.ring().empty()) {
        ++stats_.unavailable;
        return reply_error(ErrorCode::unavailable, "no ring yet: this node is joining");
    }
    if (required == 0) {
        return reply_error(ErrorCode::invalid_argument,
                           "consistency " + level_text(req.consistency, "r") +
                               " needs more replicas than n=" + std::to_string(n));
    }
    const size_t bytes = req.key.size() + kOpOverheadBytes;
    if (auto why = refuse_admission(from, bytes)) {
        return reply_error(ErrorCode::overloaded, std::move(*why));
    }
    const uint64_t due_ms = deadline_at(received_ms, req.deadline_ms);
    if (env_.now_ms() >= due_ms) {
        return reply_error(ErrorCode::timeout, late_request_message(due_ms, req.deadline_ms));
    }
    std::unique_ptr<Op> op = new_op();
    op->id = ids_.next();
    op->kind = OpKind::read;
    op->client = from;
    op->client_request_id = req.id;
    op->key = std::move(req.key);
    op->required = required;
    op->charged_bytes = bytes;
    // Sloppy quorum (write_path.cpp): a stand-in answers for a home replica
    // that is down, with the hints it holds for the key. One walk of the ring
    // for the homes and the stand-ins.
    const bool sloppy = config_.hinted_handoff && !req.consistency.strict;
    const uint64_t hash = ring::hash64(op->key);
    ReplicaTargets targets = placement_.targets_for_hash(
        hash, placement_.replicas_for_hash(hash),
        [this](const std::string& id) { return peers_.reachable(id); }, sloppy);
    const size_t home_count = targets.homes.size();
    const size_t homes_up_count = targets.homes_up.size();  // before the moves below
    if (required > home_count) {
        ++stats_.unavailable;
        return reply_error(ErrorCode::unavailable,
                           fewer_members_than_n(required, req.consistency, "r", n, home_count));
    }
    if (sloppy) {
        op->replicas = std::move(targets.homes_up);
        for (const auto& s : targets.stand_ins) {
            op->replicas.push_back(s.node);
            op->stand_in_for.emplace(s.node, s.for_home);
        }
    } else {
        op->replicas = std::move(targets.homes);
    }
    op->sloppy = sloppy;
    const size_t up = homes_up_count + targets.stand_ins.size();
    if (up < required) {
        ++stats_.unavailable;
        std::string why = std::to_string(required) + " replicas required (" +
                          level_text(req.consistency, "r") + " of n=" + std::to_string(n) +
                          "), only " + std::to_string(homes_up_count) + " of " +
                          std::to_string(home_count) + " home replicas reachable";
        if (sloppy) why += " and " + std::to_string(targets.stand_ins.size()) + " stand-in(s)";
        return reply_error(ErrorCode::unavailable, why);
    }
    // Fan-out: this node first when it is a replica (its read costs no
    // message), then the other home replicas from a rotating start, so remote
    // reads spread over them, then the stand-ins; only the first r are asked now.
    std::vector<std::string>& candidates = op->replicas;
    auto self = std::find(candidates.begin(), candidates.end(), config_.node_id);
    if (self != candidates.end()) std::rotate(candidates.begin(), self, self + 1);
    const size_t first_remote = self != candidates.end() ? 1 : 0;
    const auto homes_end =
        std::partition_point(candidates.begin() + first_remote, candidates.end(),
                             [&](const std::string& r) { return !op->is_stand_in(r); });
    const auto remote_homes = homes_end - (candidates.begin() + first_remote);
    if (remote_homes > 1) {
        std::rotate(
            candidates.begin() + first_remote,
            candidates.begin() + first_remote +
                static_cast<std::ptrdiff_t>(reads_rotated_++ % static_cast<uint64_t>(remote_homes)),
            homes_end);
    }
    if (!config_.read_all_replicas && candidates.size() > required) {
        op->spares.assign(candidates.begin() + required, candidates.end());
        candidates.resize(required);
        op->spares_due_ms = env_.now_ms() + config_.read_spares_after_ms;
    }
    Op& ref = add_op(std::move(op), due_ms);
    if (ref.spares_due_ms != 0) spares_due_.emplace(std::pair(ref.spares_due_ms, ref.id), &ref);
    // Remote calls first: this node's read may answer (and finish) the op,
    // or ask spares (which grows `replicas`); a peer call only queues a message.
    for (size_t i = first_remote; i < ref.replicas.size(); ++i) ask_replica(ref, ref.replicas[i]);
    if (first_remote == 1) ask_replica(ref, config_.node_id);
    if (ref.finished) finish(ref);
}

void Coordinator::ask_replica(Op& op, const std::string& replica) {
    if (replica != config_.node_id) {
        call_peer(op, replica,
                  ReplicaReadRequest{0, op.key, op.is_stand_in(replica), op.is_new_owner(replica)});
    } else if (op.is_stand_in(config_.node_id)) {
        auto held = replica_.read_hints(op.key);
        op.local_writes_mark = std::max(op.local_writes_mark, env_.step_mark());
        on_read_reply(op, config_.node_id, held.status(),
                      held ? std::move(held.value()) : std::optional<std::string>());
    } else {
        Status owner = op.is_new_owner(replica) ? replica_.check_new_owner_read(op.key)
                                                : replica_.check_local_owner(op.key, false, {});
        if (owner.ok()) owner = replica_.check_readable();
        if (!owner.ok()) {
            on_read_reply(op, config_.node_id, owner, std::nullopt);
        } else {
            auto stored = replica_.read(op.key);
            op.local_writes_mark = std::max(op.local_writes_mark, env_.step_mark());
            on_read_reply(op, config_.node_id, stored.status(),
                          stored ? std::move(stored.value()) : std::optional<std::string>());
        }
    }
}

void Coordinator::ask_spares(Op& op, size_t count) {
    count = std::min(count, op.spares.size());
    if (count == 0) return;
    ++stats_.read_spares_asked;
    // Moved to `replicas` before any call: a call that fails at once counts
    // against an asked replica.
    std::vector<std::string> asking(op.spares.begin(), op.spares.begin() + count);
    op.spares.erase(op.spares.begin(), op.spares.begin() + count);
    op.replicas.insert(op.replicas.end(), asking.begin(), asking.end());
    for (const auto& replica : asking) {
        assert(replica != config_.node_id);  // this node is always asked first
        ask_replica(op, replica);
    }
}

void Coordinator::ask_new_owners(Op& op) {
    // Added to `replicas` before any call, as spares are: a call that fails
    // at once (or this node's own read) counts against an asked replica.
    const size_t first_new = op.replicas.size();
    for (std::string& id : placement_.pending_replicas(op.key)) {
        // Asked already as a stand-in (sloppy reads), or a spare stand-in.
        if (std::find(op.replicas.begin(), op.replicas.end(), id) != op.replicas.end()) continue;
        if (std::find(op.spares.begin(), op.spares.end(), id) != op.spares.end()) continue;
        op.new_owners.push_back(id);
        op.replicas.push_back(std::move(id));
    }
    for (size_t i = first_new; i < op.replicas.size(); ++i) ask_replica(op, op.replicas[i]);
}

void Coordinator::on_read_reply(Op& op, const std::string& replica, const Status& status,
                                std::optional<std::string> object) {
    if (op.versions.count(replica) || op.same_as_first.count(replica) || op.failed.count(replica))
        return;  // duplicate
    if (!status.ok()) {
        op.failed.insert(replica);
    } else if (!object) {
        op.versions.emplace(replica, nullptr);
        op.merged.reset();
    } else if (op.first_object_replica.empty()) {
        // The first object: kept as bytes, the client's answer read from them.
        auto view = read_view_of_encoded(*object, config_.siblings_max);
        if (view) {
            // Held until the op finishes (read repair): charged to its budget,
            // as the version and as the bytes.
            charge_more(op, 2 * object->size());
            op.first_object_replica = replica;
            op.first_object_bytes = std::move(*object);
            op.first_view = std::move(view.value());
            op.same_as_first.insert(replica);
            op.merged.reset();
        } else {
            env_.log(LogLevel::warn, "replica " + replica + " sent an undecodable object");
            op.failed.insert(replica);
        }
    } else if (*object == op.first_object_bytes &&
               op.same_as_first.count(op.first_object_replica)) {
        // The same bytes as the first, not decoded yet: the same version.
        // (Charged as the copy it once was, so budgets are unchanged.)
        charge_more(op, object->size());
        op.same_as_first.insert(replica);
    } else if (*object == op.first_object_bytes && op.versions.count(op.first_object_replica)) {
        // The same bytes as an answer already decoded: the same version, shared.
        charge_more(op, object->size());
        // Copied out first: the emplace may move the entries.
        std::shared_ptr<const Object> shared = op.versions.at(op.first_object_replica);
        op.versions.emplace(replica, std::move(shared));
        op.merged.reset();
    } else {
        auto decoded = decode_object(*object);
        if (decoded) {
            charge_more(op, object->size());
            op.versions.emplace(replica,
                                std::make_shared<const Object>(std::move(decoded.value())));
            op.merged.reset();
        } else {
            env_.log(LogLevel::warn, "replica " + replica + " sent an undecodable object");
            op.failed.insert(replica);
        }
    }
    size_t required = op.required;
#ifdef KV_MUTANTS
    // Planted (node/mutant.h); read-your-writes must catch it.
    if (KV_MUTANT(read_quorum_off_by_one)) required = std::max<size_t>(1, required - 1);
#endif
    if (!op.answered && op.answers() >= required && !op.wants_all()) answer_read(op);
    if (!status.ok()) op.last_failure = status.message();
    // A home replica that handed the key's range to its new owner refuses it
    // (not_owner) until the change completes: the new owner, once it has
    // received the whole range, answers in its place (a read at `all` would
    // otherwise fail for as long as the change lasts). Asked once per op.
    if (!status.ok() && status.code() == ErrorCode::not_owner && !op.answered &&
        op.new_owners.empty() && !op.is_stand_in(replica) && placement_.moving())
        ask_new_owners(op);
    // A failed replica is replaced by a spare while the answer still needs one.
    if (!status.ok() && !op.answered && !op.spares.empty()) ask_spares(op, 1);
    // Once the level cannot be met, wait for the replicas still out so the
    // error reports what really happened, then fail.
    if (!op.answered && op.replicas.size() - op.failed.size() < op.required &&
        op.responded() == op.replicas.size()) {
        return fail_unavailable(op, op.answers(), "answered");
    }
    maybe_finish_read(op);
}

void Coordinator::maybe_finish_read(Op& op) {
    // Finished already: failed, or answered with no room left for its repair.
    if (op.finished || op.responded() < op.replicas.size()) return;
    // The asked replicas disagree: a write has not reached them all, and
    // may have missed the spares too, so they are read and repaired as well.
    if (!op.repairs_sent && !op.spares.empty() && !answers_agree(op)) {
        return ask_spares(op, op.spares.size());
    }
    if (!op.repairs_sent) send_read_repairs(op);
    if (!op.repairs_waiting.empty()) return;
    if (!op.answered && op.repair_failed) {
        // At `all` the answer promises every replica holds it; one does not.
        return fail(op, ErrorCode::unavailable, op.last_failure);
    }
    // Finished before the answer, so the answer does not move it to the
    // background budget for follow-up work there is none of.
    op.finished = true;
    if (!op.answered) answer_read(op);
}

void Coordinator::on_repair_reply(Op& op, const std::string& replica, const Status& status) {
    if (!status.ok()) {
        env_.log(LogLevel::warn, "read repair of " + replica + " failed: " + status.to_string());
        op.last_failure = "read repair of " + replica + " failed: " + status.message();
        op.repair_failed = true;
    }
    op.repairs_waiting.erase(replica);
    maybe_finish_read(op);
}

void Coordinator::send_read_repairs(Op& op) {
    op.repairs_sent = true;
#ifdef KV_MUTANTS
    if (KV_MUTANT(read_repair_off)) return;  // planted (node/mutant.h); convergence catches it
    if (!config_.read_repair) return;
#endif
    // One answer, or all the same bytes: nothing to repair.
    if (op.answers() < 2 || op.versions.empty()) return;
    const Object& merged = merged_versions(op);
    if (merged.empty()) return;
    std::string bytes;
    for (const auto& [replica, version] : op.versions) {
        if (version && (version.get() == &merged || *version == merged)) continue;
        // A stand-in's hints are not its own data: only home replicas are repaired.
        if (op.is_stand_in(replica)) continue;
        if (bytes.empty()) bytes = encode_object(merged);
        ++stats_.read_repairs;
        if (replica == config_.node_id) {
            Status s = replica_.check_local_owner(op.key, true, {});
            if (s.ok()) s = replica_.merge(op.key, bytes);
            // An answer after the repairs says this replica holds the merge too.
            op.local_writes_mark = env_.writes_staged();
            if (!s.ok()) env_.log(LogLevel::warn, "local read repair failed: " + s.to_string());
        } else {
            op.repairs_waiting.insert(replica);
            call_peer(op, replica, ReplicaMergeRequest{0, op.key, bytes, {}, 0, {}});
        }
    }
}

void Coordinator::decode_first(Op& op) {
    if (op.same_as_first.empty()) return;
    auto decoded = decode_object(op.first_object_bytes);
    // read_view_of_encoded accepted these bytes, and it accepts what decode_object does.
    assert(decoded.ok());
    if (decoded) {
        auto shared = std::make_shared<const Object>(std::move(decoded.value()));
        for (const std::string& replica : op.same_as_first) op.versions.emplace(replica, shared);
    } else {
        for (const std::string& replica : op.same_as_first) op.failed.insert(replica);
    }
    op.same_as_first.clear();
    op.first_view.reset();
    op.merged.reset();
}

bool Coordinator::answers_agree(Op& op) {
    if (op.versions.empty()) return true;  // all the first object's bytes, or no answer
    decode_first(op);
    return versions_agree(op.versions);
}

const Object& Coordinator::merged_versions(Op& op) {
    decode_first(op);
    if (!op.merged) {
        op.merged = merge_versions(op.versions);
        // Held until the versions change or the op ends, so charged like
        // them: the largest merge the op has held (charges only grow).
        const size_t bytes = op.merged->encoded_size_bound();
        if (bytes > op.merged_charged_bytes) {
            charge_more(op, bytes - op.merged_charged_bytes);
            op.merged_charged_bytes = bytes;
        }
    }
    return *op.merged;
}

void Coordinator::answer_read(Op& op) {
    assert(!op.answered);
    op.answered = true;
#ifdef KV_MUTANTS
    // Planted (node/mutant.h): one replica's answer is left out of the merge
    // (counted as failed, so not repaired either); read-your-writes must catch it.
    if (KV_MUTANT(read_ignores_one_replica) && op.answers() >= 2) {
        decode_first(op);
        op.failed.insert(op.versions.begin()->first);
        op.versions.erase(op.versions.begin());
        op.merged.reset();
    }
#endif
    // Never more values than the sibling limit, never a context that covers
    // one held back (object.h, read_view).
    ReadView view;
    bool holds_nothing = false;  // no version: "no such key" rather than "deleted"
    if (op.versions.empty() && op.first_view) {
        // Every replica asked sent the first object's bytes: the view read from them.
        view = std::move(*op.first_view);
        op.first_view.reset();
        // An object with an empty context has no siblings either (each
        // sibling's dot is covered by it).
        holds_nothing = view.context.empty();
    } else {
        const Object& merged = merged_versions(op);
        view = read_view(merged, config_.siblings_max);
        holds_nothing = merged.empty();
    }
    proto::GetResponse resp;
    resp.id = op.client_request_id;
    resp.values = std::move(view.values);
    resp.code = resp.values.empty() ? ErrorCode::not_found : ErrorCode::ok;
    if (resp.values.empty()) resp.message = holds_nothing ? "no such key" : "the key was deleted";
    if (!view.held_back.empty()) {
        resp.message = view.held_back;
        env_.log(LogLevel::warn, "a read held back siblings: " + view.held_back);
    }
    resp.context = std::move(view.context);
    bool stand_in_used = false;
    for (const auto& [replica, version] : op.versions) {
        stand_in_used = stand_in_used || op.is_stand_in(replica);
    }
    for (const std::string& replica : op.same_as_first) {
        stand_in_used = stand_in_used || op.is_stand_in(replica);
    }
    resp.info = proto::ReplyInfo{static_cast<uint32_t>(op.replicas.size()),
                                 static_cast<uint32_t>(op.answers()), stand_in_used,
                                 static_cast<uint32_t>(view.live)};
    // It reveals this node's read and repair (if any) and the replicas'
    // answers, each sent once what it read was durable there.
    env_.reply_after_writes(op.client, std::move(resp), op.local_writes_mark);
    on_answered(op);
}

}  // namespace kv::node
