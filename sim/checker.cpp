#include "sim/checker.h"

#include <algorithm>
#include <limits>

namespace kv::sim {

std::string_view violation_name(ViolationKind kind) {
    switch (kind) {
        case ViolationKind::lost_write:
            return "lost_write";
        case ViolationKind::stale_read:
            return "stale_read";
        case ViolationKind::divergence:
            return "divergence";
        case ViolationKind::unsettled:
            return "unsettled";
    }
    return "?";
}

namespace {

constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();

bool answered(const HistoryEntry& e) {
    return e.outcome == Outcome::ok || e.outcome == Outcome::not_found;
}
// An op without an answer may take effect at any later time, and so may one
// that failed with `timeout`: its requests may still be on their way (delayed by
// a partition or a paused replica) and be applied after the coordinator gave
// up, which is what a timeout means (docs/PROTOCOL.md). Seed 351952310: a
// context-less delete that timed out at 17.1 s was minted at its replica after
// a put acknowledged at 17.9 s, and superseded it.
uint64_t effect_end_ms(const HistoryEntry& e) {
    if (e.outcome == Outcome::indeterminate) return kNever;
    if (e.outcome == Outcome::failed && e.code == ErrorCode::timeout) return kNever;
    return e.end_ms;
}
bool contains(const std::vector<std::string>& values, const std::string& v) {
    return std::find(values.begin(), values.end(), v) != values.end();
}

// Who supersedes whom, indexed once per history. The writes that directly
// supersede a put p: any write (whatever its outcome: a failed write may have
// been applied) that carried the context of a get that returned p's value, and
// any context-less delete of the key that had not ended before p started (it
// supersedes what its coordinating replica held, which can include p only then).
class Supersession {
  public:
    explicit Supersession(const History& h) : h_(h) {
        for (const auto& e : h.entries) {
            if (e.kind == OpKind::get) {
                for (const auto& v : e.values) reads_returning_[v].push_back(e.index);
            } else if (e.context_from != kNoOp) {
                writes_with_context_of_[static_cast<uint64_t>(e.context_from)].push_back(e.index);
            } else if (e.kind == OpKind::del && !e.context) {
                blind_deletes_[e.key].push_back(e.index);
            }
        }
        // Earliest start among all transitive superseders. A put's context-carrying
        // superseders start after it (they carry what a later get returned) and
        // deletes supersede nothing further, so one pass from the end suffices.
        earliest_start_.assign(h.entries.size(), kNever);
        for (size_t i = h.entries.size(); i-- > 0;) {
            const HistoryEntry& p = h.entries[i];
            if (p.kind != OpKind::put) continue;
            uint64_t earliest = kNever;
            for (uint64_t w : direct(p)) {
                earliest = std::min(earliest, h.entries[w].start_ms);
                if (w > i) earliest = std::min(earliest, earliest_start_[w]);
            }
            earliest_start_[i] = earliest;
        }
    }

    std::vector<uint64_t> direct(const HistoryEntry& p) const {
        std::vector<uint64_t> out;
        if (auto reads = reads_returning_.find(p.value); reads != reads_returning_.end()) {
            for (uint64_t r : reads->second) {
                if (h_.entries[r].key != p.key) continue;
                auto writes = writes_with_context_of_.find(r);
                if (writes == writes_with_context_of_.end()) continue;
                for (uint64_t w : writes->second) {
                    if (h_.entries[w].key == p.key) out.push_back(w);
                }
            }
        }
        if (auto dels = blind_deletes_.find(p.key); dels != blind_deletes_.end()) {
            for (uint64_t d : dels->second) {
                if (effect_end_ms(h_.entries[d]) >= p.start_ms) out.push_back(d);
            }
        }
        return out;
    }

    // The earliest start of any write that transitively supersedes put `index`.
    uint64_t earliest_superseder_start_ms(uint64_t index) const { return earliest_start_[index]; }

