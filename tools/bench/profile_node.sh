#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# profile_node.sh BIN_DIR MIX [FLAG ...] -- a CPU profile of node 1 of the
# vs_dynomite.sh cluster under one load (docs/BENCHMARKS.md, issue 14).
#
# Starts 3 kvnode on 127.0.0.1:17301-17303 (3 replicas, gossip, FLAGs added to
# each, e.g. --sync false), loads KEYS (default 100,000) keys, then runs kvbench
# MIX (put-only, get-only, ycsb-a, ...) at quorum, CONNS connections x PIPE in
# flight (default 2 x 25; CONNS=1 PIPE=1 for a lone request's latency), for DUR
# s (default 12) while `perf record` samples node 1 for PERF_S s (default 6)
# from 3 s in. Prints kvbench's figures, each node's store commits (writes per
# commit, time per commit), each node's clients' requests during the run and
# their mean time from arrival to the answer leaving, the CPU time an operation cost in the 3 nodes and
# in kvbench (user + system over the whole run: steadier than ops/s on a shared
# machine), the whole machine's busy time an operation cost (/proc/stat: every
# process, and the softirq and kworker time of loopback TCP and the syncs that
# no process is charged), the nodes' share by thread (the event loop is "kvnode"), then the
# busiest symbols (self time, TOP rows, default 30) and the share of samples in
# the kernel.
# LINK=1 gives the nodes --link-listen (127.0.0.1:17321-17323): they talk to
# each other over links, and kvbench dials link:// (docs/PROTOCOL.md, 1.1).
# THREADS sets kvbench's --threads (default: kvbench's, one thread driving all
# CONNS connections).
# BEFORE=MIX runs MIX for DUR s, unmeasured, before the measured run.
# PERF_OF=kvbench samples kvbench (the client library) instead of node 1.
# PERF_CALLGRAPH sets perf's call graphs (default --call-graph fp; use
# "--call-graph dwarf,16384" to see callers through inlined code).
# While perf samples (PERF_S s, with its start and stop), each kind of thread
# of the 3 nodes and kvbench (/proc/PID/task/TID/schedstat): how often it was
# scheduled in, how long it ran each time, and how long it waited runnable for
# a core first. On 2 cores shared by 3 nodes and the client, that wait is much
# of a request's latency.
# SYSCALLS=1 also counts the 3 nodes' system calls over the run (perf stat,
# raw_syscalls:sys_enter) and prints them per operation: on a virtual machine
# where one costs about 1 us, their number is a cost of its own.
# Needs perf (apt-get install -y linux-perf). Every process is stopped by pid.
set -uo pipefail
BIN=$(cd "${1:?usage: $0 BIN_DIR MIX [FLAG ...]}" && pwd)
MIX=${2:?usage: $0 BIN_DIR MIX [FLAG ...]}
shift 2
command -v perf >/dev/null || { echo "needs perf (apt-get install -y linux-perf)" >&2; exit 2; }
KEYS=${KEYS:-100000}; DUR=${DUR:-12}; CONNS=${CONNS:-2}; PIPE=${PIPE:-25}; PERF_S=${PERF_S:-6}; TOP=${TOP:-30}
WORK=${WORK:-/tmp/kv-profile}
rm -rf "$WORK"; mkdir -p "$WORK"
export XDG_CONFIG_HOME=$WORK/xdg; mkdir -p "$XDG_CONFIG_HOME"
# shellcheck source=cluster3.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster3.sh"
NODE_BIN=$BIN; CTL_BIN=$BIN; CLUSTER_DIR=$WORK/cluster; CLUSTER_LINK=${LINK:-0}
trap cluster_stop EXIT
cluster_start "$@" || exit 1
PIDS=("${CLUSTER_PIDS[@]}")
NODES=$(cluster_endpoints)
"$BIN/kvbench" --node "$NODES" --keys "$KEYS" --mix put-only --load --ops 1 --connections 2 \
  --pipeline 64 >/dev/null 2>&1
# BEFORE=MIX runs that mix for DUR s first, unmeasured (vs_dynomite.sh runs its
# gets right after a put round).
# Runs with puts first read every key (--prime, unmeasured: the first 3 s
# include it) so that each put updates what the key holds instead of adding
# a sibling, as in vs_dynomite.sh.
prime_for() { [[ $1 != get-only ]] && "$BIN/kvbench" --help 2>/dev/null | grep -q -- --prime && echo --prime; }
# shellcheck disable=SC2046 # prime_for prints one flag or nothing
[[ -n ${BEFORE:-} ]] && "$BIN/kvbench" --node "$NODES" --keys "$KEYS" --mix "$BEFORE" --consistency quorum \
  --duration-s "$DUR" --connections "$CONNS" --pipeline "$PIPE" $(prime_for "$BEFORE") >/dev/null 2>&1
