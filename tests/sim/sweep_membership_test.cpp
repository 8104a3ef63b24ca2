// The membership sweep (label "sweep"): fresh seeds of the membership preset
// (gossip, nodes joining and leaving under crashes, partitions, loss and
// duplication), each run twice with the digests compared.
// KV_SIM_SWEEP_SEEDS overrides the count.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <random>

#include "sim/simulation.h"

using namespace kv;

TEST_CASE("a sweep of fresh seeds joining and leaving under faults passes, each replaying") {
    const char* sfx = std::getenv("KV_VARIANT_SUFFIX");
    const bool sanitized = sfx != nullptr && std::string(sfx) == "_asan";
    int count = sanitized ? 20 : 200;
    if (const char* env = std::getenv("KV_SIM_SWEEP_SEEDS")) count = std::atoi(env);
    const uint64_t base = std::random_device{}();
    std::printf("membership sweep: %d fresh seeds from %llu\n", count,
                static_cast<unsigned long long>(base));
    int failed = 0;
    int with_leaves = 0;
    for (int i = 0; i < count; ++i) {
        sim::SimOptions o = sim::find_preset("membership")->options;
        o.seed = base + static_cast<uint64_t>(i);
        const sim::SimResult first = sim::run_simulation(o);
        const sim::SimResult second = sim::run_simulation(o);
        // Every late node starts; a leave needs n + 1 members and a member up,
        // which joiners slowed by crashes can deny it until the workload ends.
        const bool joined = first.faults.joins == o.joins;
        with_leaves += first.faults.leaves == o.leaves;
        if (first.violations.empty() && first.digest == second.digest &&
            first.final_reads_failed == 0 && joined)
            continue;
        ++failed;
        std::printf("FAILED: %s\n%s", sim::replay_command(o).c_str(),
                    sim::summary(o, first).c_str());
        if (first.digest != second.digest) std::printf("  nondeterministic: digests differ\n");
        if (!joined) std::printf("  the late nodes did not all start\n");
    }
    std::printf("membership sweep: %d of %d seeds failed; %d had every leave\n", failed, count,
                with_leaves);
    CHECK(failed == 0);
    // The sweep must keep testing leaves, not just joins. A leave queues
    // behind a join under way, and joins stalled by crashes can hold it off
    // until the workload ends: 183 and 186 of 200 seeds (92%, 93%) had theirs. 60% keeps a
    // 20-seed ASan sweep from failing by chance (80% failed 15 of 20 once)
    // while a sweep that stopped leaving would still fail.
    CHECK(with_leaves * 10 >= count * 6);
}
