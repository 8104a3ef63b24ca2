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

// The share of the ring (0..1) each node replicates with n replicas, by index
// in r.nodes(): every range counts for each node of its preference list.
std::vector<double> replica_shares(const ring::Ring& r, uint32_t n) {
    std::vector<double> shares(r.nodes().size(), 0.0);
    const auto& tokens = r.tokens();
    for (size_t i = 0; i < tokens.size(); ++i) {
        const uint64_t prev = tokens[i == 0 ? tokens.size() - 1 : i - 1].position;
        const double length =
            tokens.size() == 1
                ? 1.0
                : static_cast<double>(static_cast<uint64_t>(tokens[i].position - prev)) / 0x1p64;
        for (const auto& id : r.preference_list_for_hash(tokens[i].position, n)) {
            const auto at = std::lower_bound(r.nodes().begin(), r.nodes().end(), id);
            shares[static_cast<size_t>(at - r.nodes().begin())] += length;
        }
    }
    return shares;
}

// (max - min) / mean of the shares.
double spread(const std::vector<double>& shares) {
    if (shares.empty()) return 0;
    const auto [lo, hi] = std::minmax_element(shares.begin(), shares.end());
    double sum = 0;
    for (double s : shares) sum += s;
    return (*hi - *lo) / (sum / static_cast<double>(shares.size()));
}

std::vector<uint64_t> salted_tokens(std::string_view id, uint32_t salt, uint32_t vnodes) {
    std::vector<uint64_t> tokens;
    for (uint32_t i = 0; i < vnodes; ++i) {
        tokens.push_back(
            ring::hash64(std::string(id) + "#" + std::to_string(salt) + "#" + std::to_string(i)));
    }
    std::sort(tokens.begin(), tokens.end());
    tokens.erase(std::unique(tokens.begin(), tokens.end()), tokens.end());
    return tokens;
}

// Candidate token sets tried per claim: as many as keep one claim's work near
// kClaimWorkMax preference lists (a 5-node ring tries 32, a 200-node ring 1).
constexpr size_t kClaimWorkMax = 60000;
constexpr size_t kCandidatesMax = 32;

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
                                   uint32_t vnodes, uint32_t replicas) {
    assert(vnodes > 0);
    assert(replicas > 0);
    std::vector<std::pair<std::string, std::vector<uint64_t>>> input;
    size_t token_count = vnodes;
    for (const auto& n : ring) {
        assert(n.id != joiner_id);
        if (n.tokens.empty()) continue;
        input.emplace_back(n.id, n.tokens);
        token_count += n.tokens.size();
    }
    if (input.empty()) return salted_tokens(joiner_id, 0, vnodes);
    const size_t candidates = std::clamp<size_t>(kClaimWorkMax / token_count, 1, kCandidatesMax);
    std::vector<uint64_t> best;
    double best_score = 0;
    input.emplace_back(std::string(joiner_id), std::vector<uint64_t>{});
    for (uint32_t salt = 0; salt < candidates; ++salt) {
        input.back().second = salted_tokens(joiner_id, salt, vnodes);
        const ring::Ring candidate = ring::Ring::from_tokens(input);
        const double score =
            std::max(spread(replica_shares(candidate, replicas)), spread(candidate.ownership()));
        if (best.empty() || score < best_score) {
            best = input.back().second;
            best_score = score;
        }
    }
    return best;
}

}  // namespace kv::gossip
