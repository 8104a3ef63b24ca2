// Phi accrual failure detector (Hayashibara et al., 2004), as Cassandra uses it
// over gossip: each time a member's version advances in our view counts as a
// heartbeat arrival; phi grows with the silence since the last arrival relative
// to the mean inter-arrival time. Pure: time comes in as now_ms.
//
// Model: exponential inter-arrivals (Cassandra's choice, robust to the bursty
// arrivals of indirect gossip): phi(t) = t / mean * log10(e), i.e. the
// probability that a live member stays silent for t is 10^-phi.
// A member whose phi reaches phi_suspect is suspected; one that stays suspect
// for suspect_to_down_ms (SWIM's suspicion timeout, which gives it time to
// refute) is marked down. A newer version from it clears both.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gossip/cluster_view.h"

namespace kv::gossip {

struct FailureDetectorConfig {
    double phi_suspect = 8.0;              // Cassandra's phi_convict_threshold
    uint64_t suspect_to_down_ms = 10'000;  // suspect this long without news -> down
    uint64_t first_interval_ms = 1'000;    // assumed mean before any sample (the gossip interval)
    // Longer gaps are not samples but outages; counting them would make the
    // detector blind after the member's first restart (Cassandra ignores them too).
    uint64_t interval_max_ms = 10'000;
    uint32_t window_samples = 100;  // inter-arrival samples kept per member
};

class FailureDetector {
  public:
    explicit FailureDetector(FailureDetectorConfig config);

    // The member's version advanced in our view at now_ms.
    void heard(const std::string& id, uint64_t now_ms);
    // Suspicion of `phi` after now_ms - last arrival; 0 for an unknown member.
    double phi(std::string_view id, uint64_t now_ms) const;
    double mean_interval_ms(std::string_view id) const;

    // The liveness changes the view should take at now_ms: (id, suspect) when
    // phi crosses the threshold, (id, down) after the suspicion timeout. Members
    // first seen here start their clock now. Skips self and left members.
    std::vector<std::pair<std::string, Liveness>> judge(const ClusterView& view, uint64_t now_ms);

  private:
    struct Watch {
        uint64_t last_arrival_ms = 0;
        std::deque<uint64_t> intervals_ms;
        uint64_t intervals_sum_ms = 0;
        bool suspected = false;  // suspect_since_ms is set
        uint64_t suspect_since_ms = 0;
    };
    double mean_of(const Watch& w) const;

    FailureDetectorConfig config_;
    std::map<std::string, Watch, std::less<>> watches_;
};

}  // namespace kv::gossip
