#!/bin/bash
# User-space instructions per request of the `web` scenario's HTTP subjects, counted by
# callgrind: deterministic where wrk's requests/s is not on a shared machine. Each
# subject's server (`orbit-bench __web-http SUBJECT`) runs under valgrind; after a 2 s
# warm-up the counters are zeroed, `wrk -t1 -c8 -d4s` runs, and the instructions counted
# (every thread, user space only: no kernel time) are divided by wrk's requests.
# Under valgrind a server answers ~2-4k requests/s, so `timed` splits most requests.
# Usage: web-callgrind.sh [ORBIT_BENCH_BINARY] [SUBJECT...]; prints JSON lines.
# With KEEP=DIR each subject's profile is kept as DIR/SUBJECT.callgrind, for a
# per-function diff: callgrind_annotate --inclusive=yes DIR/wrapped.callgrind.
set -euo pipefail
BIN=${1:-target/release/orbit-bench}
shift || true
SUBJECTS=${*:-plain wrapped layer plain_layer plain_layers timed}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
for SUB in $SUBJECTS; do
    OUT=$DIR/$SUB
    valgrind --tool=callgrind --callgrind-out-file="$OUT.%p" "$BIN" __web-http "$SUB" \
        >"$OUT.port" 2>"$OUT.vg" &
    VPID=$!
    for _ in $(seq 1 200); do grep -q port "$OUT.port" 2>/dev/null && break; sleep 0.3; done
    PORT=$(awk '{print $2}' "$OUT.port")
    wrk -t1 -c8 -d2s "http://127.0.0.1:$PORT/hello" >/dev/null
    callgrind_control -z "$VPID" >/dev/null 2>&1
    N=$(wrk -t1 -c8 -d4s "http://127.0.0.1:$PORT/hello" | awk '/requests in/{print $1}')
    callgrind_control -d "$VPID" >/dev/null 2>&1
    kill "$VPID"
    wait "$VPID" 2>/dev/null || true
    IR=$(callgrind_annotate "$(ls "$OUT".*.1 | head -1)" 2>/dev/null |
        awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
    if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$(ls "$OUT".*.1 | head -1)" "$KEEP/$SUB.callgrind"; fi
    echo "{\"scenario\": \"web\", \"subject\": \"$SUB\", \"metric\": \"user_instructions_per_request\", \"value\": $((IR / N)), \"requests\": $N}"
done
