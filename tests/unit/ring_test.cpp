// Tests of the consistent-hash ring: token placement, balance, preference
// lists against a brute-force model, the ownership diff on joins/leaves, and
// range sets.
#include <xxhash.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "ring/range_set.h"
#include "ring/ring.h"

using kv::ring::hash64;
using kv::ring::kDefaultVnodes;
using kv::ring::OwnershipChange;
using kv::ring::Range;
using kv::ring::RangeSet;
using kv::ring::Ring;

namespace {

std::vector<std::string> node_names(int count) {
    std::vector<std::string> names;
    for (int i = 1; i <= count; ++i) names.push_back("n" + std::to_string(i));
    return names;
}

// A fixed, well-spread sequence of hashes for property tests (no randomness).
std::vector<uint64_t> sample_hashes(size_t count) {
    std::vector<uint64_t> hashes;
    hashes.reserve(count);
    for (size_t i = 0; i < count; ++i) hashes.push_back(hash64("sample-" + std::to_string(i)));
    return hashes;
}

// The model: order every token by clockwise distance from the hash (0 for a
// token exactly at it), ties by node id, and keep first occurrences. It shares
// nothing with the ring's binary search or its sorted token vector.
std::vector<std::string> brute_force_preference(const std::vector<std::string>& ids,
                                                uint32_t vnodes, uint64_t hash, size_t n) {
    struct Candidate {
        uint64_t distance;
        std::string node;
    };
    std::vector<Candidate> candidates;
    for (const std::string& id : ids) {
        for (uint32_t i = 0; i < vnodes; ++i) {
            const std::string label = id + "#" + std::to_string(i);
            const uint64_t position = XXH3_64bits(label.data(), label.size());
            candidates.push_back({position - hash, id});
        }
    }
    std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
        if (a.distance != b.distance) return a.distance < b.distance;
        return a.node < b.node;
    });
    std::vector<std::string> result;
    for (const Candidate& c : candidates) {
        if (result.size() == n) break;
        if (std::find(result.begin(), result.end(), c.node) == result.end()) {
            result.push_back(c.node);
        }
    }
    return result;
}

double share_of(const Ring& ring, const std::string& node) {
    const auto& nodes = ring.nodes();
    const auto it = std::find(nodes.begin(), nodes.end(), node);
    REQUIRE(it != nodes.end());
    return ring.ownership()[static_cast<size_t>(it - nodes.begin())];
}

double changed_fraction(const std::vector<OwnershipChange>& changes) {
    double total = 0.0;
    for (const OwnershipChange& c : changes) total += c.range.fraction();
    return total;
}

bool contains_node(const std::vector<std::string>& list, const std::string& node) {
    return std::find(list.begin(), list.end(), node) != list.end();
}

// Two non-empty arcs overlap iff one contains the other's end point: every
// common stretch ends where one of the two arcs ends.
bool overlap(const Range& a, const Range& b) {
    return a.contains(b.end) || b.contains(a.end);
}

void check_disjoint(const std::vector<OwnershipChange>& changes) {
    for (size_t i = 0; i < changes.size(); ++i) {
        for (size_t j = i + 1; j < changes.size(); ++j) {
            INFO("changes " << i << " and " << j);
            REQUIRE_FALSE(overlap(changes[i].range, changes[j].range));
        }
    }
}

// Every sampled hash whose lists differ lies in exactly one change carrying
// those lists; a hash whose lists agree lies in none.
void check_diff_complete(const Ring& before, const Ring& after, uint32_t n,
                         const std::vector<OwnershipChange>& changes) {
    for (uint64_t hash : sample_hashes(3000)) {
        const auto b = before.preference_list_for_hash(hash, n);
        const auto a = after.preference_list_for_hash(hash, n);
        size_t hits = 0;
        for (const OwnershipChange& c : changes) {
            if (!c.range.contains(hash)) continue;
            ++hits;
            CHECK(c.before == b);
            CHECK(c.after == a);
        }
        INFO("hash " << hash);
        CHECK(hits == (a == b ? 0u : 1u));
    }
}

