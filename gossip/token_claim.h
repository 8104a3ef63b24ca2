// Ring positions for members: the tokens a node starts with, the share of the
// ring each node owns under explicit tokens, and balanced claims for joiners.
// Same ownership rule as ring::Ring: a token owns (previous token, token];
// tokens at one position are ordered by node id and the first owns the range.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "gossip/cluster_view.h"

namespace kv::gossip {

// The tokens ring::Ring(ids, vnodes) gives `id`: hash64(id + "#" + i). Members
// that gossip these build the same ring as the static, hashed layout.
std::vector<uint64_t> default_tokens(std::string_view id, uint32_t vnodes);

// Share of the ring (0..1) whose first replica is each node, by index in `nodes`.
std::vector<double> token_ownership(const std::vector<NodeTokens>& nodes);

// `vnodes` tokens for a node joining `ring` (whose members must not include it),
// balanced for what every member serves: the share of keys it replicates with
// `replicas` copies (and its share as first replica). Claims are hashed
// positions, hash64(id + "#" + salt + "#" + i); of several salts the one whose
// ring is most even wins (up to 32, fewer as the ring grows, where hashed
// positions even out by themselves). Splitting the most-loaded member's ranges
// instead balances first replicas exactly but, the joiner always landing just
// before the member it takes from, skews replica load (0.50 to 0.92 of keys with
// n = 3 on 4 nodes, against 0.74 to 0.76 here). An empty ring gets the tokens of
// salt 0 (evenly spaced ones would skew every hashed claim after them).
// Deterministic: the same ring, id and counts give the same tokens.
std::vector<uint64_t> claim_tokens(const std::vector<NodeTokens>& ring, std::string_view joiner_id,
                                   uint32_t vnodes, uint32_t replicas);

}  // namespace kv::gossip
