// The larger sweep (label "sweep"): fresh seeds of 5 nodes under every fault,
// each run twice with the digests compared. KV_SIM_SWEEP_SEEDS overrides the count.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <random>

#include "sim/simulation.h"

using namespace kv;

TEST_CASE("a sweep of fresh seeds under every fault passes, each replaying to the same digest") {
    const char* sfx = std::getenv("KV_VARIANT_SUFFIX");
    const bool sanitized = sfx != nullptr && std::string(sfx) == "_asan";
    int count = sanitized ? 20 : 200;
    if (const char* env = std::getenv("KV_SIM_SWEEP_SEEDS")) count = std::atoi(env);
    const uint64_t base = std::random_device{}();
    std::printf("sweep: %d fresh seeds from %llu\n", count, static_cast<unsigned long long>(base));
    int failed = 0;
    for (int i = 0; i < count; ++i) {
        sim::SimOptions o = sim::find_preset("default")->options;
        o.seed = base + static_cast<uint64_t>(i);
        const sim::SimResult first = sim::run_simulation(o);
        const sim::SimResult second = sim::run_simulation(o);
        if (first.violations.empty() && first.digest == second.digest &&
            first.final_reads_failed == 0)
            continue;
        ++failed;
        std::printf("FAILED: %s\n%s", sim::replay_command(o).c_str(),
                    sim::summary(o, first).c_str());
        if (first.digest != second.digest) std::printf("  nondeterministic: digests differ\n");
    }
    CHECK(failed == 0);
}
