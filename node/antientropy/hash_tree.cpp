#include "node/antientropy/hash_tree.h"

#include <algorithm>
#include <cassert>

namespace kv::node {

namespace {
// Tokens below a node of depth d share their top 4*d bits; the rest is its span.
constexpr int shift_at(int depth) {
    return 64 - HashTree::kFanoutBits * depth;
}
uint64_t first_token(int depth, uint64_t index) {
    return depth == 0 ? 0 : index << shift_at(depth);
}
uint64_t last_token(int depth, uint64_t index) {
    if (depth == 0) return ~uint64_t{0};
    return first_token(depth, index) | ((uint64_t{1} << shift_at(depth)) - 1);
}
uint64_t index_at(int depth, uint64_t token) {
    return depth == 0 ? 0 : token >> shift_at(depth);
}
}  // namespace

HashTree::HashTree() {
    for (int d = 0; d <= kDepth; ++d) levels_[d].assign(uint64_t{1} << (kFanoutBits * d), 0);
}

void HashTree::apply(uint64_t token, uint64_t delta) {
    if (delta == 0) return;
    for (int d = 0; d <= kDepth; ++d) levels_[d][index_at(d, token)] ^= delta;
}

void HashTree::clear() {
    for (auto& level : levels_) std::fill(level.begin(), level.end(), 0);
}

uint64_t HashTree::interval_hash(TokenInterval interval,
                                 const std::function<uint64_t(TokenInterval)>& partial_leaf) const {
    assert(interval.lo <= interval.hi);
    // Walk down from the root; only nodes the interval cuts are opened, and
    // those lie on the paths of its two ends.
    std::function<uint64_t(int, uint64_t)> visit = [&](int depth, uint64_t index) -> uint64_t {
        const uint64_t first = first_token(depth, index);
        const uint64_t last = last_token(depth, index);
        if (last < interval.lo || first > interval.hi) return 0;
        if (interval.lo <= first && last <= interval.hi) return levels_[depth][index];
        if (depth == kDepth) {
            return partial_leaf(
                TokenInterval{std::max(first, interval.lo), std::min(last, interval.hi)});
        }
        uint64_t h = 0;
        for (uint64_t c = 0; c < kFanout; ++c) h ^= visit(depth + 1, index * kFanout + c);
        return h;
    };
    return visit(0, 0);
}

std::vector<TokenInterval> HashTree::split(TokenInterval interval) {
    assert(interval.lo <= interval.hi);
    int depth = 0;
    while (depth < kDepth && index_at(depth + 1, interval.lo) == index_at(depth + 1, interval.hi)) {
        ++depth;
    }
    if (depth == kDepth) return {};
    const uint64_t parent = index_at(depth, interval.lo);
    std::vector<TokenInterval> out;
    for (uint64_t c = 0; c < kFanout; ++c) {
        const uint64_t child = parent * kFanout + c;
        const uint64_t first = std::max(first_token(depth + 1, child), interval.lo);
        const uint64_t last = std::min(last_token(depth + 1, child), interval.hi);
        if (first <= last && first_token(depth + 1, child) <= interval.hi &&
            last_token(depth + 1, child) >= interval.lo) {
            out.push_back(TokenInterval{first, last});
        }
    }
    return out;
}

}  // namespace kv::node
