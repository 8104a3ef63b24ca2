// kvsim: runs one deterministic simulation of a cluster of the real Node under
// faults, checks its history and prints a summary. Exits 1 on any violation
// (printing the command that replays it), 2 on bad usage. With --sweep N it runs
// seeds S..S+N-1 and stops at the first that has a violation.
//
// Built twice (sim/CMakeLists.txt): kvsim over the real node, and kvsim_mutants
// over the node with its planted bugs (node/mutant.h, KV_MUTANTS), where
// --mutant NAME plants one and --expect-violation turns the run into the test
// that the checker catches it. kvsim refuses --mutant.
#include <algorithm>
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>

#include "node/mutant.h"
#include "sim/simulation.h"

namespace po = boost::program_options;
using namespace kv;

namespace {
// The distinct kinds of a run's violations, in the order first found.
std::string violation_kinds(const sim::SimResult& result) {
    std::vector<std::string_view> kinds;
    for (const auto& v : result.violations) {
        const std::string_view name = sim::violation_name(v.kind);
        if (std::find(kinds.begin(), kinds.end(), name) == kinds.end()) kinds.push_back(name);
    }
    std::string out;
    for (auto k : kinds) out += (out.empty() ? "" : ",") + std::string(k);
    return out;
}
}  // namespace

