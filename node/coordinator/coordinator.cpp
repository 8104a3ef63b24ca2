// The coordinator's request slab: ops, deadlines, peer calls and how their
// replies and failures reach the op (read_path.cpp and write_path.cpp hold the
// two kinds of op).
#include <algorithm>
#include <cassert>
#include <type_traits>

#include "node/coordinator/op.h"

namespace kv::node {

std::string level_text(const proto::Consistency& c, const char* which) {
    const std::string strict = c.strict ? "strict " : "";
    if (c.count != 0) return strict + which + "=" + std::to_string(c.count);
    return strict + std::string(proto::level_name(c.level));
}

std::string fewer_members_than_n(uint32_t required, const proto::Consistency& c, const char* which,
                                 uint32_t n, size_t replicas) {
    return std::to_string(required) + " replicas required (" + level_text(c, which) +
           " of n=" + std::to_string(n) + "), but the ring has only " + std::to_string(replicas) +
           (replicas == 1 ? " member" : " members") + ", so a key has " + std::to_string(replicas) +
           (replicas == 1 ? " replica" : " replicas") + " until more join";
}

Coordinator::Coordinator(const NodeConfig& config, Env& env, RequestIds& ids, NodeStats& stats,
                         const Placement& placement, const Peers& peers, Replica& replica)
    : config_(config),
      env_(env),
      ids_(ids),
      stats_(stats),
      placement_(placement),
      peers_(peers),
      replica_(replica) {}

Coordinator::~Coordinator() = default;

uint64_t Coordinator::deadline_at(std::optional<uint64_t> received_ms, uint64_t deadline_ms) {
    return received_ms.value_or(env_.now_ms()) +
           (deadline_ms ? deadline_ms : config_.default_deadline_ms);
}

std::string Coordinator::late_request_message(uint64_t deadline_at_ms, uint64_t deadline_ms) {
    ++stats_.timeouts;
    return "the request waited past its deadline of " +
           std::to_string(deadline_ms ? deadline_ms : config_.default_deadline_ms) +
           " ms at this node (by " + std::to_string(env_.now_ms() - deadline_at_ms) +
           " ms) before it could be handled; nothing was done";
}

std::optional<std::string> Coordinator::refuse_admission(const ReplyTo& from, size_t bytes) {
    auto over = [&](const char* what, size_t limit, const char* flag) {
        ++stats_.overloaded;
        return std::optional<std::string>(std::string(what) + " (" + std::to_string(limit) + ", " +
                                          flag + "); retry later");
    };
    if (client_total_.ops >= config_.requests_in_flight_max) {
        return over("too many requests in flight at this node", config_.requests_in_flight_max,
                    "--max-in-flight");
    }
    if (client_total_.bytes + bytes > config_.request_bytes_in_flight_max) {
        return over("too many bytes of requests in flight at this node",
                    config_.request_bytes_in_flight_max, "--max-in-flight-bytes");
    }
    auto it = by_connection_.find(from.route);
    if (it == by_connection_.end() || it->second.ops == 0) return std::nullopt;
    if (it->second.ops >= config_.connection_requests_max) {
        return over("too many requests in flight from this connection",
                    config_.connection_requests_max, "--connection-max-in-flight");
    }
    if (it->second.bytes + bytes > config_.connection_bytes_max) {
        return over("too many bytes of requests in flight from this connection",
                    config_.connection_bytes_max, "--connection-max-in-flight-bytes");
    }
    return std::nullopt;
}

void Coordinator::charge_client(Op& op) {
    op.budget = Op::Budget::client;
    client_total_.ops += 1;
    client_total_.bytes += op.charged_bytes;
    Usage& mine = by_connection_[op.client.route];
    mine.ops += 1;
    mine.bytes += op.charged_bytes;
    op.connection = &mine;
}

void Coordinator::charge_more(Op& op, size_t bytes) {
    op.charged_bytes += bytes;
    if (op.budget == Op::Budget::client) {
        client_total_.bytes += bytes;
        op.connection->bytes += bytes;
    } else if (op.budget == Op::Budget::background) {
        background_.bytes += bytes;
    }
}

void Coordinator::release(const Op& op) {
    if (op.budget == Op::Budget::client) {
        client_total_.ops -= 1;
        client_total_.bytes -= op.charged_bytes;
        assert(op.connection == &by_connection_.at(op.client.route));
        op.connection->ops -= 1;
        op.connection->bytes -= op.charged_bytes;
        // An entry left at zero is dropped at the next tick (expire_due),
        // not now: a connection with one request in flight at a time would
        // otherwise make and free its entry on every request.
    } else if (op.budget == Op::Budget::background) {
        background_.ops -= 1;
        background_.bytes -= op.charged_bytes;
    }
}

void Coordinator::on_answered(Op& op) {
    release(op);
    op.budget = Op::Budget::none;
    if (op.finished) return;
    if (background_.ops >= config_.background_ops_max ||
        background_.bytes + op.charged_bytes > config_.background_bytes_max) {
        // The client has its answer; what is left (read repair, replicas
        // beyond w) is best effort: a write's merges are already sent; a read
        // skips its repair, which a later read of the key makes.
        ++stats_.background_dropped;
        op.finished = true;
        op.follow_up_dropped = true;
        return;
    }
    op.budget = Op::Budget::background;
    background_.ops += 1;
    background_.bytes += op.charged_bytes;
}

void Coordinator::Op::clear_keeping_buffers() {
    auto calls = std::move(peer_calls);
    auto answers = std::move(versions);
    auto not_asked = std::move(spares);
    auto acks = std::move(acked);
    auto candidates = std::move(mint_candidates);
    auto same = std::move(same_as_first);
    *this = Op{};
    same.clear();
    same_as_first = std::move(same);
    calls.clear();
    answers.clear();
    not_asked.clear();
    acks.clear();
    candidates.clear();
    peer_calls = std::move(calls);
    versions = std::move(answers);
    spares = std::move(not_asked);
    acked = std::move(acks);
    mint_candidates = std::move(candidates);
}

std::unique_ptr<Coordinator::Op> Coordinator::new_op() {
    if (recycled_ops_.empty()) return std::make_unique<Op>();
    std::unique_ptr<Op> op = std::move(recycled_ops_.back());
    recycled_ops_.pop_back();
    return op;
}

Coordinator::Op& Coordinator::add_op(std::unique_ptr<Op> op, uint64_t deadline_at_ms) {
    op->deadline_at_ms = deadline_at_ms;
    if (free_slots_.empty()) {
        op->slot = static_cast<uint32_t>(slots_.size());
        slots_.emplace_back();
    } else {
        op->slot = free_slots_.back();
        free_slots_.pop_back();
    }
    Op& ref = *op;
    slots_[ref.slot] = std::move(op);
    ++ops_in_flight_;
    deadlines_.emplace(std::pair(ref.deadline_at_ms, ref.id), &ref);
    charge_client(ref);
    return ref;
}

uint64_t Coordinator::call_peer(Op& op, const std::string& peer, Message request, bool ahead) {
    // A write's replica requests carry what is left of its deadline, and none
    // is sent once it passed (the op then expires at the next tick), so a
    // write that times out takes effect only within a bounded window
    // (docs/ARCHITECTURE.md, "Deadlines and replica budgets").
    uint64_t budget_ms = 0;
    if (op.kind == OpKind::write) {
        const uint64_t now = env_.now_ms();
        if (now >= op.deadline_at_ms) return 0;
        budget_ms = std::min(op.deadline_at_ms - now, proto::kDeadlineMsMax);
    }
    const uint64_t id = ids_.next();
    std::visit(
        [id, budget_ms](auto& m) {
            m.id = id;
            using T = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<T, ReplicaWriteRequest> ||
                          std::is_same_v<T, ReplicaMergeRequest>) {
                m.budget_ms = budget_ms;
            }
        },
        request);
    pending_.emplace(id, PendingPeerCall{&op, peer});
    // A write calls up to every replica (and a remote minter): room for all
    // at the first call, not 1, 2, 4.
    if (op.peer_calls.empty()) op.peer_calls.reserve(op.replicas.size() + 1);
    op.peer_calls.push_back(id);
    if (ahead) {
        env_.send_ahead(peer, std::move(request));
    } else {
        env_.send(peer, std::move(request));
    }
    return id;
}

