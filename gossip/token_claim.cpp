#include "gossip/token_claim.h"

#include <algorithm>
#include <cassert>
#include <string>
#include <tuple>

#include "ring/ring.h"

namespace kv::gossip {

namespace {

using u128 = unsigned __int128;
constexpr u128 kRingSize = u128{1} << 64;

struct Placed {
    uint64_t position;
    uint32_t node;  // index into the node list, which is sorted by id
    bool operator<(const Placed& o) const {
        return std::tie(position, node) < std::tie(o.position, o.node);
    }
    bool operator==(const Placed&) const = default;
};

// Length of the range ending at tokens[i]; zero for a tied position that an
// earlier token of the same position already owns.
u128 range_length(const std::vector<Placed>& tokens, size_t i) {
    if (tokens.size() == 1) return kRingSize;
    const uint64_t prev = tokens[i == 0 ? tokens.size() - 1 : i - 1].position;
    const uint64_t end = tokens[i].position;
    if (prev == end) return 0;
    return static_cast<uint64_t>(end - prev);  // wrap-around included
}

std::vector<Placed> place(const std::vector<NodeTokens>& nodes) {
    std::vector<Placed> tokens;
    for (uint32_t n = 0; n < nodes.size(); ++n) {
        for (uint64_t t : nodes[n].tokens) tokens.push_back(Placed{t, n});
    }
    std::sort(tokens.begin(), tokens.end());
    tokens.erase(std::unique(tokens.begin(), tokens.end()), tokens.end());
    return tokens;
}

std::vector<u128> loads(const std::vector<Placed>& tokens, size_t node_count) {
    std::vector<u128> owned(node_count, 0);
    for (size_t i = 0; i < tokens.size(); ++i) owned[tokens[i].node] += range_length(tokens, i);
    return owned;
}

std::vector<uint64_t> evenly_spaced(std::string_view id, uint32_t vnodes) {
    const uint64_t offset = ring::hash64(id);
    const uint64_t step = static_cast<uint64_t>(kRingSize / vnodes);
    std::vector<uint64_t> tokens;
    for (uint32_t i = 0; i < vnodes; ++i) tokens.push_back(offset + step * i);
    return tokens;
}

// Index of the most-loaded node other than `skip` (ties: smallest id).
uint32_t most_loaded(const std::vector<u128>& owned, uint32_t skip) {
    uint32_t best = skip == 0 ? 1 : 0;
    for (uint32_t n = 0; n < owned.size(); ++n) {
        if (n != skip && owned[n] > owned[best]) best = n;
    }
    return best;
}

// Index of `node`'s largest range (ties: lowest position).
size_t largest_range(const std::vector<Placed>& tokens, uint32_t node) {
    size_t best = tokens.size();
    u128 best_length = 0;
    for (size_t i = 0; i < tokens.size(); ++i) {
        if (tokens[i].node != node) continue;
        const u128 length = range_length(tokens, i);
        if (best == tokens.size() || length > best_length) {
            best = i;
            best_length = length;
        }
    }
    assert(best < tokens.size());
    return best;
}

}  // namespace

std::vector<uint64_t> default_tokens(std::string_view id, uint32_t vnodes) {
    std::vector<uint64_t> tokens;
    for (uint32_t i = 0; i < vnodes; ++i) {
        tokens.push_back(ring::hash64(std::string(id) + "#" + std::to_string(i)));
    }
    std::sort(tokens.begin(), tokens.end());
    tokens.erase(std::unique(tokens.begin(), tokens.end()), tokens.end());
    return tokens;
}

std::vector<double> token_ownership(const std::vector<NodeTokens>& nodes) {
    // Ties go to the smaller id, as in ring::Ring: place by sorted-id rank.
    std::vector<uint32_t> order(nodes.size());
    for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](uint32_t a, uint32_t b) { return nodes[a].id < nodes[b].id; });
    std::vector<NodeTokens> sorted;
    for (uint32_t i : order) sorted.push_back(nodes[i]);

    const std::vector<u128> owned = loads(place(sorted), sorted.size());
    std::vector<double> shares(nodes.size(), 0.0);
    for (uint32_t rank = 0; rank < order.size(); ++rank) {
        shares[order[rank]] =
            static_cast<double>(static_cast<long double>(owned[rank]) / kRingSize);
    }
    return shares;
}

std::vector<uint64_t> claim_tokens(const std::vector<NodeTokens>& ring, std::string_view joiner_id,
                                   uint32_t vnodes) {
    assert(vnodes > 0);
    std::vector<NodeTokens> nodes;
    for (const auto& n : ring) {
        assert(n.id != joiner_id);
        if (!n.tokens.empty()) nodes.push_back(n);
    }
    if (nodes.empty()) return evenly_spaced(joiner_id, vnodes);
    std::sort(nodes.begin(), nodes.end(),
              [](const NodeTokens& a, const NodeTokens& b) { return a.id < b.id; });

    // The joiner is placed after the others: on a tied position it never wins,
    // but claims are strictly inside ranges so ties do not arise.
    const uint32_t joiner = static_cast<uint32_t>(nodes.size());
    std::vector<Placed> tokens = place(nodes);
    std::vector<u128> owned = loads(tokens, nodes.size() + 1);
    const u128 slice = kRingSize / (u128{nodes.size() + 1} * vnodes);

    std::vector<uint64_t> claimed;
    for (uint32_t v = 0; v < vnodes; ++v) {
        const uint32_t donor = most_loaded(owned, joiner);
        const size_t at = largest_range(tokens, donor);
        const u128 length = range_length(tokens, at);
        if (length < 2) break;  // nothing left to split: a degenerate, tiny ring
        const u128 take = std::min(slice, length - 1);
        const uint64_t start = tokens[at == 0 ? tokens.size() - 1 : at - 1].position;
        const uint64_t position = start + static_cast<uint64_t>(take);
        // The joiner now owns (start, position]; the donor keeps (position, end].
        owned[donor] -= take;
        owned[joiner] += take;
        const Placed placed{position, joiner};
        tokens.insert(std::upper_bound(tokens.begin(), tokens.end(), placed), placed);
        claimed.push_back(position);
    }
    std::sort(claimed.begin(), claimed.end());
    return claimed;
}

}  // namespace kv::gossip
