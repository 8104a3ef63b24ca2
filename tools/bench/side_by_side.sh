#!/usr/bin/env bash
# Side-by-side kvbench of several builds, alternating, in one run (docs/BENCHMARKS.md):
#   tools/bench/side_by_side.sh ROUNDS LABEL=BINDIR[:secure] ...
# Each round starts, for each variant in turn, a fresh 3-node cluster (n = 3) on
# 127.0.0.1:PORT_BASE+1..3 (PORT_BASE default 7200: tools/dev up takes 7001.. and 7101..) with data under /tmp, loads
# 10,000 keys, runs 8 s of quorum gets then 8 s of quorum puts (3 connections x
# 32 in flight), prints kvbench's summary and stops the cluster. A ":secure"
# variant runs the nodes with a cluster key (CurveZMQ) and drives them as a
# user holding read and write grants on ''; the others run without keys.
set -u
rounds=$1; shift
PORT_BASE=${PORT_BASE:-7200}
export XDG_CONFIG_HOME=/tmp/bench-xdg; mkdir -p $XDG_CONFIG_HOME
pub() { sed -n 's/^public *= *//p' "$1"; }
run_variant() {
  local label=$1 spec=$2 round=$3
  local bin=${spec%%:*} mode=plain
  [[ $spec == *:secure ]] && mode=secure
  local dir=/tmp/bench-$label-$round
  rm -rf "$dir"; mkdir -p "$dir/keys"; chmod 700 "$dir/keys"
  local node_extra=() cli=() admin_cli=()
  if [[ $mode == secure ]]; then
    "$bin/kvctl" --no-key keygen "$dir/keys/cluster.key" >/dev/null
    local cpub; cpub=$(pub "$dir/keys/cluster.key")
    "$bin/kvctl" --no-key --server-key "$cpub" keygen "$dir/keys/admin.key" >/dev/null
    "$bin/kvctl" --no-key --server-key "$cpub" keygen "$dir/keys/bench.key" >/dev/null
    node_extra=(--cluster-key "$dir/keys/cluster.key" --bootstrap-admin "admin=$(pub "$dir/keys/admin.key")")
    cli=(--key "$dir/keys/bench.key")
    admin_cli=(--key "$dir/keys/admin.key")
  fi
  local seeds="tcp://127.0.0.1:$((PORT_BASE+1))"
  local pids=()
  for i in 1 2 3; do
    "$bin/kvnode" --id n$i --listen tcp://127.0.0.1:$((PORT_BASE+i)) --data-dir "$dir/n$i" \
      --seeds "$seeds" --n 3 --log-level warn "${node_extra[@]}" >"$dir/n$i.log" 2>&1 &
    pids+=($!)
    sleep 0.3
  done
  local ok=0
  for _ in $(seq 1 60); do
    up=$("$bin/kvctl" "${admin_cli[@]}" --node tcp://127.0.0.1:$((PORT_BASE+1)) members 2>/dev/null | grep -c " up ")
    [[ $up -ge 3 ]] && { ok=1; break; }
    sleep 0.5
  done
  [[ $ok = 1 ]] || echo "$label round $round: cluster did not form" >&2
  if [[ $mode == secure ]]; then
    # bench is a plain user (not admin), so every request takes the grant check.
    local admin=("${admin_cli[@]}" --node "$seeds")
    "$bin/kvctl" "${admin[@]}" user add bench "$(pub "$dir/keys/bench.key")" >/dev/null &&
      "$bin/kvctl" "${admin[@]}" grant bench read '' >/dev/null &&
      "$bin/kvctl" "${admin[@]}" grant bench write '' >/dev/null || echo "$label: granting failed" >&2
    sleep 2  # the grants reach every node within a gossip round or two
  fi
  local N=tcp://127.0.0.1:$((PORT_BASE+1)),tcp://127.0.0.1:$((PORT_BASE+2)),tcp://127.0.0.1:$((PORT_BASE+3))
  "$bin/kvbench" "${cli[@]}" --node $N --load --keys 10000 --mix get-only --ops 1 >/dev/null 2>&1
  for mix in get-only put-only; do
    out=$("$bin/kvbench" "${cli[@]}" --node $N --keys 10000 --mix $mix --consistency quorum --duration-s 8 --connections 3 --pipeline 32 2>&1)
    echo "== $label round $round $mix"
    echo "$out" | grep -vE "^op  |^$" | head -4
  done
  kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null
  rm -rf "$dir"
}
for r in $(seq 1 "$rounds"); do
  for v in "$@"; do run_variant "${v%%=*}" "${v#*=}" "$r"; done
done
