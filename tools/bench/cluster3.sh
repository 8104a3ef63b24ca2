# shellcheck shell=bash
# cluster3.sh -- sourced by the benchmark scripts (allocs_per_op.sh,
# profile_node.sh, vs_dynomite.sh): the 3-node cluster they all measure, started
# and stopped one way.
#
# 3 kvnode on 127.0.0.1:17301-17303 (n1-n3, 3 replicas, joined by gossip
# through n1), with CLUSTER_LINK=1 also --link-listen on 17321-17323, with
# CLUSTER_RESP_PORTS set (3 ports) also --resp-listen on them.
#
# Set before cluster_start: NODE_BIN (the kvnode's directory), CTL_BIN (the
# kvctl's), CLUSTER_DIR (data and logs: n1..n3, n1.log..n3.log; emptied).
#   cluster_start [FLAG ...]  FLAGs go to every node. Refuses a port someone
#                             else listens on (we would measure their node),
#                             waits (60 s at most) until a write at `all`
#                             succeeds and n1 lists 3 members up. Returns 1
#                             with the reason on stderr; CLUSTER_PIDS holds
#                             the nodes' pids either way.
#   cluster_stop              stops and reaps every node it started.
#   cluster_endpoints         the nodes' endpoints for kvbench --node: link://
#                             with CLUSTER_LINK=1, else tcp://.
# The nodes run without keys (insecure): a caller points XDG_CONFIG_HOME at an
# empty directory first, as the scripts above do, or kvctl and kvbench pick up
# the user's credentials (~/.config/kvstore, written by `tools/dev up`), speak
# CURVE to them, and cluster_start fails with "the cluster did not form".
CLUSTER_PORTS=(17301 17302 17303)
CLUSTER_LINK_PORTS=(17321 17322 17323)
CLUSTER_LINK=${CLUSTER_LINK:-0}
[[ -v CLUSTER_RESP_PORTS ]] || CLUSTER_RESP_PORTS=()
CLUSTER_PIDS=()

cluster_stop() {
  local p
  for p in "${CLUSTER_PIDS[@]:-}"; do [[ -n $p ]] && kill "$p" 2>/dev/null; done
  for p in "${CLUSTER_PIDS[@]:-}"; do [[ -n $p ]] && wait "$p" 2>/dev/null; done
  CLUSTER_PIDS=()
}

cluster_start() {
  local seed=tcp://127.0.0.1:${CLUSTER_PORTS[0]} i t p formed=0
  rm -rf "$CLUSTER_DIR"; mkdir -p "$CLUSTER_DIR"
  for p in "${CLUSTER_PORTS[@]}" "${CLUSTER_RESP_PORTS[@]}" \
           $( ((CLUSTER_LINK)) && echo "${CLUSTER_LINK_PORTS[@]}"); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "port $p is in use" >&2; return 1; fi
  done
  for i in 0 1 2; do
    local extra=()
    ((CLUSTER_LINK)) && extra+=(--link-listen "tcp://127.0.0.1:${CLUSTER_LINK_PORTS[$i]}")
    [[ -n ${CLUSTER_RESP_PORTS[$i]:-} ]] && extra+=(--resp-listen "tcp://127.0.0.1:${CLUSTER_RESP_PORTS[$i]}")
    "$NODE_BIN/kvnode" --id "n$((i+1))" --listen "tcp://127.0.0.1:${CLUSTER_PORTS[$i]}" \
      --data-dir "$CLUSTER_DIR/n$((i+1))" --seeds "$seed" --log-level warn "${extra[@]}" "$@" \
      >"$CLUSTER_DIR/n$((i+1)).log" 2>&1 &
    CLUSTER_PIDS+=($!); sleep 0.3
  done
  for ((t = 0; t < 120; t++)); do
    "$CTL_BIN/kvctl" --node "$seed" --consistency all put ready 1 >/dev/null 2>&1 &&
      [[ $("$CTL_BIN/kvctl" --node "$seed" members 2>/dev/null | grep -c ' up ') == 3 ]] &&
      { formed=1; break; }
    sleep 0.5
  done
  for i in 0 1 2; do
    kill -0 "${CLUSTER_PIDS[$i]}" 2>/dev/null ||
      { echo "kvnode n$((i+1)) exited (log: $CLUSTER_DIR/n$((i+1)).log)" >&2; return 1; }
  done
  ((formed)) || { echo "the cluster did not form (logs in $CLUSTER_DIR)" >&2; return 1; }
}

cluster_endpoints() {
  local e="" p
  if ((CLUSTER_LINK)); then for p in "${CLUSTER_LINK_PORTS[@]}"; do e+="link://127.0.0.1:$p,"; done
  else for p in "${CLUSTER_PORTS[@]}"; do e+="tcp://127.0.0.1:$p,"; done; fi
  echo "${e%,}"
}
