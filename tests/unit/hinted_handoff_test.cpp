// Sloppy quorums and hinted handoff (docs/ARCHITECTURE.md, "Hinted handoff"),
// on simulated clusters of the real node: stand-ins count toward w and r,
// `strict` counts home replicas only, hints reach the home replicas once
// they are back without any read, and a write no home replica can mint gets
// a dot no one else ever minted.
#include <catch2/catch.hpp>

#include <algorithm>

#include "node/data/object.h"
#include "node/membership/placement.h"
#include "tests/unit/sim_calls.h"

using namespace kv;
using namespace kv::test;

namespace {

size_t index_of(const sim::Cluster& c, const std::string& id) {
    for (size_t i = 0; i < c.size(); ++i) {
        if (c.node_id(i) == id) return i;
    }
    FAIL("no node " << id);
    return 0;
}

// The key's home replicas (as node 0's ring has them), by cluster index.
std::vector<size_t> homes_of(sim::Cluster& c, const std::string& key) {
    std::vector<size_t> out;
    for (const auto& id : c.node(0).ring().preference_list(key, 3)) out.push_back(index_of(c, id));
    return out;
}

// A node that is not a home replica of the key, to coordinate.
size_t outsider(sim::Cluster& c, const std::string& key) {
    const auto homes = homes_of(c, key);
    for (size_t i = 0; i < c.size(); ++i) {
        if (std::find(homes.begin(), homes.end(), i) == homes.end()) return i;
    }
    FAIL("every node is a home replica");
    return 0;
}

uint64_t hints_in_cluster(sim::Cluster& c) {
    uint64_t total = 0;
    for (size_t i = 0; i < c.size(); ++i) {
        if (c.is_up(i)) total += c.node(i).hints_held().keys;
    }
    return total;
}

proto::Consistency strict(proto::Level l) {
    return proto::Consistency{l, 0, true};
}

}  // namespace

TEST_CASE("with two home replicas down a quorum put uses stand-ins; strict fails naming counts") {
    sim::Cluster c(options(5));
    const std::string key = "k";
    const auto homes = homes_of(c, key);
    const size_t coordinator = outsider(c, key);
    c.crash(homes[1]);
    c.crash(homes[2]);
    c.run_for(4000);  // past peer_down_after_ms: both are known unreachable

    auto sloppy = put(c, coordinator, key, "v1");
    INFO(sloppy.message);
    REQUIRE(sloppy.code == ErrorCode::ok);
    CHECK(sloppy.info.stand_in_used);
    CHECK(sloppy.info.replicas_answered >= 2);

    auto strict_put = put(c, coordinator, key, "v2", strict(proto::Level::quorum));
    CHECK(strict_put.code == ErrorCode::unavailable);
    CHECK_THAT(strict_put.message, Catch::Contains("strict quorum") &&
                                       Catch::Contains("only 1 of 3 home replicas reachable"));
    auto strict_get = get(c, coordinator, key, strict(proto::Level::quorum));
    CHECK(strict_get.code == ErrorCode::unavailable);

    // A sloppy read counts the stand-ins, which answer from their hints.
    auto read = get(c, coordinator, key);
    REQUIRE(read.code == ErrorCode::ok);
    CHECK(read.values == Values{"v1"});
    CHECK(read.info.stand_in_used);
    CHECK(hints_in_cluster(c) >= 2);

    // Back: the hints reach both homes with no read in between, and are gone.
    c.restart(homes[1]);
    c.restart(homes[2]);
    REQUIRE(c.run_until([&] { return hints_in_cluster(c) == 0; }, 10000));
    for (size_t h : homes) {
        INFO("home " << c.node_id(h));
        CHECK(local_get(c, h, key).values == Values{"v1"});
    }
    CHECK(get(c, coordinator, key, strict(proto::Level::all)).values == Values{"v1"});
}

TEST_CASE("with hinted handoff off, every quorum is strict and no hint is kept") {
    sim::ClusterOptions o = options(5);
    o.node_config.hinted_handoff = false;
    sim::Cluster c(o);
    const auto homes = homes_of(c, "k");
    const size_t coordinator = outsider(c, "k");
    c.crash(homes[1]);
    c.crash(homes[2]);
    c.run_for(4000);
    auto w = put(c, coordinator, "k", "v");
    CHECK(w.code == ErrorCode::unavailable);
    CHECK_THAT(w.message, Catch::Contains("only 1 of 3 home replicas reachable"));
    REQUIRE(put(c, coordinator, "k", "v", level(proto::Level::one)).code == ErrorCode::ok);
    CHECK(hints_in_cluster(c) == 0);
}

TEST_CASE(
    "writes no home replica can mint get the stand-in actor of a life, new dots, and reach the "
    "homes") {
    sim::Cluster c(options(5));
    const std::string key = "k";
    const auto homes = homes_of(c, key);
    const size_t coordinator = outsider(c, key);
    for (size_t h : homes) c.crash(h);
    c.run_for(4000);
    // Two stand-ins are left for three homes: one home stays uncovered.
    auto w1 = put(c, coordinator, key, "a", level(proto::Level::two));
    INFO(w1.message);
    REQUIRE(w1.code == ErrorCode::ok);
    CHECK(w1.info.stand_in_used);
    // A second blind write, minted the same way, must not reuse the dot.
    auto w2 = put(c, coordinator, key, "b", level(proto::Level::one));
    REQUIRE(w2.code == ErrorCode::ok);
    for (size_t h : homes) c.restart(h);
    REQUIRE(c.run_until([&] { return hints_in_cluster(c) == 0; }, 15000));
    // Every home holds both as siblings: two distinct dots of the first
    // stand-in's actor of this life, counters 1 and 2.
    for (size_t h : homes) {
        INFO("home " << c.node_id(h));
        auto local = local_get(c, h, key);
        std::vector<std::string> values = local.values;
        std::sort(values.begin(), values.end());
        CHECK(values == Values{"a", "b"});
    }
    auto got = get(c, coordinator, key, strict(proto::Level::all));
    auto ctx = node::decode_context(got.context);
    REQUIRE(ctx.ok());
    size_t stand_in_actors = 0;
    for (const auto& [actor, counter] : ctx->entries()) {
        if (actor.find('~') != std::string::npos) {
            ++stand_in_actors;
            CHECK(counter == 2);
        }
    }
    CHECK(stand_in_actors == 1);
    CHECK(ctx->exception_count() == 0);
}

TEST_CASE(
    "a home replica that missed a write gets it from the coordinator's hint, no read needed") {
    // Three nodes: no member is left to stand in, so the coordinator keeps the hint.
    sim::Cluster c(options(3));
    REQUIRE(put(c, 0, "k", "v1").code == ErrorCode::ok);
    c.crash(2);
    c.run_for(4000);
    auto w = put(c, 0, "k", "v2", level(proto::Level::quorum), get(c, 0, "k").context);
    REQUIRE(w.code == ErrorCode::ok);
    CHECK_FALSE(w.info.stand_in_used);
    CHECK(c.node(0).hints_held().keys == 1);
    c.restart(2);
    REQUIRE(c.run_until([&] { return hints_in_cluster(c) == 0; }, 10000));
    CHECK(local_get(c, 2, "k").values == Values{"v2"});
}
