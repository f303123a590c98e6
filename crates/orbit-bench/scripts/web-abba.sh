#!/bin/bash
# Two builds of the `web` scenario's HTTP server compared on one subject, same run:
# `web-abba.sh SUBJECT BINARY_A BINARY_B [ROUNDS]` starts `BINARY __web-http SUBJECT`
# from each binary, then runs `wrk -t1 -c32 -d2s` on them in ABBA order (A B B A, then
# B A A B, ...). Prints one line per wrk run (`a|b requests/s server-CPU-ns/request`,
# the CPU from every thread's /proc/PID/task/*/schedstat) and, last, the medians of the
# per-pair ratios (B over A by requests/s, A over B by CPU per request) with their
# spread. Used for a before/after of a change that callgrind cannot see (cycles, not
# instructions: cache lines shared between the workers).
set -euo pipefail
SUB=$1; A=$2; B=$3; ROUNDS=${4:-8}
DIR=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$DIR"' EXIT
start() {
    "$1" __web-http "$SUB" >"$DIR/port.$2" &
    PIDS+=($!)
    echo $! >"$DIR/pid.$2"
    for _ in $(seq 1 100); do grep -q port "$DIR/port.$2" 2>/dev/null && break; sleep 0.1; done
}
start "$A" a
start "$B" b
cpu() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%.0f", s}'; }
run() {
    local pid port c0 c1 out n rps
    pid=$(cat "$DIR/pid.$1"); port=$(awk '{print $2}' "$DIR/port.$1")
    c0=$(cpu "$pid")
    out=$(wrk -t1 -c32 -d2s "http://127.0.0.1:$port/hello")
    c1=$(cpu "$pid")
    n=$(echo "$out" | awk '/requests in/{print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
    echo "$1 $rps $(((c1 - c0) / n))"
}
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then order="a b b a"; else order="b a a b"; fi
    for x in $order; do run "$x"; done
done | tee "$DIR/runs"
# Per pair (runs 1-2, 3-4, ...): B/A requests/s and A/B CPU per request.
awk 'NR % 2 == 1 { p1 = $1; r1 = $2; c1 = $3; next }
    { if (p1 == "a") print $2 / r1, c1 / $3; else print r1 / $2, $3 / c1 }' "$DIR/runs" >"$DIR/pairs"
stat() { # column: median (min-max)
    sort -g "$DIR/col$1" | awk '{ v[NR] = $1 } END { printf "%.3f (%.3f-%.3f)", v[int((NR + 1) / 2)], v[1], v[NR] }'
}
awk '{print $1}' "$DIR/pairs" >"$DIR/col1"
awk '{print $2}' "$DIR/pairs" >"$DIR/col2"
echo "pairs $(wc -l <"$DIR/pairs"): b/a requests/s median $(stat 1); a/b CPU per request median $(stat 2)"
