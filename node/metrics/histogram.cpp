#include "node/metrics/histogram.h"

#include <cstdio>
#include <string>
#include <vector>

namespace kv::node::metrics {

void LatencyHistogram::write(kv::metrics::Exposition& out, std::string_view name,
                             kv::metrics::LabelPairs labels) const {
    const std::string bucket = std::string(name) + "_bucket";
    std::vector<kv::metrics::LabelPair> with_le(labels);
    with_le.emplace_back("le", "");
    uint64_t cumulative = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
        cumulative += counts_[i];
        std::string le = "+Inf";
        if (i < kBoundsUs.size()) {
            // Seconds, exactly: the bounds are whole microseconds.
            char buf[32];
            std::snprintf(buf, sizeof buf, "%.6g", static_cast<double>(kBoundsUs[i]) / 1e6);
            le = buf;
        }
        with_le.back().second = le;
        out.sample_with(bucket, with_le, static_cast<double>(cumulative));
    }
    out.sample(std::string(name) + "_sum", labels, static_cast<double>(sum_us_) / 1e6);
    out.sample(std::string(name) + "_count", labels, count_);
}

}  // namespace kv::node::metrics
