#include "node/replica/handoffs.h"

#include "node/storage/meta_codec.h"

namespace kv::node {

Status Handoffs::load() {
    auto stored = env_.read(Space::meta, meta::kHandoffsKey);
    if (!stored) return stored.status();
    if (!stored.value()) return {};
    auto decoded = meta::decode_handoffs(*stored.value());
    if (!decoded) return Status(ErrorCode::storage_error, "corrupt handoffs in the meta space");
    for (const auto& [target, ranges] : *decoded) {
        for (const auto& r : ranges) by_target_[target].add(r);
    }
    return {};
}

void Handoffs::record(const std::string& target, const std::vector<ring::Range>& ranges) {
    ring::RangeSet& mine = by_target_[target];
    for (const auto& r : ranges) mine.add(r);
    persist();
}

void Handoffs::received(const std::vector<ring::Range>& ranges) {
    for (const auto& r : ranges) received_.add(r);
}

void Handoffs::clear() {
    received_ = {};
    if (by_target_.empty()) return;
    by_target_.clear();
    persist();
}

bool Handoffs::handed_off(const std::string& target, const ring::Range& range) const {
    auto it = by_target_.find(target);
    return it != by_target_.end() && it->second.covers(range);
}

bool Handoffs::fenced(uint64_t hash) const {
    for (const auto& [target, ranges] : by_target_) {
        if (ranges.contains(hash)) return true;
    }
    return false;
}

void Handoffs::persist() {
    meta::HandoffRecord record;
    for (const auto& [target, ranges] : by_target_) record[target] = ranges.ranges();
    std::string bytes = meta::encode_handoffs(record);
    env_.stage_write(StoreWrite{Space::meta, std::string(meta::kHandoffsKey),
                                bytes.empty() ? std::nullopt : std::optional(bytes)});
}

}  // namespace kv::node
