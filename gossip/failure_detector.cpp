#include "gossip/failure_detector.h"

#include <algorithm>
#include <cassert>

namespace kv::gossip {

namespace {
constexpr double kLog10E = 0.4342944819032518;
}

FailureDetector::FailureDetector(FailureDetectorConfig config) : config_(config) {
    assert(config_.phi_suspect > 0);
    assert(config_.first_interval_ms > 0);
    assert(config_.window_samples > 0);
}

void FailureDetector::heard(const std::string& id, uint64_t now_ms) {
    auto [it, fresh] = watches_.try_emplace(id);
    Watch& w = it->second;
    w.suspected = false;
    if (!fresh && now_ms > w.last_arrival_ms) {
        const uint64_t interval_ms = now_ms - w.last_arrival_ms;
        if (interval_ms <= config_.interval_max_ms) {
            w.intervals_ms.push_back(interval_ms);
            w.intervals_sum_ms += interval_ms;
            if (w.intervals_ms.size() > config_.window_samples) {
                w.intervals_sum_ms -= w.intervals_ms.front();
                w.intervals_ms.pop_front();
            }
        }
    }
    w.last_arrival_ms = std::max(w.last_arrival_ms, now_ms);
}

double FailureDetector::mean_of(const Watch& w) const {
    if (w.intervals_ms.empty()) return static_cast<double>(config_.first_interval_ms);
    const double mean = static_cast<double>(w.intervals_sum_ms) / w.intervals_ms.size();
    return std::max(mean, 1.0);
}

double FailureDetector::mean_interval_ms(std::string_view id) const {
    auto it = watches_.find(id);
    return it == watches_.end() ? 0.0 : mean_of(it->second);
}

double FailureDetector::phi(std::string_view id, uint64_t now_ms) const {
    auto it = watches_.find(id);
    if (it == watches_.end() || now_ms <= it->second.last_arrival_ms) return 0.0;
    const double silent_ms = static_cast<double>(now_ms - it->second.last_arrival_ms);
    return silent_ms / mean_of(it->second) * kLog10E;
}

std::vector<std::pair<std::string, Liveness>> FailureDetector::judge(const ClusterView& view,
                                                                     uint64_t now_ms) {
    std::vector<std::pair<std::string, Liveness>> changes;
    for (const auto& [id, s] : view.states()) {
        if (id == view.self_id() || s.declared == MemberStatus::left) continue;
        auto [it, fresh] = watches_.try_emplace(id);
        Watch& w = it->second;
        if (fresh) w.last_arrival_ms = now_ms;
        if (s.liveness == Liveness::down) continue;
        if (s.liveness == Liveness::alive && phi(id, now_ms) >= config_.phi_suspect) {
            changes.emplace_back(id, Liveness::suspect);
            w.suspected = true;
            w.suspect_since_ms = now_ms;
            continue;
        }
        if (s.liveness != Liveness::suspect) continue;
        // Suspicion may have come by gossip: the timeout runs from when we saw it.
        if (!w.suspected) {
            w.suspected = true;
            w.suspect_since_ms = now_ms;
        }
        if (now_ms - w.suspect_since_ms >= config_.suspect_to_down_ms) {
            changes.emplace_back(id, Liveness::down);
        }
    }
    return changes;
}

}  // namespace kv::gossip