int main(int argc, char** argv) {
    po::options_description desc(
        "kvsim: deterministic simulation of a kv cluster under faults\n"
        "usage: kvsim --seed S [--nodes N] [--clients C] [--duration SECONDS] [--faults LIST]\n"
        "             [--gossip [--joins J] [--leaves L]]\n"
        "options");
    desc.add_options()("help,h", "this help")                                                     //
        ("seed", po::value<uint64_t>()->default_value(1), "the run's only source of randomness")  //
        ("preset", po::value<std::string>(), "start from a named scenario (see --list-presets)")  //
        ("list-presets", "list the named scenarios")                                              //
        ("nodes", po::value<uint32_t>(), "cluster size (default 5)")                              //
        ("clients", po::value<uint32_t>(), "simulated clients (default 8)")                       //
        ("duration", po::value<uint64_t>(),
         "simulated seconds of workload under faults (default 20)")  //
        ("faults", po::value<std::string>(),
         "all, none, or a list of partition,crash,loss,dup,pause,skew,diskfail,unsynced,"
         "outage (default all: every one but outage)")                      //
        ("keys", po::value<uint32_t>(), "size of the key set (default 6)")  //
        ("hot-keys", po::value<uint32_t>(),
         "the first H keys are hot, the others cold (default 0: all alike)")  //
        ("hot-permille", po::value<uint32_t>(),
         "operations on hot keys, per mille (default 900)")  //
        ("rewrite-permille", po::value<uint32_t>(),
         "acknowledged puts followed by a put with their reply's context, per mille")  //
        ("retry-permille", po::value<uint32_t>(),
         "failed or unanswered writes retried (same value and context), per mille")  //
        ("duplicate-permille", po::value<uint32_t>(),
         "requests also sent, same id, to a second coordinator, per mille")  //
        ("strict-permille", po::value<uint32_t>(),
         "gets, puts and deletes sent strict (home replicas only), per mille")  //
        ("hinted-handoff", po::value<std::string>(),
         "true (default) or false: sloppy quorums and hints on every node")  //
        ("read-repair", po::value<std::string>(),
         "true (default) or false: read repair on every node")  //
        ("anti-entropy", po::value<std::string>(),
         "true (default) or false: anti-entropy exchanges on every node")  //
        ("tombstone-grace-ms", po::value<uint64_t>(),
         "tombstone GC's minimum age of a tombstone (default 60000)")  //
        ("steady-nodes", po::value<uint32_t>(),
         "n1..nS are never crashed and the only nodes clients send to (default 0: none)")  //
        ("replicas", po::value<uint32_t>(), "n, replicas per key (default 3)")             //
        ("no-blind-deletes", "the workload always deletes with a context")                 //
        ("gossip", "gossip membership through the seed n1 instead of a static list")       //
        ("seed-nodes", po::value<uint32_t>(),
         "with --gossip, n1..nS are the seeds every node lists (default 1)")  //
        ("joins", po::value<uint32_t>(),
         "the last J nodes start during the workload and join (needs --gossip)")  //
        ("leaves", po::value<uint32_t>(),
         "ask up to L members to leave during the workload (needs --gossip)")        //
        ("history", "print the whole history")                                       //
        ("trace", "print every message handled and the nodes' log lines to stderr")  //
        ("sweep", po::value<uint64_t>(),
         "run N seeds from --seed on, stopping at the first with a violation")  //
        ("mutant", po::value<std::string>(),
         "plant the named bug (kvsim_mutants only; --list-mutants)")    //
        ("list-mutants", "list the planted bugs (kvsim_mutants only)")  //
        ("expect-violation",
         "exit 0 only if some seed had a violation (a planted bug was caught), else 1");
    po::variables_map vm;
    try {
        po::store(po::parse_command_line(argc, argv, desc), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        std::cerr << "kvsim: " << e.what() << "\n" << desc << "\n";
        return 2;
    }
    if (vm.count("help")) {
        std::cout << desc << "\n";
        return 0;
    }
#ifdef KV_MUTANTS
    if (vm.count("list-mutants")) {
        for (const auto& m : mutant::kCatalogue)
            std::cout << m.name << ": " << m.plants << "\n    caught by: " << m.rule << "\n";
        return 0;
    }
    if (vm.count("mutant")) {
        const mutant::Info* m = mutant::find(vm["mutant"].as<std::string>());
        if (m == nullptr) {
            std::cerr << "kvsim: unknown mutant '" << vm["mutant"].as<std::string>()
                      << "' (see --list-mutants)\n";
            return 2;
        }
        mutant::active = m->mutant;
    }
#else
    if (vm.count("mutant") || vm.count("list-mutants")) {
        std::cerr << "kvsim: built without planted bugs (KV_MUTANTS); kvsim_mutants has them\n";
        return 2;
    }
#endif
    if (vm.count("list-presets")) {
        for (const auto& p : sim::presets()) {
            std::cout << p.name << ": " << p.description << "\n    "
                      << sim::replay_command(p.options) << "\n";
        }
        return 0;
    }
    sim::SimOptions options;
    options.faults = sim::parse_faults("all").value();
    if (vm.count("preset")) {
        const sim::Preset* p = sim::find_preset(vm["preset"].as<std::string>());
        if (p == nullptr) {
            std::cerr << "kvsim: unknown preset '" << vm["preset"].as<std::string>()
                      << "' (see --list-presets)\n";
            return 2;
        }
        options = p->options;
    }
    options.seed = vm["seed"].as<uint64_t>();
    if (vm.count("nodes")) options.nodes = vm["nodes"].as<uint32_t>();
    if (vm.count("clients")) options.clients = vm["clients"].as<uint32_t>();
    if (vm.count("duration")) options.duration_s = vm["duration"].as<uint64_t>();
    if (vm.count("keys")) options.keys = vm["keys"].as<uint32_t>();
    if (vm.count("hot-keys")) options.hot_keys = vm["hot-keys"].as<uint32_t>();
    if (vm.count("hot-permille")) options.hot_permille = vm["hot-permille"].as<uint32_t>();
    if (vm.count("rewrite-permille"))
        options.rewrite_permille = vm["rewrite-permille"].as<uint32_t>();
    if (vm.count("retry-permille")) options.retry_permille = vm["retry-permille"].as<uint32_t>();
    if (vm.count("duplicate-permille"))
        options.duplicate_permille = vm["duplicate-permille"].as<uint32_t>();
    if (vm.count("replicas")) options.n_replicas = vm["replicas"].as<uint32_t>();
    if (vm.count("strict-permille")) options.strict_permille = vm["strict-permille"].as<uint32_t>();
    if (vm.count("steady-nodes")) options.steady_nodes = vm["steady-nodes"].as<uint32_t>();
    if (vm.count("hinted-handoff")) {
        const std::string on = vm["hinted-handoff"].as<std::string>();
        if (on != "true" && on != "false") {
            std::cerr << "kvsim: --hinted-handoff takes true or false\n";
            return 2;
        }
        options.hinted_handoff = on == "true";
    }
    for (const char* flag : {"read-repair", "anti-entropy"}) {
        if (!vm.count(flag)) continue;
        const std::string on = vm[flag].as<std::string>();
        if (on != "true" && on != "false") {
            std::cerr << "kvsim: --" << flag << " takes true or false\n";
            return 2;
        }
        (std::string(flag) == "read-repair" ? options.read_repair : options.anti_entropy) =
            on == "true";
    }
    if (vm.count("tombstone-grace-ms"))
        options.tombstone_grace_ms = vm["tombstone-grace-ms"].as<uint64_t>();
    if (vm.count("faults")) {
        auto faults = sim::parse_faults(vm["faults"].as<std::string>());
        if (!faults) {
            std::cerr << "kvsim: " << faults.status().message() << "\n";
            return 2;
        }
        options.faults = faults.value();
    }
    if (options.nodes < 1 || options.nodes > 64 || options.keys < 1 || options.keys > 10000 ||
        options.n_replicas < 1 || options.n_replicas > proto::kReplicasMax ||
        options.duration_s > 86400 || options.clients > 10000) {
        std::cerr << "kvsim: out of range: nodes 1..64, keys 1..10000, replicas 1.."
                  << proto::kReplicasMax << ", duration <= 86400, clients <= 10000\n";
        return 2;
    }
    options.trace = vm.count("trace") != 0;
    if (vm.count("no-blind-deletes")) options.blind_deletes = false;
    if (vm.count("gossip")) options.gossip = true;
    if (vm.count("joins")) options.joins = vm["joins"].as<uint32_t>();
    if (vm.count("leaves")) options.leaves = vm["leaves"].as<uint32_t>();
    if (vm.count("seed-nodes")) options.seeds = vm["seed-nodes"].as<uint32_t>();
    if (Status valid = sim::validate(options); !valid.ok()) {
        std::cerr << "kvsim: " << valid.message() << "\n";
        return 2;
    }
    const uint64_t seeds = vm.count("sweep") ? vm["sweep"].as<uint64_t>() : 1;
    if (seeds < 1 || seeds > 1'000'000) {
        std::cerr << "kvsim: out of range: sweep 1..1000000\n";
        return 2;
    }
    const uint64_t first_seed = options.seed;
    for (uint64_t s = 0; s < seeds; ++s) {
        options.seed = first_seed + s;
        const sim::SimResult result = sim::run_simulation(options);
        const bool last = s + 1 == seeds;
        if (result.violations.empty() && !last) continue;
        if (vm.count("history")) {
            for (const auto& e : result.history.entries) std::cout << sim::describe(e) << "\n";
        }
        std::cout << sim::summary(options, result);
        if (seeds > 1 || vm.count("expect-violation")) {
            // One line for tables (docs/SIMULATOR.md, "Mutants").
            const std::string mutant_name =
                vm.count("mutant") ? vm["mutant"].as<std::string>() : "-";
            const std::string preset = options.preset.empty() ? "-" : options.preset;
            if (result.violations.empty()) {
                std::cout << "result: mutant " << mutant_name << ", preset " << preset
                          << ": no violation in " << seeds << " seeds from " << first_seed << "\n";
            } else {
                std::cout << "result: mutant " << mutant_name << ", preset " << preset
                          << ": caught at seed " << options.seed << ", " << s + 1
                          << " seeds to first catch, " << violation_kinds(result) << "\n";
            }
        }
        const bool violated = !result.violations.empty();
        if (vm.count("expect-violation")) return violated ? 0 : 1;
        return violated ? 1 : 0;
    }
    return 0;
}
