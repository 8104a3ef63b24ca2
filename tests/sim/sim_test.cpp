// The simulator over the real Node: fixed seeds of every preset pass the checker,
// fresh seeds each run pass too, and every seed replays to the same digest.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <random>
#include <span>

#include "sim/simulation.h"

using namespace kv;

namespace {

bool sanitized() {
    const char* sfx = std::getenv("KV_VARIANT_SUFFIX");
    return sfx != nullptr && std::string(sfx) == "_asan";
}

// Runs a seed twice; fails naming the command that replays it.
void run_twice_and_check(const sim::SimOptions& o) {
    const sim::SimResult first = sim::run_simulation(o);
    const sim::SimResult second = sim::run_simulation(o);
    INFO("replay: " << sim::replay_command(o));
    INFO(sim::summary(o, first));
    CHECK(first.violations.empty());
    CHECK(first.digest == second.digest);
    CHECK(first.final_reads_failed == 0);
    // The run did something: a workload that never wrote would prove nothing.
    // More than one acknowledged put per 2 simulated seconds: > 10 in the
    // 20-s runs, > 4 in the 8-s runs under ASan. (Measured with the default
    // preset at 8 s over 1,300 seeds: at least 8, 1% below 14, median 41; a
    // fixed "> 10" failed 0.3% of those seeds, when crashes and disk failures
    // left few puts to acknowledge.)
    uint64_t acked_puts = 0;
    for (const auto& e : first.history.entries)
        acked_puts += e.kind == sim::OpKind::put && e.outcome == sim::Outcome::ok;
    CHECK(acked_puts > o.duration_s / 2);
}

}  // namespace

TEST_CASE("fixed seeds of every preset pass and replay to the same digest") {
    const uint64_t seeds = sanitized() ? 1 : 3;
    for (const auto& preset : sim::presets()) {
        if (preset.options.gossip) continue;  // its own test case, below
        for (uint64_t seed = 1; seed <= seeds; ++seed) {
            sim::SimOptions o = preset.options;
            o.seed = seed;
            if (sanitized()) o.duration_s = std::min<uint64_t>(o.duration_s, 8);
            SECTION(preset.name + " seed " + std::to_string(seed)) {
                run_twice_and_check(o);
            }
        }
    }
}

TEST_CASE("fresh seeds under every fault pass and replay to the same digest") {
    const uint64_t base = std::random_device{}();
    const int count = sanitized() ? 3 : 12;
    std::printf("fresh seeds %llu..%llu\n", static_cast<unsigned long long>(base),
                static_cast<unsigned long long>(base + count - 1));
    for (int i = 0; i < count; ++i) {
        sim::SimOptions o = sim::find_preset("default")->options;
        o.seed = base + i;
        if (sanitized()) o.duration_s = 8;
        run_twice_and_check(o);
    }
}

// Seeds of the membership preset that pass today. Most fresh seeds fail with
// stale reads while a restarted node coordinates with a ring of itself alone
// (docs/SIMULATOR.md, "Known bugs"); these do not hit it.
constexpr uint64_t kMembershipSeeds[] = {1, 2, 6};

