// Replays the fuzz corpus through the fuzz targets' own entry points
// (tests/fuzz/decoders.h) in the normal build, so that the crash inputs kept in
// tests/fuzz/regressions/<target>/ are checked on every build, with or without
// clang. A target aborts on a broken codec promise, which fails this test.
//
// With KV_FUZZ_WRITE_CORPUS=DIR it (re)writes the seed corpus into DIR/<target>/
// instead (docs/TESTING.md, "Fuzzing").
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/fuzz/decoders.h"

namespace {

namespace fs = std::filesystem;

const fs::path kFuzzDir = KV_FUZZ_DIR;

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::vector<fs::path> files_in(const fs::path& dir) {
    std::vector<fs::path> out;
    if (!fs::is_directory(dir)) return out;
    for (const auto& entry : fs::directory_iterator(dir)) {
        if (entry.is_regular_file()) out.push_back(entry.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

TEST_CASE("every fuzz target has a committed seed corpus", "[fuzz]") {
    if (const char* out_dir = std::getenv("KV_FUZZ_WRITE_CORPUS")) {
        for (const auto& target : kv::fuzz::targets()) {
            const fs::path dir = fs::path(out_dir) / target.name;
            fs::create_directories(dir);
            for (const auto& seed : kv::fuzz::seeds(target.name)) {
                std::ofstream(dir / seed.name, std::ios::binary) << seed.bytes;
            }
        }
    }
    for (const auto& target : kv::fuzz::targets()) {
        INFO("target " << target.name);
        CHECK(!kv::fuzz::seeds(target.name).empty());
        CHECK(!files_in(kFuzzDir / "corpus" / target.name).empty());
        // The committed seeds are today's: a codec change that alters a seed
        // (a format number, a field) regenerates the corpus with the
        // variable above, so the fuzzers start from what this build writes.
        for (const auto& seed : kv::fuzz::seeds(target.name)) {
            INFO("seed " << seed.name << " (regenerate: docs/TESTING.md, \"Fuzzing\")");
            CHECK(read_file(kFuzzDir / "corpus" / target.name / seed.name) == seed.bytes);
        }
    }
}

TEST_CASE("the seeds decode and survive their round trips", "[fuzz]") {
    for (const auto& target : kv::fuzz::targets()) {
        for (const auto& seed : kv::fuzz::seeds(target.name)) {
            INFO(target.name << "/" << seed.name);
            target.run(seed.bytes);
        }
    }
}

TEST_CASE("the corpus and the kept crash inputs pass every fuzz target", "[fuzz]") {
    size_t inputs = 0;
    for (const auto& target : kv::fuzz::targets()) {
        for (const char* kind : {"corpus", "regressions"}) {
            for (const auto& path : files_in(kFuzzDir / kind / target.name)) {
                // Catch2 reports it with the SIGABRT of a broken promise.
                INFO(path.string());
                target.run(read_file(path));
                ++inputs;
            }
        }
    }
    CHECK(inputs > 0);
}