// Merging must leave no two touching changes with the same lists, the wrap
// from the last change to the first included.
void check_merged(const std::vector<OwnershipChange>& changes) {
    if (changes.size() < 2) return;
    for (size_t i = 0; i < changes.size(); ++i) {
        const OwnershipChange& cur = changes[i];
        const OwnershipChange& next = changes[(i + 1) % changes.size()];
        if (cur.range.end != next.range.start) continue;
        INFO("change " << i);
        CHECK_FALSE((cur.before == next.before && cur.after == next.after));
    }
}

}  // namespace

TEST_CASE("hash64 is XXH3 64-bit and tokens are hash of id#i", "[ring]") {
    const std::string bytes = "hello";
    REQUIRE(hash64(bytes) == XXH3_64bits(bytes.data(), bytes.size()));
    REQUIRE(hash64("") == XXH3_64bits("", 0));

    const Ring ring(node_names(3), 16);
    REQUIRE(ring.nodes() == node_names(3));
    REQUIRE(ring.tokens().size() == 3 * 16);
    std::multiset<std::pair<uint64_t, std::string>> expected;
    for (const std::string& id : node_names(3)) {
        for (int i = 0; i < 16; ++i) {
            const std::string label = id + "#" + std::to_string(i);
            expected.insert({XXH3_64bits(label.data(), label.size()), id});
        }
    }
    std::multiset<std::pair<uint64_t, std::string>> actual;
    for (const auto& t : ring.tokens()) actual.insert({t.position, ring.nodes()[t.node_index]});
    REQUIRE(actual == expected);
    REQUIRE(std::is_sorted(ring.tokens().begin(), ring.tokens().end(),
                           [](const kv::ring::Token& a, const kv::ring::Token& b) {
                               return a.position < b.position;
                           }));
}

TEST_CASE("five nodes with default vnodes are balanced within 10%", "[ring][balance]") {
    const Ring ring(node_names(5));
    const auto shares = ring.ownership();
    REQUIRE(shares.size() == 5);
    const auto [min_it, max_it] = std::minmax_element(shares.begin(), shares.end());
    INFO("min share " << *min_it << " max share " << *max_it);
    for (double share : shares) {
        CHECK(share >= 0.18);
        CHECK(share <= 0.22);
    }
    CHECK(std::accumulate(shares.begin(), shares.end(), 0.0) == Approx(1.0).epsilon(1e-12));
}

// 3 nodes are left out: with 256 vnodes their shares measure 0.2981..0.3653
// (-10.6% / +9.6% of 1/3), just outside 10%; the statistical test below covers them.
TEST_CASE("other cluster sizes are balanced within 10% with default vnodes", "[ring][balance]") {
    const int count = GENERATE(2, 4, 6, 7, 8, 10);
    const Ring ring(node_names(count));
    const auto shares = ring.ownership();
    REQUIRE(shares.size() == static_cast<size_t>(count));
    const double ideal = 1.0 / count;
    for (double share : shares) {
        INFO(count << " nodes, share " << share << ", ideal " << ideal);
        CHECK(share >= 0.9 * ideal);
        CHECK(share <= 1.1 * ideal);
    }
    CHECK(std::accumulate(shares.begin(), shares.end(), 0.0) == Approx(1.0).epsilon(1e-12));
}

TEST_CASE("shares stay within three standard deviations of random placement", "[ring][balance]") {
    // A node owning V of T = N*V uniform tokens has a Beta(V, T - V) share, whose
    // standard deviation relative to 1/N is about sqrt((N - 1) / T). Clustered
    // or correlated tokens (a broken hash or label) would blow past 3 of them.
    const int count = GENERATE(3, 5, 12, 16, 20, 32);
    const uint32_t vnodes = GENERATE(64u, kDefaultVnodes);
    const Ring ring(node_names(count), vnodes);
    const double ideal = 1.0 / count;
    const double sigma_relative = std::sqrt((count - 1.0) / (count * static_cast<double>(vnodes)));
    for (double share : ring.ownership()) {
        INFO(count << " nodes, " << vnodes << " vnodes, share " << share << ", ideal " << ideal
                   << ", relative sigma " << sigma_relative);
        CHECK(std::abs(share / ideal - 1.0) <= 3.0 * sigma_relative);
    }
}

