#!/usr/bin/env bash
# One fast camera, two processes: `serve` and `simulate` sending one 256 MiB
# video (random bytes) over loopback, RUNS times; prints each run's wall time
# and the server's CPU (user + system) for the whole file, and the median.
# Usage: benches/single.sh [BIN] (default: this tree's release build).
# DIR=/dev/shm takes the disk out of the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-}
if [ -z "$BIN" ]; then
    cargo build --release --quiet
    BIN=target/release/dashcam-server
fi
RUNS=${RUNS:-5}
DIR=${DIR:-/tmp}
WORK=$(mktemp -d "$DIR/dashcam-single.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
head -c $((256 << 20)) /dev/urandom > "$WORK/clip.h265"
TICK=$(getconf CLK_TCK)
walls=(); cpus=()
for run in $(seq "$RUNS"); do
    port=$((20000 + RANDOM % 20000))
    "$BIN" serve --bind 127.0.0.1 --port "$port" --output-dir "$WORK/out-$run" \
        --min-free-mb 0 --gallery false 2> "$WORK/server.log" &
    spid=$!
    for _ in $(seq 100); do grep -q "listening on" "$WORK/server.log" && break; sleep 0.1; done
    a=$(date +%s%N)
    "$BIN" simulate --server "127.0.0.1:$port" --file "videof=$WORK/clip.h265" --no-metadata > /dev/null 2>&1
    b=$(date +%s%N)
    cpu=$(awk -v t="$TICK" '{printf "%.2f", ($14 + $15) / t}' "/proc/$spid/stat")
    kill "$spid"; wait "$spid" 2>/dev/null || true
    rm -rf "$WORK/out-$run"
    wall=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", (b - a) / 1e9}')
    echo "run $run: wall ${wall} s ($(awk -v w="$wall" 'BEGIN {printf "%.0f", 268.435456 / w}') MB/s), server CPU ${cpu} s"
    walls+=("$wall"); cpus+=("$cpu")
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "median: wall $(med "${walls[@]}") s, server CPU $(med "${cpus[@]}") s for 256 MiB"
