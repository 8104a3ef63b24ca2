#!/usr/bin/env bash
# The node's logic must be deterministic (shared/DESIGN.md): no wall or steady
# clock, no unseeded randomness, threads, sleeps or unordered containers in
# ring/, gossip/ and the node state machine. Every source file under those
# folders is checked, subfolders included; only the I/O shell is exempt: the
# ZeroMQ runtime, its flags and main (node/runtime/) and the LMDB stores
# (store_lmdb.cpp, and store_logged.cpp with its checkpoint thread).
set -euo pipefail
root=${1:?usage: check_determinism.sh REPO_ROOT}
cd "$root"
files=$(find ring gossip node -type f \( -name '*.h' -o -name '*.cpp' \) |
        grep -vE '^node/(runtime/|storage/store_(lmdb|logged)|zmq_runtime|config|store_lmdb|kvnode_main)' |
        sort)
[[ -n $files ]] || { echo "no files found under ring/ gossip/ node/"; echo FAILED; exit 1; }
pattern='std::chrono::[a-z_]*clock::now|random_device|std::thread|std::async|sleep_for|usleep|\bsleep\(|unordered_(map|set)|\btime\(|gettimeofday|clock_gettime|\brand\('
# shellcheck disable=SC2086 # files is a list of paths without spaces
if hits=$(grep -nE "$pattern" $files); then
    echo "non-deterministic calls in the node logic:"
    echo "$hits"
    echo "FAILED"
    exit 1
fi
echo "$(echo "$files" | wc -l) files checked: no clocks, unseeded randomness, threads or unordered containers"