TEST_CASE("ownership matches the first replica of sampled keys", "[ring]") {
    const Ring ring(node_names(4), 8);  // few vnodes: uneven shares make the check sharp
    const auto shares = ring.ownership();
    std::vector<size_t> counts(ring.nodes().size(), 0);
    const auto hashes = sample_hashes(200000);
    for (uint64_t hash : hashes) {
        const auto owner = ring.preference_list_for_hash(hash, 1).at(0);
        const auto it = std::find(ring.nodes().begin(), ring.nodes().end(), owner);
        ++counts[static_cast<size_t>(it - ring.nodes().begin())];
    }
    for (size_t i = 0; i < counts.size(); ++i) {
        const double sampled = static_cast<double>(counts[i]) / static_cast<double>(hashes.size());
        INFO("node " << ring.nodes()[i] << " ownership " << shares[i] << " sampled " << sampled);
        CHECK(std::abs(sampled - shares[i]) < 0.01);
    }
}

TEST_CASE("ownership of tiny rings is exact", "[ring]") {
    SECTION("one node owns everything") {
        REQUIRE(Ring({"solo"}, 1).ownership() == std::vector<double>{1.0});
        REQUIRE(Ring({"solo"}, 7).ownership() == std::vector<double>{1.0});
    }
    SECTION("two nodes with one token each split at their positions") {
        const uint64_t a = hash64("a#0");
        const uint64_t b = hash64("b#0");
        const auto shares = Ring({"b", "a"}, 1).ownership();
        REQUIRE(shares.size() == 2);
        // a owns (b, a], b owns (a, b]: clockwise distances modulo 2^64.
        CHECK(shares[0] == Approx(static_cast<double>(a - b) / 18446744073709551616.0));
        CHECK(shares[1] == Approx(static_cast<double>(b - a) / 18446744073709551616.0));
        CHECK(shares[0] + shares[1] == Approx(1.0));
    }
    SECTION("empty ring") {
        const Ring ring;
        CHECK(ring.empty());
        CHECK(ring.ownership().empty());
        CHECK(ring.preference_list("key", 3).empty());
    }
}

TEST_CASE("preference lists hold n distinct nodes led by the range owner", "[ring]") {
    const Ring ring(node_names(5));
    for (uint64_t hash : sample_hashes(500)) {
        const auto list = ring.preference_list_for_hash(hash, 3);
        REQUIRE(list.size() == 3);
        REQUIRE(std::set<std::string>(list.begin(), list.end()).size() == 3);
        // The owner is the node of the first token at or after the hash.
        const auto& tokens = ring.tokens();
        const kv::ring::Token* owner = &tokens.front();
        for (const auto& t : tokens) {
            if (t.position >= hash) {
                owner = &t;
                break;
            }
        }
        REQUIRE(list.front() == ring.nodes()[owner->node_index]);
    }
}

TEST_CASE("n above the node count returns every node once", "[ring]") {
    const Ring ring(node_names(4), 32);
    const auto list = ring.preference_list("some key", 10);
    REQUIRE(list.size() == 4);
    REQUIRE(std::set<std::string>(list.begin(), list.end()) ==
            std::set<std::string>{"n1", "n2", "n3", "n4"});
    REQUIRE(ring.preference_list("some key", 0).empty());
}