  private:
    const History& h_;
    std::map<std::string, std::vector<uint64_t>> reads_returning_;      // value -> gets
    std::map<uint64_t, std::vector<uint64_t>> writes_with_context_of_;  // get -> writes
    std::map<std::string, std::vector<uint64_t>> blind_deletes_;        // key -> deletes
    std::vector<uint64_t> earliest_start_;
};

std::vector<std::string> final_live_values(const std::vector<ReplicaState>& replicas) {
    node::Object merged;
    for (const auto& r : replicas) {
        if (r.object) merged = node::merge(merged, *r.object);
    }
    return merged.live_values();
}

std::string object_text(const std::optional<node::Object>& object) {
    if (!object) return "(nothing)";
    std::string out = "{ctx:";
    for (const auto& [actor, counter] : object->context.entries()) {
        out += " " + actor + "=" + std::to_string(counter);
    }
    out += "; siblings:";
    for (const auto& s : object->siblings) {
        out += " " + s.dot.actor + ":" + std::to_string(s.dot.counter) + "=" +
               (s.value ? *s.value : std::string("<tombstone>"));
    }
    return out + "}";
}

}  // namespace

std::vector<Violation> check_lost_writes(const History& history, const FinalState& final_state) {
    std::vector<Violation> out;
    std::map<std::string, std::vector<std::string>> live;
    for (const auto& [key, replicas] : final_state) live[key] = final_live_values(replicas);
    const Supersession supersession(history);
    for (const auto& p : history.entries) {
        if (p.kind != OpKind::put || p.outcome != Outcome::ok) continue;
        if (contains(live[p.key], p.value)) continue;
        if (!supersession.direct(p).empty()) continue;
        out.push_back(Violation{ViolationKind::lost_write,
                                p.key,
                                {p.index},
                                "acknowledged put of " + p.value +
                                    " is neither in the final state nor superseded by a write "
                                    "whose context saw it"});
    }
    return out;
}

std::vector<Violation> check_read_your_writes(const History& history) {
    std::vector<Violation> out;
    const uint32_t n = history.n_replicas;
    const Supersession supersession(history);
    std::map<std::string, std::vector<uint64_t>> acked_puts;  // key -> puts acknowledged ok
    for (const auto& p : history.entries) {
        if (p.kind == OpKind::put && p.outcome == Outcome::ok) acked_puts[p.key].push_back(p.index);
    }
    for (const auto& r : history.entries) {
        if (r.kind != OpKind::get || !answered(r)) continue;
        const uint32_t reads = proto::replicas_required(proto::Consistency{r.level, 0, false}, n);
        for (uint64_t pi : acked_puts[r.key]) {
            const HistoryEntry& p = history.entries[pi];
            if (p.index >= r.index) break;  // started after r started: cannot precede it
            if (p.end_ms >= r.start_ms) continue;
            const uint32_t writes =
                proto::replicas_required(proto::Consistency{p.level, 0, false}, n);
            if (reads + writes <= n) continue;
            if (contains(r.values, p.value)) continue;
            const bool followed = supersession.earliest_superseder_start_ms(p.index) < r.end_ms;
            if (followed) continue;
            out.push_back(Violation{
                ViolationKind::stale_read,
                r.key,
                {r.index, p.index},
                "get at " + std::string(proto::level_name(r.level)) +
                    " (r=" + std::to_string(reads) + ") missed " + p.value + ", acknowledged at " +
                    std::string(proto::level_name(p.level)) + " (w=" + std::to_string(writes) +
                    ") before the get started, and nothing superseding it was written"});
        }
    }
    return out;
}

std::vector<Violation> check_convergence(const FinalState& final_state) {
    std::vector<Violation> out;
    for (const auto& [key, replicas] : final_state) {
        if (replicas.empty()) continue;
        const auto normal = [](const std::optional<node::Object>& o) {
            return o ? *o : node::Object{};
        };
        const node::Object first = normal(replicas.front().object);
        bool same = true;
        for (const auto& r : replicas) same = same && normal(r.object) == first;
        if (same) continue;
        std::string what = "replicas differ:";
        for (const auto& r : replicas) what += " " + r.node_id + " " + object_text(r.object) + ";";
        out.push_back(Violation{ViolationKind::divergence, key, {}, what});
    }
    return out;
}

std::vector<Violation> check(const History& history, const FinalState& final_state) {
    std::vector<Violation> out = check_lost_writes(history, final_state);
    for (auto& v : check_read_your_writes(history)) out.push_back(std::move(v));
    for (auto& v : check_convergence(final_state)) out.push_back(std::move(v));
    return out;
}

}  // namespace kv::sim
