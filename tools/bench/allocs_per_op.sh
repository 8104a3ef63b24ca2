#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# allocs_per_op.sh BIN_DIR MIX [OPS] -- heap allocations (libc malloc calls,
# which operator new makes) per operation in the 3 nodes of the
# vs_dynomite.sh cluster (docs/BENCHMARKS.md, issue 14, thirty-fourth step).
#
# A count, not a time: repeated get-only runs agree to about a tenth of an
# allocation, where rates on a shared 2-core machine move 5-10% from run to
# run, so a change that saves a few allocations a request shows here when a
# side-by-side run cannot resolve it. Put counts move more (157-177 a put in
# runs of one build): they include the checkpointer's, and whether a
# checkpoint falls in the window changes them; compare medians of a few.
#
# Starts 3 kvnode on 127.0.0.1:17301-17303 (links on 17321-17323, 3 replicas,
# FLAGS from the environment added to each), loads KEYS (default 100,000) keys,
# and counts with a uprobe on libc's malloc (`perf stat`, all threads of the 3
# nodes) while kvbench makes OPS (default 100,000) operations of MIX at quorum,
# 50 connections x 1 in flight. A mix with puts first reads every key
# (--prime, as vs_dynomite.sh does); the prime's count, measured alone just
# before, is subtracted. Needs perf; adds the probe (perf probe) if missing,
# and removes it when done.
# Every process is stopped by pid.
set -uo pipefail
BIN=$(cd "${1:?usage: $0 BIN_DIR MIX [OPS]}" && pwd)
MIX=${2:?usage: $0 BIN_DIR MIX [OPS]}
OPS=${3:-100000}
KEYS=${KEYS:-100000}
WORK=${WORK:-/tmp/kv-allocs}
command -v perf >/dev/null || { echo "needs perf (apt-get install -y linux-perf)" >&2; exit 2; }
LIBC=$(ldd "$BIN/kvnode" | awk '/libc\.so/ {print $3}')
[[ -n $LIBC ]] || { echo "cannot find the libc kvnode uses" >&2; exit 2; }
added_probe=0
if ! perf probe -l 2>/dev/null | grep -q 'probe_libc:malloc '; then
  perf probe -q -x "$LIBC" --add malloc || { echo "cannot add a uprobe on malloc in $LIBC" >&2; exit 2; }
  added_probe=1
fi
rm -rf "$WORK"; mkdir -p "$WORK"
export XDG_CONFIG_HOME=$WORK/xdg; mkdir -p "$XDG_CONFIG_HOME"
# shellcheck source=cluster3.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster3.sh"
NODE_BIN=$BIN; CTL_BIN=$BIN; CLUSTER_DIR=$WORK/cluster; CLUSTER_LINK=1
stop_all() { cluster_stop
             # A probe this run added goes with it.
             ((added_probe)) && perf probe -q -d probe_libc:malloc; added_probe=0; }
trap stop_all EXIT
# shellcheck disable=SC2086 # FLAGS is a list of flags
cluster_start ${FLAGS:-} || exit 1
PIDS=("${CLUSTER_PIDS[@]}")
NODES=$(cluster_endpoints)
"$BIN/kvbench" --node "$NODES" --keys "$KEYS" --mix put-only --load --ops 1 --connections 2 \
  --pipeline 64 >/dev/null 2>&1
prime=()
[[ $MIX != get-only ]] && "$BIN/kvbench" --help 2>/dev/null | grep -q -- --prime && prime=(--prime)
# mallocs OPS: the nodes' malloc calls while kvbench makes OPS operations.
mallocs() {
  local pids; pids=$(IFS=,; echo "${PIDS[*]}")
  perf stat -x, -e probe_libc:malloc -p "$pids" -o "$WORK/stat.txt" -- \
    "$BIN/kvbench" --node "$NODES" --keys "$KEYS" --mix "$MIX" --consistency quorum --ops "$1" \
    --connections 50 --pipeline 1 "${prime[@]}" >"$WORK/bench.txt" 2>&1 ||
    { echo "kvbench failed:" >&2; cat "$WORK/bench.txt" >&2; exit 1; }
  grep -q '^errors: none' "$WORK/bench.txt" || { echo "kvbench saw errors:" >&2; cat "$WORK/bench.txt" >&2; exit 1; }
  awk -F, '/probe_libc:malloc/ {print $1}' "$WORK/stat.txt"
}
# The prime alone (and one operation, kvbench's least), then prime and OPS.
base=0
((${#prime[@]})) && base=$(mallocs 1)
total=$(mallocs "$OPS")
[[ $total =~ ^[0-9]+$ && $base =~ ^[0-9]+$ ]] || { echo "no count from perf ($WORK/stat.txt)" >&2; exit 1; }
for i in 0 1 2; do
  kill -0 "${PIDS[$i]}" 2>/dev/null || { echo "kvnode n$((i+1)) exited (log: $CLUSTER_DIR/n$((i+1)).log)" >&2; exit 1; }
done
awk -v t="$total" -v b="$base" -v n="$OPS" -v mix="$MIX" -v bin="$BIN" 'BEGIN {
  printf "%s, %s: %.1f mallocs an operation in the 3 nodes (%d over %d operations", bin, mix, (t - b) / n, t - b, n
  if (b > 0) printf "; the prime'"'"'s %d subtracted", b
  print ")" }'