TEST_CASE("a hash at a token position belongs to that token", "[ring]") {
    const Ring ring(node_names(5), 64);
    const auto& tokens = ring.tokens();
    for (size_t i = 0; i < tokens.size(); ++i) {
        const auto& t = tokens[i];
        if (i > 0 && tokens[i - 1].position == t.position) continue;
        REQUIRE(ring.preference_list_for_hash(t.position, 1).front() == ring.nodes()[t.node_index]);
        // One past the position is the next token's range (wrapping at the end).
        const auto& next = tokens[(i + 1) % tokens.size()];
        if (next.position == t.position + 1) continue;
        REQUIRE(ring.preference_list_for_hash(t.position + 1, 1).front() ==
                ring.nodes()[next.node_index]);
    }
    // Past the last token the walk wraps to the first.
    if (tokens.back().position != UINT64_MAX) {
        REQUIRE(ring.preference_list_for_hash(UINT64_MAX, 1).front() ==
                ring.nodes()[tokens.front().node_index]);
    }
    REQUIRE(ring.preference_list_for_hash(0, 1).front() == ring.nodes()[tokens.front().node_index]);
}

TEST_CASE("the ring does not depend on the order of node ids", "[ring]") {
    const Ring sorted({"alpha", "bravo", "charlie", "delta"});
    const Ring shuffled({"charlie", "alpha", "delta", "bravo"});
    REQUIRE(sorted.nodes() == shuffled.nodes());
    REQUIRE(sorted.tokens() == shuffled.tokens());
    for (int i = 0; i < 200; ++i) {
        const std::string key = "key-" + std::to_string(i);
        REQUIRE(sorted.preference_list(key, 3) == shuffled.preference_list(key, 3));
    }
}

TEST_CASE("preference lists match a brute-force scan of all tokens", "[ring][property]") {
    const uint32_t vnodes = GENERATE(1u, 3u, 32u);
    // 12 nodes with n=9 or 12: more distinct nodes than the walk keeps inline.
    const int count = GENERATE(1, 2, 5, 7, 12);
    const auto ids = node_names(count);
    const Ring ring(std::vector<std::string>(ids.rbegin(), ids.rend()), vnodes);
    const auto hashes = sample_hashes(vnodes == 32 ? 600 : 2000);
    for (uint32_t n : {1u, 3u, 9u, 12u}) {
        for (uint64_t hash : hashes) {
            INFO(count << " nodes, " << vnodes << " vnodes, n=" << n << ", hash " << hash);
            REQUIRE(ring.preference_list_for_hash(hash, n) ==
                    brute_force_preference(ids, vnodes, hash, n));
        }
    }
}

TEST_CASE("in_preference_list says whether a node is in the preference list", "[ring][property]") {
    const uint32_t vnodes = GENERATE(1u, 16u);
    const int count = GENERATE(1, 3, 5, 12);
    const auto ids = node_names(count);
    const Ring ring(ids, vnodes);
    for (uint32_t n : {0u, 1u, 2u, 3u, 9u, 12u}) {
        for (uint64_t hash : sample_hashes(300)) {
            const auto list = brute_force_preference(ids, vnodes, hash, n);
            for (const auto& id : ids) {
                INFO(count << " nodes, n=" << n << ", hash " << hash << ", node " << id);
                REQUIRE(ring.in_preference_list(hash, n, id) ==
                        (std::find(list.begin(), list.end(), id) != list.end()));
            }
            REQUIRE_FALSE(ring.in_preference_list(hash, n, "not-a-member"));
            REQUIRE_FALSE(ring.in_preference_list(hash, n, ""));
        }
    }
    REQUIRE_FALSE(Ring().in_preference_list(7, 3, "n1"));
}

TEST_CASE("keys hash through hash64", "[ring]") {
    const Ring ring(node_names(5), 16);
    for (int i = 0; i < 100; ++i) {
        const std::string key = "user:" + std::to_string(i);
        REQUIRE(ring.preference_list(key, 3) == ring.preference_list_for_hash(hash64(key), 3));
    }
}

