#!/usr/bin/env bash
# Conversion cost of the camera's container: one minute of 720p 20 fps video
# with G.711 sound (made from ffmpeg's test sources and a tone, put in the
# camera's container by `dashcam-server container`), stored by a server, then
# converted to H.264/AAC mp4 by `dashcam-server convert`, RUNS times.
# Prints the wall time of each run and the median. Needs ffmpeg.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
BIN=$PWD/target/release/dashcam-server
RUNS=${RUNS:-3}
SECS=${SECS:-60}
WORK=$(mktemp -d /tmp/dashcam-convert.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
ffmpeg -v error -f lavfi -i "testsrc2=size=1280x720:rate=20" -t "$SECS" -c:v libx265 \
    -preset ultrafast -x265-params log-level=error:keyint=20 -pix_fmt yuv420p -f hevc clip.h265
ffmpeg -v error -f lavfi -i "sine=frequency=440:sample_rate=8000:duration=$SECS" -ac 1 -ar 8000 -f alaw tone.alaw
"$BIN" container --video clip.h265 --audio tone.alaw --fps 20 --output camera.h265
PORT=$((20000 + RANDOM % 20000))
"$BIN" serve --bind 127.0.0.1 --port "$PORT" --output-dir out --gallery false 2> serve.log &
SPID=$!
for _ in $(seq 100); do grep -q "listening on" serve.log && break; sleep 0.1; done
"$BIN" simulate --server "127.0.0.1:$PORT" --file videof=camera.h265 --frame-rate 20 --duration "$SECS" > /dev/null
kill "$SPID"; wait "$SPID" 2>/dev/null || true
echo "machine: $(nproc) cores, $(uname -sr); clip: ${SECS} s, 1280x720, 20 fps, $(stat -c %s camera.h265) bytes"
TIMES=()
for r in $(seq "$RUNS"); do
    S=$(date +%s.%N)
    "$BIN" convert --output-dir out --force > convert.log
    E=$(date +%s.%N)
    T=$(echo "$E - $S" | bc)
    TIMES+=("$T")
    echo "run $r: $T s ($(tail -n 1 convert.log))"
done
MEDIAN=$(printf '%s\n' "${TIMES[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
MP4=$(ls out/*/*.mp4 | head -n 1)
FRAMES=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$MP4")
echo "median: $MEDIAN s for $SECS s of video ($(echo "scale=1; $MEDIAN * 60 / $SECS" | bc) s a minute); mp4 frames: $FRAMES"
