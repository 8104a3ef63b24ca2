#!/usr/bin/env bash
# Figures of issue 12, sloppy quorums and hinted handoff (docs/BENCHMARKS.md):
#   tools/bench/hinted_handoff.sh [BINDIR [ROUNDS]]      (default build/bin, 3)
# Every round starts fresh clusters of 5 kvnode processes (static --peers, n = 3,
# loopback, no cluster key, default --sync true, ping 1000 ms, down after 3000 ms)
# on 127.0.0.1:PORT_BASE+1..5 (PORT_BASE default 7600) with data in a temp dir, and
# measures:
#  A. write availability: kvbench put-only, quorum, KEYS keys (10,000) and OPS puts
#     (20,000) over the survivors, sloppy (default) then --strict, with no node down,
#     with n5 killed (-9), then with n4 and n5 killed; availability = acknowledged puts /
#     attempted. The killed nodes are restarted between outages and the hints drained.
#  B. catch-up: n5 killed, distinct keys loaded through n1..n4 until they hold at
#     least HINTS_MIN (10,000) hints for n5; n5 restarted; status polled every ~50 ms
#     until no node holds a hint for it. Once at --hint-replay-rate 5000 (default) and
#     once at HIGH_RATE (100,000). Then SAMPLE (200) keys whose homes include n5 are
#     read with local-get on n5: it must hold every one.
# LOG_DIR=DIR keeps the nodes' logs (info level) and the result lines there.
# Lines starting "A " and "B " are the results (one per run); the median table is
# printed at the end. Exit status 1 when anything went wrong (a node died, a wait
# timed out, a sampled key missing).
set -euo pipefail

bin=${1:-build/bin}
rounds=${2:-3}
PORT_BASE=${PORT_BASE:-7600}
KEYS=${KEYS:-10000}
OPS=${OPS:-20000}
HINTS_MIN=${HINTS_MIN:-10000}
HIGH_RATE=${HIGH_RATE:-100000}
SAMPLE=${SAMPLE:-200}
# How many keys kvctl owners is asked about (once, in round 1) to count those with both
# n4 and n5 among their homes: strict quorum puts to them fail while both are down, so
# strict availability with 2 down should be 1 minus that share; 0 skips the count.
SHARE_KEYS=${SHARE_KEYS:-$KEYS}

for b in kvnode kvctl kvbench; do
    [[ -x $bin/$b ]] || { echo "no $bin/$b" >&2; exit 2; }
done
command -v jq >/dev/null || { echo "needs jq" >&2; exit 2; }

work=$(mktemp -d /tmp/hinted-handoff-bench.XXXXXX)
declare -a pids=()   # kvnode processes by node number
declare -a polls=()  # kvctl status processes of a catch-up poll in flight
results=$work/results
data=""  # the current cluster's directory (start_cluster)

