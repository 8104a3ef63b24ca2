#include "node/rebalance/transfer_plan.h"

#include <algorithm>
#include <cassert>

#include "node/membership/placement.h"

namespace kv::node {

namespace {
std::vector<std::string> minus(const std::vector<std::string>& a,
                               const std::vector<std::string>& b) {
    std::vector<std::string> out;
    for (const auto& id : a) {
        if (!has_id(b, id)) out.push_back(id);
    }
    return out;
}
}  // namespace

std::vector<InboundPlan> plan_inbound(const std::vector<ring::OwnershipChange>& diff,
                                      const std::string& self, size_t ranges_max,
                                      const RemovalPlan* removal) {
    assert(ranges_max > 0);
    // (source, handoff target) -> ranges
    std::map<std::pair<std::string, std::string>, std::vector<ring::Range>> by_source;
    for (const auto& change : diff) {
        if (!has_id(change.after, self) || has_id(change.before, self) || change.before.empty())
            continue;
        std::vector<std::string> sources = minus(change.before, change.after);
        if (sources.empty()) sources.push_back(change.before.front());
        for (const auto& source : sources) {
            if (removal == nullptr || source != removal->member) {
                by_source[{source, std::string()}].push_back(change.range);
                continue;
            }
            // The removed member cannot serve: a surviving replica does, in
            // preference-list order (it stays an owner, so it is not fenced).
            for (const auto& survivor : change.before) {
                if (survivor == removal->member) continue;
                by_source[{survivor, removal->by}].push_back(change.range);
                break;
            }
        }
    }
    std::vector<InboundPlan> out;
    for (auto& [route, ranges] : by_source) {
        for (size_t i = 0; i < ranges.size(); i += ranges_max) {
            const size_t end = std::min(ranges.size(), i + ranges_max);
            out.push_back(
                InboundPlan{route.first, {ranges.begin() + i, ranges.begin() + end}, route.second});
        }
    }
    return out;
}

std::vector<OutboundNeed> plan_outbound(const std::vector<ring::OwnershipChange>& diff,
                                        const std::string& self) {
    std::vector<OutboundNeed> out;
    for (const auto& change : diff) {
        if (!has_id(change.before, self) || has_id(change.after, self)) continue;
        for (const auto& target : minus(change.after, change.before))
            out.push_back(OutboundNeed{target, change.range});
    }
    return out;
}

std::vector<OutboundNeed> plan_removal(const std::vector<ring::OwnershipChange>& diff,
                                       const RemovalPlan& removal) {
    std::vector<OutboundNeed> out;
    for (const auto& change : diff) {
        if (!has_id(change.before, removal.member) || has_id(change.after, removal.member))
            continue;
        // No other replica held it: no copy to pull (plan_inbound leaves it out).
        if (change.before.size() < 2) continue;
        for (const auto& target : minus(change.after, change.before))
            out.push_back(OutboundNeed{target, change.range});
    }
    return out;
}

}  // namespace kv::node
