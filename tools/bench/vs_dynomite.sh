#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# vs_dynomite.sh BIN_DIR [VARIANT ...] -- our cluster beside Dynomite in one run,
# alternating, ROUNDS rounds (default 3), then the medians and our ratios to
# Dynomite (docs/BENCHMARKS.md, issue 14).
#
# VARIANT is LABEL[@NODE_BIN_DIR][=FLAGS]: a kvnode configuration to measure,
# FLAGS (comma-separated) added to every node's command line, the kvnode of
# NODE_BIN_DIR (default BIN_DIR) run instead, e.g.
#   tools/bench/vs_dynomite.sh build/bin thread=--commit-thread,true loop=--commit-thread,false
#   tools/bench/vs_dynomite.sh build/bin new before@/tmp/old-bin
# (kvctl always comes from BIN_DIR, and kvbench too unless KVBENCH_FROM_VARIANT=1,
# which runs each variant's own kvbench: for a change to the client library).
# Default: one variant, "durable" (the defaults: --sync true). A LABEL that starts
# with "link" runs the nodes with --link-listen (127.0.0.1:17321-17323) and kvbench
# over link:// (docs/PROTOCOL.md, "Links"), e.g. zmq link; the rest over ZeroMQ.
#
# The same shape for both systems: 3 nodes on 127.0.0.1, 3 replicas, quorum
# reads and writes, 100-byte values, 100,000 keys, 50 requests in flight.
#  - Dynomite (PEERS, default ../shared/peers: its build, licence and scripts):
#    1 datacenter x 3 racks, each over its own in-memory redis, DC_QUORUM;
#    keys prefilled; redis-benchmark -c 50 -P 1 SET then GET through node 1.
#    Not durable: its redis keeps nothing on disk.
#  - Ours: 3 kvnode joined by gossip on 127.0.0.1:17301-17303, 100,000 keys
#    loaded, kvbench put-only then get-only at quorum for DUR s (default 10),
#    50 in flight shaped as SHAPES (default "2x25 50x1": connections x pipeline),
#    kvbench driving every connection from one thread (its default --threads 1),
#    as redis-benchmark drives its 50;
#    then, with RESP=1 (the default), the very redis-benchmark run Dynomite gets,
#    through node 1's Redis gateway (--resp-listen, docs/REDIS.md), keys prefilled
#    the same way: both systems driven by one client program ("-resp-c50xP1" rows).
#  - Redis alone (one in-memory redis-server, no replication), the same
#    redis-benchmark run, as the floor of what the client and loopback cost.
# PEER_SCHED_BATCH=1 runs Dynomite, its redis servers and Redis alone under the
# SCHED_BATCH policy too (chrt -a -b), as kvnode runs by default (--sched-batch):
# the same scheduling for both systems, not only each one's default.
# Needs redis-server and redis-tools (apt-get install -y redis-server redis-tools).
# Rows: $RESULTS_DIR/vs.csv (system,config,op,run,ops_s,p50_ms,p99_ms); every
# process runs on loopback and is stopped by pid.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$(cd "${1:?usage: $0 BIN_DIR [LABEL[=FLAGS] ...]}" && pwd); shift
VARIANTS=("$@"); ((${#VARIANTS[@]})) || VARIANTS=(durable)
PEERS=${PEERS:-$HERE/../../../shared/peers}
[[ -f $PEERS/common.sh && -x $PEERS/dynomite ]] || { echo "no Dynomite build in $PEERS (set PEERS)" >&2; exit 2; }
{ command -v redis-benchmark >/dev/null && command -v redis-server >/dev/null; } || {
  echo "needs redis-server and redis-tools (apt-get install -y redis-server redis-tools)" >&2; exit 2; }
export RESULTS_DIR=${RESULTS_DIR:-/tmp/peers/vs}
# shellcheck source=/dev/null # ../shared/peers, outside the repository
source "$PEERS/common.sh"
# No key from the user's kvctl configuration: these nodes run without one.
export XDG_CONFIG_HOME=$RESULTS_DIR/xdg; mkdir -p "$XDG_CONFIG_HOME"
ROUNDS=${ROUNDS:-3}; DUR=${DUR:-10}; KEYS=${KEYS:-100000}; SHAPES=${SHAPES:-"2x25 50x1"}
OUT=$RESULTS_DIR/vs.csv; : >"$OUT"; : >"$RESULTS_DIR/raw.csv"
RESP_PORTS=(17311 17312 17313)
RESP=${RESP:-1}
# The cluster (cluster3.sh); with RESP=0 the nodes get no --resp-listen (a
# kvnode from before the gateway runs too).
# shellcheck source=cluster3.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster3.sh"
CTL_BIN=$BIN; CLUSTER_DIR=$PEERS_DIR/kv
((RESP)) && CLUSTER_RESP_PORTS=("${RESP_PORTS[@]}")
trap 'cluster_stop; "$PEERS/dynomite_stop.sh" >/dev/null 2>&1; stop_pidfile "$RUN_DIR/redis-alone.pid" redis-server >/dev/null 2>&1' EXIT
kv_run() {  # kv_run CONFIG MIX CONNS PIPE RUN
  quiet_wait "kv/$1/$2/run$5"
  local bench=$BIN; ((${KVBENCH_FROM_VARIANT:-0})) && bench=$NODE_BIN
  # Puts first read every key (--prime, unmeasured) so that each is an update
  # of what the key holds, as a Redis SET replaces it; without it each key's
  # first put in a run is blind and leaves the old value as a sibling, which
  # the gets after it then read too (BENCHMARKS.md, thirty-third step).
  local prime=()
  [[ $2 != get-only ]] && "$bench/kvbench" --help 2>/dev/null | grep -q -- --prime && prime=(--prime)
  local js; js=$("$bench/kvbench" --node "$(cluster_endpoints)" --keys "$KEYS" --mix "$2" --consistency quorum \
      --duration-s "$DUR" --connections "$3" --pipeline "$4" "${prime[@]}" --json 2>>"$RESULTS_DIR/kv.stderr")
  python3 - "$1" "$2" "$5" "$js" >>"$OUT" <<'EOF'
import json, sys
cfg, mix, run, js = sys.argv[1:5]
op = "get" if mix == "get-only" else "set"
try:
    d = json.loads(js); lat = d["latency_us"]["get" if op == "get" else "put"]
    errs = sum(d.get("errors", {}).values())
    print(f"ours,{cfg},{op},{run},{d['ops_per_s']:.0f},{lat['p50']/1000:.3f},{lat['p99']/1000:.3f},errors={errs}")
except Exception:
    print(f"ours,{cfg},{op},{run},NA,NA,NA,parse-error")
EOF
  tail -1 "$OUT" >&2
}
# PEER_SCHED_BATCH=1: every thread of the processes whose pid files are named.
batch_sched() {
  [[ ${PEER_SCHED_BATCH:-0} == 1 ]] || return 0
  local f
  for f in "$@"; do chrt -a -b -p 0 "$(cat "$RUN_DIR/$f.pid")" >/dev/null || exit 1; done
}
for ((r = 1; r <= ROUNDS; r++)); do
  "$PEERS/dynomite_start.sh" "$PEERS/dynomite" DC_QUORUM >/dev/null || exit 1
  batch_sched dynomite1 dynomite2 dynomite3 dyn-redis1 dyn-redis2 dyn-redis3
  for port in "${DYN_REDIS_PORTS[@]}"; do prefill_keys "$port" "$KEYS" 100; done
  for op in set get; do
    rb_run dynomite DC_QUORUM "${DYN_CLIENT_PORTS[0]}" "$op" 50 1 "$r" 2>/dev/null
    tail -1 "$RESULTS_DIR/raw.csv" | awk -F, '{print $1",c50xP1,"tolower($3)","$6","$7","$9","$11}' >>"$OUT"
  done
  "$PEERS/dynomite_stop.sh" >/dev/null 2>&1
  start_redis redis-alone "$REDIS_MEM_PORT" "$PEERS_DIR/redis-alone" --save '' --appendonly no >/dev/null || exit 1
  batch_sched redis-alone
  prefill_keys "$REDIS_MEM_PORT" "$KEYS" 100
  for op in set get; do
    rb_run redis in-memory "$REDIS_MEM_PORT" "$op" 50 1 "$r" 2>/dev/null
    tail -1 "$RESULTS_DIR/raw.csv" | awk -F, '{print $1",c50xP1,"tolower($3)","$6","$7","$9","$11}' >>"$OUT"
  done
  stop_pidfile "$RUN_DIR/redis-alone.pid" redis-server >/dev/null 2>&1
  for v in "${VARIANTS[@]}"; do
    label=${v%%=*}; flags=(); [[ $v == *=* ]] && IFS=, read -ra flags <<<"${v#*=}"
    NODE_BIN=$BIN; [[ $label == *@* ]] && NODE_BIN=${label#*@} && label=${label%%@*}
    CLUSTER_LINK=0; [[ $label == link* ]] && CLUSTER_LINK=1
    cluster_start "${flags[@]}" || { log "our cluster did not start"; exit 1; }
    "$BIN/kvbench" --node "$(cluster_endpoints)" --keys "$KEYS" --mix put-only --load --ops 1 --connections 2 --pipeline 64 >/dev/null 2>&1
    for shape in $SHAPES; do
      kv_run "$label-c${shape%x*}xP${shape#*x}" put-only "${shape%x*}" "${shape#*x}" "$r"
      kv_run "$label-c${shape%x*}xP${shape#*x}" get-only "${shape%x*}" "${shape#*x}" "$r"
    done
    if ((RESP)); then
      prefill_keys "${RESP_PORTS[0]}" "$KEYS" 100
      for op in set get; do
        rb_run ours "$label-resp" "${RESP_PORTS[0]}" "$op" 50 1 "$r" 2>/dev/null
        tail -1 "$RESULTS_DIR/raw.csv" | awk -F, '{print $1","$2"-c50xP1,"tolower($3)","$6","$7","$9","$11}' >>"$OUT"
      done
    fi
    cluster_stop
  done
done
echo "system,config,op,run,ops_s,p50_ms,p99_ms"; cat "$OUT"
echo
echo "medians of $ROUNDS rounds; ratio = ours / Dynomite (ops/s), p99 ratio = ours / Dynomite"
python3 - "$OUT" <<'EOF'
import csv, statistics, sys
rows = {}
for r in csv.reader(open(sys.argv[1])):
    try:
        rows.setdefault((r[0], r[1], r[2]), []).append((float(r[4]), float(r[5]), float(r[6])))
    except (ValueError, IndexError):
        pass
med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in rows.items()}
dyn = {op: v for (s, c, op), v in med.items() if s == "dynomite"}
print(f"{'system':9} {'config':24} {'op':4} {'ops/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'x ops':>6} {'x p99':>6}")
for (s, c, op), (ops, p50, p99) in sorted(med.items()):
    d = dyn.get(op)
    ratio = f"{ops / d[0]:.2f}" if d and d[0] else "-"
    p99r = f"{p99 / d[2]:.2f}" if d and d[2] else "-"
    print(f"{s:9} {c:24} {op:4} {ops:8.0f} {p50:7.2f} {p99:7.2f} {ratio:>6} {p99r:>6}")
EOF
