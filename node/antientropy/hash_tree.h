// A hash tree over the 64-bit token space (Merkle 1987; Dynamo §4.7), kept
// current by every change instead of rebuilt: the hash of a set of entries is
// the XOR of their hashes, so adding, removing or changing one entry XORs one
// delta into its leaf and each ancestor (O(depth)), and any two replicas
// holding the same entries in a token interval have the same hash for it.
//
// Shape: a 16-ary tree of kDepth levels below the root; node i at depth d
// covers the tokens whose top 4*d bits are i. Leaves (depth kDepth) are
// 65,536 buckets of 2^48 tokens each. The hash of an arbitrary closed
// interval [lo, hi] combines the nodes it covers whole with the entries of the
// at most two leaves it cuts, which the caller reads from its index (a token-
// ordered scan), so trees need no per-range copy: the ranges a pair of
// replicas share are just intervals of the one tree each keeps.
// Pure, no Env.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <vector>

namespace kv::node {

// A closed interval of tokens, lo <= hi (a wrapping ring range is two).
struct TokenInterval {
    uint64_t lo = 0;
    uint64_t hi = 0;
    bool operator==(const TokenInterval&) const = default;
};

class HashTree {
  public:
    static constexpr int kDepth = 4;
    static constexpr int kFanoutBits = 4;
    static constexpr uint64_t kFanout = uint64_t{1} << kFanoutBits;

    HashTree();

    // XORs `delta` into the leaf holding `token` and its ancestors: the
    // change of one entry (old hash XOR new hash; 0 changes nothing).
    void apply(uint64_t token, uint64_t delta);
    void clear();

    uint64_t root() const { return levels_[0][0]; }

    // The XOR of the hashes of every entry whose token is in [lo, hi].
    // `partial_leaf(lo', hi')` must return the XOR of the entries' hashes in
    // [lo', hi'], a sub-interval of one leaf; it is called for at most two
    // leaves (those the interval cuts).
    uint64_t interval_hash(TokenInterval interval,
                           const std::function<uint64_t(TokenInterval)>& partial_leaf) const;

    // The pieces an exchange descends into when `interval` differs: its
    // intersections with the children of the smallest tree node holding it
    // whole, in token order. Empty when that node is a leaf (the interval is
    // within one bucket): then the entries themselves are compared.
    static std::vector<TokenInterval> split(TokenInterval interval);

  private:
    // levels_[d] has kFanout^d hashes.
    std::array<std::vector<uint64_t>, kDepth + 1> levels_;
};

}  // namespace kv::node
