// HashTree and the interval helpers of anti-entropy (node/antientropy/):
// interval hashes equal the XOR of the entries inside, whatever the interval;
// one changed entry changes exactly the intervals holding it; split() walks
// down to single leaves; shared_intervals() covers exactly the arcs whose
// preference list holds both nodes.
#include <catch2/catch.hpp>

#include <map>
#include <random>

#include "node/antientropy/anti_entropy.h"
#include "node/antientropy/hash_tree.h"

using namespace kv;
using namespace kv::node;

namespace {

// Entries by token, and a tree kept current with them.
struct Model {
    std::multimap<uint64_t, uint64_t> entries;
    HashTree tree;
    void add(uint64_t token, uint64_t hash) {
        entries.emplace(token, hash);
        tree.apply(token, hash);
    }
    uint64_t brute(TokenInterval iv) const {
        uint64_t h = 0;
        for (auto it = entries.lower_bound(iv.lo); it != entries.end() && it->first <= iv.hi; ++it)
            h ^= it->second;
        return h;
    }
    uint64_t hash(TokenInterval iv, int* leaves_read = nullptr) const {
        return tree.interval_hash(iv, [&](TokenInterval leaf) {
            if (leaves_read) ++*leaves_read;
            return brute(leaf);
        });
    }
};

}  // namespace

TEST_CASE("an interval's hash is the XOR of its entries, reading at most two leaves") {
    std::mt19937_64 rng(7);
    Model m;
    for (int i = 0; i < 5000; ++i) m.add(rng(), rng());
    // Entries at the edges of the token space too.
    m.add(0, 11);
    m.add(~uint64_t{0}, 13);
    CHECK(m.tree.root() == m.brute({0, ~uint64_t{0}}));
    for (int i = 0; i < 2000; ++i) {
        uint64_t a = rng(), b = rng();
        if (i % 3 == 0) b = a + (rng() % (uint64_t{1} << 50));  // short ones, within a leaf
        if (a > b) std::swap(a, b);
        int leaves = 0;
        CHECK(m.hash({a, b}, &leaves) == m.brute({a, b}));
        CHECK(leaves <= 2);
    }
    CHECK(m.hash({0, 0}) == 11);
    CHECK(m.hash({~uint64_t{0}, ~uint64_t{0}}) == 13);
}

TEST_CASE("a change shows in exactly the intervals that hold it, and undoing it restores them") {
    std::mt19937_64 rng(8);
    Model m;
    for (int i = 0; i < 1000; ++i) m.add(rng(), rng());
    const uint64_t root = m.tree.root();
    const uint64_t token = (rng() | 1) & ~(uint64_t{1} << 63);
    const std::vector<TokenInterval> holding = {{token, token},
                                                {0, token},
                                                {token, ~uint64_t{0}},
                                                {token - 1, token + (uint64_t{1} << 52)}};
    const std::vector<TokenInterval> not_holding = {{0, token - 1}, {token + 1, ~uint64_t{0}}};
    std::vector<uint64_t> before;
    for (const auto& iv : holding) before.push_back(m.hash(iv));
    for (const auto& iv : not_holding) before.push_back(m.hash(iv));
    m.add(token, 0xabcdef);
    CHECK(m.tree.root() == (root ^ 0xabcdef));
    for (size_t i = 0; i < holding.size(); ++i) CHECK(m.hash(holding[i]) == (before[i] ^ 0xabcdef));
    for (size_t i = 0; i < not_holding.size(); ++i)
        CHECK(m.hash(not_holding[i]) == before[holding.size() + i]);
    // Undone (the entry removed: the same delta again).
    m.entries.erase(m.entries.find(token));
    m.tree.apply(token, 0xabcdef);
    CHECK(m.tree.root() == root);
    for (size_t i = 0; i < holding.size(); ++i) CHECK(m.hash(holding[i]) == before[i]);
}

TEST_CASE("split descends through the tree to intervals within one leaf") {
    std::vector<TokenInterval> level = {{0, ~uint64_t{0}}};
    for (int depth = 0; depth < HashTree::kDepth; ++depth) {
        auto children = HashTree::split(level.front());
        REQUIRE(children.size() == HashTree::kFanout);
        CHECK(children.front().lo == level.front().lo);
        CHECK(children.back().hi == level.front().hi);
        for (size_t i = 1; i < children.size(); ++i)
            CHECK(children[i].lo == children[i - 1].hi + 1);
        level = {children[3]};
    }
    CHECK(HashTree::split(level.front()).empty());
    // A clipped interval splits into the clipped children it touches.
    auto clipped = HashTree::split({uint64_t{5} << 60 | 123, (uint64_t{7} << 60) + 9});
    REQUIRE(clipped.size() == 3);
    CHECK(clipped.front().lo == (uint64_t{5} << 60 | 123));
    CHECK(clipped.back().hi == (uint64_t{7} << 60) + 9);
}

TEST_CASE("shared intervals cover exactly the arcs both nodes replicate") {
    const ring::Ring ring({"a", "b", "c", "d", "e"}, 16);
    const auto shared = shared_intervals(ring, 3, "a", "c");
    REQUIRE_FALSE(shared.empty());
    std::mt19937_64 rng(9);
    for (int i = 0; i < 20000; ++i) {
        const uint64_t h = rng();
        const auto prefs = ring.preference_list_for_hash(h, 3);
        const bool both = has_id(prefs, "a") && has_id(prefs, "c");
        bool inside = false;
        for (const auto& iv : shared) inside = inside || (iv.lo <= h && h <= iv.hi);
        CHECK(inside == both);
    }
    // Three nodes, n = 3: the whole ring, as one interval.
    const ring::Ring three({"a", "b", "c"}, 16);
    CHECK(shared_intervals(three, 3, "a", "b") == std::vector<TokenInterval>{{0, ~uint64_t{0}}});
}
