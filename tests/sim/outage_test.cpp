// Sloppy quorums under long outages of home replicas (preset `outage`): over
// fixed seeds, a larger share of sloppy puts is acknowledged than of strict
// ones (stand-ins count toward w), and strict reads at r + w > n never miss an
// acknowledged strict write (the stale_read rule, which binds strict pairs
// only, flags nothing and did check some pairs). The preset `outage-replay`
// converges from hint replay alone, judged before any read of the simulator's.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "sim/simulation.h"

using namespace kv;

namespace {

bool sanitized() {
    const char* sfx = std::getenv("KV_VARIANT_SUFFIX");
    return sfx != nullptr && std::string(sfx) == "_asan";
}

struct PutCounts {
    uint64_t sent = 0;
    uint64_t acked = 0;
    uint64_t acked_with_stand_in = 0;
};

}  // namespace

TEST_CASE("outage: sloppy puts stay available where strict ones do not; strict reads stay fresh") {
    const sim::Preset* preset = sim::find_preset("outage");
    REQUIRE(preset != nullptr);
    const uint64_t seeds = sanitized() ? 2 : 6;
    PutCounts strict, sloppy;
    uint64_t strict_pairs = 0;
    for (uint64_t seed = 1; seed <= seeds; ++seed) {
        sim::SimOptions o = preset->options;
        o.seed = seed;
        const sim::SimResult r = sim::run_simulation(o);
        INFO("replay: " << sim::replay_command(o));
        INFO(sim::summary(o, r));
        CHECK(r.violations.empty());
        CHECK(r.faults.outages > 0);
        for (const auto& e : r.history.entries) {
            if (e.kind != sim::OpKind::put) continue;
            PutCounts& c = e.strict ? strict : sloppy;
            ++c.sent;
            if (e.outcome != sim::Outcome::ok) continue;
            ++c.acked;
            c.acked_with_stand_in += e.stand_in_used;
            // A strict put never counts a stand-in.
            CHECK(!(e.strict && e.stand_in_used));
        }
        const sim::RuleStats& stale = r.check_stats.at("stale_read");
        uint64_t sloppy_pairs = 0;
        for (const auto& [reason, count] : stale.excused) {
            if (reason.find("not strict") != std::string::npos) sloppy_pairs += count;
        }
        CHECK(stale.violated == 0);
        strict_pairs += stale.checked - sloppy_pairs;
    }
    const double strict_share =
        strict.sent == 0 ? 0 : static_cast<double>(strict.acked) / static_cast<double>(strict.sent);
    const double sloppy_share =
        sloppy.sent == 0 ? 0 : static_cast<double>(sloppy.acked) / static_cast<double>(sloppy.sent);
    std::printf(
        "outage, seeds 1..%llu: strict puts acknowledged %llu of %llu (%.1f%%), sloppy %llu of "
        "%llu (%.1f%%, %llu with a stand-in's ack); strict (get, put) pairs judged by "
        "stale_read: %llu\n",
        static_cast<unsigned long long>(seeds), static_cast<unsigned long long>(strict.acked),
        static_cast<unsigned long long>(strict.sent), 100 * strict_share,
        static_cast<unsigned long long>(sloppy.acked), static_cast<unsigned long long>(sloppy.sent),
        100 * sloppy_share, static_cast<unsigned long long>(sloppy.acked_with_stand_in),
        static_cast<unsigned long long>(strict_pairs));
    CHECK(strict.sent > 100);
    CHECK(sloppy.sent > 100);
    // By a margin: with hinted handoff off (every request strict) the two
    // shares differ by chance only (70.3% and 71.8% over these seeds); with
    // it, by 13 points (67.3% and 80.5%).
    CHECK(sloppy_share > strict_share + 0.05);
    CHECK(sloppy.acked_with_stand_in > 0);
    CHECK(strict_pairs > 100);
}

TEST_CASE("outage-replay: home replicas converge from hint replay alone, before any read") {
    const sim::Preset* preset = sim::find_preset("outage-replay");
    REQUIRE(preset != nullptr);
    REQUIRE(sim::convergence_judgeable(preset->options));
    const uint64_t seeds = sanitized() ? 1 : 3;
    uint64_t hints = 0;
    for (uint64_t seed = 1; seed <= seeds; ++seed) {
        sim::SimOptions o = preset->options;
        o.seed = seed;
        const sim::SimResult r = sim::run_simulation(o);
        INFO("replay: " << sim::replay_command(o));
        INFO(sim::summary(o, r));
        CHECK(r.violations.empty());
        CHECK(r.hints_drained);
        const sim::RuleStats& before = r.check_stats.at("divergence (before reads)");
        CHECK(before.checked == o.keys);
        CHECK(before.passed == o.keys);  // judged, none excused
        hints += r.hints_at_quiet;
    }
    std::printf("outage-replay, seeds 1..%llu: %llu hints held when the faults stopped\n",
                static_cast<unsigned long long>(seeds), static_cast<unsigned long long>(hints));
    // Hints were there to replay: convergence came from them, not from quiet.
    CHECK(hints > 0);
}

TEST_CASE("convergence before reads is judged only where the run makes it sound") {
    sim::SimOptions o = sim::find_preset("outage-replay")->options;
    CHECK(sim::convergence_judgeable(o));
    // Each of these can leave a version on fewer home replicas than no hint covers.
    for (const char* fault :
         {"loss", "partition", "pause", "dup", "skew", "unsynced", "diskfail"}) {
        sim::SimOptions f = o;
        f.faults = sim::parse_faults(std::string("outage,") + fault).value();
        CHECK_FALSE(sim::convergence_judgeable(f));
    }
    sim::SimOptions any_coordinator = o;
    any_coordinator.steady_nodes = 0;
    CHECK_FALSE(sim::convergence_judgeable(any_coordinator));
    sim::SimOptions no_hints = o;
    no_hints.hinted_handoff = false;
    CHECK_FALSE(sim::convergence_judgeable(no_hints));
    CHECK_FALSE(sim::convergence_judgeable(sim::find_preset("outage")->options));
    CHECK_FALSE(sim::convergence_judgeable(sim::find_preset("default")->options));
}
