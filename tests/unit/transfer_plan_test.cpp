// What moves where between two rings (node/rebalance/transfer_plan.h), ring
// digests (node/membership/placement.h), and the staged overlay of
// BufferedEnv::scan that stream pages read through.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <set>

#include "gossip/token_claim.h"
#include "node/buffered_env.h"
#include "node/membership/placement.h"
#include "node/rebalance/transfer_plan.h"
#include "ring/range_set.h"

using namespace kv;
using namespace kv::node;
using kv::ring::RangeSet;

namespace {

ring::Ring claimed_ring(const std::vector<std::string>& ids, uint32_t vnodes) {
    std::vector<gossip::NodeTokens> claimed;
    for (const auto& id : ids) {
        claimed.push_back(gossip::NodeTokens{id, gossip::claim_tokens(claimed, id, vnodes, 3)});
    }
    std::vector<std::pair<std::string, std::vector<uint64_t>>> input;
    for (auto& n : claimed) input.emplace_back(n.id, n.tokens);
    return ring::Ring::from_tokens(input);
}

ring::Ring without(const ring::Ring& r, const std::string& id) {
    std::map<std::string, std::vector<uint64_t>> tokens;
    for (const auto& t : r.tokens()) {
        if (r.nodes()[t.node_index] != id) tokens[r.nodes()[t.node_index]].push_back(t.position);
    }
    return ring::Ring::from_tokens({tokens.begin(), tokens.end()});
}

bool has(const std::vector<std::string>& ids, const std::string& id) {
    return std::find(ids.begin(), ids.end(), id) != ids.end();
}

}  // namespace

TEST_CASE("a joiner pulls exactly what it gains, each range from the replica it displaces") {
    const ring::Ring before = claimed_ring({"a", "b", "c", "d", "e"}, 32);
    const ring::Ring after = claimed_ring({"a", "b", "c", "d", "e", "f"}, 32);
    const auto diff = ring::ownership_diff(before, after, 3);
    const auto plans = plan_inbound(diff, "f", 7);
    REQUIRE_FALSE(plans.empty());
    for (const auto& p : plans) CHECK(p.ranges.size() <= 7);
    // Sample keys: each key f now replicates is in exactly the plan of the
    // replica it displaced, and in no other; old members plan nothing.
    std::map<std::string, RangeSet> by_source;
    for (const auto& p : plans) {
        for (const auto& r : p.ranges) by_source[p.source].add(r);
    }
    size_t gained = 0;
    for (int k = 0; k < 20000; ++k) {
        const std::string key = "k" + std::to_string(k);
        const auto old_list = before.preference_list(key, 3);
        const auto new_list = after.preference_list(key, 3);
        const uint64_t h = ring::hash64(key);
        for (const auto& [source, set] : by_source) {
            const bool displaced = has(old_list, source) && !has(new_list, source);
            CHECK(set.contains(h) == (has(new_list, "f") && displaced));
        }
        gained += has(new_list, "f");
    }
    CHECK(gained > 20000 / 4);
    for (const std::string old : {"a", "b", "c", "d", "e"})
        CHECK(plan_inbound(diff, old, 7).empty());
    // The displaced side: what each old member gives up is what f pulls from it.
    for (const auto& [source, set] : by_source) {
        for (const auto& need : plan_outbound(diff, source)) {
            CHECK(need.target == "f");
            CHECK(set.contains(need.range.end));
        }
    }
}

TEST_CASE("a leaver's ranges are pulled from it by their new owners, and only from it") {
    const ring::Ring before = claimed_ring({"a", "b", "c", "d"}, 32);
    const ring::Ring after = without(before, "c");
    const auto diff = ring::ownership_diff(before, after, 3);
    std::set<std::string> pullers;
    for (const std::string id : {"a", "b", "d"}) {
        for (const auto& p : plan_inbound(diff, id, 256)) {
            CHECK(p.source == "c");
            pullers.insert(id);
        }
    }
    CHECK(pullers.size() == 3);
    size_t gives = 0;
    for (const auto& need : plan_outbound(diff, "c")) {
        CHECK(need.target != "c");
        ++gives;
    }
    CHECK(gives > 0);
    CHECK(plan_outbound(diff, "a").empty());
}

TEST_CASE(
    "a removed member's ranges are pulled from surviving replicas and handed to the remover") {
    // d is down for good and removed by a: the future ring is the ring
    // without d, as for a leave, but d cannot serve its ranges.
    const ring::Ring before = claimed_ring({"a", "b", "c", "d", "e"}, 32);
    const ring::Ring after = without(before, "d");
    const auto diff = ring::ownership_diff(before, after, 3);
    const RemovalPlan removal{"d", "a"};
    std::map<std::string, RangeSet> pulled_by;  // new owner -> ranges it pulls
    for (const std::string id : {"a", "b", "c", "e"}) {
        for (const auto& p : plan_inbound(diff, id, 7, &removal)) {
            CHECK(p.ranges.size() <= 7);
            CHECK(p.source != "d");
            CHECK(p.handoff_to == "a");
            for (const auto& r : p.ranges) {
                // The source held the range and keeps it: a surviving replica.
                CHECK(has(before.preference_list_for_hash(r.end, 3), p.source));
                CHECK(has(after.preference_list_for_hash(r.end, 3), p.source));
                pulled_by[id].add(r);
            }
        }
    }
    // Every key d replicated is pulled by exactly its new owner (the member
    // that takes d's place in its list), and by no one else.
    size_t moved = 0;
    for (int k = 0; k < 20000; ++k) {
        const std::string key = "k" + std::to_string(k);
        const auto old_list = before.preference_list(key, 3);
        const auto new_list = after.preference_list(key, 3);
        const uint64_t h = ring::hash64(key);
        for (const std::string id : {"a", "b", "c", "e"}) {
            const bool new_owner = has(new_list, id) && !has(old_list, id);
            CHECK(pulled_by[id].contains(h) == new_owner);
            CHECK(new_owner == (has(old_list, "d") && has(new_list, id) && !has(old_list, id)));
        }
        moved += has(old_list, "d");
    }
    CHECK(moved > 20000 / 4);
    // The remover waits for exactly those handoffs: the needs name every
    // range each new owner pulls, and no other.
    std::map<std::string, RangeSet> needed;
    for (const auto& need : plan_removal(diff, removal)) {
        CHECK(need.target != "d");
        needed[need.target].add(need.range);
    }
    for (int k = 0; k < 20000; ++k) {
        const uint64_t h = ring::hash64("k" + std::to_string(k));
        for (const std::string id : {"a", "b", "c", "e"}) {
            CHECK(needed[id].contains(h) == pulled_by[id].contains(h));
        }
    }
    // Without the removal, the same diff is a leave: every pull is from d.
    for (const auto& p : plan_inbound(diff, "b", 7)) {
        CHECK(p.source == "d");
        CHECK(p.handoff_to.empty());
    }
}