// The op a peer call belongs to, forgetting the call; null when the call is
// unknown, was made to another peer, or its op has finished.
Coordinator::Op* Coordinator::find_call(uint64_t request_id, const std::string& peer_id) {
    auto call = pending_.find(request_id);
    if (call == pending_.end() || call->second.peer != peer_id) return nullptr;
    Op* op = call->second.op;
    pending_.erase(call);
    return op->finished ? nullptr : op;
}

void Coordinator::on_reply(const std::string& peer_id, Message message) {
    Op* found = find_call(request_id(message), peer_id);
    if (found == nullptr) return;  // late or unknown
    Op& op = *found;
    std::visit(
        [&](auto& m) {
            using T = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<T, ReplicaReadResponse>) {
                if (op.kind == OpKind::read)
                    on_read_reply(op, peer_id, Status(m.code, m.message), std::move(m.object));
            } else if constexpr (std::is_same_v<T, ReplicaWriteResponse>) {
                if (op.kind == OpKind::write)
                    on_write_reply(op, peer_id, Status(m.code, m.message), m.object,
                                   m.context ? &*m.context : nullptr);
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
                env_.log(LogLevel::warn, "peer " + peer_id + " answered with unexpected '" +
                                             std::string(type_name(message)) + "'");
            }
        },
        message);
    if (op.finished) finish(op);
}

