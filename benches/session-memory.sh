#!/usr/bin/env bash
# Memory of sessions that store many files: 10 cameras at once, each storing
# FILES files in one session (protocol 6, path flow, 1 KB files with JSON
# metadata), against a fresh server each time. Prints the server's peak RSS
# (VmHWM) with 1 file per session and with 1,000, and the difference per
# stored file. Usage: benches/session-memory.sh [BIN]  (BIN: a server binary
# to measure instead of this tree's release build, e.g. an older commit's).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-}
if [ -z "$BIN" ]; then
    cargo build --release --quiet
    BIN=target/release/dashcam-server
fi
CAMERAS=${CAMERAS:-10}
WORK=$(mktemp -d /tmp/dashcam-session-mem.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
head -c 1000 /dev/urandom > "$WORK/clip.mp4"

measure() {
    local files=$1 out="$WORK/out-$1" port=$((20000 + RANDOM % 20000)) args=()
    for i in $(seq "$files"); do
        args+=(--path "/mnt/sd/mdas9/video/$(printf %05d "$i").mp4=$WORK/clip.mp4")
    done
    "$BIN" serve --bind 127.0.0.1 --port "$port" --output-dir "$out" --metadata 1 \
        --max-files 100000 --min-free-mb 0 --gallery false 2> "$WORK/server-$files.log" &
    local spid=$!
    for _ in $(seq 100); do grep -q "listening on" "$WORK/server-$files.log" && break; sleep 0.1; done
    "$BIN" simulate --server "127.0.0.1:$port" --cameras "$CAMERAS" --protocol 6 --family adas \
        --timeout 300 "${args[@]}" > "$WORK/sim-$files.txt" 2>&1 || true
    # Every session has ended (its summary line is logged) before reading.
    for _ in $(seq 300); do
        [ "$(grep -c 'session end' "$WORK/server-$files.log")" -ge "$CAMERAS" ] && break
        sleep 0.1
    done
    local hwm rss stored
    hwm=$(awk '/VmHWM/ {print $2}' /proc/$spid/status)
    rss=$(awk '/VmRSS/ {print $2}' /proc/$spid/status)
    stored=$(find "$out" -name '*.mp4' -not -path '*/.partial/*' | wc -l)
    kill "$spid"; wait "$spid" 2>/dev/null || true
    echo "$files $hwm $rss $stored"
}

echo "machine: $(nproc) cores, $(uname -sr); $CAMERAS cameras at once, one session each"
read -r _ H1 R1 S1 < <(measure 1)
read -r _ HN RN SN < <(measure 1000)
echo "| files per session | files stored | server peak RSS | RSS after |"
echo "|---|---|---|---|"
echo "| 1 | $S1 | $((H1 / 1024)) MiB | $((R1 / 1024)) MiB |"
echo "| 1000 | $SN | $((HN / 1024)) MiB | $((RN / 1024)) MiB |"
echo "growth per stored file (peak): $(( (HN - H1) * 1024 / (SN - S1 > 0 ? SN - S1 : 1) )) bytes"
