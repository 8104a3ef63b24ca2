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
// chosen so that it takes 1/(n+1) of the ring, each vnode taking an equal slice
// from the largest range of the then most-loaded member: loads stay within about
// one slice of the mean. An empty ring gets evenly spaced tokens offset by the
// hash of the id. Deterministic: the same ring and id give the same tokens.
std::vector<uint64_t> claim_tokens(const std::vector<NodeTokens>& ring, std::string_view joiner_id,
                                   uint32_t vnodes);

}  // namespace kv::gossip
