#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time over its seed corpus and kept
# crash inputs (ctest label "fuzz"; docs/TESTING.md). New inputs the fuzzer
# finds go to WORK_DIR, never into the source tree; a crash, leak, sanitizer
# report or abort fails the test and leaves the input in WORK_DIR/artifacts/.
#
# usage: run_fuzzer.sh FUZZER_BINARY TARGET SOURCE_FUZZ_DIR WORK_DIR SECONDS
set -euo pipefail
binary=$1 target=$2 source_dir=$3 work_dir=$4 seconds=$5

corpus_out="$work_dir/corpus/$target"
artifacts="$work_dir/artifacts"
mkdir -p "$corpus_out" "$artifacts"
inputs=("$corpus_out")
for dir in "$source_dir/corpus/$target" "$source_dir/regressions/$target"; do
    [[ -d $dir ]] && inputs+=("$dir")
done
# One process (the machine runs other tests beside it); -rss_limit_mb bounds a
# decoder's memory as the node's limits intend; -timeout flags a slow input.
exec "$binary" -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$artifacts/$target-" "${inputs[@]}"
