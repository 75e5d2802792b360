#!/usr/bin/env bash
# 100 camera videos (samples/camera.h265, 3 s with sound) arriving at once at a
# server with --convert mp4, against the same without: the cameras' wall time
# (the server keeps taking cameras while it converts), and how long until the
# last mp4 is there. Needs ffmpeg.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
BIN=$PWD/target/release/dashcam-server
N=${N:-100}
WORK=$(mktemp -d /tmp/dashcam-queue.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
for mode in plain convert; do
    PORT=$((20000 + RANDOM % 20000))
    EXTRA=()
    [ "$mode" = convert ] && EXTRA=(--convert mp4)
    "$BIN" serve --bind 127.0.0.1 --port "$PORT" --output-dir "$WORK/$mode" --gallery false \
        --min-free-mb 0 "${EXTRA[@]}" 2> "$WORK/$mode.log" &
    SPID=$!
    for _ in $(seq 100); do grep -q "listening on" "$WORK/$mode.log" && break; sleep 0.1; done
    S=$(date +%s.%N)
    "$BIN" simulate --server "127.0.0.1:$PORT" --cameras "$N" --frame-rate 20 --duration 3 \
        --file videof=samples/camera.h265 > "$WORK/$mode.sim"
    E=$(date +%s.%N)
    echo "$mode: $N cameras stored in $(echo "$E - $S" | bc) s ($(grep -o 'failures [0-9]*' "$WORK/$mode.sim" || echo 'failures ?'))"
    if [ "$mode" = convert ]; then
        while [ "$(find "$WORK/$mode" -name '*.mp4' | wc -l)" -lt "$N" ]; do
            sleep 0.2
            if [ "$(echo "$(date +%s.%N) - $S > 600" | bc)" = 1 ]; then break; fi
        done
        D=$(date +%s.%N)
        echo "convert: the last of $(find "$WORK/$mode" -name '*.mp4' | wc -l) mp4 after $(echo "$D - $S" | bc) s"
    fi
    kill "$SPID"; wait "$SPID" 2>/dev/null || true
done
