// Linked against kv_sim_mutants: the real node sources built with KV_MUTANTS
// (node/mutant.h), with the planted bug early_ack switched on (a coordinator
// that acknowledges a write once the minting replica has it, whatever w asked).
// The simulator must catch it, and name it: a read that the levels promised
// would see the write did not. `ctest -L mutants` runs the whole catalogue.
#include <catch2/catch.hpp>

#include "node/mutant.h"
#include "sim/simulation.h"

using namespace kv;

TEST_CASE("the simulator catches a coordinator that acknowledges writes early") {
    mutant::active = mutant::Mutant::early_ack;
    int flagged = 0;
    // Measured with the workload and faults of issue 10 (diskfail and unsynced
    // in `all`, replica budgets, writer contexts): 18 of seeds 1-40 flag a
    // stale read, 7 of 1-16. Before them, at least 4 of 8 did. Since issue 12
    // stale_read binds only strict pairs; with the presets' 700 per mille
    // strict, 9 of 1-16 flagged it before the node had sloppy quorums, 6 of
    // 1-16 with them (and every seed flags ack_copies, which this test does
    // not count); 4 of 1-16 since `unsynced` pipelines commits as kvnode's
    // writer does (SIMULATOR.md). The bound asks for a quarter over 16 seeds;
    // `ctest -L mutants` separately requires a catch of every planted bug
    // within its seed budget.
    const int seeds = 16;
    std::string first_summary;
    for (int seed = 1; seed <= seeds; ++seed) {
        sim::SimOptions o = sim::find_preset("default")->options;
        o.seed = static_cast<uint64_t>(seed);
        o.duration_s = 10;
        o.blind_deletes = false;  // only the planted bug may be found
        const sim::SimResult r = sim::run_simulation(o);
        bool stale = false;
        for (const auto& v : r.violations)
            stale = stale || v.kind == sim::ViolationKind::stale_read;
        if (stale) ++flagged;
        if (seed == 1) first_summary = sim::summary(o, r);
    }
    mutant::active = mutant::Mutant::none;
    INFO(first_summary);
    INFO(flagged << " of " << seeds << " seeds flagged a stale read");
    CHECK(flagged >= seeds / 4);
}