# CPU time (user + system) of the nodes over the run, from /proc/PID/stat, and
# of kvbench (the subshell's `times`): what an operation costs, apart from how
# busy the shared machine was.
# The machine's busy ticks (user, nice, system, irq, softirq; not idle,
# iowait or steal) and its softirq ticks, from /proc/stat.
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $8}' /proc/stat; }
node_ticks() { local t=0 p; for p in "${PIDS[@]}"; do
                 t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
# The same per thread, summed over the 3 nodes by thread name (the loop is
# "kvnode"; ZeroMQ's I/O thread "ZMQbg/IO/0"; "kv-commit", "kv-checkpoint").
thread_ticks() { local p t; for p in "${PIDS[@]}"; do for t in /proc/"$p"/task/*; do
                   printf '%s\t%s\n' "$(cat "$t/comm")" "$(awk '{print $14 + $15}' "$t/stat")"
                 done; done 2>/dev/null; }
# Each node's timing of its clients' requests (arrival to the answer leaving),
# before and after the run: the run's share is the difference.
request_times() { local port; for port in "${CLUSTER_PORTS[@]}"; do
                    "$BIN/kvctl" --node "tcp://127.0.0.1:$port" stats 2>/dev/null |
                      awk -v port="$port" '/^kv_request_duration_seconds_(sum|count)\{/ {
                        split($1, a, "{"); print port, a[1], $2 }'
                  done; }
request_times >"$WORK/requests.before"
# The measured run's prime is not timed, but its CPU falls in the run's
# totals: the same prime run alone just before is subtracted from them.
prime_ticks=0
prime_machine="0 0"
: >"$WORK/prime.times"
if [[ -n $(prime_for "$MIX") ]]; then
  thread_ticks >"$WORK/prime.threads.before"
  prime_machine_before=$(machine_ticks)
  prime_before=$(node_ticks)
  ("$BIN/kvbench" --node "$NODES" --keys "$KEYS" --mix get-only --consistency quorum --ops 1 \
     --connections "$CONNS" --pipeline "$PIPE" --prime >/dev/null 2>&1; times >"$WORK/prime.times")
  prime_ticks=$(( $(node_ticks) - prime_before ))
  prime_machine=$(awk -v b="$prime_machine_before" -v a="$(machine_ticks)" \
                    'BEGIN { split(b, x, " "); split(a, y, " "); print y[1] - x[1], y[2] - x[2] }')
  thread_ticks >"$WORK/prime.threads.after"
fi
thread_ticks >"$WORK/threads.before"
# The prime's ticks count as spent before the run (after - before).
[[ -s $WORK/prime.threads.after ]] &&
  awk -F'\t' 'FNR == NR { printf "%s\t%s\n", $1, -$2; next } { print }' \
    "$WORK/prime.threads.before" "$WORK/prime.threads.after" >>"$WORK/threads.before"
machine_before=$(machine_ticks)
before=$(node_ticks)
# shellcheck disable=SC2046 # prime_for prints one flag or nothing
("$BIN/kvbench" --node "$NODES" --keys "$KEYS" --mix "$MIX" --consistency quorum \
   --duration-s "$DUR" --connections "$CONNS" --pipeline "$PIPE" ${THREADS:+--threads "$THREADS"} \
   $(prime_for "$MIX"); times >"$WORK/bench.times") \
  >"$WORK/bench.txt" 2>&1 &
bench=$!
if [[ ${SYSCALLS:-0} == 1 ]]; then
  perf stat -x, -e raw_syscalls:sys_enter -p "$(IFS=,; echo "${PIDS[*]}")" -o "$WORK/syscalls.csv" \
    -- sleep "$DUR" >/dev/null 2>&1 &
  counting=$!
fi
sleep 3
bench_pid=$(pgrep -P "$bench" -x kvbench)
sampled=${PIDS[0]}
what="node 1"
if [[ ${PERF_OF:-node} == kvbench ]]; then
  sampled=$bench_pid
  what=kvbench
fi
# Per thread name: run ns, run-queue wait ns, times scheduled in (schedstat).
sched_stats() { local p t; for p in "$@"; do for t in /proc/"$p"/task/*; do
                  printf '%s\t%s\n' "$(cat "$t/comm")" "$(cat "$t/schedstat")"
                done; done 2>/dev/null; }
sched_stats "${PIDS[@]}" "$bench_pid" >"$WORK/sched.before"
sched_from=$(date +%s.%N)
# shellcheck disable=SC2086 # PERF_CALLGRAPH is a list of perf flags
perf record -q ${PERF_CALLGRAPH:---call-graph fp} -F 999 -p "$sampled" -o "$WORK/perf.data" -- sleep "$PERF_S" >/dev/null 2>&1
sched_stats "${PIDS[@]}" "$bench_pid" >"$WORK/sched.after"
sched_s=$(awk -v a="$sched_from" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
wait "$bench"
machine_after=$(machine_ticks)
[[ -n ${counting:-} ]] && wait "$counting"
ticks=$(( $(node_ticks) - before - prime_ticks ))
thread_ticks >"$WORK/threads.after"
cat "$WORK/bench.txt"
# Each node's store commits since it started (the load included), from its
# metrics: how many writes one sync carried, and how long a commit took from
# the loop's hand-off to the loop seeing it done.
for port in "${CLUSTER_PORTS[@]}"; do
  "$BIN/kvctl" --node "tcp://127.0.0.1:$port" stats 2>/dev/null |
    awk -v port="$port" '/^kv_commit_duration_seconds_sum / {s = $2}
      /^kv_commit_duration_seconds_count / {c = $2} /^kv_commit_writes_total / {w = $2}
      END { if (c > 0) printf "node :%s commits %d, %.1f writes per commit, %.3f ms per commit\n",
                                port, c, w / c, s * 1000 / c }'
done
request_times >"$WORK/requests.after"
awk 'FNR == NR { d[$1 " " $2] -= $3; next } { d[$1 " " $2] += $3 }
  END { for (port = 17301; port <= 17303; port++) {
          c = d[port " kv_request_duration_seconds_count"]; s = d[port " kv_request_duration_seconds_sum"]
          if (c > 0) printf "node :%d answered %d requests, %.3f ms mean from arrival to the answer leaving\n",
                            port, c, s * 1000 / c } }' "$WORK/requests.before" "$WORK/requests.after"
ops=$(awk '/ ops in / {print $1}' "$WORK/bench.txt")
# `times`, second line: the children's user and system time, as 0m1.234s.
children_s() { awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
                           print t }' "$1"; }
bench_s=$(awk -v b="$(children_s "$WORK/bench.times")" -v p="$(children_s "$WORK/prime.times")" \
            'BEGIN { print b - (p == "" ? 0 : p) }')
awk -v n="$ticks" -v hz="$(getconf CLK_TCK)" -v b="${bench_s:-0}" -v ops="${ops:-0}" 'BEGIN {
  if (ops > 0) printf "CPU per operation: %.1f us in the 3 nodes, %.1f us in kvbench\n",
                      n * 1e6 / hz / ops, b * 1e6 / ops }'
# The run's machine time, the prime's (measured alone before it) taken out;
# the run's window also holds kvbench's start and the perf sampling.
awk -v b="$machine_before" -v a="$machine_after" -v p="$prime_machine" -v hz="$(getconf CLK_TCK)" \
  -v ops="${ops:-0}" 'BEGIN { split(b, x, " "); split(a, y, " "); split(p, z, " ")
    if (ops > 0) printf "machine CPU per operation: %.1f us (every process and the kernel; softirq %.1f us of it)\n",
                        (y[1] - x[1] - z[1]) * 1e6 / hz / ops, (y[2] - x[2] - z[2]) * 1e6 / hz / ops }'
awk -F'\t' -v hz="$(getconf CLK_TCK)" -v ops="${ops:-0}" '
  FNR == NR { before[$1] += $2; next } { after[$1] += $2 }
  END { if (ops <= 0) exit; for (name in after) {
          us = (after[name] - before[name]) * 1e6 / hz / ops
          if (us >= 0.05) printf "  %-16s %.1f us per operation (3 nodes)\n", name, us } }' \
  "$WORK/threads.before" "$WORK/threads.after" | sort -k2 -rn
if [[ -s $WORK/syscalls.csv ]]; then
  awk -F, -v ops="${ops:-0}" '/raw_syscalls/ { if (ops > 0) printf "system calls per operation: %.1f in the 3 nodes\n", $1 / ops }' \
    "$WORK/syscalls.csv"
fi
printf 'threads over the %.1f s sampled: scheduled in a second, running each time, then waiting for a core\n' "$sched_s"
awk -F'\t' -v s="$sched_s" '
  { split($2, f, " "); sign = (FILENAME == ARGV[1]) ? -1 : 1
    run[$1] += sign * f[1]; wait[$1] += sign * f[2]; ins[$1] += sign * f[3] }
  END { for (name in ins) if (ins[name] > 0)
          printf "  %-16s %8.0f /s  %6.1f us running  %6.1f us waiting runnable (each time)\n",
                 name, ins[name] / s, run[name] / ins[name] / 1000, wait[name] / ins[name] / 1000 }' \
  "$WORK/sched.before" "$WORK/sched.after" | sort -k2 -rn
echo
echo "$what, $PERF_S s of $MIX: the busiest symbols (self time)"
perf report -q -i "$WORK/perf.data" --no-children -g none --sort dso,sym --percent-limit 0.5 2>/dev/null |
  grep -v '^$' | grep -v '^ *|' | grep -v '^ *-' | head -n "$TOP"
echo
perf report -q -i "$WORK/perf.data" --no-children -g none --sort dso 2>/dev/null |
  awk '/kernel/ {k += $1} {t += $1} END {printf "kernel share of samples: %.1f%%\n", k}'
