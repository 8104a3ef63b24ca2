#include "node/membership/transfer_plan.h"

#include <algorithm>
#include <cassert>

#include "node/membership/placement.h"
#include "node/storage/meta_codec.h"

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
                                      const std::string& self, size_t ranges_max) {
    assert(ranges_max > 0);
    std::map<std::string, std::vector<ring::Range>> by_source;
    for (const auto& change : diff) {
        if (!has_id(change.after, self) || has_id(change.before, self) || change.before.empty())
            continue;
        std::vector<std::string> sources = minus(change.before, change.after);
        if (sources.empty()) sources.push_back(change.before.front());
        for (const auto& source : sources) by_source[source].push_back(change.range);
    }
    std::vector<InboundPlan> out;
    for (auto& [source, ranges] : by_source) {
        for (size_t i = 0; i < ranges.size(); i += ranges_max) {
            const size_t end = std::min(ranges.size(), i + ranges_max);
            out.push_back(InboundPlan{source, {ranges.begin() + i, ranges.begin() + end}});
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

uint64_t ring_digest(const ring::Ring& current, const ring::Ring& future) {
    std::string bytes;
    for (const ring::Ring* r : {&current, &future}) {
        for (const auto& t : r->tokens()) {
            meta::put_u64(bytes, t.position);
            bytes += r->nodes()[t.node_index];
            bytes.push_back('\0');
        }
        bytes += "|";
    }
    return ring::hash64(bytes);
}

void RangeSet::add(const ring::Range& range) {
    if (range.start == range.end) return add_closed(0, UINT64_MAX);  // the whole ring
    if (range.start < range.end) return add_closed(range.start + 1, range.end);
    // Wraps: (start, 2^64 - 1] and [0, end].
    if (range.start != UINT64_MAX) add_closed(range.start + 1, UINT64_MAX);
    add_closed(0, range.end);
}

// Keeps the intervals disjoint: the new one absorbs every interval it overlaps.
void RangeSet::add_closed(uint64_t first, uint64_t last) {
    auto it = by_first_.upper_bound(first);
    if (it != by_first_.begin()) {
        auto prev = std::prev(it);
        if (prev->second >= first) {
            if (prev->second >= last) return;
            first = prev->first;
            it = prev;
        }
    }
    while (it != by_first_.end() && it->first <= last) {
        last = std::max(last, it->second);
        it = by_first_.erase(it);
    }
    by_first_.emplace(first, last);
}

bool RangeSet::contains(uint64_t hash) const {
    auto it = by_first_.upper_bound(hash);
    if (it == by_first_.begin()) return false;
    return std::prev(it)->second >= hash;
}

bool RangeSet::covers(const ring::Range& range) const {
    auto covers_closed = [&](uint64_t first, uint64_t last) {
        auto it = by_first_.upper_bound(first);
        if (it == by_first_.begin()) return false;
        return std::prev(it)->second >= last;  // one interval holds [first, last]
    };
    if (range.start == range.end) return covers_closed(0, UINT64_MAX);
    if (range.start < range.end) return covers_closed(range.start + 1, range.end);
    return (range.start == UINT64_MAX || covers_closed(range.start + 1, UINT64_MAX)) &&
           covers_closed(0, range.end);
}

// Each closed interval [first, last] is the range (first - 1, last]; the
// whole ring [0, 2^64 - 1] comes out as (2^64 - 1, 2^64 - 1], its encoding.
// Adjacent intervals were joined on add, so the ranges are disjoint.
std::vector<ring::Range> RangeSet::ranges() const {
    std::vector<ring::Range> out;
    out.reserve(by_first_.size());
    for (const auto& [first, last] : by_first_) out.push_back(ring::Range{first - 1, last});
    return out;
}

}  // namespace kv::node