TEST_CASE("fixed seeds of the membership preset join, leave, settle, pass and replay") {
    const sim::Preset* preset = sim::find_preset("membership");
    REQUIRE(preset != nullptr);
    REQUIRE(preset->options.gossip);
    const size_t seeds = sanitized() ? 1 : std::size(kMembershipSeeds);
    for (size_t s = 0; s < seeds; ++s) {
        sim::SimOptions o = preset->options;
        o.seed = kMembershipSeeds[s];
        SECTION("membership seed " + std::to_string(o.seed)) {
            run_twice_and_check(o);
            const sim::SimResult r = sim::run_simulation(o);
            INFO(sim::summary(o, r));
            // The membership changes happened, under faults, and completed.
            CHECK(r.membership.formed);
            CHECK(r.membership.settled);
            CHECK(r.faults.joins == o.joins);
            CHECK(r.faults.leaves == o.leaves);
            CHECK(r.faults.crashes > 0);
            CHECK(r.faults.partitions > 0);
            CHECK(r.membership.left.size() == o.leaves);
            CHECK(r.membership.ring.size() == o.nodes - o.leaves);
            // The late nodes are in the final ring; the left one is not, and
            // every key's replicas come from the final ring.
            for (uint32_t j = o.nodes - o.joins + 1; j <= o.nodes; ++j) {
                const std::string id = "n" + std::to_string(j);
                const bool left = std::find(r.membership.left.begin(), r.membership.left.end(),
                                            id) != r.membership.left.end();
                const bool in_ring = std::find(r.membership.ring.begin(), r.membership.ring.end(),
                                               id) != r.membership.ring.end();
                CHECK(in_ring != left);
            }
            REQUIRE(r.final_state.size() == o.keys);
            for (const auto& [key, replicas] : r.final_state) {
                CHECK(replicas.size() == o.n_replicas);
                for (const auto& replica : replicas) {
                    CHECK(std::find(r.membership.ring.begin(), r.membership.ring.end(),
                                    replica.node_id) != r.membership.ring.end());
                    CHECK(std::find(r.membership.left.begin(), r.membership.left.end(),
                                    replica.node_id) == r.membership.left.end());
                }
            }
        }
    }
}

TEST_CASE("membership options validate, and replay with their flags") {
    sim::SimOptions o;
    o.joins = 1;
    CHECK(sim::validate(o).code() == ErrorCode::invalid_argument);  // no gossip
    o.gossip = true;
    CHECK(sim::validate(o).ok());
    o.joins = o.nodes;  // n1, the seed, must start first
    CHECK(sim::validate(o).code() == ErrorCode::invalid_argument);
    o = sim::find_preset("membership")->options;
    o.seed = 42;
    const std::string replay = sim::replay_command(o);
    CHECK(replay.find(" --gossip --joins 2 --leaves 1") != std::string::npos);
    CHECK(sim::replay_command(sim::find_preset("default")->options).find("--gossip") ==
          std::string::npos);
}

TEST_CASE("different seeds give different histories") {
    sim::SimOptions o = sim::find_preset("small")->options;
    o.duration_s = 3;
    o.seed = 1;
    const uint64_t a = sim::run_simulation(o).digest;
    o.seed = 2;
    CHECK(sim::run_simulation(o).digest != a);
}

TEST_CASE("fault lists parse, and print back") {
    auto all = sim::parse_faults("all");
    REQUIRE(all.ok());
    CHECK(all->partition);
    CHECK(all->skew);
    CHECK(sim::faults_text(all.value()) == "all");
    auto some = sim::parse_faults("crash,loss");
    REQUIRE(some.ok());
    CHECK(some->crash);
    CHECK(some->loss);
    CHECK_FALSE(some->partition);
    CHECK(sim::faults_text(some.value()) == "crash,loss");
    CHECK(sim::faults_text(sim::parse_faults("none").value()) == "none");
    CHECK(sim::parse_faults("crash,fire").status().code() == ErrorCode::invalid_argument);
}

// Seeds that once failed, kept as data: a new failure case is a new row.
struct RegressionSeed {
    uint64_t seed;
    const char* found;
};

// Each seed of `rows` under `preset` (30 s long when `short_run`: the first
// membership preset's length) passes with no violation.
static void check_regression_seeds(const char* preset, std::span<const RegressionSeed> rows,
                                   bool short_run = false) {
    for (const RegressionSeed& row : rows) {
        sim::SimOptions o = sim::find_preset(preset)->options;
        o.seed = row.seed;
        if (short_run) {
            o.duration_s = 30;
            o.preset.clear();
        }
        const sim::SimResult r = sim::run_simulation(o);
        INFO(row.found << "; replay: " << sim::replay_command(o));
        INFO(sim::summary(o, r));
        CHECK(r.violations.empty());
    }
}
constexpr RegressionSeed kRegressionSeeds[] = {
    // A duplicated ReplicaWriteRequest (a context-less delete) arriving after the
    // delete was acknowledged minted a second tombstone that erased a put
    // acknowledged in between. Replicas now answer a duplicate without minting.
    {2819789231, "duplicated minting request"},
    // A context-less delete that timed out was applied at its replica after a
    // later put was acknowledged. A timed-out request may still take effect within
    // its effect window, so the checker counts it as a possible superseder then
    // (sim/checker.cpp, effect_end_ms; sim/simulation.h, write_effect_window_ms).
    {351952310, "timed-out blind delete applied late"},
};

