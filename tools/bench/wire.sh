#!/usr/bin/env bash
# wire.sh BIN_DIR -- kvwire's matrix (docs/BENCHMARKS.md, issue 14): the CPU a
# message hop costs over ZeroMQ (plain and CURVE) and over TCP with epoll
# through SecureLink (plain; after a handshake, every frame sealed as CURVE's
# are, XSalsa20-Poly1305; and with the cipher the handshake picks, AES-256-GCM
# where the CPU has it), at INFLIGHT frames in flight (default "1 8 50") of BYTES bytes
# (default 200), the server also waiting on IDLE silent sockets (default "0 9":
# the transport alone, and as many sockets as kvnode's loop polls besides its
# ROUTER), SECS s per run (default 3), ROUNDS rounds (default 3) that
# alternate the modes, so that a noisy machine weighs on every mode alike.
# MODES (comma-separated kvwire flag sets, e.g. "tcp,tcp --link-server")
# picks other modes. Prints each run's JSON line, then the medians over the rounds: round trips
# per s, the client's and the server's user + system time per round trip, and
# with 1 in flight the latency's p50 and p99.
set -euo pipefail
BIN=$(cd "${1:?usage: $0 BIN_DIR}" && pwd)
INFLIGHT=${INFLIGHT:-"1 8 50"}; IDLE=${IDLE:-"0 9"}; BYTES=${BYTES:-200}; SECS=${SECS:-3}; ROUNDS=${ROUNDS:-3}
OUT=$(mktemp /tmp/kvwire-XXXXXX.jsonl)
trap 'rm -f "$OUT"' EXIT
IFS=, read -ra modes <<< "${MODES:-zmq,zmq --curve,tcp,tcp --seal --cipher xsalsa20poly1305,tcp --seal}"
for ((r = 1; r <= ROUNDS; r++)); do
  for idle in $IDLE; do
    for n in $INFLIGHT; do
      for mode in "${modes[@]}"; do
        # shellcheck disable=SC2086  # mode carries its flag
        "$BIN/kvwire" --mode $mode --inflight "$n" --frame-bytes "$BYTES" --seconds "$SECS" \
          --idle-sockets "$idle" --json | tee -a "$OUT"
      done
    done
  done
done
/usr/bin/python3 - "$OUT" <<'EOF'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
keys = sorted({(r["idle_sockets"], r["inflight"], r["mode"]) for r in runs})
print("\n| idle sockets | in flight | mode | round trips/s | client cpu us | server cpu us | p50 us | p99 us |")
print("|---|---|---|---|---|---|---|---|")
for idle, inflight, mode in keys:
    rs = [r for r in runs if (r["idle_sockets"], r["inflight"], r["mode"]) == (idle, inflight, mode)]
    med = lambda f: statistics.median(r[f] for r in rs)
    lat = ("%d | %d" % (med("p50_us"), med("p99_us"))) if inflight == 1 else "- | -"
    print("| %d | %d | %s | %.0f | %.2f | %.2f | %s |" % (idle, inflight, mode, med("per_s"),
          med("client_cpu_us"), med("server_cpu_us"), lat))
EOF
