// kvfigures: the cluster membership figures of docs/BENCHMARKS.md, measured in
// the simulator (sim/figures.h). Prints markdown tables. Exits 1 when a figure
// could not be measured (a cluster did not settle, a newcomer did not spread, a
// crash was not detected) or a key moved to a node other than the joiner; 2 on
// bad usage. The figures are deterministic; only the "real s" column is not.
#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "sim/figures.h"

namespace po = boost::program_options;
using namespace kv;

namespace {

constexpr uint32_t kDetectionMembers = 5;
constexpr uint32_t kRebalanceMembers = 5;

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const size_t mid = v.size() / 2;
    return v.size() % 2 == 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

double max_of(const std::vector<double>& v) {
    return v.empty() ? 0 : *std::max_element(v.begin(), v.end());
}

double real_seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct Failures {
    int count = 0;
    void add(const std::string& what) {
        std::printf("FAIL: %s\n", what.c_str());
        ++count;
    }
};

void spread_figure(const std::vector<uint32_t>& sizes, uint64_t seeds,
                   const sim::GossipSettings& settings, Failures& failures) {
    std::printf(
        "Figure 1: gossip rounds until every member knows of a new member "
        "(interval %llu ms, ping every %llu ms, %u vnodes; seeds 1..%llu)\n\n",
        static_cast<unsigned long long>(settings.interval_ms),
        static_cast<unsigned long long>(settings.ping_interval_ms), settings.vnodes,
        static_cast<unsigned long long>(seeds));
    std::printf(
        "| members | log2 N | rounds median | rounds max | views settled at s | real s |\n");
    std::printf("|---|---|---|---|---|---|\n");
    for (uint32_t members : sizes) {
        const auto start = std::chrono::steady_clock::now();
        std::vector<double> rounds;
        std::vector<double> settle_s;
        for (uint64_t seed = 1; seed <= seeds; ++seed) {
            const sim::SpreadResult r = sim::measure_spread(members, seed, settings);
            if (!r.settled || !r.spread) {
                failures.add("spread N=" + std::to_string(members) + " seed " +
                             std::to_string(seed) +
                             (r.settled ? ": did not spread" : ": did not settle"));
                continue;
            }
            rounds.push_back(r.rounds());
            settle_s.push_back(static_cast<double>(r.settle_ms) / 1000.0);
        }
        std::printf("| %u | %.1f | %.2f | %.2f | %.0f | %.1f |\n", members,
                    std::log2(static_cast<double>(members)), median(rounds), max_of(rounds),
                    median(settle_s), real_seconds_since(start));
        std::fflush(stdout);
    }
    std::printf("\n");
}

void detection_row(const char* name, uint64_t seeds, const sim::GossipSettings& settings,
                   Failures& failures) {
    std::vector<double> suspect_s;
    std::vector<double> down_s;
    for (uint64_t seed = 1; seed <= seeds; ++seed) {
        const sim::DetectionResult r = sim::measure_detection(kDetectionMembers, seed, settings);
        if (!r.settled || !r.detected) {
            failures.add(std::string("detection ") + name + " seed " + std::to_string(seed) +
                         (r.settled ? ": not marked down" : ": did not settle"));
            continue;
        }
        suspect_s.push_back(static_cast<double>(r.suspect_ms) / 1000.0);
        down_s.push_back(static_cast<double>(r.down_ms) / 1000.0);
    }
    std::printf("| %s | %llu ms | %.1f | %llu ms | %.2f / %.2f | %.2f / %.2f |\n", name,
                static_cast<unsigned long long>(settings.interval_ms), settings.phi_suspect,
                static_cast<unsigned long long>(settings.suspect_to_down_ms), median(suspect_s),
                max_of(suspect_s), median(down_s), max_of(down_s));
}

void detection_figure(uint64_t seeds, const sim::GossipSettings& defaults,
                      const sim::GossipSettings& small, Failures& failures) {
    std::printf(
        "Figure 2: time from a crash until every live member sees the node suspect, then down "
        "(%u nodes; seeds 1..%llu)\n\n",
        kDetectionMembers, static_cast<unsigned long long>(seeds));
    std::printf(
        "| flags | gossip interval | phi suspect | suspect to down | suspect by all s "
        "(median / max) | down by all s (median / max) |\n");
    std::printf("|---|---|---|---|---|---|\n");
    detection_row("default", seeds, defaults, failures);
    detection_row("small", seeds, small, failures);
    std::printf("\n");
}

void rebalance_figure(uint64_t seeds, uint64_t keys, const sim::GossipSettings& settings,
                      Failures& failures) {
    std::printf(
        "Figure 3: placements moved when a 6th node joins 5 (%u vnodes, %llu keys; seeds "
        "1..%llu). Balanced: 1/6 = 0.167 of the ring, of the primaries and of the n=3 "
        "placements move, 1/2 of the keys change replica set, each node holds 0.5 at n=3, "
        "0 move to others\n\n",
        settings.vnodes, static_cast<unsigned long long>(keys),
        static_cast<unsigned long long>(seeds));
    std::printf(
        "| seed | joiner share | n=1 keys moved | n=3 placements moved | n=3 keys changed | "
        "moved to others | n=3 replica load min / max |\n");
    std::printf("|---|---|---|---|---|---|---|\n");
    std::vector<double> share;
    std::vector<double> primaries;
    std::vector<double> placements;
    std::vector<double> changed;
    uint64_t to_others = 0;
    for (uint64_t seed = 1; seed <= seeds; ++seed) {
        const sim::RebalanceResult r =
            sim::measure_rebalance(kRebalanceMembers, seed, keys, settings);
        const std::string which = "rebalance seed " + std::to_string(seed);
        if (!r.settled || !r.joined) {
            failures.add(which +
                         (r.settled ? ": joiner's tokens did not spread" : ": did not settle"));
            continue;
        }
        if (!r.views_agree) failures.add(which + ": members' token maps differ after the join");
        if (!r.ring_before_agrees)
            failures.add(which + ": gossiped tokens do not rebuild the nodes' ring");
        if (r.moved_to_others != 0) failures.add(which + ": placements moved to old members");
        const auto k = static_cast<double>(r.keys);
        share.push_back(r.joiner_share);
        primaries.push_back(static_cast<double>(r.primaries_moved) / k);
        placements.push_back(static_cast<double>(r.placements_moved) / (3 * k));
        changed.push_back(static_cast<double>(r.keys_changed) / k);
        to_others += r.moved_to_others;
        std::printf("| %llu | %.3f | %.3f | %.3f | %.3f | %llu | %.3f / %.3f |\n",
                    static_cast<unsigned long long>(seed), share.back(), primaries.back(),
                    placements.back(), changed.back(),
                    static_cast<unsigned long long>(r.moved_to_others), r.replica_load_min,
                    r.replica_load_max);
    }
    std::printf("| median | %.3f | %.3f | %.3f | %.3f | %llu (total) | |\n\n", median(share),
                median(primaries), median(placements), median(changed),
                static_cast<unsigned long long>(to_others));
}

}  // namespace