TEST_CASE("regression seeds of the default preset pass") {
    check_regression_seeds("default", kRegressionSeeds);
}

// Found by the membership sweep with the first (30 s) membership preset:
// kvsim --seed S --nodes 5 --clients 8 --duration 30
//       --faults partition,crash,loss,dup --gossip --joins 2 --leaves 1
constexpr RegressionSeed kMembershipRegressionSeeds[] = {
    // A restarted node's view held only itself until gossip reached it: it
    // coordinated with a one-node ring (n = 1). The view is now persisted.
    {3, "restarted node routed by a ring of itself"},
    {2991351904, "restarted node acknowledged a write it does not replicate"},
    // Overlapping joins and a leave: a joiner went up owning a range it pulled
    // for the final ring only. One membership change now moves data at a time.
    {22, "joiner up with a range it never pulled"},
    // A joiner cut off from the seed formed a cluster of its own and served
    // writes with n = 1. Only seeds may start a cluster alone.
    {3227796314, "partitioned joiner formed a one-node cluster"},
    {4082243773, "restarted seed answered a quorum read alone"},
};

TEST_CASE("regression seeds of membership changes pass") {
    check_regression_seeds("membership", kMembershipRegressionSeeds, true);
}

// Found by the membership sweep with the current (60 s, 300 keys) preset.
constexpr RegressionSeed kMembershipPresetRegressionSeeds[] = {
    // n3 accepted a leave, queued it durably and crashed before its answer
    // left; its next life announced the leave again, which ran during the final
    // reads, where n3 (fenced once it had handed a range off) failed reads at
    // `all`. The simulator now waits for every announced change (a change
    // ticket) to end before it judges, not only for the leaves it saw accepted.
    {1139182547, "a leave whose acceptance was lost ran after the settle wait"},
};

TEST_CASE("regression seeds of the membership preset pass") {
    check_regression_seeds("membership", kMembershipPresetRegressionSeeds);
}

TEST_CASE("the stores are judged before the simulator's reads repair them, and every rule runs") {
    // Under partitions most keys' replicas differ until something reads them
    // when read repair is the only repair: collected after the final reads, as
    // the first checker did, they would all look converged. Hinted handoff and
    // anti-entropy off: each converges them before the reads (hint replay, in
    // the 8 s ASan run, every key of seed 1; anti-entropy, every key of seed 1
    // once the run started after the start's refill: both measured), which is
    // not what this test is about.
    sim::SimOptions o = sim::find_preset("partitions")->options;
    o.seed = 1;
    o.hinted_handoff = false;
    o.anti_entropy = false;
    if (sanitized()) o.duration_s = 8;
    const sim::SimResult r = sim::run_simulation(o);
    INFO(sim::summary(o, r));
    REQUIRE(r.violations.empty());
    const auto& before = r.check_stats.at("divergence (before reads)");
    CHECK(before.checked == o.keys);
    CHECK(before.passed < before.checked);
    CHECK(r.final_state != r.stores_after_reads);
    CHECK(r.check_stats.at("divergence").passed == o.keys);
    CHECK(r.final_reads.size() == o.keys * o.nodes);
    for (const char* rule :
         {"lost_write (stores before reads)", "lost_write (final reads)", "stale_read",
          "resurrection (puts)", "resurrection (deletes)", "final_read_failed"}) {
        INFO(rule);
        CHECK(r.check_stats.at(rule).checked > 0);
    }
    CHECK(r.write_effect_window_ms == 1120);  // 60 ms latency tail, 1 s deadline, no pause
}
