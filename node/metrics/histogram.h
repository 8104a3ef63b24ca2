// A latency histogram with fixed buckets, in microseconds, written out in
// seconds as Prometheus expects. Fixed bounds keep observe() a few compares
// and no allocation (it runs once per request on the node's loop).
#pragma once

#include <array>
#include <cstdint>

#include "client/metrics.h"

namespace kv::node::metrics {

class LatencyHistogram {
  public:
    // Upper bounds, inclusive: 100 us to 10 s, about three per decade; the
    // last bucket (+Inf) takes the rest. Loopback requests land in the first
    // few, a sync under load or a timeout in the last.
    static constexpr std::array<uint64_t, 16> kBoundsUs = {
        100,   250,    500,    1000,   2500,    5000,    10000,   25000,
        50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};

    void observe(uint64_t micros) {
        size_t i = 0;
        while (i < kBoundsUs.size() && micros > kBoundsUs[i]) ++i;
        ++counts_[i];
        ++count_;
        sum_us_ += micros;
    }

    uint64_t count() const { return count_; }
    uint64_t sum_us() const { return sum_us_; }

    // name_bucket{labels...,le=...} (cumulative), name_sum (seconds), name_count.
    // `labels` excludes le.
    void write(kv::metrics::Exposition& out, std::string_view name,
               kv::metrics::LabelPairs labels) const;

  private:
    std::array<uint64_t, kBoundsUs.size() + 1> counts_{};
    uint64_t count_ = 0;
    uint64_t sum_us_ = 0;
};

}  // namespace kv::node::metrics