TEST_CASE("Range arithmetic wraps around the top of the ring", "[ring]") {
    const Range plain{10, 20};
    CHECK_FALSE(plain.contains(10));
    CHECK(plain.contains(11));
    CHECK(plain.contains(20));
    CHECK_FALSE(plain.contains(21));
    const Range wrapping{UINT64_MAX - 5, 4};
    CHECK(wrapping.contains(UINT64_MAX));
    CHECK(wrapping.contains(0));
    CHECK(wrapping.contains(4));
    CHECK_FALSE(wrapping.contains(5));
    CHECK_FALSE(wrapping.contains(UINT64_MAX - 5));
    CHECK(wrapping.fraction() == Approx(10.0 / 18446744073709551616.0));
    CHECK(Range{7, 7}.contains(123));
    CHECK(Range{7, 7}.fraction() == 1.0);
}

TEST_CASE("a ring diffed with itself has no changes", "[ring][diff]") {
    const Ring ring(node_names(5));
    for (uint32_t n : {1u, 3u, 5u}) REQUIRE(kv::ring::ownership_diff(ring, ring, n).empty());
    const Ring empty;
    REQUIRE(kv::ring::ownership_diff(empty, empty, 3).empty());
}

TEST_CASE("adding a sixth node moves ranges only to it", "[ring][diff]") {
    const Ring before(node_names(5));
    const Ring after(node_names(6));

    SECTION("n=1: the new node takes about a sixth of the ring") {
        const auto changes = kv::ring::ownership_diff(before, after, 1);
        REQUIRE_FALSE(changes.empty());
        for (const auto& c : changes) {
            REQUIRE(c.after == std::vector<std::string>{"n6"});
            REQUIRE(c.before.size() == 1);
            REQUIRE(c.before.front() != "n6");
        }
        const double moved = changed_fraction(changes);
        INFO("fraction moved " << moved << ", n6 owns " << share_of(after, "n6"));
        CHECK(moved >= 0.12);
        CHECK(moved <= 0.22);
        // With n=1 the changed ranges are exactly what n6 now owns.
        CHECK(moved == Approx(share_of(after, "n6")).epsilon(1e-9));
        check_disjoint(changes);
        check_merged(changes);
        check_diff_complete(before, after, 1, changes);
    }
    SECTION("n=3: every change brings n6 into the list") {
        const auto changes = kv::ring::ownership_diff(before, after, 3);
        REQUIRE_FALSE(changes.empty());
        for (const auto& c : changes) {
            REQUIRE(contains_node(c.after, "n6"));
            REQUIRE_FALSE(contains_node(c.before, "n6"));
            REQUIRE(c.before.size() == 3);
            REQUIRE(c.after.size() == 3);
            // Only n6 enters; the survivors keep their relative order.
            std::vector<std::string> without_n6 = c.after;
            without_n6.erase(std::find(without_n6.begin(), without_n6.end(), "n6"));
            REQUIRE(std::equal(without_n6.begin(), without_n6.end(), c.before.begin()));
        }
        check_disjoint(changes);
        check_merged(changes);
        check_diff_complete(before, after, 3, changes);
    }
}

TEST_CASE("removing a node moves only its ranges away", "[ring][diff]") {
    const Ring before(node_names(6));
    const Ring after(node_names(5));
    for (uint32_t n : {1u, 3u}) {
        const auto changes = kv::ring::ownership_diff(before, after, n);
        REQUIRE_FALSE(changes.empty());
        for (const auto& c : changes) {
            REQUIRE(contains_node(c.before, "n6"));
            REQUIRE_FALSE(contains_node(c.after, "n6"));
            // Only n6 leaves; the survivors keep their relative order.
            std::vector<std::string> without_n6 = c.before;
            without_n6.erase(std::find(without_n6.begin(), without_n6.end(), "n6"));
            REQUIRE(std::equal(without_n6.begin(), without_n6.end(), c.after.begin()));
        }
        if (n == 1) {
            const double moved = changed_fraction(changes);
            INFO("fraction moved " << moved);
            CHECK(moved >= 0.12);
            CHECK(moved <= 0.22);
            CHECK(moved == Approx(share_of(before, "n6")).epsilon(1e-9));
        }
        check_disjoint(changes);
        check_merged(changes);
        check_diff_complete(before, after, n, changes);
    }
}

