// Consistent-hash ring with virtual nodes (Dynamo §4.2). Pure and deterministic:
// the same members and vnode count give the same ring on every node.
//
// Each physical node owns `vnodes` tokens on a 64-bit ring. A key hashes to a
// point; its preference list is the first N distinct physical nodes met walking
// clockwise from that point (the first token >= the hash, wrapping around).
// A token owns the range (previous token, token].
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kv::ring {

// 64-bit XXH3 of the bytes; the hash of keys and of tokens.
uint64_t hash64(std::string_view bytes);

constexpr uint32_t kDefaultVnodes = 256;

struct Token {
    uint64_t position = 0;
    uint32_t node_index = 0;  // index into Ring::nodes()
    bool operator==(const Token&) const = default;
};

// A half-open arc of the ring, (start, end]; start == end means the whole ring.
struct Range {
    uint64_t start = 0;
    uint64_t end = 0;
    bool operator==(const Range&) const = default;

    // Whether a hash falls in (start, end], wrapping past 2^64 - 1 when end <= start.
    bool contains(uint64_t hash) const;
    // Share of the whole 2^64 ring this arc covers, in (0, 1].
    double fraction() const;
};

class Ring {
  public:
    Ring() = default;
    // Tokens of node X are hash64(X + "#" + i) for i in [0, vnodes). Node ids
    // must be distinct (a repeated id counts once); order does not matter (the
    // ring sorts them). Tokens at the same position are ordered by node id, and
    // the first of them owns the range ending there.
    Ring(std::vector<std::string> node_ids, uint32_t vnodes = kDefaultVnodes);

    // Explicit tokens per node (the ring gossip spreads: each member claims its
    // own). Same rules as above: ids sorted, a repeated id counts once (its
    // tokens merged), ties at one position broken by node id, a node's
    // duplicate positions dropped. A node without tokens is left out.
    static Ring from_tokens(std::vector<std::pair<std::string, std::vector<uint64_t>>> node_tokens);

    const std::vector<std::string>& nodes() const { return nodes_; }
    const std::vector<Token>& tokens() const { return tokens_; }
    bool empty() const { return tokens_.empty(); }

    // The first min(n, nodes) distinct physical nodes clockwise from the key's hash.
    std::vector<std::string> preference_list(std::string_view key, uint32_t n) const;
    std::vector<std::string> preference_list_for_hash(uint64_t hash, uint32_t n) const;
    // Whether `node` is among preference_list_for_hash(hash, n), without
    // building the list: a replica asks this of every write it receives.
    bool in_preference_list(uint64_t hash, uint32_t n, std::string_view node) const;

    // Fraction of the ring (0..1) whose first replica is each node, by node index.
    std::vector<double> ownership() const;

  private:
    // Visits the indexes of the first min(n, nodes) distinct nodes clockwise
    // from the hash, in order, while `visit` returns true.
    template <typename Visit>
    void walk_distinct(uint64_t hash, uint32_t n, Visit&& visit) const;

    std::vector<std::string> nodes_;  // sorted
    std::vector<Token> tokens_;       // sorted by position
};

// One range whose preference list (of length n) differs between two rings.
struct OwnershipChange {
    Range range;
    std::vector<std::string> before;
    std::vector<std::string> after;
};

// Ranges (split at every token of either ring) whose preference lists differ,
// adjacent ranges with the same change merged, in ring order.
std::vector<OwnershipChange> ownership_diff(const Ring& before, const Ring& after, uint32_t n);

}  // namespace kv::ring