TEST_CASE("a removal plans no pull of a range no survivor holds") {
    // n = 1: d's ranges had no other replica; nothing can be copied and the
    // remover waits for no handoff of them.
    const ring::Ring before = claimed_ring({"a", "b", "d"}, 8);
    const ring::Ring after = without(before, "d");
    const auto diff = ring::ownership_diff(before, after, 1);
    const RemovalPlan removal{"d", "a"};
    REQUIRE_FALSE(diff.empty());
    for (const std::string id : {"a", "b"}) CHECK(plan_inbound(diff, id, 7, &removal).empty());
    CHECK(plan_removal(diff, removal).empty());
}

TEST_CASE("a ring growing below n pulls from a current replica for placement") {
    const ring::Ring before = claimed_ring({"a", "b"}, 8);
    const ring::Ring after = claimed_ring({"a", "b", "c"}, 8);
    const auto diff = ring::ownership_diff(before, after, 3);
    // c joins every key's list and displaces nobody: it copies every range
    // from one of the current replicas, which stay owners.
    RangeSet planned;
    for (const auto& p : plan_inbound(diff, "c", 256)) {
        CHECK((p.source == "a" || p.source == "b"));
        for (const auto& r : p.ranges) planned.add(r);
    }
    for (int k = 0; k < 1000; ++k) CHECK(planned.contains(ring::hash64("k" + std::to_string(k))));
    CHECK(plan_outbound(diff, "a").empty());
    CHECK(plan_outbound(diff, "b").empty());
}

TEST_CASE("ring digests agree exactly when both rings do") {
    const ring::Ring r4 = claimed_ring({"a", "b", "c", "d"}, 16);
    const ring::Ring r3 = without(r4, "d");
    CHECK(ring_digest(r3, r4) == ring_digest(claimed_ring({"a", "b", "c"}, 16), r4));
    CHECK(ring_digest(r3, r4) != ring_digest(r4, r4));
    CHECK(ring_digest(r3, r4) != ring_digest(r4, r3));
    CHECK(ring_digest(r3, r3) != ring_digest(r4, r4));
}

TEST_CASE("BufferedEnv::scan sees staged writes and erases, in key order") {
    auto store = make_memory_store();
    REQUIRE(store
                ->write({{Space::data, "b", std::string("stored-b")},
                         {Space::data, "d", std::string("stored-d")},
                         {Space::data, "f", std::string("stored-f")},
                         {Space::meta, "c", std::string("meta")}})
                .ok());
    struct Env final : BufferedEnv {
        using BufferedEnv::BufferedEnv;
        uint64_t now_ms() override { return 0; }
        uint64_t random_u64() override { return 4; }
        void log(LogLevel, std::string_view) override {}
    } env(*store);
    env.stage_write({Space::data, "a", std::string("staged-a")});
    env.stage_write({Space::data, "d", std::nullopt});
    env.stage_write({Space::data, "e", std::string("staged-e")});
    env.stage_write({Space::data, "f", std::string("staged-f")});
    auto scan = [&](std::string_view from, size_t limit) {
        std::vector<std::string> seen;
        REQUIRE(env.scan(Space::data, from, limit,
                         [&](std::string_view k, std::string_view v) {
                             seen.push_back(std::string(k) + "=" + std::string(v));
                             return true;
                         })
                    .ok());
        return seen;
    };
    CHECK(scan("", 100) ==
          std::vector<std::string>{"a=staged-a", "b=stored-b", "e=staged-e", "f=staged-f"});
    CHECK(scan("c", 100) == std::vector<std::string>{"e=staged-e", "f=staged-f"});
    CHECK(scan("", 2) == std::vector<std::string>{"a=staged-a", "b=stored-b"});
    // Paging from the last key visited covers everything exactly once.
    std::vector<std::string> paged;
    std::string from;
    for (int page = 0; page < 10; ++page) {
        std::vector<std::string> got = scan(from, 2);
        for (const auto& kv : got) {
            if (kv.substr(0, kv.find('=')) != from) paged.push_back(kv);
        }
        if (got.size() < 2) break;
        from = got.back().substr(0, got.back().find('='));
    }
    CHECK(paged ==
          std::vector<std::string>{"a=staged-a", "b=stored-b", "e=staged-e", "f=staged-f"});
}
