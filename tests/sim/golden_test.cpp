// Golden digests: fixed seeds of every preset must replay to the digests recorded
// here. A change to node/, sim/ or the workload that alters any of them changes
// behaviour; such a change updates this table in the same commit and says why
// in its message. A pure restructure (moving code, renaming) leaves it as is.
//
// Each digest covers the client-visible history (every request, its timing and
// its answer) and the final stored object of every replica of every key, so a
// change that alters what the replicas hold is caught even when no client saw it.
//
// To print the table for the current code (when a change is deliberate):
//   KV_GOLDEN_PRINT=1 build/bin/sim_golden_test
#include <catch2/catch.hpp>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "node/data/object.h"
#include "ring/ring.h"
#include "sim/simulation.h"

using namespace kv;

namespace {

struct GoldenRow {
    const char* preset;
    uint64_t seed;
    uint64_t digest;
};

// Recorded at b9ecd2f, before node/ was split into components (issue 9).
constexpr GoldenRow kGolden[] = {
#include "golden_digests.inc"
};

bool sanitized() {
    const char* sfx = std::getenv("KV_VARIANT_SUFFIX");
    return sfx != nullptr && std::string(sfx) == "_asan";
}

// The history digest and every replica's final object, hashed together.
uint64_t golden_digest(const sim::SimResult& r) {
    std::string bytes = std::to_string(r.digest) + "|";
    for (const auto& [key, replicas] : r.final_state) {
        bytes += key + "{";
        for (const auto& replica : replicas) {
            bytes += replica.node_id + "=";
            bytes += replica.object ? node::encode_object(*replica.object) : std::string("-");
            bytes += ";";
        }
        bytes += "}";
    }
    return ring::hash64(bytes);
}

}  // namespace

TEST_CASE("fixed seeds of every preset replay to their recorded golden digests") {
    const bool print = std::getenv("KV_GOLDEN_PRINT") != nullptr;
    size_t presets_covered = 0;
    for (const auto& preset : sim::presets()) {
        size_t rows = 0;
        for (const GoldenRow& row : kGolden) {
            if (preset.name != row.preset) continue;
            ++rows;
            // The sanitized build checks the first seed of each preset: the
            // digests are the same, the runs are several times slower.
            if (sanitized() && rows > 1) continue;
            sim::SimOptions o = preset.options;
            o.seed = row.seed;
            const sim::SimResult r = sim::run_simulation(o);
            const uint64_t digest = golden_digest(r);
            if (print) {
                std::printf("    {\"%s\", %" PRIu64 ", 0x%016" PRIx64 "},\n", row.preset, row.seed,
                            digest);
            }
            INFO("preset " << row.preset << " seed " << row.seed
                           << "; replay: " << sim::replay_command(o));
            char got[32];
            std::snprintf(got, sizeof got, "0x%016" PRIx64, digest);
            char want[32];
            std::snprintf(want, sizeof want, "0x%016" PRIx64, row.digest);
            CHECK(std::string(got) == std::string(want));
        }
        // A preset added without golden rows would escape this test.
        INFO("preset " << preset.name << " has no rows in golden_digests.inc");
        CHECK(rows >= 5);
        presets_covered += rows >= 5;
    }
    CHECK(presets_covered == sim::presets().size());
}
