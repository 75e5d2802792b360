#!/usr/bin/env bash
# A fleet of slow cameras against one server, as two processes: the server
# (release build) and `simulate --cameras N --rate 20000 --ramp 5` (a few
# threads driving non-blocking sockets). The gallery is off (its thumbnails
# would run ffmpeg once per stored video). For each N, prints the server's peak
# RSS (VmHWM), peak thread count, CPU seconds, files stored and failures.
# Usage: benches/fleet.sh [N ...]   (default: 1000 5000 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
# BIN=path/to/dashcam-server measures another build (e.g. an older commit).
if [ -z "${BIN:-}" ]; then cargo build --release --quiet; fi
BIN=${BIN:-target/release/dashcam-server}
COUNTS=("${@:-1000 5000 10000}")
[ $# -eq 0 ] && COUNTS=(1000 5000 10000)
RATE=${RATE:-20000}
RAMP=${RAMP:-5}
SIZE=${SIZE:-100000}
WORK=$(mktemp -d /tmp/dashcam-fleet.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
head -c "$SIZE" /dev/urandom > "$WORK/clip.h265"
TICK=$(getconf CLK_TCK)
# Descriptors: the server takes 2 a camera (its socket and the file it
# writes), the simulator 1. Raise the hard limit where this user may (root),
# else take what the hard limit allows (the server then says how many
# connections that allows, and refuses the rest).
MAXN=0; for N in "${COUNTS[@]}"; do [ "$N" -gt "$MAXN" ] && MAXN=$N; done
NEED=$((MAXN * 3 + 4096))
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$NEED" ]; then
    ulimit -Hn "$NEED" 2>/dev/null || echo "note: cannot raise the descriptor limit to $NEED (hard limit $(ulimit -Hn))" >&2
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "fleet: cameras at ${RATE} B/s each, ${SIZE}-byte files, ${RAMP} s ramp, descriptor limit $(ulimit -n)"
echo
echo "| cameras | stored | failures | server peak RSS | per camera | peak threads | server CPU s (user + sys) | CPU at steady state | camera time p50 / p99 | wall |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for N in "${COUNTS[@]}"; do
    OUT="$WORK/out-$N"
    PORT=$((20000 + RANDOM % 20000))
    "$BIN" serve --bind 127.0.0.1 --port "$PORT" --output-dir "$OUT" \
        --max-per-ip 1000000 --min-free-mb 0 --gallery false 2> "$WORK/server-$N.log" &
    SPID=$!
    for _ in $(seq 100); do grep -q "listening on" "$WORK/server-$N.log" && break; sleep 0.1; done
    BASE_RSS=$(awk '/VmRSS/ {print $2}' /proc/$SPID/status)
    # Peak threads, and the CPU used in the steady middle of the run.
    (
        PEAK=0
        while kill -0 "$SPID" 2>/dev/null; do
            T=$(awk '/Threads/ {print $2}' /proc/$SPID/status 2>/dev/null || echo 0)
            [ "${T:-0}" -gt "$PEAK" ] && PEAK=$T && echo "$PEAK" > "$WORK/threads-$N"
            sleep 0.2
        done
    ) &
    SAMPLER=$!
    cpu() { awk '{print $14 + $15}' /proc/$SPID/stat; }
    (
        sleep $((RAMP + 1))
        A=$(cpu); sleep 2; B=$(cpu)
        echo "$A $B" > "$WORK/steady-$N"
    ) &
    STEADY=$!
    START=$(date +%s.%N)
    "$BIN" simulate --server "127.0.0.1:$PORT" --cameras "$N" --rate "$RATE" --ramp "$RAMP" \
        --timeout 120 --file "videof=$WORK/clip.h265" > "$WORK/fleet-$N.txt" 2> "$WORK/fleet-$N.err" || true
    END=$(date +%s.%N)
    wait "$STEADY" 2>/dev/null || true
    HWM=$(awk '/VmHWM/ {print $2}' /proc/$SPID/status)
    CPU=$(cpu)
    read -r UT ST < <(awk '{print $14, $15}' /proc/$SPID/stat)
    kill "$SPID"; wait "$SPID" 2>/dev/null || true
    wait "$SAMPLER" 2>/dev/null || true
    REPORT=$(tail -n 1 "$WORK/fleet-$N.txt")
    STORED=$(echo "$REPORT" | sed -n 's/.*files stored \([0-9]*\).*/\1/p')
    FAILS=$(echo "$REPORT" | sed -n 's/.*failures \([0-9]*\).*/\1/p')
    P50=$(echo "$REPORT" | sed -n 's/.*p50 \([0-9.]*s\).*/\1/p')
    P99=$(echo "$REPORT" | sed -n 's/.*p99 \([0-9.]*s\).*/\1/p')
    read -r SA SB < "$WORK/steady-$N" || { SA=0; SB=0; }
    STEADY_PCT=$(awk -v a="$SA" -v b="$SB" -v t="$TICK" 'BEGIN {printf "%.0f%%", (b - a) / t / 2 * 100}')
    PER=$(awk -v h="$HWM" -v b="$BASE_RSS" -v n="$N" 'BEGIN {printf "%.1f KiB", (h - b) / n}')
    printf "| %s | %s | %s | %.1f MiB | %s | %s | %.1f (%s + %s) | %s of one core | %s / %s | %.1f s |\n" \
        "$N" "${STORED:-?}" "${FAILS:-?}" "$(awk -v h="$HWM" 'BEGIN {print h/1024}')" "$PER" \
        "$(cat "$WORK/threads-$N" 2>/dev/null || echo ?)" "$(awk -v c="$CPU" -v t="$TICK" 'BEGIN {print c/t}')" \
        "$(awk -v c="$UT" -v t="$TICK" 'BEGIN {printf "%.1f", c/t}')" "$(awk -v c="$ST" -v t="$TICK" 'BEGIN {printf "%.1f", c/t}')" \
        "$STEADY_PCT" "${P50:-?}" "${P99:-?}" "$(awk -v a="$START" -v b="$END" 'BEGIN {print b-a}')"
    if [ "${FAILS:-1}" != "0" ]; then
        head -n 3 "$WORK/fleet-$N.err" >&2
        grep -E "refused|could not|WARN|ERROR" "$WORK/server-$N.log" | grep -v "session end" | head -n 5 >&2 || true
    fi
    rm -rf "$OUT"
    # A run writes about 1 GB (10,000 x 100 kB): let the kernel write it back
    # (and the removal) before the next run, which it would otherwise slow.
    sync
done
