#!/usr/bin/env bash
# lone_get.sh FLOOR_BIN_DIR name@BIN_DIR [name@BIN_DIR ...] -- issue 14's
# lone-get target: a get at `one` on a single node against the floor, a bare
# ZeroMQ round trip plus an LMDB read (kvfloor, from FLOOR_BIN_DIR).
#
# Per round (ROUNDS, default 3): kvfloor (REQUESTS round trips, default
# 20,000), then for each variant a fresh `kvnode --n 1` on 127.0.0.1:PORT
# (default 17401), loaded with KEYS keys (default 100,000), and kvbench get-only
# at `one`, 1 connection x 1 in flight, for DUR s (default 5). Prints each
# round's p50s, then the medians and each variant's ratio to the floor. A
# variant whose name starts with "link" runs the node with --link-listen on
# PORT + 1 and kvbench over link:// (docs/PROTOCOL.md, section 1.1). Every
# node is stopped by pid.
#
# SERVER_CPUS and CLIENT_CPUS (CPU lists, e.g. 0 and 1; default: unset, the
# scheduler's choice) pin the node and the floor's server, and kvbench and the
# floor's client, alike. Each request crosses four thread hand-offs over
# ZeroMQ (a side's application thread and its I/O thread); where a wake-up
# across cores costs more than one on the same core, as on the 2-core guests
# of docs/BENCHMARKS.md, the scheduler's placement moves both the floor and
# the node by tens of microseconds from one run to the next, so compare them
# pinned alike.
set -uo pipefail
FLOOR_BIN=$(cd "${1:?usage: $0 FLOOR_BIN_DIR name@BIN_DIR ...}" && pwd)
shift
(($# > 0)) || { echo "usage: $0 FLOOR_BIN_DIR name@BIN_DIR ..." >&2; exit 2; }
ROUNDS=${ROUNDS:-3}; REQUESTS=${REQUESTS:-20000}; KEYS=${KEYS:-100000}; DUR=${DUR:-5}
PORT=${PORT:-17401}
SERVER_CPUS=${SERVER_CPUS:-}; CLIENT_CPUS=${CLIENT_CPUS:-}
on_server=(); on_client=()
[[ -n $SERVER_CPUS ]] && on_server=(taskset -c "$SERVER_CPUS")
[[ -n $CLIENT_CPUS ]] && on_client=(taskset -c "$CLIENT_CPUS")
WORK=${WORK:-/tmp/kv-lone-get}
export XDG_CONFIG_HOME=$WORK/xdg KV_KEY_FILE=
NODE=""
stop_node() { [[ -n $NODE ]] && { kill "$NODE" 2>/dev/null; wait "$NODE" 2>/dev/null; }; NODE=""; }
trap stop_node EXIT
declare -A P50
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
for ((r = 1; r <= ROUNDS; r++)); do
  floor=$("$FLOOR_BIN/kvfloor" --requests "$REQUESTS" --keys "$KEYS" --json \
            ${SERVER_CPUS:+--server-cpus "$SERVER_CPUS"} ${CLIENT_CPUS:+--client-cpus "$CLIENT_CPUS"} |
          sed -n 's/.*"p50_us":\([0-9]*\).*/\1/p')
  [[ -n $floor ]] || { echo "kvfloor failed" >&2; exit 1; }
  P50[floor]+="$floor "
  line="round $r: floor $floor us"
  for variant in "$@"; do
    name=${variant%%@*}; bin=$(cd "${variant#*@}" && pwd)
    rm -rf "$WORK"; mkdir -p "$XDG_CONFIG_HOME"
    link=(); endpoint="tcp://127.0.0.1:$PORT"
    if [[ $name == link* ]]; then
      link=(--link-listen "tcp://127.0.0.1:$((PORT + 1))"); endpoint="link://127.0.0.1:$((PORT + 1))"
    fi
    # A port someone else listens on would have kvctl and kvbench measure
    # their node, not ours: refuse.
    for p in "$PORT" $( ((${#link[@]})) && echo $((PORT + 1))); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "port $p is in use" >&2; exit 1; fi
    done
    "${on_server[@]}" "$bin/kvnode" --id n1 --listen "tcp://127.0.0.1:$PORT" --data-dir "$WORK/n1" --n 1 \
      --log-level warn "${link[@]}" >"$WORK/node.log" 2>&1 &
    NODE=$!
    up=0
    for ((t = 0; t < 100; t++)); do
      "$bin/kvctl" --node "tcp://127.0.0.1:$PORT" put ready 1 >/dev/null 2>&1 && { up=1; break; }
      sleep 0.2
    done
    ((up)) || { echo "$name: the node did not start (log: $WORK/node.log)" >&2; exit 1; }
    kill -0 "$NODE" 2>/dev/null || { echo "$name: kvnode exited (log: $WORK/node.log)" >&2; exit 1; }
    "$bin/kvbench" --node "tcp://127.0.0.1:$PORT" --keys "$KEYS" --mix put-only --load --ops 1 \
      --connections 1 --pipeline 64 >/dev/null 2>&1
    p50=$("${on_client[@]}" "$bin/kvbench" --node "$endpoint" --keys "$KEYS" --mix get-only \
            --consistency one --connections 1 --pipeline 1 --duration-s "$DUR" |
          awk '$1 == "get" {print $3}')
    stop_node
    [[ -n $p50 ]] || { echo "$name: kvbench failed" >&2; exit 1; }
    P50[$name]+="$p50 "
    line+=", $name $p50 us"
  done
  echo "$line"
done
# shellcheck disable=SC2086
f=$(median ${P50[floor]})
echo "medians: floor p50 $f us"
for variant in "$@"; do
  name=${variant%%@*}
  # shellcheck disable=SC2086
  m=$(median ${P50[$name]})
  awk -v n="$name" -v m="$m" -v f="$f" 'BEGIN {printf "  %s: lone get p50 %d us, %.2fx the floor\n", n, m, m / f}'
done