void Coordinator::on_send_failed(const std::string& peer_id, uint64_t request_id) {
    Op* found = find_call(request_id, peer_id);
    if (found == nullptr) return;
    Op& op = *found;
    // The request never left this node, so a minting replica minted nothing:
    // another reachable replica may mint instead (with w of them still needed).
    const bool passed = op.kind == OpKind::write && !op.replicating && pass_mint_turn(op, peer_id);
    if (!passed) {
        peer_call_failed(
            op, peer_id,
            Status(ErrorCode::unavailable, "replica " + peer_id + " is not connected"));
    }
    if (op.finished) finish(op);
}

// The peer could not take our request: count it as that replica failing, in
// whichever phase the op is.
void Coordinator::peer_call_failed(Op& op, const std::string& peer_id, const Status& failed) {
    if (op.kind == OpKind::read && !op.repairs_sent) {
        on_read_reply(op, peer_id, failed, std::nullopt);
    } else if (op.kind == OpKind::read) {
        on_repair_reply(op, peer_id, failed);
    } else if (!op.replicating) {
        on_write_reply(op, peer_id, failed, {}, nullptr);
    } else {
        on_merge_reply(op, peer_id, failed);
    }
}

void Coordinator::expire_due(uint64_t now_ms) {
    std::erase_if(by_connection_, [](const auto& entry) { return entry.second.ops == 0; });
    while (!spares_due_.empty() && spares_due_.begin()->first.first <= now_ms) {
        Op& op = *spares_due_.begin()->second;
        spares_due_.erase(spares_due_.begin());
        if (op.answered) continue;
        ask_spares(op, op.spares.size());
        if (op.finished) finish(op);
    }
    while (!deadlines_.empty() && deadlines_.begin()->first.first <= now_ms) {
        Op& op = *deadlines_.begin()->second;
        deadlines_.erase(deadlines_.begin());
        expire(op);
        finish(op);
    }
}

void Coordinator::fail_unavailable(Op& op, size_t succeeded, const char* verb) {
    ++stats_.unavailable;
    fail(op, ErrorCode::unavailable,
         std::to_string(op.required) + " replicas required, " + std::to_string(succeeded) + " of " +
             std::to_string(op.replicas.size()) + " " + verb + ", " +
             std::to_string(op.failed.size()) + " failed (" + op.last_failure + ")");
}

void Coordinator::fail(Op& op, ErrorCode code, const std::string& why) {
    op.finished = true;
    if (op.answered) return;
    op.answered = true;
    on_answered(op);
    const auto asked = static_cast<uint32_t>(op.replicas.size());
    if (op.kind == OpKind::read) {
        env_.reply(op.client,
                   proto::GetResponse{
                       op.client_request_id,
                       code,
                       why,
                       {},
                       {},
                       proto::ReplyInfo{asked, static_cast<uint32_t>(op.answers()), false, 0}});
    } else {
        env_.reply(op.client,
                   proto::WriteResponse{
                       op.client_request_id,
                       code,
                       why,
                       {},
                       proto::ReplyInfo{asked, static_cast<uint32_t>(op.acked.size()), false, 0}});
    }
}

void Coordinator::expire(Op& op) {
    if (op.answered) {
        // Answered already; repair what we can from the replicas that did answer.
        if (op.kind == OpKind::read && !op.repairs_sent) send_read_repairs(op);
        op.finished = true;
        return;
    }
    const size_t answered = op.kind == OpKind::read ? op.answers() : op.acked.size();
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

void Coordinator::finish(Op& op) {
    assert(op.slot < slots_.size() && slots_[op.slot].get() == &op);  // in the slab, once
    keep_fallback_hints(op);
    for (uint64_t call : op.peer_calls) pending_.erase(call);
    deadlines_.erase({op.deadline_at_ms, op.id});
    if (op.spares_due_ms != 0) spares_due_.erase({op.spares_due_ms, op.id});
    release(op);
    std::unique_ptr<Op> owned = std::move(slots_[op.slot]);
    free_slots_.push_back(op.slot);
    --ops_in_flight_;
    if (recycled_ops_.size() < kRecycledOpsMax) {
        owned->clear_keeping_buffers();
        recycled_ops_.push_back(std::move(owned));
    }
}

}  // namespace kv::node
