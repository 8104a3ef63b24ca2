#include "node/hints/hint_replay.h"

#include <algorithm>
#include <set>
#include <type_traits>

#include "node/mutant.h"

namespace kv::node {

HintReplay::HintReplay(const NodeConfig& config, Env& env, RequestIds& ids, NodeStats& stats,
                       const Placement& placement, const Peers& peers, Replica& replica,
                       HintStore& hints)
    : config_(config),
      env_(env),
      ids_(ids),
      stats_(stats),
      placement_(placement),
      peers_(peers),
      replica_(replica),
      hints_(hints) {}

bool HintReplay::replaying(const std::string& target) const {
    auto it = targets_.find(target);
    return it != targets_.end() && it->second.in_flight.has_value();
}

void HintReplay::tick(uint64_t now_ms) {
    const std::vector<std::string> targets = hints_.targets();
    // Forget the state of targets that have no hints left.
    for (auto it = targets_.begin(); it != targets_.end();) {
        if (!it->second.in_flight && !std::binary_search(targets.begin(), targets.end(), it->first))
            it = targets_.erase(it);
        else
            ++it;
    }
    if (placement_.ring().empty()) return;  // no ring yet: no owner is known
    for (const auto& target : targets) {
        TargetState& state = targets_[target];
        if (state.in_flight) {
            if (now_ms - state.in_flight->sent_ms < config_.transfer_timeout_ms) continue;
            env_.log(LogLevel::info,
                     "a hint replay batch to " + target + " was not answered; it is sent again");
            state.in_flight.reset();
        }
        // A hint for this node itself, or for a node that is no member of the
        // ring (it left, or was removed), goes to the key's current owners.
        if (target == config_.node_id || !has_id(placement_.ring().nodes(), target)) {
            retarget_all(target);
            continue;
        }
        if (now_ms < state.next_send_ms || !peers_.reachable(target)) continue;
        send_batch(target, state, now_ms);
    }
}

void HintReplay::send_batch(const std::string& target, TargetState& state, uint64_t now_ms) {
    const size_t keys_max =
        std::clamp<size_t>(config_.hint_replay_batch_keys, 1, kHintBatchKeysMax);
    auto batch = hints_.batch(target, keys_max, config_.stream_page_bytes_max);
    if (!batch) {
        env_.log(LogLevel::error,
                 "hints for " + target + " could not be read: " + batch.status().to_string());
        state.next_send_ms = now_ms + config_.transfer_retry_ms;
        return;
    }
    if (batch->empty()) return;
    InFlight sent;
    sent.request_id = ids_.next();
    sent.sent_ms = now_ms;
    HintReplayRequest req;
    req.id = sent.request_id;
    req.from_node = config_.node_id;
    for (auto& p : batch.value()) {
        sent.keys.emplace_back(p.key, p.generation);
        req.keys.push_back(p.key);
        req.objects.push_back(std::move(p.object));
    }
    sent.objects = req.objects;
#ifdef KV_MUTANTS
    // Planted (node/mutant.h): the hints are deleted as they are sent, before
    // the target made them durable; convergence from hint replay must catch it.
    if (KV_MUTANT(hint_deleted_before_synced)) {
        for (const auto& [key, generation] : sent.keys)
            hints_.remove_if_unchanged(target, key, generation);
    }
#endif
    // The rate limit: this batch's keys spread over the time they are allowed.
    const uint64_t rate = std::max<uint32_t>(config_.hint_replay_keys_per_s, 1);
    state.next_send_ms = now_ms + (sent.keys.size() * 1000 + rate - 1) / rate;
    state.in_flight = std::move(sent);
    env_.send(target, std::move(req));
}

bool HintReplay::on_reply(const std::string& peer_id, const Message& message) {
    const auto* resp = std::get_if<HintReplayResponse>(&message);
    if (resp == nullptr) return false;
    auto it = targets_.find(peer_id);
    if (it == targets_.end() || !it->second.in_flight ||
        it->second.in_flight->request_id != resp->id) {
        return true;  // late or unknown: the batch is sent again anyway
    }
    InFlight sent = std::move(*it->second.in_flight);
    it->second.in_flight.reset();
    if (resp->code != ErrorCode::ok) {
        env_.log(LogLevel::warn, "hint replay to " + peer_id + " failed: " + resp->message);
        it->second.next_send_ms = env_.now_ms() + config_.transfer_retry_ms;
        return true;
    }
    const std::set<std::string> not_owned(resp->not_owned.begin(), resp->not_owned.end());
    for (size_t i = 0; i < sent.keys.size(); ++i) {
        const auto& [key, generation] = sent.keys[i];
        if (not_owned.count(key)) {
            retarget(peer_id, key, sent.objects[i], generation);
        } else if (hints_.remove_if_unchanged(peer_id, key, generation)) {
            ++stats_.hints_replayed;
        }
    }
    return true;
}

bool HintReplay::on_send_failed(const std::string& peer_id, uint64_t request_id) {
    auto it = targets_.find(peer_id);
    if (it == targets_.end() || !it->second.in_flight ||
        it->second.in_flight->request_id != request_id) {
        return false;
    }
    it->second.in_flight.reset();
    it->second.next_send_ms = env_.now_ms() + config_.transfer_retry_ms;
    return true;
}

void HintReplay::retarget(const std::string& target, const std::string& key,
                          const std::string& object, uint64_t generation) {
    const std::vector<std::string> homes = placement_.replicas(key);
    // The target still is a home replica in this node's ring but says it is
    // not: the rings differ for now, and the hint is sent again later.
    if (target != config_.node_id && has_id(homes, target)) return;
    if (homes.empty()) return;
    for (const auto& home : homes) {
        Status s = home == config_.node_id
                       ? replica_.merge(key, object)
                       : hints_.add(home, key, object, placement_.range_of(ring::hash64(key)),
                                    /*retarget=*/true);
        if (!s.ok()) {
            env_.log(LogLevel::warn, "a hint for " + target + " could not be moved to " + home +
                                         ": " + s.to_string());
            return;
        }
    }
    hints_.remove_if_unchanged(target, key, generation);
}

void HintReplay::retarget_all(const std::string& target) {
    const size_t keys_max =
        std::clamp<size_t>(config_.hint_replay_batch_keys, 1, kHintBatchKeysMax);
    auto batch = hints_.batch(target, keys_max, config_.stream_page_bytes_max);
    if (!batch) return;
    for (const auto& p : batch.value()) retarget(target, p.key, p.object, p.generation);
}

}  // namespace kv::node