int main(int argc, char** argv) {
    po::options_description desc(
        "kvfigures: cluster membership figures measured in the simulator\n"
        "usage: kvfigures [--seeds S] [--quick]\n"
        "options");
    desc.add_options()("help,h", "this help")                                               //
        ("seeds", po::value<uint64_t>()->default_value(5), "runs per figure (seeds 1..S)")  //
        ("quick", "clusters of 10 and 50 only, 2 seeds (the ctest)")                        //
        ("members", po::value<std::vector<uint32_t>>()->multitoken(),
         "cluster sizes of figure 1 (default 10 50 200)")                                    //
        ("keys", po::value<uint64_t>()->default_value(100'000), "keys sampled in figure 3")  //
        ("spread-ping-interval-ms", po::value<uint64_t>()->default_value(5'000),
         "node-to-node ping interval in figure 1 (kvnode: 1000; pings are not gossip, but "
         "each node pings every member, N^2 messages that dominate the simulation's cost)")  //
        ("spread-tick-ms", po::value<uint64_t>()->default_value(10),
         "simulator tick interval in figure 1 (Node::tick cost grows with members)");
    po::variables_map vm;
    try {
        po::store(po::parse_command_line(argc, argv, desc), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        std::cerr << "kvfigures: " << e.what() << "\n" << desc << "\n";
        return 2;
    }
    if (vm.count("help")) {
        std::cout << desc << "\n";
        return 0;
    }
    const bool quick = vm.count("quick") != 0;
    const uint64_t seeds = quick ? 2 : vm["seeds"].as<uint64_t>();
    const uint64_t keys = vm["keys"].as<uint64_t>();
    if (seeds < 1 || seeds > 1000 || keys < 1 || keys > 10'000'000) {
        std::cerr << "kvfigures: out of range: seeds 1..1000, keys 1..10000000\n";
        return 2;
    }
    std::vector<uint32_t> sizes =
        quick ? std::vector<uint32_t>{10, 50} : std::vector<uint32_t>{10, 50, 200};
    if (vm.count("members")) sizes = vm["members"].as<std::vector<uint32_t>>();
    for (uint32_t members : sizes) {
        if (members < 2 || members > 1000) {
            std::cerr << "kvfigures: out of range: members 2..1000\n";
            return 2;
        }
    }

    const sim::GossipSettings defaults;  // kvnode's defaults
    // tests/process/gossip_test.cpp's flags.
    sim::GossipSettings small;
    small.interval_ms = 100;
    small.phi_suspect = 5.0;
    small.suspect_to_down_ms = 1'000;
    sim::GossipSettings spread = defaults;
    spread.ping_interval_ms = vm["spread-ping-interval-ms"].as<uint64_t>();
    spread.tick_interval_ms = vm["spread-tick-ms"].as<uint64_t>();

    Failures failures;
    spread_figure(sizes, seeds, spread, failures);
    detection_figure(seeds, defaults, small, failures);
    rebalance_figure(seeds, keys, defaults, failures);
    if (failures.count != 0) {
        std::printf("%d failure(s)\n", failures.count);
        return 1;
    }
    return 0;
}
