#!/usr/bin/env bash
# The node's logic must be deterministic (shared/DESIGN.md): no wall or steady
# clock, no unseeded randomness, threads, sleeps or unordered containers in
# ring/, gossip/ and the node state machine. The runtimes (zmq_runtime, config,
# store_lmdb, kvnode_main) are exempt: they are the I/O shell.
set -euo pipefail
root=${1:?usage: check_determinism.sh REPO_ROOT}
cd "$root"
files=$(ls ring/*.h ring/*.cpp gossip/*.h gossip/*.cpp node/*.h node/*.cpp |
        grep -vE 'node/(zmq_runtime|config|store_lmdb|kvnode_main)')
pattern='std::chrono::[a-z_]*clock::now|random_device|std::thread|std::async|sleep_for|usleep|\bsleep\(|unordered_(map|set)|\btime\(|gettimeofday|clock_gettime|\brand\('
if hits=$(grep -nE "$pattern" $files); then
    echo "non-deterministic calls in the node logic:"
    echo "$hits"
    echo "FAILED"
    exit 1
fi
echo "$(echo "$files" | wc -l) files checked: no clocks, unseeded randomness, threads or unordered containers"