TEST_CASE("diff against an empty ring covers the whole ring", "[ring][diff]") {
    const Ring empty;
    const Ring full(node_names(3), 16);

    const auto joining = kv::ring::ownership_diff(empty, full, 2);
    REQUIRE_FALSE(joining.empty());
    for (const auto& c : joining) {
        REQUIRE(c.before.empty());
        REQUIRE(c.after.size() == 2);
    }
    CHECK(changed_fraction(joining) == Approx(1.0).epsilon(1e-12));
    check_disjoint(joining);
    check_merged(joining);
    check_diff_complete(empty, full, 2, joining);

    const auto leaving = kv::ring::ownership_diff(full, empty, 2);
    REQUIRE_FALSE(leaving.empty());
    for (const auto& c : leaving) REQUIRE(c.after.empty());
    CHECK(changed_fraction(leaving) == Approx(1.0).epsilon(1e-12));
    check_diff_complete(full, empty, 2, leaving);
}

TEST_CASE("a change spanning every piece is one whole-ring range", "[ring][diff]") {
    // Any hash's single owner moves from "a" to "b": one change, start == end.
    const auto changes = kv::ring::ownership_diff(Ring({"a"}, 8), Ring({"b"}, 8), 1);
    REQUIRE(changes.size() == 1);
    CHECK(changes[0].range.start == changes[0].range.end);
    CHECK(changes[0].before == std::vector<std::string>{"a"});
    CHECK(changes[0].after == std::vector<std::string>{"b"});
}

TEST_CASE("a diff from empty merges same-owner runs, across the top of the ring too",
          "[ring][diff]") {
    // With n=1 each change is a maximal run of consecutive tokens of one node.
    // Pick a ring whose first and last tokens share a node, so the run holding
    // position 0 must be merged across the wrap.
    Ring ring;
    for (uint32_t vnodes = 1; vnodes <= 64; ++vnodes) {
        Ring candidate({"a", "b", "c"}, vnodes);
        const auto& t = candidate.tokens();
        if (t.front().node_index == t.back().node_index &&
            t.front().node_index != t[1].node_index) {
            ring = std::move(candidate);
            break;
        }
    }
    REQUIRE_FALSE(ring.empty());

    const auto& tokens = ring.tokens();
    std::set<uint64_t> run_ends;  // a run ends at a token whose successor has another node
    for (size_t i = 0; i < tokens.size(); ++i) {
        if (tokens[i].node_index != tokens[(i + 1) % tokens.size()].node_index) {
            run_ends.insert(tokens[i].position);
        }
    }
    const auto changes = kv::ring::ownership_diff(Ring(), ring, 1);
    REQUIRE(changes.size() == run_ends.size());
    std::set<uint64_t> starts, ends;
    size_t wrapping = 0;
    for (const auto& c : changes) {
        starts.insert(c.range.start);
        ends.insert(c.range.end);
        if (c.range.start > c.range.end) ++wrapping;
    }
    CHECK(starts == run_ends);
    CHECK(ends == run_ends);
    CHECK(wrapping == 1);
    check_merged(changes);
    check_diff_complete(Ring(), ring, 1, changes);
}

TEST_CASE("from_tokens with each node's hashed tokens equals the hashed ring", "[ring][tokens]") {
    const auto ids = node_names(4);
    std::vector<std::pair<std::string, std::vector<uint64_t>>> explicit_tokens;
    // Given in reverse order: the ring must sort node ids itself.
    for (auto it = ids.rbegin(); it != ids.rend(); ++it) {
        std::vector<uint64_t> tokens;
        for (uint32_t i = 0; i < 16; ++i) tokens.push_back(hash64(*it + "#" + std::to_string(i)));
        explicit_tokens.emplace_back(*it, tokens);
    }
    const Ring hashed(ids, 16);
    const Ring given = Ring::from_tokens(explicit_tokens);
    CHECK(given.nodes() == hashed.nodes());
    CHECK(given.tokens() == hashed.tokens());
}