stop_all() {
    local p
    for p in "${polls[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do if [[ -n $p ]]; then kill -9 "$p" 2>/dev/null || true; fi; done
    for p in "${pids[@]}"; do if [[ -n $p ]]; then wait "$p" 2>/dev/null || true; fi; done
    pids=()
}
cleanup() {
    stop_all
    if [[ -n ${LOG_DIR:-} ]]; then  # the nodes' logs (info: replay batches resent or failed)
        mkdir -p "$LOG_DIR"
        local f
        for f in "$work"/c*/*.log; do
            [[ -f $f ]] && cp "$f" "$LOG_DIR/$(basename "$(dirname "$f")")-$(basename "$f")"
        done
        cp "$results" "$LOG_DIR/" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ep() { echo "tcp://127.0.0.1:$((PORT_BASE + $1))"; }
PEERS=""
for i in 1 2 3 4 5; do PEERS+="${PEERS:+,}n$i=$(ep "$i")"; done
now_ms() {  # no date process: the catch-up poll calls it in its loop
    local t=${EPOCHREALTIME/./}
    echo $((t / 1000))
}
fail() {
    echo "FAILED: $*" >&2
    for i in 1 2 3 4 5; do
        [[ -n $data && -f $data/n$i.log ]] && { echo "--- n$i.log (tail)" >&2; tail -5 "$data/n$i.log" >&2; }
    done
    exit 1
}

# start_node I RATE: n$I on its port, data and log under $data (kept across restarts).
start_node() {
    "$bin/kvnode" --id "n$1" --listen "$(ep "$1")" --data-dir "$data/n$1" --peers "$PEERS" \
        --n 3 --log-level info --hint-replay-rate "$2" >>"$data/n$1.log" 2>&1 &
    pids[$1]=$!
}
kill_node() {
    kill -9 "${pids[$1]}"
    wait "${pids[$1]}" 2>/dev/null || true
    pids[$1]=""
}
check_alive() {
    local i
    for i in "$@"; do
        kill -0 "${pids[$i]}" 2>/dev/null || fail "n$i exited (see its log)"
    done
}
status() { "$bin/kvctl" --no-key --node "$(ep "$1")" --timeout-ms 2000 --json status 2>/dev/null; }

# wait_state STATE TARGETS... -- OBSERVERS...: every observer sees every target in STATE.
wait_state() {
    local want=$1; shift
    local targets=() observers=() seen_sep=0 a
    for a in "$@"; do
        if [[ $a == -- ]]; then seen_sep=1; elif [[ $seen_sep == 0 ]]; then targets+=("$a"); else observers+=("$a"); fi
    done
    local deadline=$(($(now_ms) + 30000)) ok o t s
    while :; do
        ok=1
        for o in "${observers[@]}"; do
            s=$(status "$o") || { ok=0; break; }
            for t in "${targets[@]}"; do
                [[ $t == "$o" ]] && continue  # a node sees itself as 'self'
                [[ $(jq -r --arg t "n$t" '.members[] | select(.node_id == $t) | .state' <<<"$s") == "$want" ]] || ok=0
            done
        done
        [[ $ok == 1 ]] && return 0
        (($(now_ms) < deadline)) || fail "nodes ${targets[*]} not '$want' for ${observers[*]} within 30 s"
        sleep 0.1
    done
}

# hints_on NODE [TARGET]: keys the node holds as hints (for TARGET, else for all).
hints_on() {
    local s
    s=$(status "$1") || { echo -1; return; }
    jq --arg t "${2:-}" '[.hints[] | select($t == "" or .target == $t) | .keys] | add // 0' <<<"$s"
}
wait_drained() {
    local deadline=$(($(now_ms) + 120000)) total i h
    while :; do
        total=0
        for i in 1 2 3 4 5; do
            h=$(hints_on "$i")
            ((h < 0)) && { total=-1; break; }
            total=$((total + h))
        done
        ((total == 0)) && return 0
        (($(now_ms) < deadline)) || fail "hints not drained within 120 s ($total left)"
        sleep 0.2
    done
}

start_cluster() {  # start_cluster RATE
    data=$work/c$((++cluster_seq))
    mkdir -p "$data"
    for i in 1 2 3 4 5; do start_node "$i" "$1"; done
    wait_state up 1 2 3 4 5 -- 1 2 3 4 5
}
cluster_seq=0

# bench LABEL STRICT(0/1) NODES...: one kvbench put-only run through NODES.
bench() {
    local label=$1 strict=$2; shift 2
    local eps="" i
    for i in "$@"; do eps+="${eps:+,}$(ep "$i")"; done
    local flags=(--no-key --node "$eps" --keys "$KEYS" --ops "$OPS" --mix put-only
        --consistency quorum --connections 3 --pipeline 16 --json)
    [[ $strict == 1 ]] && flags+=(--strict)
    local out
    out=$("$bin/kvbench" "${flags[@]}") || fail "kvbench $label exited $?"
    local ops ok p50 p99 errs
    ops=$(jq .ops <<<"$out")
    ok=$(jq .latency_us.put.count <<<"$out")
    p50=$(jq .latency_us.put.p50 <<<"$out")
    p99=$(jq .latency_us.put.p99 <<<"$out")
    errs=$(jq -r '[.errors | to_entries[] | "\(.key)=\(.value)"] | join(",") | if . == "" then "none" else . end' <<<"$out")
    local avail
    avail=$(awk -v a="$ok" -v b="$ops" 'BEGIN { printf "%.4f", (b > 0 ? a / b : 0) }')
    echo "A $label $([[ $strict == 1 ]] && echo strict || echo sloppy) ops=$ops acked=$ok availability=$avail p50_us=$p50 p99_us=$p99 ops_per_s=$(jq .ops_per_s <<<"$out") errors=$errs" | tee -a "$results"
}

# The share of keys whose home replicas include both n4 and n5 (strict quorum writes to
# them fail while both are down), from kvctl owners on n1 with every node up.
share_both_homes() {
    local both
    # Two kvctl at a time: the machine is shared.
    seq 0 $((SHARE_KEYS - 1)) | awk '{ printf "key%010d\n", $1 }' |
        xargs -P 2 -I KEY "$bin/kvctl" --no-key --node "$(ep 1)" --json owners KEY >"$work/owners.json"
    both=$(jq -s '[.[] | [.homes[].node_id] | select(index("n4") != null and index("n5") != null)] | length' "$work/owners.json")
    echo "SHARE keys=$(jq -s length "$work/owners.json") with_n4_and_n5_home=$both share=$(awk -v a="$both" -v b="$SHARE_KEYS" 'BEGIN { printf "%.4f", a / b }')" | tee -a "$results"
}

part_a() {  # part_a ROUND
    start_cluster 5000
    echo "== A round $1: $(uptime | sed 's/.*load/load/')"
    bench none 0 1 2 3 4 5
    bench none 1 1 2 3 4 5
    kill_node 5
    wait_state unreachable 5 -- 1 2 3 4
    bench one-down 0 1 2 3 4
    bench one-down 1 1 2 3 4
    check_alive 1 2 3 4
    start_node 5 5000
    wait_state up 5 -- 1 2 3 4
    wait_drained
    kill_node 4
    kill_node 5
    wait_state unreachable 4 5 -- 1 2 3
    bench two-down 0 1 2 3
    bench two-down 1 1 2 3
    check_alive 1 2 3
    start_node 4 5000
    start_node 5 5000
    wait_state up 4 5 -- 1 2 3
    wait_drained
    if [[ $1 == 1 && $SHARE_KEYS -gt 0 ]]; then share_both_homes; fi
    check_alive 1 2 3 4 5
    stop_all
}

# One catch-up measurement at replay rate RATE.
part_b() {  # part_b ROUND RATE
    local rate=$2
    start_cluster "$rate"
    echo "== B round $1 rate $rate: $(uptime | sed 's/.*load/load/')"
    kill_node 5
    wait_state unreachable 5 -- 1 2 3 4
    local keys=$((HINTS_MIN * 17 / 10)) held=0 tries=0 i
    local eps=""
    for i in 1 2 3 4; do eps+="${eps:+,}$(ep "$i")"; done
    while :; do
        "$bin/kvbench" --no-key --node "$eps" --load --keys "$keys" --ops 1 --mix put-only \
            --consistency quorum --connections 3 --pipeline 32 --json >/dev/null ||
            fail "kvbench --load exited $?"
        held=0
        for i in 1 2 3 4; do held=$((held + $(hints_on "$i" n5))); done
        ((held >= HINTS_MIN)) && break
        ((++tries < 10)) || fail "only $held hints for n5 after 10 loads"
        keys=$((keys + HINTS_MIN / 5))
    done
    local per=""
    for i in 1 2 3 4; do per+="${per:+/}$(hints_on "$i" n5)"; done
    check_alive 1 2 3 4
    local t0 t_up_first=0 t_up_all=0 t_first_replayed=0 t_done=0 deadline now left ups h p
    local polls_done=0
    t0=$(now_ms)
    start_node 5 "$rate"
    deadline=$((t0 + 120000))
    local iter_start
    while :; do
        iter_start=$(now_ms)
        # The four survivors are asked at once; each answer gives its hints for n5 and
        # how it sees n5.
        polls=()
        for i in 1 2 3 4; do
            status "$i" >"$data/poll$i.json" &
            polls+=($!)
        done
        for p in "${polls[@]}"; do wait "$p" || true; done
        polls=()
        now=$(now_ms)
        left=-1 ups=0
        if [[ -s $data/poll1.json && -s $data/poll2.json && -s $data/poll3.json && -s $data/poll4.json ]]; then
            read -r left ups < <(jq -rs '"\([.[].hints[] | select(.target == "n5") | .keys] | add // 0) \([.[].members[] | select(.node_id == "n5" and .state == "up")] | length)"' "$data"/poll[1-4].json) || left=-1
        fi
        polls_done=$((polls_done + 1))
        if ((left >= 0)); then
            ((ups > 0 && t_up_first == 0)) && t_up_first=$now
            ((ups == 4 && t_up_all == 0)) && t_up_all=$now
            ((left < held && t_first_replayed == 0)) && t_first_replayed=$now
            if ((left == 0)); then t_done=$now; break; fi
        fi
        ((now < deadline)) || fail "hints for n5 not replayed within 120 s ($left left)"
        # About every 50 ms: a poll (4 kvctl, one jq) often takes longer by itself.
        local spent=$(($(now_ms) - iter_start))
        ((spent >= 50)) || sleep "$(printf '0.%03d' $((50 - spent)))"
    done
    check_alive 1 2 3 4 5
    ((t_up_first > 0)) || t_up_first=$t_done
    ((t_first_replayed > 0)) || t_first_replayed=$t_done
    ((t_up_all > 0)) || t_up_all=$t_done
    local replay_ms=$((t_done - t_up_first))
    local hint_rate
    hint_rate=$(awk -v h="$held" -v ms="$replay_ms" 'BEGIN { printf "%.0f", (ms > 0 ? h * 1000 / ms : 0) }')
    # Each holder's replayed counter (since it started) must account for every hint.
    local replayed=0
    for i in 1 2 3 4; do
        replayed=$((replayed + $(status "$i" | jq '[.hints[] | select(.target == "n5") | .replayed] | add // 0')))
    done
    # A sample of the keys whose homes include n5: n5 must hold each one itself.
    local sampled=0 missing=0 k key tried=0
    while ((sampled < SAMPLE && tried < SAMPLE * 10)); do
        k=$((RANDOM * 32768 + RANDOM))
        k=$((k % keys))
        key=$(printf 'key%010d' "$k")
        tried=$((tried + 1))
        "$bin/kvctl" --no-key --node "$(ep 1)" --json owners "$key" |
            jq -e '[.homes[].node_id] | index("n5") != null' >/dev/null || continue
        sampled=$((sampled + 1))
        "$bin/kvctl" --no-key --node "$(ep 5)" local-get "$key" >/dev/null 2>&1 || missing=$((missing + 1))
    done
    echo "B rate=$rate hints=$held per_holder=$per up_first_ms=$((t_up_first - t0)) up_all_ms=$((t_up_all - t0)) first_replayed_ms=$((t_first_replayed - t0)) done_ms=$((t_done - t0)) replay_ms=$replay_ms hints_per_s=$hint_rate replayed_counter=$replayed poll_ms=$(((t_done - t0) / polls_done)) sample=$sampled missing=$missing" | tee -a "$results"
    ((missing == 0)) || fail "n5 lacks $missing of $sampled sampled keys"
    ((sampled == SAMPLE)) || fail "only $sampled keys sampled"
    stop_all
}

for r in $(seq 1 "$rounds"); do
    part_a "$r"
    part_b "$r" 5000
    part_b "$r" "$HIGH_RATE"
done

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
echo
echo "== medians of $rounds round(s)"
for sc in none one-down two-down; do
    for mode in sloppy strict; do
        lines=$(grep "^A $sc $mode " "$results")
        printf 'A %-9s %-6s availability %s  p50_us %s  p99_us %s  ops/s %s  (availability by round: %s)\n' \
            "$sc" "$mode" "$(field availability <<<"$lines" | median)" \
            "$(field p50_us <<<"$lines" | median)" "$(field p99_us <<<"$lines" | median)" \
            "$(field ops_per_s <<<"$lines" | median)" "$(field availability <<<"$lines" | paste -sd/)"
    done
done
grep '^SHARE' "$results" || true
for rate in 5000 "$HIGH_RATE"; do
    lines=$(grep "^B rate=$rate " "$results")
    printf 'B rate %-6s hints %s  up_first_ms %s  up_all_ms %s  done_ms %s  replay_ms %s  hints/s %s  (done_ms by round: %s)\n' \
        "$rate" "$(field hints <<<"$lines" | median)" "$(field up_first_ms <<<"$lines" | median)" \
        "$(field up_all_ms <<<"$lines" | median)" "$(field done_ms <<<"$lines" | median)" \
        "$(field replay_ms <<<"$lines" | median)" "$(field hints_per_s <<<"$lines" | median)" \
        "$(field done_ms <<<"$lines" | paste -sd/)"
done