TEST_CASE("from_tokens places explicit positions, ties by id, skips empty nodes",
          "[ring][tokens]") {
    const Ring ring = Ring::from_tokens({{"b", {100, 300}}, {"a", {300, 200, 200}}, {"c", {}}});
    REQUIRE(ring.nodes() == std::vector<std::string>{"a", "b"});
    // a's duplicate 200 dropped; at 300 "a" (index 0) sorts first and owns (200, 300].
    const std::vector<kv::ring::Token> expected{{100, 1}, {200, 0}, {300, 0}, {300, 1}};
    CHECK(ring.tokens() == expected);
    CHECK(ring.preference_list_for_hash(150, 2) == std::vector<std::string>{"a", "b"});
    CHECK(ring.preference_list_for_hash(250, 1) == std::vector<std::string>{"a"});
    CHECK(ring.preference_list_for_hash(301, 2) == std::vector<std::string>{"b", "a"});
    const auto shares = ring.ownership();
    REQUIRE(shares.size() == 2);
    // b owns only (300, 100] wrapping: 2^64 - 200 positions.
    CHECK(shares[1] == Approx(1.0 - 200.0 / 18446744073709551616.0));
}

TEST_CASE("RangeSet answers membership for plain, wrapping and whole-ring ranges") {
    RangeSet set;
    CHECK_FALSE(set.contains(5));
    set.add(Range{10, 20});  // (10, 20]
    CHECK_FALSE(set.contains(10));
    CHECK(set.contains(11));
    CHECK(set.contains(20));
    CHECK_FALSE(set.contains(21));
    set.add(Range{UINT64_MAX - 5, 3});  // wraps
    CHECK(set.contains(UINT64_MAX));
    CHECK(set.contains(0));
    CHECK(set.contains(3));
    CHECK_FALSE(set.contains(4));
    CHECK_FALSE(set.contains(UINT64_MAX - 5));
    set.add(Range{15, 30});  // overlaps (10, 20]: the union is (10, 30]
    CHECK(set.contains(25));
    CHECK(set.contains(12));
    CHECK_FALSE(set.contains(31));
    RangeSet whole;
    whole.add(Range{7, 7});
    CHECK(whole.contains(0));
    CHECK(whole.contains(7));
    CHECK(whole.contains(UINT64_MAX));
}

TEST_CASE("RangeSet covers ranges inside one interval and lists itself as disjoint ranges") {
    RangeSet set;
    set.add(Range{100, 200});
    set.add(Range{150, 300});  // overlaps: joined
    set.add(Range{UINT64_MAX - 10, 5});
    CHECK(set.covers(Range{100, 300}));
    CHECK(set.covers(Range{120, 130}));
    CHECK_FALSE(set.covers(Range{99, 130}));
    CHECK(set.covers(Range{UINT64_MAX - 5, 2}));
    CHECK_FALSE(set.covers(Range{UINT64_MAX - 20, 2}));
    CHECK_FALSE(set.covers(Range{7, 7}));  // the whole ring
    const std::vector<Range> listed = set.ranges();
    CHECK(listed.size() == 3);
    RangeSet rebuilt;
    for (const auto& r : listed) rebuilt.add(r);
    CHECK(rebuilt.ranges() == listed);
    for (uint64_t h : {uint64_t{0}, uint64_t{5}, uint64_t{6}, uint64_t{100}, uint64_t{101},
                       uint64_t{300}, uint64_t{301}, UINT64_MAX - 10, UINT64_MAX}) {
        INFO(h);
        CHECK(rebuilt.contains(h) == set.contains(h));
    }
    RangeSet whole;
    whole.add(Range{9, 9});
    CHECK(whole.covers(Range{3, 3}));
    REQUIRE(whole.ranges().size() == 1);
    CHECK(whole.ranges()[0].start == whole.ranges()[0].end);  // encodes the whole ring
}
